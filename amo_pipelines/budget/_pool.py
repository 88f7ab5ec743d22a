"""Places the machine-wide store reserves ahead, so that a busy process far below its
limits grants most requests without touching the file.

When a grant's transaction finds every window it counts against far from full (after the
grant, at least :data:`SHARE` times as many places free as it reserves), it also records up
to :data:`MAX_EXTRA` more places as pending places of this process, in the same write. They
wait in a :class:`Pool` per (account, windows); the next grants for those windows take one
each, with no file access. A pooled place is in the file from its reservation on, as a
pending place held by the same lease as any other (only from earlier than its real grant:
it frees later, never sooner), so the file still counts every request in flight or answered
less than a period ago, and no window admits more than its limit across processes.

A place not taken within :data:`MAX_AGE` is given back with the account's next write, at
the latest by a timer; so are all of an account's places when this process records a 429,
a block or its end, and the pools of a forked child (they are the parent's). The age bound
also bounds how long a pause or block recorded by another process can go unseen here: by
at most the places reserved before it, within :data:`MAX_AGE`, like grants made just before
it. How many places to reserve follows demand: none for a first grant, then 1, 3, 7, 15, 31
while each pool is used up within :data:`MAX_AGE` of its filling; back to none after a pause.
The answers of grants made in that regime are written with the next write or by the timer
rather than when the event loop turns, so that a call costs no transaction of its own.

Near a limit (fewer than :data:`SHARE` places free per place to reserve, e.g. any 7/s
window) nothing is reserved: grants, answers and fairness between processes are as before.
"""

from __future__ import annotations

import asyncio
import atexit
import time
import weakref
from collections.abc import Callable

from .windows import Window

__all__ = ["MAX_AGE", "MAX_EXTRA", "SHARE", "Pool", "Pools"]

MAX_AGE = 0.005
"""Seconds a reserved place waits for a grant before it is given back (and the longest a
pooled grant can follow a pause or block another process recorded)."""
MAX_EXTRA = 31
"""Places reserved beyond the grant: at most 32 grants per transaction. A client at 8,000
calls per second takes about 40 within :data:`MAX_AGE`; with 15, the file's transactions
(one per refill) cost 5-6 us per call more (benchmark 3, limiter rows)."""
SHARE = 8  # reserve at most 1/SHARE of the places still free after the grant
_MAX_POOLS = 256  # idle pools forgotten beyond this many (a service of many accounts)

Entry = tuple[tuple[Window, ...], int]
"""(windows, receipt number) of one place in an account's file."""


class Pool:
    """This process's reserved places for one (account, windows)."""

    __slots__ = ("account", "active", "born", "filled_at", "name", "rids", "want", "windows")

    def __init__(self, account: str, name: str, windows: tuple[Window, ...]) -> None:
        self.account = account
        self.name = name  # the account's file
        self.windows = windows  # (kept alive: its id is the pool's key)
        self.rids: list[int] = []
        self.born = 0.0  # when the places in rids were reserved
        self.filled_at = -1e18  # last transaction for these windows
        self.want = 0  # places to reserve at the next transaction
        self.active = False  # the last transaction reserved some: answers may wait


def can_pool(windows: tuple[Window, ...]) -> bool:
    """Whether these windows could ever leave room for a reserved place."""
    return all(window.limit > SHARE for window in windows)


LAST_ID = 0xFFFF_FFFF_FFFF_FFFF  # receipts are 64-bit numbers


def receipts(first: int, count: int) -> list[int]:
    """``count`` receipts from ``first`` on (after the last 64-bit number comes 0)."""
    made = list(range(first, first + count))
    if first + count > LAST_ID:
        made = [receipt & LAST_ID for receipt in made]
    return made


