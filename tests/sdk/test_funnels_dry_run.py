"""copy_funnels(dry_run=True): every target planned, nothing written anywhere."""

from __future__ import annotations

import contextlib

import attrs
from support.emulated import unlimited_config, writes
from support.funnels_helpers import account, fill_source, funnels_client

from amo_pipelines import NewPipeline
from amo_pipelines.emulator import Emulator
from amo_pipelines.funnels import (
    CopyTarget,
    FunnelsSpec,
    Plan,
    PlanError,
    copy_funnels,
    export,
    make_plan,
)


def undated(spec: FunnelsSpec) -> FunnelsSpec:
    """``spec`` without its export time: two reads a second apart differ only there."""
    assert spec.source is not None and spec.source.exported_at
    return attrs.evolve(spec, source=attrs.evolve(spec.source, exported_at=None))


async def test_a_dry_run_plans_every_target_and_writes_nothing() -> None:
    async with contextlib.AsyncExitStack() as stack:
        src_emu, source = await stack.enter_async_context(account())
        await fill_source(source)
        pairs = [await stack.enter_async_context(account(seed_account=False)) for _ in range(3)]
        emus, clients = [e for e, _ in pairs], [c for _, c in pairs]
        targets = [CopyTarget(c) for c in clients]
        # The last target already holds the funnels, but one status lost its description.
        await copy_funnels(source, targets[2:])
        sales = next(p for p in emus[2].state.pipelines.values() if p.name == "Продажи")
        described = next(s for s in sales.statuses.values() if s.descriptions)
        described.descriptions.clear()
        src_emu.clear_log()
        for e in emus:
            e.clear_log()

        result = await copy_funnels(source, targets, dry_run=True)

        assert writes(src_emu) == [] and all(writes(e) == [] for e in emus)
        assert not result.failed
        spec = await export(source)
        assert undated(result.spec) == undated(spec)
        for client, outcome in zip(clients, result.targets, strict=True):
            plan = outcome.plan
            assert isinstance(plan, Plan)
            # The plan make_plan gives for the export, summary and all.
            expected = await make_plan(client, spec)
            assert plan.render() == expected.render()
            assert plan.summary().startswith(f"Plan for {outcome.target}:")
            assert outcome.writes == plan.writes and outcome.lines == plan.lines
        fresh, _, done = result.targets
        assert fresh.plan is not None and fresh.plan.writes > 0
        assert len(fresh.pipeline_ids) < len(spec.pipelines)  # the new ones have no id yet
        assert done.plan is not None and done.plan.writes == 1
        assert [line.op for line in done.plan.lines if line.op != "!"] == ["~"]
        # The matched pipelines and statuses are in the id map already.
        assert len(done.pipeline_ids) == len(spec.pipelines)
        # Nothing was written by the dry run: a real copy still has everything to do.
        real = await copy_funnels(source, targets[:1])
        assert real.targets[0].writes > 0
        again = await copy_funnels(source, targets, dry_run=True)
        assert again.targets[0].plan is not None and not again.targets[0].plan.has_changes


async def test_a_target_that_can_not_be_planned_carries_its_error() -> None:
    async with contextlib.AsyncExitStack() as stack:
        _, source = await stack.enter_async_context(account())
        await fill_source(source)
        bad_emu = await stack.enter_async_context(Emulator(unlimited_config()))
        bad = await stack.enter_async_context(funnels_client(bad_emu))
        # Two pipelines named like one of the source's: matching by name is ambiguous.
        await bad.pipelines.create(
            [NewPipeline(name="Plain", sort=50), NewPipeline(name="Plain", sort=60)]
        )
        bad_emu.clear_log()
        result = await copy_funnels(source, [CopyTarget(bad, label="bad")], dry_run=True)
        [outcome] = result.targets
        assert isinstance(outcome.error, PlanError) and "'Plain'" in str(outcome.error)
        assert outcome.plan is None and writes(bad_emu) == []
