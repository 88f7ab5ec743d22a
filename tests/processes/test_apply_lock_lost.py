"""A Redis apply lock lost mid-apply (its key deleted, or overwritten by another holder)
stops the apply before its next write, with a real redis-server.

The client sends one request at a time (``max_in_flight=1``) to an emulator that answers
each after 50 ms, so most of the apply's writes wait at the client's rate limiter when the
lock goes: those must never reach the server. Every count is the emulator's request log.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.emulated import unlimited_config, writes

from amo_pipelines import NO_RETRY, AmoClient, RateLimiter
from amo_pipelines.emulator import Emulator
from amo_pipelines.funnels import (
    ApplyLockLostError,
    CopyTarget,
    apply,
    copy_funnels,
    export,
    spec_from_data,
)
from amo_pipelines.redis import RedisApplyLock

pytestmark = pytest.mark.slow

STATUSES = 30
TTL = 0.9  # renewed every 0.3 s
LATENCY = 0.05


def one_at_a_time(emu: Emulator) -> AmoClient:
    limiter = RateLimiter(integration_limit=None, account_limit=None, max_in_flight=1)
    return AmoClient(
        base_url=emu.url, access_token=emu.admin_token, rate_limiter=limiter, retry=NO_RETRY
    )


def funnel(color: str) -> Any:
    statuses = [{"name": f"Stage {i}", "color": color} for i in range(STATUSES)]
    return spec_from_data({"pipelines": [{"name": "Sales", "statuses": statuses}]})


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def wait_for_writes(emu: Emulator, count: int) -> int:
    for _ in range(400):
        done = len(writes(emu))
        if done >= count:
            return done
        await asyncio.sleep(0.005)
    raise AssertionError(f"only {len(writes(emu))} writes reached the emulator")


async def take_away(redis: Any, key: str, how: str) -> None:
    if how == "deleted":
        await redis.delete(key)
    else:  # another apply took it after it expired
        await redis.set(key, "elsewhere:1:other", px=60_000)


@pytest.mark.parametrize("how", ["deleted", "overwritten"])
async def test_apply_stops_before_its_next_write(redis: Any, how: str) -> None:
    config = unlimited_config(latency=LATENCY)
    async with Emulator(config) as emu, one_at_a_time(emu) as amo:
        await apply(amo, funnel("#99ccff"))  # 30 statuses; the next file changes every color
        emu.clear_log()
        lock = RedisApplyLock(redis, prefix=f"lost-{uuid.uuid4().hex}", ttl=TTL)
        running = asyncio.ensure_future(apply(amo, funnel("#fffeb2"), lock=lock))
        host = amo.base_url.host or ""
        key = lock.key(f"{host}:{amo.base_url.port}")
        before = await wait_for_writes(emu, 3)
        await take_away(redis, key, how)
        with pytest.raises(ApplyLockLostError) as caught:
            await asyncio.wait_for(running, timeout=10)
        error = caught.value
        sent = writes(emu)
        await asyncio.sleep(3 * LATENCY)
        assert writes(emu) == sent  # nothing after the error either

    # Stopped within one renewal period (0.3 s: 6 writes of 50 ms) plus the one on the wire.
    assert before <= len(sent) <= before + 8 < STATUSES
    assert all(method == "PATCH" for method, _ in sent)
    answered = [e for e in emu.request_log if e.method == "PATCH" and e.status == 200]
    assert len(error.written) == len(answered) == len(sent)
    assert all(what.startswith("change status") for what in error.written)
    assert error.not_sent and len(error.written) + len(error.not_sent) == STATUSES
    assert error.planned == STATUSES and error.failures == []
    assert error.host == f"{host}:{amo.base_url.port}"
    message = str(error)
    assert error.host in message and f"{len(sent)} of {STATUSES} write requests done" in message
    assert f"{STATUSES - len(sent)} not sent" in message
    # The key another holder took is left to it.
    if how == "overwritten":
        assert await redis.get(key) == b"elsewhere:1:other"


async def test_copy_stops_a_target_whose_lock_is_lost(redis: Any) -> None:
    pipelines = [
        {"name": f"Funnel {n}", "statuses": [{"name": f"Stage {i}"} for i in range(3)]}
        for n in range(25)
    ]
    spec = spec_from_data({"pipelines": pipelines})
    async with (
        Emulator(unlimited_config()) as source_emu,
        one_at_a_time(source_emu) as source,
        Emulator(unlimited_config(latency=LATENCY)) as target_emu,
        one_at_a_time(target_emu) as target,
    ):
        await apply(source, spec)
        exported = await export(source)
        lock = RedisApplyLock(redis, prefix=f"lost-{uuid.uuid4().hex}", ttl=TTL)
        key = lock.key(f"{target.base_url.host}:{target.base_url.port}")
        running = asyncio.ensure_future(copy_funnels(source, [CopyTarget(target)], lock=lock))
        before = await wait_for_writes(target_emu, 4)
        await redis.delete(key)
        result = await asyncio.wait_for(running, timeout=20)
        sent = writes(target_emu)
        await asyncio.sleep(3 * LATENCY)
        assert writes(target_emu) == sent

    [outcome] = result.targets
    error = outcome.error
    assert isinstance(error, ApplyLockLostError)
    assert before <= len(sent) <= before + 8
    # The pipelines POST, then a statuses POST per pipeline: far from all of them.
    assert len(sent) < 1 + len(exported.pipelines)
    assert len(error.written) == len(sent)
    assert error.written[0].startswith("create ") and "pipelines" in error.written[0]
    assert len(error.written) < error.planned


class _Unreachable:
    """A redis client whose lock is taken, then never renewed: Redis went away (or hangs)."""

    def __init__(self, hang: bool) -> None:
        self.hang = hang
        self.released = False

    def lock(self, *args: Any, **kwargs: Any) -> _Unreachable:
        return self

    async def acquire(self, token: str) -> bool:
        return True

    async def extend(self, *args: Any, **kwargs: Any) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError

        if self.hang:
            await asyncio.sleep(60)
        raise RedisConnectionError("down")

    async def release(self) -> None:
        self.released = True


@pytest.mark.parametrize("hang", [False, True])
async def test_a_lock_redis_no_longer_renews_is_lost_before_it_can_expire(hang: bool) -> None:
    redis = _Unreachable(hang)
    lock = RedisApplyLock(redis, prefix="gone", ttl=0.6)
    loop = asyncio.get_running_loop()
    async with lock.hold("a.example") as held:
        taken = loop.time()
        gone = asyncio.Event()
        held.on_lost(gone.set)
        await asyncio.wait_for(gone.wait(), timeout=2)
        lost_after = loop.time() - taken
    assert held.lost is not None and "Redis confirmed no renewal" in held.lost
    # Lost at 2/3 of the TTL (0.4 s): before the key could expire, not long after.
    assert 0.35 <= lost_after < 0.6
    assert not redis.released  # a lost key may be another holder's: left alone
