"""Error responses become the right exception, with what the caller needs to act on them."""

from __future__ import annotations

import email.utils
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from support import spec_examples as P
from support.constants import PIPELINES

from amo_pipelines import (
    AccountBlockedError,
    AmoClient,
    AmoError,
    ApiError,
    BadRequestError,
    ForbiddenError,
    GatewayTimeoutError,
    InvalidInputError,
    LongLivedToken,
    NotFoundError,
    PaymentRequiredError,
    PipelineUpdate,
    RateLimitedError,
    RequestNotSentError,
    RequestTimeoutError,
    Response,
    ResponseLostError,
    ServerError,
    StatusUpdate,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
    UnprocessableEntityError,
    ValidationIssue,
)
from amo_pipelines.testing import (
    MockTransport,
    empty_response,
    html_response,
    json_response,
    problem_response,
)

VALIDATION_BODY = {
    "validation-errors": [
        {
            "request_id": "0",
            "errors": [
                {
                    "code": "NotSupportedChoice",
                    "path": "name",
                    "detail": "The value you selected is not a valid choice.",
                }
            ],
        },
        {
            "request_id": "1",
            "errors": [
                {"code": "InvalidType", "path": "sort", "detail": "This value should be int."},
                {"code": "NotBlank", "path": "name", "detail": "This value should not be blank."},
            ],
        },
    ],
    "title": "Bad Request",
    "type": "https://httpstatus.es/400",
    "status": 400,
    "detail": "Request validation failed",
}


def raw(
    status: int, body: bytes, content_type: str = "", headers: dict[str, str] | None = None
) -> Response:
    all_headers = {"Content-Type": content_type} if content_type else {}
    return Response(status=status, headers={**all_headers, **(headers or {})}, body=body)


def html(status: int, title: str) -> Response:
    return html_response(status, f"<html><head><title>{title}</title></head><body>x</body></html>")


async def fail(amo: AmoClient, transport: MockTransport, response: Response) -> ApiError:
    """GET the pipeline list, answered by ``response``; return the ApiError raised."""
    transport.add(response)
    with pytest.raises(ApiError) as info:
        await amo.pipelines.list()
    return info.value


# --- one test per status ----------------------------------------------------------------


async def test_400_with_validation_errors(amo: AmoClient, transport: MockTransport) -> None:
    response = json_response(VALIDATION_BODY, 400, content_type="application/problem+json")
    transport.add(response)
    with pytest.raises(BadRequestError) as info:
        await amo.statuses.update(5, 6, StatusUpdate(name="A", sort=1))
    error = info.value
    assert (error.status, error.method, error.path) == (400, "PATCH", f"{PIPELINES}/5/statuses/6")
    assert error.title == "Bad Request"
    assert error.detail == "Request validation failed"
    assert error.content_type == "application/problem+json"
    assert error.body == response.body
    assert error.validation_errors == (
        ValidationIssue(
            request_id="0",
            code="NotSupportedChoice",
            path="name",
            detail="The value you selected is not a valid choice.",
        ),
        ValidationIssue(
            request_id="1", code="InvalidType", path="sort", detail="This value should be int."
        ),
        ValidationIssue(
            request_id="1", code="NotBlank", path="name", detail="This value should not be blank."
        ),
    )
    text = str(error)
    assert text.startswith("400 Bad Request: Request validation failed (PATCH ")
    assert "item 0 name: NotSupportedChoice" in text
    assert "item 1 sort: InvalidType" in text
    assert not error.may_have_been_processed


async def test_400_empty_request_data(amo: AmoClient, transport: MockTransport) -> None:
    transport.add(problem_response(400, "Request data can not be empty", title="Bad Request"))
    with pytest.raises(BadRequestError) as info:
        await amo.pipelines.update(1, PipelineUpdate(sort=1))
    assert info.value.detail == "Request data can not be empty"
    assert info.value.validation_errors == ()
    assert info.value.method == "PATCH"


async def test_errors_object_shape(amo: AmoClient, transport: MockTransport) -> None:
    body = {"errors": {"code": 2008, "message": "Неверно указан номер", "hash": "6654a4e8f152"}}
    error = await fail(amo, transport, json_response(body, 400, content_type="application/json"))
    assert type(error) is BadRequestError
    assert error.code == 2008
    assert error.detail == "Неверно указан номер"
    assert error.title == "Bad Request"
    assert json.loads(error.body)["errors"]["hash"] == "6654a4e8f152"
    assert "Неверно указан номер" in str(error)


