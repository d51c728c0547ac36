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


def test_lazy_reasons_read_as_text_and_survive_pickling_of_a_realistic_profile():
    """The reasons are written on first read (pain.model.lazy): whoever reads them (patient-view, the dashboard)
    gets texts, the same on every read, and a profile pickled before they were read comes back equal."""
    import pickle
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the golden scenarios' builders
    from bench.services import request
    from fhir_pain import pgx
    from fhir_pain.pain import build_profile

    body = request("order-sign")
    entries = lambda key: [e["resource"] for e in body["prefetch"][key].get("entry", [])]   # noqa: E731
    observations = entries("pgxResults") + entries("painAssessments")
    meds = [pgx.identify(r) for r in entries("activeMedications")]
    now = parse("2026-05-01T12:00:00Z").at
    fresh = lambda: build_profile(observations, entries("conditions"), meds, now)   # noqa: E731
    copy = pickle.loads(pickle.dumps(fresh()))
    profile = fresh()
    first = profile.to_dict()
    assert first == profile.to_dict() == copy.to_dict()
    reasons = [r for axis in first.values() if isinstance(axis, dict) for r in axis.get("reasons", ())]
    assert reasons and all(type(r) is str and r for r in reasons)
    assert "functools.partial" not in repr(profile)   # a Later (a partial) never shows through
