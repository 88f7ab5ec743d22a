"""Reading an error answer, once: a non-2xx response becomes a :class:`Problem`.

Every rule about what an answer means lives here: which exception class a status maps to,
what counts as the account (or IP) being blocked, where a 429's wait comes from. The
throttle (429 pause, circuit breaker), the client (the exception it raises) and the OAuth
provider (the token endpoint's refusals) all read the same :class:`Problem`, which
:func:`problem_of` computes on first use and keeps with the response.

Reading is linear in the size of the answer and looks at a bounded part of it: the first
:data:`~amo_pipelines.errors.BODY_KEPT` bytes (the HTML title, the part an exception keeps
as ``body``), and JSON only up to :data:`MAX_ERROR_JSON` bytes. Whatever a server sends,
reading returns a :class:`Problem` and never raises.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from attrs import frozen

from ..errors import (
    BODY_KEPT,
    AccountBlockedError,
    ApiError,
    BadRequestError,
    ForbiddenError,
    GatewayTimeoutError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    UnprocessableEntityError,
    ValidationIssue,
)
from ..model import _json
from ..transport.base import Response

MAX_ERROR_JSON = 1024 * 1024
"""Error bodies longer than this are not parsed as JSON (amoCRM's are a few kB at most)."""

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


@frozen(kw_only=True)
class Problem:
    """What an error answer says, read once (see the module docstring).

    Understands amoCRM's ``application/problem+json`` (with ``validation-errors``), the
    ``{"errors": {"code", "message", "hash"}}`` convention, HTML pages and empty bodies.
    ``blocked``: the answer says the account (or IP) is blocked. ``retry_after``: for a
    429, the seconds the server asked for (body, else ``Retry-After``), if it said.
    ``hint``: the OAuth ``hint`` field, if any.
    """

    status: int
    title: str = ""
    detail: str = ""
    body: bytes = b""
    content_type: str = ""
    validation_errors: tuple[ValidationIssue, ...] = ()
    code: str | int | None = None
    trace_id: str | None = None
    hint: str = ""
    retry_after: float | None = None
    blocked: bool = False

    @property
    def kind(self) -> type[ApiError]:
        """The exception class this answer maps to."""
        if self.blocked:
            return AccountBlockedError
        return _BY_STATUS.get(self.status) or (ServerError if self.status >= 500 else ApiError)

    def error(self, method: str, path: str) -> ApiError:
        """The exception for this answer to ``method path``."""
        kwargs: dict[str, Any] = {
            "status": self.status,
            "method": method,
            "path": path,
            "title": self.title,
            "detail": self.detail,
            "body": self.body,
            "content_type": self.content_type,
            "validation_errors": self.validation_errors,
            "code": self.code,
            "trace_id": self.trace_id,
        }
        kind = self.kind
        if kind is RateLimitedError:
            return RateLimitedError(retry_after=self.retry_after, **kwargs)
        return kind(**kwargs)


def problem_of(response: Response) -> Problem:
    """The :class:`Problem` of ``response``, read on first use and kept with it."""
    problem = response._problem
    if problem is None:
        problem = read_problem(response)
        object.__setattr__(response, "_problem", problem)  # a cache: not part of its value
    assert isinstance(problem, Problem)
    return problem


def read_problem(response: Response) -> Problem:
    """Read ``response`` (any status) into a :class:`Problem`; never raises."""
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
    body = response.body
    is_html = response.content_type == "text/html" or body[:BODY_KEPT].lstrip()[:1] == b"<"
    if is_html and not data:
        title = title or _html_title(body)
    hint = data.get("hint")
    blocked = False
    if status == 403:
        # The words of the answer: its JSON fields, else the start of the body as text.
        texts = (
            (title, detail, _text(hint)) if data else (body[:BODY_KEPT].decode("utf-8", "replace"),)
        )
        blocked = _is_block(is_html=is_html, data=data, texts=texts)
    retry_after = None
    if status == 429:
        retry_after = _number(data.get("retry_after"))
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
    return Problem(
        status=status,
        title=title,
        detail=detail,
        body=body[:BODY_KEPT],
        content_type=response.content_type,
        validation_errors=tuple(_validation_issues(data.get("validation-errors"))),
        code=code,
        trace_id=_text(data.get("trace_id")) or None,
        hint=hint if isinstance(hint, str) else "",
        retry_after=retry_after,
        blocked=blocked,
    )


# A block is said in words: "Account is blocked", "IP blocked", "Аккаунт заблокирован".
_WORDS = re.compile(r"\w+")


def _says_blocked(text: str) -> bool:
    words = _WORDS.findall(text[:BODY_KEPT].lower())
    return any(w.startswith(("blocked", "заблокирован")) for w in words) and any(
        w == "ip" or w.startswith(("account", "аккаунт")) for w in words
    )


def _is_block(*, is_html: bool, data: Mapping[str, Any], texts: Sequence[str]) -> bool:
    """The one rule for "this account (or IP) is blocked", for a 403: the HTML block page
    (HTML, no JSON), or an answer whose text says the account or IP is blocked. Any other
    403 is a missing permission (a non-admin token)."""
    return (is_html and not data) or _says_blocked(" ".join(texts))


def _json_object(response: Response) -> dict[str, Any] | None:
    body = response.body
    if not body or len(body) > MAX_ERROR_JSON:
        return None
    if response.content_type in ("text/html", "text/plain"):
        return None
    try:
        value = _json.loads(body)
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
        errors = entry.get("errors")
        if not isinstance(errors, list):  # a number, a string, an object: not a list of errors
            continue
        for error in errors:
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


_TITLE_CHARS = 500


def _html_title(body: bytes) -> str:
    """The text of the first ``<title>`` within the first :data:`BODY_KEPT` bytes.

    Three ``find`` calls, so linear whatever the page holds (a backtracking regex took
    minutes over a body of unclosed ``<title>`` tags).
    """
    head = body[:BODY_KEPT]
    lowered = head.lower()  # ASCII-only lowering: offsets stay the same
    start = lowered.find(b"<title")
    if start < 0:
        return ""
    text_start = lowered.find(b">", start + 6) + 1
    if text_start == 0:
        return ""
    end = lowered.find(b"</title", text_start)
    if end < 0:
        return ""
    return head[text_start:end].decode("utf-8", "replace").strip()[:_TITLE_CHARS]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return max(0.0, number) if math.isfinite(number) else None
