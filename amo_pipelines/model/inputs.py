"""What callers send: input classes that validate themselves on construction.

Invalid input raises :class:`InvalidInputError` (a ``ValueError``) when the object is built,
so a bad value fails at the line that made it and nothing is ever sent. Rules that need a
whole call (how many items, unique ``request_id``) are checked by :func:`check_batch`.
Request bodies hold only what the caller set, plus the two booleans the API makes
mandatory on pipeline creation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from attrs import Attribute, field, frozen

from ..errors import InvalidInputError
from .constants import (
    LOST_STATUS_ID,
    MAX_CUSTOM_STATUSES_PER_PIPELINE,
    MAX_DESCRIPTION_LENGTH,
    MAX_DESCRIPTIONS_PER_STATUS,
    SYSTEM_STATUS_IDS,
    WON_STATUS_ID,
    DescriptionLevel,
    StatusColor,
)

_PALETTE = {c.value: c for c in StatusColor}

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
"""Ints the SDK sends fit in a signed 64-bit integer (what JSON encoders and the API hold)."""


def check_text(value: str, where: str) -> str:
    """A string that can be sent: valid Unicode (no lone surrogate such as ``"\\ud800"``,
    which no UTF-8 encoder takes). The message never shows the value."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(
                "is not valid Unicode text (it holds a lone surrogate)", field=where
            ) from None
    return value


def check_name(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"must be a string, got {type(value).__name__}", field=where)
    if not value.strip():
        raise InvalidInputError("must not be empty", field=where)
    return check_text(value, where)


