"""Every JSON example of the three API pages, with where it came from.

The examples live in one fixture, ``fixtures/spec_examples.json``, extracted from the
pages by ``fixtures/extract_spec_examples.py`` (nothing hand-copied); the suite reads
only the fixture, so it runs in a clone with nothing beside it. Each example is tagged
with the endpoint section it sits under and whether the page shows it as a request or a
response.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from amo_pipelines import DescriptionInput, StatusUpdate
from support.constants import PIPELINES

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "spec_examples.json"
PAGES = ("leads-pipelines.ru.md", "leads-pipelines.ru.txt", "leads-pipelines.en.txt")

# The endpoints as the pages write them.
PIPELINE = PIPELINES + "/{id}"
STATUSES = PIPELINES + "/{pipeline_id}/statuses"
STATUS = STATUSES + "/{id}"

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


@cache
def _load() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def json_fences(page: str) -> int:
    """How many fenced ``json`` blocks ``page`` had when the fixture was extracted."""
    return int(_load()["pages"][page]["json_fences"])


def palette() -> list[str]:
    """The status colors the Russian page documents, in its order."""
    return list(_load()["palette"])


@cache
def all_examples() -> tuple[Example, ...]:
    return tuple(Example(**example) for example in _load()["examples"])


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
