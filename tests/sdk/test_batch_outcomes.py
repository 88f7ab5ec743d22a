"""Batch and fan-out calls end only when every chunk has: failures are part of the outcome.

Regression tests for issue 10 items 2 and 9: no orphan writes (a chunk still posting after
the call raised), a whole-account refusal stops the rest, ordered chunks stop at the first
failure, and a status PATCH that is not idempotent is checked, never resent blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from typing import Any

import pytest
from support.clocked import clocked_client, drive
from support.constants import FIRST, MAIN, MAIN_STATUSES, PIPELINES
from support.emulated import fast_client, posts

from amo_pipelines import (
    AmoClient,
    ApiError,
    BadRequestError,
    BatchError,
    DescriptionInput,
    FakeClock,
    ForbiddenError,
    InvalidInputError,
    Limit,
    NewPipeline,
    NewStatus,
    PaymentRequiredError,
    RateLimiter,
    SkippedError,
    StatusUpdate,
    UnauthorizedError,
    UnknownOutcomeError,
    UnprocessableEntityError,
)
from amo_pipelines.emulator import Emulator, Fault
from amo_pipelines.testing import MockTransport, json_response, problem_response
from amo_pipelines.transport import AiohttpTransport, Request, Response


def new_pipelines(n: int) -> list[NewPipeline]:
    return [NewPipeline(name=f"P{i}", sort=10 + i) for i in range(n)]


# --- a fake account for MockTransport: answers creates, lists and refusals ---------------


class FakeAccount:
    """Answers pipeline POSTs by echoing each item with a fresh id, the list with what
    exists; ``answers`` maps a request_id to the error response its POST gets instead."""

    def __init__(self, answers: dict[str, Response] | None = None) -> None:
        self.answers = answers or {}
        self.pipelines: list[dict[str, Any]] = []
        self.next_id = 100

    def pipeline(self, item: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        return {
            "id": self.next_id,
            "name": item["name"],
            "sort": item["sort"],
            "is_main": item["is_main"],
            "is_unsorted_on": item["is_unsorted_on"],
            "is_archive": False,
            "account_id": 1,
            "request_id": item["request_id"],
            "_embedded": {"statuses": []},
        }

    def __call__(self, request: Request) -> Response:
        if request.method == "GET":
            return json_response({"_embedded": {"pipelines": self.pipelines}})
        items = json.loads(request.body or b"[]")
        for item in items:
            if item["request_id"] in self.answers:
                return self.answers[item["request_id"]]
        created = [self.pipeline(item) for item in items]
        self.pipelines += created
        return json_response({"_embedded": {"pipelines": created}})


def post_count(transport: MockTransport) -> int:
    return sum(1 for r in transport.requests if r.method == "POST")


# --- item 2: every chunk finishes before the call does ------------------------------------


class _Exploding(AiohttpTransport):
    """The real transport, except that one POST raises a foreign exception (a bug in a
    custom transport or policy) after a short while."""

    def __init__(self, fail_on: int) -> None:
        super().__init__()
        self.posts = 0
        self.fail_on = fail_on

    async def send(self, request: Request) -> Response:
        if request.method == "POST":
            self.posts += 1
            if self.posts == self.fail_on:
                raise RuntimeError("boom")
        return await super().send(request)


async def test_a_foreign_exception_in_one_chunk_is_part_of_the_outcome(emu: Emulator) -> None:
    emu.faults.add(Fault.latency(0.2), method="POST", path=PIPELINES, times=None)
    transport = _Exploding(fail_on=2)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(transport.aclose)
        amo = await stack.enter_async_context(
            AmoClient(
                base_url=emu.url,
                access_token=emu.admin_token,
                transport=transport,
                rate_limiter=RateLimiter(integration_limit=None, account_limit=None),
            )
        )
        with pytest.raises(BatchError) as info:
            await amo.pipelines.create(new_pipelines(5), batch_size=1)
        sent = posts(emu)
        await asyncio.sleep(0.4)  # a chunk left running would post now
        assert posts(emu) == sent == 4
    error = info.value
    assert len(error.succeeded) == 4 and len(error.errors) == 1
    [(position, failure)] = error.errors.items()
    assert isinstance(failure, UnknownOutcomeError) and error.unknown == [position]
    assert isinstance(failure.__cause__, RuntimeError)
    assert Counter(p.name for p in emu.state.pipelines.values()) == Counter(
        {"Воронка": 1, **{f"P{i}": 1 for i in range(5) if i != position}}
    )


async def test_a_malformed_validation_error_is_part_of_the_outcome() -> None:
    # "errors": 5 in a 400's validation-errors once escaped as a bare TypeError while the
    # other chunks kept posting.
    bad = problem_response(400, "Request validation failed")
    bad = json_response(
        {
            "title": "Bad Request",
            "status": 400,
            "validation-errors": [{"request_id": "1", "errors": 5}],
        },
        400,
        content_type="application/problem+json",
    )
    account = FakeAccount({"1": bad})
    transport = MockTransport(account)
    clock = FakeClock()
    async with clocked_client(transport, clock) as amo:
        with pytest.raises(BatchError) as info:
            await drive(clock, amo.pipelines.create(new_pipelines(3), batch_size=1))
    assert list(info.value.errors) == [1]
    assert isinstance(info.value.errors[1], BadRequestError)
    assert [p.name for p in info.value.results if p is not None] == ["P0", "P2"]  # type: ignore[attr-defined]
    assert post_count(transport) == 3


async def test_cancelling_a_batch_stops_every_chunk(emu: Emulator, amo_emu: AmoClient) -> None:
    await amo_emu.pipelines.list()
    emu.faults.add(Fault.latency(0.3), method="POST", path=PIPELINES, times=None)
    call = asyncio.ensure_future(amo_emu.pipelines.create(new_pipelines(6), batch_size=1))
    await asyncio.sleep(0.45)  # the first chunk landed; the other five are in flight
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    sent = posts(emu)
    await asyncio.sleep(0.5)
    assert posts(emu) == sent  # nothing went out after the call ended


@pytest.mark.parametrize("ids", [5, "12", {1: 2}, None])
async def test_delete_many_needs_a_list_of_ids(amo_emu: AmoClient, emu: Emulator, ids: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        await amo_emu.pipelines.delete_many(ids)
    assert info.value.field == "pipeline_ids"
    with pytest.raises(InvalidInputError) as info:
        await amo_emu.statuses.delete_many(MAIN, ids)
    assert info.value.field == "status_ids"
    assert not [e for e in emu.request_log if e.method == "DELETE"]


async def test_a_bad_id_in_delete_many_is_named_before_anything_is_sent(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    with pytest.raises(InvalidInputError) as info:
        await amo_emu.pipelines.delete_many([MAIN, 0])
    assert info.value.field == "pipeline_ids[1]"
    assert not [e for e in emu.request_log if e.method == "DELETE"]


# --- a refusal of the whole account stops the rest -----------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, UnauthorizedError),
        (402, PaymentRequiredError),
        (403, ForbiddenError),
        (422, UnprocessableEntityError),
    ],
)
async def test_a_refused_first_chunk_sends_nothing_more_and_raises_the_refusal(
    status: int, error: type[ApiError]
) -> None:
    refusal = problem_response(status, "refused")
    transport = MockTransport(lambda r: refusal if r.method == "POST" else FakeAccount()(r))
    clock = FakeClock()
    async with clocked_client(transport, clock) as amo:
        with pytest.raises(error):  # the API error itself: nothing was written
            await drive(clock, amo.pipelines.create(new_pipelines(5), batch_size=1))
    assert post_count(transport) == 1


async def test_a_user_token_gets_forbidden_once_not_a_batch_error(emu: Emulator) -> None:
    async with fast_client(emu, token=emu.user_token) as user:
        with pytest.raises(ForbiddenError):
            await user.pipelines.create(new_pipelines(4), batch_size=1)
    assert posts(emu) == 1


async def test_a_refusal_mid_batch_stops_the_chunks_still_waiting_for_the_limiter() -> None:
    account = FakeAccount({"1": problem_response(403, "Access denied")})
    transport = MockTransport(account)
    clock = FakeClock()
    limiter = RateLimiter(integration_limit=Limit(1, 1.0), clock=clock)
    async with clocked_client(transport, clock, limiter=limiter) as amo:
        with pytest.raises(BatchError) as info:
            await drive(clock, amo.pipelines.create(new_pipelines(5), batch_size=1))
    error = info.value
    assert list(error.succeeded) == [0]
    assert isinstance(error.errors[1], ForbiddenError)
    assert all(isinstance(error.errors[i], SkippedError) for i in (2, 3, 4))
    assert error.unknown == []
    assert post_count(transport) == 2  # the three queued chunks never went out


async def test_fan_out_stops_after_a_refusal_of_the_first_call(emu: Emulator) -> None:
    async with fast_client(emu, token=emu.user_token) as user:
        with pytest.raises(ForbiddenError):
            await user.statuses.delete_many(MAIN, [FIRST, FIRST + 6])
    assert len([e for e in emu.request_log if e.method == "DELETE"]) == 1


async def test_ordered_status_chunks_stop_at_the_first_failed_chunk(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    items = [NewStatus(name=f"S{i}", sort=100 + i) for i in range(6)]
    items[3] = NewStatus(name="x" * 300, sort=103)  # the server refuses the second chunk
    with pytest.raises(BatchError) as info:
        await amo_emu.statuses.create(MAIN, items, batch_size=2)
    error = info.value
    assert list(error.succeeded) == [0, 1]
    assert all(isinstance(error.errors[i], BadRequestError) for i in (2, 3))
    assert all(isinstance(error.errors[i], SkippedError) for i in (4, 5))
    assert posts(emu, MAIN_STATUSES) == 2


# --- item 9: a status PATCH that is not idempotent -----------------------------------------

NOT_IDEMPOTENT = StatusUpdate(
    name="Renamed",
    descriptions=[
        DescriptionInput.edit(491, "candidate", "Новый текст для кандидата"),
        DescriptionInput.delete(493, "master"),
    ],
)
STATUS = f"{MAIN_STATUSES}/{FIRST}"


def patches(emu: Emulator) -> int:
    return sum(1 for e in emu.request_log if e.method == "PATCH" and e.path == STATUS)


async def test_a_non_idempotent_patch_that_landed_is_reported_as_done(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    emu.faults.add(Fault.status(500, commit=True), method="PATCH", path=STATUS)
    status = await amo_emu.statuses.update(MAIN, FIRST, NOT_IDEMPOTENT)
    assert patches(emu) == 1  # checked with a GET, never resent
    assert status.name == "Renamed"
    assert {(d.id, d.level) for d in status.descriptions or ()} == {
        (489, "newbie"),
        (491, "candidate"),
    }


async def test_a_non_idempotent_patch_that_did_not_land_is_an_unknown_outcome(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    emu.faults.add(Fault.status(500), method="PATCH", path=STATUS)
    with pytest.raises(UnknownOutcomeError) as info:
        await amo_emu.statuses.update(MAIN, FIRST, NOT_IDEMPOTENT)
    assert info.value.may_have_been_processed
    assert patches(emu) == 1
    stored = emu.state.pipelines[MAIN].statuses[FIRST]
    assert stored.name != "Renamed" and "master" in stored.descriptions


async def test_an_idempotent_patch_is_still_retried(amo_emu: AmoClient, emu: Emulator) -> None:
    emu.faults.add(Fault.status(500), method="PATCH", path=STATUS)
    edit = StatusUpdate(descriptions=[DescriptionInput.edit(491, "candidate", "Другой текст")])
    status = await amo_emu.statuses.update(MAIN, FIRST, edit)
    assert patches(emu) == 2
    assert any(d.description == "Другой текст" for d in status.descriptions or ())


async def test_update_many_checks_non_idempotent_patches_too(
    amo_emu: AmoClient, emu: Emulator
) -> None:
    emu.faults.add(Fault.status(502, commit=True), method="PATCH", path=STATUS)
    [status] = await amo_emu.statuses.update_many(MAIN, {FIRST: NOT_IDEMPOTENT})
    assert status.name == "Renamed" and patches(emu) == 1
