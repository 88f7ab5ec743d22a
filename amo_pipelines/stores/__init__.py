"""Window stores shared between processes (see :mod:`amo_pipelines.windows`).

* :class:`FileWindowStore`: every process of one machine, through small files under a
  per-user folder and POSIX file locks. What a client uses when given nothing else.
* :class:`~amo_pipelines.windows.InMemoryWindowStore`: one event loop only.
* :class:`amo_pipelines.redis.RedisWindowStore` (the ``redis`` extra): several machines.
"""

from __future__ import annotations

from ..windows import InMemoryWindowStore
from .file import FileWindowStore, default_directory, default_store

__all__ = ["FileWindowStore", "InMemoryWindowStore", "default_directory", "default_store"]
