"""The account a new emulator starts with: the main pipeline of the spec's examples.

The two regular statuses keep the examples' colors (``#99ccff``, ``#ffcc66``), which are
outside the palette a write accepts: an SDK must read colors it could not send.
"""

from __future__ import annotations

from .state import AccountState, Description, Pipeline, Status


def seed_account(state: AccountState, *, like_spec: bool) -> None:
    """Create the account's main pipeline (see ``EmulatorConfig.seed_account``)."""
    pipeline = Pipeline(id=3177727, name="Воронка", sort=1, is_main=True, is_unsorted_on=True)
    state.pipelines[pipeline.id] = pipeline
    state.add_system_statuses(pipeline, incoming_id=32392156)
    if not like_spec:
        return
    first = Status(32392159, pipeline.id, "Первичный контакт", 20, "#99ccff")
    second = Status(32392165, pipeline.id, "Принимают решение", 30, "#ffcc66")
    pipeline.statuses[first.id] = first
    pipeline.statuses[second.id] = second
    stamp = "2023-05-05 09:38:00"
    for desc_id, level, who, editor in (
        (489, "newbie", 12345, None),
        (491, "candidate", 0, 12345),
        (493, "master", 123456, 123457),
    ):
        label = {"newbie": "новичка", "candidate": "кандидата", "master": "мастера"}[level]
        first.descriptions[level] = Description(
            id=desc_id,
            pipeline_id=pipeline.id,
            status_id=first.id,
            level=level,
            text=f'Описание статуса "Первичный контакт" для {label}',
            created_at=stamp,
            created_by=who,
            updated_at=stamp,
            updated_by=editor,
        )
