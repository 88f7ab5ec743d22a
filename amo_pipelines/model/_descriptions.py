"""Status descriptions on the converter's fast path: checked in bulk, made from rows.

A full account carries about 15,000 descriptions with two dates each, and making them
was most of its parse time. An answer's descriptions are checked in one go at parse time
(every field present, each of its documented JSON type, every date parsed: column by
column at C speed, or row by row for a few), giving rows, tuples of their values in field
order, which :meth:`Descriptions.make` turns into objects without looking anything up
again: at once for a small answer, else on first read (the models'
:class:`~amo_pipelines.model.models.Deferred` calls it). The rows replace the decoded
objects, which are freed: a row is a third of a dict's size.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from itertools import product
from typing import Any

from ._keys import Keys
from .models import StatusDescription, builder

_NONE = type(None)
FIELDS = tuple(a.name for a in StatusDescription.__attrs_attrs__)
_TYPES: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "account_id": (int,),
    "pipeline_id": (int,),
    "status_id": (int,),
    "level": (str,),
    "description": (str,),
    "created_at": (str, _NONE),
    "updated_at": (str, _NONE),
    "created_by": (int, _NONE),
    "updated_by": (int, _NONE),
}
_DATED = ("created_at", "updated_at")
# The date cache is bounded: the descriptions of one answer share few timestamps, but a
# long-running process reads many answers.
_DATES_KEPT = 4096
# Up to this many descriptions are checked row by row (see Descriptions._by_row).
_BY_ROW = 12

Row = tuple[Any, ...]


class Descriptions:
    """Checks descriptions in bulk and makes them from rows. The fast track wants every
    field present (the API sends them all; unknown keys are welcome and dropped); any
    other list is made at once by the generated hook, which raises on a wrong type as
    it always did."""

    def __init__(self, generated: Callable[[Any, type], StatusDescription]) -> None:
        assert set(_TYPES) == set(FIELDS)
        self._generated = generated
        self.keys = Keys(FIELDS, len(FIELDS))
        # Dates are checked by value (self.date); no set of types for them.
        self._allowed = tuple(None if n in _DATED else frozenset(_TYPES[n]) for n in FIELDS)
        self._dated = tuple(FIELDS.index(n) for n in _DATED)
        self._good = frozenset(product(*(_TYPES[n] for n in FIELDS)))
        self.dates: dict[str | None, datetime | None] = {None: None}
        self._builder = builder(StatusDescription)

    def date(self, value: str | None) -> datetime | None:
        """The date of a ``created_at`` / ``updated_at`` value, parsed once per string."""
        if value is None:
            return None
        found = self.dates.get(value)
        if found is None:
            found = datetime.fromisoformat(value)  # ValueError for a string that is no date
            if len(self.dates) >= _DATES_KEPT:
                self.dates.clear()
                self.dates[None] = None
            self.dates[value] = found
        return found

    def rows(self, items: list[Any]) -> tuple[Row, ...] | None:
        """Each item's values in field order, or None when one is off the track: not an
        object, a field missing, a value of another JSON type, a date string that is no
        date. :meth:`make` cannot fail on the rows returned."""
        if items:
            self.keys.follow(items[0])
        try:
            # A tuple: its slices, kept until first read, are tuples of tuples of JSON
            # scalars, which the garbage collector stops tracking after one look (lists it
            # tracks for good, and each collection of the older generations went over them).
            rows = tuple(map(self.keys.getter, items))
        except (KeyError, TypeError):  # a missing field, or an item that is no object
            return None
        if len(rows) <= _BY_ROW:
            return self._by_row(rows)
        # Column by column: a set check of value types runs at C speed (20 ns a value;
        # a tuple of types per row took 330 ns a row).
        columns = list(zip(*rows, strict=True))
        for column, allowed in zip(columns, self._allowed, strict=True):
            if allowed is not None and not allowed.issuperset(map(type, column)):
                return None
        try:  # the dates: each distinct value once, which must be None or a date string
            for at in self._dated:
                for value in set(columns[at]):
                    self.date(value)
        except (TypeError, ValueError):  # no str (or unhashable), or no date
            return None
        return rows

    def _by_row(self, rows: tuple[Row, ...]) -> tuple[Row, ...] | None:
        """:meth:`rows` for a few: each row's tuple of value types looked up among the
        allowed ones (the column checks cost 2.5 us whatever the number)."""
        good, date, dates = self._good, self.date, self.dates
        created, updated = self._dated
        try:
            for row in rows:
                if tuple(map(type, row)) not in good:
                    return None
                if row[created] not in dates:
                    date(row[created])
                if row[updated] not in dates:
                    date(row[updated])
        except ValueError:  # a date string that is no date
            return None
        return rows

    def make(self, rows: tuple[Row, ...]) -> tuple[StatusDescription, ...]:
        """The descriptions of checked ``rows`` (see :meth:`rows`)."""
        new, made_class, out = object.__new__, StatusDescription, []
        date, dates = self.date, self.dates
        for row in rows:
            made = new(self._builder)
            (
                made.id,
                made.account_id,
                made.pipeline_id,
                made.status_id,
                made.level,
                made.description,
                created_at,
                updated_at,
                made.created_by,
                made.updated_by,
            ) = row
            try:  # parsed by rows() already, unless the cache was cleared since
                made.created_at = dates[created_at]
            except KeyError:
                made.created_at = date(created_at)
            try:
                made.updated_at = dates[updated_at]
            except KeyError:
                made.updated_at = date(updated_at)
            made.__class__ = made_class
            out.append(made)
        return tuple(out)

    def eager(self, value: Any) -> tuple[StatusDescription, ...] | None:
        """What the generated hooks make of ``descriptions`` (raising as they do)."""
        if value is None:
            return None
        if type(value) is list:
            return tuple([self._generated(v, StatusDescription) for v in value])
        raise TypeError(f"expected a list, got {type(value).__name__}")
