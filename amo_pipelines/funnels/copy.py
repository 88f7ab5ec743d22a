"""``copy``: one account's funnels to many accounts, concurrently, each at its own budget.

The source is read once: its pipeline listing, then each pipeline's statuses with
descriptions. Every target starts as soon as the listing is there: it lists its own
pipelines, creates the missing pipelines (without their statuses) in one POST, and then
handles each pipeline's statuses as soon as the source's read of that pipeline arrives,
so the source's reads and the targets' writes overlap instead of following each other.
Each target is planned and written like :func:`~amo_pipelines.funnels.apply` (same
matching by name, same fewest requests, same lock), one pipeline at a time.

``dry_run``: the source is exported, and every target is only planned (reads, no lock, no
write), each with :func:`~amo_pipelines.funnels.make_plan`: its outcome's ``plan`` is the
plan an apply of the export would carry out now.

If a target's apply lock is lost mid-copy, that target stops before its next write; its
outcome's error is an :class:`~amo_pipelines.funnels.ApplyLockLostError` listing what was
written.

The id map says, per target, which target pipeline and status stands for each source id
(142 and 143 map to themselves), for moving leads afterwards. Copying again converges: the
targets already match, so nothing is written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from attrs import define, field, frozen

from ..client import AmoClient
from ..errors import AmoError
from ..model.constants import LOST_STATUS_ID, WON_STATUS_ID
from ..model.models import Pipeline, Status
from ._pipeline import StatusSteps, plan_statuses
from .apply import ApplyError, _lost, _pipelines_chain, _result, _statuses_chain, _stepper
from .export import (
    Snapshot,
    account_host,
    export,
    keep_hidden_incoming,
    snapshot_to_spec,
    sorted_statuses,
    status_spec,
)
from .guard import WriteGuard
from .lock import ApplyLock, HeldLock, lock_for
from .plan import Line, PipelineStep, Plan, make_plan, plan_against
from .progress import NO_PROGRESS, Progress
from .spec import FunnelsSpec, PipelineSpec, StatusSpec


@frozen
class CopyTarget:
    """A target account: its client, and a label for reports (its host by default)."""

    client: AmoClient
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or account_host(self.client)


def id_map(
    spec: FunnelsSpec,
    pipeline_ids: Mapping[int, int],
    status_ids: Mapping[tuple[int, int], int],
) -> dict[str, dict[str, int]]:
    """Source pipeline and status ids -> a target's, from an apply's ids by position in
    ``spec`` (142/143 map to themselves)."""
    pipelines: dict[str, int] = {}
    statuses: dict[str, int] = {
        str(WON_STATUS_ID): WON_STATUS_ID,
        str(LOST_STATUS_ID): LOST_STATUS_ID,
    }
    for i, target_id in pipeline_ids.items():
        source_id = spec.pipelines[i].id
        if source_id is not None:
            pipelines[str(source_id)] = target_id
    for (i, j), target_id in status_ids.items():
        status = spec.pipelines[i].statuses[j]
        if status.id is not None and status.role not in ("won", "lost"):
            statuses[str(status.id)] = target_id
    return {"pipelines": pipelines, "statuses": statuses}


@define
class TargetOutcome:
    target: str
    writes: int = 0
    pipeline_ids: dict[int, int] = field(factory=dict)
    status_ids: dict[tuple[int, int], int] = field(factory=dict)
    lines: list[Line] = field(factory=list)
    """The plan's lines (creates, changes, deletes, warnings) as they were made."""
    error: AmoError | None = None
    plan: Plan | None = None
    """With ``dry_run``: the target's plan (as :func:`~amo_pipelines.funnels.make_plan`
    makes it); nothing was written."""

    def id_map(self, spec: FunnelsSpec) -> dict[str, dict[str, int]]:
        return id_map(spec, self.pipeline_ids, self.status_ids)


@define
class CopyResult:
    spec: FunnelsSpec
    """The source as exported (with descriptions)."""
    targets: list[TargetOutcome] = field(factory=list)

    @property
    def failed(self) -> list[TargetOutcome]:
        return [t for t in self.targets if t.error is not None]

    def id_map(self) -> dict[str, Any]:
        """JSON-ready: ``{"source": host, "targets": {target: {"pipelines": {source id:
        target id}, "statuses": {...}}}}`` (ids as strings, as JSON keys must be)."""
        source = self.spec.source.host if self.spec.source is not None else None
        return {
            "source": source,
            "targets": {t.target: t.id_map(self.spec) for t in self.targets},
        }


