"""The converter's fast path and deferred descriptions (issue 15).

Statuses and pipelines of a well-formed answer are built by hand-written hooks, and the
descriptions of a large answer are checked up front and made on first read. Both must
give exactly the models the generated cattrs hooks give, and fail exactly where those
fail: a wrongly typed description, or a date string that is no date, is an
UnexpectedResponseError from the call, never later.
"""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amo_pipelines import AmoClient, Pipeline, Status, StatusDescription, UnexpectedResponseError
from amo_pipelines.model.converter import converter, make_converter
from amo_pipelines.model.models import (
    Deferred,
    PipelineCollection,
    StatusCollection,
    description_values,
    with_request_id,
)
from amo_pipelines.testing import MockTransport, json_response

REFERENCE = make_converter(strict=True)  # the generated hooks only, every key known
SLOT = vars(Status)["descriptions"].slot  # the member under models._DeferredSlot


def description(i: int, status_id: int, **changes: Any) -> dict[str, Any]:
    return {
        "id": i,
        "account_id": 1,
        "pipeline_id": 7,
        "status_id": status_id,
        "level": ("newbie", "candidate", "master")[i % 3],
        "description": f"d{i}",
        "created_at": "2024-01-02 03:04:05",
        "updated_at": None if i % 2 else f"2024-02-{1 + i % 28:02d} 10:00:00",
        "created_by": 0,
        "updated_by": None if i % 2 else 5,
        **changes,
    }


def status(sid: int, descriptions: list[dict[str, Any]] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": sid,
        "name": f"S{sid}",
        "sort": sid,
        "is_editable": sid not in (142, 143),
        "pipeline_id": 7,
        "color": "#fffeb2",
        "type": 1 if sid == 1 else 0,
        "account_id": 1,
        "_links": {
            "self": {"href": f"https://example.amocrm.ru/api/v4/leads/pipelines/7/statuses/{sid}"}
        },
    }
    if descriptions is not None:
        body["descriptions"] = descriptions
    return body


def status_list(statuses: int, per_status: int) -> dict[str, Any]:
    """A statuses list with descriptions: deferred past models' eager limit (32)."""
    items = [
        status(100 + s, [description(s * 10 + d, 100 + s) for d in range(per_status)])
        for s in range(statuses)
    ]
    return {
        "_total_items": len(items),
        "_links": {"self": {"href": "https://example.amocrm.ru/api/v4/leads/pipelines/7/statuses"}},
        "_embedded": {"statuses": items},
    }


BIG = status_list(20, 3)  # 60 descriptions: deferred
SMALL = status_list(2, 3)  # 6: made at once


@pytest.mark.parametrize("body", [BIG, SMALL], ids=["deferred", "at once"])
def test_the_fast_path_builds_what_the_generated_hooks_build(body: dict[str, Any]) -> None:
    fast = converter.structure(body, StatusCollection)
    assert fast == REFERENCE.structure(body, StatusCollection)
    assert hash(fast) == hash(REFERENCE.structure(body, StatusCollection))
    assert repr(fast) == repr(REFERENCE.structure(body, StatusCollection))
    for made in fast.embedded.statuses:
        assert made.descriptions is not None
        assert all(type(d) is StatusDescription for d in made.descriptions)


def test_descriptions_of_a_large_answer_are_made_on_first_read() -> None:
    page = converter.structure(BIG, StatusCollection)
    first = page.embedded.statuses[0]
    held = SLOT.__get__(first, Status)
    assert type(held) is Deferred
    made = first.descriptions
    assert made is not None and len(made) == 3
    assert made[0].created_at is not None and made[0].created_at.year == 2024
    assert SLOT.__get__(first, Status) is made  # stored back: made once
    assert first.descriptions is made


def test_description_values_read_deferred_rows_without_making_them() -> None:
    page = converter.structure(BIG, StatusCollection)
    for status in page.embedded.statuses:
        values = description_values(status)
        assert type(SLOT.__get__(status, Status)) is Deferred  # still not made
        made = status.descriptions
        assert made is not None
        assert values == [(d.id, d.level, d.description) for d in made]
        assert description_values(status) == values  # made ones read the same
    small = converter.structure(BIG["_embedded"]["statuses"][0], Status)
    assert description_values(small) == [
        (d.id, d.level, d.description) for d in small.descriptions or ()
    ]
    without = {k: v for k, v in BIG["_embedded"]["statuses"][0].items() if k != "descriptions"}
    bare = converter.structure(without, Status)
    assert bare.descriptions is None and description_values(bare) is None


def test_a_deferred_status_reads_like_any_other() -> None:
    reference = REFERENCE.structure(BIG, StatusCollection).embedded.statuses
    for read in (
        lambda s: s,
        lambda s: pickle.loads(pickle.dumps(s)),
        lambda s: attrs.evolve(s, name="x").descriptions,
        attrs.asdict,
        hash,
        repr,
    ):
        fast = converter.structure(BIG, StatusCollection).embedded.statuses
        copied = [read(s) for s in fast]
        assert copied == [read(s) for s in reference]


def test_a_copy_with_another_request_id_keeps_descriptions_deferred() -> None:
    reference = REFERENCE.structure(BIG, StatusCollection).embedded.statuses
    for made, expected in zip(
        converter.structure(BIG, StatusCollection).embedded.statuses, reference, strict=True
    ):
        copy = with_request_id(made, "mine")
        assert type(SLOT.__get__(copy, Status)) is Deferred  # nothing was built to copy it
        assert copy == attrs.evolve(expected, request_id="mine")
        assert with_request_id(copy, expected.request_id) == expected
    pipeline = converter.structure(
        {
            "id": 7,
            "name": "P",
            "sort": 1,
            "is_main": True,
            "is_unsorted_on": True,
            "account_id": 1,
            "_embedded": {"statuses": [status(sid, None) for sid in (1, 142, 143)]},
        },
        Pipeline,
    )
    assert with_request_id(pipeline, "p") == attrs.evolve(pipeline, request_id="p")


