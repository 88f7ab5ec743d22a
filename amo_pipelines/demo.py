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
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TextIO

from attrs import define, field

from . import (
    AmoClient,
    AmoError,
    BatchError,
    DescriptionInput,
    DescriptionLevel,
    Handler,
    NewPipeline,
    NewStatus,
    Pipeline,
    PipelineUpdate,
    StatusColor,
    StatusUpdate,
    __version__,
)
from .model.constants import MAX_CUSTOM_STATUSES_PER_PIPELINE, MAX_PIPELINES_PER_ACCOUNT
from .transport import Request, Response

PALETTE = list(StatusColor)


class DemoError(Exception):
    """The demo can not start (e.g. a base URL without a token)."""


class CountingPolicy:
    """Counts every attempt the client puts on the wire, by response status (a
    :class:`~amo_pipelines.Policy`: ``AmoClient(policies=[...])``), for the report."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures = 0

    async def send(self, request: Request, next: Handler) -> Response:
        try:
            response = await next(request)
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


def _quiet(text: str) -> None:
    pass


async def run_job(
    amo: AmoClient,
    *,
    pipelines: int = 6,
    statuses: int = 8,
    run_id: str = "run",
    say: Callable[[str], None] = _quiet,
) -> Report:
    """The job. ``say`` gets a line per step. If a step fails, the pipelines created so far
    are deleted (best effort) before the error goes on."""
    report = Report()
    ours: set[int] = set()
    try:
        return await _steps(amo, report, ours, pipelines, statuses, run_id, say)
    except BaseException:
        if ours:
            say(f"failed: deleting the {len(ours)} pipelines created so far")
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(amo.pipelines.delete_many(sorted(ours)))
        raise


async def _steps(
    amo: AmoClient,
    report: Report,
    ours: set[int],
    pipelines: int,
    statuses: int,
    run_id: str,
    say: Callable[[str], None],
) -> Report:
    say(f"creating {pipelines} pipelines with 2 statuses each (one request)")
    try:
        created = await amo.pipelines.create(plan(pipelines, run_id))
    except BatchError as e:
        ours.update(p.id for p in e.succeeded.values() if isinstance(p, Pipeline))
        raise
    ours.update(p.id for p in created)
    report.pipelines_created = len(created)
    report.statuses_created += sum(len(p.custom_statuses) for p in created)

    say(f"adding {statuses} statuses with descriptions to each pipeline")
    per_pipeline = await asyncio.gather(
        *(amo.statuses.create(p.id, more_statuses(statuses)) for p in created)
    )
    for made in per_pipeline:
        report.statuses_created += len(made)
        report.descriptions_created += sum(len(s.descriptions or ()) for s in made)

    renamed = created[::2]
    say(f"renaming {len(renamed)} pipelines")
    await amo.pipelines.update_many(
        {p.id: PipelineUpdate(name=f"{p.name} (renamed)") for p in renamed}
    )
    report.pipelines_renamed = len(renamed)

    say("renaming and recoloring every third status")
    for pipeline, made in zip(created, per_pipeline, strict=True):
        changes = {
            s.id: StatusUpdate(name=f"{s.name} (checked)", color=StatusColor.TURQUOISE)
            for s in made[::3]
        }
        await amo.statuses.update_many(pipeline.id, changes)
        report.statuses_changed += len(changes)

    say("reading everything back with descriptions")
    everything = [p for p in await amo.pipelines.list() if p.id in ours]
    read = await asyncio.gather(
        *(amo.statuses.list(p.id, with_descriptions=True) for p in everything)
    )
    report.statuses_read = sum(len(r) for r in read)

    say(f"deleting the {len(ours)} pipelines")
    await amo.pipelines.delete_many(sorted(ours))
    report.pipelines_deleted = len(ours)
    ours.clear()
    return report


@contextlib.asynccontextmanager
async def _target(base_url: str | None, token: str | None) -> AsyncIterator[tuple[str, str]]:
    if base_url:
        if not token:
            raise DemoError("--token (or AMO_TOKEN) is required with --base-url")
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
    say: Callable[[str], None] = _quiet,
) -> Report:
    async with _target(base_url, token) as (url, bearer):
        target = url if base_url else f"the embedded emulator at {url}"
        say(f"demo against {target}")
        counter = CountingPolicy()
        async with AmoClient(base_url=url, access_token=bearer, policies=[counter]) as amo:
            started = time.perf_counter()
            report = await run_job(
                amo,
                pipelines=pipelines,
                statuses=statuses,
                run_id=f"{os.getpid()}",
                say=say,
            )
            report.seconds = time.perf_counter() - started
        report.responses = counter.statuses
        report.transport_failures = counter.failures
        print(report.render(target), file=out)
    return report


def _between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("AMO_BASE_URL"),
        metavar="URL",
        help="a real account, e.g. https://example.amocrm.ru (default: AMO_BASE_URL, else the "
        "embedded emulator); the demo touches only the pipelines it creates",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("AMO_TOKEN"),
        help="access token (prefer the AMO_TOKEN environment variable: argv is visible)",
    )
    parser.add_argument(
        "--pipelines",
        type=_between(1, MAX_PIPELINES_PER_ACCOUNT - 1),
        default=6,
        metavar="N",
        help="pipelines to create, 1 to 49 (an account holds 50; default: 6)",
    )
    parser.add_argument(
        "--statuses",
        type=_between(1, MAX_CUSTOM_STATUSES_PER_PIPELINE - 3),
        default=8,
        metavar="N",
        help="statuses to add to each pipeline, 1 to 94 (it has 2 already and holds 97 "
        "custom ones; default: 8)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress lines, only the final report"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo for parsed arguments: progress on stderr, the report on stdout, one
    line and exit status 1 on failure (the pipelines it made are deleted first)."""

    def say(text: str) -> None:
        if not args.quiet:
            print(f"demo: {text}", file=sys.stderr, flush=True)

    try:
        report = asyncio.run(
            demo(
                base_url=args.base_url,
                token=args.token,
                pipelines=args.pipelines,
                statuses=args.statuses,
                say=say,
            )
        )
    except (AmoError, OSError, DemoError) as e:
        print(f"amo-pipelines demo: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("amo-pipelines demo: interrupted", file=sys.stderr)
        return 130
    return 1 if report.responses.get(429, 0) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amo-pipelines demo", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
