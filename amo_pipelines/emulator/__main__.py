"""``python -m amo_pipelines.emulator``: serve an emulated account until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from .config import EmulatorConfig
from .control import CODE_PATH
from .faults import FaultKind
from .server import Emulator


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
    parser = argparse.ArgumentParser(
        prog="python -m amo_pipelines.emulator",
        description="Serve an emulated amoCRM account (leads pipelines API v4).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
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
        help="authorization codes to print at start (more: POST /_emulator/oauth/code)",
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
    return config, args.codes


async def serve(config: EmulatorConfig, codes: int = 1) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with Emulator(config) as emu:
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
        await stop.wait()
    print("emulator stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    config, codes = parse_command_line(argv)
    # Signal handlers stop the server cleanly; KeyboardInterrupt covers platforms without them.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, codes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
