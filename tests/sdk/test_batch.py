"""Batch creates under failure, against the emulator: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from support.constants import MAIN, MAIN_STATUSES, PIPELINES
from support.emulated import fast_client

from amo_pipelines import (
    AmoClient,
    BatchError,
    NewPipeline,
    NewStatus,
    RequestTimeoutError,
    ResponseLostError,
    ServerError,
)
from amo_pipelines.emulator import Emulator, Fault


def items(n: int, prefix: str = "S") -> list[NewStatus]:
    return [NewStatus(name=f"{prefix}{i}", sort=100 + i) for i in range(n)]


def names_in(emu: Emulator, pipeline_id: int = MAIN) -> Counter[str]:
    return Counter(s.name for s in emu.state.pipelines[pipeline_id].statuses.values())


def calls(emu: Emulator, path: str = MAIN_STATUSES) -> list[tuple[str, int]]:
    """(method, items in the body) of every request to ``path``."""
    return [
        (e.method, len(e.json) if e.method == "POST" else 0)
        for e in emu.request_log
        if e.path == path
    ]


async def test_commit_then_drop_is_reconciled_without_a_second_post(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    await amo_emu.pipelines.list()  # the client has seen the account's ids
    emu.faults.add(Fault.commit_then_drop(), method="POST", path=MAIN_STATUSES)
    created = await amo_emu.statuses.create(MAIN, items(5))
    assert [s.name for s in created] == [f"S{i}" for i in range(5)]
    assert all(names_in(emu)[f"S{i}"] == 1 for i in range(5))
    assert [s.id for s in created] == sorted(s.id for s in created)
    assert calls(emu) == [("POST", 5), ("GET", 0)]


async def test_a_reset_before_processing_is_reconciled_and_sent_again(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    await amo_emu.pipelines.list()
    emu.faults.add(Fault.reset(), method="POST", path=MAIN_STATUSES)
    created = await amo_emu.statuses.create(MAIN, items(5))
    assert len(created) == 5
    assert all(names_in(emu)[f"S{i}"] == 1 for i in range(5))
    # Listed at once and again after the processing horizon: only then sent again.
    assert calls(emu) == [("POST", 5), ("GET", 0), ("GET", 0), ("POST", 5)]


async def test_without_a_watermark_the_call_reads_the_list_first(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    emu.faults.add(Fault.commit_then_drop(), method="POST", path=MAIN_STATUSES)
    created = await amo_emu.statuses.create(MAIN, items(3))
    assert len(created) == 3 and all(names_in(emu)[f"S{i}"] == 1 for i in range(3))
    assert calls(emu, PIPELINES) == [("GET", 0)]  # the watermark, before anything is sent
    assert emu.request_log[0].path == PIPELINES
    assert calls(emu) == [("POST", 3), ("GET", 0)]


async def test_concurrent_creates_share_one_watermark_read(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    pipelines = await amo_emu.pipelines.create(
        [NewPipeline(name=f"P{i}", sort=i) for i in range(5)]
    )
    fresh = fast_client(emu)  # has seen nothing of the account yet
    async with fresh:
        emu.clear_log()
        await asyncio.gather(*(fresh.statuses.create(p.id, items(3)) for p in pipelines))
    reads = [e for e in emu.request_log if e.method == "GET"]
    assert [e.path for e in reads] == [PIPELINES]
    assert sum(1 for e in emu.request_log if e.method == "POST") == 5


async def test_a_pre_existing_status_with_the_same_name_is_not_mistaken_for_ours(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    await amo_emu.statuses.create(MAIN, items(2))  # S0 and S1 already exist
    emu.faults.add(Fault.reset(), method="POST", path=MAIN_STATUSES)
    created = await amo_emu.statuses.create(MAIN, items(2))
    assert names_in(emu)["S0"] == 2 and names_in(emu)["S1"] == 2
    assert len({s.id for s in created}) == 2


async def test_an_uncommitted_504_splits_the_rest_in_half(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    await amo_emu.pipelines.list()
    emu.faults.add(Fault.status(504), method="POST", path=MAIN_STATUSES)
    created = await amo_emu.statuses.create(MAIN, items(10))
    assert [s.name for s in created] == [f"S{i}" for i in range(10)]
    assert all(n == 1 for name, n in names_in(emu).items() if name.startswith("S"))
    assert calls(emu)[:3] == [("POST", 10), ("GET", 0), ("GET", 0)]
    assert sorted(calls(emu)[3:]) == [("POST", 5), ("POST", 5)]


async def test_a_committed_504_is_recognised_and_not_sent_again(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    await amo_emu.pipelines.list()
    emu.faults.add(Fault.status(504, commit=True), method="POST", path=MAIN_STATUSES)
    created = await amo_emu.statuses.create(MAIN, items(10))
    assert len(created) == 10
    assert all(n == 1 for name, n in names_in(emu).items() if name.startswith("S"))
    assert calls(emu) == [("POST", 10), ("GET", 0)]


@pytest.mark.parametrize("status", [500, 502])
async def test_one_failed_chunk_among_many(amo_emu: AmoClient, emu: Emulator, status: int) -> None:
    await amo_emu.pipelines.list()
    emu.faults.add(Fault.status(status), method="POST", path=MAIN_STATUSES, times=1)
    created = await amo_emu.statuses.create(MAIN, items(25), batch_size=10)
    assert [s.name for s in created] == [f"S{i}" for i in range(25)]
    assert all(n == 1 for name, n in names_in(emu).items() if name.startswith("S"))
    assert sum(1 for method, _ in calls(emu) if method == "POST") == 4


async def test_pipelines_are_reconciled_too(amo_emu: AmoClient, emu: Emulator) -> None:
    await amo_emu.pipelines.list()
    emu.faults.add(Fault.commit_then_drop(), method="POST", path=PIPELINES)
    created = await amo_emu.pipelines.create(
        [NewPipeline(name=f"P{i}", sort=i, statuses=items(2)) for i in range(3)]
    )
    assert [p.name for p in created] == ["P0", "P1", "P2"]
    assert all(len(p.custom_statuses) == 2 for p in created)
    assert Counter(p.name for p in emu.state.pipelines.values()) == Counter(
        {"Воронка": 1, "P0": 1, "P1": 1, "P2": 1}
    )


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status(500), ServerError),
        (Fault.commit_then_drop(), ResponseLostError),
        (Fault.latency(2.0), RequestTimeoutError),
    ],
)
async def test_raise_mode_reports_what_may_have_been_written(
    emu: Emulator, fault: Fault, error: type[Exception]
) -> None:
    async with fast_client(emu, on_ambiguous="raise", timeout=0.5) as amo:
        emu.faults.add(fault, method="POST", path=MAIN_STATUSES)
        with pytest.raises(BatchError) as info:
            await amo.statuses.create(MAIN, items(3))
    assert info.value.unknown == [0, 1, 2]
    assert all(isinstance(e, error) for e in info.value.errors.values())
    assert info.value.results == [None, None, None]
    assert sum(1 for method, _ in calls(emu) if method == "POST") == 1


async def test_when_reconciliation_cannot_read_the_list_the_items_are_reported_unknown(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    await amo_emu.pipelines.list()
    emu.faults.add(Fault.commit_then_drop(), method="POST", path=MAIN_STATUSES)
    emu.faults.add(Fault.status(503), method="GET", path=MAIN_STATUSES, times=None)
    with pytest.raises(BatchError) as info:
        await amo_emu.statuses.create(MAIN, items(2))
    assert info.value.unknown == [0, 1]
    assert names_in(emu)["S0"] == 1  # it was written; the caller is told it may have been
