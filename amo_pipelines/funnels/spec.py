"""The funnels file: what an account's pipelines should look like, as data.

A file (YAML by default, JSON too) lists pipelines in the order they should have, each with
its statuses in order; ``sort`` numbers are not part of it because the API renumbers them.
Ids are kept as data: they match entities when the file is applied back to the account it
came from. System statuses carry a ``role`` (``incoming``, ``won``, ``lost``) and are matched
by it, never by name. ``descriptions`` maps a level (newbie, candidate, master) to its text;
a status without the key leaves its descriptions as they are, ``descriptions: {}`` removes
them. ``is_main`` / ``is_unsorted_on`` left out are left as they are.

Example::

    version: 1
    source: {host: example.amocrm.ru, account_id: 12345678, exported_at: '2026-...'}
    pipelines:
    - id: 3177727
      name: Воронка
      is_main: true
      is_unsorted_on: true
      statuses:
      - {id: 32392156, role: incoming, name: Неразобранное, color: '#c1c1c1'}
      - id: 32392159
        name: Первичный контакт
        color: '#99ccff'
        descriptions: {newbie: Позвонить клиенту}
      - {id: 142, role: won, name: Успешно реализовано}
      - {id: 143, role: lost, name: Закрыто и не реализовано}

:func:`load_spec` checks the schema and raises :class:`SpecError` naming the file, the line
and the field, with a hint for YAML's traps (quote ``'No'``, ``'2024'`` and ``'#fff'``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import field, frozen

from ..model.constants import (
    LOST_STATUS_ID,
    MAX_CUSTOM_STATUSES_PER_PIPELINE,
    MAX_DESCRIPTION_LENGTH,
    MAX_PIPELINES_PER_ACCOUNT,
    WON_STATUS_ID,
    DescriptionLevel,
)
from ._read import Checker, Located, read_text, wrap_data
from .errors import ExtraMissingError, SpecError

FORMAT_VERSION = 1
ROLES = ("incoming", "won", "lost")
ROLE_IDS = {"won": WON_STATUS_ID, "lost": LOST_STATUS_ID}
LEVELS = tuple(level.value for level in DescriptionLevel)


@frozen(kw_only=True)
class StatusSpec:
    """One status as the file wants it. ``role`` is ``None`` for a regular status."""

    name: str
    id: int | None = None
    role: str | None = None
    color: str | None = None
    """``#rrggbb``, lower case; may be outside the palette (mapped to the nearest on write)."""
    descriptions: tuple[tuple[str, str], ...] | None = None
    """``(level, text)`` pairs in level order; ``None``: leave the status's descriptions."""
    line: int | None = field(default=None, eq=False, repr=False)

    @property
    def is_system(self) -> bool:
        return self.role is not None


@frozen(kw_only=True)
class PipelineSpec:
    name: str
    id: int | None = None
    is_main: bool | None = None
    is_unsorted_on: bool | None = None
    statuses: tuple[StatusSpec, ...] = ()
    line: int | None = field(default=None, eq=False, repr=False)
    # Worked out once: a copy asks every target's plan for them, 50 pipelines each.
    _custom: tuple[StatusSpec, ...] = field(init=False, eq=False, repr=False)
    _roles: dict[str, StatusSpec] = field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        roles: dict[str, StatusSpec] = {}
        for s in reversed(self.statuses):  # the first of a role wins, as a scan would find
            if s.role is not None:
                roles[s.role] = s
        object.__setattr__(self, "_custom", tuple(s for s in self.statuses if s.role is None))
        object.__setattr__(self, "_roles", roles)

    @property
    def custom_statuses(self) -> tuple[StatusSpec, ...]:
        return self._custom

    def by_role(self, role: str) -> StatusSpec | None:
        return self._roles.get(role)


@frozen(kw_only=True)
class SourceInfo:
    """Where an export came from: ids in the file match only on that account."""

    host: str | None = None
    account_id: int | None = None
    exported_at: str | None = None


@frozen(kw_only=True)
class FunnelsSpec:
    pipelines: tuple[PipelineSpec, ...]
    source: SourceInfo | None = None
    path: str = field(default="<string>", eq=False)


# --------------------------------------------------------------------------- loading


