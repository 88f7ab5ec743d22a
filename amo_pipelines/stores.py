"""The import path ``amo_pipelines.stores`` kept for code written against earlier READMEs; the
window stores live in :mod:`amo_pipelines.budget` and are exported from the package.

* :class:`FileWindowStore`: every process of one machine (the default).
* :class:`InMemoryWindowStore`: one event loop only.
* :class:`amo_pipelines.redis.RedisWindowStore` (the ``redis`` extra): several machines.
"""

from __future__ import annotations

from .budget.file import FileWindowStore, default_directory, default_store
from .budget.windows import InMemoryWindowStore

__all__ = ["FileWindowStore", "InMemoryWindowStore", "default_directory", "default_store"]
