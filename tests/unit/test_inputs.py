# ruff: noqa: RUF001 - the API speaks Russian; Cyrillic text here is meant
"""Input classes: validation before anything is sent, and the request bodies they make.

Every rejection runs the whole call (build the input, call the API) against a
MockTransport holding no responses, and proves that not one request went out.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support import spec_examples as P

from amo_pipelines import (
    LOST_STATUS_ID,
    MAX_CUSTOM_STATUSES_PER_PIPELINE,
    MAX_DESCRIPTION_LENGTH,
    MAX_PIPELINES_PER_ACCOUNT,
    WON_STATUS_ID,
    AmoClient,
    AmoError,
    DescriptionInput,
    DescriptionLevel,
    InvalidInputError,
    NewPipeline,
    NewStatus,
    PipelineUpdate,
    StatusColor,
    StatusUpdate,
)
from amo_pipelines.model.converter import converter
from amo_pipelines.testing import MockTransport

Call = Callable[[AmoClient], Awaitable[Any]]


def new_status(name: str = "Этап", sort: int = 10, **kw: Any) -> NewStatus:
    return NewStatus(name=name, sort=sort, **kw)


def new_pipeline(name: str = "Воронка", sort: int = 1, **kw: Any) -> NewPipeline:
    return NewPipeline(name=name, sort=sort, **kw)


class Lazy:
    """A value built only when the call runs, so that building it is part of the call."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def _resolve(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: v.make() if isinstance(v, Lazy) else v for k, v in kw.items()}


def create_pipeline(**kw: Any) -> Call:
    return lambda amo: amo.pipelines.create([new_pipeline(**_resolve(kw))])


def create_status(**kw: Any) -> Call:
    return lambda amo: amo.statuses.create(7, [new_status(**_resolve(kw))])


def update_status(**kw: Any) -> Call:
    return lambda amo: amo.statuses.update(7, 8, StatusUpdate(**_resolve(kw)))


def update_pipeline(**kw: Any) -> Call:
    return lambda amo: amo.pipelines.update(7, PipelineUpdate(**_resolve(kw)))


def descs(*levels: str) -> list[DescriptionInput]:
    return [DescriptionInput.create(level, f"для {level}") for level in levels]


def descriptions(*levels: str) -> Lazy:
    return Lazy(lambda: descs(*levels))


def customs(n: int) -> list[NewStatus]:
    return [new_status(f"Этап {i}", i) for i in range(n)]


