"""Reading a funnels file into located values: every value keeps its line and how YAML typed it.

PyYAML's ``compose`` gives the node tree with marks (line numbers) and the resolved tag of
every scalar, before any Python object is built. Keeping the tag and the source text lets the
schema check say *why* a value has the wrong type: ``No`` became a boolean, ``2024`` a number,
and an unquoted ``#fff`` a comment (an empty value). PyYAML is imported here only, lazily: the
core SDK does not depend on it. JSON is read by PyYAML too when it is installed (JSON is
YAML), for line numbers; without it, by the standard library, without lines.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import frozen

from .errors import ExtraMissingError, SpecError

_TAGS = {
    "tag:yaml.org,2002:str": "str",
    "tag:yaml.org,2002:int": "int",
    "tag:yaml.org,2002:float": "float",
    "tag:yaml.org,2002:bool": "bool",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:map": "map",
    "tag:yaml.org,2002:seq": "seq",
}


@frozen
class Located:
    """A value from the file: ``value`` is a dict of ``Located`` (map), a list (seq) or a
    scalar; ``kind`` is how the file typed it; ``raw`` the scalar's source text."""

    value: Any
    kind: str
    line: int | None
    raw: str | None = None


def read_text(text: str, path: str) -> Located:
    """Parse ``text`` (YAML or JSON) into a :class:`Located` tree; :class:`SpecError` if it
    is not well-formed."""
    try:
        import yaml
    except ImportError:
        if text.lstrip().startswith(("{", "[")):
            return _from_json(text, path)
        raise ExtraMissingError("PyYAML", f"reading the YAML file {path}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SpecError(
            f"not valid YAML: {e.problem or e.context}", path=path, line=line, field=None
        ) from None
    except yaml.YAMLError as e:
        raise SpecError(f"not valid YAML: {e}", path=path, line=None, field=None) from None
    if node is None:
        raise SpecError("the file is empty", path=path, line=1, field=None)
    return _from_node(node, yaml.SafeLoader(""), path)


def _from_node(node: Any, loader: Any, path: str) -> Located:
    import yaml

    line = node.start_mark.line + 1
    kind = _TAGS.get(node.tag, node.tag)
    if isinstance(node, yaml.MappingNode):
        items: dict[str, Located] = {}
        for key_node, value_node in node.value:
            key = _from_node(key_node, loader, path)
            if key.kind != "str":
                raise SpecError(
                    f"keys must be strings, got {key.raw!r}", path=path, line=key.line, field=None
                )
            if key.value in items:
                raise SpecError(
                    f"key {key.value!r} is repeated", path=path, line=key.line, field=None
                )
            items[key.value] = _from_node(value_node, loader, path)
        return Located(items, "map", line)
    if isinstance(node, yaml.SequenceNode):
        return Located([_from_node(n, loader, path) for n in node.value], "seq", line)
    if isinstance(node, yaml.ScalarNode):
        try:
            value = loader.construct_object(node, deep=True)
        except yaml.YAMLError as e:
            raise SpecError(f"unreadable value: {e}", path=path, line=line, field=None) from None
        return Located(value, kind, line, node.value)
    raise SpecError(f"unsupported YAML node {node.tag}", path=path, line=line, field=None)


def _from_json(text: str, path: str) -> Located:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise SpecError(f"key {key!r} is repeated", path=path, line=None, field=None)
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise SpecError(f"not valid JSON: {e.msg}", path=path, line=e.lineno, field=None) from None
    return wrap_data(data)


def wrap_data(value: Any) -> Located:
    if isinstance(value, dict):
        return Located({k: wrap_data(v) for k, v in value.items()}, "map", None)
    if isinstance(value, list):
        return Located([wrap_data(v) for v in value], "seq", None)
    kind = {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}
    return Located(value, kind[type(value)], None, json.dumps(value, ensure_ascii=False))
