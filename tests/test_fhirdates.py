"""fhir_pain.fhirdates: FHIR date/dateTime/instant/Period values, partial dates and time zones."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from fhir_pain import fhirdates
from fhir_pain.fhirdates import UTC, aware, effective, onset, parse


def test_full_datetime_with_zone_keeps_the_instant():
    t = parse("2024-03-05T08:30:00-05:00")
    assert t.precision == "time"
    assert t.at == datetime(2024, 3, 5, 13, 30, tzinfo=UTC) and t.at.tzinfo is UTC     # bounds are UTC
    assert t.local.utcoffset() == timedelta(hours=-5)                                  # the zone is kept for display
    assert t.isoformat() == "2024-03-05T08:30:00-05:00"
    assert parse("2024-03-05T13:30:00Z").at == t.at
    assert parse("2024-03-05T13:30:00.123+00:00").at.microsecond == 123000


def test_time_without_zone_is_read_in_the_default_zone():
    assert parse("2024-03-05T08:30:00").at == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    cet = timezone(timedelta(hours=1))
    assert parse("2024-03-05T08:30:00", default_tz=cet).at == datetime(2024, 3, 5, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize("value, precision, earliest, latest", [
    ("2024", "year", datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    ("2024-12", "month", datetime(2024, 12, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    ("2024-02", "month", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
    ("2024-02-29", "day", datetime(2024, 2, 29, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
])
def test_partial_dates_are_intervals(value, precision, earliest, latest):
    t = parse(value)
    assert (t.precision, t.earliest, t.latest, t.at) == (precision, earliest, latest, earliest)
    assert t.partial and t.isoformat() == value


@pytest.mark.parametrize("bad", [None, 7, "", "yesterday", "2024-13", "2024-02-30", "2024-1-5", "20240105",
                                 "2024-01-05T25:00:00Z", ["2024"], "2024-01-05X10:00"])
def test_invalid_values_give_none(bad):
    assert parse(bad) is None


def test_effective_prefers_effective_x_then_issued():
    both = {"effectiveDateTime": "2024-01-02", "issued": "2024-01-09T00:00:00Z"}
    assert effective(both).element == "effectiveDateTime"
    assert effective({"effectiveInstant": "2024-01-02T10:00:00Z"}).precision == "time"
    t = effective({"issued": "2024-01-09T10:00:00+01:00"})
    assert t.element == "issued" and t.at == datetime(2024, 1, 9, 9, tzinfo=UTC)
    assert effective({"issued": "2024-01-09T10:00:00Z"}, use_issued=False) is None
    assert effective({}) is None
    # an unparseable effectiveDateTime does not fall back to issued: the resource's own date is broken
    assert effective({"effectiveDateTime": "soon", "issued": "2024-01-09T10:00:00Z"}) is None


def test_effective_period_counts_as_of_its_end():
    t = effective({"effectivePeriod": {"start": "2024-01-01T08:00:00Z", "end": "2024-01-07T09:00:00+01:00"}})
    assert t.isoformat() == "2024-01-07T09:00:00+01:00"
    assert t.at == datetime(2024, 1, 7, 8, tzinfo=UTC)
    assert t.earliest == datetime(2024, 1, 1, 8, tzinfo=UTC) and t.element == "effectivePeriod"
    open_ended = effective({"effectivePeriod": {"start": "2024-01-01"}})
    assert open_ended.at == datetime(2024, 1, 1, tzinfo=UTC) and open_ended.precision == "day"
    assert effective({"effectivePeriod": {"start": "2024-02-01", "end": "2024-01-01"},
                      "issued": "2024-03-01T00:00:00Z"}).element == "issued"      # inverted period: not trusted
    assert effective({"effectivePeriod": {"start": "2024-01", "end": "2024-01-07T08:00:00Z"}}).precision == "month"


def test_onset_falls_back_to_recorded_date():
    assert onset({"onsetDateTime": "2020-05"}).precision == "month"
    assert onset({"onsetPeriod": {"start": "2019-01-01", "end": "2019-06-01"}}).at == datetime(2019, 1, 1, tzinfo=UTC)
    t = onset({"onsetString": "childhood", "recordedDate": "2021-03-04T10:00:00Z"})
    assert t.element == "recordedDate"
    assert onset({"onsetString": "childhood"}) is None


def test_aware():
    assert aware(datetime(2024, 1, 1)).tzinfo is UTC
    cet = timezone(timedelta(hours=1))
    assert aware(datetime(2024, 1, 1, tzinfo=cet)).tzinfo is cet
    assert fhirdates.utc(datetime(2024, 1, 1, 1, tzinfo=cet)) == datetime(2024, 1, 1, tzinfo=UTC)
    assert fhirdates.utc(datetime(2024, 1, 1, 1, tzinfo=cet)).tzinfo is UTC
    assert fhirdates.parse("2024-01-01T00:00:00Z").isoformat() == "2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize("value", ["0001-01-01", "0009", "0001-01-01T00:00:00+14:00", "9999-12-31",
                                   "9999-12-31T23:59:59.999999+14:00", "9991-01"])
def test_parse_of_a_year_at_the_ends_of_datetime_is_none(value):
    # valid FHIR, but look-back windows added to it overflowed datetime (OverflowError lost the pain profile)
    assert parse(value) is None
    assert parse("0010-01-01").earliest.year == 10 and parse("9990-12-31").latest.year == 9991
