"""Enumerations and limits that the amoCRM API documents for pipelines and statuses."""

from __future__ import annotations

from enum import Enum, IntEnum

WON_STATUS_ID = 142
"""The "closed - won" system status; the same id in every pipeline."""
LOST_STATUS_ID = 143
"""The "closed - lost" system status; the same id in every pipeline."""
SYSTEM_STATUS_IDS = frozenset({WON_STATUS_ID, LOST_STATUS_ID})

MAX_PIPELINES_PER_ACCOUNT = 50
MAX_STATUSES_PER_PIPELINE = 100
"""System statuses included: incoming leads, won and lost."""
SYSTEM_STATUSES_PER_PIPELINE = 3
MAX_CUSTOM_STATUSES_PER_PIPELINE = MAX_STATUSES_PER_PIPELINE - SYSTEM_STATUSES_PER_PIPELINE
MAX_ITEMS_PER_REQUEST = 250
"""More entities than this in one add request answers 422 "Limit 250 per page"."""
RECOMMENDED_BATCH_SIZE = 50
MAX_DESCRIPTIONS_PER_STATUS = 3
MAX_DESCRIPTION_LENGTH = 1000


class StatusType(IntEnum):
    REGULAR = 0
    INCOMING = 1
    """The "incoming leads" (unsorted) status every pipeline has."""


class DescriptionLevel(str, Enum):
    """Which users see a status description."""

    NEWBIE = "newbie"
    CANDIDATE = "candidate"
    MASTER = "master"

    def __str__(self) -> str:
        return self.value


class StatusColor(str, Enum):
    """The 21 colors a status may be given. System statuses report other colors."""

    LIGHT_YELLOW = "#fffeb2"
    YELLOW = "#fffd7f"
    BRIGHT_YELLOW = "#fff000"
    LIGHT_ORANGE = "#ffeab2"
    ORANGE = "#ffdc7f"
    DARK_ORANGE = "#ffce5a"
    LIGHT_RED = "#ffdbdb"
    PINK = "#ffc8c8"
    RED = "#ff8f92"
    LIGHT_BLUE = "#d6eaff"
    BLUE = "#c1e0ff"
    DARK_BLUE = "#98cbff"
    LIGHT_GREEN = "#ebffb1"
    GREEN = "#deff81"
    TURQUOISE = "#87f2c0"
    LIGHT_PURPLE = "#f9deff"
    PURPLE = "#f3beff"
    LAVENDER = "#ccc8f9"
    VIOLET = "#eb93ff"
    LIGHT_GREY = "#f2f3f4"
    GREY = "#e6e8ea"

    def __str__(self) -> str:
        return self.value
