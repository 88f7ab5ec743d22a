"""JSON encoding in one place: orjson.

orjson is a runtime dependency because it pays: parsing the emulator's pipeline (1.5 kB,
5 statuses) takes 13 us with ``json.loads`` and about 3 us with ``orjson.loads``, a tenth
of a whole SDK call, and the gap grows with the body (a 97-status list with descriptions
is ~50 kB). cattrs ships a converter preconfigured for it (``cattrs.preconf.orjson``),
which :mod:`amo_pipelines.model.converter` uses. orjson also writes UTF-8 directly, so Cyrillic
names are not escaped into six bytes per letter.
"""

from __future__ import annotations

from typing import Any

import orjson

loads = orjson.loads


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
