"""The default transport: one pooled :class:`aiohttp.ClientSession`.

aiohttp exceptions are translated here, at the edge, into the SDK's two transport failures:
:class:`RequestNotSentError` when the connection never carried the request, and
:class:`ResponseLostError` when it might have.
"""

from __future__ import annotations

import asyncio

import aiohttp

from ..errors import RequestNotSentError, RequestTimeoutError, ResponseLostError
from .base import Request, Response

# No sock_read: aiohttp re-arms that timer on every chunk it reads, which cost about a
# twentieth of a localhost call; the total bound already ends a stalled read.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10)

# aiohttp >= 3.10 tells a connect timeout apart from a read timeout.
_CONNECT_TIMEOUT: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ConnectionTimeoutError", None),) if t is not None
)


def _where(request: Request) -> dict[str, str]:
    return {"method": request.method, "path": request.url.path}


class AiohttpTransport:
    """Sends requests through aiohttp.

    ``session``: borrow the caller's session (it is not closed by :meth:`aclose`). Otherwise a
    session is created on first use, inside the running event loop, and closed by
    :meth:`aclose`. Redirects are never followed: a redirect to another host must not carry
    the ``Authorization`` header there.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout | float | None = None,
        limit: int = 100,
    ) -> None:
        if isinstance(timeout, (int, float)):
            timeout = aiohttp.ClientTimeout(total=float(timeout))
        self._timeout = timeout or DEFAULT_TIMEOUT
        self._session = session
        self._owns_session = session is None
        self._limit = limit
        self._closed = False
        # Keyword arguments every request passes, built once (this runs on every call).
        self._request_options: dict[str, object] = {"allow_redirects": False}
        if timeout:  # a borrowed session keeps its own timeout unless one is given here
            self._request_options["timeout"] = timeout

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                timeout=self._timeout,
                raise_for_status=False,
                # No cookies: every request must stand on its bearer token alone.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            # aiohttp silently resends an idempotent request once when a kept-alive
            # connection drops. That hides a fact the retry policy needs: the first copy
            # may have been processed (a DELETE resent this way answers 404 although it
            # succeeded). The SDK's RetryPolicy decides retries, so switch it off where
            # aiohttp has the (private) switch; a borrowed session is left as it is.
            if hasattr(self._session, "_retry_connection"):
                setattr(self._session, "_retry_connection", False)  # noqa: B010
        return self._session

    async def send(self, request: Request) -> Response:
        if self._closed:
            raise RequestNotSentError("the transport is closed", **_where(request))
        session = self._session or self._get_session()
        unreadable = ""
        try:
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                **self._request_options,
            ) as response:
                body = await response.read()
                # The CIMultiDictProxy goes straight to Response, which copies it into a
                # plain dict with lower-cased keys (one copy, not two).
                return Response(status=response.status, headers=response.headers, body=body)
        except aiohttp.ClientConnectorError as e:
            # Raised while connecting (refused, DNS, TLS): nothing was sent.
            raise RequestNotSentError(
                f"cannot connect: {type(e).__name__}", **_where(request)
            ) from e
        except _CONNECT_TIMEOUT as e:
            raise RequestNotSentError("timed out while connecting", **_where(request)) from e
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise RequestTimeoutError(
                "timed out waiting for the response", **_where(request)
            ) from e
        except aiohttp.ClientResponseError as e:
            # A response that could not be read. Its request_info holds the request headers,
            # Authorization included, so it must not travel on as __cause__ or __context__.
            unreadable = f"{type(e).__name__}: {e.message}"
        except aiohttp.ClientError as e:
            # Disconnects, resets and broken payloads after the request went out.
            raise ResponseLostError(
                f"connection lost: {type(e).__name__}", **_where(request)
            ) from e
        raise ResponseLostError(f"unreadable response: {unreadable}", **_where(request))

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None
