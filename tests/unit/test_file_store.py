"""The machine-wide default store: which store a client gets, where it keeps its files,
and the fallback where it can not."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amo_pipelines import AmoClient, FakeClock, FileWindowStore, InMemoryWindowStore, RateLimiter
from amo_pipelines.budget.windows import Denied, Granted, PenaltyRule, Window
from amo_pipelines.stores import default_directory
from amo_pipelines.testing import MockTransport, json_response
from amo_pipelines.transport import Request, Response

TOKEN = "secret-token-abc123"
RULE = PenaltyRule(factor=0.5, step=0.1, interval=1.0, minimum=1 / 64)


async def test_a_client_on_the_system_clock_shares_the_machine_wide_store() -> None:
    async with AmoClient(subdomain="example", access_token=TOKEN, transport=MockTransport()) as amo:
        assert isinstance(amo.rate_limiter.store, FileWindowStore)
        assert amo.rate_limiter.store.directory == default_directory()


async def test_a_client_on_a_virtual_clock_keeps_a_per_loop_store() -> None:
    clock = FakeClock()
    async with AmoClient(
        subdomain="example", access_token=TOKEN, transport=MockTransport(), clock=clock
    ) as amo:
        assert isinstance(amo.rate_limiter.store, InMemoryWindowStore)
        assert amo.rate_limiter.clock is clock


def test_the_in_memory_store_keeps_per_loop_behaviour() -> None:
    """RateLimiter(store=InMemoryWindowStore()) per loop: two loops do not share."""
    arrivals: list[float] = []

    def handler(request: Request) -> Response:
        arrivals.append(time.monotonic())
        return json_response({"id": 1})

    async def seven() -> None:
        limiter = RateLimiter(store=InMemoryWindowStore())
        async with AmoClient(
            subdomain="example",
            access_token=TOKEN,
            transport=MockTransport(handler),
            rate_limiter=limiter,
        ) as amo:
            await asyncio.gather(*(amo.request("GET", "/x") for _ in range(7)))

    asyncio.run(seven())
    asyncio.run(seven())
    assert arrivals[13] - arrivals[0] < 1.0  # 14 in one second: nothing was shared


def test_two_loops_share_the_default_store() -> None:
    arrivals: list[float] = []

    def handler(request: Request) -> Response:
        arrivals.append(time.monotonic())
        return json_response({"id": 1})

    async def seven() -> None:
        async with AmoClient(
            subdomain="example", access_token=TOKEN, transport=MockTransport(handler)
        ) as amo:
            await asyncio.gather(*(amo.request("GET", "/x") for _ in range(7)))

    asyncio.run(seven())
    asyncio.run(seven())
    assert len(arrivals) == 14 and arrivals[7] - arrivals[0] >= 1.0


async def test_the_folder_and_files_are_private_and_hold_no_token() -> None:
    async with AmoClient(
        subdomain="example",
        access_token=TOKEN,
        transport=MockTransport(responses=[json_response({})]),
    ) as amo:
        await amo.request("GET", "/x")
        store = amo.rate_limiter.store
        assert isinstance(store, FileWindowStore)
    folder = store.directory
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
    files = list(folder.iterdir())
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
        assert TOKEN.encode() not in path.read_bytes()
    assert TOKEN not in repr(store)


async def test_without_a_private_folder_each_loop_keeps_its_own_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "common"
    shared.mkdir()
    os.chmod(shared, 0o777)  # others could write it: not a place for the budget
    monkeypatch.setenv("AMO_PIPELINES_STATE_DIR", str(shared))
    with caplog.at_level(logging.WARNING, logger="amo_pipelines.budget.limiter"):
        first = RateLimiter().store
        second = RateLimiter().store
    assert isinstance(first, InMemoryWindowStore) and isinstance(second, InMemoryWindowStore)
    warnings = [r for r in caplog.records if "no machine-wide window store" in r.getMessage()]
    assert len(warnings) <= 1  # once per process (an earlier test may have had it)


def test_an_explicit_folder_is_created_private(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path / "a" / "b", lease=1.0)
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    store.close()


@settings(max_examples=30, deadline=None)
@given(junk=st.binary(max_size=200))
def test_whatever_is_in_the_file_the_store_keeps_working(junk: bytes) -> None:
    """The file is the only input from outside the process: a torn write (the tail of a
    longer old state after a new one) or anything else must not break a grant."""
    directory = Path(tempfile.mkdtemp())
    try:
        store = FileWindowStore(directory / "budget", lease=1.0)
        window = Window("i|acme|fp", 7, 1.0)

        async def one() -> object:
            return await store.acquire_account("acme", [window], RULE)

        first = asyncio.run(one())
        assert isinstance(first, Granted)
        [path] = (directory / "budget").iterdir()
        path.write_bytes(path.read_bytes() + junk)  # a torn rewrite: old tail after it
        assert isinstance(asyncio.run(one()), Granted | Denied)
        path.write_bytes(junk)
        assert isinstance(asyncio.run(one()), Granted)
        store.close()
    finally:
        shutil.rmtree(directory)


def test_a_torn_rewrite_keeps_the_grants_it_holds(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path / "budget", lease=1.0)
    window = Window("i|acme|fp", 2, 1.0)

    async def one() -> object:
        return await store.acquire_account("acme", [window], RULE)

    async def two() -> list[object]:
        return [await one(), await one()]

    assert all(isinstance(a, Granted) for a in asyncio.run(two()))
    [path] = (tmp_path / "budget").iterdir()
    path.write_bytes(path.read_bytes() + b'"w": {"stale": [["x", 1e300]]}}')
    assert isinstance(asyncio.run(one()), Denied)  # the two places are still held
    store.close()
