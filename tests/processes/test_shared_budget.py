"""One budget per account across processes: real subprocesses against an emulator that
runs in a process of its own, with the machine-wide file store (the default) and Redis.

Every assertion is about what the server saw: the emulator process writes its request log
(arrival times on its own clock, status, which token) when its stdin closes.
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
from support.constants import PIPELINES

from amo_pipelines import AmoClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SLOW = "/api/v4/leads/pipelines/999999999"  # answers after a long latency (kill test)
LIMITED = "/api/v4/leads/pipelines/888888888"  # answers 429, retry after 2 s (pause test)
PATHS = {"slow": SLOW, "limited": LIMITED}

EMULATOR = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from amo_pipelines.emulator import Emulator, EmulatorConfig, Fault

    async def main() -> None:
        options = json.loads(sys.argv[1])
        async with Emulator(EmulatorConfig(block_after=None)) as emu:
            tokens = [emu.admin_token] + [
                emu.issue_tokens()["access_token"] for _ in range(options["tokens"] - 1)
            ]
            emu.faults.add(Fault.latency(60.0), path=options["slow"], times=None)
            emu.faults.add(Fault.status(429, retry_after=2.0), path=options["limited"])
            print(json.dumps({"url": emu.url, "tokens": tokens}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            index = {token: i for i, token in enumerate(tokens)}
            log = [
                [e.arrived_at, index.get(e.token, -1), e.status, e.path]
                for e in emu.request_log if e.path.startswith("/api/")
            ]
            print(json.dumps({"log": log}), flush=True)
            os._exit(0)  # requests still held by the latency fault must not delay the exit

    asyncio.run(main())
    """
)

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from amo_pipelines import AmoClient
    from amo_pipelines.budget.limiter import RateLimiter
    from amo_pipelines.http.retry import NO_RETRY

    async def main() -> None:
        o = json.loads(sys.argv[1])
        redis = None
        limiter = None
        if o["store"] == "redis":
            import redis.asyncio as aioredis
            from amo_pipelines.redis import RedisWindowStore
            redis = aioredis.Redis.from_url(o["redis_url"])
            store = RedisWindowStore(redis, prefix=o["prefix"], lease=o["lease"])
            limiter = RateLimiter(store=store)
        elif o["lease"] is not None:
            from amo_pipelines.stores import FileWindowStore
            limiter = RateLimiter(store=FileWindowStore(lease=o["lease"]))
        clients = [
            AmoClient(
                base_url=o["url"],
                access_token=o["token"],
                rate_limiter=limiter,
                retry=NO_RETRY if o["path"] == o["limited"] else None,
            )
            for _ in range(o["clients"])
        ]
        calls = [clients[i % len(clients)].request("GET", o["path"]) for i in range(o["requests"])]
        if o["path"] == o["limited"]:  # the pause test: one 429, no retry
            await asyncio.gather(*calls, return_exceptions=True)
        elif o["path"] != o["slow"]:
            await asyncio.gather(*calls)
        else:  # the kill test: announce the requests are out, then wait to be killed
            tasks = [asyncio.ensure_future(call) for call in calls]
            await asyncio.sleep(o["announce_after"])
            print("sent", flush=True)
            await asyncio.gather(*tasks)
        for client in clients:
            await client.aclose()
        if redis is not None:
            await redis.aclose()
        print("done", flush=True)

    asyncio.run(main())
    """
)


class Server:
    def __init__(self, process: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.process = process
        self.url: str = info["url"]
        self.tokens: list[str] = info["tokens"]
        self.log: list[list[Any]] = []

    def worker(
        self,
        store: str,
        redis_url: str | None,
        prefix: str,
        *,
        token: int = 0,
        requests: int = 14,
        clients: int = 1,
        lease: float | None = None,
        path: str = PIPELINES,
    ) -> subprocess.Popen[str]:
        options = {
            "url": self.url,
            "token": self.tokens[token],
            "requests": requests,
            "clients": clients,
            "store": store,
            "redis_url": redis_url,
            "prefix": prefix,
            "lease": lease,
            "path": path,
            "slow": SLOW,
            "limited": LIMITED,
            # Redis grants nothing for lease + 1 s after an account's keys first appear.
            "announce_after": 1.0 + (0.0 if store == "file" else (lease or 15.0) + 1.0),
        }
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(options)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )


@contextmanager
def emulator(tokens: int = 1) -> Iterator[Server]:
    process = subprocess.Popen(
        [sys.executable, "-c", EMULATOR, json.dumps({"tokens": tokens, **PATHS})],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        server = Server(process, json.loads(process.stdout.readline()))
        yield server
        process.stdin.close()
        server.log = json.loads(process.stdout.readline())["log"]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()


def finish(*workers: subprocess.Popen[str]) -> None:
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0 and out.strip().endswith("done")


def most_in_one_second(times: list[float]) -> int:
    """The most arrivals in any 1-second window [t, t + 1)."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u < t + 1.0) for i, t in enumerate(times)), default=0)