# (the call, the expected InvalidInputError.field or None to skip that check)
REJECTED: dict[str, tuple[Call, str | None]] = {
    # names
    "pipeline name empty": (create_pipeline(name=""), "name"),
    "pipeline name blank": (create_pipeline(name="   \t"), "name"),
    "pipeline name None": (create_pipeline(name=None), "name"),
    "pipeline name int": (create_pipeline(name=5), "name"),
    "status name None": (create_status(name=None), "name"),
    "status name empty": (create_status(name=""), "name"),
    "status name bytes": (create_status(name=b"x"), "name"),
    "pipeline update name empty": (update_pipeline(name=""), "name"),
    "status update name not str": (update_status(name=["x"]), "name"),
    "won name empty": (create_pipeline(won_status_name=""), "won_status_name"),
    "lost name not str": (create_pipeline(lost_status_name=1), "lost_status_name"),
    # sort
    "pipeline sort str": (create_pipeline(sort="1"), "sort"),
    "pipeline sort float": (create_pipeline(sort=1.0), "sort"),
    "pipeline sort bool": (create_pipeline(sort=True), "sort"),
    "pipeline sort None": (create_pipeline(sort=None), "sort"),
    "status sort bool": (create_status(sort=False), "sort"),
    "status sort missing": (lambda amo: amo.statuses.create(7, [NewStatus(name="x")]), "sort"),
    "pipeline update sort bool": (update_pipeline(sort=True), "sort"),
    "status update sort str": (update_status(sort="10"), "sort"),
    # booleans and request ids
    "is_main str": (create_pipeline(is_main="yes"), "is_main"),
    "is_main None": (create_pipeline(is_main=None), "is_main"),
    "is_unsorted_on None": (create_pipeline(is_unsorted_on=None), "is_unsorted_on"),
    "is_unsorted_on int": (create_pipeline(is_unsorted_on=1), "is_unsorted_on"),
    "update is_main int": (update_pipeline(is_main=0), "is_main"),
    "request_id int": (create_pipeline(request_id=1), "request_id"),
    "status request_id int": (create_status(request_id=0), "request_id"),
    # colors
    "color outside palette": (create_status(color="#c1c1c1"), "color"),
    "system color": (create_status(color="#CCFF66"), "color"),
    "color name": (create_status(color="red"), "color"),
    "color int": (create_status(color=0xFFFEB2), "color"),
    "color empty": (create_status(color=""), "color"),
    "update color": (update_status(color="#99ccff"), "color"),
    # descriptions
    "four descriptions": (
        create_status(descriptions=descriptions("newbie", "candidate", "master", "newbie")),
        "descriptions",
    ),
    "four descriptions on update": (
        update_status(descriptions=descriptions("newbie", "candidate", "master", "master")),
        "descriptions",
    ),
    "repeated level": (
        create_status(descriptions=descriptions("newbie", "newbie")),
        "descriptions[1].level",
    ),
    "repeated level on update": (
        update_status(
            descriptions=Lazy(
                lambda: [
                    DescriptionInput.delete(499, "master"),
                    DescriptionInput.create("master", "снова"),
                ]
            )
        ),
        "descriptions[1].level",
    ),
    "level outside the three": (create_status(descriptions=descriptions("expert")), "level"),
    "level upper case": (create_status(descriptions=descriptions("NEWBIE")), "level"),
    "level None": (
        update_status(descriptions=Lazy(lambda: [DescriptionInput(level=None, description="x")])),
        "level",
    ),
    "description 1001 chars": (
        update_status(descriptions=Lazy(lambda: [DescriptionInput.create("newbie", "я" * 1001)])),
        "description",
    ),
    "description 1001 emoji": (
        create_status(descriptions=Lazy(lambda: [DescriptionInput.create("master", "😀" * 1001)])),
        "description",
    ),
    "description empty": (
        update_status(descriptions=Lazy(lambda: [DescriptionInput.create("newbie", "")])),
        "description",
    ),
    "description not str": (
        update_status(descriptions=Lazy(lambda: [DescriptionInput.create("newbie", 5)])),
        "description",
    ),
    "description create without text": (
        update_status(descriptions=Lazy(lambda: [DescriptionInput(level="newbie")])),
        "description",
    ),
    "description item not DescriptionInput": (
        update_status(descriptions=Lazy(lambda: [{"level": "newbie", "description": "x"}])),
        "descriptions[0]",
    ),
    "descriptions a string": (create_status(descriptions="newbie"), "descriptions"),
    "description edit id zero": (
        update_status(descriptions=Lazy(lambda: [DescriptionInput.edit(0, "newbie", "x")])),
        "id",
    ),
    "description delete id str": (
        update_status(descriptions=Lazy(lambda: [DescriptionInput.delete("499", "master")])),
        "id",
    ),
    "new status with existing description id": (
        create_status(descriptions=Lazy(lambda: [DescriptionInput.edit(497, "candidate", "x")])),
        "descriptions[0].id",
    ),
    # updates that change nothing
    "empty pipeline update": (update_pipeline(), "update"),
    "empty status update": (update_status(), "update"),
    "status update with no descriptions": (
        update_status(descriptions=Lazy(lambda: [])),
        "descriptions",
    ),
    # ids
    "pipeline id traversal": (lambda amo: amo.pipelines.get("1/../2"), "pipeline_id"),
    "pipeline id zero": (lambda amo: amo.pipelines.get(0), "pipeline_id"),
    "pipeline id negative": (lambda amo: amo.pipelines.delete(-1), "pipeline_id"),
    "pipeline id True": (lambda amo: amo.pipelines.get(True), "pipeline_id"),
    "pipeline id numeric str": (lambda amo: amo.pipelines.get("5"), "pipeline_id"),
    "pipeline id float": (lambda amo: amo.pipelines.get(5.0), "pipeline_id"),
    "pipeline id None": (lambda amo: amo.pipelines.delete(None), "pipeline_id"),
    "update pipeline id zero": (
        lambda amo: amo.pipelines.update(0, PipelineUpdate(name="x")),
        "pipeline_id",
    ),
    "statuses of pipeline 0": (lambda amo: amo.statuses.list(0), "pipeline_id"),
    "status id traversal": (lambda amo: amo.statuses.get(1, "2/../../3"), "status_id"),
    "status id negative": (lambda amo: amo.statuses.delete(1, -142), "status_id"),
    "status id True": (
        lambda amo: amo.statuses.update(1, True, StatusUpdate(name="x")),
        "status_id",
    ),
    "status of pipeline str": (lambda amo: amo.statuses.get("1", 2), "pipeline_id"),
    "create statuses in pipeline -1": (
        lambda amo: amo.statuses.create(-1, [new_status()]),
        "pipeline_id",
    ),
    "status id other than 142/143": (create_status(id=5), "id"),
    # counts
    "98 custom statuses in a pipeline": (
        create_pipeline(statuses=Lazy(lambda: customs(98))),
        "statuses",
    ),
    "98 statuses in one call": (
        lambda amo: amo.statuses.create(7, customs(MAX_CUSTOM_STATUSES_PER_PIPELINE + 1)),
        "statuses",
    ),
    "51 pipelines in one call": (
        lambda amo: amo.pipelines.create(
            [new_pipeline(f"P{i}", i) for i in range(MAX_PIPELINES_PER_ACCOUNT + 1)]
        ),
        "pipelines",
    ),
    # system statuses 142 / 143
    "won with a color": (
        create_pipeline(
            statuses=Lazy(lambda: [NewStatus(id=WON_STATUS_ID, name="Да", color="#fffeb2")])
        ),
        "id",
    ),
    "lost with a sort": (
        create_pipeline(statuses=Lazy(lambda: [NewStatus(id=LOST_STATUS_ID, name="Нет", sort=1)])),
        "id",
    ),
    "won with a request_id": (
        create_pipeline(
            statuses=Lazy(lambda: [NewStatus(id=WON_STATUS_ID, name="Да", request_id="w")])
        ),
        "id",
    ),
    "lost with descriptions": (
        create_pipeline(
            statuses=Lazy(
                lambda: [NewStatus(id=LOST_STATUS_ID, name="Нет", descriptions=descs("master"))]
            )
        ),
        "id",
    ),
    "won named twice": (
        create_pipeline(
            won_status_name="A", statuses=Lazy(lambda: [NewStatus(id=WON_STATUS_ID, name="B")])
        ),
        "statuses[0]",
    ),
    "lost given twice in statuses": (
        create_pipeline(
            statuses=Lazy(
                lambda: [
                    NewStatus(id=LOST_STATUS_ID, name="A"),
                    NewStatus(id=LOST_STATUS_ID, name="B"),
                ]
            )
        ),
        "statuses[1]",
    ),
    "system status in statuses.create": (
        lambda amo: amo.statuses.create(7, [NewStatus(id=WON_STATUS_ID, name="Да")]),
        "statuses[0].id",
    ),
    # request ids
    "duplicate pipeline request_id": (
        lambda amo: amo.pipelines.create(
            [new_pipeline("A", 1, request_id="x"), new_pipeline("B", 2, request_id="x")]
        ),
        "pipelines[1].request_id",
    ),
    "duplicate status request_id": (
        lambda amo: amo.statuses.create(
            7, [new_status("A", 1, request_id="r"), new_status("B", 2, request_id="r")]
        ),
        "statuses[1].request_id",
    ),
    # a pipeline's own statuses: name, sort and color only (descriptions come later)
    "request_id on a status inside a pipeline": (
        create_pipeline(
            statuses=Lazy(lambda: [new_status("A", 1), new_status("B", 2, request_id="r")])
        ),
        "statuses[1]",
    ),
    "descriptions on a status inside a pipeline": (
        create_pipeline(statuses=Lazy(lambda: [new_status("A", 1, descriptions=descs("newbie"))])),
        "statuses[0]",
    ),
    # item types
    "pipeline as dict": (lambda amo: amo.pipelines.create([{"name": "x", "sort": 1}]), None),
    "single pipeline not in a list": (lambda amo: amo.pipelines.create(new_pipeline()), None),
    "pipelines as str": (lambda amo: amo.pipelines.create("pipelines"), None),
    "pipelines as None": (lambda amo: amo.pipelines.create(None), None),
    "status as NewPipeline": (lambda amo: amo.statuses.create(7, [new_pipeline()]), None),
    "single status not in a list": (lambda amo: amo.statuses.create(7, new_status()), None),
    "pipeline statuses hold a dict": (
        create_pipeline(statuses=Lazy(lambda: [{"name": "x", "sort": 1}])),
        "statuses[0]",
    ),
    "pipeline statuses a str": (create_pipeline(statuses="abc"), "statuses"),
    "pipeline update is a dict": (lambda amo: amo.pipelines.update(7, {"name": "x"}), "update"),
    "pipeline update is a StatusUpdate": (
        lambda amo: amo.pipelines.update(7, StatusUpdate(name="x")),
        "update",
    ),
    "status update is a PipelineUpdate": (
        lambda amo: amo.statuses.update(7, 8, PipelineUpdate(name="x")),
        "update",
    ),
    # empty creates
    "no pipelines": (lambda amo: amo.pipelines.create([]), "pipelines"),
    "no statuses": (lambda amo: amo.statuses.create(7, []), "statuses"),
    "empty generator": (lambda amo: amo.statuses.create(7, (s for s in ())), "statuses"),
}


