"""The account guard: rate limits, 429 back-off and the circuit breaker, per account.

Every request waits for a slot from the :class:`~amo_pipelines.budget.limiter.RateLimiter`
(both the integration's and the account's budget, plus an in-flight place), and the
outcome feeds back:

* 429: the whole account pauses for ``retry_after`` (body or ``Retry-After`` header;
  a default when the server gave none; never longer than ``max_pause``), and its rate is
  cut, to recover gradually. The retry policy then sends the request again.
* a block (the HTML 403 page, or a 403 saying the account or IP is blocked; the rule is
  in :mod:`~amo_pipelines.http.problem`): the circuit opens; pending and new calls
  fail at once with :class:`AccountBlockedError`, and nothing more is sent.

Once a request has its slot, it is checked once more before it goes out: the circuit may
have opened, the client may be closing (its :class:`~amo_pipelines.http.chain.CloseGate`),
its access token may have fallen due meanwhile (``check``), or the caller's own check
(:data:`~amo_pipelines.http.chain.send_check`) may refuse it. Any of these, or a
transport that certainly did not send it (:class:`RequestNotSentError`), gives the slot
back: the grant leaves the rate windows and the in-flight place is freed, so the next
waiter of the account (of any client) gets them at once.

With a store shared between processes (the machine-wide default, or Redis), the pause,
the penalty and the block go to the store too (:meth:`RateLimiter.note_429`,
:meth:`RateLimiter.note_block`), and a block seen by another process reaches this one at
its next grant: the breaker opens here as well and the request fails, unsent, with
:class:`AccountBlockedError`.

Default limiter and breaker: on the system clock, the ones shared by every client of the
running event loop (:func:`~amo_pipelines.budget.limiter.shared_limiter`,
:func:`~amo_pipelines.http.circuit.shared_breaker`). A client on another clock (a
:class:`~amo_pipelines.http.clock.FakeClock`) gets a limiter and a breaker driven by that clock
instead, shared by the clients of the same loop and the same clock, never with the
system-clock ones.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..budget.limiter import AccountBlockedElsewhereError, Hold, RateLimiter, shared_limiter
from ..errors import AccountBlockedError, ApiError, RequestNotSentError
from ..transport.base import Request, Response
from .chain import CloseGate, Handler, send_check
from .circuit import CircuitBreaker, shared_breaker
from .clock import SYSTEM_CLOCK, Clock
from .problem import problem_of


class _CircuitOpened(Exception):
    """Raised into requests still queued at the limiter when their account gets blocked."""


class _ClientClosing(Exception):
    """Raised into a closing client's requests still queued at the limiter."""


_Defaults = tuple[Clock, RateLimiter, CircuitBreaker]
_clocked: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Defaults]] = (
    weakref.WeakKeyDictionary()
)


def _defaults(clock: Clock) -> tuple[RateLimiter, CircuitBreaker]:
    """The running loop's default limiter and breaker for ``clock``."""
    if clock is SYSTEM_CLOCK:
        return shared_limiter(), shared_breaker()
    per_clock = _clocked.setdefault(asyncio.get_running_loop(), {})
    # Keyed by identity (a clock need not be hashable); the entry keeps the clock alive,
    # so its id is not reused while the loop lives.
    entry = per_clock.get(id(clock))
    if entry is None or entry[0] is not clock:
        entry = per_clock[id(clock)] = (
            clock,
            RateLimiter(clock=clock),
            CircuitBreaker(clock=clock),
        )
    return entry[1], entry[2]


