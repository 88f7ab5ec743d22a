"""JSON encoding in one place, so the codec can change without touching callers."""

from __future__ import annotations

import json
from typing import Any

loads = json.loads


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
