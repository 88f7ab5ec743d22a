"""Saved plans (``plan --out plan.json``): the file's content, the target account and a
fingerprint of what the account held, so that ``apply plan.json`` refuses a stale plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attrs import frozen

from .errors import SpecError, StalePlanError
from .plan import Plan
from .spec import FunnelsSpec, spec_from_data, spec_to_data

KIND = "amo-pipelines/plan"


@frozen(kw_only=True)
class SavedPlan:
    spec: FunnelsSpec
    host: str
    account_id: int | None
    fingerprint: str
    prune: bool

    def check(self, plan: Plan) -> None:
        """Raise :class:`StalePlanError` unless ``plan`` (made now) was made against the
        same account in the same state."""
        if plan.host != self.host or plan.account_id != self.account_id:
            raise StalePlanError(
                f"the plan was made for {self.host}, not {plan.host}; make a new plan"
            )
        if plan.fingerprint != self.fingerprint:
            raise StalePlanError(
                f"{plan.host} has changed since the plan was made; make a new plan"
            )


def plan_to_data(plan: Plan) -> dict[str, Any]:
    return {
        "kind": KIND,
        "version": 1,
        "host": plan.host,
        "account_id": plan.account_id,
        "fingerprint": plan.fingerprint,
        "prune": plan.prune,
        "summary": plan.summary(),
        "changes": [{"op": line.op, "text": line.text} for line in plan.lines],
        "writes": plan.writes,
        "spec": spec_to_data(plan.spec),
    }


def save_plan(plan: Plan, path: str | Path) -> None:
    Path(path).write_text(
        json.dumps(plan_to_data(plan), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


def is_saved_plan(data: object) -> bool:
    return isinstance(data, dict) and data.get("kind") == KIND


def saved_plan_from_data(data: dict[str, Any], path: str) -> SavedPlan:
    def need(key: str, kind: type | tuple[type, ...]) -> Any:
        value = data.get(key)
        if not isinstance(value, kind):
            raise SpecError("missing or wrong type", path=path, line=None, field=key)
        return value

    account_id = data.get("account_id")
    if account_id is not None and not isinstance(account_id, int):
        raise SpecError("must be a number", path=path, line=None, field="account_id")
    return SavedPlan(
        spec=spec_from_data(need("spec", dict), path=f"{path} (spec)"),
        host=need("host", str),
        account_id=account_id,
        fingerprint=need("fingerprint", str),
        prune=need("prune", bool),
    )


def load_source(path: str | Path) -> FunnelsSpec | SavedPlan:
    """A funnels file or a saved plan, whichever ``path`` holds."""
    from .spec import load_spec

    name = str(path)
    if name.endswith(".json"):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if is_saved_plan(data):
            assert isinstance(data, dict)
            return saved_plan_from_data(data, name)
    return load_spec(path)
