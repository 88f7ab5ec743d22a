"""The emulator writes its success bodies as text (``wire``) for speed; they must be the very
bytes ``json.dumps`` gives for the reference dicts of ``render``, whatever the models hold.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.emulated import unlimited_config

from amo_pipelines.emulator import Description, Emulator, Pipeline, Status, render, wire

PIPELINES = "/api/v4/leads/pipelines"
LEVELS = ("newbie", "candidate", "master")

# Escapes, quotes, non-ASCII, astral and (sometimes) a lone surrogate, which neither can encode.
TEXT = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(['"', "\\", "\n", "\x00", "\u2028", "😀", "Ё", "\x7f"]),
    ),
    max_size=6,
)
ODD_TEXT = st.one_of(TEXT, st.just("bad\ud800"))
IDS = st.integers(-(2**70), 2**70)


@st.composite
def descriptions(draw: st.DrawFn, pipeline_id: int, status_id: int) -> dict[str, Description]:
    levels = draw(st.lists(st.sampled_from(LEVELS), unique=True, max_size=3))
    return {
        level: Description(
            id=draw(IDS),
            pipeline_id=pipeline_id,
            status_id=status_id,
            level=level,
            text=draw(ODD_TEXT),
            created_at=draw(TEXT),
            created_by=draw(IDS),
            updated_at=draw(TEXT),
            updated_by=draw(st.none() | IDS),
        )
        for level in levels
    }


@st.composite
def statuses(draw: st.DrawFn, pipeline_id: int) -> Status:
    sid = draw(IDS)
    return Status(
        id=sid,
        pipeline_id=pipeline_id,
        name=draw(ODD_TEXT),
        sort=draw(IDS),
        color=draw(TEXT),
        type=draw(st.sampled_from([0, 1])),
        is_editable=draw(st.booleans()),
        descriptions=draw(descriptions(pipeline_id, sid)),
    )


@st.composite
def pipelines(draw: st.DrawFn) -> Pipeline:
    pid = draw(IDS)
    found = draw(st.lists(statuses(pid), max_size=4))
    return Pipeline(
        id=pid,
        name=draw(ODD_TEXT),
        sort=draw(IDS),
        is_main=draw(st.booleans()),
        is_unsorted_on=draw(st.booleans()),
        is_archive=draw(st.booleans()),
        statuses={s.id: s for s in found},
    )


def dumps(data: Any) -> bytes:
    """What the emulator sent before it wrote text: ``json.dumps`` of ``render``'s dicts."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(data=JSON)
def test_error_bodies_are_dumped_as_json_dumps_does(data: Any) -> None:
    same(lambda: render._dumps(data), lambda: dumps(data))


def same(written: Any, reference: Any) -> None:
    """``written()`` gives ``reference()``'s bytes, or fails the same way."""
    try:
        expected = reference()
    except UnicodeEncodeError:
        try:
            written()
        except UnicodeEncodeError:
            return
        raise AssertionError("wrote text that json.dumps can not encode") from None
    assert written() == expected


