"""The one place a client's request chains are built, from its :class:`ClientConfig`.

A client has two chains over the same transport, both built by :func:`build_chain`:

* the API chain: retry (outermost; bound to the client's :class:`CloseGate`, waiting on
  the config's clock), auth, the throttle (rate-limit grant, circuit breaker, 429 pause),
  the batch stop check, the user's ``policies``, the DEBUG request log, the transport;
* the token chain (:class:`TokenRoute`, for an OAuth provider): a retry of what certainly
  was not sent (:class:`~amo_pipelines.http.retry.NotSentOnly`), the DEBUG request log
  (never with bodies there), the transport. No auth, no rate limiter (see
  :mod:`amo_pipelines.auth.oauth`), and none of the user's policies: its bodies are
  credentials.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial

import aiohttp
from yarl import URL

from ..auth.providers import TOKEN_PATH, AuthProvider
from ..budget.limiter import Hold
from ..errors import AmoError, InvalidInputError
from ..model import _json
from ..transport.aiohttp import DEFAULT_MAX_RESPONSE_BYTES, AiohttpTransport
from ..transport.base import Request, Response, Transport, sealed_headers
from .chain import AuthPolicy, CloseGate, Handler, LoggingPolicy, Policy, chain, current_attempt
from .clock import Clock
from .config import ClientConfig
from .retry import NotSentOnly, RetryPolicy
from .throttle import ThrottlePolicy


def build_chain(
    config: ClientConfig,
    transport: Transport,
    *,
    gate: CloseGate,
    retry: RetryPolicy,
    guards: Sequence[Policy] = (),
) -> Handler:
    """``retry`` (bound to ``gate``, waiting on ``config.clock``), then ``guards`` in
    order, then the DEBUG request log, then ``transport``."""
    return chain(chain_policies(config, gate=gate, retry=retry, guards=guards), transport)


def chain_policies(
    config: ClientConfig, *, gate: CloseGate, retry: RetryPolicy, guards: Sequence[Policy] = ()
) -> list[Policy]:
    """The policies :func:`build_chain` composes, outermost first."""
    return [_Gated(retry, gate, config.clock), *guards, LoggingPolicy(log_bodies=config.log_bodies)]


class ApiChain:
    """A client's API chain, as :func:`api_chain` built it."""

    __slots__ = ("handler", "policies", "presign", "throttle")

    def __init__(
        self,
        handler: Handler,
        policies: list[Policy],
        throttle: ThrottlePolicy,
        presign: Callable[[Mapping[str, str]], Mapping[str, str]],
    ) -> None:
        self.handler = handler
        self.policies = policies
        """Outermost first (the overhead benchmark takes the chain apart by them)."""
        self.throttle = throttle
        self.presign = presign
        """The client's header sets as its requests are best built with
        (:meth:`AuthPolicy.presign`)."""


def api_chain(
    config: ClientConfig,
    transport: Transport,
    *,
    origin: URL,
    auth: AuthProvider,
    gate: CloseGate,
    inner: Sequence[Policy] = (),
) -> ApiChain:
    """The API chain (see the module docstring); ``inner``: the client's own guards just
    inside the throttle, before the user's policies."""
    auth_policy = AuthPolicy(auth, origin)
    throttle = ThrottlePolicy(
        account=account_key(origin),
        integration=auth.fingerprint,
        limiter=config.rate_limiter,
        breaker=config.circuit_breaker,
        # Without a limiter or breaker of its own, a client on another clock (a
        # FakeClock) gets defaults driven by that clock, not the shared ones.
        clock=config.clock,
        gate=gate,
        check=auth_policy.check,
    )
    # Auth outside the throttle: waiting for a token refresh holds no rate-limit slot.
    guards: tuple[Policy, ...] = (auth_policy, throttle, *inner, *config.policies)
    policies = chain_policies(config, gate=gate, retry=config.retry, guards=guards)
    handler = chain(policies, transport)
    if type(config.retry).send is RetryPolicy.send:  # (a send of its own must see every try)
        handler = FirstAttempt(
            partial(config.retry.send, gate=gate, clock=config.clock),
            auth_policy,
            throttle,
            whole=handler,
            after_retry=chain(policies[1:], transport),
            after_throttle=chain(policies[3:], transport),
        )
    return ApiChain(handler, policies, throttle, auth_policy.presign)


