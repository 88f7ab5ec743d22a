"""What a rate limiter keeps per account (its queue, in-flight count, pause and penalty),
the place a request holds, and the limiter's own errors."""

from __future__ import annotations

import asyncio
import itertools
import math
import weakref
from typing import TYPE_CHECKING

from ..errors import AmoError
from ..http.clock import Clock
from .windows import Blocked, Granted, PenaltyRule, SharedWindowStore, Window, WindowStore

if TYPE_CHECKING:
    from .limiter import Limit


class RateLimitStoreError(AmoError, RuntimeError):
    """The window store failed (unreachable Redis, unwritable folder) before this request
    got its grant: the request was not sent (``__cause__`` says what failed). The limiter
    never falls back to an unshared budget, which could overrun the account."""


class AccountBlockedElsewhereError(AmoError):
    """The shared store says the account is blocked: a client, maybe in another process,
    got the block. Nothing was sent. The throttle turns it into an
    :class:`~amo_pipelines.errors.AccountBlockedError`."""

    def __init__(self, blocked: Blocked) -> None:
        self.retry_after = blocked.retry_after
        self.note = blocked.note
        super().__init__(f"the account is blocked ({blocked.note}); nothing was sent")


class Hold:
    """One request's place at a :class:`~amo_pipelines.RateLimiter`: what
    :meth:`~amo_pipelines.RateLimiter.acquire` returns, for ``release`` or ``give_back``."""

    __slots__ = ("account", "grant")

    def __init__(self, account: AccountState, grant: Granted) -> None:
        self.account = account
        self.grant = grant

    def __repr__(self) -> str:
        return f"Hold(at={self.grant.at!r})"  # never the keys: they name the token


class Waiter:
    __slots__ = ("future", "integration", "owner", "seq")

    def __init__(
        self,
        seq: int,
        integration: str | None,
        future: asyncio.Future[Granted],
        owner: object = None,
    ) -> None:
        self.seq = seq
        self.integration = integration
        self.future = future
        self.owner = owner


class AccountState:
    """Everything a limiter knows about one account (apart from the windows)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.queue: dict[int, Waiter] = {}  # by arrival number, so in arrival order
        self.refunds: list[Granted] = []
        self.in_flight = 0
        self.pump: asyncio.Task[None] | None = None
        self.kick: asyncio.Future[None] | None = None
        self.kicked = False
        self.paused_until = -math.inf
        self.factor = 1.0  # share of the configured counts allowed (penalties)
        self.factor_since = -math.inf  # last penalty or recovery step
        self.penalized_at = -math.inf
        # integration -> (factor, its windows): built once per factor, not per request
        self.windows: dict[str | None, tuple[float, tuple[Window, ...]]] = {}

    def carry_over(self) -> AccountState:
        """A copy without loop-bound state: pauses and penalties outlive an event loop."""
        fresh = AccountState(self.name)
        fresh.paused_until = self.paused_until
        fresh.factor = self.factor
        fresh.factor_since = self.factor_since
        fresh.penalized_at = self.penalized_at
        return fresh

    def has_loop_state(self) -> bool:
        return bool(self.queue or self.refunds or self.in_flight or self.pump)


def store_failed(exc: BaseException) -> RateLimitStoreError:
    error = RateLimitStoreError(
        f"the rate limit window store failed ({type(exc).__name__}): the request was not sent"
    )
    error.__cause__ = exc
    return error


def scaled(count: int, factor: float) -> int:
    return max(1, math.floor(count * factor + 1e-9))


def earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


async def sleep_or_kick(clock: Clock, seconds: float, kick: asyncio.Future[None]) -> None:
    """Sleep on ``clock`` until ``seconds`` pass or ``kick`` is set, whichever first."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait((sleeper, kick), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not sleeper.done():
            sleeper.cancel()
        elif not sleeper.cancelled():
            sleeper.result()  # surface a failing clock


