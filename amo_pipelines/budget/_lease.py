"""What the shared stores have in common: the account-state arithmetic and the heartbeat.

A grant's place in a shared store is held for ``lease`` seconds at a time, and renewed
every ``lease / 3`` while this process waits for the answer; a process that dies
(``kill -9``) stops renewing, so its places fall free within ``lease`` plus the window's
span, and no peer waits forever for an answer that will never come.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import Awaitable, Callable, Sequence

from ..errors import InvalidInputError
from .windows import PenaltyRule, Window

logger = logging.getLogger("amo_pipelines.budget.limiter")

DEFAULT_LEASE = 15.0
"""Seconds a pending grant holds its place without renewal. Short enough that a killed
process frees its places soon; renewals make it any request's length while alive."""


Renewal = tuple[str, tuple[Window, ...], str]
"""(account, windows, receipt) of one pending grant."""


def check_lease(lease: object) -> float:
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease >= 0.3:
        raise InvalidInputError("must be a number of seconds >= 0.3", field="lease")
    if not math.isfinite(lease):
        raise InvalidInputError("must be finite", field="lease")
    return float(lease)


def recovered(factor: float, since: float, now: float, rule: PenaltyRule) -> tuple[float, float]:
    """The penalty factor at ``now`` after the recovery steps due since ``since``."""
    if factor < 1.0:
        # (+1e-9: a step that is due now must not be lost to float rounding)
        steps = math.floor((now - since) / rule.interval + 1e-9)
        if steps > 0:
            factor = min(1.0, round(factor + steps * rule.step, 9))
            since += steps * rule.interval
    return factor, since


def scaled(count: int, factor: float) -> int:
    return max(1, math.floor(count * factor + 1e-9))


class LeaseKeeper:
    """This process's pending grants, and the timer that renews their leases.

    ``renew`` is called with ``(account, windows, receipt)`` triples; a failure is logged
    and retried at the next beat (the places stay held meanwhile for up to the lease).

    The beat is a loop timer, not a sleeping task: arming one per burst and letting it
    lapse when nothing is pending costs far less per grant than starting and cancelling a
    task, and a loop that closes with a timer armed does not complain about it.
    """

    def __init__(self, lease: float, renew: Callable[[list[Renewal]], Awaitable[None]]) -> None:
        self.lease = lease
        self.renew = renew
        self.pending: dict[str, tuple[str, tuple[Window, ...]]] = {}
        # The loop whose timer is armed, weakly: a closed loop's last timer never fires,
        # and nothing here may keep that loop (or what hangs off it) alive. (A store may
        # check it and add to ``pending`` itself when its timer runs on the caller's loop.)
        self.armed: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._renewing: asyncio.Task[None] | None = None  # (dropped once done)

    def add(
        self,
        receipt: str,
        account: str,
        windows: Sequence[Window],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``loop``: the running one, if the caller knows it (it saves looking it up)."""
        self.pending[receipt] = (account, tuple(windows))
        if loop is None:
            loop = asyncio.get_running_loop()
        if self.armed is None or self.armed() is not loop:
            self.armed = weakref.ref(loop)
            loop.call_later(self.lease / 3, self._due)

    def pop(self, receipt: str) -> tuple[str, tuple[Window, ...]] | None:
        # The timer is left armed: it lapses by itself if nothing is pending by then.
        return self.pending.pop(receipt, None)

    def _due(self) -> None:
        self.armed = None
        if not self.pending:
            return
        loop = asyncio.get_running_loop()
        task = self._renewing
        if task is None or task.done() or task.get_loop() is not loop:  # else: still at it
            self._renewing = loop.create_task(self._renew(), name="amo_pipelines lease heartbeat")
        self.armed = weakref.ref(loop)
        loop.call_later(self.lease / 3, self._due)

    async def _renew(self) -> None:
        # Listed when the task runs, not when the timer fired: an answer may come between.
        items = [(acct, wins, receipt) for receipt, (acct, wins) in self.pending.items()]
        try:
            if items:
                await self.renew(items)
        except Exception as exc:
            logger.warning("rate limiter: could not renew leases (%s)", type(exc).__name__)
        finally:
            self._renewing = None
