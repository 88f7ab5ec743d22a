"""Fault injection: status faults, latency, reset, commit-then-drop, determinism, the log."""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import aiohttp
import pytest
from support.constants import MAIN, PIPELINES

from amo_pipelines.emulator import Fault, FaultKind

NEW = [{"name": "New", "sort": 5, "is_main": False, "is_unsorted_on": True}]


async def test_500_has_a_trace_id_and_applies_nothing(
    api: Any, emu: Any, check_problem: Any
) -> None:
    emu.faults.add(Fault.status(500), method="POST", path=PIPELINES)
    body = check_problem(await api.post(PIPELINES, json=NEW), 500)
    assert re.fullmatch(r"[0-9a-f]{16}", body["trace_id"])
    assert len(emu.state.pipelines) == 1
    assert emu.request_log[-1].outcome == "fault:500"
    assert emu.request_log[-1].status == 500
    assert (await api.post(PIPELINES, json=NEW)).status == 200  # times=1 by default
    assert emu.stats.faults == {"500": 1}


@pytest.mark.parametrize("code", [502, 503, 504])
async def test_proxy_errors_are_html(api: Any, emu: Any, code: int) -> None:
    emu.faults.add(Fault.status(code))
    reply = await api.patch(f"{PIPELINES}/{MAIN}", json={"name": "x"})
    assert reply.status == code
    assert reply.content_type == "text/html"
    assert f"<title>{code} " in reply.text
    assert emu.state.pipelines[MAIN].name == "Воронка"
    assert emu.request_log[-1].outcome == f"fault:{code}"


async def test_status_fault_with_commit_applies_the_write(api: Any, emu: Any) -> None:
    emu.faults.add(Fault.status(504, commit=True), method="POST")
    reply = await api.post(PIPELINES, json=NEW)
    assert reply.status == 504
    assert len(emu.state.pipelines) == 2
    entry = emu.request_log[-1]
    assert (entry.status, entry.processed_status, entry.outcome) == (504, 200, "fault:504")


async def test_scripted_429(api: Any, emu: Any, check_problem: Any) -> None:
    emu.faults.add(Fault.status(429, retry_after=2.5))
    assert check_problem(await api.get(PIPELINES), 429)["retry_after"] == 2.5
    assert emu.stats.rate_limited == 0 and emu.stats.faults == {"429": 1}


async def test_fault_matching(api: Any, emu: Any) -> None:
    post_only = emu.faults.add(Fault.status(503), method="post", path=PIPELINES, times=2)
    statuses_glob = emu.faults.add(Fault.status(502), path=f"{PIPELINES}/*/statuses*", times=None)
    regex = emu.faults.add(Fault.status(500), path=re.compile(r".*/\d+"), times=1)
    assert (await api.get(PIPELINES)).status == 200
    assert (await api.get(f"{PIPELINES}/{MAIN}/statuses")).status == 502
    assert (await api.get(f"{PIPELINES}/{MAIN}/statuses/142")).status == 502  # earlier wins
    assert (await api.get(f"{PIPELINES}/{MAIN}")).status == 500
    assert (await api.get(f"{PIPELINES}/{MAIN}")).status == 200
    assert (await api.post(PIPELINES, json=NEW)).status == 503
    assert (await api.post(PIPELINES, json=NEW)).status == 503
    assert (await api.post(PIPELINES, json=NEW)).status == 200
    assert (await api.get(f"{PIPELINES}/{MAIN}/statuses")).status == 502
    assert (post_only.hits, post_only.remaining) == (2, 0)
    assert (statuses_glob.hits, statuses_glob.remaining) == (3, None)
    assert (regex.hits, regex.remaining) == (1, 0)
    emu.faults.clear()
    assert (await api.get(f"{PIPELINES}/{MAIN}/statuses")).status == 200


async def test_faults_come_after_auth_and_admin_checks(api: Any, emu: Any) -> None:
    entry = emu.faults.add(Fault.status(500))
    assert (await api.get(PIPELINES, token=None)).status == 401
    assert (await api.post(PIPELINES, token="user", json=NEW)).status == 403
    assert entry.hits == 0
    assert (await api.get(PIPELINES)).status == 500


async def test_latency(api: Any, emu: Any) -> None:
    emu.faults.add(Fault.latency(0.3), method="GET")
    started = time.monotonic()
    reply = await api.get(PIPELINES)
    assert time.monotonic() - started >= 0.29
    assert reply.status == 200
    entry = emu.request_log[-1]
    assert (entry.latency, entry.outcome) == (0.3, "ok")
    assert emu.stats.faults == {"latency": 1}


async def test_configured_latency_applies_to_every_request(make_emu: Any, make_api: Any) -> None:
    emu = await make_emu(token_rps=None, latency=(0.05, 0.1))
    api = make_api(emu)
    started = time.monotonic()
    for _ in range(3):
        assert (await api.get(PIPELINES)).status == 200
    assert time.monotonic() - started >= 0.15
    assert all(0.05 <= e.latency <= 0.1 for e in emu.request_log)


async def test_reset_drops_the_connection_before_processing(
    api: Any, emu: Any, session: aiohttp.ClientSession
) -> None:
    emu.faults.add(Fault.reset(), method="POST")
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.post(PIPELINES, json=NEW)
    assert len(emu.state.pipelines) == 1  # nothing applied
    entry = emu.request_log[-1]
    assert (entry.status, entry.outcome) == (None, "fault:reset")
    assert entry.json == NEW
    assert 204 not in emu.stats.responses  # the placeholder response is never sent
    # the emulator keeps serving
    assert (await api.post(PIPELINES, json=NEW)).status == 200


