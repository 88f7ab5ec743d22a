"""Benchmark 6: ``copy`` of the largest legal account to 20 accounts, at the default limits.

Source: 50 pipelines x 97 custom statuses x 3 descriptions (the main pipeline plus 49),
filled before the clock starts. Targets: 20 empty accounts (``--empty-account``: a main
pipeline with its three system statuses only). All 22 accounts (the source, the reference
target, the 20 targets) are served by ONE emulator process (``python -m
amo_pipelines.emulator --accounts 22``, one port and its own limits per account: 7/s per
token, 50/s per account), so serving never competes with the client for a core and 21
server processes do not compete with each other for the second one.

``amo_pipelines.funnels.copy_funnels`` reads the source once (1 GET of the pipelines, 1 GET
of statuses with descriptions per pipeline: 51) and writes each target in the fewest
requests: 1 GET of its pipelines, 1 POST of the 49 missing pipelines, 1 POST of 97 statuses
with descriptions per pipeline: 52. A second copy must write nothing: 51 + 20 x 51 requests.

Each round starts a fresh emulator process; ``COPY_ROUNDS`` (default 3) rounds, and the
table shows the median and the range of each cell. The second table says where the wall
time went (``copy_timeline``): per request its slot, the answers it needed, its round trip
split by the emulator's own log (``GET /_emulator/log``), and the critical path. The last
round's requests are written to ``benchmarks/out/copy_timeline.json``.

Run: ``python -m benchmarks --only copy`` or ``python -m benchmarks.copy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from amo_pipelines import (
    AmoClient,
    DescriptionInput,
    DescriptionLevel,
    NewPipeline,
    NewStatus,
    StatusColor,
)
from amo_pipelines.funnels import CopyResult, CopyTarget, copy_funnels, export
from amo_pipelines.transport import AiohttpTransport, Request, Response

from . import copy_timeline
from .common import OUT, quiet_logs, stop_process
from .copy_report import table

TARGETS = 20
PIPELINES = 50
STATUSES = 97
SOURCE_MIN = 1 + PIPELINES
TARGET_MIN = 1 + 1 + PIPELINES
ROUNDS = int(os.environ.get("COPY_ROUNDS", "3"))
PALETTE = list(StatusColor)
LISTING = "/api/v4/leads/pipelines"


class TimedTransport(AiohttpTransport):
    """Counts requests and statuses, and notes each request's method, path, send and answer
    times (``time.monotonic``, the emulator's clock) and the pipeline ids of a listing."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: Counter[int] = Counter()
        self.failures = 0
        self.times: list[tuple[str, str, float, float]] = []
        self.listing = b""

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.failures

    async def send(self, request: Request) -> Response:
        sent = time.monotonic()
        try:
            response = await super().send(request)
        except Exception:
            self.failures += 1
            raise
        finally:
            self.times.append((request.method, request.url.path, sent, time.monotonic()))
        self.statuses[response.status] += 1
        if request.method == "GET" and request.url.path == LISTING and not self.listing:
            self.listing = response.body  # parsed after the copy, off the clock
        return response

    @property
    def listed(self) -> set[int]:
        """The pipeline ids of the first listing."""
        if not self.listing:
            return set()
        return {p["id"] for p in json.loads(self.listing)["_embedded"]["pipelines"]}


def template_statuses(pipeline_no: int, count: int = STATUSES) -> list[NewStatus]:
    """A template pipeline's custom statuses, each with a description per level (benchmarks
    6 and 8 fill their source accounts with these)."""
    return [
        NewStatus(
            name=f"Stage {i:02d}",
            sort=10 * i,
            color=PALETTE[i % len(PALETTE)],
            descriptions=[
                DescriptionInput.create(lv, f"What a {lv.value} does at {i} of {pipeline_no}.")
                for lv in DescriptionLevel
            ],
        )
        for i in range(1, count + 1)
    ]


async def fill_source(url: str, token: str) -> None:
    async with AmoClient(base_url=url, access_token=token, batch_size=STATUSES) as amo:
        [main] = await amo.pipelines.list()
        created = await amo.pipelines.create(
            [NewPipeline(name=f"Pipeline {p:02d}", sort=100 + p) for p in range(1, PIPELINES)]
        )
        ids = [main.id] + [p.id for p in created]
        await asyncio.gather(
            *(amo.statuses.create(pid, template_statuses(n)) for n, pid in enumerate(ids))
        )


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (Linux /proc/stat; 0 elsewhere), to tell
    a round disturbed by other processes from a quiet one."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system, irq softirq steal
        return busy / os.sysconf("SC_CLK_TCK")
    return 0.0


@dataclass
class Account:
    url: str
    token: str


@dataclass
class Fleet:
    """One emulator process serving every account of a round."""

    accounts: list[Account]
    pid: int
    cursors: dict[str, int] = field(default_factory=dict)

    def cpu(self) -> float:
        """The server process's CPU seconds so far (Linux /proc; 0 elsewhere)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    async def log(self, session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
        """The account's log entries since the last call (the server's own endpoint)."""
        async with session.get(f"{url}/_emulator/log?since={self.cursors.get(url, 0)}") as r:
            body = await r.json()
        self.cursors[url] = body["next"]
        return list(body["entries"])


@contextlib.asynccontextmanager
async def fleet_process(count: int) -> AsyncIterator[Fleet]:
    """``python -m amo_pipelines.emulator --accounts COUNT`` in a process of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "accounts.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "amo_pipelines.emulator",
            *("--accounts", str(count), "--port", "0", "--accounts-file", str(path)),
            *("--empty-account", "--seed", "1"),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            for _ in range(count + 1):  # the banner, then one line per account
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                if not line:
                    raise RuntimeError("the emulator process ended before serving")
            listed = json.loads(path.read_text(encoding="utf-8"))
            accounts = [Account(a["base_url"], a["admin_token"]) for a in listed]
            yield Fleet(accounts, proc.pid)
        finally:
            await stop_process(proc)


