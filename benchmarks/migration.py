"""Benchmark 2: a migration that fills the largest legal account, at the default limits.

Target: 50 pipelines, each with 97 custom statuses (the most a pipeline holds besides
incoming, won and lost), every status with its three descriptions (newbie, candidate,
master). An account always has a pipeline and holds at most 50, so the job creates 49
pipelines and fills those plus the existing main one (``seed_account=False``: the main
pipeline starts with its three system statuses only).

The emulator rejects ``descriptions`` inside a pipeline-create's embedded statuses, so the
statuses go through the statuses endpoint: the fewest requests are one POST creating the 49
pipelines, then one POST of 97 statuses per pipeline: 1 + 50 = 51.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aioamocrm import AmoCRMClient
from aioamocrm import LongLivedToken as PeerToken

from amo_pipelines import (
    AmoClient,
    DescriptionInput,
    DescriptionLevel,
    NewPipeline,
    NewStatus,
    StatusColor,
)
from amo_pipelines.emulator import Emulator, EmulatorConfig
from amo_pipelines.emulator.state import AccountState
from amo_pipelines.model.constants import RECOMMENDED_BATCH_SIZE

from .common import (
    Table,
    delay_summary,
    grant_delays,
    ideal_seconds,
    limiter_design,
    quiet_logs,
    record_grants,
    slot_bound_seconds,
)

PIPELINES_TOTAL = 50
PIPELINES_NEW = PIPELINES_TOTAL - 1
STATUSES = 97
LEVELS = list(DescriptionLevel)
PALETTE = list(StatusColor)
MIN_REQUESTS = 1 + PIPELINES_TOTAL


def new_pipelines() -> list[NewPipeline]:
    return [NewPipeline(name=f"Migrated pipeline {p:02d}", sort=100 + p) for p in range(1, 50)]


def new_statuses(pipeline_no: int) -> list[NewStatus]:
    return [
        NewStatus(
            name=f"Stage {i:02d}",
            sort=10 * (i + 1),
            color=PALETTE[i % len(PALETTE)],
            descriptions=[
                DescriptionInput.create(
                    level, f"What a {level.value} does at stage {i} of pipeline {pipeline_no}."
                )
                for level in LEVELS
            ],
        )
        for i in range(1, STATUSES + 1)
    ]


@dataclass
class Outcome:
    name: str
    batch_size: str
    on_ambiguous: str
    wall: float
    methods: Counter[str]
    rate_limited: int
    verified: str
    delays: list[float] | None

    @property
    def requests(self) -> int:
        return sum(self.methods.values())


def verify(state: AccountState) -> str:
    """The end state the job promises: 50 pipelines x 97 custom statuses x 3 descriptions."""
    pipelines = state.ordered_pipelines()
    problems = []
    if len(pipelines) != PIPELINES_TOTAL:
        problems.append(f"{len(pipelines)} pipelines")
    for pipeline in pipelines:
        regular = pipeline.regular_statuses()
        if len(regular) != STATUSES:
            problems.append(f"pipeline {pipeline.id}: {len(regular)} custom statuses")
            continue
        names = [s.name for s in regular]
        if names != [f"Stage {i:02d}" for i in range(1, STATUSES + 1)]:
            problems.append(f"pipeline {pipeline.id}: statuses out of order")
        short = [s.id for s in regular if len(s.descriptions) != len(LEVELS)]
        if short:
            problems.append(f"pipeline {pipeline.id}: {len(short)} statuses lack descriptions")
    if problems:
        return "FAILED: " + "; ".join(problems[:3])
    descriptions = sum(len(s.descriptions) for p in pipelines for s in p.statuses.values())
    return f"ok ({len(pipelines)} x {STATUSES} x 3 = {descriptions} descriptions)"


async def _with_emulator(name: str, batch: str, mode: str, job: Any) -> Outcome:
    async with Emulator(EmulatorConfig(seed_account=False)) as emu:
        main_id = emu.state.main_pipeline().id
        started = time.perf_counter()
        error = ""
        grants: list[float] | None = None
        try:
            grants = await job(emu, main_id)
        except Exception as e:  # a failed run is a result too: report it, go on
            error = f"FAILED: {type(e).__name__}: {e}"[:120]
        wall = time.perf_counter() - started
        methods = Counter(entry.method for entry in emu.request_log)
        return Outcome(
            name=name,
            batch_size=batch,
            on_ambiguous=mode,
            wall=wall,
            methods=methods,
            rate_limited=emu.stats.rate_limited,
            verified=error or verify(emu.state),
            delays=grant_delays(grants, [e.arrived_at for e in emu.request_log]),
        )


def sdk_job(*, fresh_client_for_statuses: bool = False, **options: Any) -> Any:
    """The SDK's migration. ``fresh_client_for_statuses``: the statuses are created by a
    second client (another job or process) that has not seen the account yet."""

    async def job(emu: Emulator, main_id: int) -> list[float] | None:
        async with AmoClient(base_url=emu.url, access_token=emu.admin_token, **options) as amo:
            grants = record_grants(amo.rate_limiter)  # the default: this loop's shared limiter
            created = await amo.pipelines.create(new_pipelines())
            targets = [main_id] + [p.id for p in created]
            if not fresh_client_for_statuses:
                await asyncio.gather(
                    *(amo.statuses.create(pid, new_statuses(n)) for n, pid in enumerate(targets))
                )
                return grants
        async with AmoClient(base_url=emu.url, access_token=emu.admin_token, **options) as amo:
            await asyncio.gather(
                *(amo.statuses.create(pid, new_statuses(n)) for n, pid in enumerate(targets))
            )
        return grants

    return job


def _status_body(status: NewStatus) -> dict[str, Any]:
    assert status.color is not None
    return {
        "name": status.name,
        "sort": status.sort,
        "color": status.color.value,
        "descriptions": [
            {"level": d.level.value, "description": d.description} for d in status.descriptions
        ],
    }


async def peer_job(emu: Emulator, main_id: int) -> None:
    """aioamocrm has no create methods for pipelines or statuses: the same 51 requests,
    written by hand on its generic ``request()`` (its limiter and retries still apply)."""
    async with AmoCRMClient(base_url=emu.url, auth=PeerToken(emu.admin_token)) as amo:
        body = [
            {"name": p.name, "sort": p.sort, "is_main": False, "is_unsorted_on": True}
            for p in new_pipelines()
        ]
        data = await amo.request("POST", "leads/pipelines", json=body)
        targets = [main_id] + [p["id"] for p in data["_embedded"]["pipelines"]]
        await asyncio.gather(
            *(
                amo.request(
                    "POST",
                    f"leads/pipelines/{pid}/statuses",
                    json=[_status_body(s) for s in new_statuses(n)],
                )
                for n, pid in enumerate(targets)
            )
        )


def run_all() -> list[Outcome]:
    quiet_logs()
    runs = [
        (
            "amo_pipelines, defaults",
            f"{RECOMMENDED_BATCH_SIZE} (default)",
            "reconcile (default)",
            sdk_job(),
        ),
        ("amo_pipelines, batch_size=100", "100", "reconcile (default)", sdk_job(batch_size=100)),
        (
            "amo_pipelines, batch_size=100, on_ambiguous='raise'",
            "100",
            "raise",
            sdk_job(batch_size=100, on_ambiguous="raise"),
        ),
        (
            "amo_pipelines, batch_size=100, statuses by a fresh second client",
            "100",
            "reconcile (default)",
            sdk_job(batch_size=100, fresh_client_for_statuses=True),
        ),
        ("aioamocrm, generic request() by hand", "97 (by hand)", "n/a", peer_job),
    ]
    outcomes = []
    for name, batch, mode, job in runs:
        print(f"  migration: {name} ...", flush=True)
        outcomes.append(asyncio.run(_with_emulator(name, batch, mode, job)))
    return outcomes


def table(outcomes: list[Outcome]) -> Table:
    ideal = ideal_seconds(MIN_REQUESTS)
    bound = slot_bound_seconds(MIN_REQUESTS)
    t = Table(
        "2. Migration: 50 pipelines x 97 statuses x 3 descriptions, default limits (7/s)",
        [
            "run",
            "batch_size",
            "on_ambiguous",
            "requests (by method)",
            "requests / min 51",
            "wall s",
            "wall / ideal",
            "wall / slot bound",
            "429s",
            "grant->arrival ms: median / max (n > 20 ms)",
            "end state",
        ],
    )
    for o in outcomes:
        by_method = ", ".join(f"{m} {n}" for m, n in sorted(o.methods.items()))
        t.add(
            o.name,
            o.batch_size,
            o.on_ambiguous,
            f"{o.requests} ({by_method})",
            f"{o.requests / MIN_REQUESTS:.2f}",
            o.wall,
            f"{o.wall / ideal:.2f}",
            f"{o.wall / bound:.2f}",
            o.rate_limited,
            delay_summary(o.delays),
            o.verified,
        )
    t.notes = [
        f"Minimum: {MIN_REQUESTS} requests (1 POST of 49 pipelines; the account's existing "
        "main pipeline makes 50; then 1 POST of 97 statuses with descriptions per pipeline). "
        "The statuses POSTs need the pipeline ids, so they wait for the first response.",
        f"ideal = 51 / 7 - 1 = {ideal:.2f} s (the brief's formula); slot bound = "
        f"ceil(51/7) - 1 = {bound:.0f} s, when the 51st request can start at the earliest "
        "(bursts of 7 at t = 0, 1, 2 ... s), before its own response time.",
        "Requests are counted from the emulator's request log (429s and their retries "
        "included); the end state is read from the emulator's account state after the run.",
        f"SDK rate limiter in this run: {limiter_design()}. grant->arrival as in table 1.",
        "amo_pipelines with on_ambiguous='reconcile' (the default) lists the pipelines once "
        "before its first create (the GET): the watermark it reconciles against after an "
        "ambiguous failure. 'raise' skips it but gives up that safety. A client that has "
        "not seen the account yet (the 'fresh second client' row: the statuses created by "
        "another job or process than the pipelines) lists each pipeline's statuses before "
        "creating into it: one GET per statuses.create call.",
        "The emulator has no per-item processing cost and never answers 504 for a large "
        "body, so the risk that bigger batches carry on the real API is not measured here.",
    ]
    return t
