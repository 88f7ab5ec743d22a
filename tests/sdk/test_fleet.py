"""Fleet tasks run in-process on taskiq's InMemoryBroker, against emulated accounts and a
real redis-server: results, progress records, idempotency of a task delivered again, the
per-account lock, and one failed account among good ones."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("taskiq")

import redis.asyncio as aioredis
from conftest import TOKEN
from support.funnels_helpers import fill_source, shape
from taskiq import InMemoryBroker

from amo_pipelines import AmoClient, InMemoryWindowStore, RateLimiter
from amo_pipelines.emulator import Emulator, EmulatorConfig, EmulatorFleet
from amo_pipelines.fleet import (
    AccountRef,
    FleetTasks,
    put_access_token,
    register,
    token_key,
)
from amo_pipelines.funnels import export, spec_to_data
from amo_pipelines.redis import RedisApplyLock

WRITES = ("POST", "PATCH", "DELETE")


@contextlib.asynccontextmanager
async def fleet_env(
    redis_url: str, targets: int, **settings: Any
) -> AsyncIterator[tuple[FleetTasks, Emulator, list[Emulator], Any]]:
    """A filled source account, ``targets`` empty accounts (real 7/s limits), the fleet's
    tasks on an in-memory broker with a prefix of their own, and a Redis client."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings.setdefault("lease", 0.5)  # a fresh account's first grant waits lease + 1 s
    settings.setdefault("lock_ttl", 2.0)
    broker = InMemoryBroker()
    tasks = register(broker, redis_url=redis_url, prefix=prefix, **settings)
    redis = aioredis.Redis.from_url(redis_url)
    config = EmulatorConfig(seed_account=False)
    async with Emulator(EmulatorConfig()) as source, EmulatorFleet(targets, config) as fleet:
        async with client(source) as amo:
            await fill_source(amo)
        await broker.startup()
        try:
            yield tasks, source, fleet.accounts, redis
        finally:
            await broker.shutdown()
            await tasks.aclose()
            await redis.aclose()


async def ref(redis: Any, tasks: FleetTasks, emu: Emulator, name: str | None = None) -> Any:
    account = AccountRef(emu.url, name=name)
    key = token_key(tasks.settings.prefix, account)
    await put_access_token(redis, key, emu.admin_token, ttl=60)
    return AccountRef(emu.url, name=name, token_key=key).to_data()


def client(emu: Emulator) -> AmoClient:
    """A client for checks, at the account's 7/s on a budget of its own (retrying a 429
    that the fleet's last requests may cause)."""
    limiter = RateLimiter(store=InMemoryWindowStore())
    return AmoClient(base_url=emu.url, access_token=emu.admin_token, rate_limiter=limiter)


def writes_of(emu: Emulator) -> list[Any]:
    return [e for e in emu.request_log if e.method in WRITES]


async def shape_of(emu: Emulator) -> Any:
    async with client(emu) as amo:
        return shape(await export(amo))


async def test_copy_tasks_make_every_target_match_and_report_progress(redis_url: str) -> None:
    async with fleet_env(redis_url, 3) as (tasks, source, targets, redis):
        src = await ref(redis, tasks, source)
        refs = [await ref(redis, tasks, t) for t in targets]
        job = tasks.job("job-1")
        await job.queued(AccountRef.from_data(r).label for r in refs)
        sent = [await tasks.copy.kiq("job-1", r, src) for r in refs]
        results = [(await s.wait_result(timeout=30)).return_value for s in sent]

        wanted = await shape_of(source)
        progress = await job.progress()
        id_maps = await job.id_maps()
        for emu, result in zip(targets, results, strict=True):
            label = AccountRef(emu.url).label
            assert await shape_of(emu) == wanted
            assert result["state"] == "done" and result["error"] is None
            # the counts are what the account saw (its log is the wire)
            mine = [e for e in emu.request_log if "amo-fleet/" in (e.user_agent or "")]
            assert result["requests"] == len(mine)
            assert result["writes"] == len(writes_of(emu)) > 0
            assert result["account"] == label and result["id_map_key"] == job.id_maps_key
            record = progress[label]
            assert (record.state, record.attempts) == ("done", 1)
            assert (record.requests, record.writes) == (result["requests"], result["writes"])
            assert record.worker == tasks.worker
            # every source status maps onto a target status that has its name
            async with client(emu) as amo:
                names = {s.id: s.name for p in await amo.pipelines.list() for s in p.statuses}
            async with client(source) as amo:
                source_names = {
                    s.id: s.name for p in await amo.pipelines.list() for s in p.statuses
                }
            for sid, tid in id_maps[label]["statuses"].items():
                if int(sid) not in (142, 143):
                    assert names[tid] == source_names[int(sid)]
            assert len(id_maps[label]["pipelines"]) == 3
        # the source was read once for the whole job (pipelines + one read per pipeline)
        reads = [e for e in source.request_log if "amo-fleet/" in (e.user_agent or "")]
        assert len(reads) == 1 + 3
        assert await job.load_spec() is not None


