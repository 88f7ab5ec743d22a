"""One apply per account at a time, across processes: two real subprocesses apply to one
emulated account (the emulator in a process of its own) at the same moment, with the
machine-wide file lock and with the Redis lock that a Redis window store brings.

Every assertion is about the server's request log: the two applies' requests (told apart by
their tokens) form two blocks, one wholly before the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support.funnels_helpers import funnel

from amo_pipelines import AmoClient, RateLimiter
from amo_pipelines.funnels import ApplyLockedError, lock_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

EMULATOR = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from amo_pipelines.emulator import Emulator, EmulatorConfig

    async def main() -> None:
        async with Emulator(EmulatorConfig(block_after=None)) as emu:
            tokens = [emu.admin_token, emu.issue_tokens()["access_token"]]
            print(json.dumps({"url": emu.url, "tokens": tokens}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            index = {token: i for i, token in enumerate(tokens)}
            log = [
                [e.arrived_at, index.get(e.token, -1), e.method, e.path]
                for e in emu.request_log if e.path.startswith("/api/")
            ]
            print(json.dumps({"log": log}), flush=True)
            os._exit(0)

    asyncio.run(main())
    """
)

# Waits on stdin for "go" after it is ready, so both processes call apply at once.
APPLIER = textwrap.dedent(
    """
    import asyncio, json, sys
    from amo_pipelines import AmoClient
    from amo_pipelines.funnels import apply, loads_spec, lock_for
    from amo_pipelines.budget.limiter import RateLimiter

    async def main() -> None:
        o = json.loads(sys.argv[1])
        redis = limiter = None
        if o["redis_url"]:
            import redis.asyncio as aioredis
            from amo_pipelines.redis import RedisWindowStore
            redis = aioredis.Redis.from_url(o["redis_url"])
            limiter = RateLimiter(store=RedisWindowStore(redis, prefix=o["prefix"], lease=1.0))
        client = AmoClient(base_url=o["url"], access_token=o["token"], rate_limiter=limiter)
        async with client as amo:
            spec = loads_spec(json.dumps(o["spec"]))
            print(type(lock_for(amo)).__name__, flush=True)
            sys.stdin.readline()
            result = await apply(amo, spec, lock_timeout=120.0)
        if redis is not None:
            await redis.aclose()
        print(json.dumps({"writes": result.plan.writes}), flush=True)

    asyncio.run(main())
    """
)

# Takes a Redis apply lock with a short TTL, says so, then waits to be killed.
HOLDER = textwrap.dedent(
    """
    import asyncio, json, sys
    import redis.asyncio as aioredis
    from amo_pipelines.redis import RedisApplyLock

    async def main() -> None:
        o = json.loads(sys.argv[1])
        lock = RedisApplyLock(aioredis.Redis.from_url(o["redis_url"]), prefix=o["prefix"], ttl=1.0)
        async with lock.hold("killed.example"):
            print("held", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@contextmanager
def emulator() -> Iterator[tuple[dict[str, Any], list[list[Any]]]]:
    process = subprocess.Popen(
        [sys.executable, "-c", EMULATOR],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    log: list[list[Any]] = []
    try:
        yield json.loads(process.stdout.readline()), log
        process.stdin.close()
        log.extend(json.loads(process.stdout.readline())["log"])
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()


def two_applies_at_once(
    tmp_path: Path, redis_url: str | None, *, separate_state: bool
) -> tuple[list[str], list[list[Any]]]:
    """Both appliers ready, then "go" to both; returns what lock each chose and the log."""
    with emulator() as (server, log):
        workers = []
        for i, name in enumerate(["Первая", "Вторая"]):
            env = dict(os.environ)
            if separate_state:  # no shared folder: only the Redis lock can keep them apart
                env["AMO_PIPELINES_STATE_DIR"] = str(tmp_path / f"state{i}")
            options = {
                "url": server["url"],
                "token": server["tokens"][i],
                "spec": funnel(name),
                "redis_url": redis_url,
                "prefix": f"lock-{tmp_path.name}",
            }
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-c", APPLIER, json.dumps(options)],
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        chosen = [w.stdout.readline().strip() for w in workers if w.stdout is not None]
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        for w in workers:
            out, _ = w.communicate(timeout=180)
            assert w.returncode == 0
            assert json.loads(out.strip().splitlines()[-1])["writes"] > 0
    return chosen, log


def assert_one_after_the_other(log: list[list[Any]]) -> None:
    by_token = {token: [e[0] for e in log if e[1] == token] for token in (0, 1)}
    writes = {token: [e for e in log if e[1] == token and e[2] != "GET"] for token in (0, 1)}
    assert writes[0] and writes[1]  # both applied something
    first, second = sorted((0, 1), key=lambda token: min(by_token[token]))
    # Every request of the second apply (its reads too) after the last of the first.
    assert max(by_token[first]) < min(by_token[second])


def test_two_processes_apply_one_after_the_other_with_the_file_lock(tmp_path: Path) -> None:
    chosen, log = two_applies_at_once(tmp_path, None, separate_state=False)
    assert chosen == ["LocalApplyLock", "LocalApplyLock"]
    assert_one_after_the_other(log)


def test_two_processes_apply_one_after_the_other_with_the_redis_lock(
    tmp_path: Path, redis_url: str
) -> None:
    chosen, log = two_applies_at_once(tmp_path, redis_url, separate_state=True)
    assert chosen == ["RedisApplyLock", "RedisApplyLock"]
    assert_one_after_the_other(log)


def test_a_held_redis_lock_refuses_then_frees_when_its_holder_is_killed(
    tmp_path: Path, redis_url: str
) -> None:
    import redis.asyncio as aioredis

    from amo_pipelines.redis import RedisApplyLock

    prefix = f"killed-{tmp_path.name}"

    async def check(pid: int) -> None:
        redis = aioredis.Redis.from_url(redis_url)
        try:
            # Held past three TTLs: the holder renews it.
            for _ in range(3):
                with pytest.raises(ApplyLockedError, match=f"held by .*:{pid}"):
                    async with RedisApplyLock(redis, prefix=prefix, ttl=1.0, timeout=1.0).hold(
                        "killed.example"
                    ):
                        pass
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            # The killed holder's key expires within its TTL; a patient apply then gets it.
            async with RedisApplyLock(redis, prefix=prefix, timeout=30.0).hold("killed.example"):
                pass
        finally:
            await redis.aclose()

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, json.dumps({"redis_url": redis_url, "prefix": prefix})],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        asyncio.run(check(holder.pid))
        assert holder.returncode == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=30)
        assert holder.stdout is not None
        holder.stdout.close()


async def test_a_client_on_a_redis_store_gets_the_redis_lock(redis_url: str) -> None:
    import redis.asyncio as aioredis

    from amo_pipelines.redis import RedisApplyLock, RedisWindowStore

    redis = aioredis.Redis.from_url(redis_url)
    store = RedisWindowStore(redis, prefix="chosen")
    async with AmoClient(
        base_url="https://example.amocrm.ru",
        access_token="t",
        rate_limiter=RateLimiter(store=store),
    ) as amo:
        lock = lock_for(amo, timeout=5.0)
    assert isinstance(lock, RedisApplyLock)
    assert (lock.redis, lock.prefix, lock.timeout) == (redis, "chosen", 5.0)
    await redis.aclose()
