"""Exceptions: everything the SDK raises derives from :class:`AmoError`.

Failures are split by what the caller can safely do next:

* :class:`InvalidInputError` - the SDK refused the input; nothing was sent.
* :class:`RequestNotSentError` - the request certainly did not reach the server.
* :class:`ResponseLostError` - the request may have been processed (timeout after sending,
  connection dropped mid-response, an answer over ``max_response_bytes``). A create may
  have happened: read before you retry.
* :class:`ApiError` and its subclasses - the server answered with an error status.

``may_have_been_processed`` says the same thing as an attribute, which decides whether a
POST may be retried blindly.

How an answer is read into one (which class for which status, what is a block, where a
429's wait comes from) is :mod:`amo_pipelines.http.problem`: whatever a server sends, it
gives an :class:`ApiError` subclass and never raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

from attrs import frozen

if TYPE_CHECKING:
    from .transport.base import Request, Response

BODY_KEPT = 64 * 1024
"""How much of a response body an :class:`ApiError` keeps, and how far error parsing looks
for an HTML title."""


class AmoError(Exception):
    """Base class of every exception the SDK raises."""

    may_have_been_processed: ClassVar[bool] = False


class InvalidInputError(AmoError, ValueError):
    """The SDK rejected an argument before sending anything.

    ``field`` names the offending input, e.g. ``"statuses[3].descriptions[0].level"``.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class ClientClosedError(AmoError, RuntimeError):
    """The client (or its transport) was used after ``aclose()``; nothing was sent."""


class TransportError(AmoError):
    """The request failed below HTTP: no response was received."""

    def __init__(self, message: str, *, method: str, path: str) -> None:
        self.method = method
        self.path = path
        super().__init__(f"{method} {path}: {message}")


class RequestNotSentError(TransportError):
    """The request certainly did not reach the server (e.g. connection refused)."""


class ResponseLostError(TransportError):
    """The request was sent but no complete response came back: it may have been processed."""

    may_have_been_processed = True


class RequestTimeoutError(ResponseLostError, TimeoutError):
    """No response within the configured timeout, after the request was sent."""


class ResponseTooLargeError(ResponseLostError):
    """The answer was larger than ``max_response_bytes`` and was not read.

    The request was sent and answered, so it may have been processed (for a write: read
    before you retry). ``status`` is the answer's HTTP status, ``limit`` the cap in bytes,
    ``size`` the announced ``Content-Length`` (``None`` when the answer did not say).
    """

    def __init__(
        self, *, method: str, path: str, status: int, limit: int, size: int | None = None
    ) -> None:
        self.status = status
        self.limit = limit
        self.size = size
        told = f"of {size} bytes" if size is not None else f"over {limit} bytes"
        super().__init__(
            f"the {status} response {told} exceeds max_response_bytes={limit} and was not "
            "read; the request was sent and answered, so it may have been processed",
            method=method,
            path=path,
        )


@frozen(kw_only=True)
class ValidationIssue:
    """One entry of a 400/422 ``validation-errors`` body."""

    request_id: str | None
    code: str
    path: str
    detail: str


class ApiError(AmoError):
    """The API answered with an error status.

    ``body`` is the start of the response body: its first :data:`BODY_KEPT` bytes.
    """

    def __init__(
        self,
        *,
        status: int,
        method: str,
        path: str,
        title: str = "",
        detail: str = "",
        body: bytes = b"",
        content_type: str = "",
        validation_errors: Sequence[ValidationIssue] = (),
        code: str | int | None = None,
        trace_id: str | None = None,
    ) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.title = title or _reason(status)
        self.detail = detail
        # Slicing bytes no longer than the bound returns the same object: no copy.
        self.body = body[:BODY_KEPT]
        self.content_type = content_type
        self.validation_errors = tuple(validation_errors)
        self.code = code
        self.trace_id = trace_id
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail and self.detail != self.title:
            text += f": {self.detail}"
        text += f" ({self.method} {self.path})"
        for issue in self.validation_errors[:5]:
            where = f"item {issue.request_id} " if issue.request_id is not None else ""
            text += f"; {where}{issue.path}: {issue.code} {issue.detail}".rstrip()
        if len(self.validation_errors) > 5:
            text += f"; and {len(self.validation_errors) - 5} more"
        return text


class UnexpectedResponseError(ApiError):
    """A response the SDK cannot read: a success that is not JSON, or JSON of the wrong shape.

    For a write, the change may have been applied.
    """

    may_have_been_processed = True

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("title", "Unexpected response")
        super().__init__(**kwargs)


class BadRequestError(ApiError):
    """400: the server rejected the data; see ``validation_errors``."""


class UnauthorizedError(ApiError):
    """401: the token is missing, expired or revoked."""


class PaymentRequiredError(ApiError):
    """402: the account's subscription does not cover API access."""


class ForbiddenError(ApiError):
    """403: the user lacks the right (writes need an account administrator)."""


class AccountBlockedError(ForbiddenError):
    """403 that says the account (or IP) is blocked, e.g. for exceeding rate limits: the
    HTML 403 page, or a body whose text says the account or IP is blocked.

    Nothing more should be sent to this account until the block is lifted; the circuit
    breaker opens on it (see :func:`is_account_block`). A 403 that only denies a permission
    (a non-admin token) stays a :class:`ForbiddenError`.
    """


