"""The demo job: a realistic run of the SDK against the embedded emulator or a real account.

It creates several pipelines with statuses and descriptions in batches, renames and
recolors some, reads everything back, deletes what it made, and prints a short report.
Against a real account (``--base-url`` and ``--token``) it does exactly the same, touching
only the pipelines it creates itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import TextIO

from attrs import define, field

from . import (
    AmoClient,
    DescriptionInput,
    DescriptionLevel,
    NewPipeline,
    NewStatus,
    PipelineUpdate,
    StatusColor,
    StatusUpdate,
)
from .transport import AiohttpTransport, Request, Response

PALETTE = list(StatusColor)


class CountingTransport(AiohttpTransport):
    """The default transport, counting requests and response statuses for the report."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: Counter[int] = Counter()
        self.failures = 0

    async def send(self, request: Request) -> Response:
        try:
            response = await super().send(request)
        except Exception:
            self.failures += 1
            raise
        self.statuses[response.status] += 1
        return response

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + self.failures


@define
class Report:
    pipelines_created: int = 0
    statuses_created: int = 0
    descriptions_created: int = 0
    pipelines_renamed: int = 0
    statuses_changed: int = 0
    statuses_read: int = 0
    pipelines_deleted: int = 0
    seconds: float = 0.0
    responses: Counter[int] = field(factory=Counter)
    transport_failures: int = 0

    @property
    def requests(self) -> int:
        return sum(self.responses.values()) + self.transport_failures

    def render(self, target: str) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.responses.items()))
        return "\n".join(
            [
                f"amo_pipelines demo against {target}",
                f"  created   {self.pipelines_created} pipelines, {self.statuses_created} "
                f"statuses, {self.descriptions_created} descriptions",
                f"  changed   {self.pipelines_renamed} pipeline names, "
                f"{self.statuses_changed} statuses (name and color)",
                f"  read back {self.statuses_read} statuses with descriptions",
                f"  deleted   {self.pipelines_deleted} pipelines",
                f"  requests  {self.requests} in {self.seconds:.2f} s ({rate:.1f}/s); "
                f"responses {codes}; transport failures {self.transport_failures}",
                f"  429s      {self.responses.get(429, 0)}",
            ]
        )


def plan(pipelines: int, run_id: str) -> list[NewPipeline]:
    """The pipelines to create; two statuses each come with the pipeline itself."""
    return [
        NewPipeline(
            name=f"Demo {run_id} #{p + 1}",
            sort=100 + p,
            statuses=[
                NewStatus(name="Qualified", sort=10, color=StatusColor.LIGHT_BLUE),
                NewStatus(name="Proposal", sort=20, color=StatusColor.LIGHT_GREEN),
            ],
            won_status_name="Deal closed",
        )
        for p in range(pipelines)
    ]


def more_statuses(count: int) -> list[NewStatus]:
    levels = list(DescriptionLevel)
    return [
        NewStatus(
            name=f"Stage {i + 1}",
            sort=100 + 10 * i,
            color=PALETTE[i % len(PALETTE)],
            descriptions=[
                DescriptionInput.create(level, f"What a {level.value} does at stage {i + 1} ✅")
                for level in levels[: 1 + i % len(levels)]
            ],
        )
        for i in range(count)
    ]


async def run_job(
    amo: AmoClient, *, pipelines: int = 6, statuses: int = 8, run_id: str = "run"
) -> Report:
    report = Report()
    created = await amo.pipelines.create(plan(pipelines, run_id))
    report.pipelines_created = len(created)
    report.statuses_created += sum(len(p.custom_statuses) for p in created)

    per_pipeline = await asyncio.gather(
        *(amo.statuses.create(p.id, more_statuses(statuses)) for p in created)
    )
    for made in per_pipeline:
        report.statuses_created += len(made)
        report.descriptions_created += sum(len(s.descriptions or ()) for s in made)

    renamed = created[::2]
    await amo.pipelines.update_many(
        {p.id: PipelineUpdate(name=f"{p.name} (renamed)") for p in renamed}
    )
    report.pipelines_renamed = len(renamed)

    for pipeline, made in zip(created, per_pipeline, strict=True):
        changes = {
            s.id: StatusUpdate(name=f"{s.name} (checked)", color=StatusColor.TURQUOISE)
            for s in made[::3]
        }
        await amo.statuses.update_many(pipeline.id, changes)
        report.statuses_changed += len(changes)

    ours = {p.id for p in created}
    everything = [p for p in await amo.pipelines.list() if p.id in ours]
    read = await asyncio.gather(
        *(amo.statuses.list(p.id, with_descriptions=True) for p in everything)
    )
    report.statuses_read = sum(len(r) for r in read)

    await amo.pipelines.delete_many(sorted(ours))
    report.pipelines_deleted = len(ours)
    return report


@contextlib.asynccontextmanager
async def _target(base_url: str | None, token: str | None) -> AsyncIterator[tuple[str, str]]:
    if base_url:
        if not token:
            raise SystemExit("--token (or AMO_TOKEN) is required with --base-url")
        yield base_url, token
        return
    from .emulator import Emulator  # the SDK proper never imports the emulator

    async with Emulator() as emu:
        yield emu.url, emu.admin_token


async def demo(
    *,
    base_url: str | None = None,
    token: str | None = None,
    pipelines: int = 6,
    statuses: int = 8,
    out: TextIO = sys.stdout,
) -> Report:
    async with _target(base_url, token) as (url, bearer):
        transport = CountingTransport()
        async with AmoClient(base_url=url, access_token=bearer, transport=transport) as amo:
            started = time.perf_counter()
            report = await run_job(
                amo, pipelines=pipelines, statuses=statuses, run_id=f"{os.getpid()}"
            )
            report.seconds = time.perf_counter() - started
        await transport.aclose()
        report.responses = transport.statuses
        report.transport_failures = transport.failures
        target = url if base_url else f"the embedded emulator at {url}"
        print(report.render(target), file=out)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", default=os.environ.get("AMO_BASE_URL"))
    parser.add_argument(
        "--token",
        default=os.environ.get("AMO_TOKEN"),
        help="access token (prefer the AMO_TOKEN environment variable: argv is visible)",
    )
    parser.add_argument("--pipelines", type=int, default=6, choices=range(1, 50))
    parser.add_argument("--statuses", type=int, default=8, choices=range(1, 95))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amo-pipelines demo", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    report = asyncio.run(
        demo(
            base_url=args.base_url,
            token=args.token,
            pipelines=args.pipelines,
            statuses=args.statuses,
        )
    )
    return 1 if report.responses.get(429, 0) else 0
