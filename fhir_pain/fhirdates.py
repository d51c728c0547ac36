"""FHIR date/dateTime/instant/Period values as timezone-aware times with their precision.

FHIR allows partial dates ("2024", "2024-03", "2024-03-05") and dateTime with or without a time zone (the spec
requires one when a time is given; EHRs omit it anyway). A partial value is an interval, not a point, so a
:class:`FhirTime` keeps both bounds: ``earliest`` and ``latest`` (inclusive start, exclusive end). Code that
claims a duration (chronicity, an adequate drug trial) compares the conservative bound; code that only orders
values uses ``at``.

Readers for the elements that date a resource: :func:`effective` (Observation effective[x], ``issued`` as
fallback) and :func:`onset` (Condition onset[x], ``recordedDate`` as fallback). Bad input gives ``None``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Literal

Precision = Literal["year", "month", "day", "time"]
UTC = timezone.utc
_COARSENESS = ("time", "day", "month", "year")
_INSTANT = timedelta(microseconds=1)
# FHIR allows years 0001-9999, but the engines add and subtract look-back windows (up to a few years) and
# Python's datetime ends at years 1 and 9999: a value this close to either end is refused as unreadable,
# never a real clinical date.
YEARS = range(10, 9990 + 1)


@dataclass(slots=True, unsafe_hash=True)
class FhirTime:
    """All three bounds are in UTC: comparing datetimes with different offsets is ~50x slower, and the engines
    compare a lot. ``local`` keeps the offset the sender wrote, for display. Treat as read-only (not frozen:
    a frozen dataclass costs ~1 µs more to build, and one is built per Observation)."""
    at: datetime          # the point used for ordering (start of a partial value; a Period's end when it has one)
    earliest: datetime    # inclusive
    latest: datetime      # exclusive end of the interval the value covers (== earliest + 1 µs for an instant)
    precision: Precision
    element: str = ""     # where it came from: "effectiveDateTime", "issued", "onsetPeriod", ...
    local: datetime | None = None   # ``at`` in the sender's offset (full-time values only)

    @property
    def partial(self) -> bool:
        return self.precision != "time"

    def isoformat(self) -> str:
        """The value at its own precision, for output ("2024", "2024-03", "2024-03-05", full instant)."""
        if self.precision == "year":
            return f"{self.earliest.year:04d}"
        if self.precision == "month":
            return f"{self.earliest.year:04d}-{self.earliest.month:02d}"
        if self.precision == "day":
            return self.earliest.date().isoformat()
        return (self.local or self.at).isoformat()


def _add_month(d: datetime) -> datetime:
    return d.replace(year=d.year + 1, month=1) if d.month == 12 else d.replace(month=d.month + 1)


def parse(value: object, *, default_tz: tzinfo = UTC, element: str = "") -> FhirTime | None:
    """Parse a FHIR date, dateTime or instant. A time without a zone is read in ``default_tz``; a date-only
    value covers that whole day in ``default_tz``. Returns ``None`` for anything that is not a valid value."""
    if not isinstance(value, str):
        return None
    if len(value) > 64:    # no valid value is this long: not kept in the memo (the text is the sender's)
        return _parse.__wrapped__(value, default_tz, element)
    return _parse(value, default_tz, element)


@lru_cache(maxsize=8192)
def _parse(value: str, default_tz: tzinfo, element: str) -> FhirTime | None:
    # memoised (FhirTime is read-only): every Observation, Condition and request is dated, several rules read the
    # same dates, and each call of a patient's chart repeats them
    s = value.strip()
    n = len(s)
    if n < 4 or not s[:4].isdigit() or int(s[:4]) not in YEARS:
        return None
    try:
        if n == 4 and s.isdigit():
            start = datetime(int(s), 1, 1, tzinfo=default_tz)
            return _interval(start, start.replace(year=start.year + 1), "year", element)
        if n == 7 and s[4] == "-":
            start = datetime(int(s[:4]), int(s[5:7]), 1, tzinfo=default_tz)
            return _interval(start, _add_month(start), "month", element)
        if n == 10:
            d = date.fromisoformat(s)
            start = datetime(d.year, d.month, d.day, tzinfo=default_tz)
            return _interval(start, start + timedelta(days=1), "day", element)
        if n > 10 and s[10] in "Tt ":
            dt = datetime.fromisoformat(s)     # Python >= 3.11 reads "Z" itself
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=default_tz)
            at = dt if dt.tzinfo is UTC else dt.astimezone(UTC)
            return FhirTime(at, at, at + _INSTANT, "time", element, dt)
    except (ValueError, OverflowError):
        return None
    return None


def _interval(start: datetime, end: datetime, precision: Precision, element: str) -> FhirTime:
    if start.tzinfo is not UTC:
        start, end = start.astimezone(UTC), end.astimezone(UTC)
    return FhirTime(start, start, end, precision, element)


def _period(p: object, element: str, default_tz: tzinfo) -> FhirTime | None:
    if not isinstance(p, dict):
        return None
    start = parse(p.get("start"), default_tz=default_tz)
    end = parse(p.get("end"), default_tz=default_tz)
    if start is None and end is None:
        return None
    if start is not None and end is not None and end.latest < start.earliest:
        return None  # an inverted period is malformed: do not guess which bound is wrong
    lo = start or end
    hi = end or start
    # an assessment made over a period counts as of its end; an open period as of its start
    coarsest = max(lo.precision, hi.precision, key=_COARSENESS.index)
    point = hi if end is not None else lo
    return FhirTime(point.at, lo.earliest, hi.latest, coarsest, element, point.local)

def effective(resource: dict, *, use_issued: bool = True, default_tz: tzinfo = UTC) -> FhirTime | None:
    """When an Observation (or DiagnosticReport, ...) applies: effectiveDateTime / effectiveInstant /
    effectivePeriod, else ``issued`` (when the result was made available, so never earlier than the effective
    time)."""
    v = resource.get("effectiveDateTime")
    if v is not None:
        return parse(v, default_tz=default_tz, element="effectiveDateTime")
    v = resource.get("effectiveInstant")
    if v is not None:
        return parse(v, default_tz=default_tz, element="effectiveInstant")
    v = resource.get("effectivePeriod")
    if v is not None:
        t = _period(v, "effectivePeriod", default_tz)
        if t is not None:
            return t
    if use_issued:
        return parse(resource.get("issued"), default_tz=default_tz, element="issued")
    return None


def onset(condition: dict, *, use_recorded: bool = True, default_tz: tzinfo = UTC) -> FhirTime | None:
    """When a Condition began: onsetDateTime / onsetPeriod, else ``recordedDate`` (the onset cannot be later
    than the recording, so ``recordedDate`` is a safe upper bound for "present since")."""
    v = condition.get("onsetDateTime")
    if v is not None:
        t = parse(v, default_tz=default_tz, element="onsetDateTime")
        if t is not None:
            return t
    v = condition.get("onsetPeriod")
    if v is not None:
        t = _period(v, "onsetPeriod", default_tz)
        if t is not None:
            # the onset is the period's start, not its end
            return FhirTime(t.earliest, t.earliest, t.latest, t.precision, t.element)
    if use_recorded:
        return parse(condition.get("recordedDate"), default_tz=default_tz, element="recordedDate")
    return None


def aware(dt: datetime, default_tz: tzinfo = UTC) -> datetime:
    """A datetime with a zone (naive values are read in ``default_tz``)."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=default_tz)


def utc(dt: datetime, default_tz: tzinfo = UTC) -> datetime:
    """The same instant in UTC (naive values are read in ``default_tz``): cheap to compare with FhirTime bounds."""
    dt = aware(dt, default_tz)
    return dt if dt.tzinfo is UTC else dt.astimezone(UTC)
