"""Statuses: create, renumbering, patch, descriptions, system status protection, delete."""

from __future__ import annotations

from typing import Any

import pytest
from support.constants import FIRST, INCOMING, MAIN, MAIN_STATUSES, PIPELINES, SECOND


async def add(api: Any, *items: Any, pipeline: int = MAIN) -> list[dict[str, Any]]:
    reply = await api.post(f"{PIPELINES}/{pipeline}/statuses", json=list(items))
    assert reply.status == 200, reply.body
    result: list[dict[str, Any]] = reply.json["_embedded"]["statuses"]
    return result


async def order(api: Any, pipeline: int = MAIN) -> list[tuple[str, int]]:
    reply = await api.get(f"{PIPELINES}/{pipeline}/statuses")
    return [(s["name"], s["sort"]) for s in reply.json["_embedded"]["statuses"]]


async def new_pipeline(api: Any, **extra: Any) -> dict[str, Any]:
    body = {"name": "P", "sort": 1, "is_main": False, "is_unsorted_on": True, **extra}
    reply = await api.post(PIPELINES, json=[body])
    assert reply.status == 200
    result: dict[str, Any] = reply.json["_embedded"]["pipelines"][0]
    return result


# --- create and sort --------------------------------------------------------------------------


async def test_sort_ties_and_extremes(api: Any) -> None:
    # ties: existing first, then input order; any sort stays between incoming and 142
    await add(
        api,
        {"name": "tie-b", "sort": 20},
        {"name": "tie-a", "sort": 20},
        {"name": "low", "sort": 0},
        {"name": "high", "sort": 999999},
    )
    assert await order(api) == [
        ("Неразобранное", 10),
        ("low", 20),
        ("Первичный контакт", 30),
        ("tie-b", 40),
        ("tie-a", 50),
        ("Принимают решение", 60),
        ("high", 70),
        ("Успешно реализовано", 10000),
        ("Закрыто и не реализовано", 11000),
    ]


async def test_status_ids_are_unique_account_wide(api: Any, emu: Any) -> None:
    other = await new_pipeline(api, _embedded={"statuses": [{"name": "x", "sort": 1}]})
    created = await add(api, {"name": "y", "sort": 1})
    ids = [s.id for p in emu.state.pipelines.values() for s in p.statuses.values()]
    regular = [i for i in ids if i not in (142, 143)]
    assert len(regular) == len(set(regular))
    assert ids.count(142) == ids.count(143) == 2
    assert created[0]["pipeline_id"] == MAIN and other["id"] != MAIN


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({}, [("FieldMissing", "name"), ("FieldMissing", "sort")]),
        ({"name": "x", "sort": 1, "color": "#FFFEB2"}, [("NotSupportedChoice", "color")]),
        ({"name": "x", "sort": 1, "color": "#99ccff"}, [("NotSupportedChoice", "color")]),
        ({"name": "x", "sort": 1, "color": 1}, [("InvalidType", "color")]),
        ({"name": "x", "sort": 1, "descriptions": {}}, [("InvalidType", "descriptions")]),
        ({"name": "x", "sort": 1, "descriptions": [1]}, [("InvalidType", "descriptions.0")]),
        (
            {"name": "x", "sort": 1, "descriptions": [{"level": "guru", "description": "d"}]},
            [("NotSupportedChoice", "descriptions.0.level")],
        ),
        (
            {"name": "x", "sort": 1, "descriptions": [{"description": "d"}]},
            [("FieldMissing", "descriptions.0.level")],
        ),
        (
            {"name": "x", "sort": 1, "descriptions": [{"level": "master"}]},
            [("FieldMissing", "descriptions.0.description")],
        ),
        (
            {"name": "x", "sort": 1, "descriptions": [{"level": "master", "description": " "}]},
            [("NotBlank", "descriptions.0.description")],
        ),
        (
            {"name": "x", "sort": 1, "descriptions": [{"level": "master", "description": 5}]},
            [("InvalidType", "descriptions.0.description")],
        ),
        (
            {
                "name": "x",
                "sort": 1,
                "descriptions": [{"level": "master", "description": "x" * 1001}],
            },
            [("TooLong", "descriptions.0.description")],
        ),
        (
            {
                "name": "x",
                "sort": 1,
                "descriptions": [
                    {"level": "master", "description": "a"},
                    {"level": "master", "description": "b"},
                ],
            },
            [("NotUnique", "descriptions.1.level")],
        ),
        (
            {
                "name": "x",
                "sort": 1,
                "descriptions": [
                    {"level": lvl, "description": "a"}
                    for lvl in ("newbie", "candidate", "master", "newbie")
                ],
            },
            [("TooMany", "descriptions"), ("NotUnique", "descriptions.3.level")],
        ),
    ],
)
async def test_create_validation(
    api: Any, emu: Any, check_validation: Any, item: Any, expected: Any
) -> None:
    reply = await api.post(MAIN_STATUSES, json=[{"name": "fine", "sort": 1}, item])
    assert check_validation(reply) == {"1": expected}
    assert len(emu.state.pipelines[MAIN].statuses) == 5  # nothing created


