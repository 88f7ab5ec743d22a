"""OAuth's token files and due times in one process, on a fake clock: the rules the
multi-process test (processes/test_oauth_processes.py) checks across real processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from support.clocked import drive
from support.constants import PIPELINES

from amo_pipelines import (
    AmoClient,
    FakeClock,
    FileTokenStore,
    InvalidInputError,
    MemoryTokenStore,
    OAuth2,
    RetryPolicy,
    TokenSet,
    TokenStore,
)
from amo_pipelines.testing import MockTransport, json_response, problem_response
from amo_pipelines.transport import Request, Response

NOW = 1_700_000_000.0
CLIENT_ID, SECRET, REDIRECT = "client-5e0c", "client-SECRET-77d1", "https://integration.example/cb"


class TokenServer:
    """A token endpoint and GET /api/v4/leads/pipelines on a MockTransport. A refresh
    revokes the access token issued with the old refresh token, as amoCRM's does."""

    def __init__(self, clock: FakeClock, lifetime: float) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.refreshes = 0
        self.api: list[tuple[float, str]] = []  # (time, token) of every API request
        self.valid: set[str] = set()
        self.refresh_of: dict[str, str] = {}  # refresh token -> its access token
        self.issued = 0
        self.transport = MockTransport(self)

    def issue(self) -> TokenSet:
        self.issued += 1
        access, refresh = f"acc-SECRET-{self.issued}", f"ref-SECRET-{self.issued}"
        self.valid.add(access)
        self.refresh_of[refresh] = access
        now = self.clock.now()
        return TokenSet(access, refresh, now + self.lifetime, expires_in=self.lifetime)

    def __call__(self, request: Request) -> Response:
        if request.url.path == "/oauth2/access_token":
            assert request.body is not None
            old = json.loads(request.body)["refresh_token"]
            self.valid.discard(self.refresh_of.pop(old))
            self.refreshes += 1
            new = self.issue()
            return json_response(
                {
                    "token_type": "Bearer",
                    "expires_in": self.lifetime,
                    "access_token": new.access_token,
                    "refresh_token": new.refresh_token,
                },
                content_type="application/json",
            )
        token = request.headers["authorization"].removeprefix("Bearer ")
        self.api.append((self.clock.now(), token))
        if token not in self.valid:
            return problem_response(401, "Token is invalid", title="Unauthorized")
        return json_response({"_total_items": 0, "_embedded": {"pipelines": []}})


def oauth_client(server: TokenServer, store: TokenStore) -> tuple[OAuth2, AmoClient]:
    clock = server.clock
    auth = OAuth2(CLIENT_ID, SECRET, REDIRECT, store=store, clock=clock)  # refresh_margin=300
    amo = AmoClient(
        subdomain="example",
        auth=auth,
        transport=server.transport,
        clock=clock,
        retry=RetryPolicy(clock=clock, random_source=lambda: 0.5),
    )
    return auth, amo


async def test_a_set_another_process_saved_is_judged_by_its_own_lifetime(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    server = TokenServer(clock, lifetime=60.0)
    store = FileTokenStore(tmp_path / "tokens.json")
    await store.save(server.issue())  # another process's refresh, a moment ago
    auth, amo = oauth_client(server, store)
    async with amo:
        await amo.request("GET", PIPELINES)
        # 60 s tokens are due 30 s before they expire (not refresh_margin's 300 s): the
        # loaded set is used as it is, not refreshed on every request.
        assert server.refreshes == 0 and auth.margin_for(auth.tokens) == 30.0  # type: ignore[arg-type]
        await clock.advance(29.0)
        await amo.request("GET", PIPELINES)
        assert server.refreshes == 0
        await clock.advance(1.0)
        await amo.request("GET", PIPELINES)
        await amo.request("GET", PIPELINES)
        assert server.refreshes == 1
    assert [token for _, token in server.api] == ["acc-SECRET-1"] * 2 + ["acc-SECRET-2"] * 2
    assert (await store.load()) == auth.tokens


async def test_a_request_that_waited_past_the_due_time_takes_the_new_token() -> None:
    clock = FakeClock(NOW)
    server = TokenServer(clock, lifetime=2.0)  # due 1 s after it was issued
    _, amo = oauth_client(server, MemoryTokenStore(server.issue()))
    async with amo:
        # Seven go at once; the eighth waits for the rate window until NOW + 1, the moment
        # the token falls due: it must not go out with the token a refresh is replacing.
        calls = (amo.request("GET", PIPELINES) for _ in range(8))
        await drive(clock, asyncio.gather(*calls), limit=NOW + 60)
    assert server.api == [(NOW, "acc-SECRET-1")] * 7 + [(NOW + 1.0, "acc-SECRET-2")]
    assert server.refreshes == 1
    assert amo.rate_limiter.stats("example.amocrm.ru").in_flight == 0


async def test_a_token_file_of_an_earlier_version_loads_and_is_refreshed_once(
    tmp_path: Path,
) -> None:
    clock = FakeClock(NOW)
    server = TokenServer(clock, lifetime=60.0)
    old = server.issue()
    path = tmp_path / "tokens.json"
    # As earlier versions wrote it: no expires_in, so refresh_margin (300 s) applies.
    path.write_text(
        json.dumps(
            {
                "access_token": old.access_token,
                "refresh_token": old.refresh_token,
                "expires_at": old.expires_at,
            }
        )
    )
    loaded = await FileTokenStore(path).load()
    assert loaded is not None and loaded.expires_in is None
    _, amo = oauth_client(server, FileTokenStore(path))
    async with amo:
        for _ in range(3):
            await amo.request("GET", PIPELINES)
    assert server.refreshes == 1  # the new set carries its lifetime: no storm
    assert json.loads(path.read_text())["expires_in"] == 60.0


def test_expires_in_round_trips_and_is_checked() -> None:
    tokens = TokenSet("acc-SECRET-a", "ref-SECRET-b", NOW, expires_in=86400)
    assert tokens.to_dict()["expires_in"] == 86400.0
    assert TokenSet.from_dict(tokens.to_dict()) == tokens
    assert "expires_in" not in TokenSet("acc-SECRET-a", "ref-SECRET-b", NOW).to_dict()
    for bad in (0, -1, float("nan"), "60", True):
        with pytest.raises(InvalidInputError, match="expires_in"):
            TokenSet("acc-SECRET-a", "ref-SECRET-b", NOW, expires_in=bad)  # type: ignore[arg-type]
