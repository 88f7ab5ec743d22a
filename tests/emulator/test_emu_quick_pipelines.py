"""The emulator's quick check of a pipelines POST answers exactly as its general validation
does, for any body: the same status and the same bytes.

Two emulators get the same request; the second with the quick check turned off.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import aiohttp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.emulated import unlimited_config

from amo_pipelines.emulator import Emulator

from .test_emu_quick_validation import ODD, post

PIPELINES = "/api/v4/leads/pipelines"
QUICK = "amo_pipelines.emulator.validation.quick_new_pipeline"
NAMES = st.text(min_size=1, max_size=4).filter(str.strip)
BAD = {
    "name": st.one_of(st.just("n" * 256), st.just(" \t"), st.just("\u2003"), ODD),
    "sort": st.one_of(st.just(-1), st.just(2**31), st.just(True), ODD),
    "is_main": ODD,
    "is_unsorted_on": ODD,
    "request_id": ODD,
    "_embedded": ODD,
    "statuses": ODD,
    "color": st.one_of(st.sampled_from(["#99ccff", "#c1c1c1", "#FFFEB2"]), ODD),
    "id": st.one_of(st.sampled_from([142, 143, 144, 142.0, True, "142"]), ODD),
}


@st.composite
def embedded(draw: st.DrawFn) -> dict[str, Any]:
    """A status to embed: a regular one, or a name for 142/143."""
    if draw(st.booleans()):
        return {"id": draw(st.sampled_from([142, 143])), "name": draw(NAMES)}
    status: dict[str, Any] = {"name": draw(NAMES), "sort": draw(st.integers(0, 500))}
    if draw(st.booleans()):
        status["color"] = draw(st.sampled_from(["#fffeb2", "#deff81"]))
    if draw(st.booleans()):
        status["request_id"] = draw(st.text(max_size=2))  # ignored where it is
    return status


@st.composite
def items(draw: st.DrawFn) -> Any:
    """A valid pipelines POST item, then none, one or two of its fields made wrong (or
    dropped), or no object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(ODD)
    item: dict[str, Any] = {
        "name": draw(NAMES),
        "sort": draw(st.integers(0, 500)),
        "is_main": draw(st.integers(0, 3)) == 0,
        "is_unsorted_on": draw(st.booleans()),
    }
    statuses = draw(st.lists(embedded(), max_size=3))
    if statuses or draw(st.booleans()):
        item["_embedded"] = {"statuses": statuses} if draw(st.integers(0, 5)) else {}
    if draw(st.booleans()):
        item["request_id"] = draw(st.text(max_size=3))
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from(sorted(BAD)))
        target = item
        if field in ("statuses",):
            target = item.get("_embedded")
        elif field in ("color", "id") or (field in ("name", "sort") and draw(st.booleans())):
            found = item.get("_embedded")
            found = found.get("statuses") if isinstance(found, dict) else None
            if not isinstance(found, list) or not found:
                continue
            target = draw(st.sampled_from(found))
        if not isinstance(target, dict):
            continue
        if draw(st.integers(0, 3)) == 0:
            target.pop(field, None)
        else:
            target[field] = draw(BAD[field])
    return item


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.lists(items(), min_size=1, max_size=4))
@example(
    body=[
        {"name": "a", "sort": 1, "is_main": True, "is_unsorted_on": True},
        {"name": "b", "sort": 2, "is_main": True, "is_unsorted_on": False},
    ]
)
@example(
    body=[
        {
            "name": "a",
            "sort": 1,
            "is_main": False,
            "is_unsorted_on": True,
            "_embedded": {"statuses": [{"id": 142.0, "name": "x"}, {"id": 142, "name": "y"}]},
        }
    ]
)
@example(body=[{"name": "a", "sort": 1, "is_main": 1, "is_unsorted_on": True}])
@example(
    body=[
        {
            "name": "a",
            "sort": 1,
            "is_main": False,
            "is_unsorted_on": True,
            "_embedded": {"statuses": [{"name": "s", "sort": 1, "color": "#99ccff"}]},
        }
    ]
)
async def test_the_quick_check_answers_as_the_general_validation(body: list[Any]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        Emulator(unlimited_config(seed=1)) as quick,
        Emulator(unlimited_config(seed=1)) as general,
    ):
        answers = [await post(session, quick, PIPELINES, body)]
        with mock.patch(QUICK, return_value=None):
            answers.append(await post(session, general, PIPELINES, body))
        assert answers[0] == answers[1]
        assert quick.state.main_pipeline().id == general.state.main_pipeline().id