async def test_errors_object_with_a_string_code(amo: AmoClient, transport: MockTransport) -> None:
    body = {"errors": {"code": "E42", "message": "Нет"}}
    error = await fail(amo, transport, json_response(body, 404, content_type="application/json"))
    assert type(error) is NotFoundError
    assert (error.code, error.detail) == ("E42", "Нет")


async def test_401(amo: AmoClient, transport: MockTransport) -> None:
    response = problem_response(401, "Authorization header is missing", title="Unauthorized")
    error = await fail(amo, transport, response)
    assert type(error) is UnauthorizedError
    assert (error.status, error.title) == (401, "Unauthorized")
    assert error.detail == "Authorization header is missing"
    assert error.path == PIPELINES and error.method == "GET"


async def test_402(amo: AmoClient, transport: MockTransport) -> None:
    error = await fail(amo, transport, problem_response(402, "Payment required"))
    assert type(error) is PaymentRequiredError
    assert error.title == "Payment Required"  # the reason phrase when the body has none


async def test_403_json_is_forbidden(amo: AmoClient, transport: MockTransport) -> None:
    error = await fail(amo, transport, problem_response(403, "Only admins", title="Forbidden"))
    assert type(error) is ForbiddenError
    assert not isinstance(error, AccountBlockedError)
    assert error.detail == "Only admins"


async def test_403_html_is_a_blocked_account(amo: AmoClient, transport: MockTransport) -> None:
    error = await fail(amo, transport, html(403, "Account is blocked"))
    assert type(error) is AccountBlockedError
    assert isinstance(error, ForbiddenError)
    assert error.title == "Account is blocked"
    assert error.content_type == "text/html"
    assert error.body.startswith(b"<html>")


async def test_403_html_without_content_type_is_a_blocked_account(
    amo: AmoClient, transport: MockTransport
) -> None:
    error = await fail(amo, transport, raw(403, b"  <html><title>Blocked</title></html>"))
    assert type(error) is AccountBlockedError
    assert error.title == "Blocked"


async def test_403_empty_is_forbidden(amo: AmoClient, transport: MockTransport) -> None:
    error = await fail(amo, transport, empty_response(403))
    assert type(error) is ForbiddenError
    assert (error.title, error.detail, error.body) == ("Forbidden", "", b"")


async def test_404(amo: AmoClient, transport: MockTransport) -> None:
    transport.add(problem_response(404, "Pipeline not found", title="Not Found"))
    with pytest.raises(NotFoundError) as info:
        await amo.pipelines.get(77)
    assert info.value.status == 404
    assert info.value.detail == "Pipeline not found"
    assert info.value.path == f"{PIPELINES}/77"


async def test_422(amo: AmoClient, transport: MockTransport) -> None:
    body = {**VALIDATION_BODY, "status": 422, "title": "Unprocessable Entity"}
    transport.add(json_response(body, 422, content_type="application/problem+json"))
    with pytest.raises(UnprocessableEntityError) as info:
        await amo.pipelines.delete(3)
    assert info.value.method == "DELETE"
    assert info.value.title == "Unprocessable Entity"
    assert len(info.value.validation_errors) == 3


async def test_429_retry_after_in_body(amo: AmoClient, transport: MockTransport) -> None:
    error = await fail(amo, transport, problem_response(429, "Too many", retry_after=3))
    assert type(error) is RateLimitedError
    assert error.retry_after == 3.0
    assert not error.may_have_been_processed


async def test_429_retry_after_as_string_in_body(amo: AmoClient, transport: MockTransport) -> None:
    error = await fail(amo, transport, problem_response(429, retry_after="2.5"))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 2.5


async def test_429_retry_after_header_seconds(amo: AmoClient, transport: MockTransport) -> None:
    response = problem_response(429, "Too many")
    response = Response(
        status=429, headers={**response.headers, "Retry-After": "7"}, body=response.body
    )
    error = await fail(amo, transport, response)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 7.0


async def test_429_retry_after_header_http_date(amo: AmoClient, transport: MockTransport) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    header = email.utils.format_datetime(when, usegmt=True)
    error = await fail(amo, transport, raw(429, b"", headers={"Retry-After": header}))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is not None
    assert 100 <= error.retry_after <= 120


