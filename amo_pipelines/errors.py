"""Exceptions, and the one place where an HTTP response becomes one.

Every exception derives from :class:`AmoError`. Failures are split by what the caller can
safely do next:

* :class:`InvalidInputError` - the SDK refused the input; nothing was sent.
* :class:`RequestNotSentError` - the request certainly did not reach the server.
* :class:`ResponseLostError` - the request may have been processed (timeout after sending,
  connection dropped mid-response). A create may have happened: read before you retry.
* :class:`ApiError` and its subclasses - the server answered with an error status.

``may_have_been_processed`` says the same thing as an attribute, which decides whether a
POST may be retried blindly.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

from attrs import frozen

from . import _json

if TYPE_CHECKING:
    from .transport.base import Request, Response


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


@frozen(kw_only=True)
class ValidationIssue:
    """One entry of a 400/422 ``validation-errors`` body."""

    request_id: str | None
    code: str
    path: str
    detail: str


class ApiError(AmoError):
    """The API answered with an error status."""

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
        self.body = body
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
    """403 as an HTML page: the account (or IP) is blocked for exceeding rate limits.

    Nothing more should be sent to this account until the block is lifted.
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


_BY_STATUS: Mapping[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    402: PaymentRequiredError,
    403: ForbiddenError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitedError,
    504: GatewayTimeoutError,
}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


def _json_object(response: Response) -> dict[str, Any] | None:
    if not response.body or response.content_type in ("text/html", "text/plain"):
        return None
    try:
        value = _json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _validation_issues(raw: object) -> list[ValidationIssue]:
    issues: list[ValidationIssue] = []
    if not isinstance(raw, list):
        return issues
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        request_id = entry.get("request_id")
        for error in entry.get("errors") or ():
            if isinstance(error, dict):
                issues.append(
                    ValidationIssue(
                        request_id=None if request_id is None else str(request_id),
                        code=_text(error.get("code")),
                        path=_text(error.get("path")),
                        detail=_text(error.get("detail")),
                    )
                )
    return issues


_HTML_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _html_title(body: bytes) -> str:
    match = _HTML_TITLE.search(body)
    return match.group(1).decode("utf-8", "replace").strip() if match else ""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return max(0.0, float(value))
    if isinstance(value, str):
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def error_from_response(request: Request, response: Response) -> ApiError:
    """Build the exception for an error response.

    Understands amoCRM's ``application/problem+json`` (with ``validation-errors``), the
    ``{"errors": {"code", "message", "hash"}}`` convention, HTML pages and empty bodies.
    """
    status = response.status
    data = _json_object(response) or {}
    title = _text(data.get("title"))
    detail = _text(data.get("detail"))
    code: str | int | None = None
    errors = data.get("errors")
    if isinstance(errors, dict):
        # {"errors": {"code": 2008, "message": "...", "hash": "..."}}
        raw_code = errors.get("code")
        code = raw_code if isinstance(raw_code, (str, int)) else None
        detail = detail or _text(errors.get("message"))
    is_html = response.content_type == "text/html" or response.body.lstrip()[:1] == b"<"
    if is_html and not data:
        title = title or _html_title(response.body)

    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    if status == 403 and is_html and not data:
        cls = AccountBlockedError
    kwargs: dict[str, Any] = {
        "status": status,
        "method": request.method,
        "path": request.url.path,
        "title": title,
        "detail": detail,
        "body": response.body,
        "content_type": response.content_type,
        "validation_errors": _validation_issues(data.get("validation-errors")),
        "code": code,
        "trace_id": _text(data.get("trace_id")) or None,
    }
    if cls is RateLimitedError:
        retry_after = _number(data.get("retry_after"))
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RateLimitedError(retry_after=retry_after, **kwargs)
    return cls(**kwargs)


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
