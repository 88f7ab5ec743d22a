"""Redis-backed stores, for a budget and tokens shared by several machines.

Needs the ``redis`` extra (``pip install 'amo-pipelines[redis]'``): redis-py's asyncio
client, ``redis>=7.2,<9`` (7.2 fixes a deadlock when a task is cancelled while releasing
the async lock, which :class:`RedisTokenStore` holds around each token refresh). The core
package never imports this module.

* :class:`RedisWindowStore`: both rate limits of an account checked and recorded in one
  Lua script on the server's clock (``TIME``), pending grants held until their answer and
  then for one period, leases renewed by a heartbeat so a killed process frees its places
  within ``lease`` plus one period, nothing granted for ``lease`` plus one period after the
  account's keys were lost (restart, flush), and the 429 pause, penalty and block kept
  there too. Use it as ``RateLimiter(store=RedisWindowStore(redis))``.
* :class:`RedisTokenStore`: an OAuth token pair saved with compare-and-set, refreshes
  serialised by a lock whose TTL covers the token request.
* :class:`RedisApplyLock`: one :func:`amo_pipelines.funnels.apply` per account across
  machines (what :func:`~amo_pipelines.funnels.lock.lock_for` picks for a client whose
  limiter uses a :class:`RedisWindowStore`).

When Redis can not be reached, a request fails with
:class:`~amo_pipelines.budget.limiter.RateLimitStoreError` before anything is sent: falling back
to a budget of this process alone could overrun the account.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import LockError, RedisError

from .auth.tokens import TokenSet
from .budget import redis_lua
from .budget._lease import DEFAULT_LEASE, LeaseKeeper, Renewal, check_lease
from .budget.windows import (
    Admission,
    Blocked,
    Denied,
    Granted,
    PenaltyRule,
    SharedAdmission,
    Window,
)
from .errors import InvalidInputError, TokenStoreError

if TYPE_CHECKING:
    from .funnels.lock import HeldLock

__all__ = ["RedisApplyLock", "RedisTokenStore", "RedisWindowStore"]

logger = logging.getLogger("amo_pipelines.funnels")

_STATE_TTL = 7 * 24 * 3600.0  # seconds an idle account's pause, penalty and fence live


def _tag(account: str) -> str:
    # The hash tag: every key of one account lands in one cluster slot ({...} is the tag).
    return "{" + account.replace("{", "(").replace("}", ")") + "}"


class RedisWindowStore:
    """A :class:`~amo_pipelines.budget.windows.SharedWindowStore` in Redis (see the module).

    ``redis``: a ``redis.asyncio.Redis`` (or ``RedisCluster``) client of the event loop
    that uses the limiter. ``prefix`` starts every key. ``lease``: seconds a pending grant
    holds its place without renewal. Every key carries a TTL.
    """

    def __init__(
        self,
        redis: aioredis.Redis | Any,
        *,
        prefix: str = "amo_pipelines",
        lease: float = DEFAULT_LEASE,
    ) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise InvalidInputError("must be non-empty, without braces", field="prefix")
        self.redis = redis
        self.prefix = prefix
        self.lease = check_lease(lease)
        self._acquire = redis.register_script(redis_lua.ACQUIRE)
        self._settle = redis.register_script(redis_lua.SETTLE)
        self._note_429 = redis.register_script(redis_lua.NOTE_429)
        self._block = redis.register_script(redis_lua.BLOCK)
        self._tag = os.urandom(6).hex()
        self._seq = 0
        self._keeper = LeaseKeeper(self.lease, self._renew)

    def __repr__(self) -> str:
        return f"RedisWindowStore(prefix={self.prefix!r}, lease={self.lease!r})"

    def _key(self, account: str, suffix: str) -> str:
        return f"{self.prefix}:{_tag(account)}:{suffix}"

    def _window_keys(self, account: str, windows: Sequence[Window]) -> list[str]:
        return [self._key(account, "w:" + window.key) for window in windows]

    # ------------------------------------------------------------------ WindowStore

    async def acquire(self, windows: Sequence[Window], now: float) -> Admission:
        """:class:`WindowStore` use without an account: no pause, penalty or block."""
        admission = await self.acquire_account("", windows, None)
        if isinstance(admission, Blocked):  # pragma: no cover - never recorded without one
            return Denied(float("inf"), tuple(range(len(windows))))
        return admission

    async def acquire_account(
        self, account: str, windows: Sequence[Window], rule: PenaltyRule | None
    ) -> SharedAdmission:
        self._seq += 1
        receipt = f"{self._tag}.{self._seq}"
        args: list[Any] = [
            receipt,
            self.lease * 1000,
            1.0 if rule is None else rule.step,
            1000.0 if rule is None else rule.interval * 1000,
            _STATE_TTL * 1000,
        ]
        for window in windows:
            args += [window.limit, window.span * 1000]
        keys = [
            self._key(account, "s"),
            self._key(account, "e"),
            *self._window_keys(account, windows),
        ]
        reply = [_text(part) for part in await self._acquire(keys=keys, args=args)]
        if reply[0] == "G":
            self._keeper.add(receipt, account, windows)
            return Granted(at=float(reply[1]) / 1000, windows=tuple(windows), receipt=receipt)
        if reply[0] == "B":
            wait = float(reply[1])
            return Blocked(None if wait < 0 else wait / 1000, reply[2])
        blocking = tuple(int(i) for i in reply[2:]) or tuple(range(len(windows)))
        return Denied(float(reply[1]) / 1000, blocking)

    async def complete(self, grant: Granted, at: float) -> None:
        entry = self._keeper.pop(grant.receipt)
        if entry is not None:
            await self._run_settle(entry[0], entry[1], grant.receipt, "done")

    async def refund(self, grant: Granted) -> None:
        entry = self._keeper.pop(grant.receipt)
        if entry is not None:
            keys = self._window_keys(entry[0], entry[1])
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrem(key, grant.receipt)
                await pipe.execute()

    async def _run_settle(
        self, account: str, windows: Sequence[Window], receipt: str, mode: str
    ) -> None:
        args: list[Any] = [receipt, self.lease * 1000, mode]
        args += [window.span * 1000 for window in windows]
        await self._settle(keys=self._window_keys(account, windows), args=args)

    async def _renew(self, items: list[Renewal]) -> None:
        for account, windows, receipt in items:
            await self._run_settle(account, windows, receipt, "renew")

    # ------------------------------------------------------------------ account state

    async def note_429(self, account: str, pause: float, rule: PenaltyRule) -> None:
        args = [pause * 1000, rule.factor, rule.minimum, rule.step, rule.interval * 1000]
        await self._note_429(keys=[self._key(account, "s")], args=[*args, _STATE_TTL * 1000])

    async def note_block(self, account: str, cooldown: float | None, note: str) -> None:
        ttl = _STATE_TTL if cooldown is None else max(_STATE_TTL, cooldown + 60)
        args = [-1 if cooldown is None else cooldown * 1000, note, ttl * 1000]
        await self._block(keys=[self._key(account, "s")], args=args)

    async def clear_block(self, account: str) -> None:
        await self.redis.hdel(self._key(account, "s"), "bu", "bn")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisTokenStore:
    """One account's OAuth token pair in Redis, for workers on several machines.

    ``save`` is a compare-and-set: it writes only if the stored pair is still the one this
    store last loaded or saved (or if it has loaded nothing yet, as for a code exchange);
    otherwise another process saved a newer pair meanwhile and :class:`TokenStoreError`
    says this one was not saved. ``lock()`` serialises refreshes across processes; its TTL
    (``lock_ttl``, default 90 s) outlasts the token request (60 s by default), so the lock
    of a process that died mid-refresh frees itself, but never during a live one.
    """

    def __init__(
        self,
        redis: aioredis.Redis | Any,
        key: str,
        *,
        lock_ttl: float = 90.0,
        lock_timeout: float = 120.0,
    ) -> None:
        if not key:
            raise InvalidInputError("must be a non-empty string", field="key")
        self.redis = redis
        self.key = key
        self.lock_key = key + ":lock"  # a "{tag}" in key puts both in one cluster slot
        self._lock_ttl = lock_ttl
        self._lock_timeout = lock_timeout
        self._seen: bytes | None = None
        self._loaded = False
        self._cas = redis.register_script(
            "local v = redis.call('GET', KEYS[1])\n"
            "if ARGV[2] == '1' and (v or '') ~= ARGV[3] then return 0 end\n"
            "redis.call('SET', KEYS[1], ARGV[1])\nreturn 1"
        )

    def __repr__(self) -> str:
        return f"RedisTokenStore(key={self.key!r})"

    async def load(self) -> TokenSet | None:
        try:
            value = await self.redis.get(self.key)
        except RedisError as exc:
            raise TokenStoreError(f"can not read {self.key} ({type(exc).__name__})") from None
        raw = value.encode() if isinstance(value, str) else value  # decode_responses=True
        self._seen, self._loaded = raw, True
        if raw is None:
            return None
        try:
            return TokenSet.from_dict(json.loads(raw))
        except (ValueError, TypeError):
            raise TokenStoreError(f"{self.key} does not hold a token set") from None

    async def save(self, tokens: TokenSet) -> None:
        raw = json.dumps(tokens.to_dict()).encode()
        expected = self._seen or b""
        try:
            args = [raw, "1" if self._loaded else "0", expected]
            saved = await self._cas(keys=[self.key], args=args)
        except RedisError as exc:
            raise TokenStoreError(f"can not save {self.key} ({type(exc).__name__})") from None
        if not saved:
            raise TokenStoreError(
                f"{self.key} changed since it was loaded: another process saved newer "
                "tokens; this pair was not saved"
            )
        self._seen, self._loaded = raw, True

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """Hold the refresh lock (see the class docstring)."""
        lock = self.redis.lock(
            self.lock_key, timeout=self._lock_ttl, blocking_timeout=self._lock_timeout
        )
        try:
            acquired = await lock.acquire()
        except RedisError as exc:
            raise TokenStoreError(f"can not lock {self.lock_key} ({type(exc).__name__})") from None
        if not acquired:
            raise TokenStoreError(f"waited {self._lock_timeout:g}s for {self.lock_key}")
        try:
            yield
        finally:
            with contextlib.suppress(LockError, RedisError):
                await lock.release()


class RedisApplyLock:
    """An :class:`~amo_pipelines.funnels.lock.ApplyLock` in Redis: one apply per account
    across processes and machines.

    The key (``<prefix>:{account}:apply-lock``, in the account's cluster slot) holds the
    holder's token for ``ttl`` seconds, and a task renews it every ``ttl / 3`` while the
    apply runs: an apply may take minutes, but the lock of a killed process frees itself
    within ``ttl``. ``hold`` waits up to ``timeout`` seconds, then raises
    :class:`~amo_pipelines.funnels.ApplyLockedError` naming the holder's host and process.
    An unreachable Redis raises :class:`~amo_pipelines.budget.limiter.RateLimitStoreError`;
    in both cases nothing was sent.

    The lock is lost mid-apply when a renewal finds the key gone or holding another token
    (it expired, or was deleted or overwritten), or when Redis has not confirmed a renewal
    for ``2 * ttl / 3`` seconds (it is retried every ``ttl / 10`` meanwhile), before the key
    can expire. The :class:`~amo_pipelines.funnels.lock.HeldLock` that ``hold`` yields is
    then marked lost and the apply stops before its next write
    (:class:`~amo_pipelines.funnels.ApplyLockLostError`): another apply may hold the account.
    """

    def __init__(
        self,
        redis: aioredis.Redis | Any,
        *,
        prefix: str = "amo_pipelines",
        timeout: float = 0.0,
        ttl: float = 30.0,
    ) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise InvalidInputError("must be non-empty, without braces", field="prefix")
        if not ttl > 0:
            raise InvalidInputError("must be positive", field="ttl")
        self.redis = redis
        self.prefix = prefix
        self.timeout = timeout
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"RedisApplyLock(prefix={self.prefix!r}, timeout={self.timeout}, ttl={self.ttl})"

    def key(self, account: str) -> str:
        return f"{self.prefix}:{_tag(account)}:apply-lock"

    @contextlib.asynccontextmanager
    async def hold(self, account: str) -> AsyncIterator[HeldLock]:
        from .budget.limiter import RateLimitStoreError
        from .funnels.errors import ApplyLockedError  # the funnels only when applying
        from .funnels.lock import HeldLock

        key = self.key(account)
        # The token names the holder (host and pid, nothing secret) for the error of others.
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        lock = self.redis.lock(
            key,
            timeout=self.ttl,
            sleep=min(0.1, self.ttl / 10),
            blocking=self.timeout > 0,
            blocking_timeout=self.timeout,
            thread_local=False,
        )
        loop = asyncio.get_running_loop()
        try:
            asked = loop.time()
            acquired = await lock.acquire(token=token)
            holder = None if acquired else await self.redis.get(key)
        except RedisError as exc:
            raise RateLimitStoreError(
                f"can not take the apply lock of {account} in Redis ({type(exc).__name__}); "
                "nothing was sent"
            ) from exc
        if not acquired:
            who = f" (held by {_text(holder).rsplit(':', 1)[0]})" if holder else ""
            raise ApplyLockedError(f"another apply to {account} is running{who}")
        held = HeldLock(account)
        # The key was set no earlier than the last attempt; a blocking acquire retried every
        # `sleep` seconds, so its TTL is counted from no earlier than that.
        confirmed = max(asked, loop.time() - min(0.1, self.ttl / 10))
        renewal = asyncio.ensure_future(self._renew(lock, held, confirmed))
        try:
            yield held
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            if held.lost is None:  # a lost key may be another holder's now: leave it
                with contextlib.suppress(LockError, RedisError):
                    await lock.release()

    async def _renew(self, lock: Any, held: HeldLock, confirmed: float) -> None:
        """Renew every ``ttl / 3``; mark ``held`` lost as the class docstring says.
        ``confirmed``: when the key's current TTL started, at the latest."""
        loop = asyncio.get_running_loop()
        key = self.key(held.account)
        deadline = self.ttl * 2 / 3  # past it unconfirmed, the key may expire at any time
        wait = self.ttl / 3
        while True:
            await asyncio.sleep(wait)
            sent = loop.time()
            try:
                await asyncio.wait_for(
                    lock.extend(self.ttl, replace_ttl=True),
                    timeout=max(0.0, confirmed + deadline - sent),
                )
            except LockError:  # LockNotOwnedError: expired, deleted, or another token
                held.lose(
                    f"the key {key} expired or was taken by another holder "
                    f"(its TTL is {self.ttl:g} s)"
                )
                return
            except (RedisError, asyncio.TimeoutError) as exc:
                if loop.time() >= confirmed + deadline:
                    held.lose(
                        f"Redis confirmed no renewal of {key} for {loop.time() - confirmed:.1f} s "
                        f"({type(exc).__name__}); its TTL is {self.ttl:g} s"
                    )
                    return
                logger.warning(
                    "could not renew the apply lock of %s (%s); retrying",
                    held.account,
                    type(exc).__name__,
                )
                wait = self.ttl / 10
                continue
            confirmed, wait = sent, self.ttl / 3
