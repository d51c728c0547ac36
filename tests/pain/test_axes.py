"""Mechanism axes (scored separately) and psychosocial modulators, with the safety rules: an unverified cut-off
or an undatable score never gives the strong level; old scores do not speak for now."""
from __future__ import annotations

import pytest

from fhir_pain.pain import build_profile
from tests.pain.fhir import NOW, PROJECT, SNOMED, ago, comp, cond, day, nrs, obs, qty

PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]


def profile(observations=(), conditions=()):
    return build_profile(list(observations), list(conditions), [], NOW)


def screen(key, value, days=10, **kw):
    return obs(f"{key}-total", PROJECT, when=ago(days) if days is not None else None, valueInteger=value, **kw)


def chronic_history():
    return [nrs(6, 150), nrs(6, 2)]


# ---- neuropathic ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("observations, level", [
    # NeuPSIG grading: a positive screening questionnaire alone is "possible", never "likely" (phenotyping 1.3.0)
    ([screen("paindetect", 19)], "possible"), ([screen("paindetect", 25)], "possible"),
    ([screen("paindetect", 18)], "possible"), ([screen("paindetect", 13)], "possible"),
    ([screen("paindetect", 12)], "unlikely"), ([screen("lanss", 12)], "possible"), ([screen("lanss", 11)], "unlikely"),
    ([screen("dn4", 4)], "possible"), ([screen("dn4", 7)], "possible"), ([screen("dn4", 3)], "unlikely"),
    ([screen("slanss", 15)], "possible"),
    # two screens that agree are still screening alone; disagreeing screens make it possible
    ([screen("dn4", 5), screen("lanss", 14)], "possible"), ([screen("paindetect", 22), screen("dn4", 1)], "possible"),
    ([], "unknown"),
])
def test_neuropathic_from_screening_scores_alone_is_at_most_possible(observations, level):
    p = profile(observations)
    assert p.axes["neuropathic"].level == level
    expected = {"likely": "neuropathic-likely", "possible": "neuropathic-possible"}.get(level)
    assert [x for x in p.phenotypes if x.startswith("neuropathic")] == ([expected] if expected else [])


def test_neuropathic_likely_from_a_diagnosis_with_evidence():
    p = profile([screen("dn4", 2, oid="dn4")], [cond("dpn", "E11.42"), cond("phn", "2177002", SNOMED)])
    a = p.axes["neuropathic"]
    assert a.level == "likely"
    assert set(a.evidence) == {"Condition/dpn", "Condition/phn", "Observation/dn4"}
    assert p.evidence["neuropathic-likely"] == a.evidence
    assert any("diabetic neuropathy" in r for r in a.reasons)


@pytest.mark.parametrize("conditions", [
    [cond("dpn", "E11.42")],                      # diabetic neuropathy (a 'likely' entry)
    [cond("phn", "2177002", SNOMED)],             # post-herpetic neuralgia
    [cond("sci", "M54.31")],                      # sciatica: a 'possible' entry, but a history of a relevant lesion
])
def test_dn4_with_a_confirmed_neuropathic_diagnosis_is_likely(conditions):
    p = profile([screen("dn4", 6, oid="dn4")], conditions)
    a = p.axes["neuropathic"]
    assert a.level == "likely" and "Observation/dn4" in a.evidence and conditions[0]["id"] in str(a.evidence)
    assert "neuropathic-likely" in p.phenotypes and "neuropathic-possible" not in p.phenotypes


def test_dn4_with_an_unconfirmed_diagnosis_stays_possible_and_says_why():
    p = profile([screen("dn4", 6, oid="dn4")], [cond("dpn", "E11.42", verification="provisional")])
    a = p.axes["neuropathic"]
    assert a.level == "possible" and p.phenotypes.count("neuropathic-possible") == 1
    assert any("screening score without a supporting diagnosis" in r and "NeuPSIG" in r for r in a.reasons)
    assert set(a.evidence) == {"Observation/dn4", "Condition/dpn"}


