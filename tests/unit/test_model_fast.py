"""The converter's fast path against the generated cattrs hooks, on random answers.

The fast path (amo_pipelines.model._fast, ._descriptions) checks an answer's descriptions
column by column (more than 12) or row by row (up to 12), makes them at once (up to 32 in
an answer) or keeps them as checked rows until first read, looks fields up with the
decoder's own key objects, and builds each model in a plain class of its layout before
switching the object's class. Whatever it takes, a valid answer must give exactly the
models the generated hooks give, every field of its documented type when read, and an
invalid one must fail at parse time, from the call, as UnexpectedResponseError.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import weakref
from datetime import datetime, timedelta
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amo_pipelines import AmoClient, UnexpectedResponseError
from amo_pipelines.model.converter import converter, make_converter
from amo_pipelines.model.models import (
    Deferred,
    Pipeline,
    PipelineCollection,
    Status,
    StatusCollection,
    StatusDescription,
)
from amo_pipelines.testing import MockTransport, json_response

REFERENCE = make_converter(strict=True)  # the generated hooks only, every key known
SLOT = vars(Status)["descriptions"].slot  # the member under models._DeferredSlot
UNKNOWN = "a_future_field"  # an unknown key the lenient converter ignores

INTS = st.one_of(st.integers(-2, 2), st.integers(-(2**63), 2**63 - 1))
TEXT = st.text(max_size=8)
DATES = st.one_of(
    st.none(),
    st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S")
    ),
)
ANY_JSON = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from(["2024-01-02 03:04:05", "2024-02-30 00:00:00", "2024-01-02", "now"]),
    st.lists(INTS, max_size=2),
    st.dictionaries(st.text(max_size=2), INTS, max_size=2),
)


def _shuffled(items: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts in any key order: the fast path must find fields by name."""
    return items.flatmap(lambda d: st.permutations(list(d.items())).map(dict))


def _with_unknown(items: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(items, st.booleans(), ANY_JSON).map(
        lambda t: {**t[0], UNKNOWN: t[2]} if t[1] else t[0]
    )


DESCRIPTION = _shuffled(
    _with_unknown(
        st.fixed_dictionaries(
            {
                "id": INTS,
                "account_id": INTS,
                "pipeline_id": INTS,
                "status_id": INTS,
                "level": st.sampled_from(["newbie", "candidate", "master", "other"]),
                "description": TEXT,
                "created_at": DATES,
                "updated_at": DATES,
                "created_by": st.one_of(st.none(), INTS),
                "updated_by": st.one_of(st.none(), INTS),
            }
        )
    )
)
LINKS = st.one_of(
    st.none(),
    st.just({}),
    st.just({"self": None}),
    TEXT.map(lambda href: {"self": {"href": href}}),
)
ABSENT = object()  # an optional key left out
STATUS = _shuffled(
    _with_unknown(
        st.fixed_dictionaries(
            {
                "id": INTS,
                "name": TEXT,
                "sort": INTS,
                "is_editable": st.booleans(),
                "pipeline_id": INTS,
                "color": TEXT,
                "type": st.sampled_from([0, 1, 2]),  # 2: a type the SDK does not know
                "account_id": INTS,
                "request_id": st.sampled_from([ABSENT, None, "0", "x"]),
                "_links": st.one_of(st.just(ABSENT), LINKS),
                "descriptions": st.one_of(
                    st.just(ABSENT), st.none(), st.lists(DESCRIPTION, max_size=7)
                ),
            }
        ).map(lambda d: {k: v for k, v in d.items() if v is not ABSENT})
    )
)
STATUS_LIST = st.fixed_dictionaries(
    {"_embedded": st.fixed_dictionaries({"statuses": st.lists(STATUS, max_size=8)})},
    optional={"_total_items": INTS, "_links": LINKS},
)


def _known(value: Any) -> Any:
    """``value`` without the unknown keys the strict reference refuses."""
    if isinstance(value, dict):
        return {k: _known(v) for k, v in value.items() if k != UNKNOWN}
    if isinstance(value, list):
        return [_known(v) for v in value]
    return value


def _decoded(body: dict[str, Any], decoder: str) -> Any:
    """``body`` as a decoder gives it: orjson's cached key objects, or json's fresh ones."""
    if decoder == "orjson":
        return orjson.loads(orjson.dumps(body))
    return json.loads(json.dumps(body))


def _reference(body: dict[str, Any]) -> StatusCollection | None:
    try:
        return REFERENCE.structure(_known(body), StatusCollection)
    except Exception:
        return None


def _fast(body: dict[str, Any], decoder: str) -> StatusCollection | None:
    try:
        page = converter.structure(_decoded(body, decoder), StatusCollection)
        for s in page.embedded.statuses:
            s.descriptions  # noqa: B018 - made here where deferred: must never fail
    except Exception:
        return None
    return page


def _assert_typed(page: StatusCollection) -> None:
    """Every field read has its documented type (exact: no bool for an int)."""
    for s in page.embedded.statuses:
        assert type(s) is Status
        for name in ("id", "sort", "pipeline_id", "account_id", "type"):
            assert isinstance(getattr(s, name), int) and type(getattr(s, name)) is not bool
        assert type(s.name) is str and type(s.color) is str and type(s.is_editable) is bool
        for d in s.descriptions or ():
            assert type(d) is StatusDescription
            for name in ("id", "account_id", "pipeline_id", "status_id"):
                assert type(getattr(d, name)) is int
            assert type(d.level) is str and type(d.description) is str
            for name in ("created_at", "updated_at"):
                assert getattr(d, name) is None or type(getattr(d, name)) is datetime
            for name in ("created_by", "updated_by"):
                assert getattr(d, name) is None or type(getattr(d, name)) is int


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=STATUS_LIST, decoder=st.sampled_from(["orjson", "json"]))
def test_a_valid_answer_gives_what_the_generated_hooks_give(
    body: dict[str, Any], decoder: str
) -> None:
    expected = _reference(body)
    assert expected is not None  # the strategy makes valid answers only
    got = _fast(body, decoder)
    assert got == expected
    assert got is not None
    assert repr(got) == repr(expected)
    assert hash(got) == hash(expected)
    _assert_typed(got)


