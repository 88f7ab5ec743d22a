"""``copy --via taskiq --lock-timeout S`` reaches the workers: the CLI puts ``lock_timeout``
in each task message only when given (on the wire: the Redis stream's messages), a task
given one waits that long for a held account lock instead of its worker's setting, an old
message without it gets the setting, and a bad value fails its account instead of
crashing the task. Local runs still do not wait unless told."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("taskiq_redis")

import redis.asyncio as aioredis
from support.emulated import unlimited_config
from support.funnels_helpers import funnels_client

from amo_pipelines.cli import build_parser
from amo_pipelines.cli.commands import cmd_apply, cmd_copy
from amo_pipelines.emulator import Emulator, EmulatorConfig
from amo_pipelines.fleet import COPY_TASK, AccountRef, FleetTasks
from amo_pipelines.funnels import ApplyLockedError, dumps_spec, export
from amo_pipelines.funnels.export import account_host
from amo_pipelines.funnels.lock import LocalApplyLock
from amo_pipelines.redis import RedisApplyLock

from .test_fleet import fleet_env, ref, writes_of

SLACK = 2.5  # scheduling, the token lookup and taskiq's result polling on a busy machine
EARLY = 0.75  # the Redis lock polls every ttl / 10 and may give up a poll early


async def _copy(tasks: FleetTasks, job: str, dst: Any, src: Any, **kw: Any) -> Any:
    """Through the broker, as a worker gets it: the result and the seconds it took."""
    started = time.monotonic()
    sent = await tasks.copy.kiq(job, dst, src, **kw)
    result = await sent.wait_result(timeout=60, check_interval=0.05)
    assert not result.is_err, result.error  # an account's failure is a result, not a crash
    return result.return_value, time.monotonic() - started


@pytest.mark.slow
async def test_a_message_lock_timeout_bounds_the_wait_for_a_held_lock(redis_url: str) -> None:
    async with fleet_env(redis_url, 1, lock_timeout=60) as (tasks, source, [target], redis):
        src, dst = await ref(redis, tasks, source), await ref(redis, tasks, target)
        await tasks.prepare_copy("job-a", AccountRef.from_data(src))  # read outside the timing
        held = RedisApplyLock(redis, prefix=tasks.settings.prefix, ttl=5)
        async with held.hold(AccountRef(target.url).label):
            result, took = await _copy(tasks, "job-a", dst, src, lock_timeout=0.5)
        assert result["state"] == "failed" and "ApplyLockedError" in result["error"]
        assert result["writes"] == 0 and writes_of(target) == []
        assert 0.5 * EARLY <= took < 0.5 + SLACK, took  # not the worker's 60 s


@pytest.mark.slow
async def test_without_the_keyword_the_setting_applies_and_a_longer_wait_wins(
    redis_url: str,
) -> None:
    async with fleet_env(redis_url, 2, lock_timeout=0.6) as (tasks, source, targets, redis):
        src = await ref(redis, tasks, source)
        first, second = [await ref(redis, tasks, t) for t in targets]
        await tasks.prepare_copy("job-b", AccountRef.from_data(src))
        held = RedisApplyLock(redis, prefix=tasks.settings.prefix, ttl=5)
        async with held.hold(AccountRef(targets[0].url).label):
            # an old enqueuer's message, and one saying None: the worker's 0.6 s
            old, took_old = await _copy(tasks, "job-b", first, src)
            none, took_none = await _copy(tasks, "job-b", first, src, lock_timeout=None)
        for result, took in ((old, took_old), (none, took_none)):
            assert result["state"] == "failed" and "ApplyLockedError" in result["error"]
            assert 0.6 * EARLY <= took < 0.6 + SLACK, took

        # a message's 30 s outwaits a holder that lets go after 1.5 s (the setting: 0.6 s)
        ready = asyncio.Event()

        async def hold_for(seconds: float) -> None:
            async with held.hold(AccountRef(targets[1].url).label):
                ready.set()
                await asyncio.sleep(seconds)

        holder = asyncio.create_task(hold_for(1.5))
        await ready.wait()
        result, took = await _copy(tasks, "job-b", second, src, lock_timeout=30)
        await holder
        assert result["state"] == "done" and result["writes"] > 0, result
        assert 1.5 <= took < 30, took


async def test_a_bad_lock_timeout_fails_its_account_and_sends_nothing(redis_url: str) -> None:
    async with fleet_env(redis_url, 1) as (tasks, source, [target], redis):
        src, dst = await ref(redis, tasks, source), await ref(redis, tasks, target)
        label = AccountRef(target.url).label
        # over the wire (taskiq's JSON carries no nan or inf: those only through run_copy)
        for value in (-1, -0.5, True, "5", [1], {"s": 1}):
            result, _ = await _copy(tasks, "job-c", dst, src, lock_timeout=value)
            assert result["state"] == "failed" and result["requests"] == 0, (value, result)
            assert result["error"].startswith("FleetError: lock_timeout must be"), result
        for value in (float("nan"), float("inf"), float("-inf")):
            result = await tasks.run_copy("job-c", dst, src, lock_timeout=value)
            assert result["state"] == "failed" and result["requests"] == 0, (value, result)
            assert result["error"].startswith("FleetError: lock_timeout must be finite")
        assert target.request_log == []
        assert not [e for e in source.request_log if "amo-fleet/" in (e.user_agent or "")]
        record = (await tasks.job("job-c").progress())[label]
        assert record.state == "failed" and record.attempts == 9


@pytest.mark.slow
@pytest.mark.parametrize("given", [None, 0.0, 12.5])
async def test_the_cli_puts_lock_timeout_in_each_message_only_when_given(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: float | None
) -> None:
    queue = f"h20b-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AMO_FLEET_QUEUE", queue)
    monkeypatch.setenv("AMO_FLEET_LEASE", "0.5")  # the source's first read waits lease + 1 s
    async with Emulator(EmulatorConfig()) as source:
        monkeypatch.setenv("AMO_TOKEN", source.admin_token)
        argv = ["copy", "--from", source.url, "--to", "http://127.0.0.1:9/"]
        argv += ["--to", "http://127.0.0.1:10/", "--via", "taskiq", "--broker", redis_url]
        argv += ["--yes", "--json", "--timeout", "0.2", "--id-map", str(tmp_path / "ids.json")]
        if given is not None:
            argv.append(f"--lock-timeout={given}")
        code = await cmd_copy(build_parser().parse_args(argv))
    assert code == 1  # no worker reads this queue: the CLI gave up watching
    redis = aioredis.Redis.from_url(redis_url)
    try:
        entries = await redis.xrange(queue)
    finally:
        await redis.aclose()
    messages = [json.loads(fields[b"data"]) for _, fields in entries]
    assert [m["task_name"] for m in messages] == [COPY_TASK, COPY_TASK]
    wanted = {"prune": False} if given is None else {"prune": False, "lock_timeout": given}
    assert [m["kwargs"] for m in messages] == [wanted, wanted]


async def test_a_local_apply_waits_only_when_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Emulator(unlimited_config()) as emu:
        monkeypatch.setenv("AMO_TOKEN", emu.admin_token)
        async with funnels_client(emu) as amo:
            spec, host = await export(amo), account_host(amo)
        path = tmp_path / "funnels.json"
        path.write_text(dumps_spec(spec, "json"), encoding="utf-8")
        argv = ["apply", str(path), "--base-url", emu.url, "--yes", "--json"]
        async with LocalApplyLock().hold(host):
            for extra, least, most in (([], 0.0, 0.5), (["--lock-timeout", "0.6"], 0.6, 3.0)):
                started = time.monotonic()
                with pytest.raises(ApplyLockedError):
                    await cmd_apply(build_parser().parse_args(argv + extra))
                took = time.monotonic() - started
                assert least <= took < most, (extra, took)
        assert await cmd_apply(build_parser().parse_args(argv)) == 0
