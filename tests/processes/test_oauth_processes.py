"""OAuth across real processes: an emulator process, one process that trades the code into a
FileTokenStore, and four worker processes that share that store while the access token
expires every few seconds.

The emulator process reports what the server saw (token endpoint requests, grants and API
401s) when its stdin closes, so every assertion here is about server-side truth.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support.clocked import drive

from amo_pipelines import (
    AmoClient,
    FileTokenStore,
    InvalidInputError,
    MemoryTokenStore,
    OAuth2,
    TokenSet,
    TokenStore,
)
from amo_pipelines.http.clock import FakeClock
from amo_pipelines.http.retry import RetryPolicy
from amo_pipelines.testing import MockTransport, json_response, problem_response
from amo_pipelines.transport import Request, Response

PIPELINES = "/api/v4/leads/pipelines"

ROOT = Path(__file__).resolve().parents[2]
LIFETIME = 4.0  # seconds an access token lives: refreshed every LIFETIME / 2
WORK_FOR = 8.0  # seconds each worker keeps sending GETs
PACE = 0.05  # seconds between a worker's GETs
WORKERS = 4

EMULATOR = textwrap.dedent(
    """
    import asyncio, json, sys
    from amo_pipelines.emulator import Emulator, EmulatorConfig

    async def main() -> None:
        config = EmulatorConfig(
            access_token_lifetime=float(sys.argv[1]), token_rps=None, account_rps=None
        )
        async with Emulator(config) as emu:
            cfg = emu.config
            print(json.dumps({
                "url": emu.url,
                "client_id": cfg.oauth_client_id,
                "client_secret": cfg.oauth_client_secret,
                "redirect_uri": cfg.oauth_redirect_uri,
                "code": emu.issue_code(),
            }), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            api = [e for e in emu.request_log if e.path.startswith("/api/")]
            print(json.dumps({
                "token_requests": emu.stats.token_requests,
                "token_grants": emu.stats.token_grants,
                "api_requests": len(api),
                "api_401": sum(1 for e in api if e.status == 401),
                "api_ok": sum(1 for e in api if e.status == 200),
            }), flush=True)

    asyncio.run(main())
    """
)

EXCHANGE = textwrap.dedent(
    """
    import asyncio, json, sys
    from amo_pipelines import AmoClient, FileTokenStore, OAuth2

    async def main() -> None:
        emu, store = json.loads(sys.argv[1]), sys.argv[2]
        auth = OAuth2(
            emu["client_id"], emu["client_secret"], emu["redirect_uri"],
            store=FileTokenStore(store),
        )
        async with AmoClient(base_url=emu["url"], auth=auth):
            await auth.exchange_code(emu["code"])

    asyncio.run(main())
    """
)

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from amo_pipelines import AmoClient, FileTokenStore, OAuth2

    async def main() -> None:
        emu, store = json.loads(sys.argv[1]), sys.argv[2]
        work_for, pace = float(sys.argv[3]), float(sys.argv[4])
        auth = OAuth2(
            emu["client_id"], emu["client_secret"], emu["redirect_uri"],
            store=FileTokenStore(store),
        )
        sent = 0
        async with AmoClient(base_url=emu["url"], auth=auth) as amo:
            deadline = time.monotonic() + work_for
            while time.monotonic() < deadline:
                await amo.request("GET", "/api/v4/leads/pipelines")
                sent += 1
                await asyncio.sleep(pace)
        print(json.dumps({"sent": sent}), flush=True)

    asyncio.run(main())
    """
)


def _python(script: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def _finish(process: subprocess.Popen[str], what: str, timeout: float) -> str:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"{what} did not finish in {timeout}s: {err[-2000:]}") from None
    assert process.returncode == 0, f"{what} failed: {err[-2000:]}"
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="FileTokenStore locks need fcntl")
def test_four_processes_on_one_file_store_refresh_once_per_expiry_and_see_no_401(
    tmp_path: Path,
) -> None:
    emulator = _python(EMULATOR, str(LIFETIME), stdin=subprocess.PIPE)
    try:
        assert emulator.stdout is not None
        line = emulator.stdout.readline()
        assert line, f"the emulator did not start: {emulator.stderr and emulator.stderr.read()}"
        assert json.loads(line)["url"].startswith("http://127.0.0.1:")
        # A folder that does not exist yet: the store creates it, for its owner only.
        store = tmp_path / "tokens" / "example.json"
        _finish(_python(EXCHANGE, line, str(store)), "the code exchange", 30)
        assert (store.parent.stat().st_mode & 0o777) == 0o700
        stored = json.loads(store.read_text())
        assert stored["expires_in"] == LIFETIME

        workers = [
            _python(WORKER, line, str(store), str(WORK_FOR), str(PACE)) for _ in range(WORKERS)
        ]
        sent = [json.loads(_finish(w, "a worker", WORK_FOR + 30))["sent"] for w in workers]
    finally:
        out, err = emulator.communicate(input="", timeout=30)
    assert emulator.returncode == 0, err[-2000:]
    seen = json.loads(out.strip().splitlines()[-1])

    # Each worker ran WORK_FOR seconds, started within a second or so of the others: the
    # token fell due (LIFETIME / 2 after it was issued) at most this many times meanwhile.
    due = int((WORK_FOR + 2.0) // (LIFETIME / 2)) + 1
    refreshes = seen["token_grants"].get("refresh_token", 0)
    assert seen["token_grants"].get("authorization_code") == 1
    assert 2 <= refreshes <= due, seen
    # Every token request was a successful grant: none was refused, none repeated.
    assert seen["token_requests"] == 1 + refreshes, seen
    assert seen["api_401"] == 0, seen
    assert seen["api_ok"] == seen["api_requests"] == sum(sent), seen


# --- the same rules in one process, on a fake clock --------------------------------------

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