async def test_description_length_counts_code_points(api: Any) -> None:
    text = "😀" * 1000  # 1000 code points, 4000 UTF-8 bytes, 2000 UTF-16 units
    (created,) = await add(
        api, {"name": "x", "sort": 1, "descriptions": [{"level": "newbie", "description": text}]}
    )
    assert created["descriptions"][0]["description"] == text


async def test_create_in_unknown_pipeline(api: Any, check_problem: Any) -> None:
    reply = await api.post(f"{PIPELINES}/1/statuses", json=[{"name": "x", "sort": 1}])
    check_problem(reply, 404, "Pipeline not found")


async def test_create_bad_bodies(api: Any, check_problem: Any) -> None:
    check_problem(await api.post(MAIN_STATUSES, json=[]), 400, "Request data can not be empty")
    check_problem(
        await api.post(MAIN_STATUSES, json={"name": "x", "sort": 1}),
        400,
        "Request data must be an array of objects",
    )
    many = [{"name": str(i), "sort": i} for i in range(251)]
    check_problem(await api.post(MAIN_STATUSES, json=many), 422, "Limit 250 per page")


async def test_hundred_statuses_per_pipeline(api: Any, emu: Any, check_problem: Any) -> None:
    over = [{"name": str(i), "sort": i} for i in range(96)]  # 5 + 96 = 101
    check_problem(
        await api.post(MAIN_STATUSES, json=over), 422, "Limit of 100 statuses per pipeline exceeded"
    )
    assert len(emu.state.pipelines[MAIN].statuses) == 5
    await add(api, *over[:95])
    assert len(emu.state.pipelines[MAIN].statuses) == 100
    check_problem(await api.post(MAIN_STATUSES, json=[{"name": "x", "sort": 1}]), 422)


# --- patch ------------------------------------------------------------------------------------


async def test_patch_sort_moves_the_status(api: Any) -> None:
    await add(api, {"name": "third", "sort": 40})
    moved = await api.patch(f"{MAIN_STATUSES}/{SECOND}", json={"sort": 15})
    assert moved.json["sort"] == 20
    assert await order(api) == [
        ("Неразобранное", 10),
        ("Принимают решение", 20),
        ("Первичный контакт", 30),
        ("third", 40),
        ("Успешно реализовано", 10000),
        ("Закрыто и не реализовано", 11000),
    ]
    tied = await api.patch(f"{MAIN_STATUSES}/{SECOND}", json={"sort": 40})  # same as "third"
    assert tied.json["sort"] == 40
    assert [n for n, _ in await order(api)][1:4] == [
        "Первичный контакт",
        "third",
        "Принимают решение",
    ]


async def test_patch_name_and_color(api: Any, emu: Any) -> None:
    reply = await api.patch(f"{MAIN_STATUSES}/{FIRST}", json={"name": "N", "color": "#eb93ff"})
    assert (reply.json["name"], reply.json["color"], reply.json["sort"]) == ("N", "#eb93ff", 20)
    assert len(reply.json["descriptions"]) == 3  # patch responses always carry descriptions
    status = emu.state.status(MAIN, FIRST)
    assert (status.name, status.color) == ("N", "#eb93ff")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"request_id": "q"}, {"q": [("FieldMissing", "")]}),
        ({"type": 1}, {"0": [("FieldMissing", "")]}),  # unknown fields are ignored
        ({"color": "#ffffff"}, {"0": [("NotSupportedChoice", "color")]}),
        ({"name": ""}, {"0": [("NotBlank", "name")]}),
        ({"sort": None}, {"0": [("InvalidType", "sort")]}),
        ({"descriptions": "x"}, {"0": [("InvalidType", "descriptions")]}),
    ],
)
async def test_patch_validation(
    api: Any, emu: Any, check_validation: Any, body: Any, expected: Any
) -> None:
    reply = await api.patch(f"{MAIN_STATUSES}/{SECOND}", json=body)
    assert check_validation(reply) == expected
    assert emu.state.status(MAIN, SECOND).name == "Принимают решение"


