"""Benchmark 6: ``copy`` of the largest legal account to 20 accounts, at the default limits.

Source: 50 pipelines x 97 custom statuses x 3 descriptions (the main pipeline plus 49),
filled before the clock starts. Targets: 20 empty accounts (``--empty-account``: a main
pipeline with its three system statuses only). Every account is an emulator in its own
process (``python -m amo_pipelines.emulator``), with the documented limits (7/s per token,
50/s per account), so serving never competes with the client for a core.

``amo_pipelines.funnels.copy_funnels`` reads the source once (1 GET of the pipelines, 1 GET
of statuses with descriptions per pipeline: 51) and writes each target in the fewest
requests: 1 GET of its pipelines, 1 POST of the 49 missing pipelines, 1 POST of 97 statuses
with descriptions per pipeline: 52. The targets' writes of a pipeline's statuses follow
the source's read of it, so reading and writing overlap.

A second copy must write nothing (every target already matches): 51 + 20 x 51 requests
(each target's listing and every pipeline's statuses with descriptions, to compare them).

Run: ``python -m benchmarks --only copy`` or ``python -m benchmarks.copy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from amo_pipelines import (
    AmoClient,
    DescriptionInput,
    DescriptionLevel,
    NewPipeline,
    NewStatus,
    StatusColor,
)
from amo_pipelines.demo import CountingTransport
from amo_pipelines.funnels import CopyTarget, copy_funnels, export
from amo_pipelines.transport import Request, Response

from .common import Table, emulator_process, ideal_seconds, quiet_logs, slot_bound_seconds

TARGETS = 20
PIPELINES = 50
STATUSES = 97
SOURCE_MIN = 1 + PIPELINES
TARGET_MIN = 1 + 1 + PIPELINES
PALETTE = list(StatusColor)
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class TimedTransport(CountingTransport):
    """Counts like the demo's transport, and notes each request's send and answer times."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[float, float]] = []

    async def send(self, request: Request) -> Response:
        sent = time.perf_counter()
        try:
            return await super().send(request)
        finally:
            self.times.append((sent, time.perf_counter()))


def _statuses(pipeline_no: int) -> list[NewStatus]:
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
        for i in range(1, STATUSES + 1)
    ]


async def fill_source(url: str, token: str) -> None:
    async with AmoClient(base_url=url, access_token=token, batch_size=STATUSES) as amo:
        [main] = await amo.pipelines.list()
        created = await amo.pipelines.create(
            [NewPipeline(name=f"Pipeline {p:02d}", sort=100 + p) for p in range(1, PIPELINES)]
        )
        ids = [main.id] + [p.id for p in created]
        await asyncio.gather(*(amo.statuses.create(pid, _statuses(n)) for n, pid in enumerate(ids)))


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
    """The 21 emulator processes' CPU seconds during the copy."""
    times: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Per account label: (sent, answered) of each request, seconds from the copy's start."""
    verified: str = ""


