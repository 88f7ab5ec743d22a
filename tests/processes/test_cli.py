"""The ``amo-pipelines`` command, run as a user would: in a subprocess, against emulators
served by the test (``--base-url`` and the token in the environment)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from support.emulated import unlimited_config, writes
from support.funnels_helpers import funnels_client

from amo_pipelines import AmoClient, BatchError, FileTokenStore, OAuth2, PipelineUpdate
from amo_pipelines.demo import run_job
from amo_pipelines.emulator import Emulator, Fault

TOKEN = "tok-CLI-SECRET-7d1e-do-not-print"


async def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):  # type: ignore[no-untyped-def]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amo_pipelines",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AMO_TOKEN": TOKEN, "NO_COLOR": "1", **(env or {})},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


def emulator(**kwargs: object) -> Emulator:
    kwargs.setdefault("admin_token", TOKEN)
    return Emulator(unlimited_config(**kwargs))


async def test_export_plan_apply_and_a_second_apply_without_writes(tmp_path: Path) -> None:
    file = tmp_path / "funnels.yaml"
    async with emulator() as source, emulator(seed_account=False) as target:
        code, out, err = await run("export", "--base-url", source.url, "-o", str(file))
        assert code == 0, err
        text = file.read_text(encoding="utf-8")
        assert text.startswith(f"# amo-pipelines export of {source.url[7:]} (account ")
        assert "Первичный контакт" in text  # allow_unicode

        code, _, err = await run("plan", str(file), "--base-url", target.url, "--detailed-exitcode")
        assert code == 2, err
        assert "+ status 'Первичный контакт'" in err and "1 write request" in err
        assert writes(target) == []

        code, out, err = await run("apply", str(file), "--base-url", target.url, "--yes", "--json")
        assert code == 0, err
        assert json.loads(out)["writes"] == 1
        count = len(target.request_log)
        code, out, err = await run("apply", str(file), "--base-url", target.url, "--yes")
        assert code == 0, err
        assert [e.method for e in target.request_log[count:]] == ["GET", "GET"]
        code, _, _ = await run("plan", str(file), "--base-url", target.url, "--detailed-exitcode")
        assert code == 0
        for output in (out, err):
            assert TOKEN not in output


async def test_plan_exit_codes_and_usage_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("pipelines:\n- name: Воронка\n", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelines:\n- name: Воронка\n  statuses:\n  - name: No\n", encoding="utf-8")
    async with emulator() as emu:
        url = ("--base-url", emu.url)
        assert (await run("plan", str(good), *url, "--detailed-exitcode"))[0] == 0
        assert (await run("plan", str(good), *url))[0] == 0
        code, _, err = await run("plan", str(bad), *url, "--detailed-exitcode")
        assert code == 1
        assert err.strip().splitlines() == [
            f"amo-pipelines: error: {bad}:4: pipelines[0].statuses[0].name: must be a string, "
            "got 'No', which YAML reads as a boolean; quote it: 'No'"
        ]
        # Usage errors: 2 by argparse's convention, but 1 when 2 means "changes".
        assert (await run("plan", str(good), "--bogus"))[0] == 2
        assert (await run("plan", str(good), "--bogus", "--detailed-exitcode"))[0] == 1
        assert (await run("plan", "--detailed-exitcode"))[0] == 1
        missing = await run("plan", str(tmp_path / "nope.yaml"), *url, "--detailed-exitcode")
        assert missing[0] == 1 and "Traceback" not in missing[2]


async def test_yaml_traps_through_the_cli(tmp_path: Path) -> None:
    file = tmp_path / "f.yaml"
    file.write_text(
        "pipelines:\n- name: Sales\n  statuses:\n  - name: Lead\n    color: #fff\n",
        encoding="utf-8",
    )
    code, _, err = await run("plan", str(file))
    assert code == 1
    assert f"{file}:5: pipelines[0].statuses[0].color: is empty: an unquoted '#'" in err
    file.write_text("pipelines:\n- name: 2024\n", encoding="utf-8")
    code, _, err = await run("plan", str(file))
    assert f"{file}:2: pipelines[0].name: must be a string, got '2024'" in err


async def test_a_saved_plan_is_refused_after_the_account_changed(tmp_path: Path) -> None:
    file, saved = tmp_path / "f.yaml", tmp_path / "plan.json"
    file.write_text("pipelines:\n- name: Воронка\n  statuses:\n  - name: New\n", encoding="utf-8")
    async with emulator() as emu:
        code, _, err = await run("plan", str(file), "--base-url", emu.url, "--out", str(saved))
        assert code == 0, err
        assert json.loads(saved.read_text())["fingerprint"].startswith("sha256:")
        async with AmoClient(base_url=emu.url, access_token=TOKEN) as amo:
            await amo.pipelines.update(3177727, PipelineUpdate(name="Someone else"))
        count = len(writes(emu))
        code, _, err = await run("apply", str(saved), "--base-url", emu.url, "--yes")
        assert code == 1
        assert "has changed since the plan was made" in err
        assert len(writes(emu)) == count


async def test_apply_asks_and_does_nothing_without_yes_off_a_terminal(tmp_path: Path) -> None:
    file = tmp_path / "f.yaml"
    file.write_text("pipelines:\n- name: Воронка\n  statuses:\n  - name: New\n", encoding="utf-8")
    async with emulator() as emu:
        code, _, err = await run("apply", str(file), "--base-url", emu.url)
        assert code == 1
        assert "not applied: confirm on a terminal or pass --yes" in err
        assert writes(emu) == []


@pytest.mark.slow
async def test_copy_to_20_accounts_converges_with_zero_writes_on_a_second_run(
    tmp_path: Path,
) -> None:
    async with emulator() as source:
        targets = [emulator(seed_account=False, admin_token=f"tok-{i}") for i in range(20)]
        for t in targets:
            await t.__aenter__()
        try:
            listing = [{"base_url": t.url, "token_env": f"TOK_{i}"} for i, t in enumerate(targets)]
            (tmp_path / "targets.json").write_text(json.dumps(listing))
            env = {f"TOK_{i}": f"tok-{i}" for i in range(20)}
            args = ("copy", "--from", source.url, "--to-file", "targets.json", "--yes")
            code, _, err = await run(*args, env=env, cwd=tmp_path)
            assert code == 0, err
            first = [len(writes(t)) for t in targets]
            assert first == [1] * 20  # one statuses POST each
            id_map = json.loads((tmp_path / "id-map.json").read_text())
            assert len(id_map["targets"]) == 20
            for t in targets:
                m = id_map["targets"][t.url[7:]]
                assert m["statuses"]["142"] == 142 and m["statuses"]["143"] == 143
                ours = {s.id for p in t.state.pipelines.values() for s in p.statuses.values()}
                assert set(m["statuses"].values()) <= ours
            code, out, err = await run(*args, "--json", env=env, cwd=tmp_path)
            assert code == 0, err
            assert [len(writes(t)) for t in targets] == first
            assert {t["writes"] for t in json.loads(out)["targets"]} == {0}
        finally:
            for t in targets:
                await t.__aexit__(None, None, None)


async def test_demo_help_lists_no_ranges_and_every_option_has_help() -> None:
    code, out, _ = await run("demo", "--help")
    assert code == 0
    assert "1, 2, 3" not in out and "{1," not in out
    for option in ("--base-url URL", "--token TOKEN", "--pipelines N", "--statuses N"):
        line = next(x for x in out.splitlines() if x.strip().startswith(option))
        assert line.strip() != option  # the help text follows on the same line
    code, out, _ = await run("--version")
    assert code == 0 and out.startswith("amo-pipelines 0.")


async def test_demo_prints_progress_and_fails_in_one_line() -> None:
    code, out, err = await run("demo", "--pipelines", "2", "--statuses", "2")
    assert code == 0, err
    assert "demo: creating 2 pipelines" in err and "429s      0" in out
    async with emulator() as emu:
        code, out, err = await run("demo", "--base-url", emu.url, env={"AMO_TOKEN": "wrong"})
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("amo-pipelines demo: error: ")
    assert "401" in err and "Traceback" not in err


async def test_the_demo_deletes_what_it_made_when_a_step_fails() -> None:
    async with emulator() as emu, funnels_client(emu) as amo:
        emu.faults.add(Fault.status(500), method="PATCH", path="/api/v4/leads/pipelines/*")
        said: list[str] = []
        with pytest.raises(BatchError):
            await run_job(amo, pipelines=3, statuses=2, say=said.append)
        assert said[-1] == "failed: deleting the 3 pipelines created so far"
        assert [p.name for p in emu.state.ordered_pipelines()] == ["Воронка"]


async def test_demo_and_json_files_work_without_the_cli_extra(tmp_path: Path) -> None:
    # PyYAML and rich made unimportable: the demo runs, YAML asks for the extra.
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['yaml'] = None\nsys.modules['rich'] = None\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code, out, err = await run("demo", "--pipelines", "1", "--statuses", "1", env=env)
    assert code == 0, err
    code, _, err = await run("export", env=env)
    assert code == 1
    assert "pip install 'amo-pipelines[cli]'" in err
    code, out, err = await run("export", "--json", env=env)
    assert code == 0 and json.loads(out)["pipelines"][0]["name"] == "Воронка"


async def test_an_oauth_token_file_is_used_as_is_or_through_oauth2(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    async with Emulator(unlimited_config(access_token_lifetime=60)) as emu:
        cfg = emu.config
        auth = OAuth2(
            cfg.oauth_client_id,
            cfg.oauth_client_secret,
            cfg.oauth_redirect_uri,
            store=FileTokenStore(tokens),
        )
        async with AmoClient(base_url=emu.url, auth=auth):
            await auth.exchange_code(emu.issue_code())
        secret = json.loads(tokens.read_text())["access_token"]
        env = {"AMO_TOKEN": ""}
        code, out, err = await run(
            "export", "--json", "--base-url", emu.url, "--token-file", str(tokens), env=env
        )
        assert code == 0, err
        assert json.loads(out)["pipelines"][0]["name"] == "Воронка"
        oauth = {
            "AMO_CLIENT_ID": cfg.oauth_client_id,
            "AMO_CLIENT_SECRET": cfg.oauth_client_secret,
            "AMO_REDIRECT_URI": cfg.oauth_redirect_uri,
        }
        code, out, err = await run(
            "export",
            "--json",
            "--base-url",
            emu.url,
            "--token-file",
            str(tokens),
            env={**env, **oauth},
        )
        assert code == 0, err
        assert secret not in out + err
        code, _, err = await run("export", "--base-url", emu.url, env=env)
        assert code == 1 and "no token for" in err and "AMO_TOKEN" in err


async def test_copy_dry_run_prints_each_targets_plan_and_writes_nothing(tmp_path: Path) -> None:
    async with emulator() as source, emulator(seed_account=False, admin_token="tok-0") as target:
        (tmp_path / "targets.json").write_text(
            json.dumps([{"base_url": target.url, "token_env": "TOK_0"}])
        )
        args = ("copy", "--from", source.url, "--to-file", "targets.json", "--dry-run")
        env = {"TOK_0": "tok-0"}
        code, out, err = await run(*args, "--json", env=env, cwd=tmp_path)
        assert code == 0, out + err
        assert writes(target) == [] and writes(source) == []
        (plan,) = json.loads(out)["targets"]
        assert plan["target"] == target.url[7:] and plan["writes"] >= 1
        assert any(change["op"] == "+" for change in plan["changes"])
        assert not (tmp_path / "id-map.json").exists()
        code, _, err = await run(*args, "--via", "taskiq", "--broker", "redis://x", cwd=tmp_path)
        assert code != 0 and "--dry-run" in err
