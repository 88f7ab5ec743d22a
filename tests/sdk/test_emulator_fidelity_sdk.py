"""The SDK reads every shape the API pages show: pipelines without their incoming status,
custom statuses in colors outside the palette, status create/edit answers with and without
``descriptions`` (the Russian and the English page)."""

from __future__ import annotations

from typing import Any

from support.constants import FIRST, INCOMING, MAIN, SECOND

from amo_pipelines import (
    AmoClient,
    NewStatus,
    PipelineUpdate,
    Request,
    Response,
    StatusColor,
    StatusUpdate,
)
from amo_pipelines.testing import MockTransport, json_response

# --- a pipeline with incoming leads off has no incoming status -------------------------------


async def test_incoming_is_none_while_incoming_leads_are_off(amo_emu: AmoClient) -> None:
    off = await amo_emu.pipelines.update(MAIN, PipelineUpdate(is_unsorted_on=False))
    assert off.is_unsorted_on is False
    assert off.incoming is None
    assert [s.id for s in off.custom_statuses] == [FIRST, SECOND]
    assert off.won is not None and off.lost is not None
    assert off.status_by_id(INCOMING) is None
    assert (await amo_emu.pipelines.get(MAIN)).incoming is None
    [listed] = await amo_emu.pipelines.list()
    assert listed.incoming is None
    assert not any(s.is_incoming for s in await amo_emu.statuses.list(MAIN))
    # by id the status is still there
    assert (await amo_emu.statuses.get(MAIN, INCOMING)).is_incoming

    on = await amo_emu.pipelines.update(MAIN, PipelineUpdate(is_unsorted_on=True))
    assert on.incoming is not None and on.incoming.id == INCOMING
    assert on.statuses[0] == on.incoming


# --- colors -----------------------------------------------------------------------------------


async def test_custom_statuses_in_off_palette_colors_are_read_as_plain_strings(
    amo_emu: AmoClient,
) -> None:
    [pipeline] = await amo_emu.pipelines.list()
    palette = {c.value for c in StatusColor}
    colors = {s.id: s.color for s in pipeline.custom_statuses}
    assert colors == {FIRST: "#99ccff", SECOND: "#ffcc66"}
    assert not set(colors.values()) & palette
    assert all(type(color) is str for color in colors.values())
    first = await amo_emu.statuses.get(MAIN, FIRST, with_descriptions=True)
    assert first.color == "#99ccff" and not first.is_system
    # renaming it keeps its color; only a color the palette lacks can not be sent
    renamed = await amo_emu.statuses.update(MAIN, FIRST, StatusUpdate(name="Renamed"))
    assert renamed.color == "#99ccff"


# --- status create/edit answers with and without descriptions ---------------------------------


async def test_russian_shape_create_and_edit_answers_carry_descriptions(amo_emu: AmoClient) -> None:
    made = await amo_emu.statuses.create(MAIN, [NewStatus(name="A", sort=100)])
    assert made[0].descriptions == ()  # present and empty, as the Russian page shows
    edited = await amo_emu.statuses.update(MAIN, made[0].id, StatusUpdate(name="B"))
    assert edited.descriptions == ()


# Kommo's English page: status create and edit answers without "descriptions".
def en_status(status_id: int, name: str, sort: int, color: str, request_id: str) -> dict[str, Any]:
    href = f"https://devteam.kommo.com/api/v4/leads/pipelines/6950551/statuses/{status_id}"
    return {
        "id": status_id,
        "name": name,
        "sort": sort,
        "is_editable": True,
        "pipeline_id": 6950551,
        "color": color,
        "type": 0,
        "account_id": 31361463,
        "request_id": request_id,
        "_links": {"self": {"href": href}},
    }


EN_CREATED = {
    "_total_items": 2,
    "_embedded": {
        "statuses": [
            en_status(58223475, "New status", 60, "#fffeb2", "0"),
            en_status(58223479, "New status 2", 70, "#fffeb2", "1"),
        ]
    },
}
EN_EDITED = en_status(58221923, "New status name", 20, "#c1e0ff", "0")
EN_PIPELINES: dict[str, Any] = {"_total_items": 0, "_embedded": {"pipelines": []}}


def kommo(request: Request) -> Response:
    """Answers as the English page shows (the create and edit answers lack descriptions)."""
    if request.method == "POST":
        return json_response(EN_CREATED)
    if request.method == "PATCH":
        return json_response(EN_EDITED)
    if request.url.path.endswith("/statuses"):
        return json_response({"_total_items": 0, "_embedded": {"statuses": []}})
    return json_response(EN_PIPELINES)


async def test_english_shape_create_and_edit_answers_without_descriptions() -> None:
    transport = MockTransport(kommo)
    async with AmoClient(
        subdomain="devteam", domain="kommo.com", access_token="t", transport=transport
    ) as amo:
        made = await amo.statuses.create(
            6950551,
            [NewStatus(name="New status", sort=100), NewStatus(name="New status 2", sort=200)],
        )
        edited = await amo.statuses.update(
            6950551, 58221923, StatusUpdate(name="New status name", color=StatusColor("#c1e0ff"))
        )
    assert [(s.id, s.name, s.sort) for s in made] == [
        (58223475, "New status", 60),
        (58223479, "New status 2", 70),
    ]
    assert all(s.descriptions is None for s in made)  # absent, not empty
    assert (edited.name, edited.color, edited.descriptions) == ("New status name", "#c1e0ff", None)
    assert [r.method for r in transport.requests].count("POST") == 1
