"""The funnels file: schema errors name file, line and field; YAML's traps get a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from amo_pipelines import AmoError
from amo_pipelines.funnels import SpecError, dumps_spec, load_spec, loads_spec, spec_from_data

HEAD = "version: 1\npipelines:\n- name: Sales\n  statuses:\n"


def error_of(text: str, tmp_path: Path) -> SpecError:
    path = tmp_path / "funnels.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert isinstance(caught.value, AmoError)
    return caught.value


def test_no_read_as_false_names_file_line_and_field(tmp_path: Path) -> None:
    e = error_of(HEAD + "  - name: Yes\n  - name: No\n", tmp_path)
    assert (e.line, e.field) == (5, "pipelines[0].statuses[0].name")
    assert str(e).startswith(f"{tmp_path / 'funnels.yaml'}:5: pipelines[0].statuses[0].name: ")
    assert "reads as a boolean" in str(e) and "quote it: 'Yes'" in str(e)


def test_an_unquoted_hex_color_is_a_comment(tmp_path: Path) -> None:
    e = error_of(HEAD + "  - name: Lead\n    color: #fff\n", tmp_path)
    assert (e.line, e.field) == (6, "pipelines[0].statuses[0].color")
    assert "an unquoted '#' starts a comment" in str(e)


def test_a_year_read_as_a_number(tmp_path: Path) -> None:
    e = error_of("pipelines:\n- name: 2024\n", tmp_path)
    assert (e.line, e.field) == (2, "pipelines[0].name")
    assert "'2024', which YAML reads as a number; quote it" in str(e)


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("pipelines:\n- nmae: x\n", 2, "pipelines[0].nmae", "unknown key"),
        ("pipelines:\n- {}\n", 2, "pipelines[0].name", "is required"),
        (HEAD + "  - {name: a, color: red}\n", 5, "pipelines[0].statuses[0].color", "'#98cbff'"),
        (HEAD + "  - {name: a, descriptions: {boss: hi}}\n", 5, None, "unknown key"),
        (HEAD + "  - {id: 142, role: lost, name: x}\n", 5, "pipelines[0].statuses[0].role", ""),
        (HEAD + "  - {role: won, name: a}\n  - {role: won, name: b}\n", 6, None, "repeated"),
        ("pipelines:\n- {name: a, is_main: yes}\n- {name: b, is_main: true}\n", 3, None, "main"),
        ("pipelines:\n- {name: a, is_main: maybe}\n", 2, "pipelines[0].is_main", "true or"),
        ("pipelines: [\n", 2, None, "not valid YAML"),
        ("version: 2\npipelines: []\n", 1, "version", "version 1"),
        ("pipelines: &a\n- *a\n", 1, None, "refers to itself"),
        (
            "x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + "".join(
                f"x{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n"
                for i in range(6)
            ),
            1,
            None,
            "aliases repeated",
        ),
    ],
)
def test_schema_errors(tmp_path: Path, text: str, line: int, field: str | None, words: str) -> None:
    e = error_of(text, tmp_path)
    assert e.line == line
    if field is not None:
        assert e.field == field
    assert words in str(e)


def test_too_many_statuses_or_pipelines(tmp_path: Path) -> None:
    many = HEAD + "".join(f"  - name: s{i}\n" for i in range(98))
    assert "at most 97" in str(error_of(many, tmp_path))
    lots = "pipelines:\n" + "".join(f"- name: p{i}\n" for i in range(51))
    assert "at most 50" in str(error_of(lots, tmp_path))


def test_yaml_and_json_round_trip_keep_order_and_cyrillic() -> None:
    text = HEAD + "  - {name: Первичный контакт, color: '#ABC', descriptions: {master: Звонок}}\n"
    spec = loads_spec(text)
    assert spec.pipelines[0].statuses[0].color == "#aabbcc"
    dumped = dumps_spec(spec)
    assert "Первичный контакт" in dumped and "\\u" not in dumped
    assert dumped.index("version") < dumped.index("pipelines")
    assert loads_spec(dumped) == spec
    assert loads_spec(dumps_spec(spec, "json"), path="f.json") == spec


def test_plain_data_is_checked_too() -> None:
    with pytest.raises(SpecError, match=r"pipelines\[0\]\.name: must be a string"):
        spec_from_data({"pipelines": [{"name": False}]})
