"""The converter's fast path: hand-written hooks for the response models.

Parsing a full account (10,000 statuses, 15,000 descriptions) through the generated hooks
spent about 2.5 us per status: a hook call and a type check per field, and attrs' keyword
``__init__``. These hooks check the JSON types of a well-formed answer inline and build
each model in a plain class of its layout (:func:`~amo_pipelines.model.models.builder`);
anything off that track (a missing key, a wrong type, a datetime object) goes to the
generated hook, which raises the same error as before or structures the unusual value as
before. The two paths build equal models (the property tests compare them).

Descriptions are checked for a whole answer at once (:mod:`._descriptions`); an answer
with more than :data:`MADE_AT_ONCE` of them keeps them as checked rows until first read
(:class:`~amo_pipelines.model.models.Deferred`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from ._descriptions import Descriptions
from ._keys import Keys
from .models import (
    _STATUS_TYPES,
    Deferred,
    Pipeline,
    PipelineEmbedded,
    Status,
    StatusDescription,
    builder,
)

_new = object.__new__
# Up to this many descriptions in one answer are made at once: deferring only pays for
# more (a full pipeline of 97 custom statuses carries 291). An answer of a few statuses
# (a get, a small pipeline's list) then pays no Deferred and no descriptor on first read.
MADE_AT_ONCE = 32

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
# Looked up with .get, in the status and its _links.
_OPTIONAL = ("request_id", "_links", "descriptions", "self", "href")
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


def href(links: Any) -> str | bool | None:
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
    found = link.get("href")
    return found if type(found) is str else False


class FastStatuses:
    """Statuses off a list: made inline, their descriptions checked in one go per list."""

    def __init__(
        self,
        generated: Callable[[Any, type], Status],
        description: Callable[[Any, type], StatusDescription],
    ) -> None:
        assert tuple(a.name for a in Status.__attrs_attrs__) == _STATUS_FIELDS
        self._generated = generated
        self._descriptions = Descriptions(description)
        self._builder = builder(Status)
        self._keys = Keys((*_STATUS_FIELDS[:8], *_OPTIONAL), 8)
        self._lookups = self._lookup()

    def _lookup(self) -> tuple[Any, ...]:
        key = self._keys.key
        return (self._keys.getter, *map(key, _OPTIONAL))

    def _follow(self, first: Any) -> tuple[Any, ...]:
        """The lookups, following the key objects of an answer's first status (and of its
        links, where the status's own keys had changed: they come from one cache)."""
        keys = self._keys
        if keys.follow(first):
            if type(links := first.get("_links")) is dict:
                keys.follow(links)
                keys.follow(links.get("self"))
            self._lookups = self._lookup()
        return self._lookups

    def one(self, d: Any, cls: type) -> Status:
        return self.many([d])[0]

    def tuple_of(self, value: Any, _: type) -> tuple[Status, ...]:
        if type(value) is list:
            return self.many(value)
        raise TypeError(f"expected a list, got {type(value).__name__}")

    def many(self, items: list[Any]) -> tuple[Status, ...]:
        generated, made_class, known = self._generated, Status, _STATUS_TYPES
        new, build = _new, self._builder
        out: list[Any] = []
        described: list[tuple[Any, list[Any]]] = []  # built, not yet a Status
        if not items:
            return ()
        required, k_request_id, k_links, k_descriptions, k_self, k_href = self._follow(items[0])
        for d in items:
            if type(d) is not dict:
                out.append(generated(d, Status))
                continue
            try:
                id_, name, sort, is_editable, pipeline_id, color, type_, account_id = required(d)
            except KeyError:
                out.append(generated(d, Status))
                continue
            request_id = d.get(k_request_id)
            links = d.get(k_links)
            if type(links) is dict and type(link := links.get(k_self)) is dict:
                self_href = link.get(k_href)
                if type(self_href) is not str:
                    self_href = False  # off the track
            else:
                self_href = href(links)
            found = d.get(k_descriptions)
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
                or self_href is False
                or (found is not None and type(found) is not list)
            ):
                out.append(generated(d, Status))
                continue
            status = new(build)
            status.id = id_
            status.name = name
            status.sort = sort
            status.is_editable = is_editable
            status.pipeline_id = pipeline_id
            status.color = color
            status.type = known.get(type_, type_)
            status.account_id = account_id
            status.request_id = request_id
            status.self_href = self_href
            if found:
                described.append((status, found))  # its class is switched once they are set
            else:
                status.descriptions = None if found is None else ()
                status.__class__ = made_class
            out.append(status)
        if described:
            self._describe(described)
        return tuple(out)

    def _describe(self, described: list[tuple[Any, list[Any]]]) -> None:
        """Sets the descriptions of the statuses built with some, and makes them Statuses."""
        descriptions, made_class = self._descriptions, Status
        checked = descriptions.rows([item for _, found in described for item in found])
        if checked is None:  # which: each alone, else as generated (raising)
            for status, found in described:
                alone = descriptions.rows(found)
                if alone is None:
                    status.descriptions = descriptions.eager(found)
                else:
                    status.descriptions = descriptions.make(alone[1], alone[0])
                status.__class__ = made_class
            return
        rows, dates = checked
        at = 0
        if len(rows) <= MADE_AT_ONCE:
            make = descriptions.make
            for status, found in described:
                end = at + len(found)
                status.descriptions = make(dates, rows[at:end])
                status.__class__ = made_class
                at = end
            return
        structure = partial(descriptions.make, dates)  # one for the answer
        for status, found in described:
            end = at + len(found)
            deferred = _new(Deferred)  # its __init__ call took a tenth of the loop
            deferred.data = rows[at:end]
            deferred.structure = structure
            status.descriptions = deferred
            status.__class__ = made_class
            at = end


