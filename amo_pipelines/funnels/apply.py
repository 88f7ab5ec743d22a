"""``apply``: make an account look like a funnels file, in the fewest requests.

Under the account's apply lock: read the account, plan, (for a saved plan) refuse if the
account changed since, ask for confirmation, then write. Writes run concurrently where the
API allows and the client's rate limiter paces them:

* pipeline PATCHes (``update_many``), then, with ``prune``, pipeline DELETEs (after the
  PATCHes, so that a new main pipeline is set before the old one goes), then one POST of
  the new pipelines, then one statuses POST per new pipeline whose statuses carry
  descriptions;
* for every existing pipeline, at the same time: status DELETEs, then moves (one at a time:
  each renumbers the pipeline), then one POST of its new statuses; status PATCHes that do
  not move anything go alongside.

Applying the same file again sends no write: the plan is empty.

If the account's apply lock is lost mid-apply (see :mod:`.lock`), the apply stops before
its next write and raises :class:`ApplyLockLostError`, which lists what was written.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from attrs import define, field

from ..client import AmoClient
from ..errors import AmoError, BatchError, UnprocessableEntityError
from ..model.constants import MAX_CUSTOM_STATUSES_PER_PIPELINE
from ..model.models import Pipeline, Status
from .errors import StalePlanError
from .export import account_host, status_role
from .guard import WriteGuard
from .lock import ApplyLock, HeldLock, lock_for
from .plan import PipelineStep, Plan, make_plan
from .progress import NO_PROGRESS, Progress
from .saved import SavedPlan
from .spec import FunnelsSpec

Confirm = Callable[[Plan], "bool | Awaitable[bool]"]


@define
class ApplyResult:
    plan: Plan
    applied: bool
    """False when the confirmation said no (nothing was written)."""
    pipeline_ids: dict[int, int] = field(factory=dict)
    """File position of a pipeline -> its id in the account."""
    status_ids: dict[tuple[int, int], int] = field(factory=dict)
    """(pipeline position, status position in its ``statuses``) -> the status id."""


class ApplyError(AmoError):
    """Some writes failed; ``failures`` says which and why, ``result`` holds what was
    done (the ids of what exists)."""

    def __init__(self, failures: list[str], result: ApplyResult) -> None:
        self.failures = failures
        self.result = result
        super().__init__(
            f"{len(failures)} of the plan's steps failed on {result.plan.host}: "
            + "; ".join(failures)
        )


class ApplyLockLostError(ApplyError):
    """The account's apply lock was lost mid-apply (another apply may hold the account now):
    the apply stopped before its next write.

    ``written``: the writes that were sent and succeeded (as the plan's steps name them),
    ``failures``: those that failed, ``not_sent``: those held back; the plan's other writes
    were not reached. ``planned``: write requests planned; ``result``: the ids of what
    exists; ``reason``: why the lock counts as lost."""

    def __init__(
        self,
        host: str,
        reason: str,
        *,
        written: list[str],
        not_sent: list[str],
        failures: list[str],
        planned: int,
        result: ApplyResult,
    ) -> None:
        self.host = host
        self.reason = reason
        self.written = written
        self.not_sent = not_sent
        self.planned = planned
        self.failures = failures
        self.result = result
        shown = "; ".join(written[:5]) + ("; ..." if len(written) > 5 else "")
        AmoError.__init__(
            self,
            f"the apply lock of {host} was lost ({reason}); stopped before the next write, "
            f"since another apply may hold the account: {len(written)} of {planned} write "
            f"requests done"
            + (f" ({shown})" if written else "")
            + (f", {len(failures)} failed" if failures else "")
            + f", {max(0, planned - len(written) - len(failures))} not sent; "
            "read the account again (plan) before applying again",
        )


async def apply(
    amo: AmoClient,
    source: FunnelsSpec | SavedPlan,
    *,
    prune: bool = False,
    confirm: Confirm | None = None,
    lock: ApplyLock | None = None,
    lock_timeout: float = 0.0,
    progress: Progress = NO_PROGRESS,
) -> ApplyResult:
    """Apply a funnels file (or a saved plan, which must still match the account).

    ``lock``: by default the one that matches the client's rate limiter store
    (:func:`~amo_pipelines.funnels.lock.lock_for`: Redis for a
    :class:`~amo_pipelines.redis.RedisWindowStore`, else machine-wide), waiting up to
    ``lock_timeout`` seconds for another apply to the account to finish."""
    saved = source if isinstance(source, SavedPlan) else None
    spec = saved.spec if saved is not None else source
    assert isinstance(spec, FunnelsSpec)
    if lock is None:
        lock = lock_for(amo, timeout=lock_timeout)
    async with lock.hold(account_host(amo)) as held:
        progress.note("reading the account")
        plan = await make_plan(amo, spec, prune=saved.prune if saved else prune, progress=progress)
        if held is not None and held.lost is not None:
            raise _lost(plan.host, held.lost, WriteGuard(None), [], plan.writes, plan)
        if saved is not None:
            saved.check(plan)
        if not plan.has_changes:
            return _result(plan, applied=True)
        if confirm is not None:
            answer = confirm(plan)
            if inspect.isawaitable(answer):
                answer = await answer
            if not answer:
                return _result(plan, applied=False)
        progress.note(f"writing: {plan.writes} requests")
        result = await execute(amo, plan, progress=progress, held=held)
        progress.note("applied")
        return result


def _result(plan: Plan, *, applied: bool) -> ApplyResult:
    result = ApplyResult(plan=plan, applied=applied)
    for step in plan.steps:
        if step.index is not None and step.live is not None:
            result.pipeline_ids[step.index] = step.live.id
            for pos, sid in step.statuses.matched.items():
                result.status_ids[(step.index, pos)] = sid
    return result


async def execute(
    amo: AmoClient,
    plan: Plan,
    *,
    progress: Progress = NO_PROGRESS,
    held: HeldLock | None = None,
) -> ApplyResult:
    """Send a plan's writes (no lock, no re-read: :func:`apply` does those). ``held``: the
    account's apply lock as held by the caller; once it is lost, nothing more is written
    and :class:`ApplyLockLostError` says what was."""
    result = _result(plan, applied=True)
    failures: list[str] = []
    progress.expect(plan.writes)

    guard = WriteGuard(held)
    step = _stepper(failures, progress, guard)
    chains = [_pipelines_chain(amo, plan, result, step)]
    chains += [
        _statuses_chain(amo, s.live.id, s, result, step)
        for s in plan.steps
        if s.live is not None and not s.delete
    ]
    try:
        await asyncio.gather(*chains)
    finally:
        guard.close()
    if guard.lost is not None:
        raise _lost(plan.host, guard.lost, guard, failures, plan.writes, result)
    if failures:
        raise ApplyError(failures, result)
    return result


def _lost(
    host: str,
    reason: str,
    guard: WriteGuard,
    failures: list[str],
    planned: int,
    result: ApplyResult | Plan,
) -> ApplyLockLostError:
    if isinstance(result, Plan):
        result = _result(result, applied=False)
    return ApplyLockLostError(
        host,
        reason,
        written=guard.written,
        not_sent=guard.not_sent,
        failures=failures,
        planned=planned,
        result=result,
    )


Step = Callable[..., Awaitable[Any]]


def _stepper(failures: list[str], progress: Progress, guard: WriteGuard | None = None) -> Step:
    """A write that records its failure (instead of raising, so that the other writes go
    on) and counts as one request done; with ``guard``, none starts once the lock is lost."""

    async def step(what: str, call: Awaitable[Any], requests: int = 1) -> Any:
        if guard is not None and guard.lost is not None:
            guard.refuse(what, call)
            return None
        try:
            made = await call
        except AmoError as e:
            if guard is not None and guard.stopped(e):
                guard.not_sent.append(what)
            else:
                failures.append(_explain(what, e))
            return None
        finally:
            progress.advance(requests)
        if guard is not None:
            guard.written.append(what)
        return made

    return step


async def _pipelines_chain(amo: AmoClient, plan: Plan, result: ApplyResult, step: Step) -> None:
    deletes = [s.live for s in plan.steps if s.delete and s.live is not None]
    patches = [
        step(f"change pipeline {s.live.name!r}", amo.pipelines.update(s.live.id, s.update))
        for s in plan.steps
        if s.live is not None and s.update is not None
    ]
    if not deletes:
        await asyncio.gather(*patches, _create_pipelines(amo, plan, result, step))
        return
    # The API refuses to delete the main pipeline: a new main one is made first (by a PATCH,
    # or by the create when the new main pipeline is a new one). Otherwise deletes go
    # before creates, to make room under the account's 50 pipelines.
    await asyncio.gather(*patches)
    new_main = any(s.create is not None and s.create.is_main for s in plan.steps)
    if new_main:
        await _create_pipelines(amo, plan, result, step)
    await asyncio.gather(
        *(
            step(f"delete pipeline {p.name!r} (id {p.id})", amo.pipelines.delete(p.id))
            for p in deletes
        )
    )
    if not new_main:
        await _create_pipelines(amo, plan, result, step)


async def _create_pipelines(amo: AmoClient, plan: Plan, result: ApplyResult, step: Step) -> None:
    creating = plan.creates_pipelines
    if not creating:
        return
    made = await step(
        f"create {len(creating)} pipelines",
        amo.pipelines.create([s.create for s in creating if s.create is not None]),
    )
    if made is None:
        return
    jobs = []
    for s, pipeline in zip(creating, made, strict=True):
        assert s.index is not None
        result.pipeline_ids[s.index] = pipeline.id
        _map_new_pipeline(plan, s, pipeline, result)
        if s.statuses.creates:
            jobs.append(_create_statuses(amo, pipeline.id, pipeline.name, s, result, step))
    await asyncio.gather(*jobs)


def _map_new_pipeline(plan: Plan, s: PipelineStep, pipeline: Pipeline, result: ApplyResult) -> None:
    assert s.index is not None
    spec = plan.spec.pipelines[s.index]
    custom = sorted(pipeline.custom_statuses, key=lambda st: (st.sort, st.id))
    n = 0
    for pos, st in enumerate(spec.statuses):
        if st.role is not None:
            live = next((x for x in pipeline.statuses if status_role(x) == st.role), None)
            if live is not None:
                result.status_ids[(s.index, pos)] = live.id
        elif not s.statuses.creates and n < len(custom):  # embedded in the create
            result.status_ids[(s.index, pos)] = custom[n].id
            n += 1


async def _create_statuses(
    amo: AmoClient, pipeline_id: int, name: str, s: PipelineStep, result: ApplyResult, step: Step
) -> None:
    made: list[Status] | None = await step(
        f"create {len(s.statuses.creates)} statuses in pipeline {name!r}",
        amo.statuses.create(
            pipeline_id, s.statuses.creates, batch_size=MAX_CUSTOM_STATUSES_PER_PIPELINE
        ),
    )
    if made is not None and s.index is not None:
        for pos, status in zip(s.statuses.created_from, made, strict=True):
            result.status_ids[(s.index, pos)] = status.id


async def _statuses_chain(
    amo: AmoClient, pipeline_id: int, s: PipelineStep, result: ApplyResult, step: Step
) -> None:
    name = s.live.name if s.live is not None else str(pipeline_id)
    st = s.statuses
    updates = [
        step(f"change status {sid} in pipeline {name!r}", amo.statuses.update(pipeline_id, sid, u))
        for sid, u in st.updates
    ]

    async def ordered() -> None:
        await asyncio.gather(
            *(
                step(
                    f"delete status {sid} in pipeline {name!r}",
                    amo.statuses.delete(pipeline_id, sid),
                )
                for sid in st.deletes
            )
        )
        for sid, u in st.moves:  # one at a time: each renumbers the pipeline
            await step(
                f"move status {sid} in pipeline {name!r}", amo.statuses.update(pipeline_id, sid, u)
            )
        if st.creates:
            await _create_statuses(amo, pipeline_id, name, s, result, step)

    await asyncio.gather(ordered(), *updates)


def _explain(what: str, error: AmoError) -> str:
    if isinstance(error, BatchError):
        inner = list(error.errors.values())
        if inner:
            error = inner[0]
    if isinstance(error, UnprocessableEntityError) and what.startswith("delete pipeline"):
        return (
            f"{what}: the API refuses to delete a pipeline that holds leads or lead sources "
            f"(move or close its leads first): {error}"
        )
    return f"{what}: {error}"


__all__ = [
    "ApplyError",
    "ApplyLockLostError",
    "ApplyResult",
    "StalePlanError",
    "apply",
    "execute",
]
