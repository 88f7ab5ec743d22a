"""copy_funnels: one source, many targets, converging, with an id map."""

from __future__ import annotations

import contextlib

from support.emulated import unlimited_config, writes
from support.funnels_helpers import account, fill_source, funnels_client, shape

from amo_pipelines.emulator import Emulator
from amo_pipelines.funnels import CopyTarget, copy_funnels, export


async def test_copy_to_many_accounts_converges_and_maps_every_id() -> None:
    async with contextlib.AsyncExitStack() as stack:
        src_emu, source = await stack.enter_async_context(account())
        await fill_source(source)
        pairs = [await stack.enter_async_context(account(seed_account=False)) for _ in range(5)]
        emus, clients = [e for e, _ in pairs], [c for _, c in pairs]
        result = await copy_funnels(source, [CopyTarget(c) for c in clients])
        assert not result.failed
        wanted = shape(await export(source))
        for c, e, outcome in zip(clients, emus, result.targets, strict=True):
            assert shape(await export(c)) == wanted
            # 1 POST of the two new pipelines, then 1 statuses POST for each pipeline whose
            # source has custom statuses (the main one, "Продажи", "Plain").
            assert [m for m, _ in writes(e)] == ["POST"] * 4
            assert outcome.writes == 4
            ids = outcome.id_map(result.spec)
            # Every status the API shows (an incoming status is hidden while incoming
            # leads are off, as in "Plain").
            source_ids = {
                s.id for p in src_emu.state.pipelines.values() for s in p.shown_statuses()
            }
            target_ids = {s.id for p in e.state.pipelines.values() for s in p.shown_statuses()}
            assert {int(k) for k in ids["statuses"]} == source_ids
            assert set(ids["statuses"].values()) == target_ids
            assert ids["statuses"]["142"] == 142 and ids["statuses"]["143"] == 143
            assert set(ids["pipelines"].values()) == set(e.state.pipelines)
        before = [len(writes(e)) for e in emus]
        again = await copy_funnels(source, [CopyTarget(c) for c in clients])
        assert [t.writes for t in again.targets] == [0] * 5
        assert [len(writes(e)) for e in emus] == before
        assert again.id_map()["targets"] == result.id_map()["targets"]


async def test_copy_reports_a_failing_target_and_goes_on() -> None:
    async with contextlib.AsyncExitStack() as stack:
        _, source = await stack.enter_async_context(account())
        good = await stack.enter_async_context(Emulator(unlimited_config(seed_account=False)))
        bad = await stack.enter_async_context(Emulator(unlimited_config(seed_account=False)))
        bad.state.revoke_token(bad.admin_token)
        targets = [
            CopyTarget(await stack.enter_async_context(funnels_client(good)), "good"),
            CopyTarget(await stack.enter_async_context(funnels_client(bad)), "bad"),
        ]
        result = await copy_funnels(source, targets)
        assert [t.target for t in result.failed] == ["bad"]
        assert "401" in str(result.failed[0].error) or "Unauthorized" in repr(
            result.failed[0].error
        )
        assert len(writes(good)) == 1
