"""The well-formed case of a statuses or pipelines POST item, checked in one pass.

A copy creates up to 97 statuses with three descriptions each in one POST, and 49
pipelines in another, and the general validation (an ``_Item`` per status and per
description, one method call per field) was most of the emulator's time per request.
:func:`quick_new_status` and :func:`quick_new_pipeline` accept an item only where the
general validation would find no error, and then make the very plan it would make; anything
else (a missing or mistyped field, a blank name, a color off the palette, a repeated level,
too many descriptions, a second main pipeline, a status id other than 142/143) returns
``None`` and goes the general way, which reports the errors as before.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from .plans import NewDescription, NewPipeline, NewStatus
from .rules import (
    CLOSED_STATUS_IDS,
    DEFAULT_COLOR,
    LEVELS,
    MAX_DESCRIPTION_LENGTH,
    MAX_DESCRIPTIONS,
    PALETTE,
    FieldRules,
)

_PALETTE = frozenset(PALETTE)
_LEVELS = frozenset(LEVELS)
# The plans are NamedTuples; tuple.__new__ makes one without the Python-level __new__ that
# calling the class runs (half the cost of a valid item with three descriptions).
_make = tuple.__new__


def _request_id(raw: dict[str, Any], index: int) -> str | None:
    """An item's ``request_id`` as the answer echoes it (its index when absent); ``None``
    when it is null or not a string, which the general validation reports."""
    request_id = raw.get("request_id")
    if request_id is None:
        return None if "request_id" in raw else str(index)
    return request_id if isinstance(request_id, str) else None


def quick_new_status(raw: Any, index: int, rules: FieldRules) -> NewStatus | None:
    """The plan of a valid statuses POST item (``index``: its place in the body), or
    ``None`` when the general validation must look at it."""
    if type(raw) is not dict:
        return None
    get = raw.get
    request_id = _request_id(raw, index)
    if request_id is None:
        return None
    name = get("name")
    # Blank as the general check's ``not value.strip()``, without copying the string.
    if not isinstance(name, str) or not name or name.isspace():
        return None
    limit = rules.max_name_length
    if limit is not None and len(name) > limit:
        return None
    sort = get("sort")
    if type(sort) is not int:  # bool is no int here, as in the general check
        return None
    bounds = rules.sort_range
    if bounds is not None and not bounds[0] <= sort <= bounds[1]:
        return None
    color = get("color", DEFAULT_COLOR)
    if not isinstance(color, str) or color not in _PALETTE:
        return None
    found = get("descriptions", ())
    if found == ():
        return _make(NewStatus, (name, sort, color, (), request_id, index))
    if type(found) is not list or len(found) > MAX_DESCRIPTIONS:
        return None
    descriptions = []
    seen = []  # at most three levels
    for item in found:
        if type(item) is not dict:
            return None
        level = item.get("level")
        text = item.get("description")
        if (
            not isinstance(level, str)
            or level not in _LEVELS
            or level in seen
            or not isinstance(text, str)
            or not text
            or text.isspace()
            or len(text) > MAX_DESCRIPTION_LENGTH
        ):
            return None
        seen.append(level)
        descriptions.append(_make(NewDescription, (level, text)))
    return _make(NewStatus, (name, sort, color, tuple(descriptions), request_id, index))


def _name(value: Any, rules: FieldRules) -> TypeGuard[str]:
    """``_Item.name`` would take it."""
    if not isinstance(value, str) or not value or value.isspace():
        return False
    limit = rules.max_name_length
    return limit is None or len(value) <= limit


def _sort(value: Any, rules: FieldRules) -> TypeGuard[int]:
    """``_Item.sort`` would take it."""
    if type(value) is not int:
        return False
    bounds = rules.sort_range
    return bounds is None or bounds[0] <= value <= bounds[1]


def quick_new_pipeline(
    raw: Any, index: int, rules: FieldRules, main_seen: bool
) -> NewPipeline | None:
    """The plan of a valid pipelines POST item (``main_seen``: an earlier item asked to be
    the main one), or ``None`` when the general validation must look at it."""
    if type(raw) is not dict:
        return None
    request_id = _request_id(raw, index)
    if request_id is None:
        return None
    name, sort = raw.get("name"), raw.get("sort")
    is_main, is_unsorted_on = raw.get("is_main"), raw.get("is_unsorted_on")
    if (
        not _name(name, rules)
        or not _sort(sort, rules)
        or type(is_main) is not bool
        or type(is_unsorted_on) is not bool
        or (is_main and main_seen)
    ):
        return None
    statuses: list[NewStatus] = []
    closed: dict[int, str] = {}
    if "_embedded" in raw:
        embedded = raw["_embedded"]
        if type(embedded) is not dict:
            return None
        found = embedded.get("statuses", [])
        if type(found) is not list:
            return None
        for n, item in enumerate(found):
            if type(item) is not dict:
                return None
            status_name = item.get("name")
            if not _name(status_name, rules):
                return None
            if "id" in item:
                status_id = item["id"]
                if type(status_id) is not int or status_id not in CLOSED_STATUS_IDS:
                    return None
                if status_id in closed:
                    return None
                closed[status_id] = status_name
                continue
            status_sort = item.get("sort")
            color = item.get("color", DEFAULT_COLOR)
            if not _sort(status_sort, rules) or not isinstance(color, str) or color not in _PALETTE:
                return None
            statuses.append(_make(NewStatus, (status_name, status_sort, color, (), str(n), n)))
    return NewPipeline(name, sort, is_main, is_unsorted_on, request_id, tuple(statuses), closed)
