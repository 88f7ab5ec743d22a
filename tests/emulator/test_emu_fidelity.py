"""What the API pages say, no more and no less: the incoming status while incoming leads are
off, unknown fields, the rules the pages never state (config options), seeded colors."""

from __future__ import annotations

from typing import Any

import pytest
from support.constants import FIRST, INCOMING, MAIN, PIPELINES, SECOND

from amo_pipelines.emulator import Emulator

SYSTEM = ("Неразобранное", "Успешно реализовано", "Закрыто и не реализовано")


def pipeline(name: str = "P", **extra: Any) -> dict[str, Any]:
    return {"name": name, "sort": 10, "is_main": False, "is_unsorted_on": True, **extra}


def types(statuses: list[dict[str, Any]]) -> list[int]:
    return [s["type"] for s in statuses]


# --- the incoming status is shown only while incoming leads are on ---------------------------


async def test_incoming_status_is_left_out_while_incoming_leads_are_off(
    api: Any, emu: Emulator
) -> None:
    off = await api.patch(f"{PIPELINES}/{MAIN}", json={"is_unsorted_on": False})
    assert off.json["is_unsorted_on"] is False
    # as both PATCH examples (ru and en) show: no status of type 1
    assert [s["id"] for s in off.json["_embedded"]["statuses"]] == [FIRST, SECOND, 142, 143]
    got = (await api.get(f"{PIPELINES}/{MAIN}")).json
    assert 1 not in types(got["_embedded"]["statuses"])
    listed = (await api.get(PIPELINES)).json["_embedded"]["pipelines"][0]
    assert 1 not in types(listed["_embedded"]["statuses"])
    statuses = (await api.get(f"{PIPELINES}/{MAIN}/statuses")).json
    assert statuses["_total_items"] == 4 and 1 not in types(statuses["_embedded"]["statuses"])
    # kept in the account, still reachable by id
    assert emu.state.pipelines[MAIN].incoming().id == INCOMING
    assert (await api.get(f"{PIPELINES}/{MAIN}/statuses/{INCOMING}")).json["type"] == 1

    on = await api.patch(f"{PIPELINES}/{MAIN}", json={"is_unsorted_on": True})
    first = on.json["_embedded"]["statuses"][0]
    assert (first["id"], first["type"], first["sort"]) == (INCOMING, 1, 10)


async def test_a_pipeline_created_with_incoming_leads_off_has_no_incoming_status(
    api: Any, emu: Emulator
) -> None:
    reply = await api.post(PIPELINES, json=[pipeline(is_unsorted_on=False)])
    (made,) = reply.json["_embedded"]["pipelines"]
    assert [s["name"] for s in made["_embedded"]["statuses"]] == list(SYSTEM[1:])
    stored = emu.state.pipelines[made["id"]]
    assert stored.incoming().sort == 10  # it exists, and shows once turned on


async def test_sort_renumbering_does_not_depend_on_the_hidden_incoming_status(
    api: Any, emu: Emulator
) -> None:
    await api.patch(f"{PIPELINES}/{MAIN}", json={"is_unsorted_on": False})
    made = await api.post(f"{PIPELINES}/{MAIN}/statuses", json=[{"name": "Zero", "sort": 0}])
    assert made.json["_embedded"]["statuses"][0]["sort"] == 20  # first regular, incoming or not
    listed = (await api.get(f"{PIPELINES}/{MAIN}/statuses")).json["_embedded"]["statuses"]
    assert [(s["name"], s["sort"]) for s in listed][:3] == [
        ("Zero", 20),
        ("Первичный контакт", 30),
        ("Принимают решение", 40),
    ]
    # a deleted status's leads go to the first shown status, not to the hidden incoming one
    emu.state.set_leads(MAIN, SECOND, 2)
    assert (await api.delete(f"{PIPELINES}/{MAIN}/statuses/{SECOND}")).status == 204
    zero = made.json["_embedded"]["statuses"][0]["id"]
    assert (emu.state.leads(MAIN, zero), emu.state.leads(MAIN, INCOMING)) == (2, 0)


# --- unknown fields are ignored; known fields of the wrong type are not ----------------------


async def test_unknown_fields_are_ignored_on_pipeline_create(api: Any, emu: Emulator) -> None:
    # The official PHP library sends request_id inside the embedded statuses.
    item = pipeline(
        "PHP",
        id=5,
        is_archive=True,
        account_id=1,
        _links={},
        _embedded={
            "foo": [],
            "statuses": [
                {"id": 142, "name": "Won", "color": "#000000", "sort": 3},
                {"name": "A", "sort": 10, "request_id": "0", "descriptions": [], "type": 1},
            ],
        },
    )
    reply = await api.post(PIPELINES, json=[item])
    assert reply.status == 200, reply.body
    (made,) = reply.json["_embedded"]["pipelines"]
    assert made["id"] != 5 and made["is_archive"] is False and made["account_id"] != 1
    got = {s["name"]: s for s in made["_embedded"]["statuses"]}
    assert (got["Won"]["color"], got["Won"]["sort"]) == ("#CCFF66", 10000)
    assert got["A"]["type"] == 0 and "request_id" not in got["A"]


