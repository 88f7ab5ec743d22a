"""A large answer is parsed with CPython's cyclic garbage collector paused.

Parsing one 97-status answer with descriptions (about 90 kB) allocates a few thousand
containers: orjson's dicts and lists, then the models. The collector runs after every 700
net allocations, so it runs several times in the middle of one parse. It finds nothing to
free (the whole tree is alive until the models are built), but it promotes that tree to the
older generations, and once enough has been promoted it runs a full collection of
everything the process holds. In benchmark 6 (a copy to 20 accounts, ~1,000 such answers
in 8 s) that was 10-11 full collections of 50-90 ms each, all of them finding nothing, plus
about 300 ms of younger ones: a quarter of the client's CPU, paid in pauses that delay
every request due at the time. With the parse paused, the tree dies by reference counting
before the collector looks (the models that remain are counted as usual) and the same copy
runs 6 full collections.

The switch is process-wide, so the pause is kept narrow:

* only for bodies of :data:`PAUSE_ABOVE` bytes or more: smaller ones do not reach a
  collection anyway, and the hot path of small answers pays one comparison;
* never when the application has switched the collector off itself (it stays off);
* synchronous from ``disable`` to ``enable`` (no ``await``), so no other coroutine of the
  event loop runs meanwhile, and re-enabled in ``finally`` whatever the parse raised.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

PAUSE_ABOVE = 32 * 1024
"""Bytes of answer from which the parse runs with the collector paused."""


def parse_paused(parse: Callable[[], T]) -> T:
    """``parse()`` with the cyclic collector paused, unless the application paused it."""
    if not gc.isenabled():
        return parse()
    gc.disable()
    try:
        return parse()
    finally:
        gc.enable()
