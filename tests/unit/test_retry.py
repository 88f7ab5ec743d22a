"""The retry matrix per method and failure kind, and 429 handling, on virtual time."""

from __future__ import annotations

import itertools

import pytest
from support.clocked import clocked_client, drive
from support.constants import ACCOUNT

from amo_pipelines import (
    BadRequestError,
    BatchError,
    FakeClock,
    NewStatus,
    NotFoundError,
    PipelineUpdate,
    RateLimitedError,
    RateLimiter,
    RequestNotSentError,
    RequestTimeoutError,
    ResponseLostError,
    RetryPolicy,
    ServerError,
)
from amo_pipelines.testing import (
    MockTransport,
    empty_response,
    html_response,
    json_response,
    problem_response,
)
from amo_pipelines.transport import Request, Response

PIPELINE = {
    "id": 7,
    "name": "P",
    "sort": 1,
    "is_main": False,
    "is_unsorted_on": True,
    "is_archive": False,
    "account_id": 1,
    "_embedded": {"statuses": []},
}
STATUS = {
    "id": 100,
    "name": "S",
    "sort": 20,
    "is_editable": True,
    "pipeline_id": 7,
    "color": "#fffeb2",
    "type": 0,
    "account_id": 1,
    "request_id": "0",
    "descriptions": [],
}
CREATED = {"_total_items": 1, "_embedded": {"statuses": [STATUS]}}

NOT_SENT = RequestNotSentError("refused", method="POST", path="/x")
LOST = ResponseLostError("reset", method="GET", path="/x")
TIMEOUT = RequestTimeoutError("slow", method="GET", path="/x")


def server_error(status: int) -> Response:
    if status == 500:
        return problem_response(500, "Internal error", trace_id="t-1")
    return html_response(status, f"<html><title>{status}</title></html>")


def timed(clock: FakeClock, transport: MockTransport) -> list[float]:
    """Record the virtual time of every request the transport receives."""
    times: list[float] = []
    send = transport.send

    async def recording(request: Request) -> Response:
        times.append(clock.now())
        return await send(request)

    transport.send = recording  # type: ignore[method-assign]
    return times


@pytest.mark.parametrize("failure", [500, 502, 503, 504, LOST, TIMEOUT, NOT_SENT])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_idempotent_methods_are_retried(
    clock: FakeClock, method: str, failure: int | Exception
) -> None:
    first = server_error(failure) if isinstance(failure, int) else failure
    ok = empty_response(204) if method == "DELETE" else json_response(PIPELINE)
    transport = MockTransport(responses=[first, ok])
    async with clocked_client(transport, clock) as amo:
        if method == "GET":
            result = await drive(clock, amo.pipelines.get(7))
            assert result.id == 7
        elif method == "PATCH":
            result = await drive(clock, amo.pipelines.update(7, PipelineUpdate(name="P")))
            assert result.name == "P"
        else:
            await drive(clock, amo.pipelines.delete(7))
    assert [r.method for r in transport.requests] == [method, method]
    assert transport.requests[0].body == transport.requests[1].body


async def test_a_subclass_hook_decides_failures_and_never_sees_a_success(
    clock: FakeClock,
) -> None:
    asked: list[int | None] = []

    class RetryConflicts(RetryPolicy):
        def delay_for(
            self,
            *,
            request: Request,
            attempt: int,
            response: Response | None = None,
            error: BaseException | None = None,
        ) -> float | None:
            asked.append(None if response is None else response.status)
            if response is not None and response.status == 409:
                return 0.25
            return super().delay_for(
                request=request, attempt=attempt, response=response, error=error
            )

    transport = MockTransport(
        responses=[problem_response(409, "busy"), LOST, json_response(PIPELINE)]
    )
    times = timed(clock, transport)
    retry = RetryConflicts(clock=clock, random_source=lambda: 0.5)
    async with clocked_client(transport, clock, retry=retry) as amo:
        assert (await drive(clock, amo.pipelines.get(7))).id == 7
    assert asked == [409, None]  # the 200 was final without asking
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [0.25, 0.5]