def test_neuropathic_possible_from_an_unconfirmed_or_vague_diagnosis():
    assert profile(conditions=[cond("c", "E11.42", verification="provisional")]).axes["neuropathic"].level == "possible"
    assert profile(conditions=[cond("c", "M54.31")]).axes["neuropathic"].level == "possible"


def test_latest_screen_wins_and_old_screens_do_not_count():
    p = profile([screen("paindetect", 24, days=300), screen("paindetect", 10, days=20)])
    assert p.axes["neuropathic"].level == "unlikely"
    old = profile([screen("paindetect", 24, days=900)])
    assert old.axes["neuropathic"].level == "unknown" and "older than 730 days" in old.axes["neuropathic"].reasons[0]


def test_undated_screens_give_at_most_possible_and_must_agree():
    assert profile([screen("paindetect", 24, days=None)]).axes["neuropathic"].level == "possible"
    p = profile([screen("paindetect", 24, days=None), screen("paindetect", 5, days=None)])
    assert p.axes["neuropathic"].level == "unknown" and "disagree" in p.axes["neuropathic"].reasons[0]


# ---- nociplastic ---------------------------------------------------------------------------------------------

def test_nociplastic_features_need_chronicity():
    csi = screen("csi", 52, oid="csi")
    p = profile([csi, *chronic_history()])
    assert p.axes["nociplastic"].level == "features" and "nociplastic-features" in p.phenotypes
    assert "Observation/csi" in p.evidence["nociplastic-features"]
    short = profile([csi, nrs(6, 2)])
    assert short.axes["nociplastic"].level == "possible" and "nociplastic-features" not in short.phenotypes
    assert "3 months" in short.axes["nociplastic"].reasons[0]


@pytest.mark.parametrize("value, level", [(40, "features"), (39, "unlikely")])
def test_csi_cut_off(value, level):
    assert profile([screen("csi", value), *chronic_history()]).axes["nociplastic"].level == level


def test_fibromyalgia_with_onset_is_chronic_and_nociplastic():
    p = profile(conditions=[cond("fm", "M79.7", onset=day(800))])
    assert p.chronic and p.axes["nociplastic"].level == "features"
    assert p.evidence["nociplastic-features"] == ("Condition/fm",)
    assert profile(conditions=[cond("ibs", "K58.9"), cond("c", "G89.29")]).axes["nociplastic"].level == "possible"


# ---- inflammatory --------------------------------------------------------------------------------------------

def crp(value, days, unit="mg/L", code="1988-5", **kw):
    return obs(code, when=ago(days) if days is not None else None, category="laboratory", **qty(value, unit), **kw)


@pytest.mark.parametrize("observations, level", [
    ([crp(14, 10)], "hint"), ([crp(10, 10)], "none"), ([crp(1.5, 10, "mg/dL")], "hint"),
    ([crp(12, 10, code="30522-7")], "hint"), ([crp(14, 200)], "unknown"), ([crp(14, None)], "unknown"),
    ([crp(14, 60), crp(3, 5)], "none"), ([], "unknown"),
])
def test_crp(observations, level):
    p = profile(observations)
    assert p.axes["inflammatory"].level == level
    assert ("inflammatory-contribution" in p.phenotypes) == (level == "hint")


def test_inflammatory_condition_is_a_hint():
    p = profile(conditions=[cond("ra", "M05.79")])
    assert p.axes["inflammatory"].level == "hint" and p.evidence["inflammatory-contribution"] == ("Condition/ra",)
    unconfirmed = profile(conditions=[cond("ra", "M05.79", verification="differential")])
    assert unconfirmed.axes["inflammatory"].level == "unknown"


def test_axes_are_independent_mixed_pain():
    p = profile([screen("paindetect", 20), screen("csi", 45), crp(20, 3), *chronic_history()])
    assert {k: a.level for k, a in p.axes.items()} == {"neuropathic": "possible", "nociplastic": "features",
                                                       "inflammatory": "hint"}
    assert {"neuropathic-possible", "nociplastic-features", "inflammatory-contribution",
            "chronic-pain"} <= set(p.phenotypes)