async def copy_funnels(
    source: AmoClient,
    targets: Sequence[CopyTarget],
    *,
    prune: bool = False,
    lock: ApplyLock | None = None,
    lock_timeout: float = 0.0,
    progress: Callable[[str], Progress] = lambda name: NO_PROGRESS,
    dry_run: bool = False,
) -> CopyResult:
    """Copy ``source``'s funnels to every target concurrently. A target that fails does not
    stop the others: its :class:`TargetOutcome` carries the error. A failed read of the
    source raises (what the targets got so far stays). ``lock``/``lock_timeout``: as for
    :func:`~amo_pipelines.funnels.apply` (by default each target's lock matches its
    client's rate limiter store). ``dry_run``: plan every target, write nothing (see the
    module)."""
    if dry_run:
        return await _dry_run(source, targets, prune, progress)
    started = dt.datetime.now(dt.timezone.utc)
    watch = progress(account_host(source))
    watch.note("reading the source")
    watch.expect(1)
    # The targets start at once: each takes its lock and lists its own pipelines while the
    # source's listing is read, which takes a round trip off every target's chain of
    # requests (the copy's wall time is the longest such chain at 7 per second).
    ready: asyncio.Future[_SourceReads] = asyncio.get_running_loop().create_future()
    shared = _Shared()
    copies = [
        asyncio.ensure_future(
            _copy_one(
                t,
                ready,
                prune,
                lock or lock_for(t.client, timeout=lock_timeout),
                progress(t.name),
                shared,
            )
        )
        for t in targets
    ]
    reads: dict[int, asyncio.Future[tuple[StatusSpec, ...]]] = {}
    try:
        listing = await source.pipelines.list()
        watch.advance()
        watch.expect(len(listing))
        # The reads go out first: they are the longest chain, and the skeleton takes a while
        reads = {p.id: asyncio.ensure_future(_read(source, p, watch)) for p in listing}
        listed = Snapshot(host=account_host(source), pipelines=tuple(listing), described={})
        skeleton = snapshot_to_spec(listed, now=started)
        del listing, listed  # ~100 models a pipeline: the skeleton holds what is needed
        ready.set_result((skeleton, reads))
        outcomes = await asyncio.gather(*copies)
    except BaseException as e:
        if not ready.done():  # the source's listing failed: the targets stop before writing
            if isinstance(e, Exception):
                ready.set_exception(e)
                ready.exception()  # marked as retrieved: there may be no target to read it
            else:
                ready.cancel()
        await asyncio.gather(*copies, return_exceptions=True)
        raise
    finally:
        done = await asyncio.gather(*reads.values(), return_exceptions=True)
    for read in done:
        if isinstance(read, BaseException):
            raise read
    described = {
        pid: read
        for pid, read in zip(reads, done, strict=True)
        if not isinstance(read, BaseException)
    }
    # The export: the listing with every pipeline as read (made once, shared with targets).
    pipelines = tuple(shared.wanted(p, described[p.id or 0]) for p in skeleton.pipelines)
    spec = attrs.evolve(skeleton, pipelines=pipelines)
    return CopyResult(spec=spec, targets=list(outcomes))


async def _dry_run(
    source: AmoClient,
    targets: Sequence[CopyTarget],
    prune: bool,
    progress: Callable[[str], Progress],
) -> CopyResult:
    spec = await export(source, progress=progress(account_host(source)))

    async def plan_one(target: CopyTarget) -> TargetOutcome:
        outcome = TargetOutcome(target.name)
        watch = progress(target.name)
        try:
            plan = await make_plan(target.client, spec, prune=prune, progress=watch)
        except AmoError as e:
            outcome.error = e
            return outcome
        done = _result(plan, applied=False)
        outcome.plan, outcome.lines, outcome.writes = plan, plan.lines, plan.writes
        outcome.pipeline_ids, outcome.status_ids = done.pipeline_ids, done.status_ids
        watch.note(plan.summary())
        return outcome

    outcomes = await asyncio.gather(*(plan_one(t) for t in targets))
    return CopyResult(spec=spec, targets=list(outcomes))


class _Shared:
    """What every target would compute alike, computed once: a source pipeline as the file
    wants it, and the statuses of a pipeline a target creates (it starts empty)."""

    def __init__(self) -> None:
        self._wanted: dict[int, PipelineSpec] = {}
        self._new: dict[int, tuple[StatusSteps, list[Line]]] = {}

    def wanted(self, ps: PipelineSpec, statuses: tuple[StatusSpec, ...]) -> PipelineSpec:
        assert ps.id is not None
        if ps.id not in self._wanted:
            self._wanted[ps.id] = attrs.evolve(ps, statuses=statuses)
        return self._wanted[ps.id]

    def new_pipeline_steps(self, ps: PipelineSpec, where: str, lines: list[Line]) -> StatusSteps:
        assert ps.id is not None
        if ps.id not in self._new:
            made: list[Line] = []
            steps = plan_statuses(
                ps, (), same_account=False, prune=False, lines=made, where=where, quiet=True
            )
            self._new[ps.id] = (steps, made)
        steps, made = self._new[ps.id]
        lines.extend(made)
        return steps  # read only from here on: shared by the targets