async def test_backoff_grows_exponentially_with_jitter_and_cap(clock: FakeClock) -> None:
    transport = MockTransport(responses=[server_error(503)] * 4 + [json_response(PIPELINE)])
    times = timed(clock, transport)
    retry = RetryPolicy(backoff=1.0, max_backoff=3.0, clock=clock, random_source=lambda: 1.0)
    async with clocked_client(transport, clock, retry=retry) as amo:
        await drive(clock, amo.pipelines.get(7))
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [1.0, 2.0, 3.0, 3.0]  # 1, 2, 4 capped at 3, 8 capped at 3


async def test_full_jitter_draws_below_the_ceiling(clock: FakeClock) -> None:
    draws = iter([0.25, 0.5])
    retry = RetryPolicy(backoff=2.0, clock=clock, random_source=lambda: next(draws))
    assert retry.backoff_for(1) == 0.5
    assert retry.backoff_for(2) == 2.0


async def test_attempts_run_out_and_the_last_error_surfaces(clock: FakeClock) -> None:
    transport = MockTransport(responses=[server_error(502)] * 3)
    retry = RetryPolicy(max_attempts=3, clock=clock, random_source=lambda: 0.0)
    async with clocked_client(transport, clock, retry=retry) as amo:
        with pytest.raises(ServerError) as info:
            await drive(clock, amo.pipelines.get(7))
    assert info.value.status == 502
    assert len(transport.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 402, 404, 422])
async def test_client_errors_are_not_retried(clock: FakeClock, status: int) -> None:
    transport = MockTransport(responses=[problem_response(status, "no")])
    async with clocked_client(transport, clock) as amo:
        with pytest.raises(Exception) as info:
            await drive(clock, amo.pipelines.get(7))
    assert getattr(info.value, "status", None) == status
    assert len(transport.requests) == 1


async def test_a_delete_whose_first_copy_was_processed_is_done_when_the_retry_404s(
    clock: FakeClock,
) -> None:
    gone = problem_response(404, "Pipeline not found")
    transport = MockTransport(responses=[LOST, gone])
    async with clocked_client(transport, clock) as amo:
        assert await drive(clock, amo.pipelines.delete(7)) is None
    assert len(transport.requests) == 2


async def test_a_delete_404_without_an_earlier_attempt_is_not_found(clock: FakeClock) -> None:
    transport = MockTransport(responses=[problem_response(404, "Pipeline not found")])
    async with clocked_client(transport, clock) as amo:
        with pytest.raises(NotFoundError):
            await drive(clock, amo.pipelines.delete(7))


async def test_a_delete_404_after_a_not_sent_failure_is_not_found(clock: FakeClock) -> None:
    # The first copy certainly did not arrive, so the 404 means it never existed.
    transport = MockTransport(responses=[NOT_SENT, problem_response(404, "Pipeline not found")])
    async with clocked_client(transport, clock) as amo:
        with pytest.raises(NotFoundError):
            await drive(clock, amo.pipelines.delete(7))


@pytest.mark.parametrize("failure", [500, 502, 503, 504, LOST, TIMEOUT])
async def test_post_is_not_resent_after_an_ambiguous_failure(
    clock: FakeClock, failure: int | Exception
) -> None:
    first = server_error(failure) if isinstance(failure, int) else failure
    transport = MockTransport(responses=[first])
    async with clocked_client(transport, clock, on_ambiguous="raise") as amo:
        with pytest.raises(BatchError) as info:
            await drive(clock, amo.statuses.create(7, [NewStatus(name="S", sort=1)]))
    assert [r.method for r in transport.requests] == ["POST"]
    error = info.value.errors[0]
    assert error.may_have_been_processed
    assert info.value.unknown == [0]


