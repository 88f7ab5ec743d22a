"""One budget across processes: the machine-wide file store and Redis, side by side.

Every process here is real: the emulator runs in its own process and writes its request
log (arrival times on the machine's monotonic clock) when its stdin closes; the workers
are separate Python processes with their own event loops and clients.

(a) 4 processes x 2 clients on one token, 300 GETs between them: wall / ideal, where wall
    is the first to the last arrival at the server and ideal the least that 7 per second
    allows, (N - 1) // 7 seconds; 429s and the most arrivals in any 1-s window.
(b) 8 tokens on one account, 8 processes, 70 GETs each, so the 50/s account limit binds.
(c) A process whose 7 requests hold every place of the token (the server answers them
    only after 10 minutes) is killed with SIGKILL while 3 others wait: when the others
    get their first place after the kill, against lease + one period, and their rate.
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
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .common import ROOT, Table, redis_server

PIPELINES = "/api/v4/leads/pipelines"
SLOW = "/api/v4/leads/pipelines/999999999"  # answered after 10 minutes: places stay pending
LEASE = 3.0  # seconds: the workers' stores (so that (c) shows the bound in a short run)

EMULATOR = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from amo_pipelines.emulator import Emulator, EmulatorConfig, Fault

    async def main() -> None:
        o = json.loads(sys.argv[1])
        config = EmulatorConfig(block_after=None, latency=o["latency"])
        async with Emulator(config) as emu:
            tokens = [emu.admin_token] + [
                emu.issue_tokens()["access_token"] for _ in range(o["tokens"] - 1)
            ]
            emu.faults.add(Fault.latency(600.0), path=o["slow"], times=None)
            print(json.dumps({"url": emu.url, "tokens": tokens}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            index = {token: i for i, token in enumerate(tokens)}
            log = [[e.arrived_at, index.get(e.token, -1), e.status, e.path]
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
    from amo_pipelines.budget.limiter import RateLimiter

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
    options = json.dumps({"tokens": tokens, "latency": latency, "slow": SLOW})
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


def _worker(
    server: Server, store: Store, token: int, requests: int, clients: int, path: str = PIPELINES
) -> Any:
    options = {
        "url": server.url,
        "token": server.tokens[token],
        "requests": requests,
        "clients": clients,
        "redis": store.redis_url,
        "prefix": store.prefix,
        "lease": LEASE,
        "path": path,
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
    """A redis-server for the Redis rows, or None (those rows are left out) without one."""
    try:
        import redis  # noqa: F401
    except ImportError:
        yield None
        return
    if shutil.which("redis-server") is None:
        yield None
        return
    with redis_server() as (url, _):
        yield url


async def _warm(store: Store, account: str) -> None:
    """Redis grants nothing for lease + period on an account's first use: get it over
    with before the clock starts (a restart or flush costs the same, once)."""
    if store.redis_url is None:
        return
    import redis.asyncio as aioredis

    from amo_pipelines.budget.windows import Granted, PenaltyRule, Window
    from amo_pipelines.redis import RedisWindowStore

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
    store: Store, *, tokens: int, workers: int, per_worker: int, clients: int
) -> dict[str, Any]:
    with _emulator(tokens) as (server, log):
        asyncio.run(_warm(store, _account(server)))
        procs = [_worker(server, store, w % tokens, per_worker, clients) for w in range(workers)]
        codes = [proc.wait(timeout=600) for proc in procs]
    arrivals = sorted(entry[0] for entry in log)
    per_token = [_most_in_one_second([e[0] for e in log if e[1] == t]) for t in range(tokens)]
    return {
        "n": len(log),
        "wall": arrivals[-1] - arrivals[0] if arrivals else 0.0,
        "429": sum(1 for e in log if e[2] == 429),
        "max_token": max(per_token),
        "max_account": _most_in_one_second(arrivals),
        "finished": sum(1 for code in codes if code == 0),
    }


def _run_kill(store: Store) -> dict[str, Any]:
    """One worker takes all 7 places with requests the server answers only after 10
    minutes, three others queue behind it, and it is killed: the others must get the
    places back within lease + one period, then run at the full rate."""
    with _emulator() as (server, log):
        asyncio.run(_warm(store, _account(server)))
        stuck = _worker(server, store, 0, 7, 1, path=SLOW)
        time.sleep(2.0)  # its 7 requests are on the wire, holding the 7 places
        others = [_worker(server, store, 0, 21, 2) for _ in range(3)]
        time.sleep(2.0)
        os.kill(stuck.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        stuck.wait()
        codes = [proc.wait(timeout=600) for proc in others]
    mine = sorted(entry[0] for entry in log if entry[3] == PIPELINES)
    after = mine[0] - killed_at if mine else float("nan")
    # Whole seconds from the first arrival of the others to the end of their last burst.
    seconds = int(mine[-1] - mine[0]) + 1 if mine else 0
    return {
        "finished": sum(1 for code in codes if code == 0),
        "held": sum(1 for entry in log if entry[3] == SLOW),
        "first_after_kill": after,
        "rate": len(mine) / seconds if seconds else 0.0,
        "429": sum(1 for entry in log if entry[2] == 429),
        "max_token": _most_in_one_second([entry[0] for entry in log]),
    }


async def _grant_cost(store: Any, rounds: int = 2000, alone: bool = False) -> tuple[float, float]:
    """Microseconds per acquire and per complete. ``alone``: the file store writes each
    answer by itself (as when the loop turns between an answer and the next grant), rather
    than with the next grant's write."""
    from amo_pipelines.budget.windows import Granted, PenaltyRule, Window

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
        if alone:
            store._flush()
        acquired += middle - started
        completed += time.perf_counter() - middle
    return acquired / rounds * 1e6, completed / rounds * 1e6