async def test_429_retry_after_date_in_the_past_is_zero(
    amo: AmoClient, transport: MockTransport
) -> None:
    header = "Wed, 21 Oct 2015 07:28:00 GMT"
    error = await fail(amo, transport, raw(429, b"", headers={"Retry-After": header}))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 0.0


async def test_429_html_has_no_retry_after(amo: AmoClient, transport: MockTransport) -> None:
    error = await fail(amo, transport, html(429, "Too Many Requests"))
    assert type(error) is RateLimitedError
    assert error.retry_after is None
    assert error.title == "Too Many Requests"


async def test_429_garbage_retry_after_header_is_ignored(
    amo: AmoClient, transport: MockTransport
) -> None:
    error = await fail(amo, transport, raw(429, b"", headers={"Retry-After": "soon"}))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is None


async def test_500_with_trace_id(amo: AmoClient, transport: MockTransport) -> None:
    response = problem_response(
        500, "Internal error", title="Internal Server Error", trace_id="t-1"
    )
    error = await fail(amo, transport, response)
    assert type(error) is ServerError
    assert error.trace_id == "t-1"
    assert error.may_have_been_processed


@pytest.mark.parametrize(("status", "title"), [(502, "502 Bad Gateway"), (503, "Maintenance")])
async def test_502_503_html(
    amo: AmoClient, transport: MockTransport, status: int, title: str
) -> None:
    error = await fail(amo, transport, html(status, title))
    assert type(error) is ServerError
    assert error.status == status
    assert error.title == title
    assert error.trace_id is None
    assert error.may_have_been_processed


async def test_504_is_a_gateway_timeout(amo: AmoClient, transport: MockTransport) -> None:
    error = await fail(amo, transport, html(504, "Gateway Time-out"))
    assert type(error) is GatewayTimeoutError
    assert isinstance(error, ServerError)
    assert error.may_have_been_processed


async def test_other_statuses(amo: AmoClient, transport: MockTransport) -> None:
    error = await fail(amo, transport, problem_response(409, "Conflict"))
    assert type(error) is ApiError
    error = await fail(amo, transport, empty_response(599))
    assert type(error) is ServerError
    assert error.title == "HTTP error"


@pytest.mark.parametrize(
    ("status", "cls", "title"),
    [
        (400, BadRequestError, "Bad Request"),
        (401, UnauthorizedError, "Unauthorized"),
        (404, NotFoundError, "Not Found"),
        (429, RateLimitedError, "Too Many Requests"),
        (500, ServerError, "Internal Server Error"),
        (504, GatewayTimeoutError, "Gateway Timeout"),
    ],
)
async def test_empty_bodies(
    amo: AmoClient, transport: MockTransport, status: int, cls: type[ApiError], title: str
) -> None:
    error = await fail(amo, transport, empty_response(status))
    assert type(error) is cls
    assert (error.status, error.title, error.detail, error.body) == (status, title, "", b"")
    assert error.validation_errors == ()
    assert error.code is None and error.trace_id is None
    assert str(error) == f"{status} {title} (GET {PIPELINES})"


async def test_a_json_error_body_that_is_not_an_object(
    amo: AmoClient, transport: MockTransport
) -> None:
    error = await fail(amo, transport, json_response(["nope"], 400))
    assert type(error) is BadRequestError
    assert error.detail == ""


# --- successes that are not what they claim ---------------------------------------------


async def test_200_html_is_unexpected(amo: AmoClient, transport: MockTransport) -> None:
    page = html(200, "Login")
    error = await fail(amo, transport, page)
    assert type(error) is UnexpectedResponseError
    assert error.status == 200
    assert (error.method, error.path) == ("GET", PIPELINES)
    assert error.body == page.body
    assert error.content_type == "text/html"
    assert "text/html" in error.detail
    assert error.may_have_been_processed


async def test_200_html_to_a_write_is_unexpected(amo: AmoClient, transport: MockTransport) -> None:
    transport.add(html(200, "Proxy"))
    with pytest.raises(UnexpectedResponseError) as info:
        await amo.pipelines.update(1, PipelineUpdate(name="x"))
    assert info.value.method == "PATCH"
    assert info.value.may_have_been_processed


