"""The one cattrs converter between JSON-shaped data and the SDK's classes.

Response models are structured leniently (the API adds fields over time, and a new key must
not break a running integration); :func:`make_converter` with ``strict=True`` forbids
unknown keys, which the test suite runs over every JSON example in the spec so that no
documented field is dropped silently. Input classes are unstructured to request bodies
holding only the fields the caller set.

It is cattrs' preconfigured orjson converter: bodies are read and written with orjson
(see :mod:`amo_pipelines._json` for why).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cattrs import Converter
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter as make_orjson_converter

from .constants import LOST_STATUS_ID, WON_STATUS_ID, DescriptionLevel, StatusColor
from .inputs import DescriptionInput, NewPipeline, NewStatus, PipelineUpdate, StatusUpdate
from .models import (
    Link,
    Links,
    Pipeline,
    PipelineCollection,
    Status,
    StatusCollection,
    StatusDescription,
)


def _structure_datetime(value: Any, _: type) -> datetime:
    # "YYYY-MM-DD HH:MM:SS"; fromisoformat takes the space separator and is fast.
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _structure_links(value: Any, _: type) -> Links | None:
    if value is None:
        return None
    link = value.get("self")
    return Links(self_=None if link is None else Link(href=link["href"]))


def _optional_str(value: Any, _: type) -> str | None:
    return None if value is None else str(value)


def _optional_int(value: Any, _: type) -> int | None:
    return None if value is None else int(value)


def _optional_datetime(value: Any, _: type) -> datetime | None:
    return None if value is None else _structure_datetime(value, datetime)


def make_converter(*, strict: bool = False) -> Converter:
    """A converter for the SDK's models; ``strict`` rejects unknown keys."""
    # Detailed validation (exception groups naming every bad field) costs about a third
    # of the parse time of a pipeline; production only needs to know the body is bad.
    c = make_orjson_converter(forbid_extra_keys=strict, detailed_validation=strict)
    c.register_structure_hook(datetime, _structure_datetime)
    if strict:
        c.register_structure_hook(
            Links,
            make_dict_structure_fn(
                Links, c, _cattrs_forbid_extra_keys=strict, self_=override(rename="self")
            ),
        )
    else:
        # Every status carries _links; a direct hook skips two generic dispatches each.
        c.register_structure_hook(Links | None, _structure_links)
        # Likewise the optional scalars (18 per status list): cattrs' generic Optional
        # dispatch was the largest single cost of parsing a response.
        c.register_structure_hook(str | None, _optional_str)
        c.register_structure_hook(int | None, _optional_int)
        c.register_structure_hook(datetime | None, _optional_datetime)
    c.register_structure_hook(
        Status,
        make_dict_structure_fn(
            Status, c, _cattrs_forbid_extra_keys=strict, links=override(rename="_links")
        ),
    )
    c.register_structure_hook(
        Pipeline,
        make_dict_structure_fn(
            Pipeline,
            c,
            _cattrs_forbid_extra_keys=strict,
            links=override(rename="_links"),
            embedded=override(rename="_embedded"),
        ),
    )
    for collection in (PipelineCollection, StatusCollection):
        c.register_structure_hook(
            collection,
            make_dict_structure_fn(
                collection,
                c,
                _cattrs_forbid_extra_keys=strict,
                total_items=override(rename="_total_items"),
                links=override(rename="_links"),
                embedded=override(rename="_embedded"),
            ),
        )
    c.register_structure_hook(
        StatusDescription,
        make_dict_structure_fn(StatusDescription, c, _cattrs_forbid_extra_keys=strict),
    )
    _register_inputs(c)
    return c


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