async def test_commit_then_drop_applies_the_write(api: Any, emu: Any) -> None:
    emu.faults.add(Fault.commit_then_drop(), method="POST", path=PIPELINES)
    with pytest.raises(aiohttp.ClientConnectionError) as caught:
        await api.post(PIPELINES, json=NEW)
    assert isinstance(caught.value, aiohttp.ServerDisconnectedError)
    names = sorted(p.name for p in emu.state.pipelines.values())
    assert names == ["New", "Воронка"]  # the write is there
    entry = emu.request_log[-1]
    assert (entry.status, entry.processed_status, entry.outcome) == (
        None,
        200,
        "fault:commit-then-drop",
    )


async def test_commit_then_drop_on_patch(api: Any, emu: Any) -> None:
    emu.faults.add(Fault.commit_then_drop(), method="PATCH")
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.patch(f"{PIPELINES}/{MAIN}", json={"name": "Committed"})
    assert emu.state.pipelines[MAIN].name == "Committed"


async def test_aiohttp_retries_idempotent_methods_once_on_a_drop(api: Any, emu: Any) -> None:
    # aiohttp's ClientSession silently resends GET/PUT/DELETE once after a disconnect, so one
    # reset is invisible to it; two in a row are not.
    emu.faults.add(Fault.reset(), method="GET", times=1)
    assert (await api.get(PIPELINES)).status == 200
    assert [e.outcome for e in emu.request_log] == ["fault:reset", "ok"]
    emu.faults.add(Fault.reset(), method="GET", times=2)
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.get(PIPELINES)


RATES = {"500": 0.2, "503": 0.1, "504": 0.1, "reset": 0.1, "commit-then-drop": 0.1}


async def outcomes(make_emu: Any, make_api: Any, seed: int) -> list[str]:
    emu = await make_emu(token_rps=None, seed=seed, fault_rates=RATES)
    api = make_api(emu)
    for i in range(40):
        with contextlib.suppress(aiohttp.ClientConnectionError):
            await api.patch(f"{PIPELINES}/{MAIN}", json={"sort": i})
    return [e.outcome for e in emu.request_log]


async def test_random_faults_are_deterministic_for_a_seed(make_emu: Any, make_api: Any) -> None:
    first = await outcomes(make_emu, make_api, seed=7)
    second = await outcomes(make_emu, make_api, seed=7)
    other = await outcomes(make_emu, make_api, seed=8)
    assert first == second
    assert first != other
    kinds = set(first)
    assert {"ok", "fault:500"} <= kinds
    assert len(kinds) >= 4


async def test_seeded_tokens_and_trace_ids_are_reproducible(make_emu: Any) -> None:
    a = await make_emu(seed=1)
    b = await make_emu(seed=1)
    c = await make_emu(seed=None)
    assert (a.admin_token, a.user_token) == (b.admin_token, b.user_token)
    assert a.admin_token != a.user_token
    assert c.admin_token != a.admin_token


def test_fault_constructors() -> None:
    assert Fault.status(503).kind is FaultKind.HTTP_503
    assert Fault.reset().outcome == "fault:reset"
    assert Fault.commit_then_drop().kind is FaultKind.parse("drop")
    assert Fault.latency(1.5).delay == 1.5
    with pytest.raises(ValueError):
        Fault.status(404)
    with pytest.raises(ValueError):
        Fault.latency(-1)
    with pytest.raises(ValueError):
        FaultKind.parse("explode")


def test_config_rejects_bad_fault_rates() -> None:
    from amo_pipelines.emulator import EmulatorConfig

    with pytest.raises(ValueError):
        EmulatorConfig(fault_rates={"latency": 0.1})
    with pytest.raises(ValueError):
        EmulatorConfig(fault_rates={"500": 0.7, "503": 0.7})
    with pytest.raises(ValueError):
        EmulatorConfig(fault_rates={"500": -0.1})
    assert EmulatorConfig(latency=0.2).latency == (0.2, 0.2)
    assert EmulatorConfig(fault_rates={"drop": 0.5}).fault_rates == {
        FaultKind.COMMIT_THEN_DROP: 0.5
    }


async def test_request_log(make_emu: Any, make_api: Any, emu_clock: Any) -> None:
    emu = await make_emu(token_rps=None, clock=emu_clock)
    api = make_api(emu)
    await api.get(f"{PIPELINES}/{MAIN}/statuses", params={"with": "descriptions"})
    emu_clock.advance(2.5)
    await api.patch(f"{PIPELINES}/{MAIN}", json={"name": "x"}, token="user")
    await api.get(PIPELINES, token=None)
    first, second, third = emu.request_log
    assert (first.method, first.path, first.query) == (
        "GET",
        f"{PIPELINES}/{MAIN}/statuses",
        "with=descriptions",
    )
    assert (first.token, first.arrived_at, first.status, first.outcome) == (
        emu.admin_token,
        1000.0,
        200,
        "ok",
    )
    assert (second.method, second.arrived_at, second.status, second.outcome) == (
        "PATCH",
        1002.5,
        403,
        "403",
    )
    assert second.json == {"name": "x"}
    assert (third.token, third.status, third.outcome) == (None, 401, "401")
    assert emu.admin_token not in repr(first)
    assert emu.stats.requests == 3
    assert emu.stats.responses == {200: 1, 403: 1, 401: 1}
    emu.clear_log()
    assert emu.request_log == []