async def _costs(redis_url: str | None, directory: str) -> list[tuple[str, str, str]]:
    from amo_pipelines.budget.windows import InMemoryWindowStore
    from amo_pipelines.stores import FileWindowStore

    rows = []
    for name, store, alone in (
        ("in-process (InMemoryWindowStore)", InMemoryWindowStore(), False),
        ("machine-wide (FileWindowStore)", FileWindowStore(directory, lease=LEASE), False),
        (
            "machine-wide (FileWindowStore), each answer written alone",
            FileWindowStore(directory, lease=LEASE),
            True,
        ),
    ):
        a, c = await _grant_cost(store, alone=alone)
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
                r = _run_kill(store)
                c.add(
                    store.name,
                    f"{r['finished']} of 3",
                    r["held"],
                    r["first_after_kill"],
                    LEASE + 1.0,
                    r["rate"],
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
        f"One worker's 7 requests hold all 7 places (the server answers them after 10 "
        "minutes); 3 workers x 2 clients queue 63 GETs behind them; the first is killed "
        f"(SIGKILL). Leases {LEASE:g} s: its places fall free between 2/3 of a lease and a "
        "lease after the kill, plus one period (bound). rate = the others' arrivals per "
        "second, from their first to the end of their last burst (the limit is 7)."
    )
    d.notes.append(
        "Each grant answered at once; windows that never fill. The file store takes a lock "
        "and rewrites a small binary file per write; it writes an answer with the next write "
        "of the account or when the event loop turns, so in this loop (no turn between an "
        "answer and the next grant) the grant's write carries the answer; the row 'written "
        "alone' writes each answer by itself. Redis is one script call on loopback."
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
        "7c. kill -9 of a worker holding all 7 places of the token, 3 workers waiting",
        [
            "store",
            "others finished",
            "places held",
            "first grant after kill s",
            "bound s",
            "rate after /s",
            "429s",
            "max in 1 s",
        ],
    ),
]


if __name__ == "__main__":
    for table in run_all():
        print(table.render(), end="\n\n", flush=True)