def fast_pipeline(
    generated: Callable[[Any, type], Pipeline], statuses: FastStatuses
) -> Callable[[Any, type], Pipeline]:
    assert tuple(a.name for a in Pipeline.__attrs_attrs__) == _PIPELINE_FIELDS
    build, embedded_build = builder(Pipeline), builder(PipelineEmbedded)
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
        self_href = href(get("_links"))
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
            or self_href is False
            or type(d) is not dict
        ):
            return generated(d, cls)
        if embedded is not no_statuses:
            if type(embedded) is not dict or len(embedded) != 1:
                return generated(d, cls)  # none, something else, or other keys too
            items = embedded.get("statuses")
            if type(items) is not list:
                return generated(d, cls)
            embedded = _new(embedded_build)
            embedded.statuses = statuses.many(items)
            embedded.__class__ = PipelineEmbedded
        pipeline = _new(build)
        pipeline.id = id_
        pipeline.name = name
        pipeline.sort = sort
        pipeline.is_main = is_main
        pipeline.is_unsorted_on = is_unsorted_on
        pipeline.is_archive = is_archive
        pipeline.account_id = account_id
        pipeline.request_id = request_id
        pipeline.self_href = self_href
        pipeline.embedded = embedded
        pipeline.__class__ = Pipeline
        made: Pipeline = pipeline
        return made

    return structure


def fast_collection(
    cls: type[Any],
    embedded_cls: type[Any],
    key: str,
    items: Callable[[Any], tuple[Any, ...]],
    generated: Callable[[Any, type], Any],
) -> Callable[[Any, type], Any]:
    """A collection response: ``_embedded`` holding exactly ``key``, a list."""
    assert tuple(a.name for a in cls.__attrs_attrs__) == ("embedded", "total_items", "self_href")
    assert tuple(a.name for a in embedded_cls.__attrs_attrs__) == (key,)
    build, embedded_build = builder(cls), builder(embedded_cls)

    def structure(d: Any, _: type) -> Any:
        if type(d) is not dict:
            return generated(d, cls)
        get = d.get
        embedded = get("_embedded")
        total = get("_total_items")
        self_href = href(get("_links"))
        if (
            type(embedded) is not dict
            or len(embedded) != 1
            or type(found := embedded.get(key)) is not list
            or (total is not None and type(total) is not int)
            or self_href is False
        ):
            return generated(d, cls)
        inner = _new(embedded_build)
        setattr(inner, key, items(found))
        inner.__class__ = embedded_cls
        out = _new(build)
        out.embedded = inner
        out.total_items = total
        out.self_href = self_href
        out.__class__ = cls
        return out

    return structure
