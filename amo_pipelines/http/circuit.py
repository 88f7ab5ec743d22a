"""The circuit breaker: once an account is blocked, send it nothing more.

amoCRM blocks an account (or IP) that keeps exceeding its rate limits; from then on every
request gets 403, usually as an HTML page, until support lifts the block. Each further
request only prolongs the trouble, so the first sign of a block opens the circuit for that
account: every pending and new call fails at once with :class:`AccountBlockedError` and
nothing is sent until :meth:`CircuitBreaker.reset` or ``cooldown`` seconds pass.

A block is what :mod:`amo_pipelines.http.problem` reads an answer to be (the one rule; the
answer then maps to :class:`AccountBlockedError`): the HTML 403 page, or a 403 whose body
says the account or IP is blocked. Any other 403 is a missing permission (a non-admin
token), whatever came before it, a 429 included: it stays a :class:`ForbiddenError` and
the circuit stays closed.
"""

from __future__ import annotations

import asyncio
import math
import weakref

from attrs import define

from ..errors import AccountBlockedError, ApiError, InvalidInputError, is_account_block
from ..transport.base import Request
from .clock import SYSTEM_CLOCK, Clock

DEFAULT_COOLDOWN = 900.0


@define
class _Open:
    until: float | None
    cause: ApiError


def _seconds(value: object, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidInputError(
            f"must be a finite number of seconds >= 0, got {value!r}", field=where
        )
    return float(value)


class CircuitBreaker:
    """Per-account open/closed state, shared by every client that talks to an account.

    ``cooldown``: seconds the circuit stays open (``None``: until :meth:`reset`).
    ``suspicion_window`` is accepted for compatibility and no longer used: a 403 after a
    429 is judged by its body like any other.
    """

    def __init__(
        self,
        *,
        cooldown: float | None = DEFAULT_COOLDOWN,
        suspicion_window: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.cooldown = None if cooldown is None else _seconds(cooldown, "cooldown")
        self.suspicion_window = _seconds(suspicion_window, "suspicion_window")
        self._clock = clock
        self._open: dict[str, _Open] = {}

    def is_open(self, account: str) -> bool:
        state = self._open.get(account)
        if state is None:
            return False
        if state.until is not None and self._clock.now() >= state.until:
            del self._open[account]  # cooled down: let the next request probe
            return False
        return True

    def check(self, account: str, request: Request) -> None:
        """Raise :class:`AccountBlockedError` (nothing sent) if the circuit is open."""
        if self._open and self.is_open(account):
            raise self.refusal(account, request)

    def refusal(self, account: str, request: Request) -> AccountBlockedError:
        state = self._open[account]
        return AccountBlockedError(
            status=state.cause.status,
            method=request.method,
            path=request.url.path,
            title="Account blocked",
            detail=(
                f"{account} answered {state.cause.status} {state.cause.title!r} to "
                f"{state.cause.method} {state.cause.path}; the circuit is open and this "
                "request was not sent"
            ),
        )

    def is_block(self, account: str, error: ApiError) -> bool:
        """Whether ``error`` should open the circuit: :func:`is_account_block`."""
        return is_account_block(error)

    def open(self, account: str, cause: ApiError) -> None:
        now = self._clock.now()
        until = None if self.cooldown is None else now + self.cooldown
        self._open[account] = _Open(until=until, cause=cause)

    def reset(self, account: str | None = None) -> None:
        """Close the circuit (for one account, or all) once the block is lifted."""
        if account is None:
            self._open.clear()
        else:
            self._open.pop(account, None)


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CircuitBreaker] = (
    weakref.WeakKeyDictionary()
)


def shared_breaker() -> CircuitBreaker:
    """The breaker every client in this event loop uses unless given its own."""
    loop = asyncio.get_running_loop()
    breaker = _shared.get(loop)
    if breaker is None:
        breaker = _shared[loop] = CircuitBreaker()
    return breaker
