"""Command line: ``amo-pipelines`` (or ``python -m amo_pipelines``): export, plan, apply,
copy and demo; see :mod:`amo_pipelines.cli`."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
