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
# Up to this many descriptions are checked row by row (see Descriptions._by_row).
_BY_ROW = 12
_parse_date = datetime.fromisoformat  # "YYYY-MM-DD HH:MM:SS": the space separator is taken

Row = tuple[Any, ...]
Dates = dict[Any, datetime | None]
"""An answer's date strings (and None) and what they are: parsed once per distinct string,
at C speed, and kept with the answer's rows until they are made."""
Checked = tuple[tuple[Row, ...], Dates]


class Descriptions:
    """Checks descriptions in bulk and makes them from rows. The fast track wants every
    field present (the API sends them all; unknown keys are welcome and dropped); any
    other list is made at once by the generated hook, which raises on a wrong type as
    it always did."""

    def __init__(self, generated: Callable[[Any, type], StatusDescription]) -> None:
        assert set(_TYPES) == set(FIELDS)
        self._generated = generated
        self.keys = Keys(FIELDS, len(FIELDS))
        # Dates are checked by parsing them; no set of types for them.
        self._allowed = tuple(None if n in _DATED else frozenset(_TYPES[n]) for n in FIELDS)
        self._dated = tuple(FIELDS.index(n) for n in _DATED)
        self._good = frozenset(product(*(_TYPES[n] for n in FIELDS)))
        self._builder = builder(StatusDescription)

    def rows(self, items: list[Any]) -> Checked | None:
        """Each item's values in field order, and the answer's dates; or None when one is
        off the track: not an object, a field missing, a value of another JSON type, a
        date string that is no date. :meth:`make` cannot fail on what it returns."""
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
        dates: Dates = {None: None}
        try:  # each distinct value once: None, or a string that parses (a real account's
            # descriptions carry thousands of distinct times: a call per value took 0.4 us)
            for at in self._dated:
                values = set(columns[at])  # TypeError for an unhashable value
                values.difference_update(dates)
                strings = list(values)
                dates.update(zip(strings, map(_parse_date, strings), strict=True))
        except (TypeError, ValueError):  # no str, or no date
            return None
        return rows, dates

    def _by_row(self, rows: tuple[Row, ...]) -> Checked | None:
        """:meth:`rows` for a few: each row's tuple of value types looked up among the
        allowed ones (the column checks cost 2.5 us whatever the number)."""
        good, created, updated = self._good, *self._dated
        dates: Dates = {None: None}
        try:
            for row in rows:
                if tuple(map(type, row)) not in good:
                    return None
                if row[created] not in dates:
                    dates[row[created]] = _parse_date(row[created])
                if row[updated] not in dates:
                    dates[row[updated]] = _parse_date(row[updated])
        except ValueError:  # a date string that is no date
            return None
        return rows, dates

    def make(self, dates: Dates, rows: tuple[Row, ...]) -> tuple[StatusDescription, ...]:
        """The descriptions of checked ``rows``, their dates from ``dates`` (both from
        :meth:`rows`; ``rows`` may be a slice of those checked)."""
        new, made_class, build, out = object.__new__, StatusDescription, self._builder, []
        for row in rows:
            made = new(build)
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
            made.created_at = dates[created_at]
            made.updated_at = dates[updated_at]
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
