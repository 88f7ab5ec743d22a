"""Many accounts in one process (``EmulatorFleet``) and the request log and stats over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.constants import PIPELINES
from support.emulated import ManualClock

from amo_pipelines.emulator import Emulator, EmulatorConfig, EmulatorFleet, Fault

LOG = "/_emulator/log"
STATS = "/_emulator/stats"
NEW_PIPELINE = [{"name": "Fleet", "sort": 5, "is_main": False, "is_unsorted_on": False}]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    session: aiohttp.ClientSession,
    emu: Emulator,
    method: str,
    path: str,
    *,
    token: str | None = None,
    agent: str = "fleet-test/1",
    **kwargs: Any,
) -> tuple[int, bytes]:
    headers = {"User-Agent": agent, **(bearer(token) if token is not None else {})}
    async with session.request(method, emu.url + path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.read()


async def log_of(
    session: aiohttp.ClientSession, emu: Emulator, since: int | None = None
) -> dict[str, Any]:
    path = LOG if since is None else f"{LOG}?since={since}"
    async with session.get(emu.url + path) as resp:
        assert (resp.status, resp.content_type) == (200, "application/json")
        raw = await resp.read()
    for secret in (emu.admin_token, emu.user_token):
        assert secret.encode() not in raw
    body = json.loads(raw)
    assert isinstance(body, dict)
    return body


@pytest.fixture
async def fleet(emu_clock: ManualClock) -> AsyncIterator[EmulatorFleet]:
    """Three accounts with the documented limits on a clock the test moves."""
    async with EmulatorFleet(3, config=EmulatorConfig(clock=emu_clock, seed=7)) as running:
        yield running


async def test_accounts_are_numbered_and_listen_on_their_own_ports(
    fleet: EmulatorFleet, session: aiohttp.ClientSession
) -> None:
    ports = {emu.port for emu in fleet.accounts}
    assert len(ports) == 3
    assert [emu.config.account_id for emu in fleet] == [12345678, 12345679, 12345680]
    assert [emu.config.subdomain for emu in fleet] == ["example1", "example2", "example3"]
    tokens = [t for emu in fleet for t in (emu.admin_token, emu.user_token)]
    assert len(set(tokens)) == 6
    for emu in fleet:
        status, body = await call(session, emu, "GET", PIPELINES, token=emu.admin_token)
        assert status == 200
        assert json.loads(body)["_links"]["self"]["href"].startswith(emu.url)


async def test_a_write_to_one_account_is_not_seen_by_another(
    fleet: EmulatorFleet, session: aiohttp.ClientSession
) -> None:
    one, two = fleet[0], fleet[1]
    status, body = await call(
        session, one, "POST", PIPELINES, token=one.admin_token, json=NEW_PIPELINE
    )
    assert status == 200
    new_id = json.loads(body)["_embedded"]["pipelines"][0]["id"]
    names = {}
    for emu in (one, two):
        _, listing = await call(session, emu, "GET", PIPELINES, token=emu.admin_token)
        names[emu.port] = [p["name"] for p in json.loads(listing)["_embedded"]["pipelines"]]
    assert names[one.port] == ["Воронка", "Fleet"]
    assert names[two.port] == ["Воронка"]
    status, _ = await call(session, two, "GET", f"{PIPELINES}/{new_id}", token=two.admin_token)
    assert status == 404


async def test_each_account_has_its_own_rate_limit(
    fleet: EmulatorFleet, session: aiohttp.ClientSession
) -> None:
    one, two = fleet[0], fleet[1]
    firsts = [
        (await call(session, emu, "GET", PIPELINES, token=emu.admin_token))[0]
        for emu in (one, two)
        for _ in range(7)
    ]
    assert firsts == [200] * 14  # one window (the clock stands still): 7 each
    status, body = await call(session, one, "GET", PIPELINES, token=one.admin_token)
    assert status == 429 and json.loads(body)["retry_after"] == 1.0
    stats = {}
    for emu in (one, two):
        async with session.get(emu.url + STATS) as resp:
            stats[emu.port] = await resp.json()
    assert stats[one.port]["rate_limited"] == 1
    assert stats[one.port]["responses"] == {"200": 7, "429": 1}
    assert stats[two.port]["rate_limited"] == 0
    assert stats[two.port]["responses"] == {"200": 7}
    assert stats[two.port]["requests"] == 7


async def test_one_accounts_tokens_are_refused_by_another(
    fleet: EmulatorFleet, session: aiohttp.ClientSession
) -> None:
    one, two = fleet[0], fleet[1]
    for token in (one.admin_token, one.user_token):
        status, body = await call(session, two, "GET", PIPELINES, token=token)
        assert status == 401 and json.loads(body)["detail"] == "Token is invalid"
    entries = (await log_of(session, two))["entries"]
    assert [e["token_kind"] for e in entries] == ["other", "other"]


async def test_the_log_over_http(
    fleet: EmulatorFleet, session: aiohttp.ClientSession, emu_clock: ManualClock
) -> None:
    emu = fleet[2]
    await call(session, emu, "GET", PIPELINES, token=emu.admin_token, params={"page": "1"})
    emu_clock.advance(0.25)
    await call(session, emu, "POST", PIPELINES, token=emu.user_token, json=NEW_PIPELINE)
    await call(session, emu, "GET", PIPELINES, agent="other-agent/2")
    body = await log_of(session, emu)
    assert body["next"] == 3
    entries = body["entries"]
    assert [(e["index"], e["method"], e["path"], e["query"]) for e in entries] == [
        (0, "GET", PIPELINES, "page=1"),
        (1, "POST", PIPELINES, ""),
        (2, "GET", PIPELINES, ""),
    ]
    assert [(e["status"], e["outcome"], e["token_kind"]) for e in entries] == [
        (200, "ok", "admin"),
        (403, "403", "user"),
        (401, "401", None),
    ]
    assert [e["user_agent"] for e in entries] == ["fleet-test/1"] * 2 + ["other-agent/2"]
    assert [(e["arrived_at"], e["finished_at"]) for e in entries] == [
        (1000.0, 1000.0),
        (1000.25, 1000.25),
        (1000.25, 1000.25),
    ]
    for entry in entries:
        host, _, port = entry["peer"].rpartition(":")
        assert host == "127.0.0.1" and 0 < int(port) < 65536
        assert entry["processed_status"] is None and entry["latency"] == 0.0
        assert "token" not in entry and "body" not in entry
    # the control endpoints log nothing themselves
    assert (await log_of(session, emu, since=3)) == {"entries": [], "next": 3}
    assert (await log_of(session, emu, since=1))["entries"] == entries[1:]
    assert (await log_of(session, emu, since=99)) == {"entries": [], "next": 3}


async def test_finished_at_marks_when_a_slow_answer_left(
    session: aiohttp.ClientSession,
) -> None:
    async with EmulatorFleet(1, config=EmulatorConfig(token_rps=None)) as fleet:
        emu = fleet[0]
        emu.faults.add(Fault.latency(0.2), method="POST", path=PIPELINES)
        await call(session, emu, "POST", PIPELINES, token=emu.admin_token, json=NEW_PIPELINE)
        (entry,) = (await log_of(session, emu))["entries"]
        assert entry["status"] == 200 and entry["latency"] == 0.2
        assert entry["finished_at"] - entry["arrived_at"] >= 0.2


async def test_a_dropped_connection_is_logged_with_its_end(
    session: aiohttp.ClientSession,
) -> None:
    async with EmulatorFleet(1, config=EmulatorConfig(token_rps=None)) as fleet:
        emu = fleet[0]
        emu.faults.add(Fault.commit_then_drop(), method="POST", path=PIPELINES)
        with pytest.raises(aiohttp.ClientError):
            await call(session, emu, "POST", PIPELINES, token=emu.admin_token, json=NEW_PIPELINE)
        (entry,) = (await log_of(session, emu))["entries"]
        assert (entry["status"], entry["outcome"]) == (None, "fault:commit-then-drop")
        assert entry["processed_status"] == 200
        assert entry["finished_at"] is not None and entry["finished_at"] >= entry["arrived_at"]


async def test_bad_since_and_methods(fleet: EmulatorFleet, session: aiohttp.ClientSession) -> None:
    base = fleet[0].url
    for since in ("-1", "x", "1.5", ""):
        async with session.get(f"{base}{LOG}", params={"since": since}) as resp:
            assert resp.status == 400 and resp.content_type == "application/problem+json"
    for path in (LOG, STATS):
        async with session.post(base + path) as resp:
            assert resp.status == 405
    async with session.get(base + STATS) as resp:
        assert (await resp.json())["requests"] == 0


async def test_seeds_are_derived_per_account_and_reproducible(
    session: aiohttp.ClientSession,
) -> None:
    config = EmulatorConfig(token_rps=None, seed=11, fault_rates={"500": 0.5})
    outcomes: list[list[list[int]]] = []
    tokens = []
    for _ in range(2):
        async with EmulatorFleet(2, config=config) as fleet:
            tokens.append([(emu.admin_token, emu.user_token) for emu in fleet])
            # loops, not nested comprehensions: Python 3.10 refuses await in an inner one
            per_account = []
            for emu in fleet:
                statuses = []
                for _ in range(24):
                    reply = await call(session, emu, "GET", PIPELINES, token=emu.admin_token)
                    statuses.append(reply[0])
                per_account.append(statuses)
            outcomes.append(per_account)
    assert tokens[0] == tokens[1]
    assert outcomes[0] == outcomes[1]
    first, second = outcomes[0]
    assert first != second
    assert {500, 200} <= set(first) and {500, 200} <= set(second)


def test_ports_follow_the_configured_one_and_given_tokens_get_a_suffix() -> None:
    config = EmulatorConfig(port=18000, admin_token="adm", user_token="usr", seed=None)
    fleet = EmulatorFleet(3, config=config)
    assert [emu.config.port for emu in fleet] == [18000, 18001, 18002]
    assert [emu.admin_token for emu in fleet] == ["adm-1", "adm-2", "adm-3"]
    assert [emu.user_token for emu in fleet] == ["usr-1", "usr-2", "usr-3"]
    assert [emu.config.seed for emu in fleet] == [None] * 3
    with pytest.raises(ValueError):
        EmulatorFleet(0)


async def test_a_port_taken_stops_the_others(session: aiohttp.ClientSession) -> None:
    async with Emulator(EmulatorConfig()) as taken:
        fleet = EmulatorFleet(3, config=EmulatorConfig(port=taken.port - 1))
        with pytest.raises(OSError):
            await fleet.start()
        assert not fleet.running
        assert [emu.running for emu in fleet] == [False] * 3


async def test_a_hundred_accounts_start_and_stop_quickly(
    session: aiohttp.ClientSession,
) -> None:
    began = time.monotonic()
    async with EmulatorFleet(100) as fleet:
        started = time.monotonic() - began
        answers = await asyncio.gather(
            *(call(session, emu, "GET", PIPELINES, token=emu.admin_token) for emu in fleet)
        )
        assert [status for status, _ in answers] == [200] * 100
        assert len({emu.port for emu in fleet}) == 100
        stopping = time.monotonic()
    stopped = time.monotonic() - stopping
    assert not fleet.running
    assert started < 5.0 and stopped < 5.0, (started, stopped)


REQUESTS = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.sampled_from(["GET", "POST", "DELETE"]),
        st.sampled_from(["admin", "user", "other", None]),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=REQUESTS, sinces=st.lists(st.integers(0, 20), min_size=1, max_size=5))
async def test_log_increments_add_up_to_what_each_account_was_sent(
    requests: list[tuple[int, str, str | None]], sinces: list[int]
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        EmulatorFleet(2, config=EmulatorConfig(token_rps=None, account_rps=None)) as fleet,
    ):
        sent: list[list[tuple[str, str | None]]] = [[], []]
        polled: list[list[dict[str, Any]]] = [[], []]
        cursors = [0, 0]
        for index, method, kind in requests:
            emu = fleet[index]
            token = {"admin": emu.admin_token, "user": emu.user_token, "other": "x"}.get(kind or "")
            path = f"{PIPELINES}/1" if method == "DELETE" else PIPELINES
            await call(session, emu, method, path, token=token, json=NEW_PIPELINE)
            sent[index].append((method, kind))
            # a poller reading increments from where its last read ended
            part = await log_of(session, emu, cursors[index])
            polled[index] += part["entries"]
            cursors[index] = part["next"]
        for index, emu in enumerate(fleet):
            whole = await log_of(session, emu)
            assert whole["next"] == len(sent[index])
            assert [(e["method"], e["token_kind"]) for e in whole["entries"]] == sent[index]
            assert polled[index] == whole["entries"]
            for since in sinces:
                part = await log_of(session, emu, since)
                assert part == {"entries": whole["entries"][since:], "next": whole["next"]}
