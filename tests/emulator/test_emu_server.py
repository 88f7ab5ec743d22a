"""The Emulator's lifecycle and the command line server."""

from __future__ import annotations

import json
import signal
import sys
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from support.constants import PIPELINES

from amo_pipelines.emulator import Emulator, EmulatorConfig, FaultKind
from amo_pipelines.emulator.__main__ import parse_args

from .cli_process import emulator_cli

ROOT = Path(__file__).resolve().parents[2]


async def test_start_and_stop_without_a_with_block() -> None:
    emu = Emulator(EmulatorConfig(token_rps=None))
    with pytest.raises(RuntimeError):
        _ = emu.url
    await emu.start()
    try:
        assert emu.running
        assert emu.url.startswith("http://127.0.0.1:") and not emu.url.endswith("/")
        assert emu.port > 0
        with pytest.raises(RuntimeError):
            await emu.start()
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {emu.admin_token}"}
            async with session.get(emu.url + PIPELINES, headers=headers) as resp:
                assert resp.status == 200
    finally:
        await emu.stop()
    assert not emu.running
    await emu.stop()  # idempotent


async def test_app_works_with_aiohttp_test_client() -> None:
    emu = Emulator(EmulatorConfig(token_rps=None))
    async with TestClient(TestServer(emu.app)) as client:
        resp = await client.get(PIPELINES, headers={"Authorization": f"Bearer {emu.admin_token}"})
        assert resp.status == 200
        body = await resp.json(content_type=None)
        href = body["_links"]["self"]["href"]
        assert href == str(client.make_url(PIPELINES))


def test_parse_args() -> None:
    config = parse_args(
        [
            "--port",
            "0",
            "--rps",
            "off",
            "--account-rps",
            "20",
            "--seed",
            "5",
            "--fault-rate",
            "500=0.05",
            "--fault-rate",
            "reset=0.02",
            "--latency",
            "0.01:0.05",
            "--html-429",
        ]
    )
    assert (config.port, config.token_rps, config.account_rps, config.seed) == (0, None, 20, 5)
    assert config.fault_rates == {FaultKind.HTTP_500: 0.05, FaultKind.RESET: 0.02}
    assert config.latency == (0.01, 0.05)
    assert config.html_429 is True
    assert parse_args(["--latency", "0.05"]).latency == (0.05, 0.05)


@pytest.mark.parametrize(
    "argv", [["--fault-rate", "500"], ["--fault-rate", "boom=0.1"], ["--latency", "x"]]
)
def test_parse_args_errors(argv: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_args(argv)
    assert caught.value.code == 2


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_cli_serves_and_stops_cleanly_on_ctrl_c() -> None:
    with emulator_cli("--seed", "3") as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        url = lines[0].rsplit(" ", 1)[1].strip()
        admin = lines[1].split(": ", 1)[1].strip()
        user = lines[2].split(": ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:"), lines
        assert admin != user
        request = urllib.request.Request(
            url + PIPELINES, headers={"Authorization": f"Bearer {admin}"}
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
            assert json.load(resp)["_total_items"] == 1
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "emulator stopped" in out


def test_emulator_imports_only_stdlib_aiohttp_attrs_yarl() -> None:
    import ast

    allowed = set(sys.stdlib_module_names) | {"aiohttp", "attrs", "yarl"}
    package = ROOT / "amo_pipelines" / "emulator"
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    # relative imports must stay inside the emulator package
                    assert node.level == 1, (path.name, node.module)
                    continue
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in allowed, (path.name, root)
