"""Validated requests (plans) and validation errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from attrs import frozen


@frozen
class FieldError:
    code: str
    path: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "path": self.path, "detail": self.detail}


@frozen
class ItemErrors:
    request_id: str
    errors: tuple[FieldError, ...]


class ValidationFailed(Exception):
    """The request holds at least one invalid item."""

    def __init__(self, items: list[ItemErrors]) -> None:
        super().__init__(f"{len(items)} invalid item(s)")
        self.items = items


# Tuples rather than attrs classes: a copy's statuses POST makes 97 statuses and 291
# descriptions of them, and a frozen attrs instance costs several times a tuple's making.
class NewDescription(NamedTuple):
    level: str
    text: str


class NewStatus(NamedTuple):
    name: str
    sort: int
    color: str
    descriptions: tuple[NewDescription, ...]
    request_id: str
    position: int
    """Its place in the request body (orders ties of sort)."""


@frozen
class NewPipeline:
    name: str
    sort: int
    is_main: bool
    is_unsorted_on: bool
    request_id: str
    statuses: tuple[NewStatus, ...]
    closed_names: Mapping[int, str]
    """Names given for 142 and 143."""


@frozen
class PipelinePatch:
    name: str | None
    sort: int | None
    is_main: bool | None
    is_unsorted_on: bool | None
    request_id: str


@frozen
class DescriptionChange:
    id: int | None
    level: str
    text: str | None
    """None with an id: delete that description."""


@frozen
class StatusPatch:
    name: str | None
    sort: int | None
    color: str | None
    descriptions: tuple[DescriptionChange, ...] | None
    request_id: str
