"""The writes of one apply, stopped once the account's apply lock is lost.

A lock with a TTL (:class:`~amo_pipelines.redis.RedisApplyLock`) can be lost mid-apply;
another apply may then hold the account, and two applies matching by name would create the
same pipelines twice. Every write of :func:`~amo_pipelines.funnels.apply` and
:func:`~amo_pipelines.funnels.copy_funnels` goes through :meth:`WriteGuard.step`, which
checks the :class:`~amo_pipelines.funnels.lock.HeldLock` (an attribute read: the lock's
renewal task sets it) before the write starts. Writes that already wait at the client's
rate limiter when the lock is lost passed that check long before they are sent, so the
guard also sets :data:`~amo_pipelines.http.chain.send_check` for the apply's tasks: the
throttle asks it once a request has its slot, right before the wire, and a write of this
apply is refused there (never sent; the slot goes back at once). Requests of the same
client that are not this apply's are not touched. Writes already on the wire land as they
do; they count as written (or failed).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable
from typing import Any

from ..errors import AmoError, BatchError
from ..http.chain import send_check
from ..transport.base import Request
from .lock import HeldLock

logger = logging.getLogger("amo_pipelines.funnels")


class LockLostNotSentError(AmoError):
    """A request of an apply that was not sent because the account's apply lock was lost
    (it was waiting for its rate-limit slot)."""


class WriteGuard:
    """Counts an apply's writes (``written``, ``not_sent``) and stops them once ``held`` is
    lost. ``held`` ``None``: a lock that can not be lost. Made and closed in the task that
    runs the apply: the check it sets reaches the tasks that task starts."""

    def __init__(self, held: HeldLock | None) -> None:
        self.held = held
        self.written: list[str] = []
        self.not_sent: list[str] = []
        self._refused = 0
        self._reset = send_check.set(self._check) if held is not None else None

    @property
    def lost(self) -> str | None:
        return self.held.lost if self.held is not None else None

    def close(self) -> None:
        if self._reset is not None:
            send_check.reset(self._reset)
            self._reset = None
            if self._refused:
                logger.warning(
                    "the apply lock was lost (%s): %d writes waiting for their slot not sent",
                    self.lost,
                    self._refused,
                )

    def refuse(self, what: str, call: Awaitable[Any]) -> None:
        """``call`` is not sent: the lock is lost."""
        if inspect.iscoroutine(call):
            call.close()  # never started: no "was never awaited" warning
        self.not_sent.append(what)

    def stopped(self, error: AmoError) -> bool:
        """Whether ``error`` says the request was held back by the loss (not sent)."""
        if isinstance(error, LockLostNotSentError):
            return True
        return (
            isinstance(error, BatchError)
            and not error.succeeded
            and all(isinstance(e, LockLostNotSentError) for e in error.errors.values())
        )

    def _check(self, request: Request) -> None:
        # Run by the throttle once a request of this apply has its slot, just before it
        # goes on the wire: a write that waited for its slot while the lock was lost is
        # refused there and gives the slot back. Reads may go on (they change nothing).
        lost = self.lost
        if lost is not None and request.method != "GET":
            self._refused += 1
            raise LockLostNotSentError(
                f"the apply lock was lost ({lost}): {request.method} {request.url.path} not sent"
            )
