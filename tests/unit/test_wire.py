# ruff: noqa: RUF001 - the API speaks Russian; Cyrillic text here is meant
"""What the ten endpoints put on the wire, and what they make of the answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from support import spec_examples as P

from amo_pipelines import (
    AmoClient,
    DescriptionInput,
    NewPipeline,
    NewStatus,
    NotFoundError,
    Pipeline,
    PipelineUpdate,
    Request,
    Response,
    Status,
    StatusColor,
    StatusUpdate,
)
from amo_pipelines.model.converter import converter
from amo_pipelines.model.models import PipelineCollection, StatusCollection
from amo_pipelines.testing import MockTransport, empty_response, json_response

RU = "leads-pipelines.ru.md"
ORIGIN = "https://example.amocrm.ru"
UNSET: Any = object()


def check_request(
    request: Request,
    method: str,
    path: str,
    *,
    token: str,
    query: dict[str, str] | None = None,
    body: Any = UNSET,
    origin: str = ORIGIN,
) -> None:
    assert request.method == method
    expected_url = origin + path
    if query:
        expected_url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    assert str(request.url) == expected_url
    assert dict(request.url.query) == (query or {})
    headers = request.headers
    assert headers["authorization"] == f"Bearer {token}"
    assert "application/hal+json" in headers["accept"]
    assert "application/problem+json" in headers["accept"]
    assert headers["user-agent"].startswith("amo_pipelines/")
    if body is UNSET:
        assert request.body is None
        assert "content-type" not in headers
    else:
        assert headers["content-type"] == "application/json"
        assert request.body is not None
        assert json.loads(request.body.decode("utf-8")) == body


def example(kind: str, method: str, endpoint: str) -> Any:
    return P.find(RU, kind, method, endpoint)


def answer_post(response: Response) -> Any:
    """A handler answering the POST with ``response``, and any list read with an empty list
    (a create may read what exists before it writes)."""

    def handle(request: Request) -> Response:
        if request.method == "POST":
            return response
        return read_lists(request)

    return handle


def read_lists(request: Request) -> Response:
    assert request.method == "GET", f"unexpected {request!r}"
    if request.url.path.endswith("/statuses"):
        return json_response(P.statuses_json())
    assert request.url.path == "/api/v4/leads/pipelines", f"unexpected {request!r}"
    return json_response(P.pipelines_json())


def the_post(transport: MockTransport) -> Request:
    """The one write of a create call; anything else it sent was a list read."""
    posts = [r for r in transport.requests if r.method == "POST"]
    assert len(posts) == 1
    assert all(r.method == "GET" for r in transport.requests if r.method != "POST")
    return posts[0]


# --- pipelines --------------------------------------------------------------------------


async def test_list_pipelines(amo: AmoClient, transport: MockTransport, token: str) -> None:
    data = example("response", "GET", P.PIPELINES)
    transport.add(json_response(data))
    pipelines = await amo.pipelines.list()
    (request,) = transport.requests
    check_request(request, "GET", "/api/v4/leads/pipelines", token=token)
    assert pipelines == list(converter.structure(data, PipelineCollection).embedded.pipelines)
    assert [p.id for p in pipelines] == [3177727]
    assert isinstance(pipelines, list)


async def test_get_pipeline(amo: AmoClient, transport: MockTransport, token: str) -> None:
    data = example("response", "GET", P.PIPELINE)
    transport.add(json_response(data))
    pipeline = await amo.pipelines.get(3177727)
    check_request(transport.requests[0], "GET", "/api/v4/leads/pipelines/3177727", token=token)
    assert isinstance(pipeline, Pipeline)
    assert pipeline.account_id == 28847170
    assert len(pipeline.statuses) == 5


async def test_create_pipeline_sends_the_documented_body(
    amo: AmoClient, transport: MockTransport, token: str
) -> None:
    transport.handler = answer_post(json_response(example("response", "POST", P.PIPELINES)))
    created = await amo.pipelines.create(
        [
            NewPipeline(
                name="Воронка доп продаж",
                sort=20,
                request_id="123",
                statuses=[
                    NewStatus(id=142, name="Мое название для успешных сделок"),
                    NewStatus(name="Первичный контакт", sort=10, color="#fffeb2"),
                ],
            )
        ]
    )
    check_request(
        the_post(transport),
        "POST",
        "/api/v4/leads/pipelines",
        token=token,
        body=example("request", "POST", P.PIPELINES),
    )
    (pipeline,) = created
    assert pipeline.id == 3270358
    assert pipeline.request_id == "123"
    assert pipeline.won is not None
    assert pipeline.won.name == "Мое название для успешных сделок"


async def test_create_pipeline_names_won_and_lost(
    amo: AmoClient, transport: MockTransport, token: str
) -> None:
    transport.handler = echo
    await amo.pipelines.create(
        [
            NewPipeline(
                name="Продажи",
                sort=5,
                is_main=True,
                is_unsorted_on=False,
                won_status_name="Оплачено",
                lost_status_name="Отказ",
            )
        ]
    )
    check_request(
        the_post(transport),
        "POST",
        "/api/v4/leads/pipelines",
        token=token,
        body=[
            {
                "name": "Продажи",
                "sort": 5,
                "is_main": True,
                "is_unsorted_on": False,
                "request_id": "0",
                "_embedded": {
                    "statuses": [{"id": 142, "name": "Оплачено"}, {"id": 143, "name": "Отказ"}]
                },
            }
        ],
    )


async def test_update_pipeline(amo: AmoClient, transport: MockTransport, token: str) -> None:
    transport.add(json_response(example("response", "PATCH", P.PIPELINE)))
    updated = await amo.pipelines.update(
        3177727,
        PipelineUpdate(
            name="Новое название для воронки", sort=100, is_main=False, is_unsorted_on=False
        ),
    )
    check_request(
        transport.requests[0],
        "PATCH",
        "/api/v4/leads/pipelines/3177727",
        token=token,
        body=example("request", "PATCH", P.PIPELINE),
    )
    assert updated.name == "Новое название для воронки"
    assert updated.sort == 1000  # the server's number, not the one asked for


async def test_update_pipeline_sends_only_what_was_set(
    amo: AmoClient, transport: MockTransport, token: str
) -> None:
    transport.add(json_response(P.pipeline_json(is_unsorted_on=False)))
    await amo.pipelines.update(3177727, PipelineUpdate(is_unsorted_on=False))
    check_request(
        transport.requests[0],
        "PATCH",
        "/api/v4/leads/pipelines/3177727",
        token=token,
        body={"is_unsorted_on": False},
    )


async def test_delete_pipeline(amo: AmoClient, transport: MockTransport, token: str) -> None:
    transport.add(empty_response(204))
    assert await amo.pipelines.delete(3177727) is None
    check_request(transport.requests[0], "DELETE", "/api/v4/leads/pipelines/3177727", token=token)


# --- statuses ---------------------------------------------------------------------------

STATUSES_PATH = "/api/v4/leads/pipelines/3177727/statuses"


@pytest.mark.parametrize("with_descriptions", [False, True])
async def test_list_statuses(
    amo: AmoClient, transport: MockTransport, token: str, with_descriptions: bool
) -> None:
    data = example("response", "GET", P.STATUSES)
    transport.add(json_response(data))
    statuses = await amo.statuses.list(3177727, with_descriptions=with_descriptions)
    query = {"with": "descriptions"} if with_descriptions else None
    check_request(transport.requests[0], "GET", STATUSES_PATH, token=token, query=query)
    assert statuses == list(converter.structure(data, StatusCollection).embedded.statuses)
    assert [s.id for s in statuses] == [32392156, 32392159, 32392165, 142, 143]


async def test_list_statuses_default_has_no_query(amo: AmoClient, transport: MockTransport) -> None:
    transport.add(json_response(P.statuses_json(P.status_json())))
    await amo.statuses.list(3177727)
    assert transport.requests[0].url.query_string == ""


@pytest.mark.parametrize("with_descriptions", [False, True])
async def test_get_status(
    amo: AmoClient, transport: MockTransport, token: str, with_descriptions: bool
) -> None:
    data = example("response", "GET", P.STATUS)
    transport.add(json_response(data))
    status = await amo.statuses.get(3177727, 32392159, with_descriptions=with_descriptions)
    query = {"with": "descriptions"} if with_descriptions else None
    check_request(
        transport.requests[0], "GET", f"{STATUSES_PATH}/32392159", token=token, query=query
    )
    assert isinstance(status, Status)
    assert status.descriptions is not None and len(status.descriptions) == 3


async def test_create_statuses_sends_the_documented_body(
    amo: AmoClient, transport: MockTransport, token: str
) -> None:
    transport.handler = answer_post(json_response(example("response", "POST", P.STATUSES)))
    request_example = example("request", "POST", P.STATUSES)
    created = await amo.statuses.create(
        3270355,
        [
            NewStatus(
                name="Новый этап",
                sort=100,
                color=StatusColor.LIGHT_YELLOW,
                descriptions=[
                    DescriptionInput.create("newbie", 'Описание статуса "Новый этап" для новичка'),
                    DescriptionInput.create(
                        "candidate", 'Описание статуса "Новый этап" для кандидата'
                    ),
                    DescriptionInput.create("master", 'Описание статуса "Новый этап" для мастера'),
                ],
            ),
            NewStatus(name="Новый этап 2", sort=200, color="#fffeb2"),
        ],
    )
    # The documented body, each item carrying the request_id that maps results back.
    expected = [{**item, "request_id": str(i)} for i, item in enumerate(request_example)]
    check_request(
        the_post(transport),
        "POST",
        "/api/v4/leads/pipelines/3270355/statuses",
        token=token,
        body=expected,
    )
    assert [s.id for s in created] == [33035290, 33035293]
    assert [s.sort for s in created] == [60, 70]
    # No request_id of the caller's: none is reported back.
    assert [s.request_id for s in created] == [None, None]


async def test_update_status_with_descriptions(
    amo: AmoClient, transport: MockTransport, token: str
) -> None:
    transport.add(json_response(example("response", "PATCH", P.STATUS)))
    status = await amo.statuses.update(
        3177727,
        32392165,
        P.status_update_example(),
    )
    check_request(
        transport.requests[0],
        "PATCH",
        f"{STATUSES_PATH}/32392165",
        token=token,
        body=example("request", "PATCH", P.STATUS),
    )
    assert status.descriptions is not None
    assert [d.id for d in status.descriptions] == [501, 497]


async def test_update_status_sends_only_what_was_set(
    amo: AmoClient, transport: MockTransport, token: str
) -> None:
    transport.add(json_response(P.status_json(sort=30)))
    await amo.statuses.update(3177727, 32392159, StatusUpdate(sort=30))
    check_request(
        transport.requests[0], "PATCH", f"{STATUSES_PATH}/32392159", token=token, body={"sort": 30}
    )


async def test_delete_status(amo: AmoClient, transport: MockTransport, token: str) -> None:
    transport.add(empty_response(204))
    assert await amo.statuses.delete(3177727, 32392159) is None
    check_request(transport.requests[0], "DELETE", f"{STATUSES_PATH}/32392159", token=token)


# --- 204 --------------------------------------------------------------------------------


async def test_204_to_get_pipeline_is_not_found(amo: AmoClient, transport: MockTransport) -> None:
    transport.add(empty_response(204))
    with pytest.raises(NotFoundError) as info:
        await amo.pipelines.get(5)
    assert info.value.status == 204
    assert info.value.method == "GET"
    assert info.value.path == "/api/v4/leads/pipelines/5"


async def test_204_to_get_status_is_not_found(amo: AmoClient, transport: MockTransport) -> None:
    transport.add(empty_response(204))
    with pytest.raises(NotFoundError) as info:
        await amo.statuses.get(5, 6, with_descriptions=True)
    assert info.value.status == 204
    assert info.value.path == "/api/v4/leads/pipelines/5/statuses/6"


async def test_204_to_lists_is_empty(amo: AmoClient, transport: MockTransport) -> None:
    transport.add(empty_response(204), empty_response(204))
    assert await amo.pipelines.list() == []
    assert await amo.statuses.list(5) == []
    assert len(transport.requests) == 2


# --- results in input order -------------------------------------------------------------


def echo(request: Request) -> Response:
    """A server that creates what it is sent and answers in reverse order."""
    if request.method != "POST":
        return read_lists(request)
    items = json.loads(request.body or b"[]")
    path = request.url.path
    if path.endswith("/statuses"):
        pipeline_id = int(path.split("/")[-2])
        statuses = [
            P.status_json(
                id=9000 + i,
                name=item["name"],
                sort=item["sort"],
                pipeline_id=pipeline_id,
                color=item.get("color", "#fffeb2"),
                request_id=item["request_id"],
            )
            for i, item in enumerate(items)
        ]
        return json_response(P.statuses_json(*reversed(statuses)))
    pipelines = [
        P.pipeline_json(
            id=7000 + i,
            name=item["name"],
            sort=item["sort"],
            is_main=item["is_main"],
            is_unsorted_on=item["is_unsorted_on"],
            request_id=item["request_id"],
        )
        for i, item in enumerate(items)
    ]
    return json_response(P.pipelines_json(*reversed(pipelines)))


def sent_items(transport: MockTransport) -> list[dict[str, Any]]:
    posts = [r for r in transport.requests if r.method == "POST"]
    return [item for r in posts for item in json.loads(r.body or b"")]


async def test_created_pipelines_come_back_in_input_order(
    amo: AmoClient, transport: MockTransport
) -> None:
    transport.handler = echo
    created = await amo.pipelines.create(
        [
            NewPipeline(name="A", sort=1, request_id="mine"),
            NewPipeline(name="B", sort=2),
            NewPipeline(name="C", sort=3, request_id="0"),
        ]
    )
    assert [p.name for p in created] == ["A", "B", "C"]
    # The caller's own ids are kept; an id the SDK made up is not reported.
    assert [p.request_id for p in created] == ["mine", None, "0"]
    sent = [item["request_id"] for item in sent_items(transport)]
    assert sent[0] == "mine" and sent[2] == "0"
    assert len(set(sent)) == 3  # the made-up id does not collide with the caller's "0"


async def test_created_statuses_come_back_in_input_order(
    amo: AmoClient, transport: MockTransport
) -> None:
    transport.handler = echo
    created = await amo.statuses.create(
        42, [NewStatus(name=name, sort=i, request_id=f"r{i}") for i, name in enumerate("XYZ")]
    )
    assert [s.name for s in created] == ["X", "Y", "Z"]
    assert [s.request_id for s in created] == ["r0", "r1", "r2"]
    assert all(s.pipeline_id == 42 for s in created)


async def test_50_pipelines_and_97_statuses_are_accepted(
    amo: AmoClient, transport: MockTransport
) -> None:
    transport.handler = echo
    pipelines = await amo.pipelines.create([NewPipeline(name=f"P{i}", sort=i) for i in range(50)])
    assert [p.name for p in pipelines] == [f"P{i}" for i in range(50)]
    statuses = await amo.statuses.create(1, [NewStatus(name=f"S{i}", sort=i) for i in range(97)])
    assert [s.name for s in statuses] == [f"S{i}" for i in range(97)]
    assert len(sent_items(transport)) == 147


async def test_response_without_request_ids_is_taken_in_request_order(
    amo: AmoClient, transport: MockTransport
) -> None:
    data = example("response", "POST", P.STATUSES)
    for status in data["_embedded"]["statuses"]:
        del status["request_id"]
    transport.handler = answer_post(json_response(data))
    created = await amo.statuses.create(
        3270355, [NewStatus(name="Новый этап", sort=100), NewStatus(name="Новый этап 2", sort=200)]
    )
    assert [s.name for s in created] == ["Новый этап", "Новый этап 2"]


# --- where requests go ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "origin"),
    [
        ({"subdomain": "example", "domain": "kommo.com"}, "https://example.kommo.com"),
        ({"subdomain": "example", "domain": "amocrm.com"}, "https://example.amocrm.com"),
        ({"subdomain": "my-shop2"}, "https://my-shop2.amocrm.ru"),
        ({"base_url": "https://example.kommo.com/"}, "https://example.kommo.com"),
        ({"base_url": "http://127.0.0.1:8080"}, "http://127.0.0.1:8080"),
    ],
)
async def test_account_origin(
    kwargs: dict[str, Any], origin: str, token: str, make_client: Callable[..., AmoClient]
) -> None:
    transport = MockTransport(responses=[json_response(P.pipelines_json())])
    async with make_client(transport=transport, **kwargs) as amo:
        assert str(amo.base_url) == origin
        assert await amo.pipelines.list() == []
    check_request(
        transport.requests[0], "GET", "/api/v4/leads/pipelines", token=token, origin=origin
    )
