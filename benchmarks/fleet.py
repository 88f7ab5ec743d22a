"""Benchmark 8: a fleet copy on taskiq workers, to 20 and 100 accounts, 1, 2 and 4 workers.

Every run has processes of its own: redis-server (one for the benchmark), one emulator
process serving the source and the targets (``--accounts N+1 --empty-account``, 7/s per
token and 50/s per account each), and W ``taskiq worker
amo_pipelines.fleet.worker:make_broker --workers 1`` processes, each allowed
``ceil(N / W)`` accounts at once (``--max-async-tasks``), so the job is spread evenly.
The benchmark process is the enqueuer: it reads the source once
(``FleetTasks.prepare_copy``), enqueues one ``amo_pipelines.fleet.copy`` task per target
and polls the job's progress hash every 0.1 s until every account is done.

Source: the main pipeline plus 19, 20 custom statuses each with 3 descriptions. A target
(empty) needs 1 GET of its pipelines, 1 POST of the 19 missing pipelines and one POST of
statuses with descriptions per pipeline: 22 requests, 2.14 s at 7/s (``N / 7 - 1``: the
first burst of 7 is free); the source's read is 21 requests. Every account's Redis keys
are warmed (one GET) before the clock starts: an account's first use waits lease + 1 s.

Reported: wall time of the targets (enqueue to the last ``done``) against the ideal, the
source's read, requests against the minimum (from the emulator's log), 429s (its stats),
the workers' CPU per request (their processes and children, from /proc) and the
emulator's, and whether every target equals the source afterwards.

Run: ``python -m benchmarks --only fleet`` or ``python -m benchmarks.fleet``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from amo_pipelines import (
    AmoClient,
    NewPipeline,
    RateLimiter,
    StatusColor,
)
from amo_pipelines.funnels import export

from .common import ROOT, Table, ideal_seconds, quiet_logs, redis_server, slot_bound_seconds
from .copy import Account, Fleet, fleet_process, machine_cpu, template_statuses

PIPELINES = 20
STATUSES = 20
TARGET_MIN = 1 + 1 + PIPELINES
SOURCE_MIN = 1 + PIPELINES
LEASE = 5.0
SIZES = tuple(int(n) for n in os.environ.get("FLEET_SIZES", "20,100").split(","))
WORKERS = tuple(int(n) for n in os.environ.get("FLEET_WORKERS", "1,2,4").split(","))
PALETTE = list(StatusColor)


@dataclass
class Row:
    targets: int
    workers: int
    wall: float
    source_read: float
    target_requests: int
    source_requests: int
    rate_limited: int
    failed: int
    worker_cpu: float
    server_cpu: float
    total_cpu: float
    """CPU seconds of the workers, the emulator, redis-server and the enqueuer meanwhile."""
    others: float
    verified: str


async def fill_source(url: str, token: str) -> None:
    async with AmoClient(base_url=url, access_token=token, batch_size=97) as amo:
        [main] = await amo.pipelines.list()
        created = await amo.pipelines.create(
            [NewPipeline(name=f"Pipeline {p:02d}", sort=100 + p) for p in range(1, PIPELINES)]
        )
        for n, pid in enumerate([main.id] + [p.id for p in created]):
            await amo.statuses.create(pid, template_statuses(n, STATUSES))


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants (Linux /proc; 0 elsewhere)."""
    total = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _tree_cpu(int(child))
    return total