async def test_unknown_fields_are_ignored_on_every_other_write(api: Any, emu: Emulator) -> None:
    patched = await api.patch(f"{PIPELINES}/{MAIN}", json={"name": "N", "id": 1, "x": [1]})
    assert (patched.status, patched.json["id"]) == (200, MAIN)
    created = await api.post(
        f"{PIPELINES}/{MAIN}/statuses",
        json=[
            {
                "name": "S",
                "sort": 1,
                "type": 1,
                "is_editable": False,
                "descriptions": [{"id": 7, "level": "newbie", "description": "d", "x": 0}],
            }
        ],
    )
    assert created.status == 200, created.body
    (status,) = created.json["_embedded"]["statuses"]
    assert (status["type"], status["is_editable"]) == (0, True)
    assert status["descriptions"][0]["id"] != 7
    edited = await api.patch(
        f"{PIPELINES}/{MAIN}/statuses/{status['id']}",
        json={
            "name": "T",
            "pipeline_id": 1,
            "descriptions": [{"level": "master", "description": "m", "y": 1}],
        },
    )
    assert (edited.status, edited.json["pipeline_id"], edited.json["name"]) == (200, MAIN, "T")


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (PIPELINES, [pipeline(request_id=7)], {"0": [("InvalidType", "request_id")]}),
        (PIPELINES, [pipeline(_embedded=[])], {"0": [("InvalidType", "_embedded")]}),
        (f"{PIPELINES}/{MAIN}", {"name": 1, "x": 1}, {"0": [("InvalidType", "name")]}),
        (f"{PIPELINES}/{MAIN}", {"x": 1}, {"0": [("FieldMissing", "")]}),
    ],
)
async def test_known_fields_of_the_wrong_type_are_still_refused(
    api: Any, check_validation: Any, path: str, body: Any, expected: Any
) -> None:
    method = api.post if isinstance(body, list) else api.patch
    assert check_validation(await method(path, json=body)) == expected


# --- the rules the pages never state are config options --------------------------------------


async def test_main_pipeline_delete_can_be_allowed(
    make_emu: Any, make_api: Any, check_problem: Any
) -> None:
    emu = await make_emu(token_rps=None, refuse_main_delete=False)
    api = make_api(emu)
    later, sooner = (
        await api.post(PIPELINES, json=[pipeline("B", sort=50), pipeline("C", sort=40)])
    ).json["_embedded"]["pipelines"]
    assert (await api.delete(f"{PIPELINES}/{MAIN}")).status == 204
    assert [p.id for p in emu.state.pipelines.values() if p.is_main] == [sooner["id"]]
    # the last pipeline still can not go (the pages say so)
    assert (await api.delete(f"{PIPELINES}/{later['id']}")).status == 204
    check_problem(await api.delete(f"{PIPELINES}/{sooner['id']}"), 400)


async def test_demoting_the_only_pipeline_can_be_ignored(make_emu: Any, make_api: Any) -> None:
    emu = await make_emu(token_rps=None, refuse_demoting_only=False)
    reply = await make_api(emu).patch(f"{PIPELINES}/{MAIN}", json={"is_main": False, "sort": 3})
    assert reply.status == 200
    assert (reply.json["is_main"], reply.json["sort"]) == (True, 3)


async def test_name_length_and_sort_range_are_options(
    make_emu: Any, make_api: Any, check_validation: Any
) -> None:
    free = make_api(await make_emu(token_rps=None, max_name_length=None, sort_range=None))
    reply = await free.post(PIPELINES, json=[pipeline("x" * 300, sort=-5), pipeline(sort=2**40)])
    assert reply.status == 200, reply.body
    tight = make_api(await make_emu(token_rps=None, max_name_length=3, sort_range=(1, 9)))
    reply = await tight.post(PIPELINES, json=[pipeline("abcd", sort=10)])
    assert check_validation(reply) == {"0": [("TooLong", "name"), ("OutOfRange", "sort")]}


async def test_rejected_requests_need_not_count_in_the_window(
    make_emu: Any, make_api: Any, emu_clock: Any
) -> None:
    async def statuses(count_rejected: bool) -> list[int]:
        emu = await make_emu(
            token_rps=2, account_rps=None, clock=emu_clock, count_rejected=count_rejected
        )
        api = make_api(emu)
        seen = [(await api.get(PIPELINES)).status for _ in range(2)]
        emu_clock.advance(0.5)
        seen += [(await api.get(PIPELINES)).status for _ in range(2)]
        emu_clock.advance(0.5)  # the two admitted ones leave the window
        seen.append((await api.get(PIPELINES)).status)
        return seen

    assert await statuses(True) == [200, 200, 429, 429, 429]  # the default
    assert await statuses(False) == [200, 200, 429, 429, 200]


# --- colors -----------------------------------------------------------------------------------


async def test_seeded_statuses_carry_off_palette_colors_a_write_refuses(
    api: Any, check_validation: Any
) -> None:
    listed = (await api.get(f"{PIPELINES}/{MAIN}/statuses")).json["_embedded"]["statuses"]
    colors = {s["id"]: s["color"] for s in listed}
    assert (colors[FIRST], colors[SECOND]) == ("#99ccff", "#ffcc66")
    reply = await api.patch(f"{PIPELINES}/{MAIN}/statuses/{SECOND}", json={"color": "#ffcc66"})
    assert check_validation(reply) == {"0": [("NotSupportedChoice", "color")]}