@pytest.mark.parametrize("status_id", [INCOMING, 142, 143])
async def test_system_statuses_are_protected(
    api: Any, emu: Any, check_problem: Any, status_id: int
) -> None:
    before = emu.state.status(MAIN, status_id).name
    check_problem(
        await api.patch(f"{MAIN_STATUSES}/{status_id}", json={"name": "x"}),
        400,
        "Status is not editable",
    )
    # checked before the body is even looked at
    check_problem(
        await api.patch(f"{MAIN_STATUSES}/{status_id}", json={}), 400, "Status is not editable"
    )
    check_problem(
        await api.delete(f"{MAIN_STATUSES}/{status_id}"), 400, "Status can not be deleted"
    )
    assert emu.state.status(MAIN, status_id).name == before


# --- descriptions -----------------------------------------------------------------------------


@pytest.fixture
def wall() -> list[float]:
    return [1683279480.0]  # 2023-05-05 09:38:00 UTC


async def test_patch_descriptions_like_the_spec(
    make_emu: Any, make_api: Any, wall: list[float]
) -> None:
    emu = await make_emu(token_rps=None, wall_clock=lambda: wall[0])
    api = make_api(emu)
    texts = {"newbie": "n", "candidate": "c", "master": "m"}
    (created,) = await add(
        api,
        {
            "name": "Новый этап",
            "sort": 100,
            "descriptions": [{"level": k, "description": v} for k, v in texts.items()],
        },
    )
    ids = {d["level"]: d["id"] for d in created["descriptions"]}
    assert all(d["created_at"] == "2023-05-05 09:38:00" for d in created["descriptions"])
    wall[0] += 600
    reply = await api.patch(
        f"{MAIN_STATUSES}/{created['id']}",
        json={
            "name": "Новое название для статуса",
            "color": "#c1e0ff",
            "descriptions": [
                {"level": "newbie", "description": "new newbie"},
                {"id": ids["candidate"], "level": "candidate", "description": "edited"},
                {"id": ids["master"], "level": "master"},
            ],
        },
    )
    assert reply.status == 200, reply.body
    descs = reply.json["descriptions"]
    assert [d["level"] for d in descs] == ["newbie", "candidate"]
    newbie, candidate = descs
    # without id: the level's description is replaced by a new one
    assert newbie["id"] not in ids.values()
    assert newbie["description"] == "new newbie"
    assert (newbie["created_by"], newbie["updated_by"]) == (0, None)
    assert newbie["created_at"] == newbie["updated_at"] == "2023-05-05 09:48:00"
    # with id and text: edited in place
    assert candidate["id"] == ids["candidate"]
    assert candidate["description"] == "edited"
    assert candidate["created_at"] == "2023-05-05 09:38:00"
    assert candidate["updated_at"] == "2023-05-05 09:48:00"
    assert (candidate["created_by"], candidate["updated_by"]) == (0, 0)
    # with id and no text: deleted
    status = emu.state.status(MAIN, created["id"])
    assert set(status.descriptions) == {"newbie", "candidate"}
    again = await api.get(f"{MAIN_STATUSES}/{created['id']}?with=descriptions")
    assert again.json["descriptions"] == descs


