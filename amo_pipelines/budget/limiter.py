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
  raised ``RequestNotSentError``: :meth:`RateLimiter.give_back`). A request that was sent
  keeps its place in the window, whatever happens.
* **In-flight cap.** ``max_in_flight`` bounds the requests of one account running at once.
  The in-flight place is taken together with the rate grant, never before it: a request
  granted by the rate window and then kept waiting for an in-flight place would start
  later than its recorded grant time, and the window would no longer describe reality.
* **429 handling** (the throttle policy reports each 429 to :meth:`RateLimiter.note_429`).
  :meth:`RateLimiter.pause` stops all new grants for the account until a time (queues
  keep their order). :meth:`RateLimiter.penalize`
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
import weakref
from dataclasses import dataclass
from types import TracebackType

from ..errors import InvalidInputError
from ..http.clock import SYSTEM_CLOCK, Clock
from ._account import (
    AccountBlockedElsewhereError,
    AccountState,
    Hold,
    RateLimitStoreError,
    scaled,
)
from ._granting import _Granting, answers_at_once
from .windows import (
    Admission,
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
    "Hold",
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


@dataclass(frozen=True)
class AccountStats:
    """A snapshot of one account in a limiter (for metrics and tests)."""

    waiting: int
    in_flight: int
    paused_for: float  # seconds until a pause ends, 0.0 when not paused
    integration_limit: int | None  # effective count per window now (None: disabled)
    account_limit: int | None


class Slot:
    """What :meth:`RateLimiter.slot` returns: ``async with`` it around one request.

    Entering waits for a rate grant and an in-flight place; leaving frees the in-flight
    place (the grant stays counted: the request was sent). Use each slot once.
    """

    __slots__ = ("_account", "_hold", "_integration", "_limiter", "_used")

    def __init__(self, limiter: RateLimiter, account: str, integration: str | None) -> None:
        self._limiter = limiter
        self._account = account
        self._integration = integration
        self._hold: Hold | None = None
        self._used = False

    async def __aenter__(self) -> None:
        if self._used:
            raise RuntimeError("a rate limiter slot can be entered only once")
        self._used = True
        self._hold = await self._limiter.acquire(self._account, self._integration)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            await self._limiter.release(hold)


class RateLimiter(_Granting):
    """Both amoCRM limits, an in-flight cap and 429 back-off for any number of accounts.

    ``integration_limit`` applies per (account, integration key), ``account_limit`` per
    account; ``None`` disables either. ``margin`` seconds are added to every period (see
    the module docstring). ``max_in_flight`` caps concurrent requests per account
    (``None``: no cap). ``store`` holds the windows (default: a fresh
    :class:`InMemoryWindowStore`). ``penalty_factor`` and ``recovery_step`` tune
    :meth:`penalize`.

    One request's place: :meth:`slot` (``async with``), or :meth:`acquire` and then
    exactly one of :meth:`release` (it was sent) and :meth:`give_back` (it was not).
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
        self._now_store, self._store_own = answers_at_once(store, self._shared)
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
        self._accounts: dict[str, AccountState] = {}
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
            integration_limit=None if integration is None else scaled(integration.count, factor),
            account_limit=None if whole is None else scaled(whole.count, factor),
        )

    def __repr__(self) -> str:
        return (
            f"RateLimiter(integration_limit={self._integration_limit!r}, "
            f"account_limit={self._account_limit!r}, margin={self._margin!r}, "
            f"max_in_flight={self._max_in_flight!r}, active_accounts={self.active_accounts})"
        )


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
