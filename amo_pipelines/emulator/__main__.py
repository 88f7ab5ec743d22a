"""``python -m amo_pipelines.emulator``: serve an emulated account (or ``--accounts N`` of
them, one port each) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

from .config import EmulatorConfig
from .control import CODE_PATH, LOG_PATH, STATS_PATH
from .faults import FaultKind
from .fleet import EmulatorFleet, describe_account
from .server import Emulator

EPILOG = f"""\
accounts:
  --accounts N serves N independent accounts from this one process, each on its own port
  (--port P: P..P+N-1; --port 0: free ports), with its own limits, tokens and state; every
  other option applies to each. With N > 1, account i (1-based) has account id
  ACCOUNT_ID+i-1, subdomain SUBDOMAIN<i>, a seed derived from --seed and --admin-token/
  --user-token with "-<i>" appended; stdout shows "account <i>: <url>" lines, no tokens.
  --accounts-file PATH (any N) writes, once every account listens, a JSON list of
  {{"name", "base_url", "account_id", "subdomain", "admin_token", "user_token"}}, mode 0600.

emulator-only endpoints (on every account's port; no token, never logged, limited or faulted):
  GET {LOG_PATH}[?since=N]
      the request log from index N: {{"entries": [...], "next": <log length>}}; per entry
      index, method, path, query, status, outcome, arrived_at, finished_at (monotonic
      seconds), latency, processed_status, user_agent, peer (host:port), token_kind
      (admin/user/other/null); never the token or the body
  GET {STATS_PATH}
      the counters: requests, responses by status, rate_limited, blocks, faults, ...
  POST {CODE_PATH}
      a fresh single-use OAuth authorization code
"""


@frozen
class ServerOptions:
    """What the command line asks for."""

    config: EmulatorConfig
    codes: int = 1
    accounts: int = 1
    accounts_file: Path | None = None


def _rate(text: str) -> tuple[FaultKind, float]:
    kind, sep, prob = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KIND=PROBABILITY, got {text!r}")
    try:
        return FaultKind.parse(kind.strip()), float(prob)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _latency(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        return (float(low), float(high) if sep else float(low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or LOW:HIGH, got {text!r}") from None


def _limit(text: str) -> int | None:
    if text.lower() in ("off", "none", "0"):
        return None
    return int(text)


def _accounts(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> EmulatorConfig:
    """The server's config from the command line."""
    return parse_command_line(argv)[0]


def parse_command_line(argv: Sequence[str] | None = None) -> tuple[EmulatorConfig, int]:
    """The server's config and how many authorization codes to print at start."""
    options = parse_options(argv)
    return options.config, options.codes


def parse_options(argv: Sequence[str] | None = None) -> ServerOptions:
    """Everything the command line asks for."""
    parser = argparse.ArgumentParser(
        prog="python -m amo_pipelines.emulator",
        description="Serve an emulated amoCRM account (leads pipelines API v4).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=8080, help="0 picks a free port (one per account)"
    )
    parser.add_argument(
        "--accounts",
        type=_accounts,
        default=1,
        metavar="N",
        help="serve N independent accounts, one port each (see below)",
    )
    parser.add_argument(
        "--accounts-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="write every account's URL and tokens there as JSON (mode 0600)",
    )
    parser.add_argument("--account-id", type=int, default=12345678)
    parser.add_argument("--subdomain", default="example")
    parser.add_argument("--rps", type=_limit, default=7, help="per-token limit; 'off' disables")
    parser.add_argument("--account-rps", type=_limit, default=50, help="'off' disables")
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--block-after", type=_limit, default=10, help="'off' never blocks")
    parser.add_argument("--block-window", type=float, default=60.0)
    parser.add_argument("--html-429", action="store_true", help="answer 429 with HTML")
    parser.add_argument("--seed", type=int, default=None, help="makes faults reproducible")
    parser.add_argument(
        "--fault-rate",
        type=_rate,
        action="append",
        default=[],
        metavar="KIND=P",
        help="e.g. 500=0.05, reset=0.02, commit-then-drop=0.01 (repeatable)",
    )
    parser.add_argument(
        "--fault-commit",
        type=float,
        default=0.5,
        metavar="P",
        help="probability that a random 5xx or reset applies the write first (default 0.5)",
    )
    parser.add_argument("--latency", type=_latency, default=None, metavar="S|LOW:HIGH")
    parser.add_argument("--empty-account", action="store_true", help="no example statuses")
    parser.add_argument("--admin-token", default=None)
    parser.add_argument("--user-token", default=None)
    parser.add_argument(
        "--codes",
        type=_count,
        default=1,
        metavar="N",
        help="authorization codes to print at start with one account "
        "(more: POST /_emulator/oauth/code)",
    )
    args = parser.parse_args(argv)
    try:
        config = EmulatorConfig(
            host=args.host,
            port=args.port,
            account_id=args.account_id,
            subdomain=args.subdomain,
            token_rps=args.rps,
            account_rps=args.account_rps,
            window=args.window,
            block_after=args.block_after,
            block_window=args.block_window,
            html_429=args.html_429,
            seed=args.seed,
            fault_rates=dict(args.fault_rate),
            fault_commit=args.fault_commit,
            latency=args.latency,
            seed_account=not args.empty_account,
            admin_token=args.admin_token,
            user_token=args.user_token,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.accounts > 1 and args.port and args.port + args.accounts - 1 > 65535:
        parser.error(f"--port {args.port} leaves no room for {args.accounts} accounts")
    return ServerOptions(config, args.codes, args.accounts, args.accounts_file)


def write_accounts_file(path: Path, accounts: list[dict[str, Any]]) -> None:
    """Write ``accounts`` as JSON, mode 0600 (it holds tokens), all at once: a reader sees
    either no file or the whole list, never a half-written one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a leftover of a killed run: O_EXCL below must create it afresh
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(accounts, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(config: EmulatorConfig, codes: int = 1, accounts_file: Path | None = None) -> None:
    stop = _stop_event()
    async with Emulator(config) as emu:
        if accounts_file is not None:
            write_accounts_file(accounts_file, [describe_account(emu, 0)])
        print(f"amoCRM emulator listening on {emu.url}", flush=True)
        print(f"admin token: {emu.admin_token}", flush=True)
        print(f"user token: {emu.user_token}", flush=True)
        # A stand-in account's made-up credentials, printed so OAuth can be tried by hand.
        config = emu.config
        print(
            f"oauth client: id={config.oauth_client_id} secret={config.oauth_client_secret} "
            f"redirect_uri={config.oauth_redirect_uri}",
            flush=True,
        )
        for _ in range(codes):
            print(f"authorization code (single use): {emu.issue_code()}", flush=True)
        print(f"more codes: POST {emu.url}{CODE_PATH}", flush=True)
        settle_collector()
        await stop.wait()
    print("emulator stopped", flush=True)


async def serve_fleet(config: EmulatorConfig, count: int, accounts_file: Path | None) -> None:
    """Serve ``count`` accounts; stdout names their URLs and never their tokens."""
    stop = _stop_event()
    async with EmulatorFleet(count, config=config) as fleet:
        if accounts_file is not None:
            write_accounts_file(accounts_file, fleet.accounts_json())
        where = "not shown (--accounts-file)" if accounts_file is None else f"in {accounts_file}"
        print(f"amoCRM emulator serving {count} accounts; tokens {where}", flush=True)
        for i, emu in enumerate(fleet.accounts):
            print(f"account {i + 1}: {emu.url}", flush=True)
        settle_collector()
        await stop.wait()
    print("emulator stopped", flush=True)


def settle_collector() -> None:
    """Tune CPython's cyclic collector for a server whose heap is mostly its accounts.

    What the process holds once it listens (the modules, the accounts as seeded) is frozen
    out of every later collection, and the youngest generation is collected every 50,000
    new containers rather than 700: a copy's statuses POST makes a thousand of them, the
    account keeps most (no cycles among them) and the rest die by reference counting, so
    the frequent collections found nothing while promoting everything, and the full
    collections they brought about traversed every account the process serves. With 20
    full accounts that was a third of the CPU of such a POST. [choice]
    """
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    if options.accounts == 1:
        job = serve(options.config, options.codes, options.accounts_file)
    else:
        job = serve_fleet(options.config, options.accounts, options.accounts_file)
    # Signal handlers stop the server cleanly; KeyboardInterrupt covers platforms without them.
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(job)
    except OSError as exc:
        # A port taken or an accounts file that can not be written: one line, no traceback.
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
