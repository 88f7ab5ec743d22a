"""What a rate limiter keeps per account (its queue, in-flight count, pause and penalty),
the place a request holds, and the limiter's own errors."""

from __future__ import annotations

import asyncio
import math

from ..errors import AmoError
from ..http.clock import Clock
from .windows import Blocked, Granted, Window


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
