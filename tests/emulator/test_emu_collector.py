"""The creates run with CPython's cyclic collector paused (a copy-sized statuses POST made
it run several times per request, for nothing), and leave it as they found it."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from support.constants import PIPELINES

APP = "amo_pipelines.emulator.app"
LEVELS = ("newbie", "candidate", "master")


def statuses(count: int = 97) -> list[dict[str, Any]]:
    return [
        {
            "name": f"Stage {i}",
            "sort": 10 * i,
            "descriptions": [{"level": lv, "description": f"{lv} {i}"} for lv in LEVELS],
        }
        for i in range(1, count + 1)
    ]


@pytest.fixture
def in_app() -> Iterator[list[str]]:
    """The names of the emulator's endpoint functions a collection interrupted."""
    seen: list[str] = []

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase != "start":
            return
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_globals.get("__name__") == APP:
                seen.append(frame.f_code.co_name)
                return
            frame = frame.f_back  # type: ignore[assignment]

    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's default, which an application may have changed
    gc.callbacks.append(watch)
    try:
        yield seen
    finally:
        gc.callbacks.remove(watch)
        gc.set_threshold(*before)


async def new_pipeline(api: Any) -> int:
    body = [{"name": "P", "sort": 1, "is_main": False, "is_unsorted_on": True}]
    reply = await api.post(PIPELINES, json=body)
    assert reply.status == 200
    pid: int = reply.json["_embedded"]["pipelines"][0]["id"]
    return pid


async def test_no_collection_runs_inside_a_create(api: Any, in_app: list[str]) -> None:
    pid = await new_pipeline(api)
    assert gc.isenabled()
    reply = await api.post(f"{PIPELINES}/{pid}/statuses", json=statuses())
    assert reply.status == 200
    assert gc.isenabled()
    big = [{"name": f"P{i}", "sort": i, "is_main": False, "is_unsorted_on": True} for i in range(9)]
    reply = await api.post(PIPELINES, json=big)
    assert reply.status == 200
    assert gc.isenabled()
    assert in_app == []


@pytest.mark.parametrize("body", [[*statuses(3), {"name": "bad"}], "not json"])
async def test_a_refused_create_turns_the_collector_back_on(api: Any, body: Any) -> None:
    pid = await new_pipeline(api)
    kwargs = {"json": body} if isinstance(body, list) else {"data": body}
    headers = {"Content-Type": "application/json"}
    reply = await api.post(f"{PIPELINES}/{pid}/statuses", headers=headers, **kwargs)
    assert reply.status == 400
    assert gc.isenabled()
    reply = await api.post(PIPELINES, headers=headers, **kwargs)
    assert reply.status == 400
    assert gc.isenabled()


async def test_a_collector_the_application_paused_stays_paused(api: Any) -> None:
    pid = await new_pipeline(api)
    gc.disable()
    try:
        reply = await api.post(f"{PIPELINES}/{pid}/statuses", json=statuses(5))
        assert reply.status == 200
        assert not gc.isenabled()
    finally:
        gc.enable()
