"""The ``export``, ``plan``, ``apply`` and ``copy`` commands over :mod:`amo_pipelines.funnels`."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..funnels import (
    ApplyError,
    CopyResult,
    CopyTarget,
    FunnelsSpec,
    Plan,
    SavedPlan,
    apply,
    copy_funnels,
    dumps_spec,
    export,
    load_source,
    load_spec,
    make_plan,
    save_plan,
)
from ..funnels.export import account_host
from ..funnels.saved import plan_to_data
from .accounts import Account, UsageError, account_from_args, load_targets, open_account
from .output import Reporter, confirm

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _label(args: argparse.Namespace) -> Account:
    return account_from_args(args.base_url, args.token_file)


def lock_timeout_of(args: argparse.Namespace) -> float | None:
    """``--lock-timeout`` checked before anything is read or sent; None when not given."""
    value: float | None = args.lock_timeout
    if value is not None and not 0 <= value < math.inf:  # nan fails every comparison
        raise UsageError(f"--lock-timeout must be a finite number of seconds >= 0, got {value}")
    return value


def _write(text: str, path: str | None) -> None:
    if path is None or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(path).write_text(text, encoding="utf-8")


async def cmd_export(args: argparse.Namespace) -> int:
    fmt = "json" if args.json else args.format
    if fmt == "yaml":
        dumps_spec(FunnelsSpec(pipelines=()), fmt)  # no PyYAML: say so before any request
    with Reporter() as report:
        async with open_account(_label(args)) as amo:
            progress = report.progress(account_host(amo))
            progress.note("reading pipelines, statuses and descriptions")
            spec = await export(amo, progress=progress)
    text = dumps_spec(spec, fmt)
    if fmt == "yaml" and spec.source is not None:
        header = (
            f"# amo-pipelines export of {spec.source.host} (account {spec.source.account_id}) "
            f"at {spec.source.exported_at}\n"
        )
        text = header + text
    _write(text, args.output)
    count = sum(len(p.statuses) for p in spec.pipelines)
    report.say(f"exported {len(spec.pipelines)} pipelines, {count} statuses")
    return EXIT_OK


def _plan_json(plan: Plan) -> dict[str, Any]:
    data = plan_to_data(plan)
    data.pop("spec")
    data["warnings"] = plan.warnings
    return data


async def cmd_plan(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    with Reporter(quiet=args.json) as report:
        async with open_account(_label(args)) as amo:
            plan = await make_plan(
                amo, spec, prune=args.prune, progress=report.progress(account_host(amo))
            )
    if args.out:
        save_plan(plan, args.out)
    if args.json:
        _write(json.dumps(_plan_json(plan), ensure_ascii=False, indent=2) + "\n", None)
    else:
        report.say(plan.render())
        if args.out:
            report.say(f"plan saved to {args.out}; apply it with: amo-pipelines apply {args.out}")
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


async def cmd_apply(args: argparse.Namespace) -> int:
    lock_timeout = lock_timeout_of(args) or 0.0
    source = load_source(args.file)
    if isinstance(source, SavedPlan) and args.prune and not source.prune:
        raise UsageError("--prune can not be added to a saved plan: make the plan with --prune")
    declined = False
    with Reporter(quiet=args.json) as report:

        def ask(plan: Plan) -> bool:
            nonlocal declined
            if not args.json:
                report.say(plan.render())
            if plan.prune and any(s.statuses.deletes for s in plan.steps):
                report.say("warning: leads of a deleted status move to its pipeline's first stage")
            if args.yes:
                return True
            if confirm(f"Apply these changes to {plan.host}?"):
                return True
            declined = True
            return False

        async with open_account(_label(args)) as amo:
            try:
                result = await apply(
                    amo,
                    source,
                    prune=args.prune,
                    confirm=ask,
                    lock_timeout=lock_timeout,
                    progress=report.progress(account_host(amo)),
                )
            except ApplyError as e:
                for failure in e.failures:
                    report.say(f"failed: {failure}")
                raise
        if declined:
            report.say(
                "not applied: confirm on a terminal or pass --yes"
                if not sys.stdin.isatty()
                else "not applied"
            )
            return EXIT_ERROR
        plan = result.plan
        if not args.json:
            if plan.has_changes:
                report.say(f"applied: {plan.writes} write requests to {plan.host}")
            else:
                report.say(plan.render())
    if args.json:
        data = _plan_json(plan)
        data["applied"] = result.applied
        _write(json.dumps(data, ensure_ascii=False, indent=2) + "\n", None)
    return EXIT_OK


async def cmd_copy(args: argparse.Namespace) -> int:
    lock_timeout_of(args)
    targets = [Account(t) for t in args.to or []]
    if args.to_file:
        targets += load_targets(args.to_file)
    if not targets:
        raise UsageError("give at least one --to ACCOUNT or --to-file FILE")
    source = (
        Account(args.source, token_file=args.token_file) if args.source else Account("emulator")
    )
    if args.dry_run:
        if args.via != "local":
            raise UsageError("--dry-run plans in this process: it does not go with --via taskiq")
        return await _copy_dry_run(args, source, targets)
    if not args.yes and not confirm(
        f"Copy the funnels of {source.spec} to {len(targets)} accounts "
        f"({'deleting' if args.prune else 'keeping'} what the source lacks)?"
    ):
        print("not copied: confirm on a terminal or pass --yes", file=sys.stderr)
        return EXIT_ERROR
    if args.via == "taskiq":
        from .fleet import copy_via_taskiq

        code, summary = await copy_via_taskiq(args, source, targets)
        if args.json:
            _write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", None)
        return code
    if args.broker or args.job or args.timeout is not None:
        raise UsageError("--broker, --job and --timeout go with --via taskiq")
    with Reporter(quiet=args.json) as report:
        result = await _copy_local(args, source, targets, report, dry_run=False)
        id_map = result.id_map()
        _write(json.dumps(id_map, ensure_ascii=False, indent=2) + "\n", args.id_map)
        lines = []
        for t in result.targets:
            state = f"failed: {t.error}" if t.error else f"{t.writes} write requests"
            lines.append({"target": t.target, "writes": t.writes, "error": str(t.error or "")})
            if not args.json:
                report.say(f"{t.target}: {state}")
        if not args.json:
            report.say(f"id map written to {args.id_map}")
    if args.json:
        summary = {"targets": lines, "id_map": id_map, "id_map_file": args.id_map}
        _write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", None)
    return EXIT_ERROR if result.failed else EXIT_OK


async def _copy_local(
    args: argparse.Namespace,
    source: Account,
    targets: list[Account],
    report: Reporter,
    *,
    dry_run: bool,
) -> CopyResult:
    async with contextlib.AsyncExitStack() as stack:
        src = await stack.enter_async_context(open_account(source))
        clients = [await stack.enter_async_context(open_account(t)) for t in targets]
        return await copy_funnels(
            src,
            [CopyTarget(c) for c in clients],
            prune=args.prune,
            lock_timeout=lock_timeout_of(args) or 0.0,  # not given: do not wait, as always
            progress=report.progress,
            dry_run=dry_run,
        )


async def _copy_dry_run(args: argparse.Namespace, source: Account, targets: list[Account]) -> int:
    with Reporter(quiet=args.json) as report:
        result = await _copy_local(args, source, targets, report, dry_run=True)
        plans = []
        for t in result.targets:
            if t.plan is None:
                plans.append({"target": t.target, "error": str(t.error or "")})
                if not args.json:
                    report.say(f"{t.target}: failed: {t.error}")
                continue
            plans.append({"target": t.target, **_plan_json(t.plan)})
            if not args.json:
                report.say(t.plan.render())
        if not args.json:
            report.say("dry run: nothing was written")
    if args.json:
        _write(
            json.dumps({"dry_run": True, "targets": plans}, ensure_ascii=False, indent=2) + "\n",
            None,
        )
    return EXIT_ERROR if result.failed else EXIT_OK


__all__ = ["cmd_apply", "cmd_copy", "cmd_export", "cmd_plan"]
