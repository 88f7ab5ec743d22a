"""The in-memory account: pipelines, statuses, descriptions, lead counts and tokens.

Operations take validated plans (see :mod:`.validation`) and either apply them whole or raise
:class:`StateError` without changing anything.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone

from attrs import define, field

from .plans import NewPipeline, NewStatus, PipelinePatch, StatusPatch
from .rules import (
    API_USER_ID,
    FIRST_REGULAR_SORT,
    INCOMING_COLOR,
    INCOMING_NAME,
    INCOMING_SORT,
    LEVELS,
    MAX_PIPELINES,
    MAX_STATUSES,
    SORT_STEP,
    SYSTEM_STATUSES,
    TYPE_INCOMING,
    TYPE_REGULAR,
)


class StateError(Exception):
    """A business rule refused an operation; nothing was changed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@define
class TokenInfo:
    """A bearer token the account accepts."""

    admin: bool
    user_id: int
    expires_at: float | None = None
    """On the emulator's monotonic clock; None = never expires."""


@define
class Description:
    id: int
    pipeline_id: int
    status_id: int
    level: str
    text: str
    created_at: str
    created_by: int
    updated_at: str
    updated_by: int | None = None


@define
class Status:
    id: int
    pipeline_id: int
    name: str
    sort: int
    color: str
    type: int = TYPE_REGULAR
    is_editable: bool = True
    leads: int = 0
    descriptions: dict[str, Description] = field(factory=dict)
    """By level."""

    @property
    def is_system(self) -> bool:
        return self.type == TYPE_INCOMING or self.id in SYSTEM_STATUSES

    def ordered_descriptions(self) -> list[Description]:
        return [self.descriptions[lvl] for lvl in LEVELS if lvl in self.descriptions]


@define
class Pipeline:
    id: int
    name: str
    sort: int
    is_main: bool
    is_unsorted_on: bool
    is_archive: bool = False
    sources: int = 0
    """Lead sources attached; a pipeline with sources can not be deleted."""
    statuses: dict[int, Status] = field(factory=dict)

    def ordered_statuses(self) -> list[Status]:
        return sorted(self.statuses.values(), key=lambda s: (s.sort, s.id))

    def shown_statuses(self) -> list[Status]:
        """What the API lists: the incoming status only while incoming leads are on (as both
        PATCH examples show); it is kept, and comes back when they are turned on again."""
        ordered = self.ordered_statuses()
        if self.is_unsorted_on:
            return ordered
        return [s for s in ordered if s.type != TYPE_INCOMING]

    def regular_statuses(self) -> list[Status]:
        return [s for s in self.ordered_statuses() if not s.is_system]

    def incoming(self) -> Status:
        return next(s for s in self.statuses.values() if s.type == TYPE_INCOMING)

    @property
    def leads(self) -> int:
        return sum(s.leads for s in self.statuses.values())


