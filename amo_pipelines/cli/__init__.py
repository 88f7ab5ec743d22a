"""The ``amo-pipelines`` command: ``export``, ``plan``, ``apply``, ``copy`` and ``demo``.

argparse (standard library) rather than click or typer: no dependency for the core install.
Human text and progress go to stderr, machine output (``--json``, an export) to stdout.
Errors are one line (``amo-pipelines: error: ...``) and exit 1; with ``plan
--detailed-exitcode``, 0 means no changes, 2 changes and 1 an error, usage errors included.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from .. import __version__
from ..errors import AmoError
from .accounts import UsageError

PROG = "amo-pipelines"
ACCOUNT_HELP = (
    "an account: 'emulator' (a fresh embedded emulator with the API pages' example account), "
    "'emulator:empty', or a base URL such as https://example.amocrm.ru (token in "
    "AMO_TOKEN_<SUBDOMAIN> or AMO_TOKEN)"
)


class Parser(argparse.ArgumentParser):
    """Usage errors exit 2 as usual, but 1 when ``--detailed-exitcode`` reserves 2 for
    "changes"."""

    detailed = False

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1 if Parser.detailed else 2, f"{self.prog}: error: {message}\n")


def _target(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("account")
    group.add_argument(
        "--emulator",
        action="store_true",
        help="use a fresh embedded emulator (the default without --base-url)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="the account, e.g. https://example.amocrm.ru; the token comes from AMO_TOKEN",
    )
    group.add_argument(
        "--token-file",
        metavar="PATH",
        help="an OAuth token file (FileTokenStore) instead of AMO_TOKEN; refreshed when "
        "AMO_CLIENT_ID, AMO_CLIENT_SECRET and AMO_REDIRECT_URI are set",
    )


def _lock(p: argparse.ArgumentParser, *, fleet: bool = False) -> None:
    text = "wait this long for another apply to the same account to finish (default: 0)"
    if fleet:
        text += (
            "; with --via taskiq each task waits this long on its worker (default: the "
            "workers' AMO_FLEET_LOCK_TIMEOUT, 600 unless set)"
        )
    # None = not given: --via taskiq then leaves the wait to the workers
    p.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS", help=text)


def build_parser() -> argparse.ArgumentParser:
    from .. import demo

    parser = Parser(prog=PROG, description="Pipelines as code for amoCRM / Kommo accounts.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("export", help="write an account's funnels to YAML or JSON")
    _target(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--format", choices=("yaml", "json"), default="yaml", help="file format (default: yaml)"
    )
    p.add_argument("--json", action="store_true", help="the same as --format json")

    p = commands.add_parser("plan", help="show what apply would change")
    p.add_argument("file", metavar="FILE", help="a funnels file (YAML or JSON)")
    _target(p)
    p.add_argument("--prune", action="store_true", help="also plan deleting what FILE lacks")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there is nothing to change, 2 when there is, 1 on any error",
    )
    p.add_argument("--out", metavar="PLAN.json", help="save the plan for 'apply PLAN.json'")
    p.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")

    p = commands.add_parser("apply", help="make an account match a funnels file or saved plan")
    p.add_argument("file", metavar="FILE|PLAN", help="a funnels file, or a plan saved by --out")
    _target(p)
    p.add_argument(
        "--prune",
        action="store_true",
        help="delete pipelines and statuses FILE lacks (leads of a deleted status move to "
        "its pipeline's first stage)",
    )
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    _lock(p)

    p = commands.add_parser("copy", help="copy one account's funnels to other accounts")
    p.add_argument("--from", dest="source", metavar="ACCOUNT", help=ACCOUNT_HELP)
    p.add_argument("--to", action="append", metavar="ACCOUNT", help="a target account (repeatable)")
    p.add_argument(
        "--to-file",
        metavar="FILE",
        help="a YAML/JSON list of targets: URLs, or {base_url, token_env | token_file, name}",
    )
    p.add_argument("--token-file", metavar="PATH", help="an OAuth token file for the source")
    p.add_argument(
        "--id-map",
        default="id-map.json",
        metavar="FILE",
        help="where to write the source -> target id map (default: id-map.json)",
    )
    p.add_argument("--prune", action="store_true", help="delete what the source lacks")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read the source and every target and print each target's plan; write nothing "
        "(no confirmation asked, no id map written)",
    )
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    _lock(p, fleet=True)
    fleet = p.add_argument_group("fleet (--via taskiq)")
    fleet.add_argument(
        "--via",
        choices=("local", "taskiq"),
        default="local",
        help="local: copy in this process (default); taskiq: one task per target on taskiq "
        "workers (taskiq worker amo_pipelines.fleet.worker:make_broker), progress shown here",
    )
    fleet.add_argument(
        "--broker",
        metavar="URL",
        help="the broker's Redis, e.g. redis://localhost:6379/0 (default: $AMO_FLEET_BROKER)",
    )
    fleet.add_argument("--job", metavar="NAME", help="the job's name (default: copy-<time>-<id>)")
    fleet.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop watching after this long (the workers go on; exit 1)",
    )

    demo.add_arguments(
        commands.add_parser(
            "demo", help="run the demo job (embedded emulator by default)", description=demo.__doc__
        )
    )
    return parser


def _handler(command: str) -> Callable[[argparse.Namespace], Coroutine[Any, Any, int]]:
    from . import commands

    return {
        "export": commands.cmd_export,
        "plan": commands.cmd_plan,
        "apply": commands.cmd_apply,
        "copy": commands.cmd_copy,
    }[command]


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    Parser.detailed = "--detailed-exitcode" in args_list
    args = build_parser().parse_args(args_list)
    if args.command == "demo":
        from .. import demo

        return demo.run(args)
    if getattr(args, "emulator", False) and getattr(args, "base_url", None):
        print(f"{PROG}: error: --emulator and --base-url exclude each other", file=sys.stderr)
        return 1 if Parser.detailed else 2
    try:
        return asyncio.run(_handler(args.command)(args))
    except (AmoError, UsageError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