def load_spec(path: str | Path) -> FunnelsSpec:
    """Read and check a funnels file (YAML, or JSON)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"can not read the file: {e}", path=name, line=None, field=None) from None
    return loads_spec(text, path=name)


def loads_spec(text: str, *, path: str = "<string>") -> FunnelsSpec:
    if text.lstrip().startswith("{"):
        # JSON (an export, a machine's file): the standard library reads it fastest, but
        # without lines; an invalid file is read again by PyYAML to name the line.
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            try:
                return spec_from_tree(wrap_data(data), path)
            except SpecError:
                pass
    return spec_from_tree(read_text(text, path), path)


def spec_from_data(data: Mapping[str, Any], *, path: str = "<data>") -> FunnelsSpec:
    """Check plain data (as :func:`spec_to_data` gives it, or from ``json.loads``)."""
    return spec_from_tree(wrap_data(data), path)


def spec_from_tree(root: Located, path: str) -> FunnelsSpec:
    c = Checker(path)
    top = c.mapping(root, "", ("version", "source", "pipelines"))
    if "version" in top and (top["version"].kind != "int" or top["version"].value != 1):
        raise c.fail(top["version"], "version", f"this program reads version {FORMAT_VERSION}")
    source = None
    if "source" in top:
        fields = c.mapping(top["source"], "source", ("host", "account_id", "exported_at"))
        source = SourceInfo(
            host=c.text(fields["host"], "source.host") if "host" in fields else None,
            account_id=(
                c.integer(fields["account_id"], "source.account_id")
                if "account_id" in fields
                else None
            ),
            exported_at=(str(fields["exported_at"].raw) if "exported_at" in fields else None),
        )
    if "pipelines" not in top:
        raise c.fail(root, "pipelines", "is required")
    items = c.seq(top["pipelines"], "pipelines")
    if len(items) > MAX_PIPELINES_PER_ACCOUNT:
        raise c.fail(
            top["pipelines"],
            "pipelines",
            f"{len(items)} given; an account holds at most {MAX_PIPELINES_PER_ACCOUNT}",
        )
    pipelines = tuple(_pipeline(c, node, f"pipelines[{i}]") for i, node in enumerate(items))
    mains = [i for i, p in enumerate(pipelines) if p.is_main]
    if len(mains) > 1:
        raise c.fail(
            items[mains[1]], f"pipelines[{mains[1]}].is_main", "only one pipeline can be main"
        )
    _unique_ids(c, items, pipelines)
    return FunnelsSpec(pipelines=pipelines, source=source, path=path)


def _pipeline(c: Checker, node: Located, where: str) -> PipelineSpec:
    f = c.mapping(node, where, ("id", "name", "is_main", "is_unsorted_on", "statuses"))
    if "name" not in f:
        raise c.fail(node, f"{where}.name", "is required")
    statuses: tuple[StatusSpec, ...] = ()
    if "statuses" in f:
        nodes = c.seq(f["statuses"], f"{where}.statuses")
        statuses = tuple(_status(c, n, f"{where}.statuses[{i}]") for i, n in enumerate(nodes))
        custom = sum(not s.is_system for s in statuses)
        if custom > MAX_CUSTOM_STATUSES_PER_PIPELINE:
            raise c.fail(
                f["statuses"],
                f"{where}.statuses",
                f"{custom} custom statuses; a pipeline holds at most "
                f"{MAX_CUSTOM_STATUSES_PER_PIPELINE} besides incoming, won and lost",
            )
        for role in ROLES:
            found = [i for i, s in enumerate(statuses) if s.role == role]
            if len(found) > 1:
                raise c.fail(
                    nodes[found[1]], f"{where}.statuses[{found[1]}].role", f"{role} is repeated"
                )
    return PipelineSpec(
        id=c.integer(f["id"], f"{where}.id") if "id" in f else None,
        name=c.text(f["name"], f"{where}.name"),
        is_main=c.boolean(f["is_main"], f"{where}.is_main") if "is_main" in f else None,
        is_unsorted_on=(
            c.boolean(f["is_unsorted_on"], f"{where}.is_unsorted_on")
            if "is_unsorted_on" in f
            else None
        ),
        statuses=statuses,
        line=node.line,
    )


def _status(c: Checker, node: Located, where: str) -> StatusSpec:
    f = c.mapping(node, where, ("id", "role", "name", "color", "descriptions"))
    if "name" not in f:
        raise c.fail(node, f"{where}.name", "is required")
    status_id = c.integer(f["id"], f"{where}.id") if "id" in f else None
    role = None
    if "role" in f:
        role = c.text(f["role"], f"{where}.role")
        if role not in ROLES:
            raise c.fail(f["role"], f"{where}.role", f"must be one of {', '.join(ROLES)}")
    for implied, role_id in ROLE_IDS.items():
        if status_id == role_id:
            if role not in (None, implied):
                raise c.fail(f["role"], f"{where}.role", f"status {role_id} is {implied}")
            role = implied
        elif role == implied and status_id is not None:
            raise c.fail(f["id"], f"{where}.id", f"the {implied} status is always {role_id}")
    descriptions = None
    if "descriptions" in f:
        if role is not None:
            raise c.fail(
                f["descriptions"], f"{where}.descriptions", "system statuses take no descriptions"
            )
        descriptions = _descriptions(c, f["descriptions"], f"{where}.descriptions")
    return StatusSpec(
        id=status_id,
        role=role,
        name=c.text(f["name"], f"{where}.name"),
        color=c.color(f["color"], f"{where}.color") if "color" in f else None,
        descriptions=descriptions,
        line=node.line,
    )


def _descriptions(c: Checker, node: Located, where: str) -> tuple[tuple[str, str], ...]:
    if node.kind == "null":
        return ()
    texts = c.mapping(node, where, LEVELS)
    out = []
    for level in LEVELS:
        if level in texts:
            text = c.text(texts[level], f"{where}.{level}")
            if len(text) > MAX_DESCRIPTION_LENGTH:
                raise c.fail(
                    texts[level],
                    f"{where}.{level}",
                    f"is {len(text)} characters; at most {MAX_DESCRIPTION_LENGTH} are allowed",
                )
            out.append((level, text))
    return tuple(out)


def _unique_ids(c: Checker, nodes: list[Located], pipelines: tuple[PipelineSpec, ...]) -> None:
    seen: set[int] = set()
    statuses: set[int] = set()
    for i, p in enumerate(pipelines):
        if p.id is not None:
            if p.id in seen:
                raise c.fail(nodes[i], f"pipelines[{i}].id", f"id {p.id} is repeated")
            seen.add(p.id)
        for j, s in enumerate(p.statuses):
            if s.id is not None and s.role is None:
                if s.id in statuses:
                    raise c.fail(None, f"pipelines[{i}].statuses[{j}].id", f"id {s.id} repeated")
                statuses.add(s.id)


# --------------------------------------------------------------------------- writing


def spec_to_data(spec: FunnelsSpec) -> dict[str, Any]:
    """Plain data in the file's key order (``version``, ``source``, ``pipelines``)."""
    data: dict[str, Any] = {"version": FORMAT_VERSION}
    if spec.source is not None:
        source = {
            "host": spec.source.host,
            "account_id": spec.source.account_id,
            "exported_at": spec.source.exported_at,
        }
        data["source"] = {k: v for k, v in source.items() if v is not None}
    data["pipelines"] = [_pipeline_data(p) for p in spec.pipelines]
    return data


def _pipeline_data(p: PipelineSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.id is not None:
        out["id"] = p.id
    out["name"] = p.name
    if p.is_main is not None:
        out["is_main"] = p.is_main
    if p.is_unsorted_on is not None:
        out["is_unsorted_on"] = p.is_unsorted_on
    out["statuses"] = [_status_data(s) for s in p.statuses]
    return out


def _status_data(s: StatusSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if s.id is not None:
        out["id"] = s.id
    if s.role is not None:
        out["role"] = s.role
    out["name"] = s.name
    if s.color is not None:
        out["color"] = s.color
    if s.descriptions is not None:
        out["descriptions"] = dict(s.descriptions)
    return out


def dumps_spec(spec: FunnelsSpec, fmt: str = "yaml") -> str:
    """The file's text: YAML (PyYAML ``safe_dump``: Cyrillic kept readable, key order kept)
    or JSON."""
    data = spec_to_data(spec)
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    try:
        import yaml
    except ImportError:
        raise ExtraMissingError("PyYAML", "writing YAML (use --format json without it)") from None
    # safe_dump's options, with libyaml's emitter when PyYAML has it (ten times faster).
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(data, Dumper=dumper, allow_unicode=True, sort_keys=False, width=100)
    return text
