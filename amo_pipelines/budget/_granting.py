"""Granting: each account's queue of waiting requests and the task (the "pump") that
grants them as the windows allow, in arrival order.

:class:`~amo_pipelines.budget.limiter.RateLimiter` is built on :class:`_Granting`: this
module holds how a request gets, gives back and releases its place (the algorithm is
described in :mod:`amo_pipelines.budget.limiter`); that one holds the configuration, the
pauses and penalties, and what a caller sees.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import weakref
from typing import TYPE_CHECKING

from ..errors import AmoError
from ..http.clock import Clock
from ._account import (
    AccountBlockedElsewhereError,
    AccountState,
    Hold,
    Waiter,
    earliest,
    scaled,
    sleep_or_kick,
    store_failed,
)
from .windows import (
    Admission,
    Blocked,
    Granted,
    PenaltyRule,
    SharedWindowStore,
    Window,
    WindowStore,
)

if TYPE_CHECKING:
    from .limiter import Limit

logger = logging.getLogger("amo_pipelines.budget.limiter")

_UNCOUNTED = Granted(at=0.0, windows=())
"""The grant of a request no limit applies to (both are off): the store is not asked,
as there is nothing to count and a shared store would only add a round trip."""


class _Granting:
    """The granting half of a rate limiter (see the module docstring)."""

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

    # ------------------------------------------------------------------ acquiring

    async def acquire(
        self, account: str, integration: str | None = None, *, owner: object = None
    ) -> Hold:
        """Wait for a rate grant and an in-flight place for one request to ``account``.

        Then send the request and call :meth:`release` once it is answered or failed (the
        grant stays counted: it was sent), or :meth:`give_back` if it was not sent after
        all (the grant leaves the windows and the next waiter gets both at once). Exactly
        one of the two, once. :meth:`slot` wraps the pair in an ``async with``; the client
        calls them directly, as this runs on every request. ``integration`` is a
        fingerprint of the access token (``None``: the account limit only); ``owner`` tags
        the wait for :meth:`abort_waiters`.
        """
        self._bind_loop()
        acct = self._account(account)
        # Fast path: nobody is queued, so asking the store directly keeps FIFO order.
        if not acct.queue and acct.pump is None and not acct.refunds:
            grant = await self._try_now(acct, integration)
            if grant is not None:
                return Hold(acct, grant)
        future = asyncio.get_running_loop().create_future()
        waiter = Waiter(next(self._seq), integration, future, owner)
        acct.queue[waiter.seq] = waiter
        self._kick(acct)
        try:
            await waiter.future
        except BaseException:
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                # Granted, but cancelled before the task resumed: nothing was sent, so
                # hand the grant back (the pump removes it from the windows).
                acct.in_flight -= 1
                acct.refunds.append(future.result())
            else:
                acct.queue.pop(waiter.seq, None)
                future.cancel()
            self._kick(acct)
            self._forget_if_idle(acct)
            raise
        return Hold(acct, waiter.future.result())

    async def _try_now(self, acct: AccountState, integration: str | None) -> Granted | None:
        now = self._clock.now()
        if now < acct.paused_until or self._in_flight_full(acct):
            return None
        acct.in_flight += 1  # reserved across the store call
        try:
            windows = self._windows(acct, integration, now)
            if not windows:
                admission: Admission = _UNCOUNTED
            elif self._shared is None:
                admission = await self._store.acquire(windows, now)
            else:
                admission = await self._ask_shared(acct, windows)
        except BaseException as exc:
            acct.in_flight -= 1
            self._forget_if_idle(acct)
            if isinstance(exc, Exception) and not isinstance(exc, AmoError):
                raise store_failed(exc) from exc
            raise
        if isinstance(admission, Granted):
            return admission
        acct.in_flight -= 1
        return None

    async def release(self, hold: Hold) -> None:
        """The request of ``hold`` was sent and is answered (or failed): its windows
        count it from now on, and its in-flight place is free."""
        acct, grant = hold.account, hold.grant
        try:
            if grant.windows:
                await self._store.complete(grant, self._clock.now())
        except Exception as exc:
            # The answer is already here: a bookkeeping failure must not replace it.
            # The grant then stays pending in the store, which errs on the safe side.
            logger.warning("rate limiter: window store failed (%s)", type(exc).__name__)
        finally:
            self._free_place(acct)

    def give_back(self, hold: Hold) -> None:
        """Nothing was sent under ``hold`` after all: free its in-flight place and take
        its grant out of the windows (the pump does that, before it grants anyone), so the
        next waiter, of any client, can use both at once."""
        acct, grant = hold.account, hold.grant
        acct.in_flight -= 1
        if grant.windows:
            acct.refunds.append(grant)
        if acct.queue or acct.refunds:
            self._kick(acct)

    def _free_place(self, acct: AccountState) -> None:
        # An account that goes idle here is kept (with its cached windows) for its next
        # request; the sweep in _account forgets idle ones once there are many.
        acct.in_flight -= 1
        if acct.queue:
            self._kick(acct)

    # ------------------------------------------------------------------ the pump

    def _kick(self, acct: AccountState) -> None:
        """Something changed: make the account's pump look at its queue again."""
        acct.kicked = True
        if acct.kick is not None and not acct.kick.done():
            acct.kick.set_result(None)
        if acct.pump is None and (acct.queue or acct.refunds):
            acct.pump = asyncio.get_running_loop().create_task(
                self._pump(acct), name="amo_pipelines rate limiter"
            )

    async def _pump(self, acct: AccountState) -> None:
        """Grant queued waiters of one account as the windows allow; ends when idle."""
        try:
            while acct.queue or acct.refunds:
                acct.kicked = False
                wake_at = await self._scan(acct)
                if acct.kicked or not acct.queue:
                    continue
                kick = acct.kick = asyncio.get_running_loop().create_future()
                try:
                    if wake_at is None:  # only a release, a cancel or an arrival can help
                        await kick
                    else:
                        await sleep_or_kick(self._clock, wake_at - self._clock.now(), kick)
                finally:
                    acct.kick = None
        except asyncio.CancelledError:
            acct.refunds.clear()
            self._fail_waiters(acct, None)
            raise
        except AccountBlockedElsewhereError as exc:
            acct.refunds.clear()
            self._fail_waiters(acct, exc, wrap=False)
        except Exception as exc:
            logger.warning("rate limiter: window store failed (%s)", type(exc).__name__)
            acct.refunds.clear()
            self._fail_waiters(acct, exc)
        finally:
            acct.pump = None
            self._forget_if_idle(acct)

    async def _scan(self, acct: AccountState) -> float | None:
        """One pass over the queue in arrival order; returns when to look again."""
        while acct.refunds:
            await self._refund(acct.refunds.pop())
        now = self._clock.now()
        if now < acct.paused_until:
            return acct.paused_until
        wake_at: float | None = None
        held_back: set[str | None] = set()  # integrations whose first waiter must wait
        for waiter in list(acct.queue.values()):
            if waiter.future.done() or waiter.integration in held_back:
                continue  # cancelled (leaving), or behind an earlier one of its integration
            if self._in_flight_full(acct):
                return wake_at  # a release will kick us
            now = self._clock.now()
            windows = self._windows(acct, waiter.integration, now)
            acct.in_flight += 1
            try:
                if not windows:
                    admission: Admission = _UNCOUNTED
                elif self._shared is None:
                    admission = await self._store.acquire(windows, now)
                else:
                    admission = await self._ask_shared(acct, windows)
            except BaseException:
                acct.in_flight -= 1
                raise
            if isinstance(admission, Granted):
                if waiter.future.done():  # cancelled while the store was answering
                    acct.in_flight -= 1
                    await self._refund(admission)
                else:
                    del acct.queue[waiter.seq]
                    waiter.future.set_result(admission)
                continue
            acct.in_flight -= 1
            if math.isfinite(admission.retry_after):
                wake_at = earliest(wake_at, now + admission.retry_after)
            # else: only an answer frees a place, and its release kicks the pump
            if acct.factor < 1.0:  # a recovery step may let it go sooner
                wake_at = earliest(wake_at, acct.factor_since + self._recovery_interval)
            account_index = len(windows) - 1
            if self._account_limit is not None and account_index in admission.blocking:
                return wake_at  # the account is full: nobody behind can fit either
            held_back.add(waiter.integration)
        return wake_at

    def _fail_waiters(
        self, acct: AccountState, exc: Exception | None, *, wrap: bool = True, owner: object = None
    ) -> int:
        """Empty the queue (of ``owner``'s waiters only, if given): cancel the waiters
        (``exc`` None) or raise ``exc`` in them."""
        if owner is None:
            waiters = [waiter for waiter in acct.queue.values() if not waiter.future.done()]
            acct.queue.clear()
        else:
            waiters = [
                waiter
                for waiter in acct.queue.values()
                if waiter.owner is owner and not waiter.future.done()
            ]
            for waiter in waiters:
                del acct.queue[waiter.seq]
        for waiter in waiters:
            if exc is None:
                waiter.future.cancel()
            elif wrap:
                waiter.future.set_exception(store_failed(exc))
            else:
                waiter.future.set_exception(exc)
        return len(waiters)

    # ------------------------------------------------------------------ helpers

    async def _ask_shared(self, acct: AccountState, windows: tuple[Window, ...]) -> Admission:
        assert self._shared is not None
        admission = await self._shared.acquire_account(acct.name, windows, self._rule)
        if isinstance(admission, Blocked):
            raise AccountBlockedElsewhereError(admission)
        return admission

    async def _refund(self, grant: Granted) -> None:
        if grant.windows:
            await self._store.refund(grant)

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

    def _bind_loop(self) -> None:
        """Tie the limiter to the running loop; move on from a loop that is gone."""
        loop = asyncio.get_running_loop()
        bound = None if self._loop_ref is None else self._loop_ref()
        if bound is loop:
            return
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
