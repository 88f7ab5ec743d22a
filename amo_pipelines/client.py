"""``AmoClient``: the entry point; it owns the transport and the request chain built from
its :class:`~amo_pipelines.http.config.ClientConfig` (see :mod:`amo_pipelines.http.build`)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from threading import get_ident
from types import TracebackType
from typing import Any, TypeVar, cast

import aiohttp
from yarl import URL

from .auth.providers import AuthProvider, LongLivedToken, UsesTokenEndpoint
from .budget.limiter import RateLimiter
from .errors import (
    ClientClosedError,
    InvalidInputError,
    UnexpectedResponseError,
    WrongEventLoopError,
)
from .http.build import (
    ClosingClock,
    TokenRoute,
    api_chain,
    client_transport,
    reconcile_horizon,
    request_headers,
)
from .http.chain import CloseGate, Policy
from .http.circuit import CircuitBreaker
from .http.clock import Clock
from .http.config import CONFIG_FIELDS, ClientConfig, configure
from .http.problem import problem_of
from .http.retry import RetryPolicy
from .http.urls import account_url, check_path
from .model import _json
from .model._gcpause import PAUSE_ABOVE, parse_paused
from .model.converter import converter
from .model.models import Pipeline
from .resources.batch import Batches, BatchStopPolicy, OnAmbiguous, encode_json
from .resources.pipelines import PipelinesAPI
from .resources.statuses import StatusesAPI
from .transport.base import Request, Response, Transport, new_request

T = TypeVar("T")


class AmoClient:
    """An async client for one amoCRM / Kommo account.

    Use it as ``async with AmoClient(...) as amo:`` or call :meth:`aclose` yourself.
    Exactly one of ``base_url`` / ``subdomain`` (with ``domain``) names the account, and
    exactly one of ``access_token`` / ``auth`` (e.g. :class:`~amo_pipelines.OAuth2`)
    authenticates. The token goes only to the account's origin; redirects are not followed.
    ``base_url`` must be https (http only to a loopback host, such as the emulator); for a
    host that came from outside (a webhook, an OAuth redirect's ``referer``) use
    :func:`~amo_pipelines.parse_account_host`, which admits amoCRM / Kommo hosts only.
    ``session`` borrows your :class:`aiohttp.ClientSession` (left open on close);
    ``timeout`` (seconds, or an :class:`aiohttp.ClientTimeout`; never zero or negative) and
    ``max_response_bytes`` (default 32 MiB; a larger answer raises
    :class:`~amo_pipelines.ResponseTooLargeError`) configure the default transport;
    ``transport`` replaces aiohttp altogether (e.g. :class:`amo_pipelines.testing.MockTransport`).

    Throughput and safety: ``rate_limiter`` and ``circuit_breaker`` default to instances
    shared by every client of the running event loop, so clients of one account share its
    budget; pass your own to scope them differently. ``retry`` decides what is retried
    (see :mod:`amo_pipelines.http.retry`); ``batch_size`` (1 to 250), ``on_ambiguous``
    (``"reconcile"`` or ``"raise"``) and ``reconcile_wait`` (seconds a create waits after an
    ambiguous failure before it sends again what the server does not show; by default
    twice the transport's total timeout, 120 s where it has none) shape batch creates.
    ``clock`` drives every wait: retries, batch pauses and, unless you pass your own, the
    rate limiter and circuit breaker (a client on a :class:`~amo_pipelines.FakeClock`
    gets ones on that clock, shared with the clients of the same loop and clock, never the
    system-clock ones). ``user_agent`` is sent with every request.

    These keyword arguments fill a :class:`~amo_pipelines.ClientConfig`, validated once;
    ``config=`` passes a whole one instead (the keyword arguments given as well replace
    its fields). ``amo.config`` is the one in use.

    ``policies``: your own :class:`~amo_pipelines.Policy` objects (``async def
    send(request, next)``), in order, outermost first. They sit inside the rate limiter:
    each runs once per attempt that goes on the wire (retries and the resend after a 401
    included), after the attempt got its rate-limit slot and its ``Authorization`` header,
    and sees the :class:`~amo_pipelines.Response` as the server answered (any status, before
    it becomes an exception) or the transport's exception. A policy that raises
    :class:`~amo_pipelines.RequestNotSentError` without calling ``next`` gives the slot back.
    They never see the OAuth token endpoint's traffic (its bodies are credentials).

    A client belongs to the event loop that first uses it; from another loop (a second
    ``asyncio.run()``) it raises :class:`~amo_pipelines.errors.WrongEventLoopError` and
    sends nothing. :meth:`aclose` fails the calls still waiting with
    :class:`ClientClosedError` and gives their rate-limit slots back.
    """

    def __init__(
        self,
        *,
        base_url: str | URL | None = None,
        subdomain: str | None = None,
        domain: str = "amocrm.ru",
        access_token: str | None = None,
        auth: AuthProvider | None = None,
        transport: Transport | None = None,
        session: aiohttp.ClientSession | None = None,
        config: ClientConfig | None = None,
        timeout: aiohttp.ClientTimeout | float | None = None,
        max_response_bytes: int | None = None,
        log_bodies: bool | None = None,
        rate_limiter: RateLimiter | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int | None = None,
        on_ambiguous: OnAmbiguous | None = None,
        reconcile_wait: float | None = None,
        clock: Clock | None = None,
        user_agent: str | None = None,
        policies: Sequence[Policy] | None = None,
    ) -> None:
        arguments = locals()
        given = {name: arguments[name] for name in CONFIG_FIELDS}
        self.config = config = configure(config, given)
        self.base_url = account_url(base_url=base_url, subdomain=subdomain, domain=domain)
        self._auth = _provider(access_token, auth)
        self._owns_transport = transport is None
        self._transport = client_transport(config, transport, session)
        self._gate = CloseGate()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the one that first used it
        api = api_chain(
            config,
            self._transport,
            origin=self.base_url,
            auth=self._auth,
            gate=self._gate,
            inner=(BatchStopPolicy(),),
        )
        self._handler, self._policies, self._throttle = api.handler, api.policies, api.throttle
        self._headers, self._json_headers = map(api.presign, request_headers(config))
        self._batches = batches = Batches(
            batch_size=config.batch_size,
            on_ambiguous=config.on_ambiguous,
            reconcile_wait=reconcile_horizon(config.reconcile_wait, self._transport),
            max_rounds=config.retry.max_attempts,
            backoff=config.retry.backoff_for,
            clock=ClosingClock(config.clock, self._gate),
            list_pipelines=self._list_pipelines,
        )
        self.pipelines = PipelinesAPI(self, batches)
        self.statuses = StatusesAPI(self, batches)
        self._token_route: TokenRoute | None = None
        if isinstance(self._auth, UsesTokenEndpoint):
            self._token_route = TokenRoute(
                config,
                self._transport,
                origin=self.base_url,
                gate=self._gate,
                bind_loop=self._bind_loop,
            )
            self._auth.attach(self._token_route)
        # The same few URLs come up again and again: reusing the URL object skips
        # rebuilding it and keeps the values yarl caches on it (host, origin, path and
        # query strings) warm for aiohttp. (A dict: half the cost of an lru_cache call.)
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], URL] = {}

    @property
    def clock(self) -> Clock:
        """What every wait of this client runs on (``config.clock``)."""
        return self.config.clock

    @property
    def batch_size(self) -> int:
        """Items per create request unless a call says otherwise (1 to 250)."""
        return self._batches.batch_size

    @property
    def on_ambiguous(self) -> OnAmbiguous:
        """What a create does after an ambiguous failure: ``"reconcile"`` or ``"raise"``."""
        return self._batches.on_ambiguous

    @property
    def rate_limiter(self) -> RateLimiter:
        """The limiter this client's requests take their slots from."""
        return self._throttle.limiter

    @property
    def circuit_breaker(self) -> CircuitBreaker:
        """The breaker that stops this client's requests once the account is blocked."""
        return self._throttle.breaker

    def __repr__(self) -> str:
        return f"AmoClient({str(self.base_url)!r})"

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> AmoClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client; safe to call twice.

        From the moment it is called nothing more is sent. Calls still waiting (for a
        rate-limit slot, a retry's backoff or a token refresh) fail at once with
        :class:`ClientClosedError`, and the slots they held go back to the rate limiter,
        so other clients of the account are not held up. Requests already on the wire get
        their answers, and a token refresh in flight lands and is saved; then the
        transport is closed if the client created it.
        """
        if self._closed:
            return
        self._closed = True
        self._gate.close()  # wakes backoffs; the throttle lets nothing more through
        self._throttle.close()  # fails this client's calls queued at the limiter
        await self._gate.drained()
        if self._token_route is not None and isinstance(self._auth, UsesTokenEndpoint):
            # A refresh in flight lands (and is saved) before the transport goes away.
            await self._auth.detach(self._token_route)
        if self._owns_transport:
            await self._transport.aclose()

    def _bind_loop(self) -> None:
        """Tie the client to the event loop that first uses it (its transport's
        connections, its limiter's queues and its refreshes live there)."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = self._throttle.loop = loop
        elif loop is not self._loop:
            raise WrongEventLoopError(
                "this AmoClient belongs to the event loop that first used it (its "
                "connections and rate-limit queues live there); create one client per event "
                "loop, e.g. inside each asyncio.run(). Nothing was sent."
            )

    def _build_url(self, path: str, query: Mapping[str, str] | Sequence[tuple[str, str]]) -> URL:
        url = self.base_url.with_path(check_path(path))
        return url.with_query(query) if query else url

    def _url(self, path: str, query: tuple[tuple[str, str], ...]) -> URL:
        """``_build_url``, kept for the next request to the same path and query."""
        url = self._urls.get((path, query))
        if url is None:
            url = self._build_url(path, query)
            if len(self._urls) >= 1024:
                self._urls.clear()
            self._urls[path, query] = url
        return url

    async def _list_pipelines(self) -> list[Pipeline]:
        return await self.pipelines.list()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        json: Any = None,
        body: bytes | None = None,
        idempotent: bool | None = None,
    ) -> Response:
        """Send one request through the request chain; return a 2xx response or raise
        the :class:`ApiError` subclass for the status.

        The body is ``json`` encoded (a value that cannot be is :class:`InvalidInputError`,
        before anything is sent) or ``body``, JSON already. ``idempotent=False`` marks a
        request that must not be resent after an ambiguous failure even though its method
        usually may be (see :mod:`amo_pipelines.http.retry`).
        """
        request = self._prepare(method, path, query, json, body, idempotent)
        return _answered(await self._handler(request), request)

    def _prepare(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        json: Any = None,
        body: bytes | None = None,
        idempotent: bool | None = None,
    ) -> Request:
        """The request :meth:`request` sends (its checks before anything is sent)."""
        if self._closed:
            raise ClientClosedError("this AmoClient is closed")
        # On our loop, running in this thread: then no other loop runs here. (asyncio's
        # loops say which thread runs them; get_running_loop() makes a getpid() system
        # call on Python 3.10 and 3.11.) Anything else takes the full check.
        if getattr(self._loop, "_thread_id", None) != get_ident():
            self._bind_loop()
        headers = self._headers
        if json is not None:
            body = encode_json(json, "json")
        if body is not None:
            headers = self._json_headers
        key = (path, tuple(query.items()) if query else ())
        try:
            url = self._urls.get(key) or self._url(*key)
        except TypeError:  # an unhashable query value (a list of values): build it afresh
            url = self._build_url(path, query or ())
        return new_request(method, url, headers, body, idempotent)

    async def fetch(
        self,
        method: str,
        path: str,
        model: type[T],
        *,
        query: Mapping[str, str] | None = None,
        json: Any = None,
        body: bytes | None = None,
        idempotent: bool | None = None,
    ) -> T:
        """:meth:`request`, then parse the body into ``model``.

        Anything that is not ``model`` in JSON (no body, a proxy's HTML page, a body of the
        wrong shape) is :class:`UnexpectedResponseError`, never a stray parsing exception.
        """
        # request() without a frame of its own: it is on every call
        request = self._prepare(method, path, query, json, body, idempotent)
        response = _answered(await self._handler(request), request)
        if response.status == 204 or not response.body:
            raise _unexpected(response, method, path, "expected a JSON body, got none")
        return _parse(response, method, path, model)

    async def fetch_optional(
        self,
        method: str,
        path: str,
        model: type[T],
        *,
        query: Mapping[str, str] | None = None,
    ) -> T | None:
        """:meth:`fetch` for reads the API answers with an empty 204 when there is nothing
        (an account without pipelines, an unknown id): ``None`` then."""
        request = self._prepare(method, path, query)  # (as in fetch)
        response = _answered(await self._handler(request), request)
        if response.status == 204 or not response.body:
            return None
        return _parse(response, method, path, model)


def _answered(response: Response, request: Request) -> Response:
    """A 2xx ``response`` to ``request``; else the :class:`ApiError` for its status."""
    if 200 <= response.status < 300:
        return response
    raise problem_of(response).error(request.method, request.url.path)


_HOOKS: dict[type[Any], Callable[[Any, Any], Any]] = {}


def _parse(response: Response, method: str, path: str, model: type[T]) -> T:
    if len(response.body) < PAUSE_ABOVE:
        return _parse_now(response, method, path, model)
    return parse_paused(functools.partial(_parse_now, response, method, path, model))


def _parse_now(response: Response, method: str, path: str, model: type[T]) -> T:
    try:
        data = _json.loads(response.body)
    except (ValueError, UnicodeDecodeError) as e:
        kind = response.content_type or "no content type"
        raise _unexpected(response, method, path, f"expected JSON, got {kind}") from e
    try:
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        hook = _HOOKS.get(model)
        if hook is None:  # cattrs' dispatch looked up once per model, not on every answer
            hook = _HOOKS.setdefault(model, converter.get_structure_hook(model))
        return cast("T", hook(data, model))
    except Exception as e:
        detail = f"the body is not a {model.__name__}: {type(e).__name__}"
        raise _unexpected(response, method, path, detail) from e


def _provider(access_token: str | None, auth: AuthProvider | None) -> AuthProvider:
    if (access_token is None) == (auth is None):
        raise InvalidInputError("give either access_token or auth", field="access_token")
    if auth is None:
        return LongLivedToken(access_token)  # type: ignore[arg-type]
    if not isinstance(auth, AuthProvider):
        raise InvalidInputError(
            "must be an AuthProvider, such as OAuth2 or LongLivedToken", field="auth"
        )
    return auth


def _unexpected(response: Response, method: str, path: str, detail: str) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        status=response.status,
        method=method,
        path=path,
        detail=detail,
        body=response.body,
        content_type=response.content_type,
    )
