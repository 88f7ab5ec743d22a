"""Client-side rate limiting for the amoCRM / Kommo API: never 429, yet full speed.

amoCRM allows at most 7 requests per second per integration (one access token in one
account) and 50 per second per account. Going over gives 429, and doing so repeatedly gets
the whole account blocked (403 on everything until support lifts it). A migration job that
issues hundreds of requests must therefore run right at the limit and never above it.
Usage::

    limiter = shared_limiter()  # one per event loop; or RateLimiter(...) passed around
    async with limiter.slot(account="acme.amocrm.ru", integration=token_fingerprint):
        response = await transport.send(request)

How it works, and why:

* **Sliding-window log, exact over any window, as the server counts it.** The server
  counts a request when it *arrives*, and all we know is that it arrives somewhere
  between our grant and its answer. So every grant holds a place in its windows from the
  moment it is granted until its answer comes back, and for one ``period`` after that
  (``WindowStore.complete``); a new grant is made only while fewer than ``count`` places
  are held. Whatever the network or the server's queue does to a request's arrival time,
  no ``period``-long window at the server can then see ``count + 1`` arrivals: for the
  last one granted of any such group, every other was granted earlier and, arriving less
  than a period before it, was still holding its place. The full burst is used: 7 requests
  go at t=0 and the 8th a period after the first answer (t = 1.0 plus that request's
  round trip). Fixed spacing (one request every 1/7 s) would waste the burst; a leaky or
  token bucket lets more than ``count`` into one window (see below). An earlier version
  counted from the grant plus a fixed margin; the migration benchmark caught it: a 97-item
  POST spent 170 ms between grant and arrival, and two 429s followed.
* **Margin.** ``margin`` (default 0) is extra time added to every period, for servers
  whose clock for the window runs differently; with answers closing the window it is
  not needed for network jitter. A request that fails without an answer closes its
  window when the failure is seen.
* **Both limits in one atomic step.** A request needs a place in its integration window
  *and* in its account window; the :class:`WindowStore` checks both and records the
  grant in both, or neither, in one call. That keeps the check exact when the store is
  shared between processes (a future Redis store would do it in one Lua script).
* **FIFO per key, without head-of-line blocking across integrations.** Waiters of one
  account are granted in arrival order by one scheduler task per account (the "pump").
  Within an integration the order is strict: a later request never passes an earlier one.
  On the account, a waiter that is held back *only by its own integration's limit* does
  not hold up the other integrations (otherwise one saturated token would cap the whole
  account at 7/s); but as soon as a waiter is held back by the *account* window, by the
  in-flight cap or by a pause, nobody behind it is served before it. So a waiter that
  needs both an integration place and an account place cannot starve: the moment its
  integration allows it, it is first in line for the account.
* **Cancellation.** A waiter cancelled while queued is removed at once: it consumes no
  place and the next waiter moves up. A waiter cancelled in the tiny gap after it was
  granted but before its task resumed did not send anything, so its grant is handed back
  (removed from the windows) and its in-flight place freed; the next waiter can use both
  right away. The same goes for a granted request that turns out not to be sent after all
  (its client began closing, the circuit opened, its token fell due, or the transport
  raised ``RequestNotSentError``: ``_give_back``). A request that was sent keeps its place
  in the window, whatever happens.
* **In-flight cap.** ``max_in_flight`` bounds the requests of one account running at once.
  The in-flight place is taken together with the rate grant, never before it: a request
  granted by the rate window and then kept waiting for an in-flight place would start
  later than its recorded grant time, and the window would no longer describe reality.
* **429 handling** (called by the retry layer). :meth:`RateLimiter.pause` stops all new
  grants for the account until a time (queues keep their order). :meth:`RateLimiter.penalize`
  is multiplicative decrease / additive increase: it halves the allowed count of both
  windows of the account (floor 1 per window); each full window (``period + margin``)
  without a further penalty gives back a tenth of the configured limit (7 -> 3 -> 4 -> 4 ->
  5 -> 6 -> 7 over about five seconds). Several 429s from the same burst arrive together,
  so a penalty within one window of the previous one is not applied again. Recovery needs
  no success reports: 429s are the only signal, and the server is the judge.
* **Injected clock.** All time reads and sleeps go through a
  :class:`~amo_pipelines.http.clock.Clock`; tests use
  :class:`~amo_pipelines.http.clock.FakeClock` and run in virtual time.
* **One limiter per event loop, one budget per machine.** A limiter's futures and tasks
  belong to one loop: :func:`shared_limiter` returns one per running loop. The windows
  live in its store, and the default store on the system clock is machine-wide
  (:class:`~amo_pipelines.budget.file.FileWindowStore`): every process and loop of the machine
  shares each account's windows, its 429 pause and penalty, and its block. With a shared
  store (:class:`~amo_pipelines.budget.windows.SharedWindowStore`) the pause, penalty and block
  are recorded in the store (:meth:`RateLimiter.note_429`, :meth:`RateLimiter.note_block`)
  and applied by it at each grant; a limiter on another clock (a ``FakeClock``) gets an
  :class:`InMemoryWindowStore`, since other processes can not share virtual time.

Libraries considered (none fits, so this module is written here):

* ``aiolimiter`` 1.3 is a leaky bucket: after a burst of 7 at t=0 it admits one more every
  1/7 s, i.e. 13 requests in the first second at 7/s (measured). It reads ``loop.time()``
  (no injectable clock), has a single limit (no atomic integration+account check), no
  pause or penalty, and no pluggable store for sharing across processes.
* ``limits`` 5.x has an exact moving window with async Redis storages, but only
  ``hit``/``test``: no waiting at all (callers must poll, so no FIFO order), the time is
  ``time.time()`` inside the storages (no injectable clock), and two limits are two separate
  hits (not atomic: the first may be consumed when the second refuses).
* ``pyrate-limiter`` 4.x has sliding-log buckets and Redis/SQL backends, but waits by
  ``asyncio.sleep`` and retrying (newcomers can overtake a waiter, no FIFO), its clocks
  count whole milliseconds and its sleeps are not injectable.

Keys: the integration key is a fingerprint of the token that the caller computes; this
module never logs keys and keeps them out of every ``repr``. It is not thread-safe: use a
limiter from its event loop's thread only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import weakref
from dataclasses import dataclass
from types import TracebackType

from ..errors import AmoError, InvalidInputError
from ..http.clock import SYSTEM_CLOCK, Clock
from .windows import (
    Admission,
    Blocked,
    Denied,
    Granted,
    InMemoryWindowStore,
    PenaltyRule,
    SharedWindowStore,
    Window,
    WindowStore,
)

__all__ = [
    "DEFAULT_ACCOUNT_LIMIT",
    "DEFAULT_INTEGRATION_LIMIT",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_IN_FLIGHT",
    "AccountBlockedElsewhereError",
    "AccountStats",
    "Admission",
    "Denied",
    "Granted",
    "InMemoryWindowStore",
    "Limit",
    "RateLimitStoreError",
    "RateLimiter",
    "Slot",
    "Window",
    "WindowStore",
    "shared_limiter",
]

logger = logging.getLogger(__name__)

_UNCOUNTED = Granted(at=0.0, windows=())
"""The grant of a request no limit applies to (both are off): the store is not asked,
as there is nothing to count and a shared store would only add a round trip."""


@dataclass(frozen=True)
class Limit:
    """At most ``count`` request starts in any window of ``period`` seconds."""

    count: int
    period: float = 1.0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise InvalidInputError("must be at least 1", field="Limit.count")
        if not self.period > 0:
            raise InvalidInputError("must be positive", field="Limit.period")


DEFAULT_INTEGRATION_LIMIT = Limit(7, 1.0)
DEFAULT_ACCOUNT_LIMIT = Limit(50, 1.0)
DEFAULT_MARGIN = 0.0
DEFAULT_MAX_IN_FLIGHT = 16

# A penalised account never drops below this fraction, so recovery stays bounded.
_MIN_FACTOR = 1 / 64


# --------------------------------------------------------------------------- limiter


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


@dataclass(frozen=True)
class AccountStats:
    """A snapshot of one account in a limiter (for metrics and tests)."""

    waiting: int
    in_flight: int
    paused_for: float  # seconds until a pause ends, 0.0 when not paused
    integration_limit: int | None  # effective count per window now (None: disabled)
    account_limit: int | None


class _Waiter:
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


class _Account:
    """Everything a limiter knows about one account (apart from the windows)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.queue: dict[int, _Waiter] = {}  # by arrival number, so in arrival order
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

    def carry_over(self) -> _Account:
        """A copy without loop-bound state: pauses and penalties outlive an event loop."""
        fresh = _Account(self.name)
        fresh.paused_until = self.paused_until
        fresh.factor = self.factor
        fresh.factor_since = self.factor_since
        fresh.penalized_at = self.penalized_at
        return fresh

    def has_loop_state(self) -> bool:
        return bool(self.queue or self.refunds or self.in_flight or self.pump)