def emulators_cpu() -> float:
    """CPU seconds used so far by this process's emulator children (Linux /proc; 0 elsewhere)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
            if int(fields[1]) == os.getpid() and b"amo_pipelines.emulator" in cmdline:
                total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _copy(source: tuple[str, str], targets: list[tuple[str, str]], name: str) -> Run:
    transports = {label: TimedTransport() for label in ["source", *map(str, range(len(targets)))]}
    async with contextlib.AsyncExitStack() as stack:

        def open_client(url: str, token: str, label: str) -> AmoClient:
            return AmoClient(
                base_url=url, access_token=token, batch_size=STATUSES, transport=transports[label]
            )

        src = await stack.enter_async_context(open_client(*source, "source"))
        clients = [
            await stack.enter_async_context(open_client(url, token, str(i)))
            for i, (url, token) in enumerate(targets)
        ]
        started, cpu, served = time.perf_counter(), time.process_time(), emulators_cpu()
        result = await copy_funnels(src, [CopyTarget(c) for c in clients])
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        served = emulators_cpu() - served
    for t in transports.values():
        await t.aclose()
    requests = {label: t.requests for label, t in transports.items()}
    times = {
        label: [(a - started, b - started) for a, b in t.times] for label, t in transports.items()
    }
    return Run(
        times=times,
        name=name,
        wall=wall,
        requests=requests,
        minimum={},
        rate_limited=sum(t.statuses.get(429, 0) for t in transports.values()),
        failures=len(result.failed),
        writes=[t.writes for t in result.targets],
        cpu=cpu,
        served=served,
    )


async def _verify(source: tuple[str, str], targets: list[tuple[str, str]]) -> str:
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

    async def read(url: str, token: str) -> list[object]:
        async with AmoClient(base_url=url, access_token=token) as amo:
            return shape(await export(amo))

    wanted = await read(*source)
    got = await asyncio.gather(*(read(*t) for t in targets))
    bad = sum(g != wanted for g in got)
    count = sum(len(p[1]) for p in wanted)  # type: ignore[index]
    return f"FAILED: {bad} targets differ" if bad else f"ok ({len(got)} x {count} statuses)"


async def _run_all() -> list[Run]:
    async with contextlib.AsyncExitStack() as stack:
        print(f"  copy: starting {TARGETS + 2} emulator processes ...", flush=True)
        procs = await asyncio.gather(
            *(
                stack.enter_async_context(emulator_process("--empty-account", "--seed", str(i)))
                for i in range(TARGETS + 2)
            )
        )
        source = (procs[0].url, procs[0].admin_token)
        alone = [(procs[1].url, procs[1].admin_token)]
        targets = [(p.url, p.admin_token) for p in procs[2:]]
        print("  copy: filling the source (50 x 97 x 3) ...", flush=True)
        await fill_source(*source)
        runs = []
        for name, accounts, per_target in (
            ("reference: first copy to 1 account", alone, TARGET_MIN),
            ("first copy to 20 accounts (empty)", targets, TARGET_MIN),
            ("second copy to 20 accounts (already match)", targets, SOURCE_MIN),
        ):
            await asyncio.sleep(1.5)  # the source's rate windows empty again
            print(f"  copy: {name} ...", flush=True)
            run = await _copy(source, accounts, name)
            run.minimum = {
                "source": SOURCE_MIN,
                **{str(i): per_target for i in range(len(accounts))},
            }
            runs.append(run)
        print("  copy: verifying the 20 targets ...", flush=True)
        runs[1].verified = await _verify(source, targets)
        return runs


def run_all() -> list[Run]:
    quiet_logs()
    return asyncio.run(_run_all())


def _chain(run: Run, label: str | None = None) -> str:
    """An account's mean place cycle (the gap between its k-th and (k+7)-th request starts:
    1 s under 7/s, plus the RTT, since the limiter frees a place one second after the
    answer, plus the client's lag) and its median RTT; by default the account answered
    last."""
    if not run.times:
        return "-"
    if label is None:
        label = max(run.times, key=lambda k: max((b for _, b in run.times[k]), default=0.0))
    starts = sorted(a for a, _ in run.times[label])
    gaps = [b - a for a, b in zip(starts, starts[7:], strict=False)]
    rtts = sorted(b - a for a, b in run.times[label])
    cycle = sum(gaps) / len(gaps) if gaps else 0.0
    return f"{label}: {cycle:.3f}, {1000 * rtts[len(rtts) // 2]:.0f}"


def table(runs: list[Run]) -> Table:
    t = Table(
        "6. Copy: 50 pipelines x 97 statuses x 3 descriptions to 20 accounts, default limits",
        [
            "run",
            "requests / minimum",
            "busiest account: requests (min)",
            "wall s",
            "slowest account's ideal s (N/7 - 1)",
            "wall / ideal",
            "slot bound s",
            "wall / slot bound",
            "last to finish: place cycle s, median RTT ms",
            "source: place cycle s, median RTT ms",
            "429s",
            "CPU s: client + emulators",
            "CPU bound s",
            "wall / reference",
            "target writes",
            "end state",
        ],
    )
    for r in runs:
        total, least = sum(r.requests.values()), sum(r.minimum.values())
        busiest = max(r.requests, key=lambda k: (r.requests[k], k))
        n = max(r.minimum.values())
        ideal, bound = ideal_seconds(n), slot_bound_seconds(n)
        writes = Counter(r.writes)
        t.add(
            r.name,
            f"{total} / {least} = {total / least:.3f}",
            f"{busiest}: {r.requests[busiest]} ({r.minimum[busiest]})",
            r.wall,
            ideal,
            f"{r.wall / ideal:.3f}",
            bound,
            f"{r.wall / bound:.3f}" if bound else "n/a",
            _chain(r),
            _chain(r, "source"),
            r.rate_limited,
            f"{r.cpu:.1f} + {r.served:.1f}",
            (r.cpu + r.served) / CPUS,
            f"{r.wall / runs[0].wall:.3f}",
            ", ".join(f"{w} x{c}" for w, c in sorted(writes.items())),
            r.verified or ("failed targets: " + str(r.failures) if r.failures else "-"),
        )
    t.notes = [
        "reference: the same copy to a single empty account, run alone: what one account "
        "takes on this machine; wall / reference is the cost of copying to 20 at once.",
        f"Minimum requests: source {SOURCE_MIN} (1 + 1 per pipeline), target {TARGET_MIN} "
        "(its listing, 1 POST of 49 pipelines, 1 statuses POST per pipeline); a second copy "
        "needs the source's 51 and 51 per target (its listing and every pipeline's statuses "
        "with descriptions, to compare them), and writes nothing.",
        "ideal = N / 7 - 1 s for the account with the most requests (the brief's formula, a "
        "fluid rate with the first second free); slot bound = ceil(N / 7) - 1 s, when the N-th "
        "request may start at the earliest under 7 per second with a free first burst of 7 "
        "(requests are whole: 52 = 7 x 7 + 3, so the 50th to 52nd start in the 8th second, at "
        "t >= 7 s). For N = 52 the slot bound is 7 s against an ideal of 6.43 s, so no client "
        "honouring 7/s can reach wall / ideal below 1.09, and wall also includes the last "
        "request's own round trip. wall / slot bound says how close the run came to what the "
        "limit allows; the reference row is the slowest account's time alone on this machine.",
        "place cycle: the SDK's limiter frees a place 1 s after the answer that used it (the "
        "server's arrival time is not known, the answer's is), so each of the 7 cycles of a "
        "52-request chain costs 1 s + RTT + the client's lag in handling the answer and the "
        "timer; wall ~ 7 x cycle + the chain's first offset + the last RTT.",
        f"CPU bound = (client + emulators' CPU seconds) / {CPUS} usable cores: the wall time "
        "this machine needs for the work whatever the limits; on a machine with fewer cores "
        "than busy processes the copy is bound by it rather than by 7/s.",
        "Each account is a separate emulator process; requests and 429s are counted by the "
        "clients' transports (every response, retries included). End state: every target "
        "exported and compared with the source (names, order, colors, descriptions).",
    ]
    return t


def main() -> int:
    print(table(run_all()).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