# Bugs in pipelines.py / statuses.py: a 2xx JSON body of the wrong shape escapes as a
# cattrs / TypeError (or is read as an empty list) instead of UnexpectedResponseError.

WRONG_SHAPE = "a 2xx body of the wrong shape is not mapped to UnexpectedResponseError"


async def test_list_answered_with_a_json_array_is_unexpected(
    amo: AmoClient, transport: MockTransport
) -> None:
    error = await fail(amo, transport, json_response([1, 2]))
    assert isinstance(error, UnexpectedResponseError)


async def test_get_answered_with_an_incomplete_pipeline_is_unexpected(
    amo: AmoClient, transport: MockTransport
) -> None:
    transport.add(json_response({"id": 1}))
    with pytest.raises(UnexpectedResponseError):
        await amo.pipelines.get(1)


async def test_update_answered_with_an_empty_200_is_unexpected(
    amo: AmoClient, transport: MockTransport
) -> None:
    transport.add(empty_response(200))
    with pytest.raises(UnexpectedResponseError):
        await amo.statuses.update(1, 2, StatusUpdate(name="x"))


# --- may_have_been_processed ------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "processed"),
    [
        (InvalidInputError, False),
        (RequestNotSentError, False),
        (ResponseLostError, True),
        (RequestTimeoutError, True),
        (BadRequestError, False),
        (UnauthorizedError, False),
        (ForbiddenError, False),
        (AccountBlockedError, False),
        (NotFoundError, False),
        (UnprocessableEntityError, False),
        (RateLimitedError, False),
        (ServerError, True),
        (GatewayTimeoutError, True),
        (UnexpectedResponseError, True),
    ],
)
def test_may_have_been_processed(cls: type[AmoError], processed: bool) -> None:
    assert cls.may_have_been_processed is processed
    assert issubclass(cls, AmoError)


def test_hierarchy() -> None:
    assert issubclass(RequestTimeoutError, TimeoutError)
    assert issubclass(RequestTimeoutError, ResponseLostError)
    assert issubclass(ResponseLostError, TransportError)
    assert issubclass(RequestNotSentError, TransportError)
    assert not issubclass(RequestNotSentError, ResponseLostError)
    assert issubclass(InvalidInputError, ValueError)
    for cls in (BadRequestError, RateLimitedError, ServerError, UnexpectedResponseError):
        assert issubclass(cls, ApiError)


# --- the token never shows ---------------------------------------------------------------

ERROR_RESPONSES = [
    json_response(VALIDATION_BODY, 400, content_type="application/problem+json"),
    problem_response(401, "Unauthorized"),
    empty_response(402),
    html(403, "Blocked"),
    problem_response(404, "Pipeline not found"),
    problem_response(429, retry_after=1),
    problem_response(500, trace_id="abc"),
    html(502, "Bad gateway"),
    html(200, "Login"),
]


@pytest.mark.parametrize("response", ERROR_RESPONSES, ids=lambda r: str(r.status))
async def test_errors_never_show_the_token(
    amo: AmoClient, transport: MockTransport, token: str, response: Response
) -> None:
    error = await fail(amo, transport, response)
    (request,) = transport.requests
    assert request.headers["authorization"] == f"Bearer {token}"  # it was sent ...
    shown = [str(error), repr(error), repr(amo), str(amo), repr(request), str(request)]
    shown += [str(error.args), repr(vars(error))]
    for text in shown:  # ... and is never shown
        assert token not in text


def test_token_provider_repr_hides_the_token(token: str) -> None:
    provider = LongLivedToken(token)
    assert token not in repr(provider)
    assert token not in str(provider)
    assert token not in provider.fingerprint


async def test_debug_logs_never_show_the_token(
    token: str, caplog: pytest.LogCaptureFixture
) -> None:
    transport = MockTransport(
        responses=[json_response(P.pipelines_json()), problem_response(401, "expired")]
    )
    caplog.set_level(logging.DEBUG, logger="amo_pipelines")
    async with AmoClient(
        subdomain="example", access_token=token, transport=transport, log_bodies=True
    ) as amo:
        await amo.pipelines.list()
        with pytest.raises(UnauthorizedError):
            await amo.pipelines.list()
    assert "GET /api/v4/leads/pipelines -> 200" in caplog.text
    assert token not in caplog.text
    for record in caplog.records:
        assert token not in repr(record.args)
