"""The emulator's quick check of a statuses POST (the copy's hot path) answers exactly as
its general validation does, for any body: the same status and the same bytes.

Two emulators get the same requests; the second with the quick check turned off.
(An emulator test: it sits with the funnels tests because the copy is why it exists.)
"""

from __future__ import annotations

import re
from typing import Any
from unittest import mock

import aiohttp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.emulated import unlimited_config

from amo_pipelines.emulator import Emulator

PIPELINES = "/api/v4/leads/pipelines"
QUICK = "amo_pipelines.emulator.validation.quick_new_status"

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.just(""),
    st.just("  "),
    st.lists(st.none(), max_size=1),
    st.dictionaries(st.just("k"), st.none(), max_size=1),
)
LEVELS = ["newbie", "candidate", "master"]
BAD = {
    "name": st.one_of(st.just("n" * 256), st.just(" \t"), ODD),
    "sort": st.one_of(st.just(-1), st.just(2**31), st.just(True), ODD),
    "color": st.one_of(st.sampled_from(["#99ccff", "#c1c1c1", "#FFFEB2"]), ODD),
    "descriptions": st.one_of(st.just([{}] * 4), ODD),
    "request_id": ODD,
    "level": st.one_of(st.just("boss"), st.just("newbie"), ODD),
    "description": st.one_of(st.just("x" * 1001), st.just(" "), ODD),
}


@st.composite
def items(draw: st.DrawFn) -> Any:
    """A valid statuses POST item, then none, one or two of its fields made wrong (or
    dropped), or no object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(ODD)
    levels = draw(st.lists(st.sampled_from(LEVELS), unique=True, max_size=3))
    item: dict[str, Any] = {
        "name": draw(st.text(min_size=1, max_size=4).filter(str.strip)),
        "sort": draw(st.integers(0, 500)),
    }
    if draw(st.booleans()):
        item["color"] = draw(st.sampled_from(["#fffeb2", "#ffcc66", "#deff81"]))
    if levels or draw(st.booleans()):
        item["descriptions"] = [
            {"level": level, "description": draw(st.text(min_size=1, max_size=4).filter(str.strip))}
            for level in levels
        ]
    if draw(st.booleans()):
        item["request_id"] = draw(st.text(max_size=3))
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from(sorted(BAD)))
        target = item
        if field in ("level", "description"):
            described = item.get("descriptions")
            if not isinstance(described, list) or not described:
                continue
            target = draw(st.sampled_from(described))
            if not isinstance(target, dict):  # an earlier change made the list odd
                continue
        if draw(st.integers(0, 3)) == 0:
            target.pop(field, None)
        else:
            target[field] = draw(BAD[field])
    return item


def normal(body: bytes) -> bytes:
    body = re.sub(rb"127\.0\.0\.1:\d+", b"HOST", body)
    return re.sub(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", b"TIME", body)


async def post(session: aiohttp.ClientSession, emu: Emulator, path: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {emu.admin_token}"}
    async with session.post(emu.url + path, json=body, headers=headers) as response:
        return response.status, normal(await response.read())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.lists(items(), min_size=1, max_size=4))
@example(body=[{"name": "n" * 256, "sort": 1}, {"name": "ok", "sort": 2}])
@example(body=[{"name": "a", "sort": True}])
@example(body=[{"name": "\u2003\x1f", "sort": 1}, {"name": "\x85x", "sort": 1}])
@example(
    body=[{"name": "a", "sort": 1, "descriptions": [{"level": "master", "description": "\x1c"}]}]
)
@example(body=[{"name": "a", "sort": 1, "color": "#99ccff"}])
@example(
    body=[
        {
            "name": "a",
            "sort": 1,
            "descriptions": [
                {"level": "newbie", "description": "x"},
                {"level": "newbie", "description": "y"},
            ],
        }
    ]
)
async def test_the_quick_check_answers_as_the_general_validation(body: list[Any]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        Emulator(unlimited_config(seed=1)) as quick,
        Emulator(unlimited_config(seed=1)) as general,
    ):
        new = [{"name": "P", "sort": 100, "is_main": False, "is_unsorted_on": True}]
        answers = []
        for emu, patched in ((quick, False), (general, True)):
            status, made = await post(session, emu, PIPELINES, new)
            assert status == 200
            pipeline = int(re.search(rb'"pipelines":\[\{"id":(\d+)', made).group(1))  # type: ignore[union-attr]
            path = f"{PIPELINES}/{pipeline}/statuses"
            if patched:
                with mock.patch(QUICK, return_value=None):
                    answers.append(await post(session, emu, path, body))
            else:
                answers.append(await post(session, emu, path, body))
        assert answers[0] == answers[1]