@dataclass
class GcPauses:
    """CPython's cyclic collector runs in this process while counting (``gc.callbacks``):
    each one stops the event loop, so a long one delays every request due meanwhile."""

    full: int = 0
    full_s: float = 0.0
    young: int = 0
    young_s: float = 0.0
    longest_s: float = 0.0
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.longest_s = max(self.longest_s, took)
        if info["generation"] == 2:
            self.full, self.full_s = self.full + 1, self.full_s + took
        else:
            self.young, self.young_s = self.young + 1, self.young_s + took

    @contextlib.contextmanager
    def counting(self) -> Iterator[GcPauses]:
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)


@dataclass
class Run:
    name: str
    wall: float
    requests: dict[str, int]
    """Per account label: requests sent (429s and retries included)."""
    minimum: dict[str, int]
    rate_limited: int
    failures: int
    writes: list[int] = field(default_factory=list)
    cpu: float = 0.0
    """The client process's CPU seconds during the copy."""
    served: float = 0.0
    """The emulator process's CPU seconds during the copy."""
    others: float = 0.0
    """CPU seconds other processes of the machine used meanwhile (0 on a quiet machine)."""
    collections: GcPauses = field(default_factory=lambda: GcPauses())
    """The client process's garbage-collector runs during the copy."""
    line: copy_timeline.Timeline | None = None
    verified: str = ""


async def _copy(
    fleet: Fleet, source: Account, targets: list[Account], name: str, minimum: int
) -> Run:
    labels = ["source", *map(str, range(len(targets)))]
    transports = {label: TimedTransport() for label in labels}
    async with contextlib.AsyncExitStack() as stack:

        def open_client(account: Account, label: str) -> AmoClient:
            return AmoClient(
                base_url=account.url,
                access_token=account.token,
                batch_size=STATUSES,
                transport=transports[label],
            )

        src = await stack.enter_async_context(open_client(source, "source"))
        clients = [
            await stack.enter_async_context(open_client(t, str(i))) for i, t in enumerate(targets)
        ]
        started, cpu, served = time.monotonic(), time.process_time(), fleet.cpu()
        busy = machine_cpu()
        with GcPauses().counting() as collections:
            result = await copy_funnels(src, [CopyTarget(c) for c in clients])
        wall = time.monotonic() - started
        cpu, served = time.process_time() - cpu, fleet.cpu() - served
        busy = machine_cpu() - busy
    for t in transports.values():
        await t.aclose()
    run = Run(
        name=name,
        wall=wall,
        requests={label: t.requests for label, t in transports.items()},
        minimum={"source": SOURCE_MIN, **{str(i): minimum for i in range(len(targets))}},
        rate_limited=sum(t.statuses.get(429, 0) for t in transports.values()),
        failures=len(result.failed),
        writes=[t.writes for t in result.targets],
        cpu=cpu,
        served=served,
        others=max(busy - cpu - served, 0.0),
        collections=collections,
    )
    async with aiohttp.ClientSession() as session:
        logs = {
            label: await fleet.log(session, account.url)
            for label, account in zip(labels, [source, *targets], strict=True)
        }
    run.line = _timeline(transports, logs, result, started)
    return run


