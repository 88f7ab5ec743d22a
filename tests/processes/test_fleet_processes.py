"""A fleet copy with real processes: redis-server, one emulator process serving 21
accounts (a source and 20 targets), two ``taskiq worker`` processes, the ``amo-pipelines
copy --via taskiq`` command; one worker is killed with SIGKILL mid-run."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("taskiq_redis")

import redis as syncredis
import redis.asyncio as aioredis
from support.funnels_helpers import fill_source, shape

from amo_pipelines import (
    AmoClient,
    DescriptionInput,
    NewPipeline,
    NewStatus,
    RateLimiter,
)
from amo_pipelines.fleet import JobState
from amo_pipelines.funnels import export
from amo_pipelines.redis import RedisWindowStore

ROOT = Path(__file__).resolve().parents[2]
TARGETS = 20
WRITES = ("POST", "PATCH", "DELETE")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGKILL"),
]


def _env(redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "AMO_FLEET_BROKER": redis_url,
        "AMO_FLEET_QUEUE": queue,
        # short enough for a test: a dead worker's task comes back after 8 s idle, its
        # account locks expire after 4 s, its pending rate-limit places after 2 s + 1 s
        "AMO_FLEET_IDLE_TIMEOUT": "8",
        "AMO_FLEET_LOCK_TTL": "4",
        "AMO_FLEET_LEASE": "2",
        **extra,
    }


def _worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "taskiq", "worker", "amo_pipelines.fleet.worker:make_broker"]
    args += ["--workers", "1", "--max-async-tasks", "3", "--shutdown-timeout", "2"]
    with open(log, "wb") as out:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env={**env, "AMO_FLEET_WORKER": name},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the manager and its child: one group to kill
        )


def _emulator(
    redis_url: str, accounts: int, accounts_file: Path
) -> tuple[subprocess.Popen[bytes], list[dict[str, Any]]]:
    """An emulator process serving ``accounts`` empty accounts, and their entries from its
    accounts file once it has written it (the caller stops the process)."""
    emulator = subprocess.Popen(
        [
            *(sys.executable, "-m", "amo_pipelines.emulator", "--port", "0", "--empty-account"),
            *("--accounts", str(accounts), "--accounts-file", str(accounts_file)),
        ],
        cwd=ROOT,
        env=_env(redis_url, "unused"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not accounts_file.exists():
            assert emulator.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        entries: list[dict[str, Any]] = json.loads(accounts_file.read_text(encoding="utf-8"))
    except BaseException:
        emulator.terminate()
        emulator.wait(timeout=10)
        raise
    return emulator, entries


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


@contextlib.asynccontextmanager
async def _client(redis_url: str, account: dict[str, Any]) -> AsyncIterator[AmoClient]:
    """The test's own client shares the workers' budget (their Redis and prefix): checks
    right after the job must not push an account over its 7/s."""
    redis = aioredis.Redis.from_url(redis_url)
    limiter = RateLimiter(store=RedisWindowStore(redis, lease=2))
    try:
        async with AmoClient(
            base_url=account["base_url"], access_token=account["admin_token"], rate_limiter=limiter
        ) as amo:
            yield amo
    finally:
        await redis.aclose()


async def _fill(redis_url: str, account: dict[str, Any]) -> None:
    """The template: beside fill_source's, eight pipelines whose statuses carry
    descriptions (one statuses POST each), so that a copy takes a dozen writes, longer
    than the first burst of 7: a worker can be killed between them."""
    async with _client(redis_url, account) as amo:
        await fill_source(amo)
        created = await amo.pipelines.create(
            [NewPipeline(name=f"Воронка {i}", sort=100 + i) for i in range(8)]
        )
        for pipeline in created:
            statuses = [
                NewStatus(
                    name=f"Этап {j}",
                    sort=10 * j,
                    descriptions=[DescriptionInput.create("newbie", f"{pipeline.name}, {j}")],
                )
                for j in range(1, 4)
            ]
            await amo.statuses.create(pipeline.id, statuses)


async def _shapes(redis_url: str, accounts: list[dict[str, Any]]) -> list[Any]:
    async def one(account: dict[str, Any]) -> Any:
        async with _client(redis_url, account) as amo:
            return shape(await export(amo))

    return list(await asyncio.gather(*(one(a) for a in accounts)))


def _progress(redis_url: str, job: str) -> dict[str, dict[str, Any]]:
    client = syncredis.Redis.from_url(redis_url)
    try:
        raw = client.hgetall(JobState(client, job).accounts_key)
    finally:
        client.close()
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def test_a_fleet_copy_survives_a_killed_worker(tmp_path: Path, redis_url: str) -> None:
    emulator, (source, *targets) = _emulator(redis_url, TARGETS + 1, tmp_path / "accounts.json")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(_fill(redis_url, source))

        queue, job = f"fleet-{uuid.uuid4().hex[:8]}", "killed-worker"
        env = _env(redis_url, queue)
        workers = [_worker(env, f"w{i}", tmp_path / f"w{i}.log") for i in (1, 2)]
        lines = [
            f"- {{base_url: '{t['base_url']}', token_env: TOKEN_{i}, name: t{i:02}}}"
            for i, t in enumerate(targets)
        ]
        (tmp_path / "targets.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        tokens = {f"TOKEN_{i}": t["admin_token"] for i, t in enumerate(targets)}
        cli_env = {**env, **tokens, "AMO_TOKEN": source["admin_token"]}
        command = [sys.executable, "-m", "amo_pipelines", "copy", "--from", source["base_url"]]
        command += ["--to-file", "targets.yaml", "--via", "taskiq", "--job", job, "--yes"]
        command += ["--json", "--timeout", "50", "--id-map", "ids.json"]
        started = time.monotonic()
        cli = subprocess.Popen(
            command, cwd=tmp_path, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

        # Kill w1 once it has finished an account and is part-way through another: it has
        # sent the first burst's writes (at most 6 after its GET) but not the rest, which
        # wait for the next second (read from that account's log).
        killed = False
        while not killed:
            assert cli.poll() is None, cli.communicate()
            assert time.monotonic() - started < 40, _progress(redis_url, job)
            mine = {k: r for k, r in _progress(redis_url, job).items() if r.get("worker") == "w1"}
            if any(r["state"] == "done" for r in mine.values()):
                for name, record in mine.items():
                    target = targets[int(name[1:])]
                    if record["state"] == "running" and 0 < _written_by(target, "w1") < 7:
                        _kill(workers[0])
                        killed = True
                        break
            time.sleep(0.02)
        # what w1 was running when it died (its records change no more)
        victim = [
            k
            for k, r in _progress(redis_url, job).items()
            if r.get("worker") == "w1" and r["state"] == "running"
        ]
        assert victim

        out, err = cli.communicate(timeout=55)
        assert cli.returncode == 0, err.decode()
        summary = json.loads(out)
        assert summary["finished"] is True
        rows = {r["account"]: r for r in summary["targets"]}
        assert sorted(rows) == [f"t{i:02}" for i in range(TARGETS)]
        assert {r["state"] for r in rows.values()} == {"done"}, rows
        # what w1 was running when it died was delivered again and finished by w2
        for name in victim:
            assert rows[name]["attempts"] >= 2 and rows[name]["worker"] == "w2", rows[name]
        assert len(json.loads((tmp_path / "ids.json").read_text())["targets"]) == TARGETS

        # every target equals the template, nothing twice
        wanted, *got = asyncio.run(_shapes(redis_url, [source, *targets]))
        written: list[int] = []
        assert got == [wanted] * TARGETS
        for account in [source, *targets]:
            stats = _get(account["base_url"] + "/_emulator/stats")
            assert stats["rate_limited"] == 0 and "429" not in stats["responses"], stats
            entries = _get(account["base_url"] + "/_emulator/log")["entries"]
            writes = [e for e in entries if e["method"] in WRITES]
            _no_two_workers_at_once(writes)
            if account is not source:
                # the copy wrote through the workers, and no more than a copy in one go
                assert all("amo-fleet/w" in (e["user_agent"] or "") for e in writes)
                written.append(len(writes))
        assert written == [written[0]] * TARGETS and written[0] >= 10, written
    finally:
        for proc in workers:
            _kill(proc)
        emulator.terminate()
        emulator.wait(timeout=10)


def _written_by(account: dict[str, Any], worker: str) -> int:
    entries = _get(account["base_url"] + "/_emulator/log")["entries"]
    return sum(
        1
        for e in entries
        if e["method"] in WRITES and (e["user_agent"] or "").endswith(f"amo-fleet/{worker}")
    )


def _no_two_workers_at_once(writes: list[dict[str, Any]]) -> None:
    """One account's writes from two workers never overlap: each worker's writes form a
    span (first arrival to last answer) and no two spans intersect."""
    spans: dict[str, tuple[float, float]] = {}
    for e in writes:
        worker = (e["user_agent"] or "").rsplit("amo-fleet/", 1)[-1]
        end = e["finished_at"] if e["finished_at"] is not None else float("inf")
        first, last = spans.get(worker, (e["arrived_at"], end))
        spans[worker] = (min(first, e["arrived_at"]), max(last, end))
    ordered = sorted(spans.values())
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert end <= start, spans