def _client_call(body: dict[str, Any]) -> Any:
    async def call() -> Any:
        transport = MockTransport()
        transport.add(json_response(body))
        async with AmoClient(subdomain="example", access_token="t", transport=transport) as amo:
            return await amo.statuses.list(7, with_descriptions=True)

    return asyncio.run(call())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=STATUS_LIST.filter(lambda b: b["_embedded"]["statuses"]),
    change=st.one_of(
        st.just(("item", "")),  # a whole status replaced by another JSON value
        st.tuples(
            st.just("description"),
            st.sampled_from([a.name for a in attrs.fields(StatusDescription)]),
        ),
        st.tuples(
            st.just("status"),
            st.sampled_from(
                [
                    *("id", "name", "sort", "is_editable", "pipeline_id", "color", "type"),
                    *("account_id", "request_id", "descriptions"),
                ]
            ),
        ),
    ),
    value=ANY_JSON,
    remove=st.booleans(),
    at=st.integers(0, 100),
    decoder=st.sampled_from(["orjson", "json"]),
)
def test_one_changed_value_fails_or_parses_as_the_generated_hooks_do(
    body: dict[str, Any],
    change: tuple[str, str],
    value: Any,
    remove: bool,
    at: int,
    decoder: str,
) -> None:
    where, field = change
    statuses = body["_embedded"]["statuses"]
    if where == "item":
        statuses[at % len(statuses)] = value
        assert _fast(body, decoder) is None  # no JSON scalar, list or other object parses
        with pytest.raises(UnexpectedResponseError):
            _client_call(body)
        return
    target = statuses[at % len(statuses)]
    if where == "description":
        found = [d for s in statuses for d in s.get("descriptions") or ()]
        if not found:
            return
        target = found[at % len(found)]
    if remove:
        target.pop(field, None)
    else:
        target[field] = value
    expected = _reference(body)
    if field == "descriptions" and not remove and type(value) not in (list, type(None)):
        expected = None  # the strict converter's generic tuple hook takes any iterable
    assert _fast(body, decoder) == expected
    if expected is None:  # the call fails, at parse time, as documented
        with pytest.raises(UnexpectedResponseError):
            _client_call(body)