async def test_a_task_delivered_again_after_it_finished_sends_zero_writes(redis_url: str) -> None:
    async with fleet_env(redis_url, 1) as (tasks, source, [target], redis):
        src, dst = await ref(redis, tasks, source), await ref(redis, tasks, target)
        first = await tasks.run_copy("job-2", dst, src)
        before = len(writes_of(target))
        again = await tasks.run_copy("job-2", dst, src)
        assert first["writes"] > 0
        assert again["state"] == "done" and again["writes"] == 0 and again["requests"] > 0
        assert len(writes_of(target)) == before
        record = (await tasks.job("job-2").progress())[AccountRef(target.url).label]
        assert record.attempts == 2 and record.writes == first["writes"]


async def test_a_task_cut_off_mid_copy_converges_when_delivered_again(redis_url: str) -> None:
    """A worker that dies after some writes: the next delivery sends only what is
    missing, and no pipeline or status exists twice."""
    async with fleet_env(redis_url, 1) as (tasks, source, [target], redis):
        src, dst = await ref(redis, tasks, source), await ref(redis, tasks, target)
        full = await shape_of(source)
        run = asyncio.ensure_future(tasks.run_copy("job-3", dst, src))
        while not writes_of(target):  # noqa: ASYNC110 - the log has no event to wait on
            await asyncio.sleep(0.005)
        run.cancel()  # as if killed right after its first write
        with contextlib.suppress(asyncio.CancelledError):
            await run
        done_before = len(writes_of(target))
        again = await tasks.run_copy("job-3", dst, src)
        assert again["state"] == "done"
        assert await shape_of(target) == full
        async with client(target) as amo:
            pipelines = await amo.pipelines.list()
        names = [p.name for p in pipelines]
        assert len(names) == len(set(names))
        for p in pipelines:
            statuses = [s.name for s in p.statuses]
            assert len(statuses) == len(set(statuses))
        # nothing written twice: the two deliveries together did one copy's writes
        async with Emulator(EmulatorConfig(seed_account=False)) as fresh:
            await tasks.run_copy("job-3b", await ref(redis, tasks, fresh), src)
            assert done_before + again["writes"] == len(writes_of(fresh))


async def test_two_deliveries_at_once_take_turns_on_the_account(redis_url: str) -> None:
    """The same task on two workers at once (a redelivery while the first still runs):
    one writes, the other waits for the account's lock and then writes nothing; their
    writes never overlap in time."""
    async with fleet_env(redis_url, 1) as (tasks, source, [target], redis):
        src, dst = await ref(redis, tasks, source), await ref(redis, tasks, target)
        other = register(
            InMemoryBroker(), attrs_settings(tasks, worker="worker-b", lock_timeout=30)
        )
        mine = register(InMemoryBroker(), attrs_settings(tasks, worker="worker-a"))
        try:
            a, b = await asyncio.gather(
                mine.run_copy("job-4", dst, src), other.run_copy("job-4", dst, src)
            )
        finally:
            await other.aclose()
            await mine.aclose()
        assert a["state"] == b["state"] == "done"
        assert sorted([a["writes"], b["writes"]])[0] == 0
        spans: dict[str, list[tuple[float, float]]] = {"worker-a": [], "worker-b": []}
        for e in writes_of(target):
            worker = e.user_agent.rsplit("amo-fleet/", 1)[1]
            spans[worker].append((e.arrived_at, e.finished_at))
        writer = "worker-a" if a["writes"] else "worker-b"
        assert len(spans[writer]) == max(a["writes"], b["writes"])
        assert spans["worker-b" if writer == "worker-a" else "worker-a"] == []


def attrs_settings(tasks: FleetTasks, **changes: Any) -> Any:
    import attrs

    return attrs.evolve(tasks.settings, **changes)


async def test_a_lock_held_elsewhere_fails_that_account_after_the_timeout(
    redis_url: str,
) -> None:
    async with fleet_env(redis_url, 2, lock_timeout=0.5) as (tasks, source, targets, redis):
        src = await ref(redis, tasks, source)
        refs = [await ref(redis, tasks, t) for t in targets]
        held = RedisApplyLock(redis, prefix=tasks.settings.prefix, ttl=5)
        async with held.hold(AccountRef(targets[0].url).label):
            results = await asyncio.gather(*(tasks.run_copy("job-5", r, src) for r in refs))
        assert results[0]["state"] == "failed"
        assert "ApplyLockedError" in results[0]["error"] and results[0]["writes"] == 0
        assert writes_of(targets[0]) == []
        assert results[1]["state"] == "done" and writes_of(targets[1])