def test_descriptions_can_still_be_given_to_the_constructor() -> None:
    made = REFERENCE.structure(description(1, 100), StatusDescription)
    s = Status(
        id=1,
        name="n",
        sort=1,
        is_editable=True,
        pipeline_id=7,
        color="#fff",
        type=0,
        account_id=1,
        descriptions=(made,),
    )
    assert s.descriptions == (made,)
    assert Status.descriptions is SLOT  # the class attribute still reads as the slot


WRONG = {
    "created_by 1.5": {"created_by": 1.5},
    "created_at 0": {"created_at": 0},
    "created_at not a date": {"created_at": "yesterday"},
    "updated_at not a date": {"updated_at": "2024-13-45 99:00:00"},
    "level 1": {"level": 1},
    "id '5'": {"id": "5"},
    "id true": {"id": True},
    "description null": {"description": None},
}


@pytest.mark.parametrize("size", [(20, 3), (2, 3)], ids=["deferred", "at once"])
@pytest.mark.parametrize("changes", WRONG.values(), ids=WRONG.keys())
async def test_a_wrong_description_fails_the_call_not_the_read(
    amo: AmoClient, transport: MockTransport, changes: dict[str, Any], size: tuple[int, int]
) -> None:
    body = status_list(*size)
    body["_embedded"]["statuses"][-1]["descriptions"][-1].update(changes)
    transport.add(json_response(body))
    with pytest.raises(UnexpectedResponseError) as info:
        await amo.statuses.list(7, with_descriptions=True)
    assert "not a StatusCollection" in str(info.value)


async def test_a_missing_optional_field_or_an_unknown_key_still_parses(
    amo: AmoClient, transport: MockTransport
) -> None:
    body = status_list(20, 3)
    for s in body["_embedded"]["statuses"][:5]:
        del s["descriptions"][0]["updated_by"]  # off the fast track: the generated hook
        s["descriptions"][1]["a_future_field"] = [1, {"x": None}]
    transport.add(json_response(body))
    listed = await amo.statuses.list(7, with_descriptions=True)
    assert listed == list(REFERENCE.structure(_known(body), StatusCollection).embedded.statuses)


def _known(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without the keys the strict reference converter refuses."""
    statuses = [
        {
            **s,
            "descriptions": [
                {k: v for k, v in d.items() if k != "a_future_field"} for d in s["descriptions"]
            ],
        }
        for s in body["_embedded"]["statuses"]
    ]
    return {**body, "_embedded": {"statuses": statuses}}


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "2024-01-02 03:04:05", "2024-01-02"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
FIELDS = [a.name for a in attrs.fields(StatusDescription)]
STATUS_FIELDS = ["id", "name", "sort", "is_editable", "pipeline_id", "color", "type", "account_id"]


@settings(max_examples=150, deadline=None)
@given(
    change=st.one_of(
        st.tuples(st.just("description"), st.sampled_from(FIELDS)),
        st.tuples(
            st.just("status"), st.sampled_from([*STATUS_FIELDS, "descriptions", "request_id"])
        ),
    ),
    value=JSON_VALUES,
    remove=st.booleans(),
    at=st.integers(0, 19),
    size=st.sampled_from([(20, 3), (2, 3)]),
)
def test_any_one_change_fails_or_parses_as_the_generated_hooks_do(
    change: tuple[str, str], value: Any, remove: bool, at: int, size: tuple[int, int]
) -> None:
    """One known field of a status or a description replaced by any JSON value, or
    removed (``_links`` is left to the tests above: the strict reference checks its keys)."""
    where, field = change
    body = status_list(*size)
    statuses = body["_embedded"]["statuses"]
    target = statuses[at % len(statuses)]
    if where == "description":
        target = target["descriptions"][at % 3]
    if remove:
        target.pop(field, None)
    else:
        target[field] = value
    try:
        expected: Any = REFERENCE.structure(body, StatusCollection)
    except Exception:  # the reference raises other error types (detailed validation)
        expected = None
    if field == "descriptions" and not remove and type(value) not in (list, type(None)):
        expected = None  # the strict converter's generic tuple hook takes any iterable
    try:
        got: Any = converter.structure(body, StatusCollection)
        for s in got.embedded.statuses:
            s.descriptions  # noqa: B018 - made here, where deferred: must not fail
    except Exception:
        got = None
    assert got == expected


def test_pipelines_take_the_fast_path_too() -> None:
    pipeline = {
        "id": 7,
        "name": "P",
        "sort": 1,
        "is_main": True,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": 1,
        "_links": {"self": {"href": "https://example.amocrm.ru/api/v4/leads/pipelines/7"}},
        "_embedded": {"statuses": [status(sid, None) for sid in (1, 100, 142, 143)]},
    }
    page = {"_total_items": 1, "_embedded": {"pipelines": [pipeline, {**pipeline, "id": 8}]}}
    fast = converter.structure(page, PipelineCollection)
    assert fast == REFERENCE.structure(page, PipelineCollection)
    assert converter.structure(pipeline, Pipeline) == REFERENCE.structure(pipeline, Pipeline)
    assert fast.embedded.pipelines[0].statuses[0].descriptions is None
