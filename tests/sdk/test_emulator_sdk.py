"""The SDK against the embedded emulator over real loopback HTTP: every endpoint end to end."""

from __future__ import annotations

import asyncio

import pytest
from support.constants import FIRST, MAIN
from support.emulated import fast_client

from amo_pipelines import (
    LOST_STATUS_ID,
    WON_STATUS_ID,
    AmoClient,
    BadRequestError,
    BatchError,
    DescriptionInput,
    DescriptionLevel,
    ForbiddenError,
    NewPipeline,
    NewStatus,
    NotFoundError,
    PipelineUpdate,
    RateLimiter,
    StatusColor,
    StatusType,
    StatusUpdate,
    UnauthorizedError,
    UnprocessableEntityError,
)
from amo_pipelines.emulator import Emulator, EmulatorConfig


async def test_list_and_get_the_seeded_account(amo_emu: AmoClient) -> None:
    [pipeline] = await amo_emu.pipelines.list()
    assert pipeline.id == MAIN and pipeline.is_main and pipeline.name == "Воронка"
    assert pipeline.incoming is not None and pipeline.incoming.type == StatusType.INCOMING
    assert pipeline.won is not None and pipeline.won.color == "#CCFF66"
    assert pipeline.lost is not None and pipeline.lost.sort == 11000
    assert pipeline.status_by_name("Первичный контакт") is not None
    assert await amo_emu.pipelines.get(MAIN) == pipeline


async def test_unknown_ids_are_not_found(amo_emu: AmoClient) -> None:
    with pytest.raises(NotFoundError) as info:
        await amo_emu.pipelines.get(999)
    assert info.value.detail == "Pipeline not found"
    with pytest.raises(NotFoundError) as status_info:
        await amo_emu.statuses.get(MAIN, 999)
    assert status_info.value.detail == "Status not found"


