"""Emulator-only endpoints: fresh authorization codes over HTTP, and ``--codes N``."""

from __future__ import annotations

import json
import signal
import sys
import urllib.request
from typing import Any

import pytest
from support.constants import TOKEN_PATH

from amo_pipelines.emulator import Emulator
from amo_pipelines.emulator.__main__ import parse_command_line

from .cli_process import emulator_cli

CODE_PATH = "/_emulator/oauth/code"


def exchange(emu: Emulator, code: str) -> dict[str, Any]:
    cfg = emu.config
    return {
        "client_id": cfg.oauth_client_id,
        "client_secret": cfg.oauth_client_secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": cfg.oauth_redirect_uri,
    }


async def test_each_post_gives_a_fresh_code_that_works_once(api: Any, emu: Emulator) -> None:
    first = await api.post(CODE_PATH, token=None)
    second = await api.post(CODE_PATH, token=None)
    assert (first.status, first.content_type) == (200, "application/json")
    body = first.json
    assert set(body) == {"code", "client_id", "redirect_uri", "expires_in"}
    assert (body["client_id"], body["redirect_uri"], body["expires_in"]) == (
        emu.config.oauth_client_id,
        emu.config.oauth_redirect_uri,
        1200,
    )
    assert body["code"] != second.json["code"]
    for code in (body["code"], second.json["code"]):
        granted = await api.post(TOKEN_PATH, token=None, json=exchange(emu, code))
        assert granted.status == 200, granted.body
    again = await api.post(TOKEN_PATH, token=None, json=exchange(emu, body["code"]))
    assert again.status == 400  # single use, like every code
    # not an API request: neither logged nor counted
    assert [e.path for e in emu.request_log] == [TOKEN_PATH] * 3
    assert emu.stats.requests == 3


async def test_code_parameters(api: Any, emu: Emulator, check_problem: Any) -> None:
    emu.oauth.register("other", "secret", "https://other.example/cb")
    reply = await api.post(CODE_PATH, token=None, json={"client_id": "other", "admin": False})
    assert (reply.json["client_id"], reply.json["redirect_uri"]) == (
        "other",
        "https://other.example/cb",
    )
    assert emu.oauth.codes[reply.json["code"]].admin is False
    check_problem(await api.post(CODE_PATH, token=None, json={"client_id": "nobody"}), 400)
    check_problem(await api.post(CODE_PATH, token=None, json={"user_id": "1"}), 400)
    check_problem(await api.post(CODE_PATH, token=None, json=[1]), 400)
    check_problem(await api.post(CODE_PATH, token=None, data=b"{"), 400)
    check_problem(await api.get(CODE_PATH, token=None), 405)
    check_problem(await api.post("/_emulator/nothing", token=None), 404)


async def test_codes_are_served_while_the_account_is_blocked(make_emu: Any, make_api: Any) -> None:
    emu = await make_emu(token_rps=1, block_after=0)
    api = make_api(emu)
    await api.get("/api/v4/leads/pipelines")
    await api.get("/api/v4/leads/pipelines")
    assert emu.blocked
    assert (await api.post(CODE_PATH, token=None)).status == 200


def test_codes_option() -> None:
    assert parse_command_line([])[1] == 1
    assert parse_command_line(["--codes", "3"])[1] == 3
    assert parse_command_line(["--codes", "0"])[1] == 0
    with pytest.raises(SystemExit):
        parse_command_line(["--codes", "-1"])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_cli_prints_n_codes_and_serves_more() -> None:
    with emulator_cli("--codes", "3") as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(8)]
        codes = [line.rsplit(" ", 1)[1].strip() for line in lines if "authorization code" in line]
        assert len(codes) == 3 and len(set(codes)) == 3, lines
        assert lines[7].startswith("more codes: POST http://127.0.0.1:"), lines
        url = lines[7].rsplit(" ", 1)[1].strip()
        assert url.endswith(CODE_PATH)
        fresh = set()
        for _ in range(2):
            request = urllib.request.Request(url, method="POST")
            with urllib.request.urlopen(request, timeout=10) as resp:
                fresh.add(json.load(resp)["code"])
        assert len(fresh) == 2 and not fresh & set(codes)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
