"""The default transport: one pooled :class:`aiohttp.ClientSession`.

aiohttp exceptions are translated here, at the edge, into the SDK's two transport failures:
:class:`RequestNotSentError` when the connection never carried the request (its message
names the host, the port and the OS error), and :class:`ResponseLostError` when it might
have. An answer larger than ``max_response_bytes`` is not read:
:class:`ResponseTooLargeError` (a :class:`ResponseLostError`: it was answered, so it may
have been processed).
"""

from __future__ import annotations

import asyncio
import os
import ssl

import aiohttp

from ..errors import (
    InvalidInputError,
    RequestNotSentError,
    RequestTimeoutError,
    ResponseLostError,
    ResponseTooLargeError,
)
from ..model.inputs import check_seconds
from .base import Request, Response, new_response

# No sock_read: aiohttp re-arms that timer on every chunk it reads, which cost about a
# twentieth of a localhost call; the total bound already ends a stalled read.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10)

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""The largest answer read: well above the largest legal one (the pipelines list of a full
account, with every status, is about 7 MB)."""

# aiohttp >= 3.10 tells a connect timeout apart from a read timeout.
_CONNECT_TIMEOUT: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(aiohttp, "ConnectionTimeoutError", None),) if t is not None
)


def _where(request: Request) -> dict[str, str]:
    return {"method": request.method, "path": request.url.path}


def check_timeout(
    timeout: aiohttp.ClientTimeout | float | None,
) -> aiohttp.ClientTimeout | None:
    """Seconds (the total per request) or a :class:`aiohttp.ClientTimeout` whose bounds are
    each ``None`` (no bound, on purpose) or positive; ``None`` keeps the default."""
    if timeout is None:
        return None
    if isinstance(timeout, aiohttp.ClientTimeout):
        for name in ("total", "connect", "sock_read", "sock_connect"):
            value = getattr(timeout, name)
            if value is not None:
                # 0 would switch the timeout off in aiohttp, silently.
                check_seconds(value, f"timeout.{name}", positive=True)
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidInputError(
            f"must be seconds or an aiohttp.ClientTimeout, got {type(timeout).__name__}",
            field="timeout",
        )
    return aiohttp.ClientTimeout(total=check_seconds(timeout, "timeout", positive=True))


def check_max_response_bytes(value: object) -> int:
    if type(value) is not int or value < 1:
        raise InvalidInputError(
            f"must be a positive int (bytes), got {value!r}", field="max_response_bytes"
        )
    return value


def _os_reason(error: OSError) -> str:
    """What the OS said, e.g. ``Connection refused (errno 111)``."""
    code = error.errno
    if isinstance(error, ssl.SSLError) or not isinstance(code, int) or code <= 0:
        # TLS errors, DNS failures (negative codes), several failed addresses at once.
        return f"{type(error).__name__}: {error.strerror or error}"
    return f"{os.strerror(code)} (errno {code})"


def _connect_failure(error: aiohttp.ClientConnectorError) -> str:
    # host and port come from the connection key: never a header, never a token.
    return f"cannot connect to {error.host}:{error.port}: {_os_reason(error.os_error)}"


async def _read_capped(response: aiohttp.ClientResponse, request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            response.close()  # the rest is never read: drop the connection
            raise ResponseTooLargeError(
                method=request.method, path=request.url.path, status=response.status, limit=limit
            )
        chunks.append(chunk)
    return b"".join(chunks)


class AiohttpTransport:
    """Sends requests through aiohttp.

    ``session``: borrow the caller's session (it is not closed by :meth:`aclose`). Otherwise a
    session is created on first use, inside the running event loop, and closed by
    :meth:`aclose`. Redirects are never followed: a redirect to another host must not carry
    the ``Authorization`` header there.

    ``timeout``: seconds in all per request, or an :class:`aiohttp.ClientTimeout`; zero,
    negative and non-finite values are refused (aiohttp would read them as "no timeout").
    ``max_response_bytes``: the largest body read (after decompression); a larger answer
    raises :class:`ResponseTooLargeError`, from its ``Content-Length`` before reading, or
    while reading one of unknown or compressed length.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout | float | None = None,
        limit: int = 100,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        timeout = check_timeout(timeout)
        self._max_response_bytes = check_max_response_bytes(max_response_bytes)
        self._timeout = timeout or DEFAULT_TIMEOUT
        self._session = session
        self._owns_session = session is None
        self._limit = limit
        self._closed = False
        # Keyword arguments every request passes, built once (this runs on every call).
        self._request_options: dict[str, object] = {"allow_redirects": False}
        if timeout:  # a borrowed session keeps its own timeout unless one is given here
            self._request_options["timeout"] = timeout

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        """The bounds every request runs under (a borrowed session's own, unless given)."""
        given = self._request_options.get("timeout")
        if isinstance(given, aiohttp.ClientTimeout):
            return given
        return self._session.timeout if self._session is not None else self._timeout

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
                limit = self._max_response_bytes
                length = response.content_length
                if length is None or "content-encoding" in response.headers:
                    # Unknown length, or compressed (the length counts compressed bytes).
                    body = await _read_capped(response, request, limit)
                elif length > limit:
                    response.close()
                    raise ResponseTooLargeError(
                        method=request.method,
                        path=request.url.path,
                        status=response.status,
                        limit=limit,
                        size=length,
                    )
                else:  # aiohttp reads no more than the Content-Length
                    body = await response.read()
                # The CIMultiDictProxy goes straight to Response, which keeps it as it is
                # (read-only and case-insensitive already: no copy).
                return new_response(response.status, response.headers, body)
        except aiohttp.ClientConnectorError as e:
            # Raised while connecting (refused, DNS, TLS): nothing was sent.
            raise RequestNotSentError(_connect_failure(e), **_where(request)) from e
        except _CONNECT_TIMEOUT as e:
            where = f"{request.url.host}:{request.url.port}"
            raise RequestNotSentError(
                f"timed out while connecting to {where}", **_where(request)
            ) from e
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
