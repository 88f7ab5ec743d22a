"""Test doubles for code that uses the SDK.

``MockTransport`` replaces the network: give it a handler function or a queue of responses,
then assert on ``transport.requests``. Everything above the transport (validation, auth,
error mapping, parsing) still runs, so tests see what production code would see.
"""

from __future__ import annotations

import inspect
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from .errors import RequestNotSentError
from .transport.base import Request, Response

Handler = Callable[[Request], "Response | Awaitable[Response]"]


def json_response(
    data: Any,
    status: int = 200,
    *,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/hal+json",
) -> Response:
    """A JSON response as the API sends it (``application/hal+json`` by default)."""
    return Response(
        status=status,
        headers={"Content-Type": content_type, **(headers or {})},
        body=json.dumps(data).encode(),
    )


def problem_response(status: int, detail: str = "", *, title: str = "", **extra: Any) -> Response:
    """An ``application/problem+json`` error like amoCRM's."""
    body = {"title": title, "type": f"https://httpstatus.es/{status}", "status": status}
    body["detail"] = detail
    body.update(extra)
    return json_response(body, status, content_type="application/problem+json")


def html_response(status: int, html: str = "<html><title>Error</title></html>") -> Response:
    return Response(status=status, headers={"Content-Type": "text/html"}, body=html.encode())


def empty_response(status: int = 204) -> Response:
    return Response(status=status)


class MockTransport:
    """A :class:`~amo_pipelines.transport.Transport` that answers from a handler or a queue.

    Queued items are returned in order; an exception in the queue (or raised by the
    handler) is raised from :meth:`send`, e.g. ``ResponseLostError`` to simulate a drop.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        responses: Iterable[Response | BaseException] = (),
    ) -> None:
        self.handler = handler
        self.queue: deque[Response | BaseException] = deque(responses)
        self.requests: list[Request] = []
        self.closed = False

    def add(self, *responses: Response | BaseException) -> MockTransport:
        self.queue.extend(responses)
        return self

    async def send(self, request: Request) -> Response:
        if self.closed:  # as the aiohttp transport does, so tests see what users would
            raise RequestNotSentError(
                "the transport is closed", method=request.method, path=request.url.path
            )
        self.requests.append(request)
        if self.queue:
            item = self.queue.popleft()
            if isinstance(item, BaseException):
                raise item
            return item
        if self.handler is None:
            raise AssertionError(f"MockTransport has no response for {request!r}")
        result = self.handler(request)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def aclose(self) -> None:
        self.closed = True

    def json_bodies(self) -> list[Any]:
        """The decoded JSON body of every recorded request (``None`` where there was none)."""
        return [json.loads(r.body) if r.body else None for r in self.requests]
