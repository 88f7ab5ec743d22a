"""Chaos: a whole migration through seeded faults ends in exactly the intended state."""

from __future__ import annotations

import asyncio

import pytest

from amo_pipelines import (
    AmoClient,
    DescriptionInput,
    DescriptionLevel,
    NewPipeline,
    NewStatus,
    PipelineUpdate,
    RateLimiter,
    RetryPolicy,
    StatusColor,
)
from amo_pipelines.emulator import Emulator, EmulatorConfig

PIPELINE_COUNT, STATUS_COUNT = 20, 40
FAULTS = {
    "500": 0.04,
    "502": 0.03,
    "503": 0.03,
    "504": 0.03,
    "reset": 0.04,
    "commit-then-drop": 0.05,
}
PALETTE = list(StatusColor)


def status_plan(p: int) -> list[NewStatus]:
    return [
        NewStatus(
            name=f"P{p} S{s}",
            sort=10 * (s + 1),
            color=PALETTE[(p + s) % len(PALETTE)],
            descriptions=[
                DescriptionInput.create(level, f"{level.value} at P{p} S{s} 🚀")
                for level in list(DescriptionLevel)[: 1 + s % 3]
            ],
        )
        for s in range(STATUS_COUNT)
    ]


@pytest.mark.parametrize(
    ("seed", "limits"),
    [
        pytest.param(11, False, id="seed11-no-limits"),
        # ~10 s: 7 requests a second for the whole migration
        pytest.param(23, True, id="seed23-at-7rps", marks=pytest.mark.slow),
        pytest.param(37, False, id="seed37-no-limits"),
        pytest.param(41, False, id="seed41-no-limits"),
    ],
)
async def test_migration_through_faults_ends_exactly_as_intended(seed: int, limits: bool) -> None:
    config = EmulatorConfig(
        seed=seed,
        fault_rates=FAULTS,
        latency=(0.0, 0.01),
        token_rps=7 if limits else None,
        account_rps=50 if limits else None,
    )
    limiter = RateLimiter() if limits else RateLimiter(integration_limit=None, account_limit=None)
    async with (
        Emulator(config) as emu,
        AmoClient(
            base_url=emu.url,
            access_token=emu.admin_token,
            rate_limiter=limiter,
            retry=RetryPolicy(max_attempts=10, backoff=0.02, max_backoff=0.2),
            batch_size=25,
            reconcile_wait=0.05,  # the emulator's faults commit at once or never
        ) as amo,
    ):
        created = await amo.pipelines.create(
            [NewPipeline(name=f"Chaos {p}", sort=100 + p) for p in range(PIPELINE_COUNT)]
        )
        statuses = await asyncio.gather(
            *(
                amo.statuses.create(pipeline.id, status_plan(p))
                for p, pipeline in enumerate(created)
            )
        )
        renamed = {pipeline.id: f"Chaos {p} renamed" for p, pipeline in enumerate(created[::2])}
        await amo.pipelines.update_many({i: PipelineUpdate(name=n) for i, n in renamed.items()})
        deleted = {pipeline.id for pipeline in created[1::4]}
        await amo.pipelines.delete_many(sorted(deleted))

        assert sum(emu.stats.faults.values()) >= 5, emu.stats.faults
        assert emu.stats.blocks == 0
        assert emu.stats.internal_errors == 0

        # The SDK's answers are the emulator's truth, in input order.
        assert [p.name for p in created] == [f"Chaos {p}" for p in range(PIPELINE_COUNT)]
        for p, made in enumerate(statuses):
            assert [s.name for s in made] == [f"P{p} S{s}" for s in range(STATUS_COUNT)]

        # The account holds exactly what was intended: nothing missing, nothing twice.
        state = emu.state.pipelines
        expected_ids = {p.id for p in created} - deleted
        assert set(state) == expected_ids | {3177727}
        for p, pipeline in enumerate(created):
            if pipeline.id in deleted:
                continue
            stored = state[pipeline.id]
            assert stored.name == renamed.get(pipeline.id, f"Chaos {p}")
            custom = sorted(stored.regular_statuses(), key=lambda s: s.sort)
            assert [s.name for s in custom] == [f"P{p} S{s}" for s in range(STATUS_COUNT)]
            for s, (plan, status) in enumerate(zip(status_plan(p), custom, strict=True)):
                assert status.color == plan.color
                texts = {level: d.text for level, d in status.descriptions.items()}
                assert texts == {d.level.value: d.description for d in plan.descriptions}, s
            assert [s.id for s in custom] == [s.id for s in statuses[p]]
