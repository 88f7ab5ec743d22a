"""Faults that apply the write anyway: random 5xx and resets that commit (``fault_commit``),
and late commits that land after the client has given up (``Fault.late_commit``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import pytest
from support.constants import MAIN, PIPELINES

from amo_pipelines.emulator import Emulator, EmulatorConfig, Fault, FaultKind
from amo_pipelines.emulator.__main__ import parse_args


def new(name: str = "New") -> list[dict[str, Any]]:
    return [{"name": name, "sort": 5, "is_main": False, "is_unsorted_on": True}]


def names(emu: Emulator) -> list[str]:
    return [p.name for p in emu.state.pipelines.values()]


# --- random faults that commit ----------------------------------------------------------------


def test_fault_commit_defaults_to_half_and_is_a_probability() -> None:
    assert EmulatorConfig().fault_commit == 0.5
    assert parse_args([]).fault_commit == 0.5
    assert parse_args(["--fault-commit", "0.25"]).fault_commit == 0.25
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            EmulatorConfig(fault_commit=bad)


@pytest.mark.parametrize("kind", ["500", "502", "503", "504"])
async def test_a_random_5xx_that_commits_applies_the_write_then_answers_the_5xx(
    make_emu: Any, make_api: Any, kind: str
) -> None:
    emu = await make_emu(token_rps=None, fault_rates={kind: 1.0}, fault_commit=1.0)
    reply = await make_api(emu).post(PIPELINES, json=new())
    assert reply.status == int(kind)
    assert names(emu) == ["Воронка", "New"]
    entry = emu.request_log[-1]
    assert (entry.status, entry.processed_status, entry.outcome) == (
        int(kind),
        200,
        f"fault:{kind}",
    )
    assert emu.stats.faults == {kind: 1} and emu.stats.faults_committed == {kind: 1}


async def test_a_random_5xx_that_does_not_commit_applies_nothing(
    make_emu: Any, make_api: Any
) -> None:
    emu = await make_emu(token_rps=None, fault_rates={"500": 1.0}, fault_commit=0.0)
    assert (await make_api(emu).post(PIPELINES, json=new())).status == 500
    assert names(emu) == ["Воронка"]
    assert emu.request_log[-1].processed_status is None
    assert emu.stats.faults_committed == {}


async def test_a_random_reset_that_commits_is_commit_then_reset(
    make_emu: Any, make_api: Any
) -> None:
    emu = await make_emu(token_rps=None, fault_rates={"reset": 1.0}, fault_commit=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await make_api(emu).post(PIPELINES, json=new())
    assert names(emu) == ["Воронка", "New"]
    entry = emu.request_log[-1]
    assert (entry.status, entry.processed_status, entry.outcome) == (None, 200, "fault:reset")
    assert emu.stats.faults_committed == {"reset": 1}


async def test_random_commits_are_seeded_and_about_as_likely_as_configured(
    make_emu: Any, make_api: Any
) -> None:
    async def committed(seed: int) -> tuple[int, int]:
        emu = await make_emu(token_rps=None, seed=seed, fault_rates={"503": 1.0})
        api = make_api(emu)
        for i in range(40):
            assert (await api.post(PIPELINES, json=new(f"P{i}"))).status == 503
        return emu.stats.faults_committed.get("503", 0), len(emu.state.pipelines) - 1

    first, again = await committed(3), await committed(3)
    assert first == again  # same seed, same commits
    made, stored = first
    assert made == stored  # every commit is exactly one write
    assert 8 <= made <= 32  # the default 0.5 of 40


async def test_commit_draws_leave_the_seeded_fault_sequence_unchanged(
    make_emu: Any, make_api: Any
) -> None:
    # The commit is drawn from its own generator: the faults a seed gives do not depend on it.
    async def outcomes(fault_commit: float) -> list[str]:
        rates = {"500": 0.3, "reset": 0.2}
        emu = await make_emu(token_rps=None, seed=9, fault_rates=rates, fault_commit=fault_commit)
        api = make_api(emu)
        for i in range(30):
            with contextlib.suppress(aiohttp.ClientConnectionError):
                await api.patch(f"{PIPELINES}/{MAIN}", json={"sort": i})
        return [e.outcome for e in emu.request_log if e.method == "PATCH"]

    assert await outcomes(0.0) == await outcomes(1.0)


async def test_scripted_reset_with_commit(api: Any, emu: Emulator) -> None:
    emu.faults.add(Fault.reset(commit=True), method="POST")
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.post(PIPELINES, json=new())
    assert names(emu) == ["Воронка", "New"]
    assert emu.stats.faults_committed == {"reset": 1}


async def test_commit_then_drop_counts_as_committed(api: Any, emu: Emulator) -> None:
    emu.faults.add(Fault.commit_then_drop(), method="POST")
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.post(PIPELINES, json=new())
    assert emu.stats.faults_committed == {"commit-then-drop": 1}


# --- late commits -----------------------------------------------------------------------------


def test_late_commit_constructor() -> None:
    fault = Fault.late_commit(2.5)
    assert (fault.kind, fault.delay, fault.drop, fault.outcome) == (
        FaultKind.LATE_COMMIT,
        2.5,
        False,
        "fault:late-commit",
    )
    assert Fault.late_commit(1, drop=True).drop is True
    with pytest.raises(ValueError):
        Fault.late_commit(-1)


async def listed(session: aiohttp.ClientSession, emu: Emulator) -> list[str]:
    headers = {"Authorization": f"Bearer {emu.admin_token}"}
    async with session.get(emu.url + PIPELINES, headers=headers) as resp:
        assert resp.status == 200
        body = await resp.json(content_type=None)
    return [p["name"] for p in body["_embedded"]["pipelines"]]


async def post_late(session: aiohttp.ClientSession, emu: Emulator) -> None:
    headers = {"Authorization": f"Bearer {emu.admin_token}"}
    timeout = aiohttp.ClientTimeout(total=1.0)
    async with session.post(
        emu.url + PIPELINES, json=new("Late"), headers=headers, timeout=timeout
    ) as resp:
        await resp.read()


async def wait_until(deadline: float) -> None:
    await asyncio.sleep(max(deadline - time.monotonic(), 0.0))


@pytest.mark.slow  # ~2.3 s each
@pytest.mark.parametrize("drop", [False, True], ids=["held", "dropped"])
async def test_a_late_commit_lands_after_the_client_gave_up(
    emu: Emulator, session: aiohttp.ClientSession, drop: bool
) -> None:
    delay = 2.0
    emu.faults.add(Fault.late_commit(delay, drop=drop), method="POST", path=PIPELINES)
    sent = time.monotonic()
    # asyncio.TimeoutError: on Python 3.10 it is not yet the builtin TimeoutError
    error = asyncio.TimeoutError if not drop else aiohttp.ServerDisconnectedError
    with pytest.raises(error):
        await post_late(session, emu)
    failed_after = time.monotonic() - sent
    # held: the client's own 1 s timeout; dropped: at once
    assert (0.9 <= failed_after < delay) if not drop else failed_after < 0.5

    assert await listed(session, emu) == ["Воронка"]  # not applied yet
    assert emu.pending_commits == 1
    entry = emu.request_log[0]
    assert (entry.outcome, entry.processed_status) == ("fault:late-commit", None)

    await wait_until(sent + delay - 0.3)
    assert await listed(session, emu) == ["Воронка"]  # still not
    await wait_until(sent + delay + 0.3)
    assert await listed(session, emu) == ["Воронка", "Late"]  # exactly once
    assert emu.pending_commits == 0
    assert entry.processed_status == 200
    assert emu.stats.faults == {"late-commit": 1}
    assert emu.stats.faults_committed == {"late-commit": 1}
    assert [e.method for e in emu.request_log].count("POST") == 1  # aiohttp did not resend


async def test_a_patient_client_gets_the_real_answer_after_the_delay(
    api: Any, emu: Emulator
) -> None:
    emu.faults.add(Fault.late_commit(0.3), method="POST")
    sent = time.monotonic()
    reply = await api.post(PIPELINES, json=new("Late"))
    assert time.monotonic() - sent >= 0.3
    assert reply.status == 200
    assert reply.json["_embedded"]["pipelines"][0]["name"] == "Late"
    assert emu.request_log[0].status == 200


async def test_a_late_write_sees_the_state_of_its_own_time(
    api: Any, emu: Emulator, session: aiohttp.ClientSession, check_problem: Any
) -> None:
    # Processed when it lands: a pipeline deleted meanwhile makes the late PATCH a 404.
    [made] = (await api.post(PIPELINES, json=new("Doomed"))).json["_embedded"]["pipelines"]
    emu.faults.add(Fault.late_commit(0.3, drop=True), method="PATCH")
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.patch(f"{PIPELINES}/{made['id']}", json={"name": "Renamed"})
    assert (await api.delete(f"{PIPELINES}/{made['id']}")).status == 204
    await emu.settle()
    patch = next(e for e in emu.request_log if e.method == "PATCH")
    assert patch.processed_status == 404


async def test_settle_waits_and_stop_drops_what_is_pending(make_emu: Any, make_api: Any) -> None:
    emu = await make_emu(token_rps=None)
    api = make_api(emu)
    emu.faults.add(Fault.late_commit(0.2, drop=True), method="POST", times=None)
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.post(PIPELINES, json=new("Soon"))
    await emu.settle()
    assert names(emu) == ["Воронка", "Soon"]

    with pytest.raises(aiohttp.ClientConnectionError):
        await api.post(PIPELINES, json=new("Never"))
    assert emu.pending_commits == 1
    await emu.stop()
    assert emu.pending_commits == 0
    assert names(emu) == ["Воронка", "Soon"]


async def test_a_late_commit_on_the_token_endpoint_spends_the_code_later(
    api: Any, emu: Emulator
) -> None:
    cfg = emu.config
    code = emu.issue_code()
    params = {
        "client_id": cfg.oauth_client_id,
        "client_secret": cfg.oauth_client_secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": cfg.oauth_redirect_uri,
    }
    emu.faults.add(Fault.late_commit(0.2, drop=True), path="/oauth2/access_token")
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.post("/oauth2/access_token", token=None, json=params)
    assert emu.stats.token_grants == {}
    await emu.settle()
    assert emu.stats.token_grants == {"authorization_code": 1}
    again = await api.post("/oauth2/access_token", token=None, json=params)
    assert (again.status, again.json["hint"]) == (400, "Authorization code has been revoked")
