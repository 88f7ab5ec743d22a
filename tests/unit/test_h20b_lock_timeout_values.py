"""``--lock-timeout`` and a task message's ``lock_timeout``: what is refused, and where.

The CLI refuses a negative, infinite or nan value as a usage error before it reads a
file or opens anything; a worker refuses anything but a finite number >= 0 (or None: its
own setting) as a failed account."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from amo_pipelines.cli import main
from amo_pipelines.fleet import FleetError
from amo_pipelines.fleet.tasks import lock_wait

floats = st.floats(allow_nan=True, allow_infinity=True)
HOOK = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _refused(value: float) -> bool:
    return math.isnan(value) or math.isinf(value) or value < 0


@HOOK
@given(value=floats)
@example(value=-0.0)
@example(value=float("nan"))
@example(value=float("-inf"))
@example(value=-1e-300)
def test_apply_refuses_a_bad_lock_timeout_before_reading_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: float
) -> None:
    missing = tmp_path / "no-such-file.yaml"
    code = main(["apply", str(missing), "--emulator", "--yes", f"--lock-timeout={value!r}"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    if _refused(value):
        assert err == (
            "amo-pipelines: error: --lock-timeout must be a finite number of seconds >= 0, "
            f"got {value}\n"
        )
    else:  # checked, then the file was looked for
        assert "--lock-timeout" not in err and str(missing) in err


@HOOK
@given(value=floats)
@example(value=float("inf"))
@example(value=0.0)
def test_copy_via_taskiq_refuses_a_bad_lock_timeout_before_anything_else(
    capsys: pytest.CaptureFixture[str], value: float
) -> None:
    code = main(
        [
            *("copy", "--to", "emulator:empty", "--via", "taskiq", "--yes"),
            f"--lock-timeout={value!r}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    if _refused(value):
        assert err.startswith("amo-pipelines: error: --lock-timeout must be a finite number")
    else:  # accepted: the next check speaks
        assert "--via taskiq: the workers must reach every account" in err


def test_the_help_says_what_lock_timeout_means_under_via_taskiq(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["copy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "with --via taskiq each task waits this long on its worker" in text
    assert "AMO_FLEET_LOCK_TIMEOUT" in text


messages = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    floats,
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@given(value=messages, default=st.floats(min_value=0.001, max_value=1e4))
def test_a_message_lock_timeout_is_used_or_refused(value: Any, default: float) -> None:
    try:
        wait = lock_wait(value, default)
    except FleetError as e:
        assert str(e).startswith("lock_timeout must be")
        assert value is not None
        if isinstance(value, str):  # a string from a message is never echoed
            assert "got str" in str(e)
        good = (
            not isinstance(value, bool)
            and isinstance(value, (int, float))
            and 0 <= value < math.inf
        )
        assert not good
        return
    if value is None:
        assert wait == default
    else:
        assert not isinstance(value, bool) and isinstance(value, (int, float))
        assert wait == value and 0 <= wait < math.inf and type(wait) is float
