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
(see :mod:`amo_pipelines.model._json` for why). Responses take a fast path
(:mod:`amo_pipelines.model._fast`): hand-written hooks for the collections, pipelines and
statuses check a well-formed answer's JSON types and build the models directly, and hand
anything else to the hooks this module generates (which raise, or structure the unusual,
as they always did); an answer's status descriptions are all checked at parse time
(:mod:`amo_pipelines.model._descriptions`), and those of a large answer made into objects
on first read (:class:`~amo_pipelines.model.models.Deferred`). The strict converter uses
the generated hooks alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from attrs import frozen
from cattrs import Converter
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter as make_orjson_converter

from ._bodies import description_body, new_status_body
from ._fast import FastStatuses, fast_collection, fast_pipeline
from .constants import LOST_STATUS_ID, WON_STATUS_ID, DescriptionLevel, StatusColor
from .inputs import DescriptionInput, NewPipeline, NewStatus, PipelineUpdate, StatusUpdate
from .models import (
    Pipeline,
    PipelineCollection,
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
        statuses = FastStatuses(status, c.get_structure_hook(StatusDescription))
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
        fast = fast_pipeline(pipeline, statuses)
        c.register_structure_hook(Pipeline, fast)
        _register_tuple_of(c, Pipeline)
        items: dict[type, Callable[[Any], tuple[Any, ...]]] = {
            PipelineCollection: lambda found: tuple([fast(p, Pipeline) for p in found]),
            StatusCollection: statuses.many,
        }
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
            c.register_structure_hook(
                collection, fast_collection(collection, embedded, key, items[collection], generated)
            )
    _register_inputs(c)
    return c


def _register_inputs(c: Converter) -> None:
    for enum in (StatusColor, DescriptionLevel):
        c.register_unstructure_hook(enum, lambda e: e.value)
    # Written by hand for speed (see _bodies; the generated ones are their reference), and
    # first: the hooks generated below look up the one for their descriptions when made.
    c.register_unstructure_hook(DescriptionInput, description_body)
    c.register_unstructure_hook(NewStatus, new_status_body)
    for cls in (PipelineUpdate, StatusUpdate):
        c.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, c, _cattrs_omit_if_default=True)
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