async def test_patch_adds_a_missing_level(api: Any) -> None:
    reply = await api.patch(
        f"{MAIN_STATUSES}/{SECOND}",
        json={"descriptions": [{"level": "master", "description": "m"}]},
    )
    assert [(d["level"], d["description"]) for d in reply.json["descriptions"]] == [("master", "m")]
    unchanged = await api.patch(f"{MAIN_STATUSES}/{SECOND}", json={"descriptions": []})
    assert unchanged.status == 200
    assert len(unchanged.json["descriptions"]) == 1


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([{"id": 999, "level": "newbie", "description": "x"}], [("NotFound", "descriptions.0.id")]),
        ([{"id": 489, "level": "master"}], [("Mismatch", "descriptions.0.level")]),
        ([{"id": "489", "level": "newbie"}], [("InvalidType", "descriptions.0.id")]),
        ([{"id": 489}], [("FieldMissing", "descriptions.0.level")]),
        ([{"level": "newbie"}], [("FieldMissing", "descriptions.0.description")]),
        (
            [{"id": 489, "level": "newbie", "description": None}],
            [("InvalidType", "descriptions.0.description")],
        ),
        (
            [{"level": "newbie", "description": "a"}, {"id": 489, "level": "newbie"}],
            [("NotUnique", "descriptions.1.level")],
        ),
    ],
)
async def test_patch_description_errors(
    api: Any, emu: Any, check_validation: Any, changes: Any, expected: Any
) -> None:
    reply = await api.patch(f"{MAIN_STATUSES}/{FIRST}", json={"name": "x", "descriptions": changes})
    assert check_validation(reply) == {"0": expected}
    status = emu.state.status(MAIN, FIRST)
    assert status.name == "Первичный контакт"
    assert [d.id for d in status.ordered_descriptions()] == [489, 491, 493]


async def test_description_id_of_another_status_is_not_found(
    api: Any, check_validation: Any
) -> None:
    (created,) = await add(
        api, {"name": "x", "sort": 1, "descriptions": [{"level": "newbie", "description": "d"}]}
    )
    reply = await api.patch(
        f"{MAIN_STATUSES}/{SECOND}",
        json={"descriptions": [{"id": created["descriptions"][0]["id"], "level": "newbie"}]},
    )
    assert check_validation(reply) == {"0": [("NotFound", "descriptions.0.id")]}


# --- get / delete -----------------------------------------------------------------------------


async def test_shared_closed_ids_and_foreign_statuses(api: Any, check_problem: Any) -> None:
    other = await new_pipeline(api)
    won = await api.get(f"{PIPELINES}/{other['id']}/statuses/142")
    assert won.json["pipeline_id"] == other["id"]
    check_problem(
        await api.get(f"{PIPELINES}/{other['id']}/statuses/{FIRST}"), 404, "Status not found"
    )
    check_problem(
        await api.patch(f"{PIPELINES}/{other['id']}/statuses/{FIRST}", json={"name": "x"}),
        404,
        "Status not found",
    )
    check_problem(await api.delete(f"{PIPELINES}/{other['id']}/statuses/{FIRST}"), 404)
    check_problem(await api.get(f"{PIPELINES}/1/statuses/{FIRST}"), 404, "Pipeline not found")


async def test_delete_moves_leads_and_renumbers(api: Any, emu: Any) -> None:
    emu.state.set_leads(MAIN, FIRST, 4)
    emu.state.set_leads(MAIN, INCOMING, 1)
    reply = await api.delete(f"{MAIN_STATUSES}/{FIRST}")
    assert reply.status == 204 and reply.body == b""
    assert FIRST not in emu.state.pipelines[MAIN].statuses
    assert emu.state.leads(MAIN, INCOMING) == 5
    assert await order(api) == [
        ("Неразобранное", 10),
        ("Принимают решение", 20),
        ("Успешно реализовано", 10000),
        ("Закрыто и не реализовано", 11000),
    ]
    assert (await api.get(f"{MAIN_STATUSES}/{FIRST}")).status == 404


async def test_delete_with_incoming_leads_off_moves_to_first_regular(api: Any, emu: Any) -> None:
    await api.patch(f"{PIPELINES}/{MAIN}", json={"is_unsorted_on": False})
    emu.state.set_leads(MAIN, SECOND, 2)
    assert (await api.delete(f"{MAIN_STATUSES}/{SECOND}")).status == 204
    assert emu.state.leads(MAIN, FIRST) == 2
    emu.state.set_leads(MAIN, FIRST, 3)
    assert (await api.delete(f"{MAIN_STATUSES}/{FIRST}")).status == 204  # no regular one left
    assert emu.state.leads(MAIN, INCOMING) == 3
