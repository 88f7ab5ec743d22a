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
import re
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
        # libyaml's parser when PyYAML has it: ten times faster, with the same marks.
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
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
    return _from_node(node, _Loader(yaml.SafeLoader("")), path, ())


MAX_NODES = 200_000
"""A legal file has at most some 50 x 100 x 10 values; aliases must not multiply them."""


class _Loader:
    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.nodes = 0


def _from_node(node: Any, loader: _Loader, path: str, parents: tuple[int, ...]) -> Located:
    import yaml

    line = node.start_mark.line + 1
    kind = _TAGS.get(node.tag, node.tag)
    loader.nodes += 1
    if loader.nodes > MAX_NODES:
        raise SpecError(
            f"more than {MAX_NODES} values (aliases repeated?)", path=path, line=line, field=None
        )
    if id(node) in parents:  # an alias of an enclosing node (`&a [*a]`): no end to it
        raise SpecError("an alias refers to itself", path=path, line=line, field=None)
    parents = (*parents, id(node))
    if isinstance(node, yaml.MappingNode):
        items: dict[str, Located] = {}
        for key_node, value_node in node.value:
            key = _from_node(key_node, loader, path, parents)
            if key.kind != "str":
                raise SpecError(
                    f"keys must be strings, got {key.raw!r}", path=path, line=key.line, field=None
                )
            if key.value in items:
                raise SpecError(
                    f"key {key.value!r} is repeated", path=path, line=key.line, field=None
                )
            items[key.value] = _from_node(value_node, loader, path, parents)
        return Located(items, "map", line)
    if isinstance(node, yaml.SequenceNode):
        return Located([_from_node(n, loader, path, parents) for n in node.value], "seq", line)
    if isinstance(node, yaml.ScalarNode):
        try:
            value = loader.loader.construct_object(node, deep=True)
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


_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_KIND_NAMES = {"bool": "a boolean", "int": "a number", "float": "a number", "null": "empty"}


def normalize_color(value: str) -> str:
    """``#ABC`` -> ``#aabbcc``; ``#AABBCC`` -> ``#aabbcc``."""
    digits = value[1:].lower()
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return "#" + digits


class Checker:
    """Schema checks over :class:`Located` values; every failure names file, line, field."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: Located | None, where: str | None, message: str) -> SpecError:
        return SpecError(message, path=self.path, line=node.line if node else None, field=where)

    def mapping(self, node: Located, where: str, allowed: tuple[str, ...]) -> dict[str, Located]:
        if node.kind != "map":
            raise self.fail(node, where or None, f"must be a mapping, got {self._what(node)}")
        unknown = [k for k in node.value if k not in allowed]
        if unknown:
            raise self.fail(
                node.value[unknown[0]],
                _join(where, unknown[0]),
                f"unknown key; expected one of {', '.join(allowed)}",
            )
        return dict(node.value)

    def seq(self, node: Located, where: str) -> list[Located]:
        if node.kind != "seq":
            raise self.fail(node, where, f"must be a list, got {self._what(node)}")
        return list(node.value)

    def text(self, node: Located, where: str) -> str:
        if node.kind != "str":
            raise self.fail(node, where, f"must be a string, got {self._what(node)}")
        value: str = node.value
        if not value.strip():
            raise self.fail(node, where, "must not be empty")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.fail(node, where, "is not valid Unicode text") from None
        return value

    def integer(self, node: Located, where: str) -> int:
        if node.kind != "int" or isinstance(node.value, bool) or node.value <= 0:
            raise self.fail(node, where, f"must be a positive whole number, got {node.raw!r}")
        value: int = node.value
        return value

    def boolean(self, node: Located, where: str) -> bool:
        if node.kind != "bool":
            raise self.fail(node, where, f"must be true or false, got {node.raw!r}")
        value: bool = node.value
        return value

    def color(self, node: Located, where: str) -> str:
        if node.kind == "null":
            raise self.fail(
                node,
                where,
                "is empty: an unquoted '#' starts a comment in YAML, so quote colors "
                "(color: '#98cbff')",
            )
        if node.kind != "str" or not _HEX.fullmatch(node.value):
            raise self.fail(node, where, f"must be a color like '#98cbff', got {node.raw!r}")
        return normalize_color(node.value)

    @staticmethod
    def _what(node: Located) -> str:
        if node.kind in ("bool", "int", "float") and node.raw is not None:
            hint = f"; quote it: '{node.raw}'" if node.kind != "null" else ""
            return f"{node.raw!r}, which YAML reads as {_KIND_NAMES[node.kind]}{hint}"
        if node.kind == "null":
            return "nothing (an empty value)"
        return {"map": "a mapping", "seq": "a list"}.get(node.kind, repr(node.raw))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
