"""Nothing but AmoError escapes (issue 10, item 5): the inputs and answers that used to leak
TypeError, UnicodeEncodeError, ValueError or RuntimeError, one by one.

The property tests (``test_properties_*``) sweep the same ground at random.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from conftest import TOKEN
from yarl import URL

from amo_pipelines import (
    AmoClient,
    AmoError,
    BadRequestError,
    CircuitBreaker,
    DescriptionInput,
    InvalidInputError,
    Limit,
    LongLivedToken,
    NewPipeline,
    NewStatus,
    OAuth2,
    PipelineUpdate,
    RateLimiter,
    RateLimitStoreError,
    RetryPolicy,
    StatusUpdate,
    TokenSet,
)
from amo_pipelines.errors import error_from_response
from amo_pipelines.model import _json
from amo_pipelines.model.converter import converter
from amo_pipelines.model.inputs import INT_MAX, INT_MIN
from amo_pipelines.testing import MockTransport, json_response, problem_response
from amo_pipelines.transport import Request

SURROGATES = ["\ud800", "a\udfffb", "Stage \udc80"]

# (what to build, the field InvalidInputError must name)
LONE_SURROGATES: dict[str, tuple[Callable[[str], object], str]] = {
    "pipeline name": (lambda s: NewPipeline(name=s, sort=1), "name"),
    "pipeline request_id": (lambda s: NewPipeline(name="P", sort=1, request_id=s), "request_id"),
    "won status name": (
        lambda s: NewPipeline(name="P", sort=1, won_status_name=s),
        "won_status_name",
    ),
    "status name": (lambda s: NewStatus(name=s, sort=1), "name"),
    "status request_id": (lambda s: NewStatus(name="S", sort=1, request_id=s), "request_id"),
    "description": (lambda s: DescriptionInput.create("newbie", s), "description"),
    "description edit": (lambda s: DescriptionInput.edit(1, "master", s), "description"),
    "pipeline update name": (lambda s: PipelineUpdate(name=s), "name"),
    "status update name": (lambda s: StatusUpdate(name=s), "name"),
    "long-lived token": (lambda s: LongLivedToken(s), "access_token"),
    "client token": (
        lambda s: AmoClient(subdomain="example", access_token=s, transport=MockTransport()),
        "access_token",
    ),
    "token set": (lambda s: TokenSet(s, "refresh", 1.0), "access_token"),
    "refresh token": (lambda s: TokenSet("access", s, 1.0), "refresh_token"),
    "client id": (lambda s: OAuth2(s, "secret", "https://app.example.com/cb"), "client_id"),
    "client secret": (lambda s: OAuth2("id", s, "https://app.example.com/cb"), "client_secret"),
}


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("case", LONE_SURROGATES)
def test_a_lone_surrogate_is_invalid_input(case: str, surrogate: str) -> None:
    build, field = LONE_SURROGATES[case]
    with pytest.raises(InvalidInputError) as info:
        build(surrogate)
    assert info.value.field == field
    str(info.value).encode("utf-8")  # the message itself can be printed and logged


def test_valid_unicode_is_still_welcome() -> None:
    status = NewStatus(name="Этап ✅ 𝄞", sort=10, request_id="ключ")
    assert _json.dumps(converter.unstructure(status))
    assert LongLivedToken("токен").fingerprint


@pytest.mark.parametrize(
    "sort",
    [INT_MAX + 1, 2**64, 10**30, INT_MIN - 1, -(10**5000)],
    ids=["2**63", "2**64", "10**30", "-2**63-1", "-10**5000"],
)
def test_a_sort_beyond_64_bits_is_invalid_input(sort: int) -> None:
    builds = [
        lambda: NewPipeline(name="P", sort=sort),
        lambda: NewStatus(name="S", sort=sort),
        lambda: PipelineUpdate(sort=sort),
        lambda: StatusUpdate(sort=sort),
    ]
    for build in builds:
        with pytest.raises(InvalidInputError) as info:
            build()
        assert info.value.field == "sort"


def test_the_64_bit_bounds_themselves_encode() -> None:
    for sort in (INT_MIN, INT_MAX):
        assert _json.dumps(converter.unstructure(NewStatus(name="S", sort=sort)))


@pytest.mark.parametrize("bad_id", [2**63, 2**64, 10**5000], ids=["2**63", "2**64", "10**5000"])
async def test_an_id_beyond_64_bits_is_invalid_input(
    amo: AmoClient, transport: MockTransport, bad_id: int
) -> None:
    with pytest.raises(InvalidInputError) as info:
        await amo.pipelines.get(bad_id)
    assert info.value.field == "pipeline_id"
    with pytest.raises(InvalidInputError) as info:
        await amo.statuses.get(7, bad_id)
    assert info.value.field == "status_id"
    with pytest.raises(InvalidInputError) as info:
        DescriptionInput.delete(bad_id, "newbie")
    assert info.value.field == "id"
    assert transport.requests == []


@pytest.mark.parametrize("update", [PipelineUpdate, StatusUpdate])
def test_an_update_that_changes_nothing_names_the_update(update: Callable[[], Any]) -> None:
    with pytest.raises(InvalidInputError) as info:
        update()
    assert info.value.field == "update"
    assert "at least one field" in str(info.value)


GET = Request(method="GET", url=URL("https://example.amocrm.ru/api/v4/leads/pipelines"))


@pytest.mark.parametrize(
    "validation_errors",
    [
        [{"request_id": "0", "errors": 5}],
        [{"request_id": "0", "errors": "wrong"}],
        [{"request_id": "0", "errors": {"code": "x"}}],
        [{"request_id": "0", "errors": True}],
        [{"request_id": "0", "errors": [5, "x", None]}],
        [5, "x", None, []],
        {"request_id": "0", "errors": []},
        "errors",
        12,
    ],
)
def test_validation_errors_of_the_wrong_shape_are_skipped(validation_errors: Any) -> None:
    answer = problem_response(400, "Bad request", **{"validation-errors": validation_errors})
    error = error_from_response(GET, answer)
    assert isinstance(error, BadRequestError)
    assert error.validation_errors == ()
    assert error.detail == "Bad request"


def test_well_formed_entries_survive_next_to_malformed_ones() -> None:
    answer = problem_response(
        400,
        "Bad request",
        **{
            "validation-errors": [
                {"request_id": "0", "errors": 5},
                {"request_id": 1, "errors": [{"code": "NotBlank", "path": "name", "detail": "x"}]},
            ]
        },
    )
    (issue,) = error_from_response(GET, answer).validation_errors
    assert (issue.request_id, issue.code, issue.path) == ("1", "NotBlank", "name")


@pytest.mark.parametrize("retry_after", ["1e999", "nan", "-inf", "soon", [], {}, True])
def test_a_429_with_an_odd_retry_after_has_no_retry_after(retry_after: Any) -> None:
    error = error_from_response(GET, json_response({"retry_after": retry_after}, 429))
    assert getattr(error, "retry_after", "missing") is None


# (what to build, the field InvalidInputError must name)
CONFIGURATION: dict[str, tuple[Callable[[], object], str]] = {
    "Limit count": (lambda: Limit(0), "Limit.count"),
    "Limit period": (lambda: Limit(7, 0.0), "Limit.period"),
    "Limit period nan": (lambda: Limit(7, math.nan), "Limit.period"),
    "margin": (lambda: RateLimiter(margin=-0.1), "margin"),
    "max_in_flight": (lambda: RateLimiter(max_in_flight=0), "max_in_flight"),
    "penalty_factor": (lambda: RateLimiter(penalty_factor=1.0), "penalty_factor"),
    "recovery_step": (lambda: RateLimiter(recovery_step=0), "recovery_step"),
    "slot account": (lambda: RateLimiter().slot(""), "account"),
    "max_attempts": (lambda: RetryPolicy(max_attempts=0), "max_attempts"),
    "cooldown": (lambda: CircuitBreaker(cooldown=-1), "cooldown"),
    "cooldown nan": (lambda: CircuitBreaker(cooldown=math.nan), "cooldown"),
    "cooldown str": (lambda: CircuitBreaker(cooldown="15m"), "cooldown"),  # type: ignore[arg-type]
    "suspicion_window": (lambda: CircuitBreaker(suspicion_window=-5), "suspicion_window"),
}


@pytest.mark.parametrize("case", CONFIGURATION)
def test_bad_configuration_is_invalid_input_naming_the_field(case: str) -> None:
    build, field = CONFIGURATION[case]
    with pytest.raises(InvalidInputError) as info:
        build()
    assert info.value.field == field
    assert isinstance(info.value, ValueError)  # as before, for callers catching ValueError


def test_a_rate_limit_store_failure_is_an_amo_error() -> None:
    assert issubclass(RateLimitStoreError, AmoError)
    assert issubclass(RateLimitStoreError, RuntimeError)  # as before


def test_good_configuration_is_taken() -> None:
    CircuitBreaker(cooldown=None)
    CircuitBreaker(cooldown=0, suspicion_window=0)
    RateLimiter(margin=0.0, max_in_flight=None)
    assert TOKEN  # the shared token fixture module loads
