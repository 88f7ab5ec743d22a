"""One exchange with the token endpoint: post a grant, read the token set or the refusal.

Whatever comes back, no secret of the exchange (the client secret, the code, the refresh
and access tokens) travels on inside an exception: an error body is read only after they
are cut out of it, and a success body that cannot be used is not kept at all.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import evolve

from ..errors import ApiError, InvalidInputError, UnexpectedResponseError
from ..http.problem import read_problem
from ..model import _json
from ..transport.base import Response
from .providers import TOKEN_PATH, TokenEndpoint
from .tokens import TokenSet

REDACTED = b"<redacted>"


class Refused(Exception):
    """The token endpoint refused a refresh token (401); carries the error to report."""

    def __init__(self, error: ApiError, hint: str) -> None:
        super().__init__(error.status)
        self.error = error
        self.hint = hint


async def post_grant(
    endpoint: TokenEndpoint,
    payload: Mapping[str, str],
    *,
    secrets: tuple[str, ...],
    sent_at: float,
) -> TokenSet:
    """POST ``payload`` (the grant, with the client's keys) and return the token set the
    answer holds (its expiry counted from ``sent_at``). A refresh token the server refuses
    (401 with a ``hint``) is :class:`Refused`; any other refusal is its
    :class:`~amo_pipelines.ApiError`. ``secrets``: what to cut out of an error body."""
    response = await endpoint.post(payload)
    if 200 <= response.status < 300:
        return _tokens(response, sent_at)
    # Read once, from the body with the secrets taken out.
    scrubbed = evolve(response, body=_scrub(response.body, secrets))
    problem = read_problem(scrubbed)
    hint = problem.hint
    if hint and hint not in problem.detail:
        problem = evolve(problem, detail=f"{problem.detail}: {hint}" if problem.detail else hint)
    error = problem.error("POST", TOKEN_PATH)
    if response.status == 401 and payload.get("grant_type") == "refresh_token" and hint:
        raise Refused(error, hint)
    raise error


def _tokens(response: Response, sent_at: float) -> TokenSet:
    try:
        data = _json.loads(response.body)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return TokenSet.from_response(data, now=sent_at)
    except (ValueError, UnicodeDecodeError) as e:
        reason = e.field if isinstance(e, InvalidInputError) else "not a JSON object"
        # The body may hold the new tokens: it is not kept.
        raise UnexpectedResponseError(
            status=response.status,
            method="POST",
            path=TOKEN_PATH,
            detail=f"unusable token response ({reason}); if it was a refresh, the "
            "old refresh token may be spent: re-authorize if the next refresh fails",
            content_type=response.content_type,
        ) from None


def _scrub(body: bytes, secrets: tuple[str, ...]) -> bytes:
    for secret in secrets:
        if secret:
            body = body.replace(secret.encode(), REDACTED)
            escaped = _json.dumps(secret)[1:-1]  # as it would appear inside a JSON string
            body = body.replace(escaped, REDACTED)
    return body
