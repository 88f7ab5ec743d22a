"""Property: every server answer maps to an AmoError subclass (issue 10, item 5).

``error_from_response`` over random statuses, content types, headers and bodies (bytes,
HTML fragments, JSON of random shapes, amoCRM-like problem bodies with fields of the wrong
types) always returns an ApiError, never raises, keeps a bounded body, and builds a message
that can be printed. A 2xx answer of random shape through ``AmoClient.fetch`` is the model
or an UnexpectedResponseError.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from amo_pipelines import (
    NO_RETRY,
    AccountBlockedError,
    AmoClient,
    ApiError,
    NotFoundError,
    Pipeline,
    RateLimitedError,
    UnexpectedResponseError,
)
from amo_pipelines.errors import BODY_KEPT, error_from_response
from amo_pipelines.testing import MockTransport
from amo_pipelines.transport import Request, Response

FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REQUEST = Request(method="POST", url=URL("https://example.amocrm.ru/api/v4/leads/pipelines"))

KEYS = st.sampled_from(
    [
        "title",
        "detail",
        "status",
        "type",
        "errors",
        "validation-errors",
        "request_id",
        "code",
        "path",
        "message",
        "hash",
        "hint",
        "retry_after",
        "trace_id",
    ]
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["1e999", "nan", "Account is blocked", "<title>x</title>", "-5"]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=20,
)
# amoCRM's shapes, with any value in any field.
PROBLEM = st.dictionaries(KEYS, JSON_VALUES, max_size=6)
VALIDATION = st.fixed_dictionaries(
    {
        "validation-errors": st.lists(
            st.one_of(
                st.fixed_dictionaries(
                    {"request_id": JSON_VALUES, "errors": st.one_of(JSON_VALUES, st.lists(PROBLEM))}
                ),
                JSON_VALUES,
            ),
            max_size=4,
        )
    },
    optional={"title": JSON_VALUES, "detail": JSON_VALUES},
)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


HTML = st.builds(
    lambda parts: "".join(parts).encode("utf-8", "surrogatepass"),
    st.lists(
        st.one_of(
            st.sampled_from(["<title>", "</title>", "<TITLE lang=x>", "<html>", "<", ">", " "]),
            st.text(max_size=10),
        ),
        max_size=30,
    ),
)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.builds(_json_bytes, JSON_VALUES),
    st.builds(_json_bytes, PROBLEM),
    st.builds(_json_bytes, VALIDATION),
    HTML,
    st.just(b"<title>" * 20_000),
    st.builds(lambda n: b"x" * n, st.integers(BODY_KEPT - 2, BODY_KEPT + 2)),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/problem+json",
            "application/hal+json; charset=utf-8",
            "text/html",
            "TEXT/HTML",
            "text/plain",
            "application/octet-stream",
            "",
        ]
    ),
    st.text(max_size=20),
)
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
)  # what a header value can hold once decoded
RETRY_AFTER = st.one_of(
    HEADER_TEXT,
    st.sampled_from(
        ["120", "-3", "1e999", "nan", "Wed, 21 Oct 2015 07:28:00 GMT", "Mon, 01 Jan 99999 00:00"]
    ),
)
STATUSES = st.one_of(
    st.sampled_from([400, 401, 402, 403, 404, 422, 429, 500, 502, 503, 504]),
    st.integers(min_value=100, max_value=999),
)


@FAST
@given(
    status=STATUSES,
    content_type=CONTENT_TYPES,
    retry_after=st.one_of(st.none(), RETRY_AFTER),
    body=BODIES,
)
def test_every_answer_maps_to_an_api_error(
    status: int, content_type: str, retry_after: str | None, body: bytes
) -> None:
    headers = {"content-type": content_type}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    response = Response(status=status, headers=headers, body=body)
    error = error_from_response(REQUEST, response)
    assert isinstance(error, ApiError)
    assert error.status == status
    assert error.body == body[:BODY_KEPT]
    str(error).encode("utf-8")  # printable and loggable
    assert all(isinstance(issue.code, str) for issue in error.validation_errors)
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        assert 0 <= error.retry_after < float("inf")
    if isinstance(error, AccountBlockedError):
        assert status == 403


VALID = {
    "id": 7,
    "name": "P",
    "sort": 1,
    "is_main": False,
    "is_unsorted_on": True,
    "account_id": 1,
    "_embedded": {"statuses": []},
}


@st.composite
def mutated_pipelines(draw: st.DrawFn) -> Any:
    """A valid pipeline with a few fields replaced, added or removed; or any JSON."""
    if draw(st.integers(0, 4)) == 0:
        return draw(JSON_VALUES)
    pipeline: dict[str, Any] = dict(VALID)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(
            st.one_of(st.sampled_from([*VALID, "_links", "is_archive"]), st.text(max_size=5))
        )
        if draw(st.booleans()):
            pipeline[key] = draw(JSON_VALUES)
        else:
            pipeline.pop(key, None)
    return pipeline


@pytest.mark.slow  # ~14 s
@settings(FAST, max_examples=100)
@given(body=st.one_of(mutated_pipelines(), st.binary(max_size=50)))
def test_every_2xx_answer_is_the_model_or_an_unexpected_response(body: Any) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def fetch() -> None:
        transport = MockTransport(
            responses=[Response(status=200, headers={"content-type": "application/json"}, body=raw)]
        )
        async with AmoClient(
            subdomain="example", access_token="t", transport=transport, retry=NO_RETRY
        ) as amo:
            try:
                pipeline = await amo.pipelines.get(7)
            except UnexpectedResponseError as e:
                assert e.status == 200 and e.body == raw[:BODY_KEPT]
                return
            except NotFoundError:  # no body to a GET of one entity, as documented
                assert raw == b""
                return
        assert isinstance(pipeline, Pipeline)
        assert type(pipeline.id) is int and type(pipeline.is_main) is bool
        assert type(pipeline.name) is str

    asyncio.run(fetch())
