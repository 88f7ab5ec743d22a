"""``AmoClient``: the entry point that owns the transport and the request pipeline."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from ._version import __version__
from .auth.oauth import TOKEN_PATH, AuthProvider, LongLivedToken, UsesTokenEndpoint
from .budget.limiter import RateLimiter
from .errors import (
    ClientClosedError,
    InvalidInputError,
    RequestNotSentError,
    UnexpectedResponseError,
    WrongEventLoopError,
)
from .http.chain import (
    AuthPolicy,
    CloseGate,
    Handler,
    LoggingPolicy,
    Policy,
    chain,
    current_attempt,
)
from .http.circuit import CircuitBreaker
from .http.clock import SYSTEM_CLOCK, Clock
from .http.problem import problem_of
from .http.retry import RetryPolicy
from .http.throttle import ThrottlePolicy
from .http.urls import account_url, check_path
from .model import _json
from .model.constants import RECOMMENDED_BATCH_SIZE
from .model.converter import converter
from .model.inputs import check_seconds
from .resources.batch import Batches, BatchStopPolicy, OnAmbiguous, encode_json
from .resources.pipelines import PipelinesAPI
from .resources.statuses import StatusesAPI
from .transport.aiohttp import DEFAULT_MAX_RESPONSE_BYTES, AiohttpTransport
from .transport.base import Request, Response, Transport, sealed_headers

USER_AGENT = f"amo_pipelines/{__version__}"
# Sealed once: every request takes them as they are, without a copy.
_HEADERS = sealed_headers(
    {
        "accept": "application/hal+json, application/problem+json, application/json",
        "user-agent": USER_AGENT,
    }
)
_JSON_HEADERS = sealed_headers({**_HEADERS, "content-type": "application/json"})
T = TypeVar("T")


class _TokenEndpoint:
    """The client's route to its account's ``/oauth2/access_token`` for the auth provider.

    It goes through the client's transport and the DEBUG request log (never with bodies),
    but not through the retry, auth and throttle policies (see :mod:`amo_pipelines.auth.oauth`).
    Only a request that certainly was not sent is tried again, once, after the retry
    policy's backoff: resending a refresh that may have been processed would present a
    spent refresh token. (A request waiting for the token has its own retries on top.)
    """

    ATTEMPTS = 2

    def __init__(self, client: AmoClient) -> None:
        self.origin = client.base_url
        self.url = client.base_url.with_path(TOKEN_PATH)
        self._send: Handler = chain([LoggingPolicy()], client._transport)
        self._retry = client.retry
        self._clock = client.clock
        self._gate = client._gate
        self._bind_loop = client._bind_loop

    def __repr__(self) -> str:
        return f"TokenEndpoint({str(self.url)!r})"

    @property
    def closing(self) -> bool:
        """The client is closing: a provider shared with other clients uses theirs."""
        return self._gate.closed

    async def post(self, payload: Mapping[str, str]) -> Response:
        self._bind_loop()
        request = Request(
            method="POST",
            url=self.url,
            headers={
                "accept": "application/json",
                "content-type": "application/json",
                "user-agent": USER_AGENT,
            },
            body=_json.dumps(dict(payload)),
        )
        attempt = 1
        while True:
            marker = current_attempt.set(attempt)
            try:
                return await self._send(request)
            except RequestNotSentError as e:
                # Not sent: a closing client does not try again (nor wait to).
                if attempt >= min(self.ATTEMPTS, self._retry.max_attempts) or self._gate.closed:
                    raise
                failure = e
            finally:
                current_attempt.reset(marker)
            await self._gate.sleep(self._clock, self._retry.backoff_for(attempt))
            if self._gate.closed:
                raise failure
            attempt += 1


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
    rate limiter and circuit breaker (a client on a :class:`~amo_pipelines.http.clock.FakeClock`
    gets ones on that clock, shared with the clients of the same loop and clock, never the
    system-clock ones).

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
        timeout: aiohttp.ClientTimeout | float | None = None,
        max_response_bytes: int | None = None,
        log_bodies: bool = False,
        rate_limiter: RateLimiter | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int = RECOMMENDED_BATCH_SIZE,
        on_ambiguous: OnAmbiguous = "reconcile",
        reconcile_wait: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.base_url = account_url(base_url=base_url, subdomain=subdomain, domain=domain)
        if (access_token is None) == (auth is None):
            raise InvalidInputError("give either access_token or auth", field="access_token")
        if auth is not None and not isinstance(auth, AuthProvider):
            raise InvalidInputError(
                "must be an AuthProvider, such as OAuth2 or LongLivedToken", field="auth"
            )
        self._auth: AuthProvider = auth or LongLivedToken(access_token)  # type: ignore[arg-type]
        if transport is not None and (
            session is not None or timeout is not None or max_response_bytes is not None
        ):
            raise InvalidInputError(
                "session, timeout and max_response_bytes configure the default transport; "
                "configure your own transport instead",
                field="transport",
            )
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(
            session=session,
            timeout=timeout,
            max_response_bytes=(
                DEFAULT_MAX_RESPONSE_BYTES if max_response_bytes is None else max_response_bytes
            ),
        )
        self.clock = clock
        self.retry = retry or RetryPolicy(clock=clock)
        self._gate = CloseGate()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the one that first used it
        auth_policy = AuthPolicy(self._auth, self.base_url)
        self.throttle = ThrottlePolicy(
            # The account's budget is keyed by its origin's host (and port, where one is
            # given: two emulators on 127.0.0.1 are two accounts).
            account=(
                self.base_url.host or ""
                if self.base_url.explicit_port is None
                else f"{self.base_url.host}:{self.base_url.explicit_port}"
            ),
            integration=self._auth.fingerprint,
            limiter=rate_limiter,
            breaker=circuit_breaker,
            # Without a limiter or breaker of its own, a client on another clock (a
            # FakeClock) gets defaults driven by that clock, not the shared ones.
            clock=clock,
            gate=self._gate,
            check=auth_policy.check,
        )
        self.pipelines = PipelinesAPI(self)
        self.statuses = StatusesAPI(self)
        self._batches = Batches(
            batch_size=batch_size,
            on_ambiguous=on_ambiguous,
            reconcile_wait=_reconcile_wait(reconcile_wait, self._transport),
            max_rounds=self.retry.max_attempts,
            backoff=self.retry.backoff_for,
            clock=_ClosingClock(clock, self._gate),
            list_pipelines=self.pipelines.list,
        )
        self._policies: list[Policy] = [
            _Gated(self.retry, self._gate),
            # Outside the throttle: waiting for a token refresh holds no rate-limit slot.
            auth_policy,
            self.throttle,
            BatchStopPolicy(),
            LoggingPolicy(log_bodies=log_bodies),
        ]
        self._handler = chain(self._policies, self._transport)
        self._token_endpoint: _TokenEndpoint | None = None
        if isinstance(self._auth, UsesTokenEndpoint):
            self._token_endpoint = _TokenEndpoint(self)
            self._auth.attach(self._token_endpoint)
        # The same few URLs come up again and again: reusing the URL object skips
        # rebuilding it and keeps the values yarl caches on it (host, origin, path and
        # query strings) warm for aiohttp.
        self._url = functools.lru_cache(maxsize=1024)(self._build_url)

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
        return self.throttle.limiter

    @property
    def circuit_breaker(self) -> CircuitBreaker:
        return self.throttle.breaker

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
        self.throttle.close()  # fails this client's calls queued at the limiter
        await self._gate.drained()
        if self._token_endpoint is not None and isinstance(self._auth, UsesTokenEndpoint):
            # A refresh in flight lands (and is saved) before the transport goes away.
            await self._auth.detach(self._token_endpoint)
        if self._owns_transport:
            await self._transport.aclose()

    def _bind_loop(self) -> None:
        """Tie the client to the event loop that first uses it (its transport's
        connections, its limiter's queues and its refreshes live there)."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise WrongEventLoopError(
                "this AmoClient belongs to the event loop that first used it (its "
                "connections and rate-limit queues live there); create one client per event "
                "loop, e.g. inside each asyncio.run(). Nothing was sent."
            )

    def _build_url(self, path: str, query: Mapping[str, str] | Sequence[tuple[str, str]]) -> URL:
        url = self.base_url.with_path(check_path(path))
        return url.with_query(query) if query else url

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
        """Send one request through the pipeline; return a 2xx response or raise
        the :class:`ApiError` subclass for the status.

        The body is ``json`` encoded (a value that cannot be is :class:`InvalidInputError`,
        before anything is sent) or ``body``, JSON already. ``idempotent=False`` marks a
        request that must not be resent after an ambiguous failure even though its method
        usually may be (see :mod:`amo_pipelines.http.retry`).
        """
        if self._closed:
            raise ClientClosedError("this AmoClient is closed")
        if asyncio.get_running_loop() is not self._loop:
            self._bind_loop()
        headers = _HEADERS
        if json is not None:
            body = encode_json(json, "json")
        if body is not None:
            headers = _JSON_HEADERS
        try:
            url = self._url(path, tuple(query.items()) if query else ())
        except TypeError:  # an unhashable query value (a list of values): build it afresh
            url = self._build_url(path, query or ())
        request = Request(method=method, url=url, headers=headers, body=body, idempotent=idempotent)
        response = await self._handler(request)
        if 200 <= response.status < 300:
            return response
        raise problem_of(response).error(method, request.url.path)

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
        allow_empty: bool = False,
    ) -> T | None:
        """:meth:`request`, then parse the body into ``model``.

        An empty answer (204 or no body) is ``None`` where ``allow_empty``. Anything else
        that is not ``model`` in JSON (a proxy's HTML page, a body of the wrong shape) is
        :class:`UnexpectedResponseError`, never a stray parsing exception.
        """
        response = await self.request(
            method, path, query=query, json=json, body=body, idempotent=idempotent
        )
        if response.status == 204 or not response.body:
            if allow_empty:
                return None
            raise _unexpected(response, method, path, "expected a JSON body, got none")
        try:
            data = _json.loads(response.body)
        except (ValueError, UnicodeDecodeError) as e:
            kind = response.content_type or "no content type"
            raise _unexpected(response, method, path, f"expected JSON, got {kind}") from e
        try:
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            return converter.structure(data, model)
        except Exception as e:
            detail = f"the body is not a {model.__name__}: {type(e).__name__}"
            raise _unexpected(response, method, path, detail) from e


