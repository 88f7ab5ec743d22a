"""amo_pipelines.funnels through its public API, against emulated accounts: export, plan,
apply, saved plans, pruning, locks and the requests on the wire."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest
from support.emulated import writes
from support.funnels_helpers import account, fill_source, funnel, shape

from amo_pipelines import LOST_STATUS_ID, WON_STATUS_ID, AmoClient, AmoError, PipelineUpdate
from amo_pipelines.emulator import Emulator, Fault
from amo_pipelines.funnels import (
    ApplyError,
    ApplyLockedError,
    CopyTarget,
    LocalApplyLock,
    PlanError,
    StalePlanError,
    apply,
    copy_funnels,
    dumps_spec,
    export,
    load_source,
    loads_spec,
    lock_for,
    make_plan,
    save_plan,
)
from amo_pipelines.funnels.export import account_host


async def test_export_apply_to_an_empty_account_then_export_gives_the_same_funnels() -> None:
    async with (
        account() as (source_emu, source),
        account(seed_account=False) as (
            target_emu,
            target,
        ),
    ):
        await fill_source(source)
        count = len(source_emu.request_log)
        spec = await export(source)
        # One GET of the pipelines, one GET of statuses with descriptions per pipeline.
        read = [(e.method, e.path, e.query) for e in source_emu.request_log[count:]]
        assert read[0] == ("GET", "/api/v4/leads/pipelines", "")
        assert sorted(read[1:]) == sorted(
            ("GET", f"/api/v4/leads/pipelines/{p.id}/statuses", "with=descriptions")
            for p in spec.pipelines
        )
        assert len(spec.pipelines) == 3
        # Through the file's text, as the CLI does.
        again = loads_spec(dumps_spec(spec), path="export.yaml")
        assert again == spec
        result = await apply(target, again)
        copied = await export(target)
        assert shape(copied) == shape(spec)
        # Fewest writes: one POST of the two new pipelines (the plain one with its statuses
        # embedded), one statuses POST for the described pipeline, one for the main one.
        assert sorted(m for m, _ in writes(target_emu)) == ["POST", "POST", "POST"]
        assert result.plan.writes == 3
        # 142/143 map to themselves; every source status has a target.
        sales = next(i for i, p in enumerate(spec.pipelines) if p.name == "Продажи")
        won = next(j for j, s in enumerate(spec.pipelines[sales].statuses) if s.role == "won")
        assert result.status_ids[(sales, won)] == WON_STATUS_ID
        assert len(result.status_ids) == sum(len(p.statuses) for p in spec.pipelines)


async def test_a_second_apply_sends_no_writes_and_the_plan_is_empty() -> None:
    async with account() as (_, source), account(seed_account=False) as (emu, target):
        await fill_source(source)
        spec = await export(source)
        await apply(target, spec)
        before = len(writes(emu))
        result = await apply(target, spec)
        assert not result.plan.has_changes
        assert result.plan.lines == [] or all(line.op == "!" for line in result.plan.lines)
        assert len(writes(emu)) == before


async def test_applying_an_accounts_own_export_changes_nothing() -> None:
    # Off-palette colors (the seeded #99ccff and #ffcc66) stay: they already are the file's.
    async with account() as (emu, amo):
        spec = await export(amo)
        plan = await make_plan(amo, spec)
        assert not plan.has_changes
        assert plan.warnings == []
        assert writes(emu) == []


async def test_reordering_moves_only_what_is_out_of_place() -> None:
    async with account(seed_account=False) as (emu, amo):
        text = "pipelines:\n- name: Воронка\n  statuses:\n" + "".join(
            f"  - name: S{i}\n" for i in range(1, 7)
        )
        await apply(amo, loads_spec(text))
        # S6 to the front and S3 to the end: two moves, nothing else.
        order = [6, 1, 2, 4, 5, 3]
        text = "pipelines:\n- name: Воронка\n  statuses:\n" + "".join(
            f"  - name: S{i}\n" for i in order
        )
        spec = loads_spec(text)
        plan = await make_plan(amo, spec)
        assert plan.writes == 2
        count = len(writes(emu))
        await apply(amo, spec)
        assert [m for m, _ in writes(emu)[count:]] == ["PATCH", "PATCH"]
        [pipeline] = await amo.pipelines.list()
        assert [s.name for s in pipeline.custom_statuses] == [f"S{i}" for i in order]
        assert not (await make_plan(amo, spec)).has_changes


async def test_pipelines_are_matched_by_id_on_their_own_account() -> None:
    async with account() as (emu, amo):
        spec = await export(amo)
        await amo.pipelines.update(spec.pipelines[0].id or 0, PipelineUpdate(name="Renamed"))
        plan = await make_plan(amo, spec)
        assert [line.op for line in plan.lines] == ["~"]
        assert "'Renamed' -> 'Воронка'" in plan.lines[0].text
        await apply(amo, spec)
        assert [m for m, _ in writes(emu)] == ["PATCH", "PATCH"]  # ours, then apply's


async def test_ambiguous_names_are_an_error_naming_them() -> None:
    text = "pipelines:\n- name: Воронка\n  statuses:\n  - name: Twin\n  - name: Twin\n"
    async with account(seed_account=False) as (emu, amo):
        spec = loads_spec(text)
        await apply(amo, spec)  # nothing to match yet: both are created
        with pytest.raises(PlanError, match="'Twin'"):
            await make_plan(amo, spec)
        twins = "pipelines:\n- name: Воронка\n- name: Воронка\n"
        with pytest.raises(PlanError, match="'Воронка'"):
            await make_plan(amo, loads_spec(twins))
        assert len(writes(emu)) == 1


async def test_off_palette_colors_are_mapped_to_the_nearest_with_a_warning() -> None:
    text = "pipelines:\n- name: Воронка\n  statuses:\n  - {name: A, color: '#99CCFF'}\n"
    async with account(seed_account=False) as (_, amo):
        plan = await make_plan(amo, loads_spec(text))
        assert any("#99ccff" in w and "#98cbff" in w for w in plan.warnings)
        await apply(amo, loads_spec(text))
        [pipeline] = await amo.pipelines.list()
        assert pipeline.custom_statuses[0].color == "#98cbff"
        assert not (await make_plan(amo, loads_spec(text))).has_changes


async def test_system_statuses_are_never_created_deleted_or_moved() -> None:
    text = (
        "pipelines:\n- name: Воронка\n  statuses:\n"
        "  - {role: won, name: Won!}\n  - {name: A}\n  - {role: incoming, name: In}\n"
    )
    async with account(seed_account=False) as (emu, amo):
        spec = loads_spec(text)
        plan = await make_plan(amo, spec, prune=True)
        # Only A is created; the system statuses' names can not be edited: warnings.
        assert [line.op for line in plan.lines if line.op != "!"] == ["+"]
        assert len(plan.warnings) == 2
        await apply(amo, spec, prune=True)
        [pipeline] = await amo.pipelines.list()
        assert {WON_STATUS_ID, LOST_STATUS_ID} <= {s.id for s in pipeline.statuses}
        assert [s.name for s in pipeline.custom_statuses] == ["A"]
        assert writes(emu) == [("POST", f"/api/v4/leads/pipelines/{pipeline.id}/statuses")]


async def test_deletions_only_with_prune_and_a_pipeline_with_leads_is_reported() -> None:
    async with account() as (emu, amo):
        await fill_source(amo)
        spec = loads_spec("pipelines:\n- name: Воронка\n  is_main: true\n")
        assert not (await make_plan(amo, spec)).has_changes
        plan = await make_plan(amo, spec, prune=True)
        assert [line.op for line in plan.lines if line.op != "!"] == ["-", "-", "-", "-"]
        sales = next(p for p in emu.state.ordered_pipelines() if p.name == "Продажи")
        first = sales.regular_statuses()[0]
        emu.state.set_leads(sales.id, first.id, 3)
        with pytest.raises(ApplyError) as failed:
            await apply(amo, spec, prune=True)
        [failure] = failed.value.failures
        assert "'Продажи'" in failure and "holds leads" in failure
        names = [p.name for p in await amo.pipelines.list()]
        assert names == ["Воронка", "Продажи"]


async def test_a_saved_plan_is_refused_once_the_account_changed(tmp_path: Path) -> None:
    async with account() as (emu, amo):
        spec = loads_spec("pipelines:\n- name: Воронка\n  statuses:\n  - name: New\n")
        saved = tmp_path / "plan.json"
        save_plan(await make_plan(amo, spec), saved)
        await amo.pipelines.update(3177727, PipelineUpdate(name="Changed meanwhile"))
        count = len(writes(emu))
        with pytest.raises(StalePlanError, match="changed since"):
            await apply(amo, load_source(saved))
        assert len(writes(emu)) == count
        # A fresh plan of the same account applies.
        save_plan(await make_plan(amo, spec), saved)
        result = await apply(amo, load_source(saved))
        # By name, "Воронка" is now missing: one POST creates it with its status embedded.
        assert result.plan.writes == 1


async def test_one_apply_per_account_at_a_time(tmp_path: Path) -> None:
    spec = loads_spec("pipelines:\n- name: Воронка\n  statuses:\n  - name: New\n")
    async with account() as (emu, amo):
        gate = asyncio.Event()

        async def slow_confirm(plan: object) -> bool:
            await gate.wait()
            return True

        first_lock = LocalApplyLock(tmp_path)
        first = asyncio.ensure_future(apply(amo, spec, lock=first_lock, confirm=slow_confirm))
        await asyncio.sleep(0.1)
        # The same lock object (in-process) and another one on the same folder (the file
        # lock, as another process would see it) both refuse.
        with pytest.raises(ApplyLockedError, match=r"another apply to 127\.0\.0\.1:\d+"):
            await apply(amo, spec, lock=first_lock)
        with pytest.raises(ApplyLockedError, match="process"):
            await apply(amo, spec, lock=LocalApplyLock(tmp_path))
        gate.set()
        await first
        assert len(writes(emu)) == 1
        assert not (await apply(amo, spec, lock=LocalApplyLock(tmp_path))).plan.has_changes
        assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o700


async def test_prune_replaces_the_main_pipeline_by_a_new_one() -> None:
    async with account() as (emu, amo):
        spec = loads_spec("pipelines:\n- name: Fresh\n  is_main: true\n")
        plan = await make_plan(amo, spec, prune=True)
        assert plan.warnings == []  # the file names a main pipeline: no refusal expected
        await apply(amo, spec, prune=True)
        [pipeline] = await amo.pipelines.list()
        assert (pipeline.name, pipeline.is_main) == ("Fresh", True)
        assert [m for m, _ in writes(emu)] == ["POST", "DELETE"]  # created first, then pruned


# --- locks and failures around an apply -----------------------------------------------


def test_the_file_lock_lives_in_the_state_folder() -> None:
    async def one_apply() -> tuple[LocalApplyLock, str]:
        async with (
            Emulator() as emu,
            AmoClient(base_url=emu.url, access_token=emu.admin_token) as amo,
        ):
            lock = lock_for(amo)
            assert isinstance(lock, LocalApplyLock)
            await apply(amo, loads_spec(json.dumps(funnel("Одна"))))
            return lock, lock.path_for(account_host(amo)).name

    lock, name = asyncio.run(one_apply())
    state = Path(os.environ["AMO_PIPELINES_STATE_DIR"])  # the autouse fixture's folder
    assert lock.directory == state
    assert [p.name for p in state.glob("apply-*.lock")] == [name]
    assert oct(state.stat().st_mode & 0o777) == oct(0o700)


async def test_a_failed_source_listing_leaves_the_targets_unwritten_and_unlocked() -> None:
    async with account() as (source_emu, source), account() as (target_emu, target):
        source_emu.faults.add(Fault.status(500), path="/api/v4/leads/pipelines")
        with pytest.raises(AmoError) as failed:
            await copy_funnels(source, [CopyTarget(target)])
        assert failed.value.status == 500  # the source's own error, not a target's
        assert writes(target_emu) == []
        # Its lock was released: an apply to the target gets it at once (no wait).
        await apply(target, loads_spec(json.dumps(funnel("Потом"))))
        assert writes(target_emu) != []