async def test_one_account_without_a_token_fails_alone_with_a_clear_error(
    redis_url: str,
) -> None:
    async with fleet_env(redis_url, 2) as (tasks, source, targets, redis):
        src = await ref(redis, tasks, source)
        good = await ref(redis, tasks, targets[0])
        bad = AccountRef(targets[1].url, name="broken", token_key="nowhere:{x}").to_data()
        job = tasks.job("job-6")
        await job.queued(["broken", AccountRef(targets[0].url).label])
        results = await asyncio.gather(
            tasks.run_copy("job-6", bad, src), tasks.run_copy("job-6", good, src)
        )
        assert results[0]["state"] == "failed" and results[0]["requests"] == 0
        assert results[0]["error"] == (
            "FleetError: no token for broken: Redis key nowhere:{x} is missing "
            "(expired, or never stored by the enqueuer)"
        )
        assert results[1]["state"] == "done"
        progress = await job.progress()
        assert progress["broken"].state == "failed"
        assert progress["broken"].error == results[0]["error"]
        assert targets[1].request_log == []
        for text in (repr(results), repr(progress)):
            assert targets[0].admin_token not in text and TOKEN not in text


async def test_a_refused_write_fails_the_account_and_names_the_refusal(redis_url: str) -> None:
    async with fleet_env(redis_url, 2) as (tasks, source, targets, redis):
        src, good = await ref(redis, tasks, source), await ref(redis, tasks, targets[1])
        # a user's token may read the account but not change its funnels: 403 on the POST
        account = AccountRef(targets[0].url, name="read-only")
        await put_access_token(redis, "k:{read-only}", targets[0].user_token, ttl=60)
        bad = AccountRef(account.base_url, name="read-only", token_key="k:{read-only}")
        results = await asyncio.gather(
            tasks.run_copy("job-7", bad.to_data(), src), tasks.run_copy("job-7", good, src)
        )
        assert results[0]["state"] == "failed"
        error = results[0]["error"]
        assert error.startswith("ApplyError: ") and "403 Forbidden: Account administrator" in error
        assert results[0]["writes"] == len(writes_of(targets[0])) > 0
        assert results[1]["state"] == "done"
        assert targets[0].user_token not in results[0]["error"]


async def test_apply_task_applies_a_spec_given_as_data(redis_url: str) -> None:
    async with fleet_env(redis_url, 1) as (tasks, source, [target], redis):
        async with client(source) as amo:
            spec = await export(amo)
        dst = await ref(redis, tasks, target, name="target-1")
        sent = await tasks.apply.kiq("job-8", dst, spec_to_data(spec))
        result = (await sent.wait_result(timeout=30)).return_value
        assert result["state"] == "done" and result["account"] == "target-1"
        assert await shape_of(target) == shape(spec)
        again = await tasks.run_apply("job-8", dst, spec_to_data(spec))
        assert again["writes"] == 0


async def test_a_malformed_target_is_a_failed_account_not_an_exception(redis_url: str) -> None:
    async with fleet_env(redis_url, 1) as (tasks, source, _, redis):
        src = await ref(redis, tasks, source)
        result = await tasks.run_copy("job-9", {"base_url": "ftp://x", "name": "odd"}, src)
        assert result["state"] == "failed" and "base_url" in result["error"]
        assert (await tasks.job("job-9").progress())["odd"].state == "failed"


async def test_tokens_come_from_redis_or_the_workers_environment(redis_url: str) -> None:
    from amo_pipelines import OAuth2, TokenSet
    from amo_pipelines.fleet import FleetError, put_token_set
    from amo_pipelines.fleet.refs import resolve_auth

    redis = aioredis.Redis.from_url(redis_url)
    key = f"t{uuid.uuid4().hex[:8]}:{{a.amocrm.ru}}:tokens"
    try:
        pair = TokenSet("access-1", "refresh-1", expires_at=4e9)
        await put_token_set(redis, key, pair)
        # a pair the workers refreshed meanwhile is kept: the file's refresh token is spent
        await put_token_set(redis, key, TokenSet("access-0", "refresh-0", expires_at=3e9))
        ref = AccountRef("https://a.amocrm.ru", token_key=key)
        assert await resolve_auth(ref, redis, env={}) == ("access-1", None)
        oauth_env = {
            "AMO_CLIENT_ID": "id",
            "AMO_CLIENT_SECRET": "s",
            "AMO_REDIRECT_URI": "https://x.io/cb",
        }
        token, auth = await resolve_auth(ref, redis, env=oauth_env)
        assert token is None and isinstance(auth, OAuth2)
        env_ref = AccountRef("https://a.amocrm.ru")
        assert await resolve_auth(env_ref, redis, env={"AMO_TOKEN_A": "t-a"}) == ("t-a", None)
        named = AccountRef("https://a.amocrm.ru", token_env="MINE")
        with pytest.raises(
            FleetError, match=r"no token for a\.amocrm\.ru: set MINE on the workers"
        ):
            await resolve_auth(named, redis, env={"AMO_TOKEN": "other"})
    finally:
        await redis.delete(key)
        await redis.aclose()
