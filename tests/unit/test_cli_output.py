"""The CLI's progress output (rich bars on a terminal, plain lines otherwise) and its
accounts: tokens per subdomain, targets files. (OAuth token files: processes/test_cli.py.)"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from amo_pipelines.cli.accounts import Account, UsageError, load_targets, token_env_names
from amo_pipelines.cli.output import Reporter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_per_account_without_color_under_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    screen = Terminal()
    with Reporter(screen) as report:
        for name in ("a.amocrm.ru", "b.amocrm.ru"):
            bar = report.progress(name)
            bar.expect(4)
            bar.advance(4)
            bar.note("done")
    out = screen.getvalue()
    assert "a.amocrm.ru: done" in out and "b.amocrm.ru: done" in out and "4/4" in out
    assert "\x1b[3" not in out  # no foreground colors


def test_plain_lines_off_a_terminal() -> None:
    log = io.StringIO()
    with Reporter(log) as report:
        bar = report.progress("a.amocrm.ru")
        bar.expect(2)
        bar.note("reading")
        bar.advance(2)
    assert log.getvalue().splitlines() == [
        "[a.amocrm.ru] reading (0/2 requests)",
        "[a.amocrm.ru] done: 2 requests",
    ]
    assert "\x1b" not in log.getvalue()


def test_tokens_per_subdomain_and_targets_files(tmp_path: Path) -> None:
    assert token_env_names("https://my-shop.kommo.com") == ["AMO_TOKEN_MY_SHOP", "AMO_TOKEN"]
    file = tmp_path / "targets.yaml"
    file.write_text(
        "- https://a.amocrm.ru\n- {base_url: 'https://b.amocrm.ru', token_env: B_TOKEN}\n"
    )
    assert load_targets(str(file)) == [
        Account("https://a.amocrm.ru"),
        Account("https://b.amocrm.ru", token_env="B_TOKEN"),
    ]
    file.write_text("- {base_url: 'https://b.amocrm.ru', token: oops}\n")
    with pytest.raises(UsageError, match="unknown keys"):
        load_targets(str(file))