@define
class AccountState:
    """Everything the emulated account holds. Read it freely in tests; change it through the
    methods (or the HTTP API) so the invariants hold."""

    account_id: int
    wall_clock: Callable[[], float] = time.time
    pipelines: dict[int, Pipeline] = field(factory=dict)
    tokens: dict[str, TokenInfo] = field(factory=dict)
    """token -> info; add or expire tokens here (e.g. for an OAuth flow)."""
    next_pipeline_id: int = 3177728
    next_status_id: int = 32392166
    next_description_id: int = 494
    refuse_main_delete: bool = True
    """``EmulatorConfig.refuse_main_delete``."""
    refuse_demoting_only: bool = True
    """``EmulatorConfig.refuse_demoting_only``."""
    # The last second formatted: a 97-status create stamps 291 descriptions in one second,
    # and formatting each was a tenth of the emulator's time in a large copy.
    _stamped: tuple[int, str] = field(default=(-(2**62), ""), init=False, repr=False, eq=False)

    # --- queries ------------------------------------------------------------------------------

    def ordered_pipelines(self) -> list[Pipeline]:
        return sorted(self.pipelines.values(), key=lambda p: (p.sort, p.id))

    def main_pipeline(self) -> Pipeline:
        """The account's main pipeline (there is always one; the benchmarks start there)."""
        return next(p for p in self.pipelines.values() if p.is_main)

    def status(self, pipeline_id: int, status_id: int) -> Status:
        """The status, or KeyError."""
        return self.pipelines[pipeline_id].statuses[status_id]

    def leads(self, pipeline_id: int, status_id: int) -> int:
        return self.status(pipeline_id, status_id).leads

    def token_info(self, token: str, now: float) -> TokenInfo | None:
        info = self.tokens.get(token)
        if info is None or (info.expires_at is not None and now >= info.expires_at):
            return None
        return info

    # --- test helpers -------------------------------------------------------------------------

    def set_leads(self, pipeline_id: int, status_id: int, count: int) -> None:
        """Put ``count`` leads into a status (KeyError if it does not exist)."""
        if count < 0:
            raise ValueError("count must be >= 0")
        self.status(pipeline_id, status_id).leads = count

    def set_sources(self, pipeline_id: int, count: int) -> None:
        """Attach ``count`` lead sources to a pipeline (they prevent its deletion)."""
        if count < 0:
            raise ValueError("count must be >= 0")
        self.pipelines[pipeline_id].sources = count

    def add_token(
        self, token: str, *, admin: bool, user_id: int = 1, expires_at: float | None = None
    ) -> TokenInfo:
        info = self.tokens[token] = TokenInfo(admin, user_id, expires_at)
        return info

    def revoke_token(self, token: str) -> None:
        self.tokens.pop(token, None)

    # --- ids and time -------------------------------------------------------------------------

    def _new_pipeline_id(self) -> int:
        self.next_pipeline_id += 1
        return self.next_pipeline_id - 1

    def _new_status_id(self) -> int:
        sid = self.next_status_id
        while sid in SYSTEM_STATUSES:  # pragma: no cover - only with odd seeds
            sid += 1
        self.next_status_id = sid + 1
        return sid

    def _new_description_id(self) -> int:
        self.next_description_id += 1
        return self.next_description_id - 1

    def timestamp(self) -> str:
        second = math.floor(self.wall_clock())
        if self._stamped[0] != second:
            moment = datetime.fromtimestamp(second, tz=timezone.utc)
            self._stamped = (second, moment.strftime("%Y-%m-%d %H:%M:%S"))
        return self._stamped[1]

    def _describe(
        self, status: Status, level: str, text: str, now: str | None = None
    ) -> Description:
        if now is None:
            now = self.timestamp()
        return Description(
            id=self._new_description_id(),
            pipeline_id=status.pipeline_id,
            status_id=status.id,
            level=level,
            text=text,
            created_at=now,
            created_by=API_USER_ID,
            updated_at=now,
        )

    # --- pipelines ----------------------------------------------------------------------------

    def create_pipelines(self, plans: list[NewPipeline]) -> list[Pipeline]:
        if len(self.pipelines) + len(plans) > MAX_PIPELINES:
            raise StateError(422, f"Limit of {MAX_PIPELINES} pipelines per account exceeded")
        for plan in plans:
            if 3 + len(plan.statuses) > MAX_STATUSES:
                raise StateError(422, f"Limit of {MAX_STATUSES} statuses per pipeline exceeded")
        created = []
        for plan in plans:
            pipeline = Pipeline(
                id=self._new_pipeline_id(),
                name=plan.name,
                sort=plan.sort,
                is_main=False,
                is_unsorted_on=plan.is_unsorted_on,
            )
            self.add_system_statuses(pipeline, plan.closed_names)
            self.pipelines[pipeline.id] = pipeline
            if plan.statuses:  # (none: nothing to insert or renumber)
                self._insert_statuses(pipeline, plan.statuses)
            if plan.is_main:
                self._make_main(pipeline)
            created.append(pipeline)
        return created

    def add_system_statuses(
        self, pipeline: Pipeline, names: Mapping[int, str] | None = None, incoming_id: int = 0
    ) -> None:
        names = names or {}
        incoming = Status(
            id=incoming_id or self._new_status_id(),
            pipeline_id=pipeline.id,
            name=INCOMING_NAME,
            sort=INCOMING_SORT,
            color=INCOMING_COLOR,
            type=TYPE_INCOMING,
            is_editable=False,
        )
        pipeline.statuses[incoming.id] = incoming
        for sid, (name, sort, color) in SYSTEM_STATUSES.items():
            pipeline.statuses[sid] = Status(
                id=sid,
                pipeline_id=pipeline.id,
                name=names.get(sid, name),
                sort=sort,
                color=color,
                is_editable=False,
            )

    def _make_main(self, pipeline: Pipeline) -> None:
        for other in self.pipelines.values():
            other.is_main = other is pipeline

    def patch_pipeline(self, pipeline: Pipeline, patch: PipelinePatch) -> Pipeline:
        successor: Pipeline | None = None
        if patch.is_main is False and pipeline.is_main:
            successor = self._successor(pipeline)
            if successor is None and self.refuse_demoting_only:
                raise StateError(400, "The only pipeline must stay the main one")
        if patch.name is not None:
            pipeline.name = patch.name
        if patch.sort is not None:
            pipeline.sort = patch.sort
        if patch.is_unsorted_on is not None:
            pipeline.is_unsorted_on = patch.is_unsorted_on
        if patch.is_main:
            self._make_main(pipeline)
        elif successor is not None:
            self._make_main(successor)
        return pipeline

    def _successor(self, pipeline: Pipeline) -> Pipeline | None:
        """The pipeline that becomes main when ``pipeline`` stops being it."""
        return next((p for p in self.ordered_pipelines() if p is not pipeline), None)

    def delete_pipeline(self, pipeline: Pipeline) -> None:
        if len(self.pipelines) == 1:
            raise StateError(400, "The last pipeline can not be deleted")
        if pipeline.is_main and self.refuse_main_delete:
            raise StateError(400, "The main pipeline can not be deleted")
        if pipeline.leads or pipeline.sources:
            raise StateError(422, "Pipeline has leads or sources")
        successor = self._successor(pipeline) if pipeline.is_main else None
        del self.pipelines[pipeline.id]
        if successor is not None:
            self._make_main(successor)

    # --- statuses -----------------------------------------------------------------------------

    def create_statuses(self, pipeline: Pipeline, plans: list[NewStatus]) -> list[Status]:
        if len(pipeline.statuses) + len(plans) > MAX_STATUSES:
            raise StateError(422, f"Limit of {MAX_STATUSES} statuses per pipeline exceeded")
        return self._insert_statuses(pipeline, plans)

    def _insert_statuses(self, pipeline: Pipeline, plans: Iterable[NewStatus]) -> list[Status]:
        created: list[Status] = []
        moved: dict[int, tuple[int, int]] = {}
        now = self.timestamp()  # one request, one moment (291 descriptions in a large create)
        pid, statuses = pipeline.id, pipeline.statuses
        # What _describe does, inline: it was a third of a copy's statuses POST.
        desc_id = self.next_description_id
        for plan in plans:
            sid = self._new_status_id()
            descs: dict[str, Description] = {}
            for level, text in plan.descriptions:
                descs[level] = Description(desc_id, pid, sid, level, text, now, API_USER_ID, now)
                desc_id += 1
            status = Status(sid, pid, plan.name, plan.sort, plan.color, descriptions=descs)
            statuses[sid] = status
            created.append(status)
            moved[sid] = (plan.sort, plan.position)
        self.next_description_id = desc_id
        self._renumber(pipeline, moved)
        return created

    @staticmethod
    def _renumber(pipeline: Pipeline, moved: dict[int, tuple[int, int]]) -> None:
        """Order the regular statuses by sort (ties: untouched ones first, then ``moved`` in
        their given order) and renumber them 20, 30, 40, ..."""

        def key(status: Status) -> tuple[int, int, int]:
            if status.id in moved:
                sort, index = moved[status.id]
                return (sort, 1, index)
            return (status.sort, 0, 0)

        regular = sorted((s for s in pipeline.statuses.values() if not s.is_system), key=key)
        for position, status in enumerate(regular):
            status.sort = FIRST_REGULAR_SORT + SORT_STEP * position

    def patch_status(self, status: Status, patch: StatusPatch) -> Status:
        if status.is_system:
            raise StateError(400, "Status is not editable")
        pipeline = self.pipelines[status.pipeline_id]
        if patch.name is not None:
            status.name = patch.name
        if patch.color is not None:
            status.color = patch.color
        for change in patch.descriptions or ():
            current = status.descriptions.get(change.level)
            if change.id is not None and current is not None:
                if change.text is None:
                    del status.descriptions[change.level]
                else:
                    current.text = change.text
                    current.updated_at = self.timestamp()
                    current.updated_by = API_USER_ID
            elif change.text is not None:
                status.descriptions[change.level] = self._describe(
                    status, change.level, change.text
                )
        if patch.sort is not None:
            self._renumber(pipeline, {status.id: (patch.sort, 0)})
        return status

    def delete_status(self, status: Status) -> None:
        if status.is_system:
            raise StateError(400, "Status can not be deleted")
        pipeline = self.pipelines[status.pipeline_id]
        del pipeline.statuses[status.id]
        if status.leads:
            self.first_status(pipeline).leads += status.leads
        self._renumber(pipeline, {})

    @staticmethod
    def first_status(pipeline: Pipeline) -> Status:
        """Where a deleted status's leads go: the lowest-sort status, skipping the incoming one
        when the pipeline has incoming leads turned off and a regular status remains."""
        ordered = pipeline.ordered_statuses()
        if not pipeline.is_unsorted_on:
            regular = [s for s in ordered if not s.is_system]
            if regular:
                return regular[0]
        return ordered[0]