def _start_workers(
    count: int, per_worker: int, env: dict[str, str]
) -> list[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "taskiq", "worker", "amo_pipelines.fleet.worker:make_broker"]
    args += ["--workers", "1", "--max-async-tasks", str(per_worker), "--log-level", "WARNING"]
    return [
        subprocess.Popen(
            args,
            cwd=ROOT,
            env={**env, "AMO_FLEET_WORKER": f"w{i + 1}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for i in range(count)
    ]


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def _wait_for_workers(redis: Any, count: int) -> None:
    """Until ``count`` workers block on the stream (taskiq takes a second or two to start;
    Redis 7.0 lists a consumer only once it has been given a message)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        clients = await redis.client_list()
        if sum(1 for c in clients if c.get("cmd") == "xreadgroup") >= count:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{count} workers did not start within 60 s")


def _limiter(redis: Any) -> RateLimiter:
    from amo_pipelines.redis import RedisWindowStore

    return RateLimiter(store=RedisWindowStore(redis, lease=LEASE))


async def _warm(redis: Any, accounts: list[Account]) -> None:
    """One GET per account through the fleet's Redis budget: its first use (nothing granted
    for lease + 1 s) before the clock starts."""
    limiter = _limiter(redis)

    async def one(account: Account) -> None:
        async with AmoClient(
            base_url=account.url, access_token=account.token, rate_limiter=limiter
        ) as amo:
            await amo.pipelines.list()

    await asyncio.gather(*(one(a) for a in accounts))


async def _verify(redis: Any, source: Account, targets: list[Account]) -> str:
    limiter = _limiter(redis)

    async def read(account: Account) -> list[Any]:
        async with AmoClient(
            base_url=account.url, access_token=account.token, rate_limiter=limiter
        ) as amo:
            spec = await export(amo)
        return [
            (p.name, [(s.role, s.name, s.descriptions) for s in p.statuses if s.role != "incoming"])
            for p in spec.pipelines
        ]

    wanted = await read(source)
    got = await asyncio.gather(*(read(t) for t in targets))
    bad = sum(g != wanted for g in got)
    return f"FAILED: {bad} differ" if bad else "ok"


async def _counts(fleet: Fleet, accounts: list[Account]) -> tuple[list[int], int]:
    """Requests per account since the last call, and the 429s of all of them."""
    async with aiohttp.ClientSession() as session:
        requests = [len(await fleet.log(session, a.url)) for a in accounts]
        limited = 0
        for a in accounts:
            async with session.get(f"{a.url}/_emulator/stats") as r:
                limited += (await r.json())["rate_limited"]
    return requests, limited


async def one_run(redis_url: str, redis_pid: int, targets_n: int, workers_n: int) -> Row:
    import redis.asyncio as aioredis

    from amo_pipelines.fleet import AccountRef, put_access_token, summary, token_key
    from amo_pipelines.fleet.worker import fleet_broker

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "AMO_FLEET_BROKER": redis_url,
        "AMO_FLEET_QUEUE": queue,
        "AMO_FLEET_LEASE": str(LEASE),
    }
    # a blocking pool: a hundred accounts' checks at once would exhaust redis-py's default
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=32, timeout=60)
    redis = aioredis.Redis.from_pool(pool)
    async with fleet_process(targets_n + 1) as fleet:
        source, *targets = fleet.accounts
        await fill_source(source.url, source.token)
        await _warm(redis, fleet.accounts)
        await _counts(fleet, fleet.accounts)  # the cursors past the filling and warming
        procs = _start_workers(workers_n, math.ceil(targets_n / workers_n), env)
        broker, tasks = fleet_broker(redis_url, env)
        try:
            await broker.startup()
            await _wait_for_workers(redis, workers_n)
            refs = []
            for i, account in enumerate([source, *targets]):
                ref = AccountRef(account.url, name=f"t{i:03}" if i else "source")
                key = token_key(tasks.settings.prefix, ref)
                await put_access_token(redis, key, account.token, ttl=3600)
                refs.append(AccountRef(account.url, name=ref.name, token_key=key))
            src, *dsts = refs
            job = tasks.job(queue)
            began = time.monotonic()
            await tasks.prepare_copy(queue, src)
            read = time.monotonic() - began
            cpu, served, busy = (
                sum(map(_tree_cpu, (p.pid for p in procs))),
                fleet.cpu(),
                machine_cpu(),
            )
            stored, mine = _tree_cpu(redis_pid), time.process_time()
            started = time.monotonic()
            await job.queued(r.label for r in dsts)
            for ref in dsts:
                await tasks.copy.kiq(queue, ref.to_data(), src.to_data())
            while True:
                records = await job.progress()
                if len(records) == targets_n and all(r.finished for r in records.values()):
                    break
                await asyncio.sleep(0.1)
            wall = time.monotonic() - started
            cpu = sum(map(_tree_cpu, (p.pid for p in procs))) - cpu
            served = fleet.cpu() - served
            busy = machine_cpu() - busy
            stored, mine = _tree_cpu(redis_pid) - stored, time.process_time() - mine
        finally:
            await tasks.aclose()
            await broker.shutdown()
            _stop_workers(procs)
        requests, limited = await _counts(fleet, fleet.accounts)
        verified = await _verify(redis, source, targets)
    await redis.aclose()
    total = sum(requests)
    return Row(
        targets=targets_n,
        workers=workers_n,
        wall=wall,
        source_read=read,
        target_requests=sum(requests[1:]),
        source_requests=requests[0],
        rate_limited=limited,
        failed=summary(records)["failed"],
        worker_cpu=cpu / max(sum(requests[1:]), 1),
        server_cpu=served / max(total, 1),
        total_cpu=cpu + served + stored + mine,
        others=max(busy - cpu - served - stored - mine, 0.0),
        verified=verified,
    )


def run_all() -> list[Row]:
    quiet_logs()
    rows = []
    with redis_server() as (url, pid):
        for n in SIZES:
            for w in WORKERS:
                print(f"  fleet: {n} targets, {w} workers ...", flush=True)
                rows.append(asyncio.run(one_run(url, pid, n, w)))
    return rows


def table(rows: list[Row]) -> Table:
    t = Table(
        "8. Fleet copy on taskiq workers (redis-server, emulator and workers in processes "
        "of their own)",
        [
            "targets",
            "workers",
            "wall s",
            "ideal s",
            "wall / ideal",
            "slot bound s",
            "CPU s / cores",
            "source read s",
            "requests / min",
            "429s",
            "failed",
            "worker CPU ms/req",
            "emulator CPU ms/req",
            "targets = source",
        ],
    )
    ideal = ideal_seconds(TARGET_MIN)
    for r in rows:
        t.add(
            r.targets,
            r.workers,
            r.wall,
            ideal,
            r.wall / ideal,
            slot_bound_seconds(TARGET_MIN),
            r.total_cpu / (os.cpu_count() or 1),
            r.source_read,
            f"{r.target_requests}/{r.targets * TARGET_MIN} + {r.source_requests}/{SOURCE_MIN}",
            r.rate_limited,
            r.failed,
            r.worker_cpu * 1000,
            r.server_cpu * 1000,
            r.verified,
        )
    t.notes += [
        f"Source: {PIPELINES} pipelines x {STATUSES} statuses x 3 descriptions; a target "
        f"needs {TARGET_MIN} requests (GET, POST pipelines, one statuses POST per pipeline), "
        f"ideal = {TARGET_MIN}/7 - 1 = {ideal:.2f} s (the slowest account's requests at "
        "7/s, first burst free); every target has its own budget, so the ideal does not "
        "grow with the number of targets, while the CPU needed does.",
        "Wall: from the first enqueue to the last 'done' in the job's progress hash (polled "
        "every 0.1 s); the source's read (prepare_copy, 21 requests) comes before it.",
        "Slot bound: when the last of an account's 22 requests may start at the earliest "
        "(bursts of 7 at 0, 1, 2, 3 s); a wall time near it plus a round trip is the rate "
        "limit's own bound. CPU s / cores: the CPU seconds the workers, the emulator, "
        "redis-server and the enqueuer used during the wall time, over the machine's cores: "
        "a wall time near it is bound by CPU.",
        "Worker CPU per request: the worker processes (taskiq's manager and its child) over "
        "the requests they sent; emulator CPU per request: the emulator process over every "
        "request it served.",
        f"Machine: {os.cpu_count()} cores. The emulator, redis-server, the enqueuer and the "
        "workers share them: with more targets than the 7/s chains can hide, the run is "
        "bound by CPU (workers + emulator), not by the rate limits.",
    ]
    return t


def main() -> int:
    print(table(run_all()).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
