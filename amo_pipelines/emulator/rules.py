"""The numbers, names and choices the spec fixes for pipelines and statuses (plus the
emulator's own documented choices, marked as such)."""

from __future__ import annotations

from attrs import frozen

# --- system statuses --------------------------------------------------------------------------

WON_STATUS_ID = 142
LOST_STATUS_ID = 143
CLOSED_STATUS_IDS = (WON_STATUS_ID, LOST_STATUS_ID)
SYSTEM_STATUSES = {
    WON_STATUS_ID: ("Успешно реализовано", 10000, "#CCFF66"),
    LOST_STATUS_ID: ("Закрыто и не реализовано", 11000, "#D5D8DB"),
}
"""id -> (name, sort, color) of the closed statuses every pipeline has."""
INCOMING_NAME = "Неразобранное"
INCOMING_COLOR = "#c1c1c1"
INCOMING_SORT = 10
TYPE_REGULAR = 0
TYPE_INCOMING = 1

# --- sort renumbering -------------------------------------------------------------------------

FIRST_REGULAR_SORT = 20
SORT_STEP = 10

# --- limits -----------------------------------------------------------------------------------

MAX_PIPELINES = 50
MAX_STATUSES = 100
"""Per pipeline, system statuses included."""
MAX_BATCH = 250
"""Items per POST ("Limit 250 per page")."""
MAX_DESCRIPTIONS = 3
MAX_DESCRIPTION_LENGTH = 1000
"""In code points."""
MAX_NAME_LENGTH = 255
"""Emulator's choice (``EmulatorConfig.max_name_length``): names longer than this are refused."""
MAX_SORT = 2**31 - 1
"""Emulator's choice (``EmulatorConfig.sort_range``): sort must be within 0..MAX_SORT."""


@frozen
class FieldRules:
    """The field limits the pages never state, as the config sets them (None: no limit)."""

    max_name_length: int | None = MAX_NAME_LENGTH
    sort_range: tuple[int, int] | None = (0, MAX_SORT)


# --- choices ----------------------------------------------------------------------------------

LEVELS = ("newbie", "candidate", "master")
PALETTE = (
    "#fffeb2",
    "#fffd7f",
    "#fff000",
    "#ffeab2",
    "#ffdc7f",
    "#ffce5a",
    "#ffdbdb",
    "#ffc8c8",
    "#ff8f92",
    "#d6eaff",
    "#c1e0ff",
    "#98cbff",
    "#ebffb1",
    "#deff81",
    "#87f2c0",
    "#f9deff",
    "#f3beff",
    "#ccc8f9",
    "#eb93ff",
    "#f2f3f4",
    "#e6e8ea",
)
DEFAULT_COLOR = PALETTE[0]
"""Emulator choice: the color of a status created without one."""
API_USER_ID = 0
"""created_by / updated_by of what the API creates or edits."""

# --- editable fields --------------------------------------------------------------------------

PIPELINE_FIELDS = ("name", "sort", "is_main", "is_unsorted_on")
STATUS_FIELDS = ("name", "sort", "color", "descriptions")
