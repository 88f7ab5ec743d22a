"""The transport contract: one request in, one response out.

Everything above the transport (auth, rate limiting, retries, error mapping) works on these
two plain value objects, so a transport is easy to replace or fake: it only moves bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from attrs import field, frozen
from yarl import URL


def _lower_keys(headers: Mapping[str, str]) -> Mapping[str, str]:
    # Always a copy (a frozen request must not share the caller's dict). Names the SDK
    # builds are lower-case already, and checking that is cheaper than lowering them.
    if type(headers) is dict and all(map(str.islower, headers)):
        return headers.copy()
    return {k.lower(): v for k, v in headers.items()}


@frozen(kw_only=True)
class Request:
    """An HTTP request as the SDK means to send it.

    ``headers`` keys are lower-cased so that policies can read and replace them without
    caring how a caller spelled them.
    """

    method: str
    url: URL
    headers: Mapping[str, str] = field(factory=dict, converter=_lower_keys)
    body: bytes | None = None

    def __repr__(self) -> str:
        # Never show header values: they hold the bearer token.
        return f"Request({self.method} {self.url.path_qs})"


@frozen(kw_only=True)
class Response:
    """An HTTP response as a transport received it, body fully read."""

    status: int
    headers: Mapping[str, str] = field(factory=dict, converter=_lower_keys)
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def __repr__(self) -> str:
        kind = self.content_type or "no content type"
        return f"Response({self.status}, {kind}, {len(self.body)} bytes)"


@runtime_checkable
class Transport(Protocol):
    """Sends one request and returns its response.

    A transport raises :class:`amo_pipelines.RequestNotSentError` when the request certainly
    did not reach the server and :class:`amo_pipelines.ResponseLostError` when it may have
    been processed; it never raises for an HTTP status.
    """

    async def send(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...
