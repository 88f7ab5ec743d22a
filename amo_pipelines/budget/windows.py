"""Where the rate limiter's windows live: the grants each key holds, and for how long.

The :class:`~amo_pipelines.budget.limiter.RateLimiter` decides who goes next (queues,
fairness, pauses, penalties); a :class:`WindowStore` only counts. A grant holds its place
in every window it was asked about from :meth:`WindowStore.acquire` until its answer
(:meth:`WindowStore.complete`), and for the window's span after that. The protocol is
async so that a store shared across processes (Redis: one sorted set per key, ``acquire``
in one Lua script) can replace :class:`InMemoryWindowStore` without touching the limiter.

A store shared between processes must also share what the server told one of them about
the account: a 429 pause and its penalty, and a block. :class:`SharedWindowStore` adds
that: its :meth:`~SharedWindowStore.acquire_account` applies the account's pause,
penalty and block in the same atomic step as the windows, so a peer's 429 stops this
process before its next grant, at no extra round trip. Implementations:
:class:`~amo_pipelines.budget.file.FileWindowStore` (one machine, the default) and
:class:`~amo_pipelines.redis.RedisWindowStore` (several machines).
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

__all__ = [
    "Admission",
    "AnswersAtOnce",
    "Blocked",
    "Denied",
    "Granted",
    "InMemoryWindowStore",
    "PenaltyRule",
    "SharedAdmission",
    "SharedWindowStore",
    "Window",
    "WindowStore",
]


@dataclass(frozen=True)
class Window:
    """One sliding window to check: at most ``limit`` grants within ``span`` seconds."""

    key: str = field(repr=False)  # holds the integration fingerprint: never shown
    limit: int
    span: float


@dataclass(frozen=True, slots=True)
class Granted:
    """The store recorded a grant at ``at`` in every window it was asked about.

    ``receipt`` is opaque to the limiter: a store may put there whatever it needs to find
    the grant again in :meth:`WindowStore.refund` (a Redis store: the sorted-set member).
    """

    at: float
    windows: tuple[Window, ...] = field(repr=False)
    receipt: str = ""


def granted(at: float, windows: tuple[Window, ...], receipt: str = "") -> Granted:
    """``Granted(at, windows, receipt)`` for the stores' hot paths: the same value without
    the frozen ``__init__``'s ``object.__setattr__`` per field (a grant is made per request)."""
    made: Granted = _new(Granted)
    _set_at(made, at)
    _set_windows(made, windows)
    _set_receipt(made, receipt)
    return made


_new = object.__new__
_set_at, _set_windows, _set_receipt = (
    Granted.__dict__[name].__set__ for name in ("at", "windows", "receipt")
)


@dataclass(frozen=True)
class Denied:
    """No grant was recorded; all windows allow one in ``retry_after`` seconds at best.

    ``blocking`` holds the indices (into the windows asked about) of the full windows.
    """

    retry_after: float
    blocking: tuple[int, ...]


Admission: TypeAlias = Granted | Denied


@dataclass(frozen=True)
class Blocked:
    """A shared store says the account is blocked (another process saw the block).

    ``retry_after``: seconds until the block's cooldown ends (``None``: until cleared).
    ``note``: what was seen (status, title, method and path; never a token).
    """

    retry_after: float | None
    note: str


SharedAdmission: TypeAlias = Granted | Denied | Blocked


@dataclass(frozen=True)
class PenaltyRule:
    """How a 429 slows an account down, for stores that keep the penalty themselves.

    The counts of every window are scaled by the account's factor (floor 1): a 429 more than
    ``interval`` seconds after the previous penalty multiplies it by ``factor``
    (at least ``minimum``), and every ``interval`` without one gives back ``step``.
    """

    factor: float
    step: float
    interval: float
    minimum: float


class WindowStore(Protocol):
    """Where the grant times live; async so that a store shared across processes fits.

    Stores count grants only; queueing, fairness, pauses and penalties stay in the
    :class:`RateLimiter` of each process. A shared store must make :meth:`acquire` atomic
    (check every window, then record in every window, or record nothing) and should use a
    clock common to all processes rather than ``now``.
    """

    async def acquire(self, windows: Sequence[Window], now: float) -> Admission:
        """Record a grant at ``now`` in all ``windows`` if none is full, else say how long."""
        ...

    async def complete(self, grant: Granted, at: float) -> None:
        """The grant's request got its answer at ``at``: count it from then on.

        Until this call a grant holds its place in every window however long it takes,
        because the server may see the request at any moment before the answer.
        """
        ...

    async def refund(self, grant: Granted) -> None:
        """Forget a grant that was never used (its request was not sent)."""
        ...


class SharedWindowStore(WindowStore, Protocol):
    """A :class:`WindowStore` shared by processes, which also keeps the account's state.

    Times are the store's own (a clock common to every process that uses it), so only
    durations cross this interface. The limiter does not scale the window counts itself
    for such a store: ``acquire_account`` applies the account's penalty factor, refuses
    while the account is paused (:class:`Denied`) or blocked (:class:`Blocked`), and
    otherwise acts as :meth:`WindowStore.acquire` in one atomic step. A grant's place is
    held until :meth:`WindowStore.complete` or ``lease`` seconds without renewal (the
    process died), then for the window's span.
    """

    lease: float

    async def acquire_account(
        self, account: str, windows: Sequence[Window], rule: PenaltyRule
    ) -> SharedAdmission: ...

    async def note_429(self, account: str, pause: float, rule: PenaltyRule) -> None:
        """Pause ``account`` for ``pause`` seconds (never shortening one) and penalise it."""
        ...

    async def note_block(self, account: str, cooldown: float | None, note: str) -> None:
        """Record that ``account`` is blocked for ``cooldown`` seconds (None: until cleared)."""
        ...

    async def clear_block(self, account: str) -> None: ...