def extras(want: int, free: int) -> int:
    """Places to reserve beside a grant, with ``free`` places left in the fullest window."""
    return min(want, free // SHARE)


class Pools:
    """Every pool of one store, the places to give back, and the timer that does it.

    ``write(skip)`` runs one transaction per account file that has something waiting for
    it (answers, places to give back), but for the files in ``skip``.
    """

    def __init__(self, write: Callable[[frozenset[str]], None]) -> None:
        self.by_windows: dict[int, Pool] = {}
        self.forget: dict[str, list[Entry]] = {}  # places to give back, by file
        self._write = write
        self.armed: weakref.ref[asyncio.AbstractEventLoop] | None = None  # (see arm)
        _live.add(self)

    def plan(self, account: str, name: str, windows: tuple[Window, ...], now: float) -> Pool | None:
        """The pool to fill in a transaction at ``now`` (its ``want`` set), or None."""
        pool = self.by_windows.get(id(windows))
        if pool is None or pool.windows is not windows or pool.account != account:
            if pool is not None:
                self.drop(pool)
            if not can_pool(windows):
                return None
            if len(self.by_windows) >= _MAX_POOLS:
                self._sweep(now)
            pool = self.by_windows[id(windows)] = Pool(account, name, windows)
        age = now - pool.filled_at
        if pool.rids:  # too old to use: give them back with this write (want: what was used)
            self.drop(pool)
        elif age <= MAX_AGE:  # used up in time: reserve more
            pool.want = min(MAX_EXTRA, 2 * pool.want + 1)
        # A pool that outlived its places while in use (a demand of fewer than it held per
        # MAX_AGE) keeps what was used of them as its next reservation, rather than
        # starting again from none (at 5,000 calls/s that made one write per 10 calls).
        if age > 2 * MAX_AGE:
            pool.want = 0  # a first grant, or the first after a pause: demand unknown
        pool.filled_at = now
        return pool

    def filled(
        self, pool: Pool, rids: list[int], now: float, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        pool.active = bool(rids)
        if rids:
            # Taken from the end, so lowest receipt first: the places answered between two
            # writes are then one run of receipts, side by side in the file (one slice).
            rids.reverse()
            pool.rids = rids
            pool.born = now
            self.arm(loop)

    def drop(self, pool: Pool) -> None:
        """Give back the pool's places with the account's next write."""
        if pool.rids:
            # Demand was lower than reserved: start from what was used next time.
            pool.want = max(0, pool.want - len(pool.rids))
            self.forget.setdefault(pool.name, []).extend((pool.windows, r) for r in pool.rids)
            pool.rids = []

    def drop_account(self, name: str) -> None:
        for pool in self.by_windows.values():
            if pool.name == name:
                self.drop(pool)
                pool.want, pool.active = 0, False

    def drop_all(self) -> None:
        for pool in self.by_windows.values():
            self.drop(pool)

    def clear(self) -> None:
        """After a fork: the places are the parent's to use and give back."""
        self.by_windows.clear()
        self.forget.clear()
        self.armed = None

    def arm(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Have the timer run on the running loop (``loop``, if the caller knows it)."""
        if loop is None:
            loop = asyncio.get_running_loop()
        if self.armed is None or self.armed() is not loop:
            self.armed = weakref.ref(loop)
            loop.call_later(MAX_AGE, self._due)

    def _due(self) -> None:
        self.armed = None
        now = time.monotonic()
        busy = set()
        for pool in self.by_windows.values():
            if pool.rids:
                if now - pool.born >= MAX_AGE * 0.999:
                    self.drop(pool)
                else:  # in use: its next transaction, or the next tick, writes the answers
                    busy.add(pool.name)
        self._sweep(now)
        self._write(frozenset(busy))
        if any(pool.rids or pool.active for pool in self.by_windows.values()):
            self.arm()

    def _sweep(self, now: float) -> None:
        idle = [
            key
            for key, pool in self.by_windows.items()
            if not pool.rids and now - pool.filled_at > MAX_AGE
        ]
        for key in idle:
            del self.by_windows[key]


# Pools still in use when the interpreter exits: their event loop may be gone before their
# timer ran (asyncio.run has returned), and their places would wait out the lease.
_live: weakref.WeakSet[Pools] = weakref.WeakSet()


@atexit.register
def _give_back_at_exit() -> None:
    for pools in list(_live):
        pools.drop_all()
        pools._write(frozenset())  # (logs a failure, never raises)
