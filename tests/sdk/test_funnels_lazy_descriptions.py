"""Plans compare descriptions a large answer keeps unmade (more than 32 in one answer) as
they compare made ones: a copy again writes nothing, and a changed, missing or extra
description is one PATCH with the right description id."""

from __future__ import annotations

import contextlib
import gc

from support.emulated import unlimited_config, writes
from support.funnels_helpers import funnels_client

from amo_pipelines.emulator import Emulator
from amo_pipelines.funnels import CopyTarget, apply, copy_funnels, make_plan, spec_from_data
from amo_pipelines.funnels.export import sorted_statuses, status_spec
from amo_pipelines.model.models import StatusDescription

LEVELS = ("newbie", "candidate", "master")


def described(count: int) -> dict[str, object]:
    statuses = [
        {"name": f"Stage {i}", "descriptions": {lvl: f"{lvl} {i}" for lvl in LEVELS}}
        for i in range(count)
    ]
    return {"pipelines": [{"name": "Big", "statuses": statuses}]}


async def test_descriptions_of_a_large_answer_compare_like_made_ones() -> None:
    async with contextlib.AsyncExitStack() as stack:
        src_emu = await stack.enter_async_context(Emulator(unlimited_config()))
        source = await stack.enter_async_context(funnels_client(src_emu))
        await apply(source, spec_from_data(described(40)))  # 120 descriptions in one answer
        tgt_emu = await stack.enter_async_context(Emulator(unlimited_config()))
        target = await stack.enter_async_context(funnels_client(tgt_emu))
        first = await copy_funnels(source, [CopyTarget(target)])
        assert not first.failed and first.targets[0].writes > 0

        tgt_emu.clear_log()
        again = await copy_funnels(source, [CopyTarget(target)])
        assert again.targets[0].writes == 0 and writes(tgt_emu) == []

        big = next(p for p in tgt_emu.state.pipelines.values() if p.name == "Big")
        stages = {s.name: s for s in big.statuses.values()}
        changed = stages["Stage 3"].descriptions["candidate"]
        changed.text = "edited by hand"
        del stages["Stage 7"].descriptions["master"]
        tgt_emu.clear_log()
        plan = await make_plan(target, first.spec)
        assert plan.writes == 2
        fixed = await copy_funnels(source, [CopyTarget(target)])
        assert fixed.targets[0].writes == 2
        sent = sorted((e.path, e.json) for e in tgt_emu.request_log if e.method == "PATCH")
        base = f"/api/v4/leads/pipelines/{big.id}/statuses"
        assert sent == sorted(
            [
                (
                    f"{base}/{stages['Stage 3'].id}",
                    {
                        "descriptions": [
                            {"id": changed.id, "level": "candidate", "description": "candidate 3"}
                        ]
                    },
                ),
                (
                    f"{base}/{stages['Stage 7'].id}",
                    {"descriptions": [{"level": "master", "description": "master 7"}]},
                ),
            ]
        )
        tgt_emu.clear_log()
        last = await copy_funnels(source, [CopyTarget(target)])
        assert last.targets[0].writes == 0 and writes(tgt_emu) == []


async def test_an_export_reads_descriptions_without_making_them() -> None:
    """The source of a copy keeps its statuses to the end: export reads their descriptions'
    texts without making the 120 description objects the answer kept as rows."""
    async with contextlib.AsyncExitStack() as stack:
        emu = await stack.enter_async_context(Emulator(unlimited_config()))
        amo = await stack.enter_async_context(funnels_client(emu))
        await apply(amo, spec_from_data(described(40)))
        big = next(p for p in await amo.pipelines.list() if p.name == "Big")
        statuses = await amo.statuses.list(big.id, with_descriptions=True)
        gc.collect()
        before = sum(type(o) is StatusDescription for o in gc.get_objects())
        specs = [status_spec(s) for s in sorted_statuses(tuple(statuses))]
        assert sum(type(o) is StatusDescription for o in gc.get_objects()) == before
        custom = [s for s in specs if s.role is None]
        assert [s.descriptions for s in custom] == [
            tuple((lvl, f"{lvl} {i}") for lvl in LEVELS) for i in range(40)
        ]
        # and read the usual way, they are the same texts
        assert [
            tuple((str(d.level), d.description) for d in s.descriptions or ())
            for s in sorted_statuses(tuple(statuses))
            if not s.is_system
        ] == [s.descriptions for s in custom]