def _reconcile_wait(value: object, transport: Transport) -> float:
    """The processing horizon batch creates wait out before resending (see ``_batch``)."""
    if value is None:
        total = getattr(getattr(transport, "timeout", None), "total", None)
        return 2.0 * total if isinstance(total, (int, float)) and total > 0 else 120.0
    return check_seconds(value, "reconcile_wait")


class _ClosingClock:
    """The client's clock as its batch creates wait on it: a wait ends when the client
    closes (their next request then fails with :class:`ClientClosedError`)."""

    __slots__ = ("_clock", "_gate", "now")

    def __init__(self, clock: Clock, gate: CloseGate) -> None:
        self._clock = clock
        self._gate = gate
        self.now = clock.now

    async def sleep(self, seconds: float) -> None:
        await self._gate.sleep(self._clock, seconds)


class _Gated:
    """A retry policy as one client runs it: bound to that client's :class:`CloseGate`
    (the policy itself may be shared between clients)."""

    __slots__ = ("send",)

    def __init__(self, retry: RetryPolicy, gate: CloseGate) -> None:
        self.send = functools.partial(retry.send, gate=gate)


def _unexpected(response: Response, method: str, path: str, detail: str) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        status=response.status,
        method=method,
        path=path,
        detail=detail,
        body=response.body,
        content_type=response.content_type,
    )