class NotFoundError(ApiError):
    """404, or 204 to a GET of one entity."""


class UnprocessableEntityError(ApiError):
    """422: the data is well-formed but cannot be applied (limits, leads in a pipeline)."""


class RateLimitedError(ApiError):
    """429: too many requests. ``retry_after`` is in seconds when the server said."""

    def __init__(self, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(**kwargs)


class ServerError(ApiError):
    """5xx. The request may have been processed before the failure."""

    may_have_been_processed = True


class GatewayTimeoutError(ServerError):
    """504: the API's guidance is to retry with a smaller batch."""


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


def is_account_block(error: BaseException) -> bool:
    """Whether ``error`` means the account (or IP) is blocked: what the circuit breaker
    opens on. A 403 that only denies a permission is not a block (the rule is read from
    the answer once, in :mod:`amo_pipelines.http.problem`)."""
    return isinstance(error, AccountBlockedError)


def error_from_response(request: Request, response: Response) -> ApiError:
    """The exception for an error response to ``request``.

    The answer is read once (:func:`~amo_pipelines.http.problem.problem_of`, kept with the
    response), whoever asks first: the throttle, the client or the OAuth provider.
    """
    from .http.problem import problem_of  # it imports this module's classes

    return problem_of(response).error(request.method, request.url.path)


class BatchError(AmoError):
    """Some items of a batch call failed; nothing is lost silently.

    ``results`` has one slot per input position: the created/updated entity, or ``None``
    where that item failed. ``errors`` maps each failed position to its exception; an
    exception whose ``may_have_been_processed`` is true means that item's fate is unknown
    (list the entities before trying it again).
    """

    def __init__(self, results: Sequence[object], errors: Mapping[int, AmoError]) -> None:
        self.results = list(results)
        self.errors = dict(sorted(errors.items()))
        first = next(iter(self.errors.items()), None)
        summary = f"{len(self.errors)} of {len(self.results)} items failed"
        if first is not None:
            summary += f"; item {first[0]}: {first[1]}"
        super().__init__(summary)

    @property
    def succeeded(self) -> dict[int, object]:
        """Positions that were written, with their entity."""
        return {i: r for i, r in enumerate(self.results) if i not in self.errors}

    @property
    def unknown(self) -> list[int]:
        """Positions whose failure may still have been applied by the server."""
        return [i for i, e in self.errors.items() if e.may_have_been_processed]


class AuthorizationRequiredError(AmoError):
    """The integration has no usable OAuth tokens: the account's administrator must grant
    access (again) and the new authorization code must go to ``OAuth2.exchange_code``.

    Raised as such when the token store is empty; :class:`TokenRevokedError` is the case
    where the server refused the stored refresh token.
    """


class TokenRevokedError(UnauthorizedError, AuthorizationRequiredError):
    """401 from the token endpoint: the refresh token was revoked, used already or expired.

    Refresh tokens are single-use. The SDK reloads the token store first (another process
    may have rotated the token) and raises this only when the store holds nothing newer.
    Re-authorize the integration: send the administrator through the OAuth consent again
    and call ``OAuth2.exchange_code`` with the new code. ``hint`` is the server's reason.
    """

    def __init__(self, *, hint: str = "", **kwargs: Any) -> None:
        self.hint = hint
        kwargs.setdefault("status", 401)
        kwargs.setdefault("method", "POST")
        kwargs.setdefault("path", "/oauth2/access_token")
        kwargs.setdefault(
            "detail",
            f"the refresh token was rejected{f' ({hint})' if hint else ''}; re-authorize the "
            "integration (the account administrator grants access again) and pass the new "
            "authorization code to OAuth2.exchange_code()",
        )
        super().__init__(**kwargs)


class TokenStoreError(AmoError):
    """A token store could not load or save the tokens (unreadable file, lock timeout)."""


class SkippedError(AmoError):
    """This item of a batch was never sent: the batch stopped after an earlier failure.

    ``cause`` is that failure (a refusal of the whole account such as 401, 402 or 403, or,
    for status chunks, which must land in order, the failed chunk before). Nothing was
    written for this item; it is safe to send again once the cause is dealt with.
    """

    def __init__(self, cause: AmoError) -> None:
        self.cause = cause
        super().__init__(f"not sent: the batch stopped after an earlier failure ({cause})")


class UnknownOutcomeError(AmoError):
    """A write may or may not have been applied, and the SDK could not tell which.

    Raised when a request that must not be sent twice (a status PATCH that creates or
    deletes descriptions, for example) failed ambiguously and the server does not show the
    change; the first copy may still land. Read the entity before trying again. ``cause``
    is the failure (also chained as ``__cause__``).
    """

    may_have_been_processed = True

    def __init__(self, message: str, *, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(message)


class WrongEventLoopError(AmoError, RuntimeError):
    """An :class:`~amo_pipelines.AmoClient` was used from an event loop other than the one
    that first used it (e.g. a second ``asyncio.run()``); nothing was sent. A client's
    connections and rate-limit queues belong to that loop: create a client per loop."""