# ---- modulators ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code, system, value, name, level", [
    ("44261-6", None, 10, "depression", "present"), ("44261-6", None, 9, "depression", "absent"),
    ("89209-1", None, 20, "depression", "present"),
    ("89209-1", None, 19, "depression", "absent"),
    ("55758-7", None, 3, "depression", "present"),
    ("55758-7", None, 2, "depression", "absent"),
    ("70274-6", None, 10, "anxiety", "present"),
    ("70274-6", None, 9, "anxiety", "absent"),
    ("pcs-total", PROJECT, 30, "catastrophizing", "present"), ("pcs-total", PROJECT, 29, "catastrophizing", "absent"),
])
def test_modulator_cut_offs(code, system, value, name, level):
    o = obs(code, system, when=ago(7), valueInteger=value) if system else obs(code, when=ago(7), valueInteger=value)
    p = profile([o])
    m = p.modulators[name]
    assert m.level == level and m.score == value
    phenotype = {"depression": "depression", "anxiety": "anxiety", "catastrophizing": "high-catastrophizing"}[name]
    assert (phenotype in p.phenotypes) == (level == "present")
    if level == "present":
        assert p.evidence[phenotype] == (o["resourceType"] + "/" + o["id"],)


def test_modulator_result_fields():
    m = profile([obs("44261-6", when=ago(7), valueInteger=14)]).modulators["depression"]
    assert (m.instrument, m.cutoff, m.cutoff_op, m.cutoff_verified) == ("phq9", 10, ">=", True)
    g = profile([obs("70274-6", when=ago(7), valueInteger=12)]).modulators["anxiety"]
    assert (g.level, g.cutoff, g.cutoff_verified) == ("present", 10, True)


def test_latest_score_speaks_for_now_and_phq9_beats_phq2_on_the_same_day():
    p = profile([obs("44261-6", when=ago(100), valueInteger=18), obs("44261-6", when=ago(5), valueInteger=4)])
    assert p.modulators["depression"].level == "absent" and "depression" not in p.phenotypes
    same_day = profile([obs("55758-7", when=ago(5), valueInteger=1), obs("44261-6", when=ago(5), valueInteger=12)])
    m = same_day.modulators["depression"]
    assert m.instrument == "phq9" and m.level == "present"
    newer_bdi = profile([obs("44261-6", when=ago(50), valueInteger=15), obs("89209-1", when=ago(3), valueInteger=8)])
    m = newer_bdi.modulators["depression"]
    assert m.instrument == "bdi2" and m.level == "absent"


def test_scores_older_than_the_look_back_do_not_count():
    m = profile([obs("44261-6", when=ago(400), valueInteger=20)]).modulators["depression"]
    assert m.level == "unknown" and "older than 365 days" in m.reasons[0]


def test_undated_positive_score_is_only_possible():
    assert profile([obs("44261-6", valueInteger=20)]).modulators["depression"].level == "possible"


def test_diagnosis_makes_a_modulator_present():
    p = profile([obs("44261-6", when=ago(5), valueInteger=3)], [cond("mdd", "F33.1")])
    m = p.modulators["depression"]
    assert m.level == "present" and set(p.evidence["depression"]) == {"Condition/mdd", p.scores[0].ref}
    provisional = profile(conditions=[cond("gad", "F41.1", verification="provisional")])
    assert provisional.modulators["anxiety"].level == "possible"


def test_phq9_item9_is_flagged_whatever_the_total():
    items = [comp(c, valueInteger=0) for c in PHQ9_ITEMS[:8]] + [comp(PHQ9_ITEMS[8], valueInteger=1)]
    m = profile([obs("44249-1", when=ago(2), components=items)]).modulators["depression"]
    assert m.level == "absent" and m.score == 1 and m.flags == ("suicidality",)
    assert "suicide risk" in m.reasons[0]
