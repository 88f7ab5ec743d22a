"""``plan``: what applying a funnels file to an account would do, as steps and a diff.

Matching: by id when the file came from this very account (its ``source`` names the same
host and account id), otherwise, and for entries the ids do not find, by name. A name that
occurs more than once on either side where it is needed for matching is ambiguous:
:class:`PlanError` names it. System statuses are matched by role (incoming, won, lost) and
never created, deleted or moved; the API does not let them be edited (``is_editable`` is
false), so a name that differs is a warning, except for a new pipeline, whose won and lost
names are given on creation. Colors outside the palette (which the API refuses on write)
are mapped to the nearest palette color, with a warning; a status that already has the
file's color keeps it. Deletions happen only with ``prune``.

The plan costs the fewest write requests the API allows: one POST for every new pipeline
(their statuses embedded unless they carry descriptions, which then go in one statuses POST
per pipeline), one statuses POST per pipeline for new statuses, one PATCH per changed
entity (name, color, descriptions and move in one), one DELETE per deleted entity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from attrs import define, field, frozen

from ..client import AmoClient
from ..model.constants import MAX_PIPELINES_PER_ACCOUNT
from ..model.inputs import NewPipeline, NewStatus, PipelineUpdate
from ..model.models import Pipeline
from ._order import longest_increasing, pipeline_sorts
from ._pipeline import StatusSteps, palette_color, plan_statuses
from .errors import PlanError
from .export import Snapshot, read_account
from .fingerprint import fingerprint
from .progress import NO_PROGRESS, Progress
from .spec import FunnelsSpec, PipelineSpec

RATE = 7
"""Requests per second an integration may send (what the time estimate assumes)."""


@frozen
class Line:
    """One line of the diff: ``op`` is ``+`` create, ``~`` change, ``-`` delete, ``!``
    warning."""

    op: str
    text: str


@define
class PipelineStep:
    """What happens to one pipeline: ``index`` is its place in the file (``None``: a live
    pipeline the file does not list)."""

    index: int | None
    live: Pipeline | None
    create: NewPipeline | None = None
    update: PipelineUpdate | None = None
    delete: bool = False
    statuses: StatusSteps = field(factory=StatusSteps)

    @property
    def writes(self) -> int:
        return int(self.update is not None) + int(self.delete) + self.statuses.writes


@define
class Plan:
    spec: FunnelsSpec
    host: str
    account_id: int | None
    snapshot: Snapshot = field(repr=False, eq=False)
    """What the plan was computed from (the account as read)."""
    prune: bool
    steps: list[PipelineStep]
    lines: list[Line]
    reads: int
    _fingerprint: str | None = field(default=None, init=False, repr=False, eq=False)

    @property
    def fingerprint(self) -> str:
        """A fingerprint of :attr:`snapshot`, for saved plans (computed on first use: it
        hashes every status and description, and only a saved plan needs it)."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.snapshot)
        return self._fingerprint

    @property
    def creates_pipelines(self) -> list[PipelineStep]:
        return [s for s in self.steps if s.create is not None]

    @property
    def writes(self) -> int:
        """Write requests apply would send."""
        return int(bool(self.creates_pipelines)) + sum(s.writes for s in self.steps)

    @property
    def has_changes(self) -> bool:
        return self.writes > 0

    @property
    def warnings(self) -> list[str]:
        return [line.text for line in self.lines if line.op == "!"]

    def counts(self) -> Counter[str]:
        return Counter(line.op for line in self.lines)

    def summary(self) -> str:
        c = self.counts()
        seconds = self.writes / RATE
        return (
            f"Plan for {self.host}: {c['+']} to create, {c['~']} to change, {c['-']} to delete"
            f"; {self.writes} write request{'s' if self.writes != 1 else ''}, "
            f"about {seconds:.1f} s at {RATE}/s" + (f"; {c['!']} warnings" if c["!"] else "")
        )

    def render(self) -> str:
        body = [f"{line.op} {line.text}" for line in self.lines]
        tail = [] if self.has_changes else ["No changes."]
        return "\n".join([*body, self.summary(), *tail])


