"""``amo-pipelines copy --via taskiq --lock-timeout 1`` with a real ``taskiq worker`` whose
``AMO_FLEET_LOCK_TIMEOUT`` is 600: a target whose apply lock the test holds fails after
about a second, not ten minutes, and the other target is copied."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("taskiq_redis")

import redis.asyncio as aioredis

from amo_pipelines.fleet import AccountRef
from amo_pipelines.redis import RedisApplyLock

from .test_fleet_processes import _emulator, _env, _fill, _kill, _worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGKILL"),
]


def test_the_cli_lock_timeout_wins_over_the_workers_setting(tmp_path: Path, redis_url: str) -> None:
    emulator, (source, locked, free) = _emulator(redis_url, 3, tmp_path / "accounts.json")
    worker = None
    try:
        asyncio.run(_fill(redis_url, source))
        env = _env(redis_url, f"fleet-{uuid.uuid4().hex[:8]}", AMO_FLEET_LOCK_TIMEOUT="600")
        worker = _worker(env, "w1", tmp_path / "w1.log")
        lines = [
            f"- {{base_url: '{t['base_url']}', token_env: TOKEN_{i}, name: t{i}}}"
            for i, t in enumerate((locked, free))
        ]
        (tmp_path / "targets.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        cli_env = {
            **env,
            "TOKEN_0": locked["admin_token"],
            "TOKEN_1": free["admin_token"],
            "AMO_TOKEN": source["admin_token"],
        }
        command = [sys.executable, "-m", "amo_pipelines", "copy", "--from", source["base_url"]]
        command += ["--to-file", "targets.yaml", "--via", "taskiq", "--yes", "--json"]
        command += ["--lock-timeout", "1", "--timeout", "30", "--id-map", "ids.json"]

        async def run() -> tuple[int, bytes, bytes, float]:
            redis = aioredis.Redis.from_url(redis_url)
            held = RedisApplyLock(redis, ttl=5)  # the workers' prefix, the default
            try:
                async with held.hold(AccountRef(locked["base_url"]).label):
                    started = time.monotonic()
                    cli = await asyncio.create_subprocess_exec(
                        *command,
                        cwd=tmp_path,
                        env=cli_env,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE,
                    )
                    out, err = await asyncio.wait_for(cli.communicate(), 90)
                    assert cli.returncode is not None
                    return cli.returncode, out, err, time.monotonic() - started
            finally:
                await redis.aclose()

        code, out, err, took = asyncio.run(run())
        assert code == 1, err.decode()
        summary = json.loads(out)
        assert summary["finished"] is True, summary  # not left waiting on the worker's 600 s
        rows = {r["account"]: r for r in summary["targets"]}
        assert rows["t0"]["state"] == "failed" and "ApplyLockedError" in rows["t0"]["error"]
        assert rows["t0"]["writes"] == 0
        assert rows["t1"]["state"] == "done" and rows["t1"]["writes"] > 0, rows
        assert took < 25, took
    finally:
        if worker is not None:
            _kill(worker)
        emulator.terminate()
        emulator.wait(timeout=10)
