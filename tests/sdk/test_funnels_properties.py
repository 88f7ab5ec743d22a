"""Property: for any legal funnels file, ``plan`` right after ``apply`` is empty, from an
empty account and from whatever an earlier file left (with ``prune``)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.funnels_helpers import account

from amo_pipelines import StatusColor
from amo_pipelines.funnels import (
    FunnelsSpec,
    PipelineSpec,
    StatusSpec,
    apply,
    export,
    loads_spec,
    make_plan,
)
from amo_pipelines.funnels._order import nearest_palette_color

NAMES = st.sampled_from(["Лид", "Call", "Demo", "Offer", "Счёт", "Won?", "No", "2024", "#1"])
COLORS = st.one_of(
    st.none(),
    st.sampled_from([c.value for c in StatusColor]),
    st.sampled_from(["#99ccff", "#ffcc66", "#000000", "#123abc"]),
)
TEXTS = st.text(alphabet="abcЖЭ ✅", min_size=1, max_size=12).filter(lambda t: t.strip() != "")
DESCRIPTIONS = st.one_of(
    st.none(),
    st.lists(st.sampled_from(["newbie", "candidate", "master"]), unique=True).flatmap(
        lambda levels: st.tuples(
            *(
                st.tuples(st.just(lv), TEXTS)
                for lv in sorted(levels, key=["newbie", "candidate", "master"].index)
            )
        )
    ),
)


@st.composite
def statuses(draw: Any) -> tuple[StatusSpec, ...]:
    names = draw(st.lists(NAMES, unique=True, max_size=5))
    regular = [
        StatusSpec(name=n, color=draw(COLORS), descriptions=draw(DESCRIPTIONS)) for n in names
    ]
    if draw(st.booleans()):
        regular.append(StatusSpec(role="won", id=142, name=draw(NAMES)))
    return tuple(regular)


@st.composite
def specs(draw: Any) -> FunnelsSpec:
    # The account's main pipeline "Воронка" (matched by name) plus up to two others.
    names = [
        "Воронка",
        *draw(st.lists(st.sampled_from(["Sales", "HR", "Б2Б"]), unique=True, max_size=2)),
    ]
    order = draw(st.permutations(names))
    pipelines = tuple(
        PipelineSpec(
            name=n,
            is_main=True if n == "Воронка" else None,
            is_unsorted_on=draw(st.sampled_from([None, True, False])),
            statuses=draw(statuses()),
        )
        for n in order
    )
    return FunnelsSpec(pipelines=pipelines)


@pytest.mark.slow  # ~2.3 s
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(first=specs(), second=specs())
async def test_plan_after_apply_is_empty(first: FunnelsSpec, second: FunnelsSpec) -> None:
    async with account(seed_account=False) as (_, amo):
        for spec in (first, second):
            await apply(amo, spec, prune=True)
            plan = await make_plan(amo, spec, prune=True)
            assert not plan.has_changes, plan.render()
            exported = await export(amo)
            assert _managed(exported, spec) == _managed(spec, spec)


def _managed(spec: FunnelsSpec, wanted: FunnelsSpec) -> list[Any]:
    """What ``wanted`` manages, read from ``spec``: pipeline names in order, their custom
    statuses' names in order, colors as written (where given) and descriptions (where
    given)."""
    out = []
    for p, w in zip(spec.pipelines, wanted.pipelines, strict=False):
        custom = [s for s in p.statuses if s.role is None]
        asked = [s for s in w.statuses if s.role is None]
        out.append(
            (
                p.name,
                [
                    (
                        s.name,
                        s.color and a.color and nearest_palette_color(s.color),
                        (a.descriptions is not None and s.descriptions) or None,
                    )
                    for s, a in zip(custom, asked, strict=False)
                ],
                len(custom),
            )
        )
    return [len(spec.pipelines), *out]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
async def test_on_its_own_account_a_file_matches_by_id(data: st.DataObject) -> None:
    # Renamed and reordered statuses of an account's own export keep their ids: they are
    # changed and moved, never created or deleted.
    async with account(seed_account=False) as (_, amo):
        names = "pipelines:\n- name: Воронка\n  statuses:\n" + "".join(
            f"  - name: S{i}\n" for i in range(6)
        )
        await apply(amo, loads_spec(names))
        exported = await export(amo)
        [pipeline] = exported.pipelines
        custom = [s for s in pipeline.statuses if s.role is None]
        order = data.draw(st.permutations(custom))
        renamed = [
            attrs.evolve(s, name=data.draw(st.sampled_from([s.name, f"{s.name}!", f"Z{s.id}"])))
            for s in order
        ]
        wanted = attrs.evolve(
            exported,
            pipelines=(attrs.evolve(pipeline, statuses=tuple(renamed)),),
        )
        await apply(amo, wanted)
        assert not (await make_plan(amo, wanted)).has_changes
        [after] = (await export(amo)).pipelines
        got = [(s.id, s.name) for s in after.statuses if s.role is None]
        assert got == [(s.id, s.name) for s in renamed]