class FirstAttempt:
    """A client's API chain with its common case in one coroutine.

    :func:`chain` gives each policy that waits (retry, throttle) a coroutine of its own,
    on every request. Most requests wait for nothing: a fixed token signs them, the limiter
    has a place free, the first attempt is answered with a 2xx. This runs that case in one
    frame, with the policies' own steps (:meth:`AuthPolicy.signed_now`; the throttle's
    ``grant``, ``answered`` and ``failed``), and hands the rest on to them: a request the
    auth policy must wait for goes down the whole chain, and any outcome but a 2xx (an
    error, a refusal) goes to the retry policy as its first attempt's, which sends any
    further attempt down the chain after it. No rule is written twice.
    """

    __slots__ = ("_after_retry", "_after_throttle", "_auth", "_retry", "_throttle", "_whole")

    def __init__(
        self,
        retry: Callable[..., Awaitable[Response]],
        auth: AuthPolicy,
        throttle: ThrottlePolicy,
        *,
        whole: Handler,
        after_retry: Handler,
        after_throttle: Handler,
    ) -> None:
        """``retry``: the retry policy's ``send`` bound to the client's gate and clock;
        ``whole``, ``after_retry``, ``after_throttle``: the chain from the retry policy, the
        auth policy and the policies inside the throttle on."""
        self._retry = retry
        self._auth = auth
        self._throttle = throttle
        self._whole = whole
        self._after_retry = after_retry
        self._after_throttle = after_throttle

    async def __call__(self, request: Request) -> Response:
        signed = self._auth.signed_now(request)
        if signed is None or current_attempt.get() != 1:
            return await self._whole(request)
        throttle = self._throttle
        try:
            hold = throttle.grant(signed)
            if not isinstance(hold, Hold):
                hold = await hold
        except AmoError as refused:  # not sent: the retry policy judges it as ever
            return await self._retry(request, self._after_retry, first=refused)
        try:
            response = await self._after_throttle(signed)
        except BaseException as exc:
            await throttle.failed(hold, exc)
            if isinstance(exc, AmoError):
                return await self._retry(request, self._after_retry, first=exc)
            raise
        following = throttle.answered(signed, hold, response)
        if following is not None:
            await following
        if response.status < 300:
            return response
        return await self._retry(request, self._after_retry, first=response)


def request_headers(config: ClientConfig) -> tuple[Mapping[str, str], Mapping[str, str]]:
    """The header sets API requests carry, without a body and with a JSON one: sealed
    once, so every request takes them as they are, without a copy."""
    plain = {
        "accept": "application/hal+json, application/problem+json, application/json",
        "user-agent": config.user_agent,
    }
    return sealed_headers(plain), sealed_headers({**plain, "content-type": "application/json"})


def account_key(url: URL) -> str:
    """The key of an account's rate budget and circuit: its origin's host, and port where
    one is given (two emulators on 127.0.0.1 are two accounts)."""
    host = url.host or ""
    return host if url.explicit_port is None else f"{host}:{url.explicit_port}"


class _Gated:
    """A retry policy as one client runs it: bound to that client's :class:`CloseGate`
    and clock (the policy itself may be shared between clients)."""

    __slots__ = ("send",)

    def __init__(self, retry: RetryPolicy, gate: CloseGate, clock: Clock) -> None:
        self.send = partial(retry.send, gate=gate, clock=clock)


class ClosingClock:
    """A client's clock as its batch creates wait on it: a wait ends when the client
    closes (their next request then fails with :class:`ClientClosedError`)."""

    __slots__ = ("_clock", "_gate", "now")

    def __init__(self, clock: Clock, gate: CloseGate) -> None:
        self._clock = clock
        self._gate = gate
        self.now = clock.now

    async def sleep(self, seconds: float) -> None:
        await self._gate.sleep(self._clock, seconds)


class TokenRoute:
    """A client's route to its account's ``/oauth2/access_token``, as it offers it to its
    auth provider (:class:`~amo_pipelines.auth.providers.TokenEndpoint`): the token chain
    (see the module docstring) over the client's transport."""

    def __init__(
        self,
        config: ClientConfig,
        transport: Transport,
        origin: URL,
        gate: CloseGate,
        bind_loop: Callable[[], None],
    ) -> None:
        """``bind_loop``: the client's check that it runs on its own event loop."""
        self.origin = origin
        self.url = origin.with_path(TOKEN_PATH)
        self._send = build_chain(config, transport, gate=gate, retry=NotSentOnly(config.retry))
        self._gate = gate
        self._bind_loop = bind_loop
        self._headers = sealed_headers(
            {
                "accept": "application/json",
                "content-type": "application/json",
                "user-agent": config.user_agent,
            }
        )

    def __repr__(self) -> str:
        return f"TokenEndpoint({str(self.url)!r})"

    @property
    def closing(self) -> bool:
        """The client is closing: a provider shared with other clients uses theirs."""
        return self._gate.closed

    async def post(self, payload: Mapping[str, str]) -> Response:
        self._bind_loop()
        body = _json.dumps(dict(payload))
        return await self._send(
            Request(method="POST", url=self.url, headers=self._headers, body=body)
        )


def client_transport(
    config: ClientConfig, transport: Transport | None, session: aiohttp.ClientSession | None
) -> Transport:
    if transport is None:
        return AiohttpTransport(
            session=session,
            timeout=config.timeout,
            max_response_bytes=(
                DEFAULT_MAX_RESPONSE_BYTES
                if config.max_response_bytes is None
                else config.max_response_bytes
            ),
        )
    if session is not None or config.timeout is not None or config.max_response_bytes is not None:
        raise InvalidInputError(
            "session, timeout and max_response_bytes configure the default transport; "
            "configure your own transport instead",
            field="transport",
        )
    return transport


def reconcile_horizon(value: float | None, transport: Transport) -> float:
    """The processing horizon batch creates wait out before resending (see
    :mod:`amo_pipelines.resources.batch`)."""
    if value is None:
        total = getattr(getattr(transport, "timeout", None), "total", None)
        return 2.0 * total if isinstance(total, (int, float)) and total > 0 else 120.0
    return value
