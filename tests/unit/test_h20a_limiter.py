"""The limiter's and the throttle's per-request paths, written out inline for speed: the
same grants at the same virtual times as the coroutine path, and a place granted at once
given back whenever the request is refused before the wire."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from amo_pipelines import CircuitBreaker, FakeClock, InMemoryWindowStore, Limit, RateLimiter
from amo_pipelines.budget.limiter import Hold
from amo_pipelines.errors import AccountBlockedError, ClientClosedError, ForbiddenError
from amo_pipelines.http.chain import CloseGate, send_check
from amo_pipelines.http.throttle import ThrottlePolicy
from amo_pipelines.transport.base import Request, Response, new_request, sealed_headers

from ._async_only import AsyncOnly

ACCOUNT = "acme.amocrm.ru"
KEYS = ["fp-1", "fp-2"]


ACTIONS = st.sampled_from(["take", "take", "take", "settle", "give back", "429", "pause"])


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(ACTIONS, st.integers(0, 1), st.floats(0, 0.6)), max_size=40))
def test_a_place_at_once_and_through_the_coroutine_path_are_granted_alike(
    steps: list[tuple[str, int, float]],
) -> None:
    """Both limits, two tokens, an in-flight cap, penalties (the windows rebuilt with lower
    counts, then recovering) and pauses: the same script on a store that answers at once
    (the inline path of take) and on one that is only async gives the same grants, at the
    same virtual times, and the same account state."""

    async def run(store: object) -> list[tuple[str, int, float]]:
        clock = FakeClock()
        limiter = RateLimiter(
            clock=clock,
            integration_limit=Limit(3, 1.0),
            account_limit=Limit(4, 1.0),
            max_in_flight=3,
            store=store,  # type: ignore[arg-type]
        )
        held: list[Hold] = []
        log: list[tuple[str, int, float]] = []
        for action, which, wait in steps:
            if action == "take":
                taken = limiter.take(ACCOUNT, KEYS[which])
                if not isinstance(taken, Hold):  # its first try, or a wait: let it run
                    task = asyncio.ensure_future(taken)
                    await clock.settle()
                    if not task.done():
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
                    taken = task.result() if task.done() and not task.cancelled() else None
                log.append(("full" if taken is None else "granted", which, clock.now()))
                if taken is not None:
                    held.append(taken)
            elif action == "429":
                await limiter.note_429(ACCOUNT, wait)
            elif action == "pause":
                limiter.pause(ACCOUNT, wait)
            elif held and action == "settle":
                await limiter.release(held.pop(0))
            elif held:
                limiter.give_back(held.pop(0))
            await clock.advance(wait)
            stats = limiter.stats(ACCOUNT)
            log.append(("stats", stats.in_flight, float(stats.integration_limit or 0)))
        for hold in held:
            await limiter.release(hold)
        assert limiter.stats(ACCOUNT).in_flight == 0
        return log

    assert asyncio.run(run(InMemoryWindowStore())) == asyncio.run(run(AsyncOnly()))


async def test_with_limits_off_a_pause_and_the_in_flight_cap_still_hold() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, integration_limit=None, account_limit=None, max_in_flight=1)
    first = limiter.take(ACCOUNT, KEYS[0])
    assert isinstance(first, Hold)
    second = limiter.take(ACCOUNT, KEYS[0])
    assert not isinstance(second, Hold)  # the cap: it waits for the first to land
    waiting = asyncio.ensure_future(second)
    await clock.settle()
    assert not waiting.done()
    assert limiter.settle(first) is None
    await clock.settle()
    assert waiting.done()
    assert limiter.settle(waiting.result()) is None
    limiter.pause(ACCOUNT, 2.0)
    paused = limiter.take(ACCOUNT, KEYS[0])
    assert not isinstance(paused, Hold)
    task = asyncio.ensure_future(paused)
    await clock.advance(1.9)
    assert not task.done()
    await clock.advance(0.2)
    assert task.done() and limiter.stats(ACCOUNT).in_flight == 1
    assert limiter.settle(task.result()) is None


# --- the throttle: a place granted at once ------------------------------------------------


def request() -> Request:
    return new_request(
        "GET", URL(f"https://{ACCOUNT}/api/v4/leads/pipelines"), sealed_headers({"a": "b"})
    )


async def granted_now(limiter: RateLimiter, clock: FakeClock) -> bool:
    """Whether a place is granted without the clock moving (at once, or once the pump has
    taken a given-back place out of the windows)."""
    taken = limiter.take(ACCOUNT, KEYS[0])
    if not isinstance(taken, Hold):
        task = asyncio.ensure_future(taken)
        await clock.settle()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False
        taken = task.result()
    limiter.give_back(taken)
    return True


def one_per_minute(clock: FakeClock) -> RateLimiter:
    return RateLimiter(
        clock=clock, integration_limit=Limit(1, 60.0), account_limit=None, max_in_flight=None
    )


def throttle(
    clock: FakeClock, limiter: RateLimiter, *, check: object = None
) -> tuple[ThrottlePolicy, CloseGate, CircuitBreaker]:
    gate, breaker = CloseGate(), CircuitBreaker(clock=clock)
    policy = ThrottlePolicy(
        account=ACCOUNT,
        integration=KEYS[0],
        limiter=limiter,
        breaker=breaker,
        clock=clock,
        gate=gate,
        check=check,  # type: ignore[arg-type]
    )
    return policy, gate, breaker


async def test_a_place_granted_at_once_goes_on_the_wire_and_comes_back() -> None:
    clock = FakeClock()
    limiter = one_per_minute(clock)
    policy, gate, _ = throttle(clock, limiter)
    hold = policy.grant(request())
    assert isinstance(hold, Hold) and gate.on_wire == 1
    assert policy.answered(request(), hold, Response(status=200)) is None
    assert gate.on_wire == 0 and limiter.stats(ACCOUNT).in_flight == 0
    assert not await granted_now(limiter, clock)  # the answer counts


class Refused(Exception):
    pass


def refuse(_request: Request) -> None:
    raise Refused


@pytest.mark.parametrize("where", ["the policy's check", "the caller's send check"])
async def test_a_place_granted_at_once_then_refused_is_given_back(where: str) -> None:
    """The checks a place granted at once still passes before the wire (a token fallen
    due, a caller's own check): a refusal frees it for the next request at once."""
    clock = FakeClock()
    limiter = one_per_minute(clock)
    policy, gate, _ = throttle(clock, limiter, check=refuse if where[4] == "p" else None)
    token = send_check.set(refuse if where[4] == "c" else None)
    try:
        with pytest.raises(Refused):
            policy.grant(request())
    finally:
        send_check.reset(token)
    assert gate.on_wire == 0 and limiter.stats(ACCOUNT).in_flight == 0
    assert await granted_now(limiter, clock)  # the one place is free again


async def test_a_closed_client_or_an_open_circuit_takes_no_place() -> None:
    clock = FakeClock()
    limiter = one_per_minute(clock)
    policy, gate, breaker = throttle(clock, limiter)
    breaker.open(ACCOUNT, ForbiddenError(status=403, method="GET", path="/", title="blocked"))
    with pytest.raises(AccountBlockedError):
        policy.grant(request())
    breaker.reset(ACCOUNT)
    gate.close()
    with pytest.raises(ClientClosedError):
        policy.grant(request())
    assert limiter.stats(ACCOUNT).in_flight == 0 and gate.on_wire == 0
    assert await granted_now(limiter, clock)


async def test_a_place_waited_for_is_checked_again_before_the_wire() -> None:
    """Unlike one granted at once: while it waited the circuit may have opened."""
    clock = FakeClock()
    limiter = one_per_minute(clock)
    policy, gate, breaker = throttle(clock, limiter)
    first = policy.grant(request())
    assert isinstance(first, Hold)
    waiting = policy.grant(request())
    assert not isinstance(waiting, Hold)
    task = asyncio.ensure_future(waiting)
    await clock.advance(1.0)
    assert policy.answered(request(), first, Response(status=200)) is None
    breaker.open(ACCOUNT, ForbiddenError(status=403, method="GET", path="/", title="blocked"))
    await clock.advance(61.0)
    with pytest.raises(AccountBlockedError):
        await task
    assert limiter.stats(ACCOUNT).in_flight == 0 and gate.on_wire == 0


async def test_a_closing_client_s_drain_ends_when_its_last_request_lands() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, integration_limit=None, account_limit=None)
    policy, gate, _ = throttle(clock, limiter)
    hold = policy.grant(request())
    assert isinstance(hold, Hold)
    gate.close()
    drained = asyncio.ensure_future(gate.drained())
    await clock.settle()
    assert not drained.done()
    assert policy.answered(request(), hold, Response(status=200)) is None
    await clock.settle()
    assert drained.done() and gate.on_wire == 0


async def test_after_a_429_the_next_places_come_from_the_halved_windows() -> None:
    """The windows a request is checked against are kept per token and rebuilt when a
    penalty changes their counts: a window of 4 allows 2 after a 429, then recovers."""
    clock = FakeClock()
    limiter = RateLimiter(
        clock=clock, integration_limit=Limit(4, 1.0), account_limit=None, max_in_flight=None
    )
    first = limiter.take(ACCOUNT, KEYS[0])
    assert isinstance(first, Hold)
    assert limiter.settle(first) is None  # (the unpenalised windows are now kept)
    await limiter.note_429(ACCOUNT, 0.0)
    await clock.advance(1.01)  # the first place has expired; the penalty stands
    holds = [limiter.take(ACCOUNT, KEYS[0]) for _ in range(2)]
    assert all(isinstance(hold, Hold) for hold in holds)
    third = limiter.take(ACCOUNT, KEYS[0])
    assert not isinstance(third, Hold)  # 4 x 0.5 = 2 places
    third.close()
    for hold in holds:
        assert isinstance(hold, Hold)
        assert limiter.settle(hold) is None
    assert limiter.stats(ACCOUNT).integration_limit == 2
