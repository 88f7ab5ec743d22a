"""copy_funnels reads a target's statuses only where a source pipeline matches one of its
pipelines, each once, and none when matching fails."""

from __future__ import annotations

import contextlib

from support.emulated import writes
from support.funnels_helpers import account, fill_source

from amo_pipelines import NewPipeline, NewStatus
from amo_pipelines.emulator import Emulator
from amo_pipelines.funnels import CopyTarget, PlanError, copy_funnels

PIPELINES = "/api/v4/leads/pipelines"


def status_reads(emu: Emulator) -> list[str]:
    return sorted(
        e.path for e in emu.request_log if e.method == "GET" and e.path.endswith("/statuses")
    )


async def test_a_second_copy_reads_only_matched_pipelines_once() -> None:
    async with contextlib.AsyncExitStack() as stack:
        _, source = await stack.enter_async_context(account())
        await fill_source(source)
        emu, target = await stack.enter_async_context(account(seed_account=False))
        first = await copy_funnels(source, [CopyTarget(target)])
        assert not first.failed
        # A pipeline of the target's own, with statuses: nothing in the source stands for it.
        [own] = await target.pipelines.create(
            [NewPipeline(name="Only here", sort=90, statuses=[NewStatus(name="Mine", sort=10)])]
        )
        emu.clear_log()
        again = await copy_funnels(source, [CopyTarget(target)])
        assert not again.failed and again.targets[0].writes == 0
        assert writes(emu) == []
        copied = first.targets[0].pipeline_ids.values()
        assert status_reads(emu) == sorted(f"{PIPELINES}/{pid}/statuses" for pid in copied)
        assert f"{PIPELINES}/{own.id}/statuses" not in status_reads(emu)
        assert [e.query for e in emu.request_log if e.path.endswith("/statuses")] == [
            "with=descriptions"
        ] * len(copied)


async def test_a_target_whose_names_can_not_be_matched_is_not_read() -> None:
    async with contextlib.AsyncExitStack() as stack:
        _, source = await stack.enter_async_context(account())
        await fill_source(source)
        emu, target = await stack.enter_async_context(account(seed_account=False))
        twice = [NewStatus(name="Step", sort=10)]
        await target.pipelines.create(
            [
                NewPipeline(name="Продажи", sort=20, statuses=twice),
                NewPipeline(name="Продажи", sort=30, statuses=twice),
            ]
        )
        emu.clear_log()
        result = await copy_funnels(source, [CopyTarget(target)])
        error = result.targets[0].error
        assert isinstance(error, PlanError) and "Продажи" in str(error)
        assert [(e.method, e.path) for e in emu.request_log] == [("GET", PIPELINES)]
