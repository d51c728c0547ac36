"""build_profile end to end on realistic EHR histories (tests/fixtures/pain), JSON output, evidence
references, knowledge as data, and bad input that must never crash."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_pain import profiles
from fhir_pain.fhir_models import validate
from fhir_pain.pain import PHENOTYPE_ORDER, Knowledge, build_profile
from tests.pain.fhir import DULOXETINE, GABAPENTIN, NOW, comp, med, nrs, obs

FIXTURES = ("pain/dpn-gabapentin.json", "pain/fibromyalgia-ra.json")


def split(bundle: dict) -> tuple[list[dict], list[dict]]:
    resources = [e["resource"] for e in bundle["entry"]]
    return ([r for r in resources if r["resourceType"] == "Observation"],
            [r for r in resources if r["resourceType"] == "Condition"])


@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_are_valid_r4(fixture_json, name):
    validate(fixture_json(name))


def test_painful_diabetic_neuropathy_on_gabapentin(fixture_json):
    observations, conditions = split(fixture_json("pain/dpn-gabapentin.json"))
    started = (NOW - datetime(2024, 1, 15, 14, tzinfo=timezone.utc)).days
    gaba = med("MedicationRequest/gaba", GABAPENTIN, started_days_ago=started)
    p = build_profile(observations, conditions, [gaba], NOW)
    assert p.phenotypes == ("chronic-pain", "neuropathic-likely", "depression", "anxiety", "treatment-non-response")
    neuro = p.axes["neuropathic"]
    assert neuro.level == "likely"
    assert {"Condition/dpn", "Observation/paindetect", "Observation/dn4"} <= set(neuro.evidence)
    assert "Condition/lbp-resolved" not in neuro.evidence                     # resolved radiculopathy is history
    dn4 = next(s for s in p.scores if s.instrument == "dn4")
    assert (dn4.value, dn4.method, dn4.time.element) == (6, "items", "effectivePeriod")
    # depression from a PHQ-9 total dated only by `issued`; anxiety from GAD-7 items sent as hasMember members
    assert p.modulators["depression"].level == "present" and p.modulators["depression"].time.element == "issued"
    gad = p.modulators["anxiety"]
    assert (gad.level, gad.score, gad.cutoff_verified) == ("present", 11, True)
    # PEG is preferred for the response: 6.67 before gabapentin, 5.67 after > 60 days
    (r,) = p.responses
    assert (r.status, r.instrument, r.baseline, r.latest, r.change_pct) == ("non-response", "peg", 6.67, 5.67, 15.0)
    assert {"MedicationRequest/gaba", "Observation/peg-1", "Observation/peg-2"} == set(r.evidence)
    assert p.intensity.instrument == "peg" and p.intensity.score == 5.67
    rejected = {x.ref: x.reason for x in p.rejected}
    assert rejected == {"Observation/nrs-typo": "12 is outside 0-10", "Observation/nrs-eie": "status entered-in-error"}
    assert not any(s.ref in ("Observation/cyp2d6", "Observation/a1c") for s in p.scores)


def test_fibromyalgia_with_rheumatoid_arthritis_starting_duloxetine(fixture_json):
    observations, conditions = split(fixture_json("pain/fibromyalgia-ra.json"))
    dlx = med("MedicationRequest/dlx", DULOXETINE, started_days_ago=22)
    p = build_profile(observations, conditions, [dlx], NOW)
    assert p.phenotypes == ("chronic-pain", "nociplastic-features", "inflammatory-contribution", "high-catastrophizing")
    assert set(p.evidence["nociplastic-features"]) == {"Observation/csi", "Condition/fibro"}
    assert set(p.evidence["inflammatory-contribution"]) == {"Observation/crp", "Condition/ra"}
    crp = next(s for s in p.scores if s.instrument == "crp")
    assert crp.value == pytest.approx(18)                                      # 1.8 mg/dL
    assert p.modulators["catastrophizing"].score == 34 and p.modulators["catastrophizing"].level == "present"
    assert p.modulators["depression"].level == "absent"                        # PHQ-2 1; MDD in remission excluded
    assert (p.intensity.score, p.intensity.trend) == (5, "improving")
    assert p.intensity.time.isoformat() == "2024-05-30T16:45:00+02:00"
    (r,) = p.responses
    assert (r.status, r.baseline) == ("too-early", 8)


@pytest.mark.parametrize("name", FIXTURES)
def test_profile_is_json_and_every_reference_points_at_an_input(fixture_json, name):
    observations, conditions = split(fixture_json(name))
    meds = [med("MedicationRequest/gaba", GABAPENTIN, started_days_ago=140)]
    p = build_profile(observations, conditions, meds, NOW)
    d = orjson.loads(orjson.dumps(p.to_dict()))
    assert d["phenotypes"] == list(p.phenotypes) and set(d["evidence"]) == set(p.phenotypes)
    assert list(p.phenotypes) == [c for c in PHENOTYPE_ORDER if c in p.phenotypes]
    known = {f"{r['resourceType']}/{r['id']}" for r in observations + conditions} | {"MedicationRequest/gaba"}
    refs = [r for refs in p.evidence.values() for r in refs]
    refs += [r for a in p.axes.values() for r in a.evidence] + [r for m in p.modulators.values() for r in m.evidence]
    refs += [r for t in p.responses for r in t.evidence] + [r for s in p.scores for r in s.evidence]
    assert refs and set(refs) <= known
    assert all(p.evidence[c] for c in p.phenotypes)                            # no conclusion without evidence
    files = [profiles.load(f"pain/{n}.json") for n in ("instruments", "conditions", "analgesics", "phenotyping")]
    assert d["knowledge"] == {f["schema"]: f["meta"]["version"] for f in files}


def test_empty_input_gives_an_empty_profile():
    p = build_profile([], [], [], NOW)
    assert p.phenotypes == () and p.intensity is None and not p.chronic and p.responses == ()
    assert {a.level for a in p.axes.values()} == {"unknown"} and {m.level for m in p.modulators.values()} == {"unknown"}
    assert orjson.dumps(p.to_dict())
    assert build_profile(None, None, None, datetime(2024, 6, 1)).phenotypes == ()   # naive now is read as UTC


def _knowledge_with(mutate) -> Knowledge:
    files = {n: copy.deepcopy(profiles.load(f"pain/{n}.json"))
             for n in ("instruments", "conditions", "analgesics", "phenotyping")}
    mutate(files)
    return Knowledge(files["instruments"], files["conditions"], files["analgesics"], files["phenotyping"])


def test_verifying_a_cut_off_is_a_data_change():
    def unverify_gad7(files):
        files["instruments"]["instruments"]["gad7"]["cutoffs"][0]["verified"] = False
    kn = _knowledge_with(unverify_gad7)
    gad = [obs("70274-6", when="2024-05-20", valueInteger=12)]
    assert "anxiety" in build_profile(gad, [], [], NOW).phenotypes
    assert "anxiety" not in build_profile(gad, [], [], NOW, knowledge=kn).phenotypes   # unverified: never strong


def test_knowledge_that_names_an_unknown_instrument_fails_at_load():
    def typo(files):
        files["phenotyping"]["axes"]["neuropathic"]["instruments"].append("dn5")
    with pytest.raises(ValueError, match="dn5"):
        _knowledge_with(typo)


# ---- bad input never crashes ---------------------------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 60), st.floats(allow_nan=True), st.text(max_size=12),
                      st.sampled_from(["72514-3", "44249-1", "http://loinc.org", "2024-05-01", "2024-05-01T10:00:00Z",
                                       "final", "LA6570-1", "dn4-1", "{score}", "mg/dL", "Observation/x"]))
json_value = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                            st.dictionaries(st.sampled_from([
                                                                "resourceType", "id", "status", "code", "coding",
                                                                "system", "code", "valueInteger", "valueQuantity",
                                                                "value", "unit", "component", "hasMember", "reference",
                                                                "effectiveDateTime", "effectivePeriod", "start", "end",
                                                                "issued", "valueCodeableConcept", "valueString",
                                                                "clinicalStatus", "onsetDateTime", "valueBoolean"]),
                                                                kids, max_size=6)), max_leaves=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_value, max_size=6), st.lists(json_value, max_size=3))
def test_arbitrary_json_never_crashes(observations, conditions):
    base = [nrs(6, 100), obs("44249-1", when="2024-05-01", components=[comp("44250-9", valueInteger=1)])]
    dlx = med("MedicationRequest/d", DULOXETINE, started_days_ago=50)
    p = build_profile(base + observations, conditions, [dlx], NOW)
    orjson.dumps(p.to_dict())
