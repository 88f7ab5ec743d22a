"""An error answer is read once, whoever asks: the throttle (429 pause, circuit breaker),
the client (the exception it raises) and the OAuth provider read the same reading."""

from __future__ import annotations

import pytest
from support.clocked import ACCOUNT, clocked_client, drive

from amo_pipelines import AccountBlockedError, FakeClock, RateLimitedError, RetryPolicy
from amo_pipelines.http import problem
from amo_pipelines.testing import MockTransport, html_response, problem_response
from amo_pipelines.transport import Response

PATH = "/api/v4/leads/pipelines"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The status of every answer read into a Problem."""
    seen: list[int] = []
    real = problem.read_problem

    def counting(response: Response) -> problem.Problem:
        seen.append(response.status)
        return real(response)

    monkeypatch.setattr(problem, "read_problem", counting)
    return seen


async def test_a_429_is_read_once_for_the_pause_and_the_exception(reads: list[int]) -> None:

    clock = FakeClock()
    transport = MockTransport(responses=[problem_response(429, "slow", retry_after=3)])
    async with clocked_client(transport, clock, retry=RetryPolicy(max_attempts=1)) as amo:
        with pytest.raises(RateLimitedError) as info:
            await drive(clock, amo.request("GET", PATH))
        assert info.value.retry_after == 3
        assert amo.rate_limiter.stats(ACCOUNT).paused_for == pytest.approx(3)
    assert reads == [429]


async def test_a_block_page_is_read_once_for_the_breaker_and_the_exception(
    reads: list[int],
) -> None:

    clock = FakeClock()
    transport = MockTransport(responses=[html_response(403)])
    async with clocked_client(transport, clock) as amo:
        with pytest.raises(AccountBlockedError):
            await drive(clock, amo.request("GET", PATH))
        assert amo.circuit_breaker.is_open(ACCOUNT)
    assert reads == [403]


def test_the_reading_is_kept_with_the_answer_and_not_part_of_its_value() -> None:
    answer = problem_response(422, "no")
    first = problem.problem_of(answer)
    assert problem.problem_of(answer) is first
    assert answer == problem_response(422, "no")  # equality ignores the cached reading
