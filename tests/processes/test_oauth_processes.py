"""OAuth across real processes: an emulator process, one process that trades the code into a
FileTokenStore, and four worker processes that share that store while the access token
expires every few seconds.

The emulator process reports what the server saw (token endpoint requests, grants and API
401s) when its stdin closes, so every assertion here is about server-side truth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

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
