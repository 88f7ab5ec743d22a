"""``python -m amo_pipelines.emulator --accounts N``: a process serving many accounts."""

from __future__ import annotations

import json
import signal
import stat
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support.constants import PIPELINES

from amo_pipelines.emulator.__main__ import parse_options

from .cli_process import emulator_cli

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="signals differ on Windows")


def fetch(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


def test_three_accounts_print_urls_and_write_their_tokens_to_a_private_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accounts.json"
    with emulator_cli("--accounts", "3", "--accounts-file", str(path), "--seed", "5") as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("amoCRM emulator serving 3 accounts"), lines
        urls = []
        for i, line in enumerate(lines[1:], start=1):
            label, _, url = line.strip().partition(": ")
            assert label == f"account {i}" and url.startswith("http://127.0.0.1:"), lines
            urls.append(url)
        # the URLs are printed after the file is complete
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        accounts = json.loads(path.read_text(encoding="utf-8"))
        assert [set(a) for a in accounts] == [
            {"name", "base_url", "account_id", "subdomain", "admin_token", "user_token"}
        ] * 3
        assert [a["name"] for a in accounts] == ["account-1", "account-2", "account-3"]
        assert [a["base_url"] for a in accounts] == urls
        assert [a["account_id"] for a in accounts] == [12345678, 12345679, 12345680]
        assert [a["subdomain"] for a in accounts] == ["example1", "example2", "example3"]
        tokens = [a[k] for a in accounts for k in ("admin_token", "user_token")]
        assert len(set(tokens)) == 6
        assert not list(tmp_path.glob(".*.tmp"))

        one, two = accounts[0], accounts[1]
        assert fetch(two["base_url"] + PIPELINES, two["admin_token"])[0] == 200
        assert fetch(one["base_url"] + PIPELINES, two["admin_token"])[0] == 401
        status, log = fetch(two["base_url"] + "/_emulator/log")
        assert status == 200 and log["next"] == 1
        assert log["entries"][0]["token_kind"] == "admin"
        assert fetch(one["base_url"] + "/_emulator/log")[1]["entries"][0]["token_kind"] == "other"
        assert fetch(accounts[2]["base_url"] + "/_emulator/stats")[1]["requests"] == 0

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1] == "emulator stopped"
    everything = "".join(lines) + out + err
    assert not any(token in everything for token in tokens)


def test_one_account_keeps_its_output_and_can_write_the_file(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    with emulator_cli("--accounts-file", str(path), "--subdomain", "solo") as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("amoCRM emulator listening on http://127.0.0.1:"), lines
        url = lines[0].rsplit(" ", 1)[1].strip()
        admin = lines[1].removeprefix("admin token: ").strip()
        user = lines[2].removeprefix("user token: ").strip()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text(encoding="utf-8")) == [
            {
                "name": "account-1",
                "base_url": url,
                "account_id": 12345678,
                "subdomain": "solo",
                "admin_token": admin,
                "user_token": user,
            }
        ]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err


def test_an_unwritable_accounts_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "accounts.json"
    with emulator_cli("--accounts", "2", "--accounts-file", str(missing)) as proc:
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 1
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert "account 1:" not in out


def test_accounts_option() -> None:
    assert parse_options([]).accounts == 1
    assert parse_options(["--accounts", "20"]).accounts == 20
    for bad in (["--accounts", "0"], ["--accounts", "x"], ["--accounts", "3", "--port", "65535"]):
        with pytest.raises(SystemExit):
            parse_options(bad)
