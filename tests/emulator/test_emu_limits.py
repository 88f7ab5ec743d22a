"""Rate limits (on a fake clock), 429 bodies, blocking and reset."""

from __future__ import annotations

import asyncio
from typing import Any

from support.constants import PIPELINES


async def statuses_of(api: Any, n: int, **kwargs: Any) -> list[int]:
    return [(await api.get(PIPELINES, **kwargs)).status for _ in range(n)]


async def test_token_limit_and_retry_after(
    make_emu: Any, make_api: Any, emu_clock: Any, check_problem: Any
) -> None:
    emu = await make_emu(token_rps=3, account_rps=None, clock=emu_clock)
    api = make_api(emu)
    assert await statuses_of(api, 3) == [200, 200, 200]
    body = check_problem(await api.get(PIPELINES), 429)
    assert body["title"] == "Too Many Requests"
    assert set(body) == {"title", "type", "status", "detail", "retry_after"}
    assert body["retry_after"] == 1.0
    assert isinstance(body["retry_after"], (int, float))
    emu_clock.advance(0.5)
    assert check_problem(await api.get(PIPELINES), 429)["retry_after"] == 0.5
    emu_clock.advance(0.5)
    assert (await api.get(PIPELINES)).status == 200
    assert emu.stats.rate_limited == 2


async def test_rejected_requests_count_in_the_window(
    make_emu: Any, make_api: Any, emu_clock: Any, check_problem: Any
) -> None:
    emu = await make_emu(token_rps=2, account_rps=None, clock=emu_clock, block_after=None)
    api = make_api(emu)
    assert await statuses_of(api, 2) == [200, 200]
    emu_clock.advance(0.5)
    assert await statuses_of(api, 2) == [429, 429]
    emu_clock.advance(0.5)  # the two accepted ones left the window; the two rejected did not
    assert check_problem(await api.get(PIPELINES), 429)["retry_after"] == 0.5
    emu_clock.advance(0.5)
    assert (await api.get(PIPELINES)).status == 200


async def test_waiting_retry_after_is_enough(make_emu: Any, make_api: Any, emu_clock: Any) -> None:
    emu = await make_emu(token_rps=2, account_rps=None, clock=emu_clock, window=2.0)
    api = make_api(emu)
    await api.get(PIPELINES)
    emu_clock.advance(0.3)
    await api.get(PIPELINES)
    emu_clock.advance(0.2)
    reply = await api.get(PIPELINES)
    assert reply.status == 429
    # one more fits once the first two have left: the 429 itself occupies a slot
    assert reply.json["retry_after"] == 1.8
    emu_clock.advance(1.8)
    assert (await api.get(PIPELINES)).status == 200


async def test_limits_are_per_token_and_per_account(
    make_emu: Any, make_api: Any, emu_clock: Any
) -> None:
    emu = await make_emu(token_rps=2, account_rps=3, clock=emu_clock, block_after=None)
    api = make_api(emu)
    assert await statuses_of(api, 3) == [200, 200, 429]  # token limit
    emu_clock.advance(1.0)
    assert await statuses_of(api, 2) == [200, 200]
    assert await statuses_of(api, 1, token="user") == [200]
    # the account window is full now (3 in the last second), whatever the token
    assert await statuses_of(api, 1, token="user") == [429]
    emu_clock.advance(1.0)
    emu.state.add_token("third", admin=False)
    assert await statuses_of(api, 1, token="third") == [200]


async def test_unauthenticated_requests_are_limited_too(
    make_emu: Any, make_api: Any, emu_clock: Any
) -> None:
    emu = await make_emu(token_rps=1, account_rps=None, clock=emu_clock)
    api = make_api(emu)
    assert await statuses_of(api, 2, token=None) == [401, 429]
    assert await statuses_of(api, 1) == [200]  # the admin token has its own window


async def test_html_429(make_emu: Any, make_api: Any, emu_clock: Any) -> None:
    emu = await make_emu(token_rps=1, clock=emu_clock, html_429=True)
    api = make_api(emu)
    await api.get(PIPELINES)
    reply = await api.get(PIPELINES)
    assert reply.status == 429
    assert reply.content_type == "text/html"
    assert "429 Too Many Requests" in reply.text


async def test_blocking_and_reset(
    make_emu: Any, make_api: Any, emu_clock: Any, check_problem: Any
) -> None:
    emu = await make_emu(token_rps=1, account_rps=None, clock=emu_clock, block_after=2)
    api = make_api(emu)
    assert await statuses_of(api, 4) == [200, 429, 429, 429]  # the third 429 blocks
    assert emu.stats.blocked is True and emu.blocked
    assert (emu.stats.rate_limited, emu.stats.blocks) == (3, 1)
    emu_clock.advance(120)
    for token in ("admin", "user", None):
        reply = await api.get(PIPELINES, token=token)
        assert reply.status == 403
        assert reply.content_type == "text/html"
        assert "blocked" in reply.text
    assert emu.stats.blocked_requests == 3
    assert [e.outcome for e in emu.request_log[-3:]] == ["blocked"] * 3
    emu.reset_limits()
    assert emu.stats.blocked is False
    assert (await api.get(PIPELINES)).status == 200
    assert (emu.stats.rate_limited, emu.stats.blocks) == (3, 1)  # counters are kept
    assert await statuses_of(api, 3) == [429, 429, 429]
    assert emu.stats.blocks == 2


async def test_429s_outside_the_block_window_do_not_block(
    make_emu: Any, make_api: Any, emu_clock: Any
) -> None:
    emu = await make_emu(
        token_rps=1, account_rps=None, clock=emu_clock, block_after=2, block_window=10
    )
    api = make_api(emu)
    for _ in range(5):
        assert await statuses_of(api, 3) == [200, 429, 429]
        emu_clock.advance(11)
    assert emu.stats.rate_limited == 10 and not emu.stats.blocked


async def test_block_after_none_never_blocks(make_emu: Any, make_api: Any, emu_clock: Any) -> None:
    emu = await make_emu(token_rps=1, account_rps=None, clock=emu_clock, block_after=None)
    api = make_api(emu)
    assert (await statuses_of(api, 30)).count(429) == 29
    assert not emu.stats.blocked


async def test_limits_off(make_emu: Any, make_api: Any, emu_clock: Any) -> None:
    emu = await make_emu(token_rps=None, account_rps=None, clock=emu_clock)
    assert set(await statuses_of(make_api(emu), 60)) == {200}


async def test_default_limit_with_the_real_clock(make_emu: Any, make_api: Any) -> None:
    emu = await make_emu()  # 7 per second per token
    api = make_api(emu)
    replies = await asyncio.gather(*(api.get(PIPELINES) for _ in range(9)))
    statuses = sorted(r.status for r in replies)
    # on a very slow machine the burst may straddle a window boundary
    assert (statuses.count(200) >= 7 and 429 in statuses) or statuses.count(200) == 9
    emu.reset_limits()
    assert (await api.get(PIPELINES)).status == 200


async def test_faulted_requests_count_in_the_window(
    make_emu: Any, make_api: Any, emu_clock: Any
) -> None:
    from amo_pipelines.emulator import Fault

    emu = await make_emu(token_rps=2, account_rps=None, clock=emu_clock)
    api = make_api(emu)
    emu.faults.add(Fault.status(503))
    assert await statuses_of(api, 3) == [503, 200, 429]
    # rate-limited requests are not faulted: the scripted fault waits for the next one through
    emu.faults.add(Fault.status(500))
    assert (await api.get(PIPELINES)).status == 429
    emu_clock.advance(1)
    assert (await api.get(PIPELINES)).status == 500