@pytest.mark.parametrize("case", list(REJECTED))
async def test_rejected_before_sending(case: str, amo: AmoClient, transport: MockTransport) -> None:
    call, field = REJECTED[case]
    with pytest.raises(InvalidInputError) as info:
        await call(amo)
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, AmoError)
    assert not error.may_have_been_processed
    if field is not None:
        assert error.field == field
        assert str(error).startswith(f"{field}: ")
    assert transport.requests == []


# --- what is accepted -------------------------------------------------------------------


def test_description_of_1000_emoji_is_accepted() -> None:
    text = "😀" * MAX_DESCRIPTION_LENGTH
    assert len(text.encode("utf-16-le")) == 4 * MAX_DESCRIPTION_LENGTH
    description = DescriptionInput.create(DescriptionLevel.NEWBIE, text)
    status = NewStatus(name="x", sort=1, descriptions=[description])
    assert converter.unstructure(status)["descriptions"] == [
        {"level": "newbie", "description": text}
    ]


def test_97_custom_statuses_and_both_system_names_fit_one_pipeline() -> None:
    pipeline = new_pipeline(
        statuses=[*customs(MAX_CUSTOM_STATUSES_PER_PIPELINE), NewStatus(id=142, name="Да")],
        lost_status_name="Нет",
    )
    statuses = converter.unstructure(pipeline)["_embedded"]["statuses"]
    assert len(statuses) == 99
    assert statuses[-2:] == [{"id": 142, "name": "Да"}, {"id": 143, "name": "Нет"}]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("#fffeb2", StatusColor.LIGHT_YELLOW),
        ("#FFFEB2", StatusColor.LIGHT_YELLOW),
        (StatusColor.GREY, StatusColor.GREY),
        ("#E6E8EA", StatusColor.GREY),
    ],
)
def test_palette_colors_in_any_case(given: Any, expected: StatusColor) -> None:
    assert new_status(color=given).color is expected
    assert StatusUpdate(color=given).color is expected
    assert converter.unstructure(StatusUpdate(color=given)) == {"color": expected.value}