@pytest.mark.parametrize("failure", ["429", NOT_SENT])
async def test_post_is_resent_when_it_certainly_was_not_processed(
    clock: FakeClock, failure: str | Exception
) -> None:
    first = problem_response(429, "Too many", retry_after=1) if failure == "429" else failure
    transport = MockTransport(responses=[first, json_response(CREATED)])
    async with clocked_client(transport, clock, on_ambiguous="raise") as amo:
        created = await drive(clock, amo.statuses.create(7, [NewStatus(name="S", sort=1)]))
    assert [s.id for s in created] == [100]
    assert [r.method for r in transport.requests] == ["POST", "POST"]
    assert transport.requests[0].body == transport.requests[1].body


async def test_400_on_post_is_final(clock: FakeClock) -> None:
    transport = MockTransport(responses=[problem_response(400, "Request validation failed")])
    async with clocked_client(transport, clock) as amo:
        seen = {**PIPELINE, "_embedded": {"statuses": [STATUS]}}
        transport.add(json_response({"_embedded": {"pipelines": [seen]}}))  # the watermark
        transport.queue.rotate(1)
        # Nothing was written and one refusal is the whole story: raised as it is.
        with pytest.raises(BadRequestError):
            await drive(clock, amo.statuses.create(7, [NewStatus(name="S", sort=1)]))
    assert [r.method for r in transport.requests] == ["GET", "POST"]


# --- 429: pause the whole account, slow down, retry ----------------------------------------


@pytest.mark.parametrize(
    ("response", "pause"),
    [
        (problem_response(429, "slow down", retry_after=3), 3.0),
        (
            Response(status=429, headers={"Retry-After": "2"}, body=b""),
            2.0,
        ),
        (html_response(429, "<html><title>429</title></html>"), 1.0),  # the default pause
        (problem_response(429, "slow down", retry_after=3600), 60.0),  # capped
    ],
)
async def test_429_pauses_the_whole_account(
    clock: FakeClock, response: Response, pause: float
) -> None:
    # Request A gets the 429 at t=0; request B, issued at once too, must not go before the
    # pause ends, and neither must A's retry.
    answers = {"a": [response, json_response(PIPELINE)], "b": [json_response(PIPELINE)]}
    times: dict[str, list[float]] = {"a": [], "b": []}

    async def handler(request: Request) -> Response:
        key = "a" if request.url.path.endswith("/7") else "b"
        times[key].append(clock.now())
        return answers[key].pop(0)

    transport = MockTransport(handler)
    limiter = RateLimiter(clock=clock)
    async with clocked_client(transport, clock, limiter=limiter) as amo:
        first = drive(clock, amo.pipelines.get(7))
        import asyncio

        task = asyncio.ensure_future(first)
        await clock.settle()  # A has its 429 now
        second = await drive(clock, amo.pipelines.get(8))
        await task
    assert times["a"][0] == 0.0
    assert times["a"][1] >= pause
    assert times["b"][0] >= pause
    assert second.id == 7


async def test_429_slows_the_account_down_and_it_recovers(clock: FakeClock) -> None:
    limiter = RateLimiter(clock=clock)
    transport = MockTransport(
        responses=[problem_response(429, "slow", retry_after=1), json_response(PIPELINE)]
    )
    async with clocked_client(transport, clock, limiter=limiter) as amo:
        await drive(clock, amo.pipelines.get(7))
        slowed = limiter.stats(ACCOUNT).integration_limit
        assert slowed is not None and slowed < 7
        await clock.advance(30)
        recovered = limiter.stats(ACCOUNT).integration_limit
    assert recovered == 7


async def test_rate_limited_error_surfaces_when_attempts_run_out(clock: FakeClock) -> None:
    transport = MockTransport(responses=[problem_response(429, "slow", retry_after=1)] * 2)
    retry = RetryPolicy(max_attempts=2, clock=clock)
    async with clocked_client(transport, clock, retry=retry) as amo:
        with pytest.raises(RateLimitedError) as info:
            await drive(clock, amo.pipelines.get(7))
    assert info.value.retry_after == 1
    assert len(transport.requests) == 2