def same_account(spec: FunnelsSpec, snapshot: Snapshot) -> bool:
    source = spec.source
    if source is None or source.host is None or source.host != snapshot.host:
        return False
    return source.account_id is None or source.account_id == snapshot.account_id


def match_pipelines(spec: FunnelsSpec, snapshot: Snapshot) -> list[Pipeline | None]:
    """The live pipeline each file pipeline stands for (``None``: to create)."""
    by_id = {p.id: p for p in snapshot.pipelines}
    matched: list[Pipeline | None] = [None] * len(spec.pipelines)
    taken: set[int] = set()
    if same_account(spec, snapshot):
        for i, p in enumerate(spec.pipelines):
            if p.id is not None and p.id in by_id:
                matched[i] = by_id[p.id]
                taken.add(p.id)
    rest = [i for i in range(len(spec.pipelines)) if matched[i] is None]
    free = [p for p in snapshot.pipelines if p.id not in taken]
    wanted = Counter(spec.pipelines[i].name for i in rest)
    present = Counter(p.name for p in free)
    ambiguous = sorted(n for n in wanted if present[n] and (wanted[n] > 1 or present[n] > 1))
    if ambiguous:
        raise PlanError(
            "pipeline names that can not be matched unambiguously (they repeat in the file "
            f"or in the account {snapshot.host}): {', '.join(map(repr, ambiguous))}; "
            "rename them or give their ids"
        )
    by_name = {p.name: p for p in free}
    for i in rest:
        matched[i] = by_name.get(spec.pipelines[i].name)
    return matched


async def make_plan(
    amo: AmoClient, spec: FunnelsSpec, *, prune: bool = False, progress: Progress = NO_PROGRESS
) -> Plan:
    """Read the account (pipelines, plus descriptions of the matched pipelines that have
    custom statuses) and plan ``spec`` against it. Sends only GETs."""

    def choose(listed: Snapshot) -> list[Pipeline]:
        return [p for p in match_pipelines(spec, listed) if p is not None and p.custom_statuses]

    snapshot = await read_account(amo, choose=choose, progress=progress)
    return plan_against(spec, snapshot, prune=prune, reads=1 + len(snapshot.described))


def plan_against(
    spec: FunnelsSpec,
    snapshot: Snapshot,
    *,
    prune: bool = False,
    reads: int = 0,
    pipelines_only: bool = False,
) -> Plan:
    """The plan of ``spec`` against a snapshot already read (pure: sends nothing).

    ``pipelines_only``: plan the pipelines alone, new ones without their custom statuses
    (for a caller that plans and writes the statuses itself, as ``copy`` does while the
    source is still being read)."""
    matched = match_pipelines(spec, snapshot)
    same = same_account(spec, snapshot)
    lines: list[Line] = []
    steps: list[PipelineStep] = []
    live_order = {p.id: n for n, p in enumerate(snapshot.pipelines)}
    positions = [live_order[m.id] if m is not None else None for m in matched]
    keep = longest_increasing(positions)
    current = [m.sort if m is not None else None for m in matched]
    sorts = pipeline_sorts(current, keep)
    if sorts is None:  # no room between neighbours: renumber the lot
        sorts = [10 * (n + 1) for n in range(len(matched))]
        keep = {i for i, m in enumerate(matched) if m is not None and m.sort == sorts[i]}
    names = [p.name for p in spec.pipelines]
    for i, (ps, live) in enumerate(zip(spec.pipelines, matched, strict=True)):
        where = f"pipeline {ps.name!r}"
        if live is None:
            step = _new_pipeline(i, ps, sorts[i], lines, where, embed=not pipelines_only)
        else:
            step = _changed_pipeline(i, ps, live, i not in keep, sorts[i], names, lines, where)
        if live is not None and not pipelines_only:
            step.statuses = plan_statuses(
                ps,
                snapshot.statuses(live),
                same_account=same,
                prune=prune,
                lines=lines,
                where=where,
            )
        steps.append(step)
    taken = {m.id for m in matched if m is not None}
    extra = [p for p in snapshot.pipelines if p.id not in taken]
    for live in extra:
        if prune:
            steps.append(PipelineStep(index=None, live=live, delete=True))
            lines.append(Line("-", f"pipeline {live.name!r} (id {live.id})"))
            if live.is_main and not any(p.is_main for p in spec.pipelines):
                lines.append(
                    Line(
                        "!",
                        f"pipeline {live.name!r} is the main pipeline: make "
                        "another one main (is_main: true) or the API refuses",
                    )
                )
    kept = len(extra) if not prune else 0
    total = len(spec.pipelines) + kept
    if total > MAX_PIPELINES_PER_ACCOUNT:
        raise PlanError(
            f"the account would hold {total} pipelines ({kept} not in the file and kept); "
            f"at most {MAX_PIPELINES_PER_ACCOUNT} are allowed (--prune deletes the others)"
        )
    if extra and not prune:
        lines.append(
            Line(
                "!",
                f"{len(extra)} pipelines not in the file are kept "
                f"({', '.join(repr(p.name) for p in extra[:5])}"
                f"{', ...' if len(extra) > 5 else ''}); --prune deletes them",
            )
        )
    if prune and any(s.statuses.deletes for s in steps):
        lines.append(Line("!", "leads of a deleted status move to its pipeline's first stage"))
    return Plan(
        spec=spec,
        host=snapshot.host,
        account_id=snapshot.account_id,
        snapshot=snapshot,
        prune=prune,
        steps=steps,
        lines=lines,
        reads=reads,
    )


