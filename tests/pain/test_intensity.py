"""Pain intensity now and its trend; chronicity from scores and diagnoses."""
from __future__ import annotations

from fhir_pain.pain import build_profile
from tests.pain.fhir import NOW, ago, cond, day, nrs, obs, peg, qty


def profile(observations=(), conditions=()):
    return build_profile(list(observations), list(conditions), [], NOW)


def test_latest_intensity_with_improving_trend():
    p = profile([nrs(8, 60), nrs(7, 30), nrs(4, 1, oid="latest")])
    i = p.intensity
    assert (i.score, i.instrument, i.trend, i.band) == (4, "nrs", "improving", "mild")
    assert i.evidence[0] == "Observation/latest" and len(i.evidence) == 3
    assert i.band_verified is False      # Serlin banding not re-read: shown as a label only


def test_worsening_and_stable_trends():
    assert profile([nrs(3, 40), nrs(4, 20), nrs(6, 1)]).intensity.trend == "worsening"
    assert profile([nrs(6, 40), nrs(5, 20), nrs(6, 1)]).intensity.trend == "stable"
    # 2 -> 1 is a 50 % fall but only one point: a relative change needs at least one point, 2 -> 1.4 does not count
    assert profile([nrs(2, 20), nrs(1, 1)]).intensity.trend == "improving"
    small = [obs("72514-3", when=ago(20), valueDecimal=2.0), obs("72514-3", when=ago(1), valueDecimal=1.4)]
    assert profile(small).intensity.trend == "stable"


def test_trend_needs_an_earlier_dated_score_in_the_window():
    i = profile([nrs(9, 200), nrs(5, 1)]).intensity
    assert i.trend is None and "no earlier nrs score" in i.reasons[0]


def test_undated_and_month_dated_scores_never_make_latest_or_trend():
    undated = obs("72514-3", valueInteger=2)
    month = obs("72514-3", when=day(2)[:7], valueInteger=9)
    p = profile([nrs(6, 10), undated, month])
    assert (p.intensity.score, p.intensity.trend) == (6, None)
    assert profile([undated, month]).intensity is None
    assert len(profile([undated, month]).scores) == 2         # still listed as usable scores


def test_latest_across_instruments_and_issued_fallback():
    peg = obs("91147-9", when=ago(1, tz="+09:00"), **qty(5.33))
    issued_only = obs("72514-3", valueInteger=7)
    issued_only["issued"] = ago(0.5)
    p = profile([nrs(6, 5), peg, issued_only])
    assert (p.intensity.instrument, p.intensity.score) == ("nrs", 7)
    p = profile([nrs(6, 5), peg])
    assert (p.intensity.instrument, p.intensity.score, p.intensity.trend) == ("peg", 5.33, None)


def test_effective_period_and_instant():
    a = obs("72514-3", valueInteger=5)
    a["effectivePeriod"] = {"start": ago(40), "end": ago(39)}
    b = obs("72514-3", valueInteger=8)
    b["effectiveInstant"] = ago(2, tz="-07:00")
    assert (profile([a, b]).intensity.score, profile([a, b]).intensity.trend) == (8, "worsening")


def test_future_dated_scores_are_rejected():
    p = profile([nrs(4, 1), obs("72514-3", when="2030-01-01", valueInteger=9)])
    assert p.intensity.score == 4
    assert any("future" in r.reason for r in p.rejected)


# ---- chronicity ---------------------------------------------------------------------------------------------

def test_chronic_from_pain_scores_more_than_three_months_apart():
    p = profile([nrs(6, 120, oid="first"), nrs(5, 60), nrs(6, 2, oid="last")])
    assert p.chronic and "chronic-pain" in p.phenotypes
    assert p.evidence["chronic-pain"] == ("Observation/first", "Observation/last")


def test_not_chronic_when_too_short_no_pain_or_stale():
    assert not profile([nrs(6, 80), nrs(6, 1)]).chronic
    assert not profile([nrs(0, 200), nrs(0, 1)]).chronic                  # no pain is not pain
    stale = profile([nrs(6, 900), nrs(6, 500)])
    assert not stale.chronic and "not counted" in stale.chronic_reasons[0]


def test_chronic_uses_the_conservative_bound_of_partial_dates():
    # NOW is 2024-06-01; the last score is 2024-05-31
    assert profile([obs("72514-3", when="2024-02-22", valueInteger=5), nrs(5, 1)]).chronic      # a day: 98 days
    # "2024-03" may be 1 March (91 days before) or 31 March (61 days): only the conservative bound counts
    march = profile([obs("72514-3", when="2024-03", valueInteger=5), nrs(5, 1)])
    assert not march.chronic
    assert profile([obs("72514-3", when="2024-02", valueInteger=5), nrs(5, 1)]).chronic           # <= 1 March: 91 days


def test_chronic_from_diagnoses():
    assert profile(conditions=[cond("c1", "G89.29")]).chronic                       # a chronic pain diagnosis
    p = profile(conditions=[cond("oa", "M17.11", onset=day(400))])
    assert p.chronic and p.evidence["chronic-pain"] == ("Condition/oa",)
    assert not profile(conditions=[cond("oa", "M17.11", onset=day(30))]).chronic    # too recent
    assert profile(conditions=[cond("lbp", "M54.50", recorded=day(200))]).chronic   # onset <= recordedDate
    assert not profile(conditions=[cond("oa", "M17.11", onset=day(400), verification="provisional")]).chronic
    assert not profile(conditions=[cond("ra", "M05.79", onset=day(400))]).chronic    # a disease, not documented pain
    assert not profile(conditions=[cond("oa", "M17.11")]).chronic                    # no date at all


def test_peg_panel_history_counts_for_chronicity():
    p = profile([peg(150, 7), peg(3, 6)])
    assert p.chronic and p.intensity.instrument == "peg" and p.intensity.score == 6


def test_an_old_latest_score_does_not_stand_for_now():
    p = profile([nrs(7, 400), nrs(6, 380)])
    assert p.intensity is None and len(p.scores) == 2
