"""Response shapes against the JSON examples of the Russian API page (``tests/fixtures``)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from support import spec_examples
from support.constants import FIRST, INCOMING, MAIN, PIPELINES, SECOND

# Example name -> (kind, method, endpoint) in the Russian page's section for it.
_EXAMPLES = {
    "pipelines_list_response": ("response", "GET", spec_examples.PIPELINES),
    "pipelines_create_request": ("request", "POST", spec_examples.PIPELINES),
    "pipelines_create_response": ("response", "POST", spec_examples.PIPELINES),
    "pipeline_get_response": ("response", "GET", spec_examples.PIPELINE),
    "pipeline_patch_request": ("request", "PATCH", spec_examples.PIPELINE),
    "pipeline_patch_response": ("response", "PATCH", spec_examples.PIPELINE),
    "statuses_list_response": ("response", "GET", spec_examples.STATUSES),
    "statuses_create_request": ("request", "POST", spec_examples.STATUSES),
    "statuses_create_response": ("response", "POST", spec_examples.STATUSES),
    "status_get_response": ("response", "GET", spec_examples.STATUS),
    "status_patch_request": ("request", "PATCH", spec_examples.STATUS),
    "status_patch_response": ("response", "PATCH", spec_examples.STATUS),
}


def example(name: str) -> Any:
    """A fresh copy of the Russian page's example, by its short name."""
    kind, method, endpoint = _EXAMPLES[name]
    return copy.deepcopy(spec_examples.find(spec_examples.PAGES[0], kind, method, endpoint))


def rebase(data: Any, origin: str) -> Any:
    """The example with its links pointing at ``origin``."""
    text = json.dumps(data, ensure_ascii=False)
    text = re.sub(r"https://[a-z0-9.-]+\.(?:amocrm\.ru|kommo\.com)", origin, text)
    return json.loads(text)


