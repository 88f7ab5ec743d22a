"""One budget across processes: the machine-wide file store and Redis, side by side.

Every process here is real: the emulator runs in its own process and writes its request
log (arrival times on the machine's monotonic clock) when its stdin closes; the workers
are separate Python processes with their own event loops and clients.

(a) 4 processes x 2 clients on one token, 300 GETs between them: wall / ideal, where wall
    is the first to the last arrival at the server and ideal the least that 7 per second
    allows, (N - 1) // 7 seconds; 429s and the most arrivals in any 1-s window.
(b) 8 tokens on one account, 8 processes, 70 GETs each, so the 50/s account limit binds.
(c) 4 processes on one token, 50-150 ms of server latency, one of them killed with
    SIGKILL mid-run: the others finish, and the longest pause in arrivals after the kill
    against lease + one period (the killed process's pending places are held that long).
(d) The cost of one grant (acquire) and one answer (complete) per store, in microseconds.

Redis needs ``redis-server`` on the PATH and the ``redis`` extra; without them its rows say
so. The benchmark keeps its machine-wide store in a temporary folder of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .common import ROOT, Table

PIPELINES = "/api/v4/leads/pipelines"
LEASE = 3.0  # seconds: the workers' stores (so that (c) shows the bound in a short run)

EMULATOR = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from amo_pipelines.emulator import Emulator, EmulatorConfig

    async def main() -> None:
        o = json.loads(sys.argv[1])
        config = EmulatorConfig(block_after=None, latency=o["latency"])
        async with Emulator(config) as emu:
            tokens = [emu.admin_token] + [
                emu.issue_tokens()["access_token"] for _ in range(o["tokens"] - 1)
            ]
            print(json.dumps({"url": emu.url, "tokens": tokens}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            index = {token: i for i, token in enumerate(tokens)}
            log = [[e.arrived_at, index.get(e.token, -1), e.status]
                   for e in emu.request_log if e.path.startswith("/api/")]
            print(json.dumps(log), flush=True)
            os._exit(0)

    asyncio.run(main())
    """
)

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from amo_pipelines import AmoClient
    from amo_pipelines.ratelimit import RateLimiter

    async def main() -> None:
        o = json.loads(sys.argv[1])
        redis = None
        if o["redis"]:
            import redis.asyncio as aioredis
            from amo_pipelines.redis import RedisWindowStore
            redis = aioredis.Redis.from_url(o["redis"])
            store = RedisWindowStore(redis, prefix=o["prefix"], lease=o["lease"])
        else:
            from amo_pipelines.stores import FileWindowStore
            store = FileWindowStore(lease=o["lease"])
        limiter = RateLimiter(store=store)
        clients = [AmoClient(base_url=o["url"], access_token=o["token"], rate_limiter=limiter)
                   for _ in range(o["clients"])]
        await asyncio.gather(*(clients[i % len(clients)].request("GET", o["path"])
                               for i in range(o["requests"])))
        for client in clients:
            await client.aclose()
        if redis is not None:
            await redis.aclose()

    asyncio.run(main())
    """
)


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    tokens: list[str]


@contextmanager
def _emulator(tokens: int = 1, latency: tuple[float, float] | None = None) -> Iterator[Any]:
    options = json.dumps({"tokens": tokens, "latency": latency})
    proc = subprocess.Popen(
        [sys.executable, "-c", EMULATOR, options],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    log: list[list[Any]] = []
    try:
        info = json.loads(proc.stdout.readline())
        yield Server(proc, info["url"], info["tokens"]), log
        proc.stdin.close()
        log += json.loads(proc.stdout.readline())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def _worker(server: Server, store: Store, token: int, requests: int, clients: int) -> Any:
    options = {
        "url": server.url,
        "token": server.tokens[token],
        "requests": requests,
        "clients": clients,
        "redis": store.redis_url,
        "prefix": store.prefix,
        "lease": LEASE,
        "path": PIPELINES,
    }
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(options)], cwd=ROOT)


@dataclass
class Store:
    name: str
    redis_url: str | None = None
    prefix: str = ""


def _most_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


@contextmanager
def _redis_server() -> Iterator[str | None]:
    exe = shutil.which("redis-server")
    try:
        import redis  # noqa: F401
    except ImportError:
        exe = None
    if exe is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with socket.socket() as conn:
                if conn.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()


async def _warm(store: Store, account: str) -> None:
    """Redis grants nothing for lease + period on an account's first use: get it over
    with before the clock starts (a restart or flush costs the same, once)."""
    if store.redis_url is None:
        return
    import redis.asyncio as aioredis

    from amo_pipelines.redis import RedisWindowStore
    from amo_pipelines.windows import Granted, PenaltyRule, Window

    client = aioredis.Redis.from_url(store.redis_url)
    warm = RedisWindowStore(client, prefix=store.prefix, lease=LEASE)
    rule = PenaltyRule(0.5, 0.1, 1.0, 1 / 64)
    try:
        while True:
            admission = await warm.acquire_account(account, [Window("a|warm", 50, 1.0)], rule)
            if isinstance(admission, Granted):
                await warm.refund(admission)
                return
            await asyncio.sleep(admission.retry_after)
    finally:
        await client.aclose()


def _account(server: Server) -> str:
    host_port = server.url.split("//", 1)[1].rstrip("/")
    return host_port


def _run(
    store: Store,
    *,
    tokens: int,
    workers: int,
    per_worker: int,
    clients: int,
    latency: tuple[float, float] | None = None,
    kill_after: float | None = None,
) -> dict[str, Any]:
    with _emulator(tokens, latency) as (server, log):
        asyncio.run(_warm(store, _account(server)))
        procs = [_worker(server, store, w % tokens, per_worker, clients) for w in range(workers)]
        killed_at = None
        if kill_after is not None:
            time.sleep(kill_after)
            os.kill(procs[0].pid, signal.SIGKILL)
            killed_at = time.monotonic()
        codes = [proc.wait(timeout=600) for proc in procs]
    arrivals = sorted(entry[0] for entry in log)
    per_token = [_most_in_one_second([e[0] for e in log if e[1] == t]) for t in range(tokens)]
    result: dict[str, Any] = {
        "n": len(log),
        "wall": arrivals[-1] - arrivals[0] if arrivals else 0.0,
        "429": sum(1 for e in log if e[2] == 429),
        "max_token": max(per_token),
        "max_account": _most_in_one_second(arrivals),
        "finished": sum(1 for code in codes if code == 0),
    }
    if killed_at is not None:
        # Arrivals per second: before the kill, while the dead process's places may still
        # be held (lease + one period), and after that until the end.
        bound = killed_at + LEASE + 1.0

        def rate(start: float, end: float) -> float:
            # Over whole seconds, so that no burst is cut in half by the edges.
            seconds = int(end - start)
            inside = sum(1 for t in arrivals if start <= t < start + seconds)
            return inside / seconds if seconds > 0 else 0.0

        # (without the first second's burst and the last second, when workers finish)
        result["before"] = rate(arrivals[0] + 1.0, killed_at)
        result["held"] = rate(killed_at, bound)
        result["after"] = rate(bound, arrivals[-1] - 1.0)
    return result


async def _grant_cost(store: Any, rounds: int = 2000) -> tuple[float, float]:
    from amo_pipelines.windows import Granted, PenaltyRule, Window

    # Windows that never fill, with a span so short that answered grants leave at once:
    # the store holds a handful of entries, as a real 7/s window does.
    windows = [Window("i|bench|fp", 10**9, 0.001), Window("a|bench", 10**9, 0.001)]
    rule = PenaltyRule(0.5, 0.1, 1.0, 1 / 64)
    shared = hasattr(store, "acquire_account")

    async def acquire() -> Any:
        if shared:
            return await store.acquire_account("bench.example", windows, rule)
        return await store.acquire(windows, time.monotonic())

    for _ in range(100):  # Redis grants nothing at an account's first use for a while
        first = await acquire()
        if isinstance(first, Granted):
            await store.refund(first)
            break
        await asyncio.sleep(first.retry_after)
    acquired = completed = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        grant = await acquire()
        middle = time.perf_counter()
        await store.complete(grant, time.monotonic())
        acquired += middle - started
        completed += time.perf_counter() - middle
    return acquired / rounds * 1e6, completed / rounds * 1e6


async def _costs(redis_url: str | None, directory: str) -> list[tuple[str, str, str]]:
    from amo_pipelines.stores import FileWindowStore
    from amo_pipelines.windows import InMemoryWindowStore

    rows = []
    for name, store in (
        ("in-process (InMemoryWindowStore)", InMemoryWindowStore()),
        ("machine-wide (FileWindowStore)", FileWindowStore(directory, lease=LEASE)),
    ):
        a, c = await _grant_cost(store)
        rows.append((name, f"{a:.1f}", f"{c:.1f}"))
    if redis_url is None:
        rows.append(("Redis (RedisWindowStore)", "n/a: no redis-server", "n/a"))
    else:
        import redis.asyncio as aioredis

        from amo_pipelines.redis import RedisWindowStore

        client = aioredis.Redis.from_url(redis_url)
        try:
            store = RedisWindowStore(client, prefix="cost", lease=0.3)
            a, c = await _grant_cost(store, rounds=1000)
            rows.append(("Redis (RedisWindowStore), local server", f"{a:.1f}", f"{c:.1f}"))
        finally:
            await client.aclose()
    return rows


def run_all() -> list[Table]:
    directory = tempfile.mkdtemp(prefix="amo-bench-budget-")
    os.environ["AMO_PIPELINES_STATE_DIR"] = directory  # inherited by the workers
    try:
        with _redis_server() as redis_url:
            stores = [Store("machine-wide (file)")]
            if redis_url is not None:
                stores.append(Store("Redis", redis_url, "bench"))
            a, b, c = (Table(title, columns) for title, columns in _TABLES)
            for store in stores:
                r = _run(store, tokens=1, workers=4, per_worker=75, clients=2)
                ideal = (r["n"] - 1) // 7
                a.add(
                    store.name,
                    r["n"],
                    r["wall"],
                    float(ideal),
                    r["wall"] / ideal,
                    r["429"],
                    r["max_token"],
                )
                r = _run(store, tokens=8, workers=8, per_worker=70, clients=1)
                ideal = (r["n"] - 1) // 50
                b.add(
                    store.name,
                    r["n"],
                    r["wall"],
                    float(ideal),
                    r["wall"] / ideal,
                    r["429"],
                    r["max_token"],
                    r["max_account"],
                )
                r = _run(
                    store,
                    tokens=1,
                    workers=4,
                    per_worker=40,
                    clients=2,
                    latency=(0.05, 0.15),
                    kill_after=6.0,
                )
                c.add(
                    store.name,
                    f"{r['finished']} of 3",
                    r["before"],
                    r["held"],
                    r["after"],
                    r["429"],
                    r["max_token"],
                )
            if redis_url is None:
                for table in (a, b, c):
                    table.notes.append("Redis: n/a (no redis-server or no redis package).")
            d = Table(
                "7d. Cost of one grant and one answer per store (us, sequential)",
                ["store", "acquire us", "complete us"],
            )
            for row in asyncio.run(_costs(redis_url, directory + "/cost")):
                d.add(*row)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    a.notes.append("wall = first to last arrival at the server; ideal = (N - 1) // 7 s.")
    b.notes.append("8 tokens x 7/s = 56/s > 50/s: the account window binds; ideal = (N-1)//50 s.")
    c.notes.append(
        f"Worker 1 of 4 killed (SIGKILL) 6 s in; leases {LEASE:g} s. Arrivals per second "
        "before the kill (from the end of the first second), during lease + one period "
        "after it (the dead worker's pending places may still be held), and after that "
        "(to the last second): the last is back at the first. A place is held until the "
        "answer and 1 s after, so with 50-150 ms latency the steady rate is about 7 / 1.1."
    )
    d.notes.append(
        "Each grant answered at once; windows that never fill. The file store takes a lock "
        "and rewrites a small file per call; Redis is one script call on loopback."
    )
    return [a, b, c, d]


_TABLES = [
    (
        "7a. 4 processes x 2 clients, one token, 300 GETs, emulator in its own process",
        ["store", "requests", "wall s", "ideal s", "wall / ideal", "429s", "max in 1 s"],
    ),
    (
        "7b. 8 tokens of one account, 8 processes, 70 GETs each (the 50/s limit binds)",
        [
            "store",
            "requests",
            "wall s",
            "ideal s",
            "wall / ideal",
            "429s",
            "max in 1 s per token",
            "max in 1 s account",
        ],
    ),
    (
        "7c. kill -9 of one of 4 workers mid-run (one token, 50-150 ms server latency)",
        [
            "store",
            "others finished",
            "rate before /s",
            "rate in lease + 1 s /s",
            "rate after /s",
            "429s",
            "max in 1 s",
        ],
    ),
]


if __name__ == "__main__":
    for table in run_all():
        print(table.render(), end="\n\n", flush=True)
