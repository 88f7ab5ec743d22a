"""Pipelines: create, patch, delete rules and their errors."""

from __future__ import annotations

from typing import Any

import pytest
from support.constants import MAIN, PIPELINES


def pipeline(name: str = "P", sort: int = 10, is_main: bool = False, **extra: Any) -> Any:
    return {"name": name, "sort": sort, "is_main": is_main, "is_unsorted_on": True, **extra}


async def create(api: Any, *items: Any) -> list[dict[str, Any]]:
    reply = await api.post(PIPELINES, json=list(items))
    assert reply.status == 200, reply.body
    result: list[dict[str, Any]] = reply.json["_embedded"]["pipelines"]
    return result


async def test_state_names_the_main_pipeline_for_in_process_users(api: Any, emu: Any) -> None:
    # The benchmarks start from it; an account always has exactly one.
    listed = (await api.get(PIPELINES)).json["_embedded"]["pipelines"]
    assert emu.state.main_pipeline().id == next(p["id"] for p in listed if p["is_main"])


async def test_create_several_echoes_index_request_ids(api: Any, emu: Any) -> None:
    created = await create(api, pipeline("A", 30), pipeline("B", 20), pipeline("C", 25))
    assert [p["request_id"] for p in created] == ["0", "1", "2"]
    assert len({p["id"] for p in created}) == 3
    incoming = [p["_embedded"]["statuses"][0]["id"] for p in created]
    assert len(set(incoming)) == 3 and not set(incoming) & {142, 143}
    assert len(emu.state.pipelines) == 4
    listed = await api.get(PIPELINES)
    assert listed.json["_total_items"] == 4
    names = [p["name"] for p in listed.json["_embedded"]["pipelines"]]
    assert names == ["Воронка", "B", "C", "A"]  # by (sort, id); sort stored as given


async def test_create_with_both_closed_names(api: Any) -> None:
    (created,) = await create(
        api,
        pipeline(
            _embedded={
                "statuses": [{"id": 143, "name": "Проиграно"}, {"id": 142, "name": "Победа"}]
            }
        ),
    )
    names = {s["id"]: s["name"] for s in created["_embedded"]["statuses"]}
    assert (names[142], names[143]) == ("Победа", "Проиграно")


async def test_create_regular_statuses_are_renumbered(api: Any) -> None:
    statuses = [
        {"name": "c", "sort": 300},
        {"name": "a", "sort": 5, "color": "#98cbff"},
        {"name": "b", "sort": 300},
    ]
    (created,) = await create(api, pipeline(_embedded={"statuses": statuses}))
    got = [(s["name"], s["sort"]) for s in created["_embedded"]["statuses"]]
    assert got == [
        ("Неразобранное", 10),
        ("a", 20),
        ("c", 30),
        ("b", 40),
        ("Успешно реализовано", 10000),
        ("Закрыто и не реализовано", 11000),
    ]
    assert created["_embedded"]["statuses"][2]["color"] == "#fffeb2"  # the default


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({}, [("FieldMissing", f) for f in ("name", "sort", "is_main", "is_unsorted_on")]),
        (pipeline(name=""), [("NotBlank", "name")]),
        (pipeline(name="   "), [("NotBlank", "name")]),
        (pipeline(name="x" * 256), [("TooLong", "name")]),
        (pipeline(name=5), [("InvalidType", "name")]),
        (pipeline(sort="1"), [("InvalidType", "sort")]),
        (pipeline(sort=1.0), [("InvalidType", "sort")]),
        (pipeline(sort=True), [("InvalidType", "sort")]),
        (pipeline(sort=-1), [("OutOfRange", "sort")]),
        (pipeline(sort=2**31), [("OutOfRange", "sort")]),
        (pipeline(is_main=1), [("InvalidType", "is_main")]),
        ({**pipeline(), "is_unsorted_on": None}, [("InvalidType", "is_unsorted_on")]),
        (pipeline(_embedded=[]), [("InvalidType", "_embedded")]),
        (pipeline(_embedded={"statuses": {}}), [("InvalidType", "_embedded.statuses")]),
        (pipeline(_embedded={"statuses": [5]}), [("InvalidType", "_embedded.statuses.0")]),
        (
            pipeline(_embedded={"statuses": [{"id": 144, "name": "x"}]}),
            [("NotSupportedChoice", "_embedded.statuses.0.id")],
        ),
        (
            pipeline(_embedded={"statuses": [{"id": 142}]}),
            [("FieldMissing", "_embedded.statuses.0.name")],
        ),
        (
            pipeline(_embedded={"statuses": [{"id": 142, "name": "x"}, {"id": 142, "name": "y"}]}),
            [("NotUnique", "_embedded.statuses.1.id")],
        ),
        (
            pipeline(_embedded={"statuses": [{"name": "x"}]}),
            [("FieldMissing", "_embedded.statuses.0.sort")],
        ),
        (
            pipeline(_embedded={"statuses": [{"name": "x", "sort": 1, "color": "#000000"}]}),
            [("NotSupportedChoice", "_embedded.statuses.0.color")],
        ),
    ],
)
async def test_create_validation(
    api: Any, emu: Any, check_validation: Any, item: Any, expected: Any
) -> None:
    reply = await api.post(PIPELINES, json=[pipeline("ok"), item])
    assert check_validation(reply) == {"1": expected}
    assert len(emu.state.pipelines) == 1  # all-or-nothing


