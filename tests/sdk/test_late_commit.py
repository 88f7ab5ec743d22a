"""Reconciling creates: no duplicate when the server commits late, no adoption of another's.

Regression tests for issue 10 item 3, against the emulator over loopback HTTP with the
client's real transport and clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from support.constants import MAIN, MAIN_STATUSES, PIPELINES
from support.emulated import fast_client, posts

from amo_pipelines import AmoClient, NewPipeline, NewStatus, RateLimiter
from amo_pipelines.emulator import Emulator, Fault
from amo_pipelines.transport import AiohttpTransport, Request, Response

TIMEOUT = 1.0


def patient_client(emu: Emulator, **kwargs: object) -> AmoClient:
    """A client with a 1 s timeout and the default reconcile wait (twice the timeout)."""
    return AmoClient(
        base_url=emu.url,
        access_token=emu.admin_token,
        timeout=TIMEOUT,
        rate_limiter=RateLimiter(integration_limit=None, account_limit=None),
        **kwargs,  # type: ignore[arg-type]
    )


def pipeline_names(emu: Emulator) -> Counter[str]:
    return Counter(p.name for p in emu.state.pipelines.values())


@pytest.mark.slow  # 2-3 s each: the server holds the answer past the timeout
@pytest.mark.parametrize(
    ("delay", "drop"),
    [(1.5, False), (2.0, False), (0.5, True), (1.9, True)],
    ids=["held-1.5s", "held-2.0s", "dropped-0.5s", "dropped-1.9s"],
)
async def test_a_pipeline_committed_late_is_adopted_not_sent_again(
    emu: Emulator, delay: float, drop: bool
) -> None:
    async with patient_client(emu) as amo:
        assert amo._batches.reconcile_wait == 2 * TIMEOUT
        await amo.pipelines.list()
        emu.faults.add(Fault.late_commit(delay, drop=drop), method="POST", path=PIPELINES)
        created = await amo.pipelines.create([NewPipeline(name=f"L{i}", sort=i) for i in range(3)])
    await emu.settle()
    assert posts(emu, PIPELINES) == 1
    assert pipeline_names(emu) == Counter({"Воронка": 1, "L0": 1, "L1": 1, "L2": 1})
    assert {p.id for p in created} == {p.id for p in emu.state.pipelines.values()} - {MAIN}


@pytest.mark.slow  # ~3 s
async def test_statuses_committed_late_are_adopted_not_sent_again(emu: Emulator) -> None:
    async with patient_client(emu) as amo:
        await amo.pipelines.list()
        emu.faults.add(Fault.late_commit(2.0), method="POST", path=MAIN_STATUSES)
        created = await amo.statuses.create(
            MAIN, [NewStatus(name=f"S{i}", sort=100 + i) for i in range(4)]
        )
    await emu.settle()
    assert posts(emu, MAIN_STATUSES) == 1
    names = Counter(s.name for s in emu.state.pipelines[MAIN].statuses.values())
    assert all(names[f"S{i}"] == 1 for i in range(4))
    assert [s.name for s in created] == [f"S{i}" for i in range(4)]


async def test_a_write_that_never_lands_is_sent_again_after_the_horizon(emu: Emulator) -> None:
    async with patient_client(emu, reconcile_wait=0.3) as amo:
        await amo.pipelines.list()
        emu.faults.add(Fault.status(502), method="POST", path=PIPELINES)
        loop = asyncio.get_running_loop()
        started = loop.time()
        [created] = await amo.pipelines.create([NewPipeline(name="Once", sort=1)])
        waited = loop.time() - started
    assert waited >= 0.3  # it did wait out the horizon before sending again
    assert posts(emu, PIPELINES) == 2
    assert pipeline_names(emu)["Once"] == 1 and created.name == "Once"


class _RivalAfter500(AiohttpTransport):
    """Right after our POST is answered 500, another client creates a pipeline of the same
    name (with other settings) before we can reconcile."""

    def __init__(self, rival: AmoClient) -> None:
        super().__init__()
        self.rival = rival

    async def send(self, request: Request) -> Response:
        response = await super().send(request)
        if request.method == "POST" and response.status == 500:
            await self.rival.pipelines.create(
                [NewPipeline(name="Shared name", sort=5, is_unsorted_on=False)]
            )
        return response


async def test_another_clients_same_named_pipeline_is_not_adopted(emu: Emulator) -> None:
    async with fast_client(emu) as rival:
        transport = _RivalAfter500(rival)
        try:
            async with AmoClient(
                base_url=emu.url,
                access_token=emu.admin_token,
                transport=transport,
                reconcile_wait=0.05,
                rate_limiter=RateLimiter(integration_limit=None, account_limit=None),
            ) as amo:
                await amo.pipelines.list()
                emu.faults.add(Fault.status(500), method="POST", path=PIPELINES)
                [ours] = await amo.pipelines.create([NewPipeline(name="Shared name", sort=5)])
        finally:
            await transport.aclose()
    theirs = [p for p in emu.state.pipelines.values() if p.name == "Shared name"]
    assert len(theirs) == 2  # theirs, and ours sent again: our write was not lost
    assert ours.is_unsorted_on and ours.id in {p.id for p in theirs}
    assert emu.state.pipelines[ours.id].is_unsorted_on is not False


@pytest.mark.parametrize("commit", [False, True], ids=["uncommitted-500", "committed-500"])
async def test_concurrent_same_named_creates_in_one_client_get_distinct_pipelines(
    emu: Emulator, commit: bool
) -> None:
    async with fast_client(emu) as amo:
        await amo.pipelines.list()
        emu.faults.add(Fault.status(500, commit=commit), method="POST", path=PIPELINES)
        first, second = await asyncio.gather(
            amo.pipelines.create([NewPipeline(name="Twin", sort=1)]),
            amo.pipelines.create([NewPipeline(name="Twin", sort=1)]),
        )
    assert first[0].id != second[0].id
    assert pipeline_names(emu)["Twin"] == 2
    assert {first[0].id, second[0].id} == {
        p.id for p in emu.state.pipelines.values() if p.name == "Twin"
    }