BASES = st.one_of(
    st.just("http://127.0.0.1:8080"), st.text(max_size=8).map(lambda t: f"http://{t}")
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    found=st.lists(pipelines(), max_size=3),
    account_id=IDS,
    base=BASES,
    rids=st.lists(ODD_TEXT, min_size=12, max_size=12),
    with_descriptions=st.booleans(),
)
@example(found=[], account_id=1, base="", rids=[""] * 12, with_descriptions=True)
def test_wire_writes_what_render_dumps(
    found: list[Pipeline], account_id: int, base: str, rids: list[str], with_descriptions: bool
) -> None:
    prefix = wire.prefix(account_id, base)
    ids = rids[: len(found)]
    same(
        lambda: wire.pipelines_text(found, prefix),
        lambda: dumps(
            render.pipelines_collection(
                [render.pipeline_json(p, base, account_id) for p in found], base
            )
        ),
    )
    same(
        lambda: wire.pipelines_text(found, prefix, request_ids=ids),
        lambda: dumps(
            render.pipelines_collection(
                [
                    render.pipeline_json(p, base, account_id, request_id=r)
                    for p, r in zip(found, ids, strict=True)
                ],
                base,
            )
        ),
    )
    for pipeline, rid in zip(found, rids, strict=False):
        same(
            lambda p=pipeline, r=rid: wire.pipeline_body(p, prefix, request_id=r),
            lambda p=pipeline, r=rid: dumps(
                render.pipeline_json(p, base, account_id, request_id=r)
            ),
        )
        shown = list(pipeline.statuses.values())
        for rid_or_none in (None, rid):
            sids = None if rid_or_none is None else [rid_or_none] * len(shown)
            same(
                lambda s=shown, i=sids: wire.statuses_text(
                    s, prefix, request_ids=i, descriptions=with_descriptions
                ),
                lambda s=shown, r=rid_or_none: dumps(
                    render.statuses_collection(
                        [
                            render.status_json(
                                x, base, account_id, request_id=r, descriptions=with_descriptions
                            )
                            for x in s
                        ]
                    )
                ),
            )
        for status in shown:
            same(
                lambda s=status, r=rid: wire.status_body(
                    s, prefix, request_id=r, descriptions=True
                ),
                lambda s=status, r=rid: dumps(
                    render.status_json(s, base, account_id, request_id=r, descriptions=True)
                ),
            )


async def test_the_copys_statuses_post_answers_the_reference_bytes() -> None:
    """Over HTTP: a copy-sized statuses POST, then the list with descriptions, then the
    pipelines list, each answer being ``render``'s reference for what the account holds."""
    body = [
        {
            "name": f'Этап {i} "{"😀" * (i % 2)}"',
            "sort": 10 * i,
            "color": "#fffd7f",
            "descriptions": [{"level": lv, "description": f"{lv}\t{i}"} for lv in LEVELS],
            **({"request_id": f"r{i}"} if i % 3 else {}),
        }
        for i in range(1, 98)
    ]
    async with aiohttp.ClientSession() as session, Emulator(unlimited_config(seed=1)) as emu:
        headers = {"Authorization": f"Bearer {emu.admin_token}"}
        new = [{"name": "P", "sort": 100, "is_main": False, "is_unsorted_on": False}]
        async with session.post(emu.url + PIPELINES, json=new, headers=headers) as r:
            pid = (await r.json())["_embedded"]["pipelines"][0]["id"]
        path = f"{emu.url}{PIPELINES}/{pid}/statuses"
        async with session.post(path, json=body, headers=headers) as r:
            assert r.status == 200
            created = await r.read()
        pipeline = emu.state.pipelines[pid]
        account = emu.state.account_id
        regular = [s for s in pipeline.ordered_statuses() if not s.is_system]
        rids = [item.get("request_id", str(n)) for n, item in enumerate(body)]
        assert created == dumps(
            render.statuses_collection(
                [
                    render.status_json(s, emu.url, account, request_id=r, descriptions=True)
                    for s, r in zip(regular, rids, strict=True)
                ]
            )
        )
        async with session.get(f"{path}?with=descriptions", headers=headers) as r:
            listed = await r.read()
        shown = pipeline.shown_statuses()
        assert listed == dumps(
            render.statuses_collection(
                [render.status_json(s, emu.url, account, descriptions=True) for s in shown]
            )
        )
        async with session.get(emu.url + PIPELINES, headers=headers) as r:
            every = await r.read()
        assert json.loads(every)["_embedded"]["pipelines"][1]["_embedded"]["statuses"][5]
        assert every == dumps(
            render.pipelines_collection(
                [render.pipeline_json(p, emu.url, account) for p in emu.state.ordered_pipelines()],
                emu.url,
            )
        )