def test_the_palette_is_the_documented_one() -> None:
    documented = P.palette()
    assert len(documented) == 21
    assert [c.value for c in StatusColor] == documented


def test_levels_as_str_or_enum() -> None:
    assert DescriptionInput.create("master", "x").level is DescriptionLevel.MASTER
    assert DescriptionInput.create(DescriptionLevel.MASTER, "x").level is DescriptionLevel.MASTER


def test_names_are_sent_as_given() -> None:
    assert converter.unstructure(PipelineUpdate(name="  Воронка ")) == {"name": "  Воронка "}


def test_system_statuses_take_only_a_name() -> None:
    assert NewStatus(id=142, name="Да").is_system
    assert not new_status().is_system


# --- bodies ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """What goes over the wire: JSON text read back."""
    return json.loads(json.dumps(value, ensure_ascii=False))


def test_pipeline_create_example_is_what_the_sdk_builds() -> None:
    example = P.find("leads-pipelines.ru.md", "request", "POST", P.PIPELINES)
    pipeline = NewPipeline(
        name="Воронка доп продаж",
        sort=20,
        is_main=False,
        is_unsorted_on=True,
        request_id="123",
        statuses=[
            NewStatus(id=WON_STATUS_ID, name="Мое название для успешных сделок"),
            NewStatus(name="Первичный контакт", sort=10, color=StatusColor.LIGHT_YELLOW),
        ],
    )
    assert _plain(converter.unstructure(pipeline)) == example[0]
    # Without the caller's request_id the body lacks it (the API call adds its own).
    no_rid = NewPipeline(
        name="Воронка доп продаж",
        sort=20,
        statuses=list(pipeline.statuses),
    )
    expected = {k: v for k, v in example[0].items() if k != "request_id"}
    assert _plain(converter.unstructure(no_rid)) == expected


