"""A fingerprint of what an account held when a plan was made, to refuse a stale plan."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .export import Snapshot


def fingerprint(snapshot: Snapshot) -> str:
    """SHA-256 over everything the plan was computed from: every pipeline's fields and
    statuses, and the descriptions that were read."""
    data: list[Any] = []
    for p in snapshot.pipelines:
        statuses = [
            [
                s.id,
                s.name,
                s.sort,
                s.color.lower(),
                int(s.type),
                s.is_editable,
                None
                if s.descriptions is None
                else sorted([d.id, str(d.level), d.description] for d in s.descriptions),
            ]
            for s in sorted(snapshot.statuses(p), key=lambda s: s.id)
        ]
        data.append([p.id, p.name, p.sort, p.is_main, p.is_unsorted_on, statuses])
    text = json.dumps([snapshot.host, data], ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
