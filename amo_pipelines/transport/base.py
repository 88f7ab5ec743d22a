"""The transport contract: one request in, one response out.

Everything above the transport (auth, rate limiting, retries, error mapping) works on these
two plain value objects, so a transport is easy to replace or fake: it only moves bytes.

Headers are read with lower-case names. A :class:`multidict.CIMultiDictProxy` (what
aiohttp gives for a response, and what the SDK builds its own header sets as) is
read-only and case-insensitive already, so it is kept as it is; any other mapping is
copied with its names lower-cased. multidict comes with aiohttp and yarl; it is named as
a dependency because this module imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from attrs import field, frozen
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL


def sealed_headers(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    """A read-only, case-insensitive copy: requests and responses take it without copying."""
    return CIMultiDictProxy(CIMultiDict(headers))


def _lower_keys(headers: Mapping[str, str]) -> Mapping[str, str]:
    if type(headers) is CIMultiDictProxy:
        return headers  # nobody can change it through a proxy: no copy needed
    # Otherwise always a copy (a frozen request must not share the caller's dict). Names
    # the SDK builds are lower-case already, and checking that is cheaper than lowering.
    if type(headers) is dict and all(map(str.islower, headers)):
        return headers.copy()
    return {k.lower(): v for k, v in headers.items()}


@frozen(kw_only=True)
class Request:
    """An HTTP request as the SDK means to send it.

    ``headers`` are looked up by lower-case name (see the module docstring), so policies
    can read and replace them without caring how a caller spelled them.
    """

    method: str
    url: URL
    headers: Mapping[str, str] = field(factory=dict, converter=_lower_keys)
    body: bytes | None = None
    idempotent: bool | None = None
    """Whether a second copy does no harm; ``None``: as its method says (see ``retry``)."""

    def __repr__(self) -> str:
        # Never show header values: they hold the bearer token.
        return f"Request({self.method} {self.url.path_qs})"


@frozen(kw_only=True)
class Response:
    """An HTTP response as a transport received it, body fully read."""

    status: int
    headers: Mapping[str, str] = field(factory=dict, converter=_lower_keys)
    body: bytes = b""
    _problem: object = field(default=None, init=False, eq=False, repr=False)
    """An error answer as read once (``amo_pipelines.http.problem.problem_of``): a cache
    derived from the fields above, set on first use, never part of the value."""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def __repr__(self) -> str:
        kind = self.content_type or "no content type"
        return f"Response({self.status}, {kind}, {len(self.body)} bytes)"


_new = object.__new__


def _setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[object, object], None], ...]:
    """The slots' own setters: frozen classes refuse ``setattr``, these do not."""
    return tuple(cls.__dict__[name].__set__ for name in names)


_REQUEST = _setters(Request, ("method", "url", "headers", "body", "idempotent"))
_RESPONSE = _setters(Response, ("status", "headers", "body", "_problem"))


def new_request(
    method: str,
    url: URL,
    headers: Mapping[str, str],
    body: bytes | None = None,
    idempotent: bool | None = None,
) -> Request:
    """``Request(...)`` for the SDK's own hot path: the same value in a third of the
    time, without the attrs ``__init__`` (its frozen ``setattr`` per field) where
    ``headers`` need no converting (a sealed set); otherwise the class itself."""
    if type(headers) is not CIMultiDictProxy:
        return Request(method=method, url=url, headers=headers, body=body, idempotent=idempotent)
    set_method, set_url, set_headers, set_body, set_idempotent = _REQUEST
    request: Request = _new(Request)
    set_method(request, method)
    set_url(request, url)
    set_headers(request, headers)
    set_body(request, body)
    set_idempotent(request, idempotent)
    return request


def new_response(status: int, headers: Mapping[str, str], body: bytes) -> Response:
    """``Response(...)`` for a transport, as :func:`new_request` is for requests."""
    if type(headers) is not CIMultiDictProxy:
        return Response(status=status, headers=headers, body=body)
    set_status, set_headers, set_body, set_problem = _RESPONSE
    response: Response = _new(Response)
    set_status(response, status)
    set_headers(response, headers)
    set_body(response, body)
    set_problem(response, None)
    return response


@runtime_checkable
class Transport(Protocol):
    """Sends one request and returns its response.

    A transport raises :class:`amo_pipelines.RequestNotSentError` when the request certainly
    did not reach the server and :class:`amo_pipelines.ResponseLostError` when it may have
    been processed; it never raises for an HTTP status.
    """

    async def send(self, request: Request) -> Response: ...

    async def aclose(self) -> None: ...