def assert_shape(actual: Any, expected: Any, path: str = "$") -> None:
    """Same keys at every level and the same JSON types (null in the example: null or int)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert set(actual) == set(expected), (path, sorted(actual), sorted(expected))
        for key, value in expected.items():
            assert_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), path
        if not expected:
            return
        for index, item in enumerate(actual):
            errors = []
            for candidate in expected:
                try:
                    assert_shape(item, candidate, f"{path}[{index}]")
                    break
                except AssertionError as exc:
                    errors.append(exc)
            else:
                raise errors[0]
    elif expected is None:
        assert actual is None or (isinstance(actual, int) and not isinstance(actual, bool)), path
    elif isinstance(expected, bool):
        assert isinstance(actual, bool), path
    elif isinstance(expected, int):
        assert isinstance(actual, int) and not isinstance(actual, bool), path
    else:
        assert isinstance(actual, type(expected)), path


def key_order(data: dict[str, Any]) -> list[str]:
    return list(data)


async def test_list_pipelines_equals_the_spec_example(api: Any, emu: Any) -> None:
    reply = await api.get(PIPELINES)
    assert reply.status == 200
    assert reply.content_type == "application/hal+json"
    assert reply.json == rebase(example("pipelines_list_response"), emu.url)
    # key order as in the example too
    expected = example("pipelines_list_response")
    assert key_order(reply.json) == key_order(expected)
    got_pipeline = reply.json["_embedded"]["pipelines"][0]
    want_pipeline = expected["_embedded"]["pipelines"][0]
    assert key_order(got_pipeline) == key_order(want_pipeline)
    got_status = got_pipeline["_embedded"]["statuses"][0]
    assert key_order(got_status) == key_order(want_pipeline["_embedded"]["statuses"][0])


async def test_get_pipeline_matches_the_example(make_emu: Any, make_api: Any) -> None:
    emu = await make_emu(token_rps=None, account_id=28847170)
    reply = await make_api(emu).get(f"{PIPELINES}/{MAIN}")
    assert reply.status == 200
    assert reply.content_type == "application/hal+json"
    assert reply.json == rebase(example("pipeline_get_response"), emu.url)


async def test_list_statuses_with_descriptions_equals_the_example(api: Any, emu: Any) -> None:
    reply = await api.get(f"{PIPELINES}/{MAIN}/statuses", params={"with": "descriptions"})
    assert reply.status == 200
    assert reply.content_type == "application/hal+json"
    assert reply.json == rebase(example("statuses_list_response"), emu.url)
    assert "_links" not in reply.json  # the spec's statuses collection has none


async def test_list_statuses_without_with_has_no_descriptions(api: Any) -> None:
    reply = await api.get(f"{PIPELINES}/{MAIN}/statuses")
    assert reply.status == 200
    statuses = reply.json["_embedded"]["statuses"]
    assert reply.json["_total_items"] == len(statuses) == 5
    assert all("descriptions" not in s for s in statuses)
    expected = example("statuses_list_response")["_embedded"]["statuses"][0]
    del expected["descriptions"]
    assert_shape(reply.json, {"_total_items": 1, "_embedded": {"statuses": [expected]}})


async def test_get_status_shape(api: Any, emu: Any) -> None:
    plain = await api.get(f"{PIPELINES}/{MAIN}/statuses/{INCOMING}")
    assert plain.status == 200
    assert plain.content_type == "application/hal+json"
    want = example("status_get_response")
    del want["descriptions"]
    assert_shape(plain.json, want)
    assert plain.json["type"] == 1
    assert plain.json["_links"]["self"]["href"] == (
        f"{emu.url}{PIPELINES}/{MAIN}/statuses/{INCOMING}"
    )
    detailed = await api.get(f"{PIPELINES}/{MAIN}/statuses/{FIRST}?with=descriptions")
    assert_shape(detailed.json, example("status_get_response"))
    assert [d["level"] for d in detailed.json["descriptions"]] == ["newbie", "candidate", "master"]
    empty = await api.get(f"{PIPELINES}/{MAIN}/statuses/{SECOND}?with=leads,descriptions")
    assert empty.json["descriptions"] == []


async def test_create_pipeline_shape_and_system_statuses(api: Any, emu: Any) -> None:
    request = example("pipelines_create_request")
    reply = await api.post(PIPELINES, json=request)
    assert reply.status == 200
    assert reply.content_type == "application/hal+json"
    want = example("pipelines_create_response")
    want["_embedded"]["pipelines"][0]["is_archive"] = False  # as in the English example
    assert_shape(reply.json, want)
    pipeline = reply.json["_embedded"]["pipelines"][0]
    assert reply.json["_links"]["self"]["href"] == emu.url + PIPELINES
    assert pipeline["_links"]["self"]["href"] == f"{emu.url}{PIPELINES}/{pipeline['id']}"
    assert pipeline["request_id"] == "123"
    assert (pipeline["name"], pipeline["sort"], pipeline["is_main"]) == (
        "Воронка доп продаж",
        20,
        False,
    )
    assert pipeline["is_unsorted_on"] is True
    assert pipeline["account_id"] == emu.config.account_id
    statuses = pipeline["_embedded"]["statuses"]
    summary = [(s["name"], s["sort"], s["color"], s["type"], s["is_editable"]) for s in statuses]
    assert summary == [
        ("Неразобранное", 10, "#c1c1c1", 1, False),
        ("Первичный контакт", 20, "#fffeb2", 0, True),
        (request[0]["_embedded"]["statuses"][0]["name"], 10000, "#CCFF66", 0, False),
        ("Закрыто и не реализовано", 11000, "#D5D8DB", 0, False),
    ]
    assert [s["id"] for s in statuses][2:] == [142, 143]
    assert all(s["pipeline_id"] == pipeline["id"] for s in statuses)
    assert all("request_id" not in s and "descriptions" not in s for s in statuses)


async def test_create_statuses_reproduces_the_spec_renumbering(
    make_emu: Any, make_api: Any
) -> None:
    emu = await make_emu(token_rps=None)
    api = make_api(emu)
    # The example's pipeline has regular statuses at 20..50 before the two new ones.
    first = await api.post(
        f"{PIPELINES}/{MAIN}/statuses",
        json=[{"name": "Третий", "sort": 40}, {"name": "Четвертый", "sort": 50}],
    )
    assert first.status == 200
    reply = await api.post(f"{PIPELINES}/{MAIN}/statuses", json=example("statuses_create_request"))
    assert reply.status == 200
    assert reply.content_type == "application/hal+json"
    assert_shape(reply.json, example("statuses_create_response"))
    items = reply.json["_embedded"]["statuses"]
    assert [(s["sort"], s["request_id"]) for s in items] == [(60, "0"), (70, "1")]
    assert [len(s["descriptions"]) for s in items] == [3, 0]
    assert reply.json["_total_items"] == 2
    for desc in items[0]["descriptions"]:
        assert (desc["created_by"], desc["updated_by"]) == (0, None)
        assert desc["status_id"] == items[0]["id"] and desc["pipeline_id"] == MAIN
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", desc["created_at"])
        assert desc["created_at"] == desc["updated_at"]


async def test_patch_pipeline_shape(api: Any) -> None:
    other = await api.post(
        PIPELINES, json=[{"name": "B", "sort": 5, "is_main": False, "is_unsorted_on": True}]
    )
    assert other.status == 200
    reply = await api.patch(f"{PIPELINES}/{MAIN}", json=example("pipeline_patch_request"))
    assert reply.status == 200
    assert reply.content_type == "application/hal+json"
    assert_shape(reply.json, example("pipeline_patch_response"))
    body = reply.json
    assert (body["name"], body["sort"], body["is_main"], body["is_unsorted_on"]) == (
        "Новое название для воронки",
        100,
        False,
        False,
    )
    assert body["request_id"] == "0"


async def test_patch_status_shape(api: Any) -> None:
    reply = await api.patch(
        f"{PIPELINES}/{MAIN}/statuses/{SECOND}",
        json={"name": "Новое название для статуса", "color": "#c1e0ff"},
    )
    assert reply.status == 200
    assert reply.content_type == "application/hal+json"
    assert_shape(reply.json, example("status_patch_response"))
    assert reply.json["request_id"] == "0"
    assert reply.json["descriptions"] == []
    assert (reply.json["name"], reply.json["color"], reply.json["sort"]) == (
        "Новое название для статуса",
        "#c1e0ff",
        30,
    )


async def test_request_id_is_echoed_and_not_stored(api: Any) -> None:
    reply = await api.post(
        f"{PIPELINES}/{MAIN}/statuses",
        json=[{"name": "A", "sort": 100, "request_id": "mine"}, {"name": "B", "sort": 110}],
    )
    assert [s["request_id"] for s in reply.json["_embedded"]["statuses"]] == ["mine", "1"]
    sid = reply.json["_embedded"]["statuses"][0]["id"]
    again = await api.get(f"{PIPELINES}/{MAIN}/statuses/{sid}")
    assert "request_id" not in again.json
    patched = await api.patch(
        f"{PIPELINES}/{MAIN}/statuses/{sid}", json={"name": "C", "request_id": "x-1"}
    )
    assert patched.json["request_id"] == "x-1"
    pipeline = await api.patch(f"{PIPELINES}/{MAIN}", json={"name": "N", "request_id": "p"})
    assert pipeline.json["request_id"] == "p"
    listed = await api.get(PIPELINES)
    assert "request_id" not in listed.json["_embedded"]["pipelines"][0]


async def test_links_follow_the_request_origin(api: Any, emu: Any) -> None:
    reply = await api.get(f"{PIPELINES}/{MAIN}", headers={"Host": "crm.example.test:9999"})
    assert reply.json["_links"]["self"]["href"] == f"http://crm.example.test:9999{PIPELINES}/{MAIN}"


async def test_unseeded_account_has_a_bare_main_pipeline(make_emu: Any, make_api: Any) -> None:
    emu = await make_emu(token_rps=None, seed_account=False, account_id=42)
    reply = await make_api(emu).get(PIPELINES)
    (pipeline,) = reply.json["_embedded"]["pipelines"]
    assert pipeline["is_main"] is True and pipeline["account_id"] == 42
    assert [s["id"] for s in pipeline["_embedded"]["statuses"]][1:] == [142, 143]
    assert pipeline["_embedded"]["statuses"][0]["type"] == 1


async def test_pipelines_never_embed_descriptions(api: Any) -> None:
    for path in (PIPELINES, f"{PIPELINES}/{MAIN}"):
        reply = await api.get(path, params={"with": "descriptions"})
        body = reply.json
        pipelines = body["_embedded"]["pipelines"] if path == PIPELINES else [body]
        for pipeline in pipelines:
            assert all("descriptions" not in s for s in pipeline["_embedded"]["statuses"])