async def test_validation_keys_items_by_request_id(api: Any, check_validation: Any) -> None:
    reply = await api.post(
        PIPELINES,
        json=[pipeline(name="", request_id="first"), "nope", pipeline(request_id=7)],
    )
    assert check_validation(reply) == {
        "first": [("NotBlank", "name")],
        "1": [("InvalidType", "")],
        "2": [("InvalidType", "request_id")],
    }


async def test_two_main_pipelines_in_one_batch(api: Any, check_validation: Any) -> None:
    reply = await api.post(PIPELINES, json=[pipeline(is_main=True), pipeline(is_main=True)])
    assert check_validation(reply) == {"1": [("NotUnique", "is_main")]}


async def test_create_main_demotes_the_previous_one(api: Any, emu: Any) -> None:
    (created,) = await create(api, pipeline("New main", is_main=True))
    assert created["is_main"] is True
    assert emu.state.pipelines[MAIN].is_main is False
    listed = await api.get(PIPELINES)
    mains = [p["id"] for p in listed.json["_embedded"]["pipelines"] if p["is_main"]]
    assert mains == [created["id"]]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "Request data can not be empty"),
        (b"  ", "Request data can not be empty"),
        (b"[]", "Request data can not be empty"),
        (b"{}", "Request data can not be empty"),
        (b"null", "Request data can not be empty"),
        (b"[{", "Request body is not valid JSON"),
        (b"[NaN]", "Request body is not valid JSON"),
        (b"\xff\xfe", "Request body is not valid JSON"),
        (b'{"name": "x"}', "Request data must be an array of objects"),
        (b'"x"', "Request data must be an array of objects"),
    ],
)
async def test_bad_bodies(api: Any, check_problem: Any, body: bytes, detail: str) -> None:
    headers = {"Content-Type": "application/json"}
    reply = await api.post(PIPELINES, data=body, headers=headers)
    check_problem(reply, 400, detail)


