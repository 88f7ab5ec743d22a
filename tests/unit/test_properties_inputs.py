"""Property: every public input either builds a value the SDK can send, or raises
InvalidInputError naming the field (issue 10, item 5).

"Can send" means what the SDK does with it: the request body is ``converter.unstructure``
encoded by ``amo_pipelines.model._json.dumps``; an id goes into a URL path; a token goes into a
header (UTF-8) and its fingerprint is taken. Values are drawn from well-formed ones mixed
with anything at all: text with lone surrogates, ints far beyond 64 bits, floats, bools,
None, containers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amo_pipelines import (
    LOST_STATUS_ID,
    WON_STATUS_ID,
    DescriptionInput,
    DescriptionLevel,
    InvalidInputError,
    LongLivedToken,
    NewPipeline,
    NewStatus,
    OAuth2,
    PipelineUpdate,
    StatusColor,
    StatusUpdate,
    TokenSet,
)
from amo_pipelines.model import _json
from amo_pipelines.model.converter import converter
from amo_pipelines.model.inputs import check_id

FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# Any code point, lone surrogates (category Cs) included, and surrogates on purpose.
ANY_CHAR = st.characters(codec=None, exclude_categories=())
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=12),
    st.builds(
        lambda a, s, b: a + s + b,
        st.text(max_size=4),
        st.characters(categories=["Cs"]),
        st.text(max_size=4),
    ),
    st.text(min_size=1001, max_size=1100),  # over the description limit
)
INTS = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**66), max_value=2**66),
    st.sampled_from([0, -1, 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.binary(max_size=4),
    st.sampled_from([*StatusColor, *DescriptionLevel, "#99CCFF", "newbie", "#ccff66"]),
)
ANYTHING = st.one_of(
    SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(TEXT, SCALARS, max_size=2)
)

# Each field: mostly well-formed (so that whole objects get built and encoded), else a
# lone surrogate, an int beyond 64 bits, or anything at all.
GOOD_TEXT = st.text(min_size=1, max_size=10).filter(str.strip)
SURROGATE_TEXT = st.builds(
    lambda a, s, b: a + s + b,
    st.text(max_size=4),
    st.characters(categories=["Cs"]),
    st.text(max_size=4),
)
NAMES = st.one_of(GOOD_TEXT, GOOD_TEXT, GOOD_TEXT, SURROGATE_TEXT, TEXT, ANYTHING)
SORTS = st.one_of(*[st.integers(-1000, 10_000)] * 3, INTS, ANYTHING)
COLORS = st.one_of(*[st.sampled_from([*StatusColor, "#FFFEB2", "#ffffff"])] * 3, ANYTHING)
LEVELS = st.one_of(*[st.sampled_from([*DescriptionLevel, "newbie", "master"])] * 3, ANYTHING)
IDS = st.one_of(*[st.integers(1, 10**9)] * 3, INTS, ANYTHING)
BOOLS = st.one_of(st.booleans(), st.booleans(), ANYTHING)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _description(level: Any, text: Any, id: Any) -> DescriptionInput | None:
    try:
        return DescriptionInput(level=level, description=text, id=id)
    except InvalidInputError:
        return None


DESCRIPTIONS = st.one_of(
    st.lists(
        st.builds(_description, LEVELS, optional(NAMES), optional(IDS)).filter(
            lambda d: d is not None
        ),
        max_size=4,
    ),
    ANYTHING,
)


def assert_sendable(build: Callable[[], Any]) -> None:
    """``build()`` raises InvalidInputError naming a field, or its body encodes."""
    try:
        value = build()
    except InvalidInputError as e:
        assert e.field, f"InvalidInputError without a field: {e}"
        str(e).encode("utf-8")  # the message can be printed and logged
        return
    body = _json.dumps(converter.unstructure(value))
    assert isinstance(body, bytes)


@FAST
@given(level=LEVELS, text=optional(NAMES), id=optional(IDS))
def test_description_input(level: Any, text: Any, id: Any) -> None:
    assert_sendable(lambda: DescriptionInput(level=level, description=text, id=id))


@FAST
@given(
    name=NAMES,
    sort=optional(SORTS),
    color=optional(COLORS),
    descriptions=DESCRIPTIONS,
    request_id=optional(st.one_of(GOOD_TEXT, SURROGATE_TEXT, ANYTHING)),
    id=optional(st.one_of(st.sampled_from([WON_STATUS_ID, LOST_STATUS_ID]), IDS)),
)
def test_new_status(
    name: Any, sort: Any, color: Any, descriptions: Any, request_id: Any, id: Any
) -> None:
    assert_sendable(
        lambda: NewStatus(
            name=name,
            sort=sort,
            color=color,
            descriptions=descriptions,
            request_id=request_id,
            id=id,
        )
    )


def _status(name: Any, sort: Any, color: Any) -> NewStatus | None:
    try:
        return NewStatus(name=name, sort=sort, color=color)
    except InvalidInputError:
        return None


STATUSES = st.one_of(
    st.lists(
        st.builds(_status, NAMES, SORTS, optional(COLORS)).filter(lambda s: s is not None),
        max_size=3,
    ),
    ANYTHING,
)


@FAST
@given(
    name=NAMES,
    sort=SORTS,
    is_main=BOOLS,
    is_unsorted_on=BOOLS,
    statuses=STATUSES,
    won=optional(NAMES),
    lost=optional(NAMES),
    request_id=optional(st.one_of(GOOD_TEXT, SURROGATE_TEXT, ANYTHING)),
)
def test_new_pipeline(
    name: Any,
    sort: Any,
    is_main: Any,
    is_unsorted_on: Any,
    statuses: Any,
    won: Any,
    lost: Any,
    request_id: Any,
) -> None:
    assert_sendable(
        lambda: NewPipeline(
            name=name,
            sort=sort,
            is_main=is_main,
            is_unsorted_on=is_unsorted_on,
            statuses=statuses,
            won_status_name=won,
            lost_status_name=lost,
            request_id=request_id,
        )
    )


@FAST
@given(
    name=optional(NAMES),
    sort=optional(SORTS),
    is_main=optional(BOOLS),
    is_unsorted_on=optional(BOOLS),
)
def test_pipeline_update(name: Any, sort: Any, is_main: Any, is_unsorted_on: Any) -> None:
    assert_sendable(
        lambda: PipelineUpdate(name=name, sort=sort, is_main=is_main, is_unsorted_on=is_unsorted_on)
    )


@FAST
@given(
    name=optional(NAMES),
    sort=optional(SORTS),
    color=optional(COLORS),
    descriptions=optional(DESCRIPTIONS),
)
def test_status_update(name: Any, sort: Any, color: Any, descriptions: Any) -> None:
    assert_sendable(
        lambda: StatusUpdate(name=name, sort=sort, color=color, descriptions=descriptions)
    )


@FAST
@given(value=IDS)
def test_ids(value: Any) -> None:
    try:
        checked = check_id(value, "pipeline_id")
    except InvalidInputError as e:
        assert e.field == "pipeline_id"
        return
    assert f"/api/v4/leads/pipelines/{checked}"  # str() of it works (no 4300-digit limit)
    _json.dumps(checked)


PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
TOKENS = st.one_of(
    *[st.text(PRINTABLE, min_size=1)] * 3,
    st.builds(
        lambda a, s, b: a + s + b,
        st.text(PRINTABLE, max_size=4),
        st.characters(categories=["Cs"]),
        st.text(PRINTABLE, max_size=4),
    ),
    TEXT,
    ANYTHING,
)


@FAST
@given(token=TOKENS)
def test_long_lived_tokens(token: Any) -> None:
    try:
        provider = LongLivedToken(token)
    except InvalidInputError as e:
        assert e.field == "access_token"
        if isinstance(token, str) and len(token.strip()) >= 8:
            assert token not in str(e)  # the message never shows the token
        return
    assert provider.fingerprint
    f"Bearer {token}".encode()  # as the header goes out


@FAST
@given(access=TOKENS, refresh=TOKENS, expires_at=st.one_of(st.floats(), INTS, ANYTHING))
def test_token_sets(access: Any, refresh: Any, expires_at: Any) -> None:
    try:
        tokens = TokenSet(access, refresh, expires_at)
    except InvalidInputError as e:
        assert e.field in ("access_token", "refresh_token", "expires_at")
        return
    assert math.isfinite(tokens.expires_at)
    _json.dumps(tokens.to_dict())


@FAST
@given(
    client_id=TOKENS,
    secret=TOKENS,
    redirect_uri=st.one_of(
        *[st.just("https://app.example.com/amocrm/callback")] * 3,
        # Without lone surrogates: see test_a_lone_surrogate_in_redirect_uri_is_refused.
        st.builds(lambda t: f"https://app.example.com/{t}", st.text(max_size=8)),
        TEXT,
        ANYTHING,
    ),
)
def test_oauth2_keys(client_id: Any, secret: Any, redirect_uri: Any) -> None:
    try:
        auth = OAuth2(client_id, secret, redirect_uri)
    except InvalidInputError as e:
        assert e.field in ("client_id", "client_secret", "redirect_uri")
        return
    payload = {
        "client_id": auth.client_id,
        "client_secret": secret,
        "redirect_uri": auth.redirect_uri,
    }
    _json.dumps(payload)
    assert auth.fingerprint


def test_a_lone_surrogate_in_redirect_uri_is_refused() -> None:
    try:
        auth = OAuth2("id", "secret", "https://app.example.com/\ud800")
    except InvalidInputError as e:
        assert e.field == "redirect_uri"
        return
    _json.dumps({"redirect_uri": auth.redirect_uri})