async def test_create_pipelines_with_statuses_and_system_names(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    created = await amo_emu.pipelines.create(
        [
            NewPipeline(
                name="Sales",
                sort=20,
                statuses=[
                    NewStatus(name="Lead", sort=10, color=StatusColor.LIGHT_BLUE),
                    NewStatus(id=LOST_STATUS_ID, name="Lost it"),
                ],
                won_status_name="Won it",
            ),
            NewPipeline(name="Support", sort=30, is_unsorted_on=False, request_id="mine"),
        ]
    )
    assert [p.name for p in created] == ["Sales", "Support"]
    assert [p.request_id for p in created] == [None, "mine"]
    sales = created[0]
    assert sales.won is not None and sales.won.name == "Won it"
    assert sales.lost is not None and sales.lost.name == "Lost it"
    assert [s.name for s in sales.custom_statuses] == ["Lead"]
    assert sales.custom_statuses[0].color == "#d6eaff"
    stored = emu.state.pipelines[sales.id]
    assert stored.statuses[WON_STATUS_ID].name == "Won it"
    assert not emu.state.pipelines[created[1].id].is_unsorted_on


async def test_update_and_delete_a_pipeline(amo_emu: AmoClient, emu: Emulator) -> None:
    [created] = await amo_emu.pipelines.create([NewPipeline(name="Temp", sort=5)])
    renamed = await amo_emu.pipelines.update(created.id, PipelineUpdate(name="Renamed", sort=7))
    assert (renamed.name, renamed.sort) == ("Renamed", 7)
    assert emu.state.pipelines[created.id].name == "Renamed"
    await amo_emu.pipelines.delete(created.id)
    assert created.id not in emu.state.pipelines
    with pytest.raises(NotFoundError):
        await amo_emu.pipelines.get(created.id)


async def test_the_api_refuses_deleting_a_pipeline_with_leads(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    [created] = await amo_emu.pipelines.create([NewPipeline(name="Busy", sort=5)])
    assert created.incoming is not None
    emu.state.set_leads(created.id, created.incoming.id, 3)
    with pytest.raises(UnprocessableEntityError):
        await amo_emu.pipelines.delete(created.id)
    assert created.id in emu.state.pipelines


async def test_the_main_pipeline_cannot_be_deleted(amo_emu: AmoClient) -> None:
    with pytest.raises(BadRequestError):
        await amo_emu.pipelines.delete(MAIN)


async def test_statuses_with_descriptions_end_to_end(amo_emu: AmoClient, emu: Emulator) -> None:
    [created] = await amo_emu.statuses.create(
        MAIN,
        [
            NewStatus(
                name="Demo",
                sort=100,
                color="#FFFEB2",
                descriptions=[
                    DescriptionInput.create("newbie", "For newbies 😀"),
                    DescriptionInput.create(DescriptionLevel.MASTER, "For masters"),
                ],
            )
        ],
    )
    assert created.descriptions is not None
    assert {d.level for d in created.descriptions} == {"newbie", "master"}
    newbie = next(d for d in created.descriptions if d.level == DescriptionLevel.NEWBIE)
    master = next(d for d in created.descriptions if d.level == "master")
    assert newbie.created_by == 0 and newbie.updated_by is None

    without = await amo_emu.statuses.get(MAIN, created.id)
    assert without.descriptions is None
    listed = await amo_emu.statuses.list(MAIN, with_descriptions=True)
    assert next(s for s in listed if s.id == created.id).descriptions == created.descriptions

    updated = await amo_emu.statuses.update(
        MAIN,
        created.id,
        StatusUpdate(
            name="Demo 2",
            color=StatusColor.BLUE,
            descriptions=[
                DescriptionInput.edit(newbie.id, "newbie", "Edited"),
                DescriptionInput.delete(master.id, "master"),
                DescriptionInput.create("candidate", "New for candidates"),
            ],
        ),
    )
    assert (updated.name, updated.color) == ("Demo 2", "#c1e0ff")
    assert updated.descriptions is not None
    texts = {d.level: d.description for d in updated.descriptions}
    assert texts == {"newbie": "Edited", "candidate": "New for candidates"}
    assert next(d for d in updated.descriptions if d.level == "newbie").updated_by == 0
    stored = emu.state.status(MAIN, created.id)
    assert set(stored.descriptions) == {"newbie", "candidate"}


async def test_deleting_a_status_moves_its_leads(amo_emu: AmoClient, emu: Emulator) -> None:
    emu.state.set_leads(MAIN, FIRST, 4)
    await amo_emu.statuses.delete(MAIN, FIRST)
    pipeline = await amo_emu.pipelines.get(MAIN)
    assert pipeline.status_by_id(FIRST) is None
    assert pipeline.incoming is not None
    assert emu.state.leads(MAIN, pipeline.incoming.id) == 4


async def test_statuses_are_returned_in_input_order_across_chunks(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    items = [NewStatus(name=f"S{i}", sort=1000 - i) for i in range(97)]
    created = await amo_emu.statuses.create(MAIN, items[:95], batch_size=40)
    assert [s.name for s in created] == [f"S{i}" for i in range(95)]
    posts = [e for e in emu.request_log if e.method == "POST"]
    assert sorted(len(e.json) for e in posts) == [15, 40, 40]
    assert len(emu.state.pipelines[MAIN].statuses) == 100


async def test_a_user_token_may_read_but_not_write(emu: Emulator) -> None:
    async with fast_client(emu, emu.user_token) as user:
        assert len(await user.pipelines.list()) == 1
        with pytest.raises(ForbiddenError) as info:
            await user.pipelines.update(MAIN, PipelineUpdate(name="x"))
    assert info.value.status == 403 and info.value.content_type == "application/problem+json"


async def test_an_unknown_token_is_unauthorized(emu: Emulator) -> None:
    async with fast_client(emu, "not-a-token") as stranger:
        with pytest.raises(UnauthorizedError):
            await stranger.pipelines.list()


async def test_update_many_and_delete_many(amo_emu: AmoClient, emu: Emulator) -> None:
    created = await amo_emu.pipelines.create([NewPipeline(name=f"P{i}", sort=i) for i in range(4)])
    ids = [p.id for p in created]
    renamed = await amo_emu.pipelines.update_many({i: PipelineUpdate(name=f"R{i}") for i in ids})
    assert [p.name for p in renamed] == [f"R{i}" for i in ids]
    emu.state.set_leads(ids[1], created[1].incoming.id, 1)  # type: ignore[union-attr]
    with pytest.raises(BatchError) as info:
        await amo_emu.pipelines.delete_many(ids)
    assert list(info.value.errors) == [1]
    assert isinstance(info.value.errors[1], UnprocessableEntityError)
    assert set(emu.state.pipelines) == {MAIN, ids[1]}


async def test_a_pipeline_full_of_statuses_fails_the_chunk_that_overflows(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    await amo_emu.statuses.create(MAIN, [NewStatus(name=f"Fill {i}", sort=i) for i in range(78)])
    assert len(emu.state.pipelines[MAIN].statuses) == 83  # 3 system + 2 seeded + 78
    items = [NewStatus(name=f"New {i}", sort=500 + i) for i in range(20)]
    with pytest.raises(BatchError) as info:
        await amo_emu.statuses.create(MAIN, items, batch_size=10)
    error = info.value
    assert len(error.succeeded) == 10 and len(error.errors) == 10
    assert all(isinstance(e, UnprocessableEntityError) for e in error.errors.values())
    assert error.unknown == []
    names = {s.name for s in emu.state.pipelines[MAIN].statuses.values()}
    assert {items[i].name for i in error.succeeded} <= names
    assert not {items[i].name for i in error.errors} & names


@pytest.mark.slow  # ~3 s at the documented 7 requests a second
async def test_the_sdk_limiter_keeps_the_emulator_free_of_429s() -> None:
    async with (
        Emulator() as emu,  # 7/s per token, 50/s per account
        AmoClient(
            base_url=emu.url, access_token=emu.admin_token, rate_limiter=RateLimiter()
        ) as amo,
    ):
        await asyncio.gather(*(amo.pipelines.get(MAIN) for _ in range(22)))
    assert emu.stats.rate_limited == 0
    assert emu.stats.responses == {200: 22}


async def test_without_a_limiter_429s_are_paused_and_retried(emu: Emulator) -> None:
    async with (
        Emulator(EmulatorConfig(token_rps=7, block_after=None)) as limited,
        AmoClient(
            base_url=limited.url,
            access_token=limited.admin_token,
            rate_limiter=RateLimiter(integration_limit=None, account_limit=None),
        ) as amo,
    ):
        results = await asyncio.gather(*(amo.pipelines.get(MAIN) for _ in range(10)))
    assert len(results) == 10
    assert limited.stats.rate_limited >= 3
    assert limited.stats.responses[200] == 10


async def test_sort_is_renumbered_as_the_api_does(amo_emu: AmoClient) -> None:
    # The spec's example: requested 100 and 200 came back as 60 and 70 after 20..50.
    await amo_emu.statuses.create(MAIN, [NewStatus(name=n, sort=50) for n in ("C", "D")])
    created = await amo_emu.statuses.create(
        MAIN, [NewStatus(name="E", sort=100), NewStatus(name="F", sort=200)]
    )
    assert [s.sort for s in created] == [60, 70]
    pipeline = await amo_emu.pipelines.get(MAIN)
    assert [s.sort for s in pipeline.statuses] == [10, 20, 30, 40, 50, 60, 70, 10000, 11000]


async def test_system_statuses_are_not_editable(amo_emu: AmoClient) -> None:
    pipeline = await amo_emu.pipelines.get(MAIN)
    for status in (pipeline.incoming, pipeline.won, pipeline.lost):
        assert status is not None and not status.is_editable
        with pytest.raises(BadRequestError):
            await amo_emu.statuses.update(MAIN, status.id, StatusUpdate(name="x"))
        with pytest.raises(BadRequestError):
            await amo_emu.statuses.delete(MAIN, status.id)


async def test_server_side_validation_errors_are_keyed_by_request_id(amo_emu: AmoClient) -> None:
    # A 300-character name passes the SDK (the API documents no length) but not the server.
    batch = [NewStatus(name="ok", sort=1), NewStatus(name="x" * 300, sort=2, request_id="long")]
    # All-or-nothing: neither was written, so the refusal itself is raised, not a BatchError.
    with pytest.raises(BadRequestError) as info:
        await amo_emu.statuses.create(MAIN, batch)
    [issue] = info.value.validation_errors
    assert (issue.request_id, issue.path) == ("long", "name")
    assert not any(s.name == "ok" for s in await amo_emu.statuses.list(MAIN))


async def test_the_account_holds_at_most_50_pipelines(amo_emu: AmoClient, emu: Emulator) -> None:
    await amo_emu.pipelines.create([NewPipeline(name=f"P{i}", sort=i) for i in range(49)])
    # Refused as a whole with nothing written: the 422 itself, not a BatchError.
    with pytest.raises(UnprocessableEntityError):
        await amo_emu.pipelines.create([NewPipeline(name="one too many", sort=99)])
    assert len(emu.state.pipelines) == 50


async def test_hal_links_point_at_the_emulator(amo_emu: AmoClient, emu: Emulator) -> None:
    pipeline = await amo_emu.pipelines.get(MAIN)
    assert pipeline.self_href == f"{emu.url}/api/v4/leads/pipelines/{MAIN}"
    status = pipeline.statuses[0]
    assert status.self_href is not None
    assert status.self_href.endswith(f"/statuses/{status.id}")