async def test_content_type_must_be_json(api: Any, check_problem: Any) -> None:
    reply = await api.post(PIPELINES, data=b"[]x", headers={"Content-Type": "text/plain"})
    check_problem(reply, 400, "Content-Type must be application/json")
    ok = await api.post(
        PIPELINES,
        data=b'[{"name":"x","sort":1,"is_main":false,"is_unsorted_on":true}]',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status == 200


async def test_more_than_250_items(api: Any, emu: Any, check_problem: Any) -> None:
    reply = await api.post(PIPELINES, json=[pipeline(str(i)) for i in range(251)])
    check_problem(reply, 422, "Limit 250 per page")
    # 250 is allowed by the batch rule; here it then hits the pipelines limit instead.
    reply = await api.post(PIPELINES, json=[pipeline(str(i)) for i in range(250)])
    check_problem(reply, 422, "Limit of 50 pipelines per account exceeded")
    assert len(emu.state.pipelines) == 1


async def test_fifty_pipelines_per_account(api: Any, emu: Any, check_problem: Any) -> None:
    reply = await api.post(PIPELINES, json=[pipeline(str(i)) for i in range(48)])
    assert reply.status == 200
    over = await api.post(PIPELINES, json=[pipeline("a"), pipeline("b")])
    check_problem(over, 422, "Limit of 50 pipelines per account exceeded")
    assert len(emu.state.pipelines) == 49  # rejected whole
    await create(api, pipeline("last"))
    assert len(emu.state.pipelines) == 50
    check_problem(await api.post(PIPELINES, json=[pipeline()]), 422)


async def test_hundred_statuses_per_new_pipeline(api: Any, emu: Any, check_problem: Any) -> None:
    statuses = [{"name": str(i), "sort": i} for i in range(98)]
    reply = await api.post(PIPELINES, json=[pipeline(_embedded={"statuses": statuses})])
    check_problem(reply, 422, "Limit of 100 statuses per pipeline exceeded")
    assert len(emu.state.pipelines) == 1
    (created,) = await create(api, pipeline(_embedded={"statuses": statuses[:97]}))
    assert len(created["_embedded"]["statuses"]) == 100
    assert created["_embedded"]["statuses"][-3]["sort"] == 980


# --- PATCH ------------------------------------------------------------------------------------


async def test_patch_fields(api: Any, emu: Any) -> None:
    reply = await api.patch(
        f"{PIPELINES}/{MAIN}", json={"name": "Renamed", "sort": 7, "is_unsorted_on": False}
    )
    assert reply.status == 200
    assert (reply.json["name"], reply.json["sort"], reply.json["is_unsorted_on"]) == (
        "Renamed",
        7,
        False,
    )
    assert reply.json["is_main"] is True
    # with incoming leads off the incoming status is left out, as both PATCH examples show
    assert [s["type"] for s in reply.json["_embedded"]["statuses"]] == [0, 0, 0, 0]
    state = emu.state.pipelines[MAIN]
    assert (state.name, state.sort, state.is_unsorted_on) == ("Renamed", 7, False)


async def test_patch_is_main(api: Any, emu: Any, check_problem: Any) -> None:
    refused = await api.patch(f"{PIPELINES}/{MAIN}", json={"is_main": False})
    check_problem(refused, 400, "The only pipeline must stay the main one")
    assert emu.state.pipelines[MAIN].is_main is True
    b, c = await create(api, pipeline("B", 50), pipeline("C", 40))
    await api.patch(f"{PIPELINES}/{MAIN}", json={"sort": 100})
    made = await api.patch(f"{PIPELINES}/{b['id']}", json={"is_main": True})
    assert made.json["is_main"] is True
    assert [p.id for p in emu.state.pipelines.values() if p.is_main] == [b["id"]]
    # is_main=false on the main one promotes the next pipeline by (sort, id): C (sort 40)
    dropped = await api.patch(f"{PIPELINES}/{b['id']}", json={"is_main": False})
    assert dropped.json["is_main"] is False
    assert [p.id for p in emu.state.pipelines.values() if p.is_main] == [c["id"]]
    # is_main=true on the main one is a no-op
    again = await api.patch(f"{PIPELINES}/{c['id']}", json={"is_main": True})
    assert again.status == 200
    assert [p.id for p in emu.state.pipelines.values() if p.is_main] == [c["id"]]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"request_id": "r"}, {"r": [("FieldMissing", "")]}),
        ({"foo": 1}, {"0": [("FieldMissing", "")]}),  # unknown fields are ignored
        ({"name": ""}, {"0": [("NotBlank", "name")]}),
        ({"sort": "1"}, {"0": [("InvalidType", "sort")]}),
        ({"is_main": "yes"}, {"0": [("InvalidType", "is_main")]}),
        ({"is_unsorted_on": None}, {"0": [("InvalidType", "is_unsorted_on")]}),
    ],
)
async def test_patch_validation(
    api: Any, emu: Any, check_validation: Any, body: Any, expected: Any
) -> None:
    reply = await api.patch(f"{PIPELINES}/{MAIN}", json=body)
    assert check_validation(reply) == expected
    assert emu.state.pipelines[MAIN].name == "Воронка"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{}", "Request data can not be empty"),
        (b"", "Request data can not be empty"),
        (b'[{"name": "x"}]', "Request data must be an object"),
        (b"{", "Request body is not valid JSON"),
    ],
)
async def test_patch_bad_bodies(api: Any, check_problem: Any, body: bytes, detail: str) -> None:
    headers = {"Content-Type": "application/json"}
    reply = await api.patch(f"{PIPELINES}/{MAIN}", data=body, headers=headers)
    check_problem(reply, 400, detail)


