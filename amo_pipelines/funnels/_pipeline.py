"""Planning one pipeline's statuses: matching, field changes, moves, creates, deletes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from attrs import define, field

from ..model.constants import MAX_CUSTOM_STATUSES_PER_PIPELINE
from ..model.inputs import DescriptionInput, NewStatus, StatusUpdate
from ..model.models import Status, description_values
from ._order import StatusOrder, longest_increasing, nearest_palette_color
from .errors import PlanError
from .export import status_role
from .spec import LEVELS, PipelineSpec, StatusSpec

if TYPE_CHECKING:
    from .plan import Line


@define
class StatusSteps:
    """Writes for one pipeline's statuses, in the order apply sends them: ``deletes``
    (concurrently), then ``moves`` (one after the other: each renumbers the pipeline), then
    ``creates`` (one POST); ``updates`` (no sort) go concurrently with all of it."""

    deletes: list[int] = field(factory=list)
    moves: list[tuple[int, StatusUpdate]] = field(factory=list)
    updates: list[tuple[int, StatusUpdate]] = field(factory=list)
    creates: list[NewStatus] = field(factory=list)
    created_from: list[int] = field(factory=list)
    """The file position (in the pipeline's ``statuses``) of each of ``creates``."""
    matched: dict[int, int] = field(factory=dict)
    """File position -> live status id, for the statuses that exist."""

    @property
    def writes(self) -> int:
        return len(self.deletes) + len(self.moves) + len(self.updates) + int(bool(self.creates))


def _line(op: str, text: str) -> Line:
    from .plan import Line

    return Line(op, text)


def plan_statuses(
    ps: PipelineSpec,
    live: Sequence[Status],
    *,
    same_account: bool,
    prune: bool,
    lines: list[Line],
    where: str,
    quiet: bool = False,
) -> StatusSteps:
    steps = StatusSteps()
    _system(ps, live, steps, lines, where)
    regular = sorted((s for s in live if not s.is_system), key=lambda s: (s.sort, s.id))
    custom = [(i, s) for i, s in enumerate(ps.statuses) if not s.is_system]
    found = _match(custom, regular, same_account, where)
    steps.matched.update({i: st.id for i, st in found.items()})
    taken = set(steps.matched.values())
    unmatched = [s for s in regular if s.id not in taken]
    order = StatusOrder([s.id for s in regular])
    if prune:
        for s in unmatched:
            steps.deletes.append(s.id)
            order.remove(s.id)
            lines.append(_line("-", f"status {s.name!r} (id {s.id}) in {where}"))
    elif unmatched:
        lines.append(
            _line(
                "!",
                f"{where}: {len(unmatched)} statuses not in the file are kept "
                "(--prune deletes them)",
            )
        )
    count = len(regular) - len(steps.deletes) + sum(1 for i, _ in custom if i not in found)
    if count > MAX_CUSTOM_STATUSES_PER_PIPELINE:
        raise PlanError(
            f"{where} would hold {count} custom statuses; at most "
            f"{MAX_CUSTOM_STATUSES_PER_PIPELINE} are allowed (--prune deletes the others)"
        )
    position = {s.id: n for n, s in enumerate(regular)}
    keep = longest_increasing([position[found[i].id] if i in found else None for i, _ in custom])
    previous: int | None = None
    anchors: list[int | None] = []
    for n, (i, spec) in enumerate(custom):
        if i not in found:
            anchors.append(previous)
            steps.created_from.append(i)
            continue
        status = found[i]
        changes, notes = _changes(spec, status, lines, where)
        if n not in keep:
            changes["sort"] = order.move_after(status.id, previous)
            notes.append(
                "moved " + (f"after {_name_of(live, previous)!r}" if previous else "first")
            )
        previous = status.id
        if changes:
            update = StatusUpdate(**changes)
            (steps.moves if "sort" in changes else steps.updates).append((status.id, update))
            lines.append(_line("~", f"status {status.name!r} in {where}: {'; '.join(notes)}"))
    sorts = order.new_sorts(anchors)
    for n, (i, sort) in enumerate(zip(steps.created_from, sorts, strict=True)):
        spec = ps.statuses[i]
        steps.creates.append(
            NewStatus(
                name=spec.name,
                sort=sort,
                color=palette_color(spec.color, lines, where, spec.name),
                descriptions=[
                    DescriptionInput.create(lvl, t) for lvl, t in spec.descriptions or ()
                ],
                # The id the SDK would send anyway (the item's index in the POST): given
                # here, the created statuses come back carrying it, so the SDK need not
                # copy each result to hide an id the caller did not choose (an attrs
                # evolve that also builds every lazy description: a third of a copy's CPU).
                request_id=str(n),
            )
        )
        if not quiet:
            lines.append(_line("+", f"status {spec.name!r} in {where}"))
    return steps


def _name_of(live: Sequence[Status], status_id: int | None) -> str:
    return next((s.name for s in live if s.id == status_id), str(status_id))


def _system(
    ps: PipelineSpec, live: Sequence[Status], steps: StatusSteps, lines: list[Line], where: str
) -> None:
    roles = {status_role(s): s for s in live if s.is_system}
    for i, spec in enumerate(ps.statuses):
        if spec.role is None:
            continue
        status = roles.get(spec.role)
        if status is None:
            continue
        steps.matched[i] = status.id
        if spec.name == status.name:
            continue
        if status.is_editable:
            steps.updates.append((status.id, StatusUpdate(name=spec.name)))
            lines.append(
                _line("~", f"{spec.role} status in {where}: name {status.name!r} -> {spec.name!r}")
            )
        else:
            lines.append(
                _line(
                    "!",
                    f"{spec.role} status in {where} is named {status.name!r}, "
                    f"the file says {spec.name!r}: the API does not let system "
                    "statuses be edited; left as is",
                )
            )


def _match(
    custom: list[tuple[int, StatusSpec]], regular: list[Status], same_account: bool, where: str
) -> dict[int, Status]:
    found: dict[int, Status] = {}
    if same_account:
        by_id = {s.id: s for s in regular}
        for i, spec in custom:
            if spec.id is not None and spec.id in by_id:
                found[i] = by_id[spec.id]
    taken = {s.id for s in found.values()}
    free = [s for s in regular if s.id not in taken]
    rest = [(i, s) for i, s in custom if i not in found]
    wanted = Counter(s.name for _, s in rest)
    present = Counter(s.name for s in free)
    ambiguous = sorted(n for n in wanted if present[n] and (wanted[n] > 1 or present[n] > 1))
    if ambiguous:
        raise PlanError(
            f"status names in {where} that can not be matched unambiguously (they repeat in "
            f"the file or in the account): {', '.join(map(repr, ambiguous))}; rename them or "
            "give their ids"
        )
    by_name = {s.name: s for s in free}
    for i, spec in rest:
        if spec.name in by_name:
            found[i] = by_name[spec.name]
    return found


def _changes(
    spec: StatusSpec, status: Status, lines: list[Line], where: str
) -> tuple[dict[str, Any], list[str]]:
    changes: dict[str, Any] = {}
    notes: list[str] = []
    if spec.name != status.name:
        changes["name"] = spec.name
        notes.append(f"name -> {spec.name!r}")
    if spec.color is not None and spec.color != status.color.lower():
        color = nearest_palette_color(spec.color)
        if color != status.color.lower():  # warn only when the nearest color is written
            changes["color"] = palette_color(spec.color, lines, where, spec.name)
            notes.append(f"color {status.color} -> {color}")
    if spec.descriptions is not None:
        held = held_descriptions(status)
        if held is None:
            return changes, notes
        if spec.descriptions == tuple((level, held[level][1]) for level in LEVELS if level in held):
            return changes, notes  # the usual case, checked at once
        wanted = dict(spec.descriptions)
        edits = []
        for level, text in spec.descriptions:
            if level not in held:
                edits.append(DescriptionInput.create(level, text))
                notes.append(f"{level} description added")
            elif held[level][1] != text:
                edits.append(DescriptionInput.edit(held[level][0], level, text))
                notes.append(f"{level} description changed")
        for level, (description_id, _) in held.items():
            if level not in wanted:
                edits.append(DescriptionInput.delete(description_id, level))
                notes.append(f"{level} description removed")
        if edits:
            changes["descriptions"] = edits
    return changes, notes


def held_descriptions(status: Status) -> dict[str, tuple[int, str]] | None:
    """``level -> (description id, text)`` of ``status`` (``None``: not read), without
    making description objects that are not made yet (most of a second copy's CPU went to
    making them)."""
    values = description_values(status)
    if values is None:
        return None
    return {str(level): (did, text) for did, level, text in values}


def palette_color(color: str | None, lines: list[Line], where: str, name: str) -> str | None:
    if color is None:
        return None
    mapped = nearest_palette_color(color)
    if mapped != color:
        lines.append(
            _line(
                "!",
                f"status {name!r} in {where}: color {color} is not in the "
                f"palette; the nearest, {mapped}, is used",
            )
        )
    return mapped