def _new_pipeline(
    i: int, ps: PipelineSpec, sort: int, lines: list[Line], where: str, *, embed: bool
) -> PipelineStep:
    custom = ps.custom_statuses
    described = not embed or any(s.descriptions for s in custom)
    won, lost = ps.by_role("won"), ps.by_role("lost")
    new_statuses = (
        []
        if described
        else [
            NewStatus(
                name=s.name, sort=20 + 10 * n, color=palette_color(s.color, lines, where, s.name)
            )
            for n, s in enumerate(custom)
        ]
    )
    create = NewPipeline(
        name=ps.name,
        sort=sort,
        is_main=bool(ps.is_main),
        is_unsorted_on=ps.is_unsorted_on if ps.is_unsorted_on is not None else True,
        statuses=new_statuses,
        won_status_name=won.name if won is not None else None,
        lost_status_name=lost.name if lost is not None else None,
    )
    lines.append(Line("+", f"{where} with {len(custom)} statuses"))
    step = PipelineStep(index=i, live=None, create=create)
    if described and embed:  # without embed, the caller plans the statuses itself
        step.statuses = plan_statuses(
            ps, (), same_account=False, prune=False, lines=lines, where=where, quiet=True
        )
    return step


def _changed_pipeline(
    i: int,
    ps: PipelineSpec,
    live: Pipeline,
    moves: bool,
    sort: int,
    names: Sequence[str],
    lines: list[Line],
    where: str,
) -> PipelineStep:
    changes: dict[str, object] = {}
    notes = []
    if ps.name != live.name:
        changes["name"] = ps.name
        notes.append(f"name {live.name!r} -> {ps.name!r}")
    if ps.is_main and not live.is_main:
        changes["is_main"] = True
        notes.append("becomes the main pipeline")
    if ps.is_unsorted_on is not None and ps.is_unsorted_on != live.is_unsorted_on:
        changes["is_unsorted_on"] = ps.is_unsorted_on
        notes.append(f"incoming leads {'on' if ps.is_unsorted_on else 'off'}")
    if moves:
        changes["sort"] = sort
        after = names[i - 1] if i else None
        notes.append(f"moved {'after ' + repr(after) if after else 'first'}")
    update = PipelineUpdate(**changes) if changes else None  # type: ignore[arg-type]
    if update is not None:
        lines.append(Line("~", f"{where}: {'; '.join(notes)}"))
    return PipelineStep(index=i, live=live, update=update)


__all__ = [
    "Line",
    "PipelineStep",
    "Plan",
    "make_plan",
    "match_pipelines",
    "plan_against",
    "same_account",
]