# --- DELETE -----------------------------------------------------------------------------------


async def test_delete(api: Any, emu: Any, check_problem: Any) -> None:
    (created,) = await create(api, pipeline())
    reply = await api.delete(f"{PIPELINES}/{created['id']}")
    assert reply.status == 204
    assert reply.body == b""
    assert created["id"] not in emu.state.pipelines
    check_problem(await api.get(f"{PIPELINES}/{created['id']}"), 404, "Pipeline not found")
    check_problem(await api.delete(f"{PIPELINES}/{created['id']}"), 404, "Pipeline not found")


async def test_last_pipeline_can_not_be_deleted(api: Any, emu: Any, check_problem: Any) -> None:
    reply = await api.delete(f"{PIPELINES}/{MAIN}")
    check_problem(reply, 400, "The last pipeline can not be deleted")
    assert MAIN in emu.state.pipelines


async def test_main_pipeline_can_not_be_deleted(api: Any, emu: Any, check_problem: Any) -> None:
    (other,) = await create(api, pipeline())
    check_problem(
        await api.delete(f"{PIPELINES}/{MAIN}"), 400, "The main pipeline can not be deleted"
    )
    await api.patch(f"{PIPELINES}/{other['id']}", json={"is_main": True})
    assert (await api.delete(f"{PIPELINES}/{MAIN}")).status == 204
    assert list(emu.state.pipelines) == [other["id"]]


@pytest.mark.parametrize("which", ["incoming", "regular", 142, 143])
async def test_pipeline_with_leads_can_not_be_deleted(
    api: Any, emu: Any, check_problem: Any, which: Any
) -> None:
    (created,) = await create(api, pipeline(_embedded={"statuses": [{"name": "r", "sort": 1}]}))
    ids = [s["id"] for s in created["_embedded"]["statuses"]]
    status_id = {"incoming": ids[0], "regular": ids[1]}.get(which, which)
    emu.state.set_leads(created["id"], status_id, 3)
    reply = await api.delete(f"{PIPELINES}/{created['id']}")
    check_problem(reply, 422, "Pipeline has leads or sources")
    emu.state.set_leads(created["id"], status_id, 0)
    assert (await api.delete(f"{PIPELINES}/{created['id']}")).status == 204


async def test_pipeline_with_sources_can_not_be_deleted(
    api: Any, emu: Any, check_problem: Any
) -> None:
    (created,) = await create(api, pipeline())
    emu.state.set_sources(created["id"], 1)
    check_problem(await api.delete(f"{PIPELINES}/{created['id']}"), 422)
    assert created["id"] in emu.state.pipelines
