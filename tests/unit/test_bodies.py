"""The hand-written request bodies of NewStatus and DescriptionInput (model/_bodies.py) are
exactly what cattrs' generated hooks made of every valid input: the same keys in the same
order, unset fields left out, enums as their values."""

from __future__ import annotations

from typing import Any

from cattrs.gen import make_dict_unstructure_fn
from cattrs.preconf.orjson import make_converter
from hypothesis import given
from hypothesis import strategies as st

from amo_pipelines import DescriptionInput, DescriptionLevel, NewStatus, StatusColor, StatusUpdate
from amo_pipelines.model.converter import converter


def reference() -> Any:
    c = make_converter()
    for enum in (StatusColor, DescriptionLevel):
        c.register_unstructure_hook(enum, lambda e: e.value)
    for cls in (DescriptionInput, NewStatus, StatusUpdate):
        c.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, c, _cattrs_omit_if_default=True)
        )
    return c


REFERENCE = reference()
TEXT = st.text(min_size=1, max_size=30).filter(str.strip)
LEVEL = st.one_of(
    st.sampled_from(DescriptionLevel), st.sampled_from([m.value for m in DescriptionLevel])
)


@st.composite
def descriptions(draw: st.DrawFn) -> list[DescriptionInput]:
    levels = draw(st.lists(LEVEL, max_size=3, unique_by=lambda v: DescriptionLevel(v)))
    made = []
    for level in levels:
        kind = draw(st.sampled_from(["create", "edit", "delete"]))
        if kind == "create":
            made.append(DescriptionInput.create(level, draw(TEXT)))
        elif kind == "edit":
            made.append(DescriptionInput.edit(draw(st.integers(1, 10**9)), level, draw(TEXT)))
        else:
            made.append(DescriptionInput.delete(draw(st.integers(1, 10**9)), level))
    return made


@st.composite
def new_statuses(draw: st.DrawFn) -> NewStatus:
    fields: dict[str, Any] = {"name": draw(TEXT), "sort": draw(st.integers(-1000, 10**6))}
    if draw(st.booleans()):
        fields["color"] = draw(
            st.one_of(st.sampled_from(StatusColor), st.sampled_from([m.value for m in StatusColor]))
        )
    if draw(st.booleans()):
        fields["descriptions"] = [
            d for d in draw(descriptions()) if not d.is_delete and d.id is None
        ]
    if draw(st.booleans()):
        fields["request_id"] = draw(st.text(max_size=8))
    return NewStatus(**fields)


@given(new_statuses())
def test_a_new_status_body_is_the_generated_hooks(status: NewStatus) -> None:
    got = converter.unstructure(status)
    want = REFERENCE.unstructure(status)
    assert got == want
    assert list(got) == list(want)  # the same key order, so the same bytes on the wire
    assert [list(d) for d in got.get("descriptions", [])] == [
        list(d) for d in want.get("descriptions", [])
    ]


@given(descriptions())
def test_a_description_body_is_the_generated_hooks(items: list[DescriptionInput]) -> None:
    for d in items:
        got, want = converter.unstructure(d), REFERENCE.unstructure(d)
        assert (got, list(got)) == (want, list(want))
        assert all(type(v) in (str, int) for v in got.values())  # plain JSON values, no enums


@given(descriptions(), st.one_of(st.none(), TEXT))
def test_a_status_update_with_descriptions_is_the_generated_hooks(
    items: list[DescriptionInput], name: str | None
) -> None:
    if not items and name is None:
        return  # an update that changes nothing is refused
    update = StatusUpdate(name=name, descriptions=items or None)  # so is an empty list
    assert converter.unstructure(update) == REFERENCE.unstructure(update)


def test_a_system_status_by_id_and_a_full_one() -> None:
    won = NewStatus(id=142, name="Won it")
    assert converter.unstructure(won) == {"name": "Won it", "id": 142}
    full = NewStatus(
        name="Stage",
        sort=10,
        color=StatusColor("#fffeb2"),
        descriptions=[DescriptionInput.create("newbie", "Hi")],
        request_id="7",
    )
    assert converter.unstructure(full) == {
        "name": "Stage",
        "sort": 10,
        "color": "#fffeb2",
        "descriptions": [{"level": "newbie", "description": "Hi"}],
        "request_id": "7",
    }
