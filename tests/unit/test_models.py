# ruff: noqa: RUF001 - the API speaks Russian; Cyrillic text here is meant
"""Response models against every JSON response example of the three spec pages.

A strict converter (unknown keys are errors) structures each example, so a documented
field the models do not know fails here instead of being dropped silently.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from support import spec_examples

from amo_pipelines import (
    DescriptionLevel,
    Pipeline,
    Status,
    StatusColor,
    StatusDescription,
    StatusType,
)
from amo_pipelines.model.converter import converter, make_converter
from amo_pipelines.model.models import PipelineCollection, StatusCollection

MODELS: dict[str, type[Any]] = {
    "PipelineCollection": PipelineCollection,
    "Pipeline": Pipeline,
    "StatusCollection": StatusCollection,
    "Status": Status,
}

strict = make_converter(strict=True)


def _when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def _check_description(model: StatusDescription, raw: dict[str, Any]) -> None:
    assert model.id == raw["id"]
    assert model.account_id == raw["account_id"]
    assert model.pipeline_id == raw["pipeline_id"]
    assert model.status_id == raw["status_id"]
    assert model.level == raw["level"]
    assert model.description == raw["description"]
    assert model.created_at == _when(raw["created_at"])
    assert model.updated_at == _when(raw["updated_at"])
    assert model.created_by == raw["created_by"]
    assert model.updated_by == raw["updated_by"]


def _check_status(model: Status, raw: dict[str, Any]) -> None:
    assert isinstance(model, Status)
    for name in ("id", "name", "sort", "is_editable", "pipeline_id", "color", "account_id"):
        assert getattr(model, name) == raw[name], name
    assert type(model.color) is str
    assert model.type == raw["type"]
    assert isinstance(model.type, StatusType)
    assert model.request_id == raw.get("request_id")
    assert model.self_href == raw["_links"]["self"]["href"]
    if "descriptions" not in raw:
        assert model.descriptions is None
    else:
        assert model.descriptions is not None
        assert len(model.descriptions) == len(raw["descriptions"])
        for description, item in zip(model.descriptions, raw["descriptions"], strict=True):
            _check_description(description, item)


def _check_pipeline(model: Pipeline, raw: dict[str, Any]) -> None:
    assert isinstance(model, Pipeline)
    for name in ("id", "name", "sort", "is_main", "is_unsorted_on", "account_id"):
        assert getattr(model, name) == raw[name], name
    assert model.is_archive is raw.get("is_archive", False)
    assert model.request_id == raw.get("request_id")
    assert model.self_href == raw["_links"]["self"]["href"]
    raw_statuses = raw["_embedded"]["statuses"]
    assert len(model.statuses) == len(raw_statuses)
    for status, raw_status in zip(model.statuses, raw_statuses, strict=True):
        _check_status(status, raw_status)


def _check_collection(model: Any, raw: dict[str, Any], key: str) -> None:
    assert model.total_items == raw["_total_items"]
    if "_links" in raw:
        assert model.self_href == raw["_links"]["self"]["href"]
    else:
        assert model.self_href is None
    items = getattr(model.embedded, key)
    assert len(items) == len(raw["_embedded"][key])
    check = _check_pipeline if key == "pipelines" else _check_status
    for item, raw_item in zip(items, raw["_embedded"][key], strict=True):
        check(item, raw_item)


def _check(model: Any, raw: dict[str, Any]) -> None:
    if isinstance(model, PipelineCollection):
        _check_collection(model, raw, "pipelines")
    elif isinstance(model, StatusCollection):
        _check_collection(model, raw, "statuses")
    elif isinstance(model, Pipeline):
        _check_pipeline(model, raw)
    else:
        _check_status(model, raw)


# --- the examples themselves ------------------------------------------------------------


@pytest.mark.parametrize("page", spec_examples.PAGES)
def test_every_page_documents_every_endpoint(page: str, examples: Any) -> None:
    on_page = [e for e in examples if e.page == page]
    responses = {(e.method, e.endpoint) for e in on_page if e.kind == "response"}
    requests = {(e.method, e.endpoint) for e in on_page if e.kind == "request"}
    assert responses == set(spec_examples.RESPONSE_MODEL)
    assert requests == spec_examples.REQUEST_ENDPOINTS
    assert len(on_page) == len(spec_examples.RESPONSE_MODEL) + len(requests)


def test_markdown_page_examples_are_its_json_fences(examples: Any) -> None:
    md = [e for e in examples if e.page.endswith(".md")]
    assert spec_examples.json_fences("leads-pipelines.ru.md") == len(md) > 0


@pytest.mark.parametrize("example", spec_examples.responses(), ids=lambda e: e.id)
def test_strict_converter_structures_every_response_example(
    example: spec_examples.Example,
) -> None:
    model = strict.structure(example.data, MODELS[example.model_name])
    _check(model, example.data)
    # The SDK's own (lenient) converter reads the example into the very same object.
    assert converter.structure(example.data, MODELS[example.model_name]) == model


# --- concrete values from the Russian page ----------------------------------------------

RU = "leads-pipelines.ru.md"
P = spec_examples


def test_pipeline_list_example_values() -> None:
    data = P.find(RU, "response", "GET", P.PIPELINES)
    (pipeline,) = strict.structure(data, PipelineCollection).embedded.pipelines
    assert (pipeline.id, pipeline.name, pipeline.sort) == (3177727, "Воронка", 1)
    assert pipeline.is_main is True and pipeline.is_unsorted_on is True
    assert pipeline.is_archive is False
    assert pipeline.account_id == 12345678

    assert pipeline.incoming is not None
    assert pipeline.incoming.id == 32392156
    assert pipeline.incoming.type is StatusType.INCOMING
    assert pipeline.incoming.is_incoming and pipeline.incoming.is_system
    assert pipeline.incoming.color == "#c1c1c1"

    won, lost = pipeline.won, pipeline.lost
    assert won is not None and lost is not None
    assert (won.id, won.name, won.sort) == (142, "Успешно реализовано", 10000)
    assert won.is_won and not won.is_lost and won.is_system
    assert won.type is StatusType.REGULAR
    # System statuses use colors outside the palette, kept exactly as sent.
    assert won.color == "#CCFF66" and type(won.color) is str
    assert won.color not in {c.value for c in StatusColor}
    assert (lost.id, lost.name, lost.color) == (143, "Закрыто и не реализовано", "#D5D8DB")
    assert lost.is_lost and not lost.is_won

    assert [s.id for s in pipeline.custom_statuses] == [32392159, 32392165]
    assert not any(s.is_system for s in pipeline.custom_statuses)
    assert [s.id for s in pipeline.statuses] == [32392156, 32392159, 32392165, 142, 143]
    decision = pipeline.status_by_name("Принимают решение")
    assert decision is not None and decision.id == 32392165
    assert decision.is_editable is True and decision.color == "#ffcc66"
    assert pipeline.status_by_name("Нет такого") is None
    assert pipeline.status_by_id(32392159) is pipeline.statuses[1]
    assert pipeline.status_by_id(1) is None
    # Statuses of a pipeline come without descriptions: None, not an empty tuple.
    assert all(s.descriptions is None for s in pipeline.statuses)
    assert pipeline.statuses[0].self_href is not None
    assert pipeline.statuses[0].self_href.endswith("/3177727/statuses/32392156")


def test_pipeline_create_example_has_no_is_archive_and_echoes_request_id() -> None:
    data = P.find(RU, "response", "POST", P.PIPELINES)
    assert "is_archive" not in data["_embedded"]["pipelines"][0]
    (pipeline,) = strict.structure(data, PipelineCollection).embedded.pipelines
    assert pipeline.is_archive is False
    assert pipeline.request_id == "123"
    assert pipeline.won is not None and pipeline.won.name == "Мое название для успешных сделок"
    assert [s.name for s in pipeline.custom_statuses] == ["Первичный контакт"]


def test_pipeline_patch_example_without_incoming_status() -> None:
    pipeline = strict.structure(P.find(RU, "response", "PATCH", P.PIPELINE), Pipeline)
    assert pipeline.incoming is None
    assert pipeline.request_id == "0"
    assert pipeline.sort == 1000
    assert pipeline.won is not None and pipeline.lost is not None
    assert [s.id for s in pipeline.custom_statuses] == [32392159, 32392165]


def test_status_list_example_with_descriptions() -> None:
    data = P.find(RU, "response", "GET", P.STATUSES)
    collection = strict.structure(data, StatusCollection)
    assert collection.total_items == 5
    assert collection.self_href is None
    statuses = collection.embedded.statuses
    assert [s.id for s in statuses] == [32392156, 32392159, 32392165, 142, 143]
    # Asked with=descriptions: a status without any has an empty tuple, not None.
    assert statuses[0].descriptions == ()
    assert statuses[3].descriptions == ()
    descriptions = statuses[1].descriptions
    assert descriptions is not None
    assert [d.level for d in descriptions] == [
        DescriptionLevel.NEWBIE,
        DescriptionLevel.CANDIDATE,
        DescriptionLevel.MASTER,
    ]
    assert [d.level for d in descriptions] == ["newbie", "candidate", "master"]
    newbie = descriptions[0]
    assert newbie.id == 489
    assert newbie.status_id == 32392159 and newbie.pipeline_id == 3177727
    assert newbie.created_at == datetime(2023, 5, 5, 9, 38, 0)
    assert newbie.updated_at == datetime(2023, 5, 5, 9, 38, 0)
    assert newbie.created_at.tzinfo is None
    assert newbie.created_by == 12345
    assert newbie.updated_by is None
    assert newbie.description == 'Описание статуса "Первичный контакт" для новичка'
    assert descriptions[1].created_by == 0  # 0 means the API, not "unknown"
    assert descriptions[1].updated_by == 12345
    assert descriptions[2].updated_by == 123457


def test_status_get_examples_with_and_without_descriptions() -> None:
    with_descriptions = strict.structure(P.find(RU, "response", "GET", P.STATUS), Status)
    assert with_descriptions.descriptions is not None
    assert [d.id for d in with_descriptions.descriptions] == [489, 491, 493]
    en = strict.structure(P.find("leads-pipelines.en.txt", "response", "GET", P.STATUS), Status)
    assert en.descriptions is None
    assert en.type is StatusType.INCOMING and en.is_incoming
    assert en.name == "Incoming Leads"
    assert en.request_id is None


def test_status_create_example() -> None:
    data = P.find(RU, "response", "POST", P.STATUSES)
    first, second = strict.structure(data, StatusCollection).embedded.statuses
    assert (first.request_id, second.request_id) == ("0", "1")
    # The server renumbers sort: 100 and 200 were asked for.
    assert (first.sort, second.sort) == (60, 70)
    assert first.color == StatusColor.LIGHT_YELLOW == "#fffeb2"
    assert first.descriptions is not None
    assert [d.id for d in first.descriptions] == [495, 497, 499]
    assert all(d.created_by == 0 and d.updated_by is None for d in first.descriptions)
    assert second.descriptions == ()


def test_status_patch_example() -> None:
    status = strict.structure(P.find(RU, "response", "PATCH", P.STATUS), Status)
    assert status.name == "Новое название для статуса"
    assert status.color == "#c1e0ff"
    assert status.request_id == "0"
    assert status.descriptions is not None
    newbie, candidate = status.descriptions
    assert newbie.updated_by is None
    assert newbie.created_at == datetime(2023, 5, 5, 9, 48)
    assert candidate.updated_by == 0
    assert candidate.created_at == datetime(2023, 5, 5, 9, 38)
    assert candidate.updated_at == datetime(2023, 5, 5, 9, 48)


def test_kommo_list_example_with_two_pipelines() -> None:
    data = P.find("leads-pipelines.en.txt", "response", "GET", P.PIPELINES)
    first, second = strict.structure(data, PipelineCollection).embedded.pipelines
    assert (first.name, second.name) == ("Pipeline", "Pipeline 2")
    assert first.is_main and not second.is_main
    assert len(first.custom_statuses) == 4
    assert second.won is not None and second.won.name == "Closed - won"
    assert first.self_href is not None
    assert first.self_href.startswith("https://devteam.kommo.com/")


# --- strict and lenient structuring -----------------------------------------------------


def _pipeline_list() -> dict[str, Any]:
    return copy.deepcopy(P.find(RU, "response", "GET", P.PIPELINES))


def _status_list() -> dict[str, Any]:
    return copy.deepcopy(P.find(RU, "response", "GET", P.STATUSES))


def _add(where: dict[str, Any]) -> None:
    where["future_field"] = {"anything": 1}


INJECTIONS = {
    "collection": (_pipeline_list, PipelineCollection, lambda d: d),
    "collection links": (_pipeline_list, PipelineCollection, lambda d: d["_links"]),
    "collection link": (_pipeline_list, PipelineCollection, lambda d: d["_links"]["self"]),
    "collection embedded": (_pipeline_list, PipelineCollection, lambda d: d["_embedded"]),
    "pipeline": (_pipeline_list, PipelineCollection, lambda d: d["_embedded"]["pipelines"][0]),
    "pipeline embedded": (
        _pipeline_list,
        PipelineCollection,
        lambda d: d["_embedded"]["pipelines"][0]["_embedded"],
    ),
    "embedded status": (
        _pipeline_list,
        PipelineCollection,
        lambda d: d["_embedded"]["pipelines"][0]["_embedded"]["statuses"][3],
    ),
    "status": (_status_list, StatusCollection, lambda d: d["_embedded"]["statuses"][1]),
    "description": (
        _status_list,
        StatusCollection,
        lambda d: d["_embedded"]["statuses"][1]["descriptions"][2],
    ),
}


@pytest.mark.parametrize("where", list(INJECTIONS))
def test_unknown_keys_rejected_by_strict_and_ignored_by_lenient(where: str) -> None:
    make, cls, target = INJECTIONS[where]
    pristine = make()
    data = make()
    _add(target(data))
    with pytest.raises((ClassValidationError, ForbiddenExtraKeysError)) as info:
        strict.structure(data, cls)
    assert _mentions(info.value, "future_field")
    assert converter.structure(data, cls) == converter.structure(pristine, cls)
    assert make_converter().structure(data, cls) == strict.structure(pristine, cls)


def _mentions(error: BaseException, key: str) -> bool:
    if isinstance(error, ForbiddenExtraKeysError):
        return key in error.extra_fields
    return any(_mentions(e, key) for e in getattr(error, "exceptions", ()))


def test_links_without_a_self_link_give_no_self_href() -> None:
    data = _status_list()
    statuses = data["_embedded"]["statuses"]
    statuses[0]["_links"] = {}
    del statuses[1]["_links"]
    parsed = converter.structure(data, StatusCollection).embedded.statuses
    assert (parsed[0].self_href, parsed[1].self_href) == (None, None)
    assert parsed[2].self_href == statuses[2]["_links"]["self"]["href"]


def test_lenient_converter_keeps_an_unknown_status_type() -> None:
    data = _status_list()
    data["_embedded"]["statuses"][1]["type"] = 7
    status = converter.structure(data, StatusCollection).embedded.statuses[1]
    assert status.type == 7
    assert not isinstance(status.type, StatusType)
    assert not status.is_incoming and not status.is_system


def test_missing_required_field_fails_even_leniently() -> None:
    data = _status_list()
    del data["_embedded"]["statuses"][1]["pipeline_id"]
    # The lenient converter skips cattrs' detailed validation for speed, so the error is
    # the bare KeyError; the client turns either into UnexpectedResponseError.
    with pytest.raises((ClassValidationError, KeyError)):
        converter.structure(data, StatusCollection)


def test_models_are_frozen() -> None:
    status = strict.structure(P.find(RU, "response", "GET", P.STATUS), Status)
    with pytest.raises(AttributeError):
        status.name = "other"  # type: ignore[misc]
