"""``copy``: one account's funnels to many accounts, concurrently, each at its own budget.

The source is exported once; every target then gets :func:`~amo_pipelines.funnels.apply`
of that export, all targets at the same time (each client's rate limiter paces its own
account). The id map says, per target, which target pipeline and status stands for each
source id (142 and 143 map to themselves), for moving leads afterwards. Copying again
converges: the targets already match, so nothing is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from attrs import define, field, frozen

from ..client import AmoClient
from ..constants import LOST_STATUS_ID, WON_STATUS_ID
from ..errors import AmoError
from .apply import ApplyError, ApplyResult, apply
from .export import account_host, export
from .lock import DEFAULT_LOCK, ApplyLock
from .progress import NO_PROGRESS, Progress
from .spec import FunnelsSpec


@frozen
class CopyTarget:
    """A target account: its client, and a label for reports (its host by default)."""

    client: AmoClient
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or account_host(self.client)


@define
class TargetOutcome:
    target: str
    result: ApplyResult | None = None
    error: AmoError | None = None

    @property
    def writes(self) -> int:
        return self.result.plan.writes if self.result is not None else 0

    def id_map(self, spec: FunnelsSpec) -> dict[str, dict[str, int]]:
        pipelines: dict[str, int] = {}
        statuses: dict[str, int] = {
            str(WON_STATUS_ID): WON_STATUS_ID,
            str(LOST_STATUS_ID): LOST_STATUS_ID,
        }
        if self.result is None:
            return {"pipelines": pipelines, "statuses": statuses}
        for i, target_id in self.result.pipeline_ids.items():
            source_id = spec.pipelines[i].id
            if source_id is not None:
                pipelines[str(source_id)] = target_id
        for (i, j), target_id in self.result.status_ids.items():
            status = spec.pipelines[i].statuses[j]
            if status.id is not None and status.role not in ("won", "lost"):
                statuses[str(status.id)] = target_id
        return {"pipelines": pipelines, "statuses": statuses}


@define
class CopyResult:
    spec: FunnelsSpec
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
    lock: ApplyLock = DEFAULT_LOCK,
    progress: Callable[[str], Progress] = lambda name: NO_PROGRESS,
) -> CopyResult:
    """Export ``source`` once and apply it to every target concurrently. A target that fails
    does not stop the others: its :class:`TargetOutcome` carries the error."""
    spec = await export(source, progress=progress(account_host(source)))
    result = CopyResult(spec=spec)

    async def one(target: CopyTarget) -> TargetOutcome:
        outcome = TargetOutcome(target.name)
        try:
            outcome.result = await apply(
                target.client, spec, prune=prune, lock=lock, progress=progress(target.name)
            )
        except ApplyError as e:
            outcome.result = e.result
            outcome.error = e
        except AmoError as e:
            outcome.error = e
        return outcome

    result.targets = list(await asyncio.gather(*(one(t) for t in targets)))
    return result
