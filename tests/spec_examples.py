"""Every JSON example of the three API pages in ``shared/spec``, with where it came from.

The markdown page keeps its examples in fenced ``json`` blocks; the two plain-text pages
have them unfenced. On every page an example starts on a line beginning with ``{`` or
``[`` and is read with :meth:`json.JSONDecoder.raw_decode`, so nothing is hand-copied.
Each example is tagged with the endpoint section it sits under and whether the page shows
it as a request or a response.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from amo_pipelines import DescriptionInput, StatusUpdate

SPEC_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "spec"
PAGES = ("leads-pipelines.ru.md", "leads-pipelines.ru.txt", "leads-pipelines.en.txt")

PIPELINES = "/api/v4/leads/pipelines"
PIPELINE = "/api/v4/leads/pipelines/{id}"
STATUSES = "/api/v4/leads/pipelines/{pipeline_id}/statuses"
STATUS = "/api/v4/leads/pipelines/{pipeline_id}/statuses/{id}"

# The model each endpoint's response example must structure into.
RESPONSE_MODEL = {
    ("GET", PIPELINES): "PipelineCollection",
    ("POST", PIPELINES): "PipelineCollection",
    ("GET", PIPELINE): "Pipeline",
    ("PATCH", PIPELINE): "Pipeline",
    ("GET", STATUSES): "StatusCollection",
    ("POST", STATUSES): "StatusCollection",
    ("GET", STATUS): "Status",
    ("PATCH", STATUS): "Status",
}
REQUEST_ENDPOINTS = {
    ("POST", PIPELINES),
    ("PATCH", PIPELINE),
    ("POST", STATUSES),
    ("PATCH", STATUS),
}

# The old plain-text Russian page shows the pipeline list again under "list statuses".
KNOWN_MISPLACED = {("leads-pipelines.ru.txt", "GET", STATUSES): "PipelineCollection"}

_ENDPOINT = re.compile(r"^_?(GET|POST|PATCH|DELETE) (/api/v4/[^\s_]\S*?)_?\s*$")
_REQUEST_LABEL = re.compile(r"Пример запроса|Request body example")
_RESPONSE_LABEL = re.compile(r"Пример ответа|Response example")
_START = re.compile(r"^[\[{]", re.MULTILINE)


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    method: str
    endpoint: str
    kind: str  # "request" or "response"
    data: Any

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}:{self.kind}:{self.method} {self.endpoint}"

    @property
    def model_name(self) -> str:
        """The model this response example is, going by its section of the page."""
        misplaced = KNOWN_MISPLACED.get((self.page, self.method, self.endpoint))
        return misplaced or RESPONSE_MODEL[(self.method, self.endpoint)]


def _label_before(lines: list[str], index: int) -> tuple[str, str, str]:
    """(kind, method, endpoint) from the nearest label and endpoint line above ``index``."""
    kind = method = endpoint = ""
    for line in reversed(lines[:index]):
        if not kind and _REQUEST_LABEL.search(line):
            kind = "request"
        elif not kind and _RESPONSE_LABEL.search(line):
            kind = "response"
        match = _ENDPOINT.match(line.strip())
        if match:
            method, endpoint = match.group(1), match.group(2).replace("\\", "")
            break
    if not (kind and method):
        raise AssertionError(f"example at line {index + 1} has no label or endpoint above it")
    return kind, method, endpoint


def read_page(name: str) -> list[Example]:
    text = (SPEC_DIR / name).read_text(encoding="utf-8")
    lines = text.splitlines()
    decoder = json.JSONDecoder()
    examples: list[Example] = []
    end = 0
    for match in _START.finditer(text):
        if match.start() < end:
            continue  # a line inside the example just read
        data, end = decoder.raw_decode(text, match.start())
        index = text.count("\n", 0, match.start())
        kind, method, endpoint = _label_before(lines, index)
        examples.append(Example(name, index + 1, method, endpoint, kind, data))
    return examples


@cache
def all_examples() -> tuple[Example, ...]:
    return tuple(example for page in PAGES for example in read_page(page))


def responses() -> list[Example]:
    return [e for e in all_examples() if e.kind == "response"]


def requests() -> list[Example]:
    return [e for e in all_examples() if e.kind == "request"]


def find(page: str, kind: str, method: str, endpoint: str) -> Any:
    """The one example of that kind in that endpoint's section of ``page``."""
    found = [
        e
        for e in all_examples()
        if (e.page, e.kind, e.method, e.endpoint) == (page, kind, method, endpoint)
    ]
    assert len(found) == 1, f"{len(found)} {kind} examples for {method} {endpoint} in {page}"
    return found[0].data


# --- documented-shape responses for mocked servers --------------------------------------


def status_json(**fields: Any) -> dict[str, Any]:
    """A status as the API returns it (the Russian page's GET status example), changed."""
    data = copy.deepcopy(find(PAGES[0], "response", "GET", STATUS))
    del data["descriptions"]
    data.update(fields)
    return data


def pipeline_json(**fields: Any) -> dict[str, Any]:
    """A pipeline as the API returns it (the Russian page's GET pipeline example), changed."""
    data = copy.deepcopy(find(PAGES[0], "response", "GET", PIPELINE))
    data.update(fields)
    return data


def pipelines_json(*pipelines: dict[str, Any]) -> dict[str, Any]:
    return {"_total_items": len(pipelines), "_embedded": {"pipelines": list(pipelines)}}


def statuses_json(*statuses: dict[str, Any]) -> dict[str, Any]:
    return {"_total_items": len(statuses), "_embedded": {"statuses": list(statuses)}}


def status_update_example() -> StatusUpdate:
    """The Russian page's status PATCH example (edit, create and delete descriptions) as
    the SDK's input."""
    return StatusUpdate(
        name="Новое название для статуса",
        color="#c1e0ff",
        descriptions=[
            DescriptionInput.create(
                "newbie", 'Описание статуса "Новое название для статуса" для новичка'
            ),
            DescriptionInput.edit(
                497,
                "candidate",
                'Новое описание статуса "Новое название для статуса" для кандидата',
            ),
            DescriptionInput.delete(499, "master"),
        ],
    )