class AnswersAtOnce(Protocol):
    """What a store whose calls never wait (an in-process one, or a local file under a lock
    held for microseconds) may offer besides: :meth:`WindowStore.acquire`,
    :meth:`~WindowStore.complete` and :meth:`~WindowStore.refund` as plain calls, with the
    same effect. The limiter then grants and releases a place without a coroutine of its
    own (this runs on every request); a shared store offers ``acquire_account_now`` too
    (with ``loop`` after ``rule``). ``loop``: the running loop, which the limiter knows (a
    store that sets timers need not look it up per call)."""

    def acquire_now(
        self, windows: Sequence[Window], now: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> Admission: ...

    def complete_now(
        self, grant: Granted, at: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> None: ...

    def refund_now(self, grant: Granted) -> None: ...


class AtOnce:
    """Base of a store whose calls never wait: the :class:`WindowStore` coroutines over its
    :class:`AnswersAtOnce` calls (the limiter calls those directly on every request)."""

    async def acquire(self, windows: Sequence[Window], now: float) -> Admission:
        return self.acquire_now(windows, now)

    async def complete(self, grant: Granted, at: float) -> None:
        self.complete_now(grant, at)

    async def refund(self, grant: Granted) -> None:
        self.refund_now(grant)

    def acquire_now(
        self, windows: Sequence[Window], now: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> Admission:
        raise NotImplementedError

    def complete_now(
        self, grant: Granted, at: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        raise NotImplementedError

    def refund_now(self, grant: Granted) -> None:
        raise NotImplementedError


@dataclass
class _Log:
    span: float
    times: list[float]  # completion times of answered grants, ascending
    pending: int = 0  # grants still waiting for their answer: they never expire


class InMemoryWindowStore(AtOnce):
    """The per-process store: per key, a sorted list of the times its answered grants
    completed, and a count of those still waiting for their answer.

    ``acquire`` never suspends, so it is atomic on the event loop. Expired times are
    dropped when a key is used, and all keys are swept now and then, so idle accounts cost
    nothing. ``now`` must not go backwards (the limiter passes a monotonic clock).
    """

    _SWEEP_EVERY = 60.0  # seconds of clock time between sweeps of idle keys

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}
        self._next_sweep: float | None = None

    def __len__(self) -> int:
        """Number of keys that still hold unexpired grants (as of the last use)."""
        return len(self._logs)

    def _prune(self, key: str, log: _Log, now: float) -> bool:
        times = log.times
        expired = bisect.bisect_right(times, now - log.span)
        if expired:
            del times[:expired]
        if not times and not log.pending:
            del self._logs[key]
            return False
        return True

    def acquire_now(
        self, windows: Sequence[Window], now: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> Admission:
        if self._next_sweep is None or now >= self._next_sweep:
            for key, old in list(self._logs.items()):
                self._prune(key, old, now)
            self._next_sweep = now + self._SWEEP_EVERY
        logs = self._logs
        blocking: list[int] | None = None
        retry_after = 0.0
        index = -1
        for window in windows:  # (_prune, inline: this runs per request and window)
            index += 1
            log = logs.get(window.key)
            if log is None:
                continue
            times = log.times
            if times and times[0] <= now - log.span:
                del times[: bisect.bisect_right(times, now - log.span)]
            if not times and not log.pending:
                del logs[window.key]
                continue
            log.span = window.span
            # Once the oldest (count - limit + 1) answered grants expire, one more fits;
            # if that needs more than are answered, only an answer can tell when.
            excess = len(times) + log.pending - window.limit
            if excess >= 0:
                if blocking is None:
                    blocking = []
                blocking.append(index)
                wait = times[excess] + window.span - now if excess < len(times) else math.inf
                retry_after = max(retry_after, wait)
        if blocking:
            return Denied(retry_after=retry_after, blocking=tuple(blocking))
        for window in windows:
            log = logs.get(window.key)
            if log is None:
                log = logs[window.key] = _Log(window.span, [])
            log.pending += 1
        return granted(now, windows if type(windows) is tuple else tuple(windows))

    def complete_now(
        self, grant: Granted, at: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        if at < grant.at:
            at = grant.at
        logs = self._logs
        for window in grant.windows:
            log = logs.get(window.key)
            if log is None or not log.pending:
                continue
            log.pending -= 1
            times = log.times
            if not times or times[-1] <= at:  # the usual case: answers come in time order
                times.append(at)
            else:
                bisect.insort(times, at)

    def refund_now(self, grant: Granted) -> None:
        for window in grant.windows:
            log = self._logs.get(window.key)
            if log is None or not log.pending:
                continue
            log.pending -= 1
            if not log.times and not log.pending:
                del self._logs[window.key]
