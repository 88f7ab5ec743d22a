"""The writes of one apply, stopped once the account's apply lock is lost.

A lock with a TTL (:class:`~amo_pipelines.redis.RedisApplyLock`) can be lost mid-apply;
another apply may then hold the account, and two applies matching by name would create the
same pipelines twice. Every write of :func:`~amo_pipelines.funnels.apply` and
:func:`~amo_pipelines.funnels.copy_funnels` goes through :meth:`WriteGuard.step`, which
checks the :class:`~amo_pipelines.funnels.lock.HeldLock` (an attribute read: the lock's
renewal task sets it) before the write starts. Writes that already wait at the client's
rate limiter when the lock is lost would pass that check long before they are sent, so the
loss also fails the client's queued requests at once (the limiter's ``abort_waiters``,
as closing the client does): they were never sent. Writes already on the wire land as
they do; they count as written (or failed).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ..errors import AmoError, BatchError
from .lock import HeldLock

if TYPE_CHECKING:
    from ..client import AmoClient

logger = logging.getLogger("amo_pipelines.funnels")


class LockLostNotSentError(AmoError):
    """A request of an apply that was not sent because the account's apply lock was lost
    (it was waiting for its rate-limit slot)."""


class WriteGuard:
    """Counts an apply's writes (``written``, ``not_sent``) and stops them once ``held`` is
    lost. ``held`` ``None``: a lock that can not be lost."""

    def __init__(self, amo: AmoClient, held: HeldLock | None) -> None:
        self.held = held
        self.written: list[str] = []
        self.not_sent: list[str] = []
        self._amo = amo
        self._remove = held.on_lost(self._abort_queued) if held is not None else None

    @property
    def lost(self) -> str | None:
        return self.held.lost if self.held is not None else None

    def close(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None

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

    def _abort_queued(self) -> None:
        # The client's requests queued at its rate limiter: the throttle raises this in
        # each, before anything is sent. Requests of the same client that are not this
        # apply's are failed too: the client's queue does not tell them apart.
        amo = self._amo
        throttle = getattr(amo, "_throttle", None)
        gate = getattr(amo, "_gate", None)
        account = getattr(throttle, "account", None)
        if throttle is None or gate is None or account is None:  # pragma: no cover
            return
        reason = self.lost or "lost"
        aborted = amo.rate_limiter.abort_waiters(
            account,
            LockLostNotSentError(f"the apply lock of {account} was lost ({reason}): not sent"),
            owner=gate,
        )
        logger.warning(
            "the apply lock of %s was lost (%s): %d queued requests not sent",
            account,
            reason,
            aborted,
        )
