"""Granting: each account's queue of waiting requests and the task (the "pump") that
grants them as the windows allow, in arrival order.

:class:`~amo_pipelines.budget.limiter.RateLimiter` is built on :class:`_Granting`: this
module holds how a request gets, gives back and releases its place (the algorithm is
described in :mod:`amo_pipelines.budget.limiter`); that one holds the configuration, the
pauses and penalties, and what a caller sees.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections.abc import Coroutine
from typing import Any

from ..errors import AmoError
from ._account import (
    AccountBlockedElsewhereError,
    Accounts,
    AccountState,
    Hold,
    Waiter,
    earliest,
    sleep_or_kick,
    store_failed,
)
from .windows import (
    Admission,
    Blocked,
    Granted,
    SharedWindowStore,
    Window,
    WindowStore,
)

logger = logging.getLogger("amo_pipelines.budget.limiter")

_UNCOUNTED = Granted(at=0.0, windows=())
"""The grant of a request no limit applies to (both are off): the store is not asked,
as there is nothing to count and a shared store would only add a round trip."""


def answers_at_once(
    store: WindowStore, shared: SharedWindowStore | None
) -> tuple[bool, dict[str, object]]:
    """Whether ``store`` offers the :class:`~amo_pipelines.budget.windows.AnswersAtOnce`
    calls the limiter uses, and its instance attributes (see ``_Granting.take``)."""
    at_once = hasattr(store, "complete_now") and hasattr(
        store, "acquire_now" if shared is None else "acquire_account_now"
    )
    return at_once, getattr(store, "__dict__", {})


class _Granting(Accounts):
    """The granting half of a rate limiter (see the module docstring)."""

    # ------------------------------------------------------------------ acquiring

    async def acquire(
        self, account: str, integration: str | None = None, *, owner: object = None
    ) -> Hold:
        """Wait for a rate grant and an in-flight place for one request to ``account``.

        Then send the request and call :meth:`release` once it is answered or failed (the
        grant stays counted: it was sent), or :meth:`give_back` if it was not sent after
        all (the grant leaves the windows and the next waiter gets both at once). Exactly
        one of the two, once. :meth:`slot` wraps the pair in an ``async with``.
        ``integration`` is a fingerprint of the access token (``None``: the account limit
        only); ``owner`` tags the wait for :meth:`abort_waiters`.
        """
        taken = self.take(account, integration, owner=owner)
        return taken if isinstance(taken, Hold) else await taken

    def take(
        self,
        account: str,
        integration: str | None = None,
        *,
        owner: object = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Hold | Coroutine[Any, Any, Hold]:
        """:meth:`acquire` for a caller on every request (the client): the place itself
        when it is granted at once (nobody queued, room in the windows, and a store that
        answers without waiting, :class:`~amo_pipelines.budget.windows.AnswersAtOnce`),
        else the coroutine to await for it. Then :meth:`settle` or :meth:`give_back`.
        ``loop``: the running loop, when the caller knows it (it saves looking it up)."""
        # Every request is here: the helpers' common cases are written out inline (each
        # call saved is ~0.1 us on a loop busy with the network).
        bound = self._loop_ref
        if loop is None or bound is None or bound() is not loop:
            loop = self._bind_loop(loop)
        acct = self._accounts.get(account)
        if acct is None:
            acct = self._account(account)
        # Nobody is queued, so asking the store directly keeps FIFO order.
        if not acct.queue and acct.pump is None and not acct.refunds:
            now = self._clock.now()
            cap = self._max_in_flight
            if now >= acct.paused_until and (cap is None or acct.in_flight < cap):
                cached = acct.windows.get(integration)
                if cached is not None and acct.factor >= 1.0 and cached[0] == 1.0:
                    windows = cached[1]  # (as _windows gives them, unpenalised)
                else:
                    windows = self._windows(acct, integration, now)
                if not windows:  # nothing to count: the store is not asked
                    acct.in_flight += 1
                    return Hold(acct, _UNCOUNTED)
                shared = self._shared
                # Not when the store's async call was replaced on the instance
                # (instrumentation that records grants): that one must see every grant.
                if (
                    not self._now_store
                    or ("acquire" if shared is None else "acquire_account") in self._store_own
                ):
                    return self._acquire(acct, integration, owner, (windows, now))
                acct.in_flight += 1  # (as in _try_now)
                try:
                    if shared is None:
                        admission = self._store.acquire_now(windows, now, loop)  # type: ignore[attr-defined]
                    else:
                        admission = shared.acquire_account_now(  # type: ignore[attr-defined]
                            acct.name, windows, self._rule, loop
                        )
                        if isinstance(admission, Blocked):
                            raise AccountBlockedElsewhereError(admission)
                except BaseException as exc:
                    failure = self._unreserve(acct, exc)
                    if failure is exc:
                        raise
                    raise failure from exc
                if isinstance(admission, Granted):
                    return Hold(acct, admission)
                acct.in_flight -= 1
        return self._acquire(acct, integration, owner, None)

    async def _acquire(
        self,
        acct: AccountState,
        integration: str | None,
        owner: object,
        first: tuple[tuple[Window, ...], float] | None,
    ) -> Hold:
        """Try ``first`` (windows and time) now, else wait in the queue for a place."""
        if first is not None:
            grant = await self._try_now(acct, *first)
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

    # A first try takes its in-flight place across the store call (the windows are asked
    # with it reserved); a refusal or a failure frees it again.

    async def _try_now(
        self, acct: AccountState, windows: tuple[Window, ...], now: float
    ) -> Granted | None:
        acct.in_flight += 1
        try:
            if self._shared is None:
                admission: Admission = await self._store.acquire(windows, now)
            else:
                admission = await self._ask_shared(acct, windows)
        except BaseException as exc:
            failure = self._unreserve(acct, exc)
            if failure is exc:
                raise
            raise failure from exc
        if isinstance(admission, Granted):
            return admission
        acct.in_flight -= 1
        return None

    def _unreserve(self, acct: AccountState, exc: BaseException) -> BaseException:
        """The store failed a first try: free its place; what to raise (``exc`` itself,
        or for a failure of the store's own, :class:`RateLimitStoreError`)."""
        acct.in_flight -= 1
        self._forget_if_idle(acct)
        if isinstance(exc, Exception) and not isinstance(exc, AmoError):
            return store_failed(exc)
        return exc

    async def release(self, hold: Hold) -> None:
        """The request of ``hold`` was sent and is answered (or failed): its windows
        count it from now on, and its in-flight place is free."""
        settling = self.settle(hold)
        if settling is not None:
            await settling

    def settle(self, hold: Hold) -> Coroutine[Any, Any, None] | None:
        """:meth:`release` for a caller on every request: done at once (None) when the
        store records answers without waiting, else the coroutine to await."""
        grant, acct = hold.grant, hold.account
        if grant.windows:
            if not self._now_store:
                return self._complete(hold)
            try:
                bound = self._loop_ref
                loop = None if bound is None else bound()
                self._store.complete_now(grant, self._clock.now(), loop)  # type: ignore[attr-defined]
            except Exception as exc:
                # The answer is already here: a bookkeeping failure must not replace it.
                # The grant then stays pending in the store, which errs on the safe side.
                logger.warning("rate limiter: window store failed (%s)", type(exc).__name__)
            finally:
                acct.in_flight -= 1  # (_free_place, inline)
                if acct.queue:
                    self._kick(acct)
            return None
        acct.in_flight -= 1  # (the same: nothing to record)
        if acct.queue:
            self._kick(acct)
        return None

    async def _complete(self, hold: Hold) -> None:
        try:
            await self._store.complete(hold.grant, self._clock.now())
        except Exception as exc:  # (as in settle)
            logger.warning("rate limiter: window store failed (%s)", type(exc).__name__)
        finally:
            self._free_place(hold.account)

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
            # In a context of its own: a task copies the context it starts in, and the pump
            # would otherwise keep whatever the request that woke it had there (an app's
            # request objects, a tracing span) for as long as it runs.
            acct.pump = contextvars.Context().run(
                asyncio.get_running_loop().create_task,
                self._pump(acct),
                name="amo_pipelines rate limiter",
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
