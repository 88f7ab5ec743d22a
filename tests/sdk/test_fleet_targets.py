"""What users give a fleet: targets files (``copy --to-file``), account references in task
arguments, and the ``copy --via`` options."""

from __future__ import annotations

import io
import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amo_pipelines import InvalidInputError
from amo_pipelines.cli import fleet as fleet_cli
from amo_pipelines.cli import main
from amo_pipelines.cli.accounts import Account, UsageError, load_targets
from amo_pipelines.fleet import AccountProgress, AccountRef

KEYS = ("base_url", "token_env", "token_file", "name")
text = st.text(alphabet=string.printable + "яё{}#:", max_size=12)
scalars = st.none() | st.booleans() | st.integers() | text
values = st.one_of(
    scalars,
    st.sampled_from(["https://a.amocrm.ru", "http://127.0.0.1:8080", "ftp://x", ""]),
)
items = st.one_of(
    values,
    st.lists(values, max_size=2),
    st.dictionaries(st.sampled_from([*KEYS, "token", 1]), values, max_size=5),
)
documents = st.one_of(
    st.lists(items, max_size=4), st.dictionaries(st.just("targets"), st.lists(items)), items
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=documents, as_yaml=st.booleans())
def test_a_targets_file_is_read_or_refused_with_a_usage_error(
    tmp_path: Path, data: Any, as_yaml: bool
) -> None:
    import yaml

    path = tmp_path / "targets.txt"
    body = yaml.safe_dump(data, allow_unicode=True) if as_yaml else json.dumps(data)
    path.write_text(body, encoding="utf-8")
    try:
        accounts = load_targets(str(path))
    except UsageError as e:
        assert str(e).startswith(str(path))
        return
    listed = data["targets"] if isinstance(data, dict) and "targets" in data else data
    assert isinstance(listed, list) and len(accounts) == len(listed)
    for account, item in zip(accounts, listed, strict=True):
        if isinstance(item, str):
            assert account == Account(item)
        else:
            assert account.spec == item["base_url"]
            assert (account.token_env, account.token_file, account.name) == (
                item.get("token_env"),
                item.get("token_file"),
                item.get("name"),
            )
            for value in (account.token_env, account.token_file, account.name):
                assert value is None or (isinstance(value, str) and value.strip())


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("[1, 2", ":1: not valid JSON or YAML"),
        ("- a\n - b: [", ":2: not valid YAML"),
        ("[{base_url: x, name: 5}]", "targets[0].name: must be a non-empty string"),
        ("[{base_url: x, token: secret}]", "targets[0]: unknown keys ['token']"),
        ("[]", "expected a list of targets"),
    ],
)
def test_targets_file_errors_name_the_file_and_the_place(
    tmp_path: Path, body: str, error: str
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        load_targets(str(path))
    assert str(caught.value).startswith(str(path)) and error in str(caught.value)
    assert "secret" not in str(caught.value)


def test_a_name_labels_a_target(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("- {base_url: 'https://a.amocrm.ru', name: shop-a, token_env: A}\n")
    [account] = load_targets(str(path))
    assert account == Account("https://a.amocrm.ru", "A", None, "shop-a")


@given(data=st.one_of(items, st.dictionaries(st.sampled_from(KEYS), values)))
def test_an_account_reference_is_read_or_refused_with_invalid_input(data: Any) -> None:
    try:
        ref = AccountRef.from_data(data)
    except InvalidInputError as e:
        assert e.field in ("account", "base_url", "name", "token_key", "token_env")
        return
    assert ref.base_url.startswith(("http://", "https://"))
    assert AccountRef.from_data(ref.to_data()) == ref
    assert ref.label


def test_an_account_reference_labels_by_host_and_port() -> None:
    assert AccountRef("https://a.amocrm.ru/").label == "a.amocrm.ru"
    assert AccountRef("http://127.0.0.1:8080").label == "127.0.0.1:8080"
    assert AccountRef("http://127.0.0.1:8080", name="t1").label == "t1"


def test_via_taskiq_refuses_embedded_emulators(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["copy", "--to", "emulator:empty", "--via", "taskiq", "--yes"])
    assert code == 1
    assert "--via taskiq: the workers must reach every account" in capsys.readouterr().err


def test_fleet_options_need_via_taskiq(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["copy", "--to", "emulator:empty", "--broker", "redis://x", "--yes"])
    assert code == 1
    assert "--broker, --job and --timeout go with --via taskiq" in capsys.readouterr().err


def test_via_taskiq_refuses_targets_of_one_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("- http://127.0.0.1:9000\n- http://127.0.0.1:9000/\n")
    code = main(
        [
            *("copy", "--from", "http://127.0.0.1:9001", "--to-file", str(path)),
            *("--via", "taskiq", "--broker", "redis://127.0.0.1:1/0", "--yes"),
        ]
    )
    assert code == 1
    assert "targets named twice (give each a name): 127.0.0.1:9000" in capsys.readouterr().err


def test_via_taskiq_without_redis_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            *("copy", "--from", "http://127.0.0.1:9001", "--to", "http://127.0.0.1:9000"),
            *("--via", "taskiq", "--broker", "redis://:hunter2@127.0.0.1:1/0", "--yes"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("amo-pipelines: error: Redis at 127.0.0.1:1: ")
    assert "hunter2" not in err and "Traceback" not in err


def test_via_taskiq_without_a_broker_says_how_to_give_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMO_FLEET_BROKER", raising=False)
    code = main(
        [
            *("copy", "--from", "http://127.0.0.1:9001", "--to", "http://127.0.0.1:9000"),
            *("--via", "taskiq", "--yes"),
        ]
    )
    assert code == 1
    assert "set AMO_FLEET_BROKER to the broker's Redis URL" in capsys.readouterr().err


class _Job:
    """A job whose records change on each poll, as workers would change them."""

    def __init__(self, polls: list[dict[str, AccountProgress]]) -> None:
        self.polls = polls

    async def progress(self) -> dict[str, AccountProgress]:
        return self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]


def _polls() -> list[dict[str, AccountProgress]]:
    a_run = AccountProgress("a", "running", attempts=1, worker="w1")
    a_again = AccountProgress("a", "running", attempts=2, worker="w2")
    a_done = AccountProgress("a", "done", attempts=2, requests=5, writes=3, worker="w2")
    b_fail = AccountProgress("b", "failed", attempts=1, error="FleetError: no token for b")
    return [{"a": a_run}, {"a": a_again, "b": b_fail}, {"a": a_done, "b": b_fail}]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_progress_as_plain_lines_each_change_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_cli, "POLL", 0.0)
    err = io.StringIO()
    out = fleet_cli.Display(err, ["a", "b"], quiet=False)
    with out:
        assert await fleet_cli.watch(_Job(_polls()), ["a", "b"], out, timeout=None)  # type: ignore[arg-type]
    lines = err.getvalue().splitlines()
    assert lines[:4] == [
        "[a] running on w1",
        "[a] running on w2 (delivery 2)",
        "[b] failed: FleetError: no token for b",
        "[a] done: 5 requests, 3 writes",
    ]
    assert lines[-1] == "fleet: 0 queued, 0 running, 1 done, 1 failed"


async def test_progress_gives_up_after_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_cli, "POLL", 0.01)
    out = fleet_cli.Display(io.StringIO(), ["a", "b"], quiet=True)
    job = _Job([{"a": AccountProgress("a", "running", attempts=1, worker="w1")}])
    assert not await fleet_cli.watch(job, ["a", "b"], out, timeout=0.05)  # type: ignore[arg-type]


async def test_progress_on_a_terminal_is_a_bar_per_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("rich")
    monkeypatch.setattr(fleet_cli, "POLL", 0.0)
    err = _Tty()
    out = fleet_cli.Display(err, ["a", "b"], quiet=False)
    with out:
        assert await fleet_cli.watch(_Job(_polls()), ["a", "b"], out, timeout=None)  # type: ignore[arg-type]
    text = err.getvalue()
    assert "a: done: 5 requests, 3 writes" in text
    assert "b: failed: FleetError: no token for b" in text
    assert "fleet: 0 queued, 0 running, 1 done, 1 failed" in text
