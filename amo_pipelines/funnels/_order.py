"""Order and color arithmetic for the planner: which entities must move, the sort values that
put them in place, and the nearest palette color.

Order is compared as order, never as numbers: the API renumbers a pipeline's regular
statuses 20, 30, 40, ... after every write (between incoming at 10 and won/lost at 10000 and
11000), and keeps pipeline sorts as given. The entities already in the wanted relative order
(the longest increasing subsequence of their current positions) stay; only the others are
sent a ``sort``, so a reordering costs as few PATCHes as possible.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence

from ..model.constants import StatusColor

PALETTE = tuple(c.value for c in StatusColor)
FIRST_STATUS_SORT = 20
STATUS_STEP = 10
MAX_SORT = 2**31 - 1


def longest_increasing(positions: Sequence[int | None]) -> set[int]:
    """Indices of ``positions`` (``None`` = new, never kept) forming a longest strictly
    increasing subsequence: the entities that need not move."""
    tails: list[int] = []  # smallest tail value of an increasing run of each length
    tail_index: list[int] = []
    parent: dict[int, int | None] = {}
    for i, pos in enumerate(positions):
        if pos is None:
            continue
        k = bisect.bisect_left(tails, pos)
        parent[i] = tail_index[k - 1] if k else None
        if k == len(tails):
            tails.append(pos)
            tail_index.append(i)
        else:
            tails[k] = pos
            tail_index[k] = i
    keep: set[int] = set()
    cursor = tail_index[-1] if tail_index else None
    while cursor is not None:
        keep.add(cursor)
        cursor = parent[cursor]
    return keep


def pipeline_sorts(current: Sequence[int | None], keep: set[int]) -> list[int] | None:
    """Sort values for every position of the wanted order: kept entities keep their current
    sort, the others get values strictly between their kept neighbours. ``None`` when some
    gap has no room (the caller then renumbers everything)."""
    result: list[int | None] = [current[i] if i in keep else None for i in range(len(current))]
    i = 0
    while i < len(result):
        if result[i] is not None:
            i += 1
            continue
        j = i
        while j < len(result) and result[j] is None:
            j += 1
        low = result[i - 1] if i > 0 else None
        high = result[j] if j < len(result) else None
        count = j - i
        if high is None:
            start = (low if low is not None else 0) + 10
            values = [start + 10 * n for n in range(count)]
        else:
            lo = (low + 1) if low is not None else 0
            room = high - lo  # the free values lo .. high - 1
            if room < count:
                return None
            if room < 2 * count:
                values = [lo + n for n in range(count)]
            else:  # spread out, leaving room for later insertions
                values = [lo + (n + 1) * room // (count + 1) for n in range(count)]
        if values and values[-1] > MAX_SORT:
            return None
        result[i:j] = values
        i = j
    return [v for v in result if v is not None]


class StatusOrder:
    """A pipeline's regular statuses as the API numbers them, simulated across writes.

    ``ids`` is the current order; every write renumbers 20, 30, ... A status sent with a sort
    strictly between two neighbours' lands between them, whatever the API does with ties.
    """

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids = list(ids)

    def sort_of(self, status_id: int) -> int:
        return FIRST_STATUS_SORT + STATUS_STEP * self.ids.index(status_id)

    def sort_after(self, anchor: int | None) -> int:
        """A sort that lands right after ``anchor`` (first when ``None``)."""
        if anchor is None:
            return FIRST_STATUS_SORT - STATUS_STEP // 2
        return self.sort_of(anchor) + STATUS_STEP // 2

    def move_after(self, status_id: int, anchor: int | None) -> int:
        """Record a move; returns the sort to send."""
        sort = self.sort_after(anchor)
        self.ids.remove(status_id)
        self.ids.insert(0 if anchor is None else self.ids.index(anchor) + 1, status_id)
        return sort

    def remove(self, status_id: int) -> None:
        self.ids.remove(status_id)

    def new_sorts(self, anchors: Sequence[int | None]) -> list[int]:
        """Sorts for new statuses created in one call, each after its anchor (the nearest
        existing status before it in the wanted order). Several after one anchor take
        increasing values while they fit below the next status, then the same value (the
        API keeps the input order of ties)."""
        out: list[int] = []
        runs: dict[int | None, int] = {}
        for anchor in anchors:
            n = runs.get(anchor, 0) + 1
            runs[anchor] = n
            base = FIRST_STATUS_SORT - STATUS_STEP if anchor is None else self.sort_of(anchor)
            out.append(base + min(n, STATUS_STEP - 1))
        return out


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _lab(color: str) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB color, for a perceptual distance (CIE76)."""

    def linear(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in _rgb(color))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


@functools.lru_cache(maxsize=1024)
def nearest_palette_color(color: str) -> str:
    """The palette color closest to ``color`` (``#rrggbb``) by CIE76 distance."""
    if color.lower() in PALETTE:
        return color.lower()
    target = _lab(color)
    return min(
        PALETTE, key=lambda p: sum((a - b) ** 2 for a, b in zip(_lab(p), target, strict=True))
    )