def test_won_status_name_is_the_same_as_a_142_item() -> None:
    example = P.find("leads-pipelines.ru.md", "request", "POST", P.PIPELINES)[0]
    pipeline = NewPipeline(
        name="Воронка доп продаж",
        sort=20,
        request_id="123",
        won_status_name="Мое название для успешных сделок",
        statuses=[NewStatus(name="Первичный контакт", sort=10, color="#fffeb2")],
    )
    body = _plain(converter.unstructure(pipeline))
    key = json.dumps
    assert sorted(map(key, body["_embedded"]["statuses"])) == sorted(
        map(key, example["_embedded"]["statuses"])
    )
    assert {k: v for k, v in body.items() if k != "_embedded"} == {
        k: v for k, v in example.items() if k != "_embedded"
    }


def test_new_pipeline_always_sends_is_main_and_is_unsorted_on() -> None:
    assert converter.unstructure(new_pipeline()) == {
        "name": "Воронка",
        "sort": 1,
        "is_main": False,
        "is_unsorted_on": True,
    }
    body = converter.unstructure(new_pipeline(is_main=True, is_unsorted_on=False))
    assert (body["is_main"], body["is_unsorted_on"]) == (True, False)


def test_status_update_descriptions_create_edit_delete() -> None:
    example = P.find("leads-pipelines.ru.md", "request", "PATCH", P.STATUS)
    update = P.status_update_example()
    assert _plain(converter.unstructure(update)) == example
    assert [d.is_delete for d in update.descriptions or ()] == [False, False, True]


def test_updates_hold_only_what_was_set() -> None:
    assert converter.unstructure(PipelineUpdate(is_main=False)) == {"is_main": False}
    assert converter.unstructure(PipelineUpdate(sort=0)) == {"sort": 0}
    assert converter.unstructure(StatusUpdate(sort=5)) == {"sort": 5}
    assert converter.unstructure(new_status("x", 3)) == {"name": "x", "sort": 3}


# Every request example of the three pages, rebuilt from its own data through the inputs.


def _description(raw: dict[str, Any]) -> DescriptionInput:
    return DescriptionInput(**raw)


def _new_status(raw: dict[str, Any]) -> NewStatus:
    return NewStatus(
        name=raw["name"],
        sort=raw.get("sort"),
        color=raw.get("color"),
        id=raw.get("id"),
        request_id=raw.get("request_id"),
        descriptions=[_description(d) for d in raw.get("descriptions", [])],
    )


def _build(example: P.Example) -> Any:
    data = example.data
    if (example.method, example.endpoint) == ("POST", P.PIPELINES):
        return [
            NewPipeline(
                name=raw["name"],
                sort=raw["sort"],
                is_main=raw["is_main"],
                is_unsorted_on=raw["is_unsorted_on"],
                request_id=raw.get("request_id"),
                statuses=[_new_status(s) for s in raw.get("_embedded", {}).get("statuses", [])],
            )
            for raw in data
        ]
    if (example.method, example.endpoint) == ("POST", P.STATUSES):
        return [_new_status(raw) for raw in data]
    if example.endpoint == P.PIPELINE:
        return PipelineUpdate(**data)
    descriptions = [_description(d) for d in data.get("descriptions", [])]
    return StatusUpdate(
        name=data.get("name"),
        sort=data.get("sort"),
        color=data.get("color"),
        descriptions=descriptions or None,
    )


@pytest.mark.parametrize("example", P.requests(), ids=lambda e: e.id)
def test_every_request_example_is_what_the_sdk_builds(example: P.Example) -> None:
    built = _build(example)
    assert _plain(converter.unstructure(built)) == example.data
