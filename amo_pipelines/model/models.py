"""Response models: what the API returns, frozen and typed.

Field names follow the API's JSON. ``_embedded`` is kept as a small nested class so that
one generated cattrs hook per class maps it. ``_links`` of these entities holds a single
link, ``self``; its URL is kept as ``self_href`` (two objects per status for one string
cost a fifth of the parse time). Strict structuring in the tests proves that no
documented key is dropped, ``_links`` included.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import attrs
from attrs import field, frozen

from .constants import LOST_STATUS_ID, WON_STATUS_ID, StatusType

_STATUS_TYPES = {t.value: t for t in StatusType}


def _status_type(value: int) -> int:
    # Keep unknown future types as plain ints instead of failing the whole response.
    return _STATUS_TYPES.get(value, value)


class _Model:
    """The models' base: it holds the weak reference slot, so that a model's own slots
    follow it directly. A plain class of the same slots on this base then has the model's
    layout, which lets the converter fill such an object with ordinary (fast) attribute
    stores and switch its class to the model's (see :func:`builder`): CPython allows
    ``__class__`` assignment between classes that add the same slots to the same base,
    and refuses it where ``__weakref__`` comes after the fields (where attrs puts it)."""

    __slots__ = ("__weakref__",)


@frozen(kw_only=True)
class StatusDescription(_Model):
    """A hint shown to users of one level while a lead sits in a status."""

    id: int
    account_id: int
    pipeline_id: int
    status_id: int
    level: str
    """One of :class:`DescriptionLevel` (a ``str`` enum, so ``==`` works both ways)."""
    description: str
    created_at: datetime | None = None
    """Account-local time as the API gives it (``YYYY-MM-DD HH:MM:SS``, no zone)."""
    updated_at: datetime | None = None
    created_by: int | None = None
    """User id; 0 means the API."""
    updated_by: int | None = None
    """User id; 0 means the API, ``None`` means never edited."""


@frozen(kw_only=True)
class Status(_Model):
    """A stage of a pipeline."""

    id: int
    name: str
    sort: int
    is_editable: bool
    pipeline_id: int
    color: str
    """Usually a palette color. System statuses, and custom statuses made before the
    current palette (older accounts, the API pages' own examples), may carry others."""
    type: int = field(converter=_status_type)
    """:class:`StatusType` when known."""
    account_id: int
    request_id: str | None = None
    """Echoed back by create and update calls only."""
    self_href: str | None = field(default=None, repr=False)
    """``_links.self.href``: the status's own API URL."""
    descriptions: tuple[StatusDescription, ...] | None = None
    """``None`` when descriptions were not requested (``with_descriptions=False``).

    A response's descriptions are all checked when it is parsed (a wrong JSON type or a
    date that is no date is an :class:`~amo_pipelines.UnexpectedResponseError` from the
    call, never an error when read). Those of a response with more than 32 are kept as
    checked values and made into :class:`StatusDescription` objects when first read (see
    :class:`Deferred`); equality, hashing, ``repr``, pickling and ``attrs.evolve`` read
    them like any other field."""

    @property
    def is_incoming(self) -> bool:
        return self.type == StatusType.INCOMING

    @property
    def is_won(self) -> bool:
        return self.id == WON_STATUS_ID

    @property
    def is_lost(self) -> bool:
        return self.id == LOST_STATUS_ID

    @property
    def is_system(self) -> bool:
        return self.is_incoming or self.is_won or self.is_lost


@frozen(kw_only=True)
class PipelineEmbedded(_Model):
    statuses: tuple[Status, ...] = ()


@frozen(kw_only=True)
class Pipeline(_Model):
    """A sales pipeline with its statuses (ordered as the API returns them)."""

    id: int
    name: str
    sort: int
    is_main: bool
    is_unsorted_on: bool
    is_archive: bool = False
    """Absent from create responses; a new pipeline is never archived."""
    account_id: int
    request_id: str | None = None
    self_href: str | None = field(default=None, repr=False)
    """``_links.self.href``: the pipeline's own API URL."""
    embedded: PipelineEmbedded = field(factory=PipelineEmbedded, repr=False)

    @property
    def statuses(self) -> tuple[Status, ...]:
        return self.embedded.statuses

    @property
    def won(self) -> Status | None:
        return self.status_by_id(WON_STATUS_ID)

    @property
    def lost(self) -> Status | None:
        return self.status_by_id(LOST_STATUS_ID)

    @property
    def incoming(self) -> Status | None:
        """The incoming-leads status, or ``None`` when the response leaves it out.

        The API leaves it out while the pipeline's incoming leads are off
        (``is_unsorted_on`` false; see the PATCH examples on both API pages): the status
        still exists and is listed again once they are turned back on. ``won``, ``lost``,
        ``custom_statuses`` and the lookups work the same either way.
        """
        return next((s for s in self.statuses if s.is_incoming), None)

    @property
    def custom_statuses(self) -> tuple[Status, ...]:
        """The statuses a user created: everything but incoming, won and lost."""
        return tuple(s for s in self.statuses if not s.is_system)

    def status_by_id(self, status_id: int) -> Status | None:
        return next((s for s in self.statuses if s.id == status_id), None)

    def status_by_name(self, name: str) -> Status | None:
        """The first status with exactly this name (names are not unique in amoCRM)."""
        return next((s for s in self.statuses if s.name == name), None)

    def __repr__(self) -> str:
        return (
            f"Pipeline(id={self.id}, name={self.name!r}, is_main={self.is_main}, "
            f"statuses={len(self.statuses)})"
        )


@frozen(kw_only=True)
class PipelinesEmbedded(_Model):
    pipelines: tuple[Pipeline, ...] = ()


@frozen(kw_only=True)
class PipelineCollection(_Model):
    """A collection response of pipelines (list and create)."""

    embedded: PipelinesEmbedded
    """Required: a collection without ``_embedded`` is not a collection."""
    total_items: int | None = None
    self_href: str | None = None
    """``_links.self.href``: the collection's URL, where the response gives one."""


@frozen(kw_only=True)
class StatusesEmbedded(_Model):
    statuses: tuple[Status, ...] = ()


@frozen(kw_only=True)
class StatusCollection(_Model):
    """A collection response of statuses (list and create)."""

    embedded: StatusesEmbedded
    total_items: int | None = None
    self_href: str | None = None
    """``_links.self.href``: the collection's URL, where the response gives one."""


class Deferred:
    """A field value kept as checked data until first read, then structured once.

    Parsing a large account spends most of its time making objects nobody may read (a
    full account holds about 15,000 status descriptions with two dates each): the
    converter checks the data and leaves a ``Deferred`` in the slot instead, and the
    field's descriptor (:class:`_DeferredSlot`) replaces it with the structured value on
    first read. ``structure`` must not fail on ``data`` (the converter checked it)."""

    __slots__ = ("data", "structure")

    def __init__(self, data: Any, structure: Callable[[Any], Any]) -> None:
        self.data = data
        self.structure = structure


class _DeferredSlot:
    """Wraps a slotted class's member descriptor: a :class:`Deferred` found there is
    structured and stored back on first read. Writes (``__init__``, unpickling) go to the
    slot as they are."""

    __slots__ = ("_read", "slot")

    def __init__(self, slot: Any) -> None:
        self.slot = slot
        self._read = slot.__get__  # bound once: every read of the field comes here

    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:
            return self.slot
        value = self._read(obj, owner)
        if type(value) is Deferred:
            value = value.structure(value.data)
            self.slot.__set__(obj, value)
        return value

    def __set__(self, obj: object, value: Any) -> None:
        self.slot.__set__(obj, value)

    def __delete__(self, obj: object) -> None:
        self.slot.__delete__(obj)


_DESCRIPTIONS = _DeferredSlot(Status.__dict__["descriptions"])
setattr(Status, "descriptions", _DESCRIPTIONS)  # noqa: B010
_FIELDS = tuple(a.name for a in StatusDescription.__attrs_attrs__)
_ID, _LEVEL, _TEXT = (_FIELDS.index(n) for n in ("id", "level", "description"))


def description_values(status: Status) -> list[tuple[int, Any, str]] | None:
    """``(id, level, text)`` of each of ``status``'s descriptions (``None``: the status was
    read without them), without making the description objects a large answer keeps as
    checked rows until first read: comparing many statuses (a funnels plan) reads only
    these three fields."""
    raw = _DESCRIPTIONS.slot.__get__(status, Status)
    if type(raw) is Deferred:
        rows = raw.data
        if all(type(row) is tuple and len(row) == len(_FIELDS) for row in rows):
            return [(row[_ID], row[_LEVEL], row[_TEXT]) for row in rows]
        raw = status.descriptions  # kept in another shape: make them
    if raw is None:
        return None
    return [(d.id, d.level, d.description) for d in raw]


def builder(cls: type[Any]) -> type[Any]:
    """A plain slotted class with ``cls``'s layout, for the converter's hot paths.

    A frozen model refuses attribute stores, so its ``__init__`` sets each slot through
    ``object.__setattr__`` (or, hand-written, the slot's ``__set__``): about 50 ns a field.
    An object of this class takes ordinary stores (about 10 ns), then becomes a ``cls``
    by ``obj.__class__ = cls``: 0.2 us for a status instead of 0.56. The object is never
    seen before its class is switched. Raises ``TypeError`` here, at import, where the
    interpreter does not allow the switch."""
    names = tuple(a.name for a in attrs.fields(cls))
    made = type(f"_{cls.__name__}Builder", (_Model,), {"__slots__": names})
    probe: Any = object.__new__(made)
    probe.__class__ = cls
    return made


_Entity = TypeVar("_Entity", Pipeline, Status)


def with_request_id(entity: _Entity, request_id: str | None) -> _Entity:
    """A copy of ``entity`` with another ``request_id``, slot by slot.

    Unlike ``attrs.evolve`` it reads no field through its descriptor, so descriptions
    still :class:`Deferred` stay deferred (a batch create of statuses shows the caller's
    own request ids on every result; evolve would build every description to do it).
    """
    cls = type(entity)
    clone = object.__new__(cls)
    for field_ in attrs.fields(cls):
        descriptor = cls.__dict__[field_.name]
        slot = descriptor.slot if isinstance(descriptor, _DeferredSlot) else descriptor
        slot.__set__(clone, slot.__get__(entity, cls))
    cls.__dict__["request_id"].__set__(clone, request_id)
    return clone
