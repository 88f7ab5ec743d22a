"""The one cattrs converter between JSON-shaped data and the SDK's classes.

Response models are structured leniently about keys (the API adds fields over time, and a
new key must not break a running integration) but strictly about types: an ``int`` is a
JSON integer (not ``true``, not ``5.7``, not ``"5"``), a ``bool`` is ``true`` or ``false``
(not ``"false"``), a ``str`` is a JSON string, a list is a JSON array, so a body of the
wrong shape is an error (``AmoClient.fetch`` raises :class:`UnexpectedResponseError`)
instead of a quietly wrong model. :func:`make_converter` with ``strict=True`` also forbids
unknown keys, which the test suite runs over every JSON example in the spec so that no
documented field is dropped silently. Input classes are unstructured to request bodies
holding only the fields the caller set.

It is cattrs' preconfigured orjson converter: bodies are read and written with orjson
(see :mod:`amo_pipelines.model._json` for why). Responses take a fast path: hand-written hooks
for the collections, pipelines and statuses check a well-formed answer's JSON types inline
and fill the frozen models' slots directly, and hand anything else to the hooks cattrs
generates (which raise, or structure the unusual, as they always did); a large answer's
status descriptions are checked at parse time and made into objects on first read
(:class:`~amo_pipelines.model.models.Deferred`). The strict converter uses the generated hooks
alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from itertools import product, repeat
from operator import itemgetter
from typing import Any

from attrs import frozen
from cattrs import Converter
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter as make_orjson_converter

from .constants import LOST_STATUS_ID, WON_STATUS_ID, DescriptionLevel, StatusColor
from .inputs import DescriptionInput, NewPipeline, NewStatus, PipelineUpdate, StatusUpdate
from .models import (
    _STATUS_TYPES,
    Deferred,
    Pipeline,
    PipelineCollection,
    PipelineEmbedded,
    PipelinesEmbedded,
    Status,
    StatusCollection,
    StatusDescription,
    StatusesEmbedded,
)


@frozen
class _Link:
    """The documented shape of a HAL link, for strict structuring only."""

    href: str


@frozen
class _Links:
    self_: _Link | None = None


# Strict scalars: a type check, then the value itself. cattrs' own hooks call int(),
# bool() and str(), which turn "false" into True, 5.7 into 5 and true into 1. The checks
# are ``type(...) is``: exact types, so bool (an int subclass) is no int.
def _int(value: Any, _: type) -> int:
    if type(value) is int:
        return value
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _bool(value: Any, _: type) -> bool:
    if value is True or value is False:
        return value
    raise TypeError(f"expected true or false, got {type(value).__name__}")


def _str(value: Any, _: type) -> str:
    if type(value) is str:
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _float(value: Any, _: type) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _structure_datetime(value: Any, _: type) -> datetime:
    # "YYYY-MM-DD HH:MM:SS"; fromisoformat takes the space separator and is fast.
    if type(value) is str:
        return datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value
    raise TypeError(f"expected a date string, got {type(value).__name__}")


def _self_href(value: Any, _: type) -> str | None:
    """``_links`` -> the URL of its ``self`` link (the only link these entities carry)."""
    if value is None:
        return None
    link = value.get("self")
    if link is None:
        return None
    href = link["href"]
    if type(href) is str:
        return href
    raise TypeError(f"expected a string href, got {type(href).__name__}")


def _optional_str(value: Any, _: type) -> str | None:
    if value is None or type(value) is str:
        return value
    raise TypeError(f"expected a string or null, got {type(value).__name__}")


def _optional_int(value: Any, _: type) -> int | None:
    if value is None or type(value) is int:
        return value
    raise TypeError(f"expected an integer or null, got {type(value).__name__}")


def _optional_datetime(value: Any, _: type) -> datetime | None:
    return None if value is None else _structure_datetime(value, datetime)


def _register_tuple_of(c: Converter, item: type, *, optional: bool = False) -> None:
    """A direct hook for ``tuple[item, ...]`` (``| None`` where ``optional``).

    cattrs' generic tuple and Optional hooks look the item's hook up again for every
    response; binding it once took a sixth off parsing a status list (strict converters
    keep the generic hooks: they carry detailed validation).
    """
    hook = c.get_structure_hook(item)
    tuple_type: Any = tuple[item, ...]  # type: ignore[valid-type]

    def structure(value: Any, _: type) -> tuple[Any, ...] | None:
        if type(value) is list:
            return tuple([hook(v, item) for v in value])
        if value is None and optional:
            return None
        raise TypeError(f"expected a list, got {type(value).__name__}")

    target = tuple_type | None if optional else tuple_type
    c.register_structure_hook_func(lambda t: t == target, structure)


def _strict_self_href(c: Converter) -> Callable[[Any, type], str | None]:
    """``_links`` checked against its documented shape (no other link, no other key)."""
    c.register_structure_hook(
        _Link, make_dict_structure_fn(_Link, c, _cattrs_forbid_extra_keys=True)
    )
    links = make_dict_structure_fn(
        _Links, c, _cattrs_forbid_extra_keys=True, self_=override(rename="self")
    )

    def structure(value: Any, _: type) -> str | None:
        if value is None:
            return None
        link = links(value, _Links).self_
        return None if link is None else link.href

    return structure


# --------------------------------------------------------------------------- the fast path
#
# Parsing a full account (10,000 statuses, 15,000 descriptions) through the generated
# hooks spent about 2.5 us per status: a hook call and a type check per field, and attrs'
# keyword __init__. The hooks below check the JSON types of a well-formed answer inline and
# fill the slots of the frozen models directly; anything off that track (a missing key, a
# wrong type, a datetime object) goes to the generated hook, which raises the same error
# as before or structures the unusual value as before. The two paths build equal models.
#
# Descriptions are checked up front, in bulk (their key order and JSON types per list,
# every date parsed), and structured on first read (models.Deferred).

_new = object.__new__
_NONE = type(None)
_DESCRIPTION_FIELDS = tuple(a.name for a in StatusDescription.__attrs_attrs__)
_DESCRIPTION_TYPES: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "account_id": (int,),
    "pipeline_id": (int,),
    "status_id": (int,),
    "level": (str,),
    "description": (str,),
    "created_at": (str, _NONE),
    "updated_at": (str, _NONE),
    "created_by": (int, _NONE),
    "updated_by": (int, _NONE),
}
_DATES_KEPT = 4096
# Up to this many descriptions in one answer are made at once (a bulk check and deferral
# only pay for more: a full pipeline of 97 custom statuses carries 291).
_MADE_AT_ONCE = 32


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    # The member descriptors' own __set__: frozen attrs classes refuse setattr, and their
    # __init__ does exactly this, field by field, after binding its arguments by keyword.
    # (Status.descriptions is wrapped by models._DeferredSlot, which keeps the member.)
    return tuple(getattr(vars(cls)[name], "slot", vars(cls)[name]).__set__ for name in names)


class _Descriptions:
    """Checks descriptions in bulk (C-level passes over all of a list's descriptions) and
    makes them on first read. The fast track wants every field present (the API sends
    them all); any other list is made at once by the generated hook, which raises on a
    wrong type as before."""

    def __init__(self, generated: Callable[[Any, type], StatusDescription]) -> None:
        assert set(_DESCRIPTION_TYPES) == set(_DESCRIPTION_FIELDS)
        self._generated = generated
        self._row = itemgetter(*_DESCRIPTION_FIELDS)  # values in field order
        self._good = frozenset(product(*(_DESCRIPTION_TYPES[n] for n in _DESCRIPTION_FIELDS)))
        self._dated = tuple(
            itemgetter(_DESCRIPTION_FIELDS.index(n)) for n in ("created_at", "updated_at")
        )
        self._dates: dict[str | None, datetime | None] = {None: None}
        self._set = _slot_setters(StatusDescription, _DESCRIPTION_FIELDS)

    def _date(self, value: str | None) -> datetime | None:
        """The date of a ``created_at`` / ``updated_at`` value, parsed once per string (the
        descriptions of one answer share few timestamps)."""
        if value is None:
            return None
        found = self._dates.get(value)
        if found is None:
            found = datetime.fromisoformat(value)  # ValueError for a string that is no date
            if len(self._dates) >= _DATES_KEPT:
                self._dates.clear()
                self._dates[None] = None
            self._dates[value] = found
        return found

    def check(self, items: list[Any]) -> bool:
        """Whether every item is a description of the documented JSON types with dates
        that parse: then :meth:`make` cannot fail on them. The fast track wants every
        field present (the API sends them all; unknown keys are welcome)."""
        try:
            rows = list(map(self._row, items))  # each item's values in field order
        except (KeyError, TypeError):  # a missing field, or an item that is no object
            return False
        if not self._good.issuperset(map(tuple, map(map, repeat(type), rows))):
            return False
        try:
            for dated in self._dated:
                for value in set(map(dated, rows)):
                    self._date(value)
        except ValueError:
            return False
        return True

    def make(self, items: list[Any]) -> tuple[StatusDescription, ...]:
        """The descriptions of checked ``items`` (see :meth:`check`)."""
        (
            set_id,
            set_account_id,
            set_pipeline_id,
            set_status_id,
            set_level,
            set_description,
            set_created_at,
            set_updated_at,
            set_created_by,
            set_updated_by,
        ) = self._set
        date, dates = self._date, self._dates
        out = []
        for row in map(self._row, items):
            (
                id_,
                account_id,
                pipeline_id,
                status_id,
                level,
                description,
                created_at,
                updated_at,
                created_by,
                updated_by,
            ) = row
            made = _new(StatusDescription)
            set_id(made, id_)
            set_account_id(made, account_id)
            set_pipeline_id(made, pipeline_id)
            set_status_id(made, status_id)
            set_level(made, level)
            set_description(made, description)
            try:  # parsed by check() already, most likely
                set_created_at(made, dates[created_at])
            except KeyError:
                set_created_at(made, date(created_at))
            try:
                set_updated_at(made, dates[updated_at])
            except KeyError:
                set_updated_at(made, date(updated_at))
            set_created_by(made, created_by)
            set_updated_by(made, updated_by)
            out.append(made)
        return tuple(out)

    def made_now(self, items: list[Any]) -> tuple[StatusDescription, ...] | None:
        """Descriptions made at once, each checked inline; None when one is off the fast
        track. For a few descriptions this is cheaper than a bulk check and a deferral."""
        good, row = self._good, self._row
        try:
            rows = list(map(row, items))
        except (KeyError, TypeError):
            return None
        for values in rows:
            if tuple(map(type, values)) not in good:
                return None
        try:
            return self.make(items)
        except ValueError:  # a date string that is no date
            return None

    def eager(self, value: Any) -> tuple[StatusDescription, ...] | None:
        """What the generated hooks make of ``descriptions`` (raising as they do)."""
        if value is None:
            return None
        if type(value) is list:
            return tuple([self._generated(v, StatusDescription) for v in value])
        raise TypeError(f"expected a list, got {type(value).__name__}")


_STATUS_FIELDS = (
    "id",
    "name",
    "sort",
    "is_editable",
    "pipeline_id",
    "color",
    "type",
    "account_id",
    "request_id",
    "self_href",
    "descriptions",
)


def _href(links: Any) -> str | bool | None:
    """``_links`` -> the self URL, None where there is none, False when off the track."""
    if links is None:
        return None
    if type(links) is not dict:
        return False
    link = links.get("self")
    if link is None:
        return None
    if type(link) is not dict:
        return False
    href = link.get("href")
    return href if type(href) is str else False


_KNOWN_TYPES = _STATUS_TYPES  # what models._status_type makes of Status.type


class _FastStatuses:
    """Statuses off a list: made inline, their descriptions checked in one go per list."""

    def __init__(
        self,
        generated: Callable[[Any, type], Status],
        description: Callable[[Any, type], StatusDescription],
    ) -> None:
        assert tuple(a.name for a in Status.__attrs_attrs__) == _STATUS_FIELDS
        self._generated = generated
        self._descriptions = _Descriptions(description)
        self._set = _slot_setters(Status, _STATUS_FIELDS)

    def one(self, d: Any, cls: type) -> Status:
        return self.many([d])[0]

    def tuple_of(self, value: Any, _: type) -> tuple[Status, ...]:
        if type(value) is list:
            return self.many(value)
        raise TypeError(f"expected a list, got {type(value).__name__}")

    def many(self, items: list[Any]) -> tuple[Status, ...]:
        (
            set_id,
            set_name,
            set_sort,
            set_is_editable,
            set_pipeline_id,
            set_color,
            set_type,
            set_account_id,
            set_request_id,
            set_self_href,
            set_descriptions,
        ) = self._set
        generated, descriptions = self._generated, self._descriptions
        known, new = _KNOWN_TYPES, _new
        out: list[Status] = []
        deferred: list[tuple[Status, list[Any]]] = []
        for d in items:
            try:
                id_ = d["id"]
                name = d["name"]
                sort = d["sort"]
                is_editable = d["is_editable"]
                pipeline_id = d["pipeline_id"]
                color = d["color"]
                type_ = d["type"]
                account_id = d["account_id"]
                get = d.get
            except (KeyError, TypeError, AttributeError):
                out.append(generated(d, Status))
                continue
            request_id = get("request_id")
            links = get("_links")
            if type(links) is dict and type(link := links.get("self")) is dict:
                href = link.get("href")
                if type(href) is not str:
                    href = False  # off the track
            else:
                href = _href(links)
            found = get("descriptions")
            if (
                type(id_) is not int
                or type(name) is not str
                or type(sort) is not int
                or (is_editable is not True and is_editable is not False)
                or type(pipeline_id) is not int
                or type(color) is not str
                or type(type_) is not int
                or type(account_id) is not int
                or (request_id is not None and type(request_id) is not str)
                or href is False
                or (found is not None and type(found) is not list)
                or type(d) is not dict
            ):
                out.append(generated(d, Status))
                continue
            status = new(Status)
            set_id(status, id_)
            set_name(status, name)
            set_sort(status, sort)
            set_is_editable(status, is_editable)
            set_pipeline_id(status, pipeline_id)
            set_color(status, color)
            set_type(status, known.get(type_, type_))
            set_account_id(status, account_id)
            set_request_id(status, request_id)
            set_self_href(status, href)
            if found:
                set_descriptions(status, Deferred(found, descriptions.make))
                deferred.append((status, found))
            else:
                set_descriptions(status, None if found is None else ())
            out.append(status)
        if deferred and not descriptions.check([item for _, found in deferred for item in found]):
            for status, found in deferred:  # which: each alone, else as generated (raising)
                if not descriptions.check(found):
                    set_descriptions(status, descriptions.eager(found))
        return tuple(out)


_PIPELINE_FIELDS = (
    "id",
    "name",
    "sort",
    "is_main",
    "is_unsorted_on",
    "is_archive",
    "account_id",
    "request_id",
    "self_href",
    "embedded",
)


def _fast_pipeline(
    generated: Callable[[Any, type], Pipeline], statuses: _FastStatuses
) -> Callable[[Any, type], Pipeline]:
    assert tuple(a.name for a in Pipeline.__attrs_attrs__) == _PIPELINE_FIELDS
    (
        set_id,
        set_name,
        set_sort,
        set_is_main,
        set_is_unsorted_on,
        set_is_archive,
        set_account_id,
        set_request_id,
        set_self_href,
        set_embedded,
    ) = _slot_setters(Pipeline, _PIPELINE_FIELDS)
    (set_statuses,) = _slot_setters(PipelineEmbedded, ("statuses",))
    no_statuses = PipelineEmbedded()

    def structure(d: Any, cls: type) -> Pipeline:
        try:
            id_ = d["id"]
            name = d["name"]
            sort = d["sort"]
            is_main = d["is_main"]
            is_unsorted_on = d["is_unsorted_on"]
            account_id = d["account_id"]
            get = d.get
        except (KeyError, TypeError, AttributeError):
            return generated(d, cls)
        is_archive = get("is_archive", False)
        request_id = get("request_id")
        href = _href(get("_links"))
        embedded = get("_embedded", no_statuses)
        if (
            type(id_) is not int
            or type(name) is not str
            or type(sort) is not int
            or (is_main is not True and is_main is not False)
            or (is_unsorted_on is not True and is_unsorted_on is not False)
            or (is_archive is not True and is_archive is not False)
            or type(account_id) is not int
            or (request_id is not None and type(request_id) is not str)
            or href is False
            or type(d) is not dict
        ):
            return generated(d, cls)
        if embedded is not no_statuses:
            if type(embedded) is not dict or len(embedded) != 1:
                return generated(d, cls)  # none, something else, or other keys too
            items = embedded.get("statuses")
            if type(items) is not list:
                return generated(d, cls)
            embedded = _new(PipelineEmbedded)
            set_statuses(embedded, statuses.many(items))
        pipeline = _new(Pipeline)
        set_id(pipeline, id_)
        set_name(pipeline, name)
        set_sort(pipeline, sort)
        set_is_main(pipeline, is_main)
        set_is_unsorted_on(pipeline, is_unsorted_on)
        set_is_archive(pipeline, is_archive)
        set_account_id(pipeline, account_id)
        set_request_id(pipeline, request_id)
        set_self_href(pipeline, href)
        set_embedded(pipeline, embedded)
        return pipeline

    return structure


def make_converter(*, strict: bool = False) -> Converter:
    """A converter for the SDK's models; ``strict`` rejects unknown keys."""
    # Detailed validation (exception groups naming every bad field) costs about a third
    # of the parse time of a pipeline; production only needs to know the body is bad.
    c = make_orjson_converter(forbid_extra_keys=strict, detailed_validation=strict)
    # Before any class hook is made: a generated hook binds the hooks of its fields.
    c.register_structure_hook(int, _int)
    c.register_structure_hook(bool, _bool)
    c.register_structure_hook(str, _str)
    c.register_structure_hook(float, _float)
    c.register_structure_hook(datetime, _structure_datetime)
    if not strict:
        # The optional scalars (18 per status list): cattrs' generic Optional dispatch was
        # the largest single cost of parsing a response.
        c.register_structure_hook(str | None, _optional_str)
        c.register_structure_hook(int | None, _optional_int)
        c.register_structure_hook(datetime | None, _optional_datetime)
    self_href = override(
        rename="_links", struct_hook=_strict_self_href(c) if strict else _self_href
    )
    # Inner classes first: a generated hook binds the hooks of its fields when it is made.
    c.register_structure_hook(
        StatusDescription,
        make_dict_structure_fn(StatusDescription, c, _cattrs_forbid_extra_keys=strict),
    )
    if not strict:
        _register_tuple_of(c, StatusDescription, optional=True)
    status = make_dict_structure_fn(
        Status, c, _cattrs_forbid_extra_keys=strict, self_href=self_href
    )
    c.register_structure_hook(Status, status)
    if not strict:
        # The hot path: a hand-written hook per model, falling back to the generated one
        # (which reports the error, or handles the unusual) for anything off its track.
        statuses = _FastStatuses(status, c.get_structure_hook(StatusDescription))
        c.register_structure_hook(Status, statuses.one)
        c.register_structure_hook_func(
            lambda t: t == tuple[Status, ...],
            statuses.tuple_of,
        )
    pipeline = make_dict_structure_fn(
        Pipeline,
        c,
        _cattrs_forbid_extra_keys=strict,
        self_href=self_href,
        embedded=override(rename="_embedded"),
    )
    c.register_structure_hook(Pipeline, pipeline)
    if not strict:
        c.register_structure_hook(Pipeline, _fast_pipeline(pipeline, statuses))
        _register_tuple_of(c, Pipeline)
    for collection, embedded, key in (
        (PipelineCollection, PipelinesEmbedded, "pipelines"),
        (StatusCollection, StatusesEmbedded, "statuses"),
    ):
        generated = make_dict_structure_fn(
            collection,
            c,
            _cattrs_forbid_extra_keys=strict,
            total_items=override(rename="_total_items"),
            self_href=self_href,
            embedded=override(rename="_embedded"),
        )
        c.register_structure_hook(collection, generated)
        if not strict:
            items = c.get_structure_hook(_ITEMS[collection])
            c.register_structure_hook(
                collection, _fast_collection(collection, embedded, key, items, generated)
            )
    _register_inputs(c)
    return c


_ITEMS: dict[type, Any] = {
    PipelineCollection: tuple[Pipeline, ...],
    StatusCollection: tuple[Status, ...],
}


def _fast_collection(
    cls: type[Any],
    embedded_cls: type[Any],
    key: str,
    items: Callable[[Any, Any], tuple[Any, ...]],
    generated: Callable[[Any, type], Any],
) -> Callable[[Any, type], Any]:
    """A collection response: ``_embedded`` holding exactly ``key``, a list."""
    set_embedded, set_total_items, set_self_href = _slot_setters(
        cls, ("embedded", "total_items", "self_href")
    )
    (set_items,) = _slot_setters(embedded_cls, (key,))
    assert tuple(a.name for a in cls.__attrs_attrs__) == ("embedded", "total_items", "self_href")
    item_type = _ITEMS[cls]

    def structure(d: Any, _: type) -> Any:
        if type(d) is not dict:
            return generated(d, cls)
        get = d.get
        embedded = get("_embedded")
        total = get("_total_items")
        href = _href(get("_links"))
        if (
            type(embedded) is not dict
            or len(embedded) != 1
            or type(found := embedded.get(key)) is not list
            or (total is not None and type(total) is not int)
            or href is False
        ):
            return generated(d, cls)
        inner = _new(embedded_cls)
        set_items(inner, items(found, item_type))
        out = _new(cls)
        set_embedded(out, inner)
        set_total_items(out, total)
        set_self_href(out, href)
        return out

    return structure


def _register_inputs(c: Converter) -> None:
    for enum in (StatusColor, DescriptionLevel):
        c.register_unstructure_hook(enum, lambda e: e.value)
    for cls in (DescriptionInput, PipelineUpdate, StatusUpdate):
        c.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, c, _cattrs_omit_if_default=True)
        )
    c.register_unstructure_hook(
        NewStatus, make_dict_unstructure_fn(NewStatus, c, _cattrs_omit_if_default=True)
    )
    new_pipeline = make_dict_unstructure_fn(
        NewPipeline,
        c,
        _cattrs_omit_if_default=True,
        is_main=override(omit_if_default=False),
        is_unsorted_on=override(omit_if_default=False),
        statuses=override(omit=True),
        won_status_name=override(omit=True),
        lost_status_name=override(omit=True),
    )

    def unstructure_new_pipeline(pipeline: NewPipeline) -> dict[str, Any]:
        body = new_pipeline(pipeline)
        # The caller's statuses in the caller's order (a system one as {"id", "name"}, like
        # the documented example), then names given as won_status_name / lost_status_name.
        statuses: list[dict[str, Any]] = [
            {"id": s.id, "name": s.name} if s.is_system else c.unstructure(s)
            for s in pipeline.statuses
        ]
        statuses += [
            {"id": status_id, "name": name}
            for status_id, name in (
                (WON_STATUS_ID, pipeline.won_status_name),
                (LOST_STATUS_ID, pipeline.lost_status_name),
            )
            if name is not None
        ]
        if statuses:
            body["_embedded"] = {"statuses": statuses}
        return body

    c.register_unstructure_hook(NewPipeline, unstructure_new_pipeline)


converter = make_converter()
"""The SDK's converter: lenient on unknown response keys."""