class ThrottlePolicy:
    def __init__(
        self,
        *,
        account: str,
        integration: str,
        limiter: RateLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        default_pause: float = 1.0,
        max_pause: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
        gate: CloseGate | None = None,
        check: Callable[[Request], None] | None = None,
    ) -> None:
        self.account = account
        self._integration = integration
        self._limiter = limiter
        self._breaker = breaker
        self.default_pause = default_pause
        self.max_pause = max_pause
        self.clock = clock
        self.gate = gate
        self.check = check
        """Called with the request once it has its slot; raising gives the slot back."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop every request of this policy runs on, once its client knows it (the
        limiter then need not look it up per request)."""

    def _resolve(self) -> None:
        # On first use: the default instances belong to the running event loop.
        limiter, breaker = _defaults(self.clock)
        if self._limiter is None:
            self._limiter = limiter
        if self._breaker is None:
            self._breaker = breaker

    @property
    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            self._resolve()
            assert self._limiter is not None
        return self._limiter

    @property
    def breaker(self) -> CircuitBreaker:
        if self._breaker is None:
            self._resolve()
            assert self._breaker is not None
        return self._breaker

    def close(self) -> int:
        """Fail this client's requests queued at the limiter (the gate must be closed
        first); return how many. Nothing is resolved if nothing was ever sent."""
        if self._limiter is None or self.gate is None:
            return 0
        return self._limiter.abort_waiters(self.account, _ClientClosing(), owner=self.gate)

    async def send(self, request: Request, next: Handler) -> Response:
        hold = self.grant(request)
        if not isinstance(hold, Hold):
            hold = await hold
        try:
            response = await next(request)
        except BaseException as exc:
            await self.failed(hold, exc)
            raise
        following = self.answered(request, hold, response)
        if following is not None:
            await following
        return response

    # The steps of send(), for a caller that runs them in a coroutine of its own (the
    # client's first attempt, http.build): grant, then the request, then answered or failed.

    def grant(self, request: Request) -> Hold | Coroutine[Any, Any, Hold]:
        """The request's place (a coroutine to await for it when it must wait), cleared
        to go on the wire; raises what refuses it (an open circuit, a closing client)."""
        # (the attributes, not the properties: they are resolved after the first request)
        limiter, breaker, gate = self._limiter, self._breaker, self.gate
        if limiter is None or breaker is None:
            limiter, breaker = self.limiter, self.breaker
        breaker.check(self.account, request)
        if gate is not None and gate.closed:
            raise gate.refusal(request)
        try:
            # limiter.slot() without its frames (every request is here): a place that is
            # free now comes without a coroutine.
            taken = limiter.take(self.account, self._integration, owner=gate, loop=self.loop)
        except AccountBlockedElsewhereError as exc:
            raise self._refusal(exc, request) from None
        if isinstance(taken, Hold):
            # Granted without waiting: the circuit and the gate are as just checked (nothing
            # ran in between), so only the checks not made yet.
            return self._checked(request, taken, limiter)
        return self._waited(request, taken)

    async def _waited(self, request: Request, taken: Awaitable[Hold]) -> Hold:
        try:
            hold = await taken
        except (_CircuitOpened, AccountBlockedElsewhereError, _ClientClosing) as exc:
            raise self._refusal(exc, request) from None
        return self._cleared(request, hold, self.breaker, self.limiter)

    def _refusal(self, exc: Exception, request: Request) -> Exception:
        if isinstance(exc, _ClientClosing):
            return CloseGate.refusal(request)
        if isinstance(exc, AccountBlockedElsewhereError):
            self.breaker.open(self.account, _peer_block(exc, request))
        return self.breaker.refusal(self.account, request)

    def _cleared(
        self, request: Request, hold: Hold, breaker: CircuitBreaker, limiter: RateLimiter
    ) -> Hold:
        gate = self.gate
        try:
            # While this request waited for its slot the circuit may have opened, the
            # client may have begun closing, or its token may have fallen due.
            breaker.check(self.account, request)
            if gate is not None and gate.closed:
                raise gate.refusal(request)
        except BaseException:
            limiter.give_back(hold)  # nothing was sent
            raise
        return self._checked(request, hold, limiter)

    def _checked(self, request: Request, hold: Hold, limiter: RateLimiter) -> Hold:
        """The token's and the caller's checks of a request with its place; then it is on
        the wire. A refusal gives the place back."""
        try:
            if self.check is not None:
                self.check(request)
            extra = send_check.get()
            if extra is not None:
                extra(request)
        except BaseException:
            limiter.give_back(hold)  # nothing was sent
            raise
        gate = self.gate
        if gate is not None:
            gate.on_wire += 1
        return hold

    async def failed(self, hold: Hold, exc: BaseException) -> None:
        """The request under ``hold`` raised ``exc`` instead of an answer."""
        try:
            if isinstance(exc, RequestNotSentError):
                self.limiter.give_back(hold)
            else:
                await self.limiter.release(hold)
        finally:
            self._landed()

    def answered(
        self, request: Request, hold: Hold, response: Response
    ) -> Coroutine[Any, Any, None] | None:
        """The request under ``hold`` got ``response``: its place is released; what is
        left to await, if anything (a store that does not answer at once, a 429 or a
        block to record)."""
        gate = self.gate  # (_landed, inline)
        if gate is not None:
            gate.on_wire -= 1
            if gate.closed:
                gate.landed()
        limiter = self._limiter or self.limiter  # (resolved by grant)
        settling = limiter.settle(hold)
        status = response.status
        if settling is None and status != 429 and status != 403:
            return None
        return self._recorded(request, response, settling)

    def _landed(self) -> None:
        gate = self.gate
        if gate is not None:
            gate.on_wire -= 1
            if gate.closed:
                gate.landed()

    async def _recorded(
        self,
        request: Request,
        response: Response,
        settling: Coroutine[Any, Any, None] | None,
    ) -> None:
        if settling is not None:
            await settling
        limiter, breaker = self.limiter, self.breaker
        if response.status == 429:
            pause = problem_of(response).retry_after
            pause = self.default_pause if pause is None else pause
            await limiter.note_429(self.account, min(self.max_pause, pause))
        elif response.status == 403:
            error = problem_of(response).error(request.method, request.url.path)
            if breaker.is_block(self.account, error):
                self._open(error)
                note = f"{error.status} {error.title!r} to {error.method} {error.path}"
                await limiter.note_block(self.account, breaker.cooldown, note)

    def _open(self, cause: ApiError) -> None:
        self.breaker.open(self.account, cause)
        self.limiter.abort_waiters(self.account, _CircuitOpened())


def _peer_block(exc: AccountBlockedElsewhereError, request: Request) -> AccountBlockedError:
    """The cause the breaker shows for a block another process saw (``note`` says what)."""
    return AccountBlockedError(
        status=403,
        method=request.method,
        path=request.url.path,
        title=f"blocked, as a client sharing the budget saw ({exc.note})",
    )
