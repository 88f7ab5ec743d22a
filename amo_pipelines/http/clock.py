"""Time as an injected dependency, so timing logic is tested on a fake clock.

Everything in the SDK that reads the time or waits for it goes through a :class:`Clock`.
Production code uses :data:`SYSTEM_CLOCK`; tests (ours and our users') pass a
:class:`FakeClock` and move virtual time by hand, so a test of "the 8th request waits one
second" takes microseconds and gives the same answer on every run.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import InvalidInputError


class Clock(Protocol):
    """A monotonic clock and the matching sleep."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    # The C function itself: the clock is read several times per request.
    now = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK = MonotonicClock()


@dataclass(order=True)
class _Sleeper:
    deadline: float
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class FakeClock:
    """Virtual time for tests: it only moves when the test calls :meth:`advance`.

    ``sleep(s)`` parks the calling task until virtual time reaches ``now() + s``.
    ``await clock.advance(s)`` moves time forward *one deadline at a time*: it sets the
    time to the earliest pending deadline, wakes every sleeper due then (in the order they
    went to sleep), lets the event loop run the woken tasks (:meth:`settle`), and repeats
    until it reaches the target. Woken tasks therefore see ``now()`` equal to their own
    deadline, not the end of the jump, and sleeps they start on the way are honoured if
    they fall inside the jump.

    Settling is a fixed number of ``asyncio.sleep(0)`` rounds (``settle_rounds``): enough
    for chains of a few tasks and futures handing work to each other. Raise it if your
    test has deeper chains.
    """

    def __init__(self, start: float = 0.0, *, settle_rounds: int = 50) -> None:
        if settle_rounds < 1:
            raise InvalidInputError("must be at least 1", field="settle_rounds")
        self._now = float(start)
        self._settle_rounds = settle_rounds
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    @property
    def sleepers(self) -> int:
        """How many tasks are parked in :meth:`sleep` right now."""
        return sum(1 for s in self._sleepers if not s.future.done())

    @property
    def next_deadline(self) -> float | None:
        """The earliest virtual time a sleeper is waiting for, if any."""
        pending = [s.deadline for s in self._sleepers if not s.future.done()]
        return min(pending) if pending else None

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            # Still a suspension point, like asyncio.sleep(0).
            await asyncio.sleep(0)
            return
        sleeper = _Sleeper(
            self._now + seconds, next(self._seq), asyncio.get_running_loop().create_future()
        )
        bisect.insort(self._sleepers, sleeper)
        try:
            await sleeper.future
        finally:
            # Cancelled sleepers leave nothing behind.
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)

    async def settle(self) -> None:
        """Let ready tasks run (a few event-loop rounds) without moving time."""
        for _ in range(self._settle_rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``, waking sleepers in deadline order."""
        if seconds < 0:
            raise InvalidInputError("time only moves forward", field="seconds")
        target = self._now + seconds
        # Tasks started just before the call first run at the current time.
        await self.settle()
        while self._sleepers and self._sleepers[0].deadline <= target:
            self._now = max(self._now, self._sleepers[0].deadline)
            while self._sleepers and self._sleepers[0].deadline <= self._now:
                sleeper = self._sleepers.pop(0)
                if not sleeper.future.done():
                    sleeper.future.set_result(None)
            await self.settle()
        self._now = max(self._now, target)
        await self.settle()

    async def advance_to(self, when: float) -> None:
        """Move virtual time forward to ``when`` (no-op if it is already later)."""
        await self.advance(max(0.0, when - self._now))
