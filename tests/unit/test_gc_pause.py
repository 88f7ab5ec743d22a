"""A large answer is parsed with the cyclic garbage collector paused (model/_gcpause.py):
no collection runs in the middle of it, the collector is on again afterwards (also when the
parse fails), an application that switched it off keeps it off, and small answers are
parsed as they always were."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amo_pipelines import AmoClient, MockTransport, UnexpectedResponseError
from amo_pipelines.testing import json_response

STATUSES = "/api/v4/leads/pipelines/77/statuses"
LEVELS = ("newbie", "candidate", "master")

seen: list[bool] = []


@attrs.define
class Probe:
    """A model whose structuring notes whether the collector was on at that moment."""

    items: list[int]

    def __attrs_post_init__(self) -> None:
        seen.append(gc.isenabled())


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    seen.clear()
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def status(i: int) -> dict[str, Any]:
    sid = 1000 + i
    return {
        "id": sid,
        "name": f"Stage {i}",
        "sort": 10 * i,
        "is_editable": True,
        "pipeline_id": 77,
        "color": "#fffeb2",
        "type": 0,
        "account_id": 5,
        "_links": {"self": {"href": f"https://example.amocrm.ru{STATUSES}/{sid}"}},
        "descriptions": [
            {
                "account_id": 5,
                "created_at": "2023-05-05 09:38:00",
                "created_by": 0,
                "description": f"What a {level} does at stage {i}.",
                "id": 3 * sid + k,
                "level": level,
                "pipeline_id": 77,
                "status_id": sid,
                "updated_at": "2023-05-05 09:38:00",
                "updated_by": None,
            }
            for k, level in enumerate(LEVELS)
        ],
    }


def statuses_body(count: int) -> dict[str, Any]:
    return {"_total_items": count, "_embedded": {"statuses": [status(i) for i in range(count)]}}


def pipeline(pid: int) -> dict[str, Any]:
    statuses = [{**status(pid * 100 + i), "pipeline_id": pid} for i in range(97)]
    for s in statuses:
        del s["descriptions"]  # a listing carries none
    return {
        "id": pid,
        "name": f"Pipeline {pid}",
        "sort": pid,
        "is_main": pid == 1,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": 5,
        "_links": {"self": {"href": f"https://example.amocrm.ru/api/v4/leads/pipelines/{pid}"}},
        "_embedded": {"statuses": statuses},
    }


@pytest.mark.parametrize(
    ("path", "body", "read"),
    [
        (
            "/api/v4/leads/pipelines",
            {"_total_items": 20, "_embedded": {"pipelines": [pipeline(p) for p in range(1, 21)]}},
            lambda amo: amo.pipelines.list(),
        ),
        (STATUSES, statuses_body(97), lambda amo: amo.statuses.list(77, with_descriptions=True)),
    ],
    ids=["pipelines listing", "statuses with descriptions"],
)
async def test_no_collection_runs_while_a_large_answer_is_parsed(
    transport: MockTransport, amo: AmoClient, path: str, body: dict[str, Any], read: Any
) -> None:
    answer = json_response(body)
    assert len(answer.body) > 64 * 1024  # thousands of containers: several collections' worth
    transport.add(answer)
    started: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.collect()  # counts from zero: what follows allocates far fewer than 700 outside the parse
    gc.callbacks.append(note)
    try:
        got = await read(amo)
    finally:
        gc.callbacks.remove(note)
    # At most one young collection, after the parse, for the models that remain (without the
    # pause: one every 700 containers allocated, two or more for each of these answers).
    assert started in ([], [0])
    assert gc.isenabled()
    assert transport.requests[0].url.path == path
    last = got[-1]
    assert last.id == (1096 if path == STATUSES else 20)


async def test_a_large_answer_pauses_the_collector_and_a_small_one_does_not(
    transport: MockTransport, amo: AmoClient
) -> None:
    transport.add(json_response({"items": list(range(20_000))}), json_response({"items": [1]}))
    big = await amo.fetch("GET", "/api/v4/leads/pipelines", Probe)
    small = await amo.fetch("GET", "/api/v4/leads/pipelines", Probe)
    assert (len(big.items), small.items) == (20_000, [1])
    assert seen == [False, True]
    assert gc.isenabled()


async def test_the_collector_is_on_again_after_a_large_answer_that_fails_to_parse(
    transport: MockTransport, amo: AmoClient
) -> None:
    transport.add(json_response({"items": ["not a number"] * 10_000}))
    with pytest.raises(UnexpectedResponseError, match="not a Probe"):
        await amo.fetch("GET", "/api/v4/leads/pipelines", Probe)
    assert gc.isenabled()


async def test_an_application_that_switched_the_collector_off_keeps_it_off(
    transport: MockTransport, amo: AmoClient
) -> None:
    transport.add(json_response({"items": list(range(20_000))}))
    gc.disable()
    try:
        await amo.fetch("GET", "/api/v4/leads/pipelines", Probe)
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert seen == [False]


@settings(max_examples=30, deadline=None)
@given(count=st.integers(min_value=0, max_value=3_000), valid=st.booleans())
async def test_the_collector_is_on_after_any_answer(count: int, valid: bool) -> None:
    item: object = 1 if valid else "x"
    transport = MockTransport(responses=[json_response({"items": [item] * count})])
    async with AmoClient(subdomain="example", access_token="t" * 40, transport=transport) as amo:
        try:
            got = await amo.fetch("GET", "/api/v4/leads/pipelines", Probe)
        except UnexpectedResponseError:
            assert not valid and count > 0
        else:
            assert got.items == [item] * count
    assert gc.isenabled()