def check_seconds(value: object, where: str, *, positive: bool = False) -> float:
    """A duration: a finite number of seconds, at least 0 (above 0 where ``positive``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        least = "above 0" if positive else "at least 0"
        raise InvalidInputError(
            f"must be a finite number of seconds {least}, got {value!r}", field=where
        )
    return float(value)


def check_int(value: object, where: str) -> int:
    # bool is an int subclass; True as a sort order is a bug, not a value.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"must be an int, got {type(value).__name__}", field=where)
    if not INT_MIN <= value <= INT_MAX:
        raise InvalidInputError(f"must fit in 64 bits (from {INT_MIN} to {INT_MAX})", field=where)
    return value


def check_id(value: object, where: str = "id") -> int:
    """A path or entity id: a positive int, never a string that could reshape a URL."""
    if type(value) is int and 0 < value <= INT_MAX:  # every well-formed call: checked first
        return value
    number = check_int(value, where)
    if number <= 0:
        raise InvalidInputError(f"must be a positive int, got {number!r}", field=where)
    return number


# attrs validators: they get the attribute, so messages name the field.
def _name(_: object, attribute: Attribute[Any], value: object) -> None:
    if value is not None:
        check_name(value, attribute.name)


def _int(_: object, attribute: Attribute[Any], value: object) -> None:
    if value is not None:
        check_int(value, attribute.name)


# For required fields: None is not "unset" there, it is a wrong value.
def _required_name(_: object, attribute: Attribute[Any], value: object) -> None:
    check_name(value, attribute.name)


def _required_int(_: object, attribute: Attribute[Any], value: object) -> None:
    check_int(value, attribute.name)


def _id(_: object, attribute: Attribute[Any], value: object) -> None:
    if value is not None:
        check_id(value, attribute.name)


def _bool(_: object, attribute: Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise InvalidInputError(f"must be a bool, got {type(value).__name__}", field=attribute.name)


def _required_bool(_: object, attribute: Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidInputError(f"must be a bool, got {type(value).__name__}", field=attribute.name)


def _str(_: object, attribute: Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInputError(
            f"must be a string, got {type(value).__name__}", field=attribute.name
        )
    check_text(value, attribute.name)


def _color(value: StatusColor | str | None) -> StatusColor | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"must be a string, got {type(value).__name__}", field="color")
    try:
        return _PALETTE[value.lower()]
    except KeyError:
        raise InvalidInputError(
            f"{value!r} is not in the status palette (see StatusColor)", field="color"
        ) from None


def _level(value: DescriptionLevel | str) -> DescriptionLevel:
    try:
        return DescriptionLevel(value)
    except ValueError:
        allowed = ", ".join(level.value for level in DescriptionLevel)
        raise InvalidInputError(f"{value!r} is not one of {allowed}", field="level") from None


def _description_text(_: object, attribute: Attribute[Any], value: object) -> None:
    if value is None:
        return
    text = check_name(value, "description")
    # len() counts code points, as the API does: an emoji is one character.
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInputError(
            f"is {len(text)} characters, at most {MAX_DESCRIPTION_LENGTH} are allowed",
            field="description",
        )


@frozen(kw_only=True)
class DescriptionInput:
    """A status description to create, edit or delete.

    * ``DescriptionInput.create(level, text)``: create (on update: overwrite that level's).
    * ``DescriptionInput.edit(id, level, text)``: edit an existing description.
    * ``DescriptionInput.delete(id, level)``: delete an existing description.
    """

    level: DescriptionLevel = field(converter=_level)
    description: str | None = field(default=None, validator=_description_text)
    id: int | None = field(default=None, validator=_id)

    def __attrs_post_init__(self) -> None:
        if self.id is None and self.description is None:
            raise InvalidInputError("a new description needs its text", field="description")

    @classmethod
    def create(cls, level: DescriptionLevel | str, description: str) -> DescriptionInput:
        return cls(level=level, description=description)

    @classmethod
    def edit(cls, id: int, level: DescriptionLevel | str, description: str) -> DescriptionInput:
        return cls(id=id, level=level, description=description)

    @classmethod
    def delete(cls, id: int, level: DescriptionLevel | str) -> DescriptionInput:
        return cls(id=id, level=level)

    @property
    def is_delete(self) -> bool:
        return self.id is not None and self.description is None


def _maybe_descriptions(
    value: Iterable[DescriptionInput] | None,
) -> tuple[DescriptionInput, ...] | None:
    return None if value is None else _descriptions(value)


def _descriptions(value: Iterable[DescriptionInput]) -> tuple[DescriptionInput, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInputError("must be a sequence of DescriptionInput", field="descriptions")
    items = tuple(value)
    if len(items) > MAX_DESCRIPTIONS_PER_STATUS:
        raise InvalidInputError(
            f"{len(items)} given, at most {MAX_DESCRIPTIONS_PER_STATUS} are allowed",
            field="descriptions",
        )
    seen: set[DescriptionLevel] = set()
    for i, item in enumerate(items):
        if not isinstance(item, DescriptionInput):
            raise InvalidInputError(
                f"must be a DescriptionInput, got {type(item).__name__}",
                field=f"descriptions[{i}]",
            )
        if item.level in seen:
            raise InvalidInputError(
                f"level {item.level.value!r} is repeated", field=f"descriptions[{i}].level"
            )
        seen.add(item.level)
    return items


@frozen(kw_only=True)
class NewStatus:
    """A status to create, in ``statuses.create`` or inside a :class:`NewPipeline`.

    Inside a ``NewPipeline`` only, ``NewStatus(id=WON_STATUS_ID, name=...)`` (or
    ``LOST_STATUS_ID``) renames a system status; such an item carries a name and nothing else.
    ``NewPipeline(won_status_name=...)`` says the same more plainly.
    """

    name: str = field(validator=_required_name)
    sort: int | None = field(default=None, validator=_int)
    color: StatusColor | None = field(default=None, converter=_color)
    descriptions: tuple[DescriptionInput, ...] = field(default=(), converter=_descriptions)
    request_id: str | None = field(default=None, validator=_str)
    id: int | None = field(default=None, validator=_id)

    def __attrs_post_init__(self) -> None:
        if self.id is not None:
            if self.id not in SYSTEM_STATUS_IDS:
                raise InvalidInputError(
                    f"only {WON_STATUS_ID} and {LOST_STATUS_ID} may be given by id", field="id"
                )
            extra = [
                name for name in ("sort", "color", "request_id") if getattr(self, name) is not None
            ] + (["descriptions"] if self.descriptions else [])
            if extra:
                raise InvalidInputError(
                    f"system status {self.id} takes only a name, not {', '.join(extra)}",
                    field="id",
                )
            return
        if self.sort is None:
            raise InvalidInputError("is required for a new status", field="sort")
        for i, description in enumerate(self.descriptions):
            if description.id is not None:
                raise InvalidInputError(
                    "a new status cannot reference an existing description id",
                    field=f"descriptions[{i}].id",
                )

    @property
    def is_system(self) -> bool:
        return self.id is not None


def _statuses(value: Iterable[NewStatus]) -> tuple[NewStatus, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInputError("must be a sequence of NewStatus", field="statuses")
    items = tuple(value)
    for i, item in enumerate(items):
        if not isinstance(item, NewStatus):
            raise InvalidInputError(
                f"must be a NewStatus, got {type(item).__name__}", field=f"statuses[{i}]"
            )
    return items


@frozen(kw_only=True)
class NewPipeline:
    """A pipeline to create, with up to 97 custom statuses.

    The API requires ``is_main`` and ``is_unsorted_on`` on creation, so they are always
    sent; they default to an ordinary pipeline with the incoming-leads stage on.
    """

    name: str = field(validator=_required_name)
    sort: int = field(validator=_required_int)
    is_main: bool = field(default=False, validator=_required_bool)
    is_unsorted_on: bool = field(default=True, validator=_required_bool)
    statuses: tuple[NewStatus, ...] = field(default=(), converter=_statuses)
    won_status_name: str | None = field(default=None, validator=_name)
    lost_status_name: str | None = field(default=None, validator=_name)
    request_id: str | None = field(default=None, validator=_str)

    def __attrs_post_init__(self) -> None:
        custom = [s for s in self.statuses if not s.is_system]
        if len(custom) > MAX_CUSTOM_STATUSES_PER_PIPELINE:
            raise InvalidInputError(
                f"{len(custom)} custom statuses given; a pipeline holds at most "
                f"{MAX_CUSTOM_STATUSES_PER_PIPELINE} besides incoming, won and lost",
                field="statuses",
            )
        for i, status in enumerate(self.statuses):
            # The pipeline-create body documents name, sort and color for its statuses;
            # descriptions are added afterwards with statuses.create or statuses.update.
            if not status.is_system and (status.descriptions or status.request_id is not None):
                raise InvalidInputError(
                    "statuses created with a pipeline take name, sort and color only; "
                    "add descriptions with statuses.create or statuses.update",
                    field=f"statuses[{i}]",
                )
        named = {WON_STATUS_ID: self.won_status_name, LOST_STATUS_ID: self.lost_status_name}
        for i, status in enumerate(self.statuses):
            if status.id is None:
                continue
            if named[status.id] is not None:
                raise InvalidInputError(
                    f"the name of status {status.id} is given twice", field=f"statuses[{i}]"
                )
            named[status.id] = status.name


def _require_change(obj: object, names: Sequence[str]) -> None:
    if all(getattr(obj, name) is None for name in names):
        raise InvalidInputError(
            f"changes nothing: at least one field is needed (set one of {', '.join(names)})",
            field="update",
        )


@frozen(kw_only=True)
class PipelineUpdate:
    """Fields to change on a pipeline; ``None`` leaves a field as it is."""

    name: str | None = field(default=None, validator=_name)
    sort: int | None = field(default=None, validator=_int)
    is_main: bool | None = field(default=None, validator=_bool)
    is_unsorted_on: bool | None = field(default=None, validator=_bool)

    def __attrs_post_init__(self) -> None:
        _require_change(self, ("name", "sort", "is_main", "is_unsorted_on"))


@frozen(kw_only=True)
class StatusUpdate:
    """Fields to change on a status; ``None`` leaves a field as it is.

    ``descriptions`` takes :class:`DescriptionInput` items: ``create`` (no id) creates or
    overwrites that level's description, ``edit`` changes one, ``delete`` removes one.
    """

    name: str | None = field(default=None, validator=_name)
    sort: int | None = field(default=None, validator=_int)
    color: StatusColor | None = field(default=None, converter=_color)
    descriptions: tuple[DescriptionInput, ...] | None = field(
        default=None, converter=_maybe_descriptions
    )

    def __attrs_post_init__(self) -> None:
        _require_change(self, ("name", "sort", "color", "descriptions"))
        if self.descriptions == ():
            raise InvalidInputError("an empty list changes nothing", field="descriptions")


def check_request_ids(items: Sequence[NewStatus | NewPipeline], where: str) -> None:
    """Caller-given request ids map results back, so they must be unique in one call."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.request_id is None:
            continue
        if item.request_id in seen:
            raise InvalidInputError(
                f"request_id {item.request_id!r} is also used by item {seen[item.request_id]}",
                field=f"{where}[{i}].request_id",
            )
        seen[item.request_id] = i


def check_batch(items: object, kind: type[Any], limit: int | None, where: str) -> list[Any]:
    """Validate a whole create call's list before anything is sent."""
    if isinstance(items, (str, bytes, kind)) or not isinstance(items, Iterable):
        raise InvalidInputError(f"must be a list of {kind.__name__}", field=where)
    batch = list(items)
    if not batch:
        raise InvalidInputError("nothing to create", field=where)
    for i, item in enumerate(batch):
        if not isinstance(item, kind):
            raise InvalidInputError(
                f"must be a {kind.__name__}, got {type(item).__name__}", field=f"{where}[{i}]"
            )
        if getattr(item, "is_system", False):
            raise InvalidInputError(
                "system statuses are created with their pipeline", field=f"{where}[{i}].id"
            )
    if limit is not None and len(batch) > limit:
        raise InvalidInputError(f"{len(batch)} given, at most {limit} fit", field=where)
    check_request_ids(batch, where)
    return batch


def check_ids(ids: object, where: str) -> list[int]:
    """A ``delete_many`` call's ids, all checked before any is sent."""
    if isinstance(ids, (str, bytes, Mapping)) or not isinstance(ids, Iterable):
        raise InvalidInputError(f"must be a list of ids, got {type(ids).__name__}", field=where)
    return [check_id(value, f"{where}[{i}]") for i, value in enumerate(ids)]


def check_updates(updates: object, kind: type[Any], id_name: str) -> list[tuple[int, Any]]:
    """Validate every (id, update) pair of an ``update_many`` call before sending any."""
    if isinstance(updates, Mapping):
        pairs = list(updates.items())
    elif isinstance(updates, Iterable) and not isinstance(updates, (str, bytes)):
        pairs = list(updates)
    else:
        raise InvalidInputError(f"must be a mapping of {id_name} to {kind.__name__}")
    checked: list[tuple[int, Any]] = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InvalidInputError(f"must be an ({id_name}, update) pair", field=f"updates[{i}]")
        entity_id, update = pair
        check_id(entity_id, f"updates[{i}].{id_name}")
        if not isinstance(update, kind):
            raise InvalidInputError(
                f"must be a {kind.__name__}, got {type(update).__name__}", field=f"updates[{i}]"
            )
        checked.append((entity_id, update))
    return checked
