"""ScoreIndex look-ups by time: the bisections give what a scan back from the latest score gives."""
from __future__ import annotations

import random
from datetime import timedelta

from fhir_pain.fhirdates import parse
from fhir_pain.pain.model import Score, ScoreIndex
from fhir_pain.pain.scoring import _dedupe
from tests.pain.fhir import NOW


def _scan_ended_by(dated, t):
    return next((s for s in reversed(dated) if s.time.latest <= t), None)


def _scan_at_or_before(dated, t):
    return next((s for s in reversed(dated) if s.time.at <= t), None)


def _times():
    """Day-precision and instant values around a few days, so that a day's interval ends after instants in it."""
    out = []
    for d in range(5):
        day = (NOW - timedelta(days=d)).date().isoformat()
        out += [day, f"{day}T00:00:00Z", f"{day}T10:00:00+02:00", f"{day}T23:59:59Z", day[:7]]
    return out


def test_bisections_agree_with_a_scan_back():
    rng = random.Random(7)
    values = _times()
    probes = [parse(v).at for v in values] + [parse(v).latest for v in values] + \
        [NOW + timedelta(days=1), NOW - timedelta(days=30)]
    for _ in range(200):
        picked = rng.sample(values, rng.randint(0, 12))
        scores, _ = _dedupe([Score("nrs", float(i), f"Observation/{i}", parse(v)) for i, v in enumerate(picked)], [])
        index = ScoreIndex(scores)
        dated = index.dated.get("nrs", [])
        for t in probes:
            assert index.last_ended_by("nrs", t) is _scan_ended_by(dated, t)
            assert index.last_at_or_before("nrs", t) is _scan_at_or_before(dated, t)


def test_unknown_instrument_gives_nothing():
    index = ScoreIndex([])
    assert index.last_ended_by("nrs", NOW) is None and index.last_at_or_before("nrs", NOW) is None