def check_budget(log: list[list[Any]], tokens: int = 1) -> None:
    assert [entry for entry in log if entry[2] == 429] == []
    for token in range(tokens):
        assert most_in_one_second([e[0] for e in log if e[1] == token]) <= 7
    assert most_in_one_second([e[0] for e in log]) <= 50


STORES = [
    pytest.param("file", id="machine-wide"),
    pytest.param("redis", id="redis"),
]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> tuple[str, str | None, str]:
    """(kind, redis URL, key prefix): a fresh prefix per test, so no test sees another's."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return "redis", url, f"t{os.urandom(4).hex()}"
    return "file", None, ""


def test_two_processes_back_to_back_share_one_budget(store: tuple[str, str | None, str]) -> None:
    with emulator() as server:
        for _ in range(2):
            finish(server.worker(*store, requests=14, lease=1.0))
    assert len(server.log) == 28
    check_budget(server.log)


def test_four_processes_at_once_on_one_token(store: tuple[str, str | None, str]) -> None:
    with emulator() as server:
        finish(*[server.worker(*store, requests=8, clients=2, lease=1.0) for _ in range(4)])
    assert len(server.log) == 32
    check_budget(server.log)


def test_eight_tokens_hold_the_account_limit(store: tuple[str, str | None, str]) -> None:
    with emulator(tokens=8) as server:
        finish(*[server.worker(*store, token=t, requests=14, lease=1.0) for t in range(8)])
    assert len(server.log) == 112
    check_budget(server.log, tokens=8)


def test_a_killed_process_frees_its_places(store: tuple[str, str | None, str]) -> None:
    """Seven requests that never get an answer hold all seven places of the token; once
    their process is killed (-9), the lease runs out and the next process gets them."""
    with emulator() as server:
        stuck = server.worker(*store, requests=7, lease=1.0, path=SLOW)
        assert stuck.stdout is not None
        assert stuck.stdout.readline().strip() == "sent"
        os.kill(stuck.pid, signal.SIGKILL)
        stuck.communicate(timeout=30)
        finish(server.worker(*store, requests=7, lease=1.0))
    assert sorted(entry[3] for entry in server.log) == [PIPELINES] * 7 + [SLOW] * 7
    # The killed process's seven were never answered: they held all seven places.
    assert [entry[2] for entry in server.log if entry[3] == SLOW] == [None] * 7
    check_budget(server.log)


def test_the_demo_twice_against_one_server_meets_no_429() -> None:
    """The issue's first repro: the second run used to get a 429 and exit 1."""
    with emulator() as server:
        env = {**os.environ, "AMO_TOKEN": server.tokens[0]}
        for _ in range(2):
            demo = subprocess.run(
                [sys.executable, "-m", "amo_pipelines", "demo", "--base-url", server.url],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert demo.returncode == 0, demo.stdout + demo.stderr
    check_budget(server.log)


def test_two_event_loops_of_one_process_share_the_budget() -> None:
    """The issue's second repro: two asyncio.run() calls, 7 GETs each, used to get 7 429s."""

    async def seven_gets(url: str, token: str) -> None:
        async with AmoClient(base_url=url, access_token=token) as amo:
            await asyncio.gather(*(amo.pipelines.list() for _ in range(7)))

    with emulator() as server:
        asyncio.run(seven_gets(server.url, server.tokens[0]))
        asyncio.run(seven_gets(server.url, server.tokens[0]))
    assert len(server.log) == 14
    check_budget(server.log)


def test_a_429_in_one_process_pauses_the_next_one(store: tuple[str, str | None, str]) -> None:
    """The 429 pause is the account's: a process started right after another one met a
    429 (retry after 2 s) sends nothing before the pause ends, as the server sees it."""
    with emulator() as server:
        finish(server.worker(*store, requests=1, lease=1.0, path=LIMITED))
        finish(server.worker(*store, requests=7, lease=1.0))
    [limited] = [entry for entry in server.log if entry[3] == LIMITED]
    assert limited[2] == 429
    after = [entry[0] for entry in server.log if entry[3] == PIPELINES]
    assert len(after) == 7 and min(after) >= limited[0] + 2.0