class Accounts:
    """A rate limiter's accounts: their state, their windows, and the loop they live on
    (the base of :class:`~amo_pipelines.budget._granting._Granting`)."""

    # Set by RateLimiter.__init__.
    _integration_limit: Limit | None
    _account_limit: Limit | None
    _margin: float
    _max_in_flight: int | None
    _clock: Clock
    _store: WindowStore
    _shared: SharedWindowStore | None
    _recovery_interval: float
    _recovery_step: float
    _rule: PenaltyRule
    _accounts: dict[str, AccountState]
    _sweep_at: int
    _seq: itertools.count[int]
    _loop_ref: weakref.ref[asyncio.AbstractEventLoop] | None
    _now_store: bool  # the store offers the AnswersAtOnce calls
    _store_own: dict[str, object]  # its instance attributes (see take)

    def _windows(
        self, acct: AccountState, integration: str | None, now: float
    ) -> tuple[Window, ...]:
        """The windows a request must fit in; the account window, if any, comes last."""
        factor = 1.0 if acct.factor >= 1.0 else self._factor(acct, now)
        cached = acct.windows.get(integration)
        if cached is not None and cached[0] == factor:
            return cached[1]  # the same keys and counts as last time: skip rebuilding them
        windows: list[Window] = []
        if self._integration_limit is not None and integration is not None:
            limit = self._integration_limit
            key = f"i|{acct.name}|{integration}"
            windows.append(Window(key, scaled(limit.count, factor), limit.period + self._margin))
        if self._account_limit is not None:
            limit = self._account_limit
            key = f"a|{acct.name}"
            windows.append(Window(key, scaled(limit.count, factor), limit.period + self._margin))
        if len(acct.windows) >= 64:  # many tokens on one busy account: start afresh
            acct.windows.clear()
        result = tuple(windows)
        acct.windows[integration] = (factor, result)
        return result

    def _factor(self, acct: AccountState, now: float) -> float:
        """The account's current share of the configured counts, after recovery steps."""
        if acct.factor < 1.0:
            # (+1e-9: a step that is due now must not be lost to float rounding)
            steps = math.floor((now - acct.factor_since) / self._recovery_interval + 1e-9)
            if steps > 0:
                acct.factor = min(1.0, round(acct.factor + steps * self._recovery_step, 9))
                acct.factor_since += steps * self._recovery_interval
        return acct.factor

    def _in_flight_full(self, acct: AccountState) -> bool:
        return self._max_in_flight is not None and acct.in_flight >= self._max_in_flight

    def _account(self, name: str) -> AccountState:
        acct = self._accounts.get(name)
        if acct is None:
            if len(self._accounts) >= self._sweep_at:
                for idle in list(self._accounts.values()):
                    self._forget_if_idle(idle)
                self._sweep_at = 2 * len(self._accounts) + 64
            acct = self._accounts[name] = AccountState(name)
        return acct

    def _is_idle(self, acct: AccountState, now: float) -> bool:
        """Nothing in the account's state matters any more: it may be forgotten."""
        if acct.has_loop_state() or acct.paused_until > now:
            return False
        return self._factor(acct, now) >= 1.0

    def _forget_if_idle(self, acct: AccountState) -> None:
        if self._accounts.get(acct.name) is acct and self._is_idle(acct, self._clock.now()):
            del self._accounts[acct.name]

    def _bind_loop(
        self, loop: asyncio.AbstractEventLoop | None = None
    ) -> asyncio.AbstractEventLoop:
        """Tie the limiter to the running loop (``loop``, if the caller knows it), and
        return it; move on from a loop that is gone."""
        if loop is None:
            loop = asyncio.get_running_loop()
        bound = None if self._loop_ref is None else self._loop_ref()
        if bound is loop:
            return loop
        in_use = any(acct.has_loop_state() for acct in self._accounts.values())
        if bound is not None and not bound.is_closed() and in_use:
            raise RuntimeError(
                "this RateLimiter is in use by another event loop; use one limiter per "
                "loop (shared_limiter() does that)"
            )
        # Futures, tasks and in-flight counts belonged to the old loop; pauses and
        # penalties are about the server and carry over (and so do the store's windows).
        self._loop_ref = weakref.ref(loop)
        self._accounts = {name: acct.carry_over() for name, acct in self._accounts.items()}
        return loop