async def _read(amo: AmoClient, pipeline: Pipeline, watch: Progress) -> tuple[StatusSpec, ...]:
    """A source pipeline's statuses as the file wants them, made once for every target.
    Only the specs are kept: the copy holds them to the end, and the statuses read (models,
    descriptions) would stay in memory as long, for the garbage collector to scan at every
    full pass."""
    statuses = await amo.statuses.list(pipeline.id, with_descriptions=True)
    watch.advance()
    read = keep_hidden_incoming(pipeline, statuses)
    return tuple(status_spec(s) for s in sorted_statuses(read))


_SourceReads = tuple[FunnelsSpec, Mapping[int, "asyncio.Future[tuple[StatusSpec, ...]]"]]
"""The source's listing as a spec skeleton, and each pipeline's statuses as read."""


async def _copy_one(
    target: CopyTarget,
    source: asyncio.Future[_SourceReads],
    prune: bool,
    lock: ApplyLock,
    watch: Progress,
    shared: _Shared,
) -> TargetOutcome:
    outcome = TargetOutcome(target.name)
    amo = target.client
    try:
        async with lock.hold(account_host(amo)) as held:
            await _fill(amo, outcome, source, prune, watch, shared, held)
    except AmoError as e:
        outcome.error = e
    return outcome


async def _fill(
    amo: AmoClient,
    outcome: TargetOutcome,
    source: asyncio.Future[_SourceReads],
    prune: bool,
    watch: Progress,
    shared: _Shared,
    held: HeldLock | None,
) -> None:
    watch.note("copying")
    watch.expect(1)
    mine = asyncio.ensure_future(amo.pipelines.list())
    try:
        skeleton, reads = await asyncio.shield(source)  # shared: no target may cancel it
    except BaseException:
        mine.cancel()
        await asyncio.gather(mine, return_exceptions=True)
        raise
    listing = await mine
    watch.advance()
    snapshot = Snapshot(host=account_host(amo), pipelines=tuple(listing), described={})
    # Pipelines first, without their statuses: those follow as the source's reads arrive.
    plan = plan_against(skeleton, snapshot, prune=prune, pipelines_only=True)
    result = _result(plan, applied=True)  # the matched pipelines' ids
    failures: list[str] = []
    outcome.lines = plan.lines
    outcome.writes = plan.writes
    watch.expect(plan.writes)
    guard = WriteGuard(held)
    step_call = _stepper(failures, watch, guard)
    pipelines = asyncio.ensure_future(_pipelines_chain(amo, plan, result, step_call))

    async def one(i: int, ps: PipelineSpec, step: PipelineStep) -> None:
        assert ps.id is not None
        live = step.live
        current: tuple[Status, ...] = live.statuses if live is not None else ()
        if live is not None and live.custom_statuses:  # read alongside the source's read
            watch.expect(1)
            mine = asyncio.ensure_future(amo.statuses.list(live.id, with_descriptions=True))
            try:
                wanted = shared.wanted(ps, await reads[ps.id])
            finally:
                current = tuple(await mine)
            watch.advance()
        else:
            wanted = shared.wanted(ps, await reads[ps.id])
        if live is None:
            await asyncio.shield(pipelines)
        pipeline_id = live.id if live is not None else result.pipeline_ids.get(i)
        if pipeline_id is None:
            return  # its creation failed (reported)
        where = f"pipeline {ps.name!r}"
        if live is None:  # the same for every target: planned once
            steps = shared.new_pipeline_steps(wanted, where, plan.lines)
        else:
            steps = plan_statuses(
                wanted, current, same_account=False, prune=prune, lines=plan.lines, where=where
            )
        outcome.writes += steps.writes
        watch.expect(steps.writes)
        one_step = PipelineStep(index=i, live=live, statuses=steps)
        for pos, sid in steps.matched.items():
            result.status_ids[(i, pos)] = sid
        await _statuses_chain(amo, pipeline_id, one_step, result, step_call)

    try:
        # All of them end before the lock is let go (the first error does not leave the
        # others writing on their own).
        ended = await asyncio.gather(
            *(
                one(i, ps, step)
                for i, (ps, step) in enumerate(
                    zip(skeleton.pipelines, plan.steps[: len(skeleton.pipelines)], strict=True)
                )
            ),
            pipelines,
            return_exceptions=True,
        )
    finally:
        guard.close()
        outcome.pipeline_ids = result.pipeline_ids
        outcome.status_ids = result.status_ids
    if guard.lost is not None:
        raise _lost(account_host(amo), guard.lost, guard, failures, outcome.writes, result)
    for end in ended:
        if isinstance(end, BaseException):
            raise end
    if failures:
        raise ApplyError(failures, result)
