"""Request body validation: JSON in, typed plans or per-item ``validation-errors`` out.

Validation never looks at the account beyond what it is given, and never changes it; the
handlers apply a plan only when the whole request is valid (all-or-nothing). Fields a request
does not document are ignored, wherever they are: the pages never say they are refused (and
the official PHP library sends ``request_id`` inside embedded statuses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .plans import (
    DescriptionChange,
    FieldError,
    ItemErrors,
    NewDescription,
    NewPipeline,
    NewStatus,
    PipelinePatch,
    StatusPatch,
    ValidationFailed,
)
from .quick import quick_new_pipeline, quick_new_status
from .rules import (
    CLOSED_STATUS_IDS,
    DEFAULT_COLOR,
    LEVELS,
    MAX_DESCRIPTION_LENGTH,
    MAX_DESCRIPTIONS,
    PALETTE,
    PIPELINE_FIELDS,
    STATUS_FIELDS,
    FieldRules,
)

DEFAULT_RULES = FieldRules()

# --- field checks -----------------------------------------------------------------------------


class _Item:
    """Collects the errors of one item."""

    def __init__(
        self, data: Mapping[str, Any], prefix: str = "", rules: FieldRules = DEFAULT_RULES
    ) -> None:
        self.data = data
        self.prefix = prefix
        self.rules = rules
        self.errors: list[FieldError] = []

    def error(self, code: str, name: str, detail: str) -> None:
        self.errors.append(FieldError(code, self.prefix + name, detail))

    def present(self, name: str, required: bool) -> bool:
        if name in self.data:
            return True
        if required:
            self.error("FieldMissing", name, f"Field {name!r} is required")
        return False

    def name(self, key: str = "name", *, required: bool = True) -> str | None:
        if not self.present(key, required):
            return None
        value = self.data[key]
        if not isinstance(value, str):
            self.error("InvalidType", key, "Must be a string")
            return None
        if not value.strip():
            self.error("NotBlank", key, "Must not be empty")
            return None
        limit = self.rules.max_name_length
        if limit is not None and len(value) > limit:
            self.error("TooLong", key, f"Must be at most {limit} characters")
            return None
        return value

    def sort(self, *, required: bool = True) -> int | None:
        if not self.present("sort", required):
            return None
        value = self.data["sort"]
        if not isinstance(value, int) or isinstance(value, bool):
            self.error("InvalidType", "sort", "Must be an integer")
            return None
        bounds = self.rules.sort_range
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            self.error("OutOfRange", "sort", f"Must be within {bounds[0]}..{bounds[1]}")
            return None
        return value

    def flag(self, key: str, *, required: bool = True) -> bool | None:
        if not self.present(key, required):
            return None
        value = self.data[key]
        if not isinstance(value, bool):
            self.error("InvalidType", key, "Must be a boolean")
            return None
        return value

    def color(self) -> str | None:
        if not self.present("color", False):
            return None
        value = self.data["color"]
        if not isinstance(value, str):
            self.error("InvalidType", "color", "Must be a string")
            return None
        if value not in PALETTE:
            self.error("NotSupportedChoice", "color", f"Color {value!r} is not available")
            return None
        return value

    def description_text(self, key: str, *, required: bool) -> str | None:
        if not self.present(key, required):
            return None
        value = self.data[key]
        if not isinstance(value, str):
            self.error("InvalidType", key, "Must be a string")
            return None
        if not value.strip():
            self.error("NotBlank", key, "Must not be empty")
            return None
        if len(value) > MAX_DESCRIPTION_LENGTH:
            self.error("TooLong", key, f"Must be at most {MAX_DESCRIPTION_LENGTH} characters")
            return None
        return value

    def level(self) -> str | None:
        if not self.present("level", True):
            return None
        value = self.data["level"]
        if not isinstance(value, str):
            self.error("InvalidType", "level", "Must be a string")
            return None
        if value not in LEVELS:
            self.error("NotSupportedChoice", "level", f"Level must be one of {', '.join(LEVELS)}")
            return None
        return value


def _request_id(data: Any, default: str) -> tuple[str, FieldError | None]:
    """The key to echo and report errors under, and an error when request_id is not a string."""
    if isinstance(data, Mapping) and "request_id" in data:
        value = data["request_id"]
        if isinstance(value, str):
            return value, None
        return default, FieldError("InvalidType", "request_id", "Must be a string")
    return default, None


def _object(item: _Item, key: str) -> Mapping[str, Any] | None:
    value = item.data[key]
    if not isinstance(value, dict):
        item.error("InvalidType", key, "Must be an object")
        return None
    return value


def _list(item: _Item, key: str) -> list[Any] | None:
    value = item.data[key]
    if not isinstance(value, list):
        item.error("InvalidType", key, "Must be an array")
        return None
    return value


def _finish(items: list[ItemErrors]) -> None:
    if items:
        raise ValidationFailed(items)


# --- pipelines --------------------------------------------------------------------------------


def validate_new_pipelines(body: list[Any], rules: FieldRules = DEFAULT_RULES) -> list[NewPipeline]:
    """Validate a pipelines POST body (a non-empty array)."""
    plans: list[NewPipeline] = []
    failed: list[ItemErrors] = []
    main_seen = False
    for index, raw in enumerate(body):
        quick = quick_new_pipeline(raw, index, rules, main_seen)
        if quick is not None:
            plans.append(quick)
            main_seen = main_seen or quick.is_main
            continue
        request_id, rid_error = _request_id(raw, str(index))
        if not isinstance(raw, dict):
            failed.append(
                ItemErrors(request_id, (FieldError("InvalidType", "", "Must be an object"),))
            )
            continue
        item = _Item(raw, rules=rules)
        if rid_error is not None:
            item.errors.append(rid_error)
        name = item.name()
        sort = item.sort()
        is_main = item.flag("is_main")
        is_unsorted_on = item.flag("is_unsorted_on")
        if is_main:
            if main_seen:
                item.error("NotUnique", "is_main", "Only one pipeline can be the main one")
            main_seen = True
        statuses, closed = _embedded_statuses(item)
        if item.errors:
            failed.append(ItemErrors(request_id, tuple(item.errors)))
            continue
        assert name is not None and sort is not None
        assert is_main is not None and is_unsorted_on is not None
        plans.append(NewPipeline(name, sort, is_main, is_unsorted_on, request_id, statuses, closed))
    _finish(failed)
    return plans


def _embedded_statuses(item: _Item) -> tuple[tuple[NewStatus, ...], dict[int, str]]:
    statuses: list[NewStatus] = []
    closed: dict[int, str] = {}
    if not item.present("_embedded", False):
        return (), closed
    embedded = _object(item, "_embedded")
    if embedded is None:
        return (), closed
    outer = _Item(embedded, "_embedded.")
    raw_list = _list(outer, "statuses") if outer.present("statuses", False) else []
    item.errors.extend(outer.errors)
    for index, raw in enumerate(raw_list or []):
        prefix = f"_embedded.statuses.{index}."
        if not isinstance(raw, dict):
            item.errors.append(FieldError("InvalidType", prefix.rstrip("."), "Must be an object"))
            continue
        sub = _Item(raw, prefix, item.rules)
        if "id" in raw:
            status_id = raw["id"]
            name = sub.name()
            if status_id not in CLOSED_STATUS_IDS or isinstance(status_id, bool):
                sub.error(
                    "NotSupportedChoice", "id", "Only 142 and 143 may be named on pipeline create"
                )
            elif status_id in closed:
                sub.error("NotUnique", "id", f"Status {status_id} is given more than once")
            elif name is not None:
                closed[status_id] = name
        else:
            name = sub.name()
            sort = sub.sort()
            color = sub.color()
            if name is not None and sort is not None and not sub.errors:
                statuses.append(
                    NewStatus(name, sort, color or DEFAULT_COLOR, (), str(index), index)
                )
        item.errors.extend(sub.errors)
    return tuple(statuses), closed


def validate_pipeline_patch(
    body: dict[str, Any], rules: FieldRules = DEFAULT_RULES
) -> PipelinePatch:
    """Validate a pipeline PATCH body (a non-empty object)."""
    request_id, rid_error = _request_id(body, "0")
    item = _Item(body, rules=rules)
    if rid_error is not None:
        item.errors.append(rid_error)
    if not any(key in body for key in PIPELINE_FIELDS):
        item.error("FieldMissing", "", f"At least one of {', '.join(PIPELINE_FIELDS)} is required")
    patch = PipelinePatch(
        name=item.name(required=False),
        sort=item.sort(required=False),
        is_main=item.flag("is_main", required=False),
        is_unsorted_on=item.flag("is_unsorted_on", required=False),
        request_id=request_id,
    )
    _finish([ItemErrors(request_id, tuple(item.errors))] if item.errors else [])
    return patch


# --- statuses ---------------------------------------------------------------------------------


def validate_new_statuses(body: list[Any], rules: FieldRules = DEFAULT_RULES) -> list[NewStatus]:
    """Validate a statuses POST body (a non-empty array)."""
    plans: list[NewStatus] = []
    failed: list[ItemErrors] = []
    for index, raw in enumerate(body):
        quick = quick_new_status(raw, index, rules)
        if quick is not None:
            plans.append(quick)
            continue
        request_id, rid_error = _request_id(raw, str(index))
        if not isinstance(raw, dict):
            failed.append(
                ItemErrors(request_id, (FieldError("InvalidType", "", "Must be an object"),))
            )
            continue
        item = _Item(raw, rules=rules)
        if rid_error is not None:
            item.errors.append(rid_error)
        name = item.name()
        sort = item.sort()
        color = item.color()
        descriptions = _new_descriptions(item)
        if item.errors:
            failed.append(ItemErrors(request_id, tuple(item.errors)))
            continue
        assert name is not None and sort is not None
        plans.append(NewStatus(name, sort, color or DEFAULT_COLOR, descriptions, request_id, index))
    _finish(failed)
    return plans


def _description_items(item: _Item) -> list[tuple[_Item, str | None]]:
    """The description sub-items of ``item``, each with its validated level."""
    if not item.present("descriptions", False):
        return []
    raw_list = _list(item, "descriptions")
    if raw_list is None:
        return []
    if len(raw_list) > MAX_DESCRIPTIONS:
        item.error("TooMany", "descriptions", f"At most {MAX_DESCRIPTIONS} descriptions")
    result: list[tuple[_Item, str | None]] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_list):
        prefix = f"descriptions.{index}."
        if not isinstance(raw, dict):
            item.errors.append(FieldError("InvalidType", prefix.rstrip("."), "Must be an object"))
            continue
        sub = _Item(raw, prefix)
        level = sub.level()
        if level is not None:
            if level in seen:
                sub.error("NotUnique", "level", f"Level {level!r} is given more than once")
            seen.add(level)
        result.append((sub, level))
    return result


def _new_descriptions(item: _Item) -> tuple[NewDescription, ...]:
    found: list[NewDescription] = []
    for sub, level in _description_items(item):
        text = sub.description_text("description", required=True)
        if level is not None and text is not None:
            found.append(NewDescription(level, text))
        item.errors.extend(sub.errors)
    return tuple(found)


def validate_status_patch(
    body: dict[str, Any], existing: Mapping[int, str], rules: FieldRules = DEFAULT_RULES
) -> StatusPatch:
    """Validate a status PATCH body; ``existing`` maps the status's description ids to levels."""
    request_id, rid_error = _request_id(body, "0")
    item = _Item(body, rules=rules)
    if rid_error is not None:
        item.errors.append(rid_error)
    if not any(key in body for key in STATUS_FIELDS):
        item.error("FieldMissing", "", f"At least one of {', '.join(STATUS_FIELDS)} is required")
    name = item.name(required=False)
    sort = item.sort(required=False)
    color = item.color()
    changes: list[DescriptionChange] | None = [] if "descriptions" in body else None
    for sub, level in _description_items(item):
        desc_id: int | None = None
        if sub.present("id", False):
            raw_id = sub.data["id"]
            if not isinstance(raw_id, int) or isinstance(raw_id, bool):
                sub.error("InvalidType", "id", "Must be an integer")
            elif raw_id not in existing:
                sub.error("NotFound", "id", f"Description {raw_id} not found for this status")
            elif level is not None and existing[raw_id] != level:
                sub.error(
                    "Mismatch", "level", f"Description {raw_id} has level {existing[raw_id]!r}"
                )
            else:
                desc_id = raw_id
        text = sub.description_text("description", required="id" not in sub.data)
        if not sub.errors and level is not None and changes is not None:
            changes.append(DescriptionChange(desc_id, level, text))
        item.errors.extend(sub.errors)
    _finish([ItemErrors(request_id, tuple(item.errors))] if item.errors else [])
    return StatusPatch(
        name=name,
        sort=sort,
        color=color,
        descriptions=None if changes is None else tuple(changes),
        request_id=request_id,
    )