def _store_failed(exc: BaseException) -> RateLimitStoreError:
    error = RateLimitStoreError(
        f"the rate limit window store failed ({type(exc).__name__}): the request was not sent"
    )
    error.__cause__ = exc
    return error


def _scaled(count: int, factor: float) -> int:
    return max(1, math.floor(count * factor + 1e-9))


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


async def _sleep_or_kick(clock: Clock, seconds: float, kick: asyncio.Future[None]) -> None:
    """Sleep on ``clock`` until ``seconds`` pass or ``kick`` is set, whichever first."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait((sleeper, kick), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not sleeper.done():
            sleeper.cancel()
        elif not sleeper.cancelled():
            sleeper.result()  # surface a failing clock


class Slot:
    """What :meth:`RateLimiter.slot` returns: ``async with`` it around one request.

    Entering waits for a rate grant and an in-flight place; leaving frees the in-flight
    place (the grant stays counted: the request was sent). Use each slot once.
    """

    __slots__ = ("_account", "_grant", "_held", "_integration", "_limiter", "_used")

    def __init__(self, limiter: RateLimiter, account: str, integration: str | None) -> None:
        self._limiter = limiter
        self._account = account
        self._integration = integration
        self._held: _Account | None = None
        self._grant: Granted | None = None
        self._used = False

    async def __aenter__(self) -> None:
        if self._used:
            raise RuntimeError("a rate limiter slot can be entered only once")
        self._used = True
        self._held, self._grant = await self._limiter._acquire(self._account, self._integration)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        held, self._held = self._held, None
        grant, self._grant = self._grant, None
        if held is not None and grant is not None:
            await self._limiter._finish(held, grant)


class RateLimiter:
    """Both amoCRM limits, an in-flight cap and 429 back-off for any number of accounts.

    ``integration_limit`` applies per (account, integration key), ``account_limit`` per
    account; ``None`` disables either. ``margin`` seconds are added to every period (see
    the module docstring). ``max_in_flight`` caps concurrent requests per account
    (``None``: no cap). ``store`` holds the windows (default: a fresh
    :class:`InMemoryWindowStore`). ``penalty_factor`` and ``recovery_step`` tune
    :meth:`penalize`.
    """

    def __init__(
        self,
        *,
        integration_limit: Limit | None = DEFAULT_INTEGRATION_LIMIT,
        account_limit: Limit | None = DEFAULT_ACCOUNT_LIMIT,
        margin: float = DEFAULT_MARGIN,
        max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT,
        clock: Clock = SYSTEM_CLOCK,
        store: WindowStore | None = None,
        penalty_factor: float = 0.5,
        recovery_step: float = 0.1,
    ) -> None:
        if not margin >= 0:
            raise InvalidInputError("must be >= 0", field="margin")
        if max_in_flight is not None and max_in_flight < 1:
            raise InvalidInputError(
                "must be at least 1 (or None for no cap)", field="max_in_flight"
            )
        if not 0 < penalty_factor < 1:
            raise InvalidInputError("must be between 0 and 1", field="penalty_factor")
        if not 0 < recovery_step <= 1:
            raise InvalidInputError("must be in (0, 1]", field="recovery_step")
        self._integration_limit = integration_limit
        self._account_limit = account_limit
        self._margin = float(margin)
        self._max_in_flight = max_in_flight
        self._clock = clock
        if store is None:
            # The machine-wide store on the system clock; virtual time can not be shared.
            if clock is SYSTEM_CLOCK:
                from .file import default_store

                store = default_store()
            else:
                store = InMemoryWindowStore()
        self._store: WindowStore = store
        # A store that keeps pauses, penalties and blocks itself (shared by processes).
        self._shared: SharedWindowStore | None = (
            store if hasattr(store, "acquire_account") else None  # type: ignore[assignment]
        )
        self._penalty_factor = penalty_factor
        self._recovery_step = recovery_step
        spans = [
            lim.period + self._margin
            for lim in (integration_limit, account_limit)
            if lim is not None
        ]
        # Penalties are judged per window: the longest one the limiter enforces.
        self._recovery_interval = max(spans, default=1.0 + self._margin)
        self._rule = PenaltyRule(
            penalty_factor, recovery_step, self._recovery_interval, _MIN_FACTOR
        )
        self._accounts: dict[str, _Account] = {}
        self._sweep_at = 64
        self._seq = itertools.count()
        self._loop_ref: weakref.ref[asyncio.AbstractEventLoop] | None = None

    # ------------------------------------------------------------------ public API

    @property
    def integration_limit(self) -> Limit | None:
        return self._integration_limit

    @property
    def account_limit(self) -> Limit | None:
        return self._account_limit

    @property
    def margin(self) -> float:
        return self._margin

    @property
    def max_in_flight(self) -> int | None:
        return self._max_in_flight

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def store(self) -> WindowStore:
        """Where the windows live (and, for a shared store, pauses and blocks)."""
        return self._store

    @property
    def active_accounts(self) -> int:
        """Accounts with live state (queued, in flight, paused or penalised)."""
        now = self._clock.now()
        return sum(1 for acct in self._accounts.values() if not self._is_idle(acct, now))

    def slot(self, account: str, integration: str | None = None) -> Slot:
        """An async context manager that holds one request's place for ``account``.

        ``integration`` is a fingerprint of the access token (never the token); ``None``
        applies the account limit only.
        """
        if not account:
            raise InvalidInputError("must be a non-empty string", field="account")
        return Slot(self, account, integration)

    def pause(self, account: str, seconds: float) -> None:
        """Make no new grants for ``account`` during the next ``seconds`` (e.g. Retry-After).

        Waiters keep their places; a longer pause already in force is not shortened.
        """
        if not seconds > 0:
            return
        acct = self._account(account)
        until = self._clock.now() + seconds
        if until > acct.paused_until:
            acct.paused_until = until
            logger.info("rate limiter: pausing account %s for %.3f s", account, seconds)
            self._kick(acct)

    def penalize(self, account: str) -> None:
        """Slow ``account`` down after a 429: halve both windows' counts (floor 1).

        One full window without a further penalty gives back ``recovery_step`` of the
        configured counts, until they are reached again. Penalties less than one window
        apart count once (a burst gets its 429s together).
        """
        now = self._clock.now()
        acct = self._account(account)
        factor = self._factor(acct, now)
        if now - acct.penalized_at < self._recovery_interval:
            return
        acct.factor = max(_MIN_FACTOR, factor * self._penalty_factor)
        acct.factor_since = acct.penalized_at = now
        logger.info("rate limiter: slowing account %s to %.0f%%", account, acct.factor * 100)

    async def note_429(self, account: str, seconds: float) -> None:
        """The server answered 429: :meth:`pause` and :meth:`penalize` ``account``, in the
        shared store too when there is one, so every process sharing it slows down.

        A store failure is logged, not raised: the 429 itself is the caller's answer.
        """
        self.pause(account, seconds)
        if self._shared is None:
            self.penalize(account)
            return
        try:
            await self._shared.note_429(account, max(0.0, seconds), self._rule)
        except Exception as exc:
            logger.warning("rate limiter: window store failed (%s)", type(exc).__name__)

    async def note_block(self, account: str, cooldown: float | None, note: str) -> None:
        """Record in a shared store that ``account`` is blocked, so that every process
        sharing it stops sending (``note`` says what was seen; never put a token in it)."""
        if self._shared is not None:
            try:
                await self._shared.note_block(account, cooldown, note)
            except Exception as exc:
                logger.warning("rate limiter: window store failed (%s)", type(exc).__name__)

    async def clear_block(self, account: str) -> None:
        """Forget a block recorded in the shared store (call it with
        ``CircuitBreaker.reset`` once support has lifted the block)."""
        if self._shared is not None:
            await self._shared.clear_block(account)

    def report_success(self, account: str) -> None:
        """Note a request that the server accepted. Recovery from :meth:`penalize` is
        time-based (a window without a 429 is the signal), so this changes nothing today;
        it is the hook for a policy that wants successes, and retry layers may call it."""

    def abort_waiters(self, account: str, error: Exception, *, owner: object = None) -> int:
        """Fail every request still queued for ``account`` with ``error``; return how many.

        For when waiting is pointless (the account got blocked, or the client that queued
        them is closing: ``owner`` then limits it to the requests queued with that owner).
        Requests already in flight are not touched; new requests queue as usual.
        """
        acct = self._accounts.get(account)
        if acct is None:
            return 0
        aborted = self._fail_waiters(acct, error, wrap=False, owner=owner)
        self._kick(acct)  # the pump, if any, sees the empty queue and ends
        self._forget_if_idle(acct)
        return aborted

    def stats(self, account: str) -> AccountStats:
        """What the limiter knows about ``account`` right now."""
        now = self._clock.now()
        acct = self._accounts.get(account)
        factor = 1.0 if acct is None else self._factor(acct, now)
        if acct is not None:
            self._forget_if_idle(acct)  # e.g. a penalty that has just worn off
        integration, whole = self._integration_limit, self._account_limit
        return AccountStats(
            waiting=0 if acct is None else len(acct.queue),
            in_flight=0 if acct is None else acct.in_flight,
            paused_for=0.0 if acct is None else max(0.0, acct.paused_until - now),
            integration_limit=None if integration is None else _scaled(integration.count, factor),
            account_limit=None if whole is None else _scaled(whole.count, factor),
        )

    def __repr__(self) -> str:
        return (
            f"RateLimiter(integration_limit={self._integration_limit!r}, "
            f"account_limit={self._account_limit!r}, margin={self._margin!r}, "
            f"max_in_flight={self._max_in_flight!r}, active_accounts={self.active_accounts})"
        )

    # ------------------------------------------------------------------ acquiring

    async def _acquire(
        self, account: str, integration: str | None, owner: object = None
    ) -> tuple[_Account, Granted]:
        """Wait for a grant and an in-flight place; :meth:`_finish` gives the place back
        (or :meth:`_give_back`, when nothing was sent after all).

        The two halves of :class:`Slot`; the throttle policy calls them directly, as this
        runs on every request. ``owner`` tags the wait for :meth:`abort_waiters`.
        """
        self._bind_loop()
        acct = self._account(account)
        # Fast path: nobody is queued, so asking the store directly keeps FIFO order.
        if not acct.queue and acct.pump is None and not acct.refunds:
            grant = await self._try_now(acct, integration)
            if grant is not None:
                return acct, grant
        future = asyncio.get_running_loop().create_future()
        waiter = _Waiter(next(self._seq), integration, future, owner)
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
        return acct, waiter.future.result()

    async def _try_now(self, acct: _Account, integration: str | None) -> Granted | None:
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
                raise _store_failed(exc) from exc
            raise
        if isinstance(admission, Granted):
            return admission
        acct.in_flight -= 1
        return None

    async def _finish(self, acct: _Account, grant: Granted) -> None:
        """The request is answered (or failed): its windows count it from now on."""
        try:
            if grant.windows:
                await self._store.complete(grant, self._clock.now())
        except Exception as exc:
            # The answer is already here: a bookkeeping failure must not replace it.
            # The grant then stays pending in the store, which errs on the safe side.
            logger.warning("rate limiter: window store failed (%s)", type(exc).__name__)
        finally:
            self._release(acct)

    def _give_back(self, acct: _Account, grant: Granted) -> None:
        """Nothing was sent under ``grant`` after all: free its in-flight place and take it
        out of its windows (the pump does that, before it grants anyone), so the next
        waiter, of any client, can use both at once."""
        acct.in_flight -= 1
        if grant.windows:
            acct.refunds.append(grant)
        if acct.queue or acct.refunds:
            self._kick(acct)

    def _release(self, acct: _Account) -> None:
        # An account that goes idle here is kept (with its cached windows) for its next
        # request; the sweep in _account forgets idle ones once there are many.
        acct.in_flight -= 1
        if acct.queue:
            self._kick(acct)

    # ------------------------------------------------------------------ the pump

    def _kick(self, acct: _Account) -> None:
        """Something changed: make the account's pump look at its queue again."""
        acct.kicked = True
        if acct.kick is not None and not acct.kick.done():
            acct.kick.set_result(None)
        if acct.pump is None and (acct.queue or acct.refunds):
            acct.pump = asyncio.get_running_loop().create_task(
                self._pump(acct), name="amo_pipelines rate limiter"
            )

    async def _pump(self, acct: _Account) -> None:
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
                        await _sleep_or_kick(self._clock, wake_at - self._clock.now(), kick)
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

    async def _scan(self, acct: _Account) -> float | None:
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
                wake_at = _earliest(wake_at, now + admission.retry_after)
            # else: only an answer frees a place, and its release kicks the pump
            if acct.factor < 1.0:  # a recovery step may let it go sooner
                wake_at = _earliest(wake_at, acct.factor_since + self._recovery_interval)
            account_index = len(windows) - 1
            if self._account_limit is not None and account_index in admission.blocking:
                return wake_at  # the account is full: nobody behind can fit either
            held_back.add(waiter.integration)
        return wake_at

    def _fail_waiters(
        self, acct: _Account, exc: Exception | None, *, wrap: bool = True, owner: object = None
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
                waiter.future.set_exception(_store_failed(exc))
            else:
                waiter.future.set_exception(exc)
        return len(waiters)

    # ------------------------------------------------------------------ helpers

    async def _ask_shared(self, acct: _Account, windows: tuple[Window, ...]) -> Admission:
        assert self._shared is not None
        admission = await self._shared.acquire_account(acct.name, windows, self._rule)
        if isinstance(admission, Blocked):
            raise AccountBlockedElsewhereError(admission)
        return admission

    async def _refund(self, grant: Granted) -> None:
        if grant.windows:
            await self._store.refund(grant)

    def _windows(self, acct: _Account, integration: str | None, now: float) -> tuple[Window, ...]:
        """The windows a request must fit in; the account window, if any, comes last."""
        factor = 1.0 if acct.factor >= 1.0 else self._factor(acct, now)
        cached = acct.windows.get(integration)
        if cached is not None and cached[0] == factor:
            return cached[1]  # the same keys and counts as last time: skip rebuilding them
        windows: list[Window] = []
        if self._integration_limit is not None and integration is not None:
            limit = self._integration_limit
            key = f"i|{acct.name}|{integration}"
            windows.append(Window(key, _scaled(limit.count, factor), limit.period + self._margin))
        if self._account_limit is not None:
            limit = self._account_limit
            key = f"a|{acct.name}"
            windows.append(Window(key, _scaled(limit.count, factor), limit.period + self._margin))
        if len(acct.windows) >= 64:  # many tokens on one busy account: start afresh
            acct.windows.clear()
        result = tuple(windows)
        acct.windows[integration] = (factor, result)
        return result

    def _factor(self, acct: _Account, now: float) -> float:
        """The account's current share of the configured counts, after recovery steps."""
        if acct.factor < 1.0:
            # (+1e-9: a step that is due now must not be lost to float rounding)
            steps = math.floor((now - acct.factor_since) / self._recovery_interval + 1e-9)
            if steps > 0:
                acct.factor = min(1.0, round(acct.factor + steps * self._recovery_step, 9))
                acct.factor_since += steps * self._recovery_interval
        return acct.factor

    def _in_flight_full(self, acct: _Account) -> bool:
        return self._max_in_flight is not None and acct.in_flight >= self._max_in_flight

    def _account(self, name: str) -> _Account:
        acct = self._accounts.get(name)
        if acct is None:
            if len(self._accounts) >= self._sweep_at:
                for idle in list(self._accounts.values()):
                    self._forget_if_idle(idle)
                self._sweep_at = 2 * len(self._accounts) + 64
            acct = self._accounts[name] = _Account(name)
        return acct

    def _is_idle(self, acct: _Account, now: float) -> bool:
        """Nothing in the account's state matters any more: it may be forgotten."""
        if acct.has_loop_state() or acct.paused_until > now:
            return False
        return self._factor(acct, now) >= 1.0

    def _forget_if_idle(self, acct: _Account) -> None:
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


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RateLimiter] = (
    weakref.WeakKeyDictionary()
)


def shared_limiter() -> RateLimiter:
    """The process-wide default limiter of the running event loop (default limits).

    Clients that are not given a limiter use this one, so all clients talking to the same
    account from one loop share its budget. It is weakly keyed by the loop: nothing of it
    survives the loop, and two loops never share asyncio objects.
    """
    loop = asyncio.get_running_loop()
    limiter = _shared.get(loop)
    if limiter is None:
        limiter = _shared[loop] = RateLimiter()
    return limiter
