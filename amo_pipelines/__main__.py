"""Command line: ``amo-pipelines demo`` (or ``python -m amo_pipelines demo``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import demo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amo-pipelines")
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_arguments(
        commands.add_parser(
            "demo",
            help="run the demo job against the embedded emulator (or --base-url/--token)",
            description=demo.__doc__,
        )
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo.main(sys.argv[2:] if argv is None else list(argv)[1:])
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