def _timeline(
    transports: dict[str, TimedTransport],
    logs: dict[str, list[dict[str, Any]]],
    result: CopyResult,
    started: float,
) -> copy_timeline.Timeline:
    def moved(entry: dict[str, Any]) -> dict[str, Any]:
        finished = entry["finished_at"]
        return {
            **entry,
            "arrived_at": entry["arrived_at"] - started,
            "finished_at": None if finished is None else finished - started,
        }

    source_of: dict[str, dict[int, int]] = {}
    for label, outcome in zip(map(str, range(len(result.targets))), result.targets, strict=True):
        source_of[label] = {
            tid: sid
            for i, tid in outcome.pipeline_ids.items()
            if (sid := result.spec.pipelines[i].id) is not None
        }
    return copy_timeline.build(
        {
            k: [(m, p, s - started, a - started) for m, p, s, a in t.times]
            for k, t in transports.items()
        },
        {k: [moved(e) for e in v] for k, v in logs.items()},
        source_of,
        {k: t.listed for k, t in transports.items() if k != "source"},
    )


async def _verify(source: Account, targets: list[Account]) -> str:
    """Every target's funnels are the source's (names, order, colors, descriptions)."""

    def shape(spec: object) -> list[object]:
        return [
            (
                p.name,
                [
                    (s.role, s.name, s.color if not s.role else None, s.descriptions)
                    for s in p.statuses
                    if s.role != "incoming"
                ],
            )
            for p in spec.pipelines  # type: ignore[attr-defined]
        ]

    async def read(account: Account) -> list[object]:
        async with AmoClient(base_url=account.url, access_token=account.token) as amo:
            return shape(await export(amo))

    wanted = await read(source)
    got = await asyncio.gather(*(read(t) for t in targets))
    bad = sum(g != wanted for g in got)
    return f"FAILED: {bad} targets differ" if bad else f"ok ({len(got)})"


async def _round(number: int) -> list[Run]:
    print(f"  copy: round {number}: one emulator process, {TARGETS + 2} accounts ...", flush=True)
    async with fleet_process(TARGETS + 2) as fleet:
        source, alone, targets = fleet.accounts[0], fleet.accounts[1:2], fleet.accounts[2:]
        await fill_source(source.url, source.token)
        async with aiohttp.ClientSession() as session:  # the filling is not part of any run
            for account in fleet.accounts:
                await fleet.log(session, account.url)
        runs = []
        for name, accounts, per_target in (
            ("reference: first copy to 1 account", alone, TARGET_MIN),
            ("first copy to 20 accounts (empty)", targets, TARGET_MIN),
            ("second copy to 20 accounts (already match)", targets, SOURCE_MIN),
        ):
            await asyncio.sleep(1.5)  # the source's rate windows empty again
            print(f"  copy: round {number}: {name} ...", flush=True)
            runs.append(await _copy(fleet, source, accounts, name, per_target))
        runs[1].verified = await _verify(source, targets)
        return runs


def run_all() -> list[list[Run]]:
    """``ROUNDS`` rounds, each a list of the three runs."""
    quiet_logs()
    rounds = [asyncio.run(_round(n + 1)) for n in range(ROUNDS)]
    last = rounds[-1][1].line
    if last is not None:
        OUT.mkdir(parents=True, exist_ok=True)
        dump = [r.as_json() for r in last.all()]
        (OUT / "copy_timeline.json").write_text(json.dumps(dump, indent=1), encoding="utf-8")
    return rounds


def main() -> int:
    print(table(run_all()).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
