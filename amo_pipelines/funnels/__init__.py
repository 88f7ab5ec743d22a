"""Pipelines as code: export an account's sales funnels to a file, plan and apply a file to
an account, copy one account's funnels to many.

Built on the SDK: every request goes through an :class:`~amo_pipelines.AmoClient`, its rate
limiter, retries and batch creates. Needs nothing beyond the SDK's own dependencies except
for YAML files, which need PyYAML (``pip install 'amo-pipelines[cli]'``); JSON files work
without it.

::

    from amo_pipelines.funnels import apply, dumps_spec, export, load_spec, make_plan

    async with AmoClient(...) as source, AmoClient(...) as target:
        spec = await export(source)                # pipelines, statuses, descriptions
        print(dumps_spec(spec))                    # YAML
        plan = await make_plan(target, spec)       # GETs only
        print(plan.render())                       # + create, ~ change, - delete, summary
        result = await apply(target, spec)         # the writes, under the account's lock
"""

from __future__ import annotations

from .apply import ApplyError, ApplyLockLostError, ApplyResult, apply, execute
from .copy import CopyResult, CopyTarget, copy_funnels
from .errors import (
    ApplyLockedError,
    ExtraMissingError,
    PlanError,
    SpecError,
    StalePlanError,
)
from .export import Snapshot, export, read_account, snapshot_to_spec
from .lock import ApplyLock, HeldLock, LocalApplyLock, lock_for
from .plan import Line, Plan, make_plan, plan_against
from .progress import NO_PROGRESS, Progress
from .saved import SavedPlan, load_source, save_plan
from .spec import (
    FunnelsSpec,
    PipelineSpec,
    SourceInfo,
    StatusSpec,
    dumps_spec,
    load_spec,
    loads_spec,
    spec_from_data,
    spec_to_data,
)

__all__ = [
    "NO_PROGRESS",
    "ApplyError",
    "ApplyLock",
    "ApplyLockLostError",
    "ApplyLockedError",
    "ApplyResult",
    "CopyResult",
    "CopyTarget",
    "ExtraMissingError",
    "FunnelsSpec",
    "HeldLock",
    "Line",
    "LocalApplyLock",
    "PipelineSpec",
    "Plan",
    "PlanError",
    "Progress",
    "SavedPlan",
    "Snapshot",
    "SourceInfo",
    "SpecError",
    "StalePlanError",
    "StatusSpec",
    "apply",
    "copy_funnels",
    "dumps_spec",
    "execute",
    "export",
    "load_source",
    "load_spec",
    "loads_spec",
    "lock_for",
    "make_plan",
    "plan_against",
    "read_account",
    "save_plan",
    "snapshot_to_spec",
    "spec_from_data",
    "spec_to_data",
]