def _page(statuses: int, per_status: int) -> dict[str, Any]:
    def described(sid: int, i: int) -> dict[str, Any]:
        return {
            "id": sid * 10 + i,
            "account_id": 1,
            "pipeline_id": 7,
            "status_id": sid,
            "level": "newbie",
            "description": f"d{i}",
            "created_at": "2024-01-02 03:04:05",
            "updated_at": None,
            "created_by": 0,
            "updated_by": None,
        }

    return {
        "_embedded": {
            "statuses": [
                {
                    "id": sid,
                    "name": f"S{sid}",
                    "sort": sid,
                    "is_editable": True,
                    "pipeline_id": 7,
                    "color": "#fffeb2",
                    "type": 0,
                    "account_id": 1,
                    "descriptions": [described(sid, i) for i in range(per_status)],
                }
                for sid in range(100, 100 + statuses)
            ]
        }
    }


@pytest.mark.parametrize(
    ("size", "deferred"),
    [((4, 3), False), ((11, 3), False), ((12, 3), True), ((20, 3), True)],
    ids=["12 by row", "33 by column", "36 deferred", "60 deferred"],
)
def test_up_to_32_descriptions_are_made_at_once_and_more_on_first_read(
    size: tuple[int, int], deferred: bool
) -> None:
    body = _page(*size)
    if size == (11, 3):
        body["_embedded"]["statuses"][0]["descriptions"].pop()  # 32: at once, by column
    page = converter.structure(orjson.loads(orjson.dumps(body)), StatusCollection)
    held = [SLOT.__get__(s, Status) for s in page.embedded.statuses]
    assert all((type(h) is Deferred) is deferred for h in held)
    assert page == REFERENCE.structure(body, StatusCollection)


def test_parsed_models_are_the_model_classes_themselves() -> None:
    """Built in a plain class of their layout, then switched: nothing of it shows."""
    body = _page(20, 3)
    pipeline_page = {
        "_embedded": {
            "pipelines": [
                {
                    "id": 7,
                    "name": "P",
                    "sort": 1,
                    "is_main": True,
                    "is_unsorted_on": True,
                    "account_id": 1,
                    "_embedded": {"statuses": body["_embedded"]["statuses"][:2]},
                }
            ]
        }
    }
    page = converter.structure(orjson.loads(orjson.dumps(body)), StatusCollection)
    pipelines = converter.structure(pipeline_page, PipelineCollection)
    pipeline = pipelines.embedded.pipelines[0]
    status = page.embedded.statuses[0]
    assert status.descriptions is not None
    description = status.descriptions[0]
    for made, cls in (
        (page, StatusCollection),
        (page.embedded, type(page.embedded)),
        (status, Status),
        (description, StatusDescription),
        (pipelines, PipelineCollection),
        (pipeline, Pipeline),
        (pipeline.embedded, type(pipeline.embedded)),
    ):
        assert type(made) is cls
        assert weakref.ref(made)() is made
        assert pickle.loads(pickle.dumps(made)) == made
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(made, attrs.fields(cls)[0].name, None)
    assert status == Status(**{a.name: getattr(status, a.name) for a in attrs.fields(Status)})
    assert hash(description) == hash(attrs.evolve(description))


def test_each_answer_keeps_its_own_dates_until_its_descriptions_are_read() -> None:
    """An answer's distinct date strings are parsed once, at parse time, and kept with its
    rows; answers parsed later (thousands of other dates) change nothing in an earlier
    one's, whichever is read first."""
    first = _page(20, 3)
    page = converter.structure(orjson.loads(orjson.dumps(first)), StatusCollection)
    many = _page(30, 80)
    start = datetime(2030, 1, 1)
    n = 0
    for s in many["_embedded"]["statuses"]:
        for d in s["descriptions"]:
            d["created_at"] = (start + timedelta(seconds=n)).strftime("%Y-%m-%d %H:%M:%S")
            d["updated_at"] = (start + timedelta(days=1, seconds=n)).strftime("%Y-%m-%d %H:%M:%S")
            n += 1
    again = converter.structure(orjson.loads(orjson.dumps(many)), StatusCollection)
    assert again == REFERENCE.structure(many, StatusCollection)
    assert page == REFERENCE.structure(first, StatusCollection)


def test_answers_decoded_with_other_key_objects_parse_the_same() -> None:
    """The fast path asks with the key objects it last saw; an answer decoded elsewhere
    (fresh key objects each time), then orjson's again, parses the same throughout."""
    body = _page(20, 3)
    expected = REFERENCE.structure(body, StatusCollection)
    for decoder in ("orjson", "json", "json", "orjson", "json"):
        assert converter.structure(_decoded(body, decoder), StatusCollection) == expected
