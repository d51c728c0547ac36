"""PHQ-9 item 9 (suicidality): the most recent answer within the look-back decides the flag, wherever it came
from (panel component, hasMember item, standalone 44260-8 Observation); a later total without items changes
nothing, a later 0 clears it, an answer older than the look-back no longer counts."""
from __future__ import annotations

import copy

import pytest

from fhir_pain import profiles
from fhir_pain.facts import PatientData
from fhir_pain.pain import Knowledge, build_profile
from fhir_pain.pain.knowledge import knowledge
from tests.pain.fhir import NOW, answer, ago, comp, day, obs

PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
ITEM9 = PHQ9_ITEMS[8]
FREQ = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]   # not at all ... nearly every day
LOOKBACK = knowledge().item_flags["suicidality"].lookback_days


def panel(days, item9, *, others=0, oid=None, total=None):
    """A PHQ-9 panel (44249-1) with its nine items as components, answered with LOINC answer codes."""
    items = [comp(c, **answer(FREQ[others])) for c in PHQ9_ITEMS[:8]] + [comp(ITEM9, **answer(FREQ[item9]))]
    extra = {"valueInteger": total} if total is not None else {}
    return obs("44249-1", when=ago(days) if days is not None else None, oid=oid, components=items, **extra)


def total_only(days, value, oid=None):
    return obs("44261-6", when=ago(days), oid=oid, valueInteger=value)


def item9(days, value, oid=None, **kw):
    """Item 9 sent on its own, as some EHRs and apps do."""
    when = kw.pop("when", ago(days) if days is not None else None)
    return obs(ITEM9, when=when, oid=oid, **answer(FREQ[value]), **kw)


def depression(*observations, kn=None):
    return build_profile(list(observations), [], [], NOW, knowledge=kn).modulators["depression"]


def test_the_look_back_is_knowledge_with_its_rationale():
    spec = profiles.load("pain/phenotyping.json")["itemFlags"]["suicidality"]
    assert spec["lookbackDays"] == LOOKBACK and "working choice" in spec["rationale"] and spec["source"]
    assert knowledge().item_flags["suicidality"].label.startswith("PHQ-9 item 9")


def test_a_later_total_without_items_does_not_hide_an_earlier_positive_item9():
    m = depression(panel(20, 2, oid="phq-panel"), total_only(2, 3, oid="phq-total"))
    assert (m.score, m.level) == (3, "absent")                         # the latest total speaks for the level
    assert m.flags == ("suicidality",)
    a = m.flag_answers["suicidality"]
    assert (a.ref, a.value, a.total, a.time.isoformat()[:10]) == ("Observation/phq-panel", 2, 2, day(20))
    assert "Observation/phq-panel" in m.evidence and "Observation/phq-total" in m.evidence
    assert m.reasons[0].startswith(f"PHQ-9 item 9 (thoughts of death or self-harm) answered 2 on {day(20)}")
    assert "suicide risk" in m.reasons[0]


def test_a_standalone_item9_observation_raises_the_flag_without_a_phq9_total():
    m = depression(total_only(30, 4), item9(3, 1, oid="item9"))
    assert m.flags == ("suicidality",)
    a = m.flag_answers["suicidality"]
    assert (a.ref, a.value, a.total, a.evidence) == ("Observation/item9", 1, None, ("Observation/item9",))
    assert "Observation/item9" in m.evidence


def test_a_standalone_item9_alone_flags_a_modulator_with_no_score():
    m = depression(item9(3, 3, oid="item9"))
    assert (m.level, m.score, m.flags) == ("unknown", None, ("suicidality",))
    assert m.evidence == ("Observation/item9",)


def test_a_standalone_item9_next_to_a_total_of_the_same_moment_carries_that_total():
    when = ago(4)
    m = depression(obs("44261-6", when=when, oid="tot", valueInteger=6), item9(None, 2, oid="i9", when=when))
    a = m.flag_answers["suicidality"]
    assert (a.ref, a.total, m.score) == ("Observation/i9", 6, 6)


@pytest.mark.parametrize("later", [
    pytest.param(lambda: item9(5, 0, oid="later"), id="standalone-zero"),
    pytest.param(lambda: panel(5, 0, others=2, oid="later"), id="panel-zero"),
])
def test_a_later_answer_of_zero_clears_the_flag(later):
    m = depression(panel(40, 3, oid="earlier"), later())
    assert m.flags == () and m.flag_answers == {}
    assert not any("item 9" in r for r in m.reasons)


def test_a_positive_answer_after_a_zero_raises_it_again():
    m = depression(panel(40, 0, oid="zero"), item9(10, 1, oid="again"), total_only(1, 2))
    assert m.flags == ("suicidality",) and m.flag_answers["suicidality"].ref == "Observation/again"


def test_an_answer_older_than_the_look_back_no_longer_flags_and_the_reasons_say_so():
    m = depression(panel(LOOKBACK + 5, 2, oid="old"))
    assert m.flags == () and m.level == "absent"
    assert any(f"older than {LOOKBACK} days, no longer flagged" in r for r in m.reasons)
    assert depression(panel(LOOKBACK - 5, 2)).flags == ("suicidality",)


def test_the_look_back_comes_from_the_knowledge_file():
    files = {n: copy.deepcopy(profiles.load(f"pain/{n}.json"))
             for n in ("instruments", "conditions", "analgesics", "phenotyping")}
    files["phenotyping"]["itemFlags"]["suicidality"]["lookbackDays"] = 10
    kn = Knowledge(files["instruments"], files["conditions"], files["analgesics"], files["phenotyping"])
    assert depression(item9(20, 2), kn=kn).flags == ()
    assert depression(item9(5, 2), kn=kn).flags == ("suicidality",)


def test_a_flag_without_a_look_back_is_refused_at_load():
    files = {n: copy.deepcopy(profiles.load(f"pain/{n}.json"))
             for n in ("instruments", "conditions", "analgesics", "phenotyping")}
    del files["phenotyping"]["itemFlags"]["suicidality"]
    with pytest.raises(ValueError, match="suicidality"):
        Knowledge(files["instruments"], files["conditions"], files["analgesics"], files["phenotyping"])
    files["phenotyping"]["itemFlags"]["suicidality"] = {"lookbackDays": 0}
    with pytest.raises(ValueError, match="lookbackDays"):
        Knowledge(files["instruments"], files["conditions"], files["analgesics"], files["phenotyping"])


def test_disagreeing_answers_at_the_same_moment_keep_the_flag_and_say_so():
    when = ago(6)
    m = depression(obs("44249-1", when=when, oid="p", components=[comp(c, **answer(FREQ[0])) for c in PHQ9_ITEMS]),
                   item9(None, 2, oid="s", when=when))
    assert m.flags == ("suicidality",)
    a = m.flag_answers["suicidality"]
    assert a.value == 2 and set(a.evidence) == {"Observation/s", "Observation/p"}
    assert any("answered 0, 2 at the same time; the highest is used" in r for r in m.reasons)


def test_item9_as_a_has_member_observation_of_the_panel():
    when = ago(8)
    members = [obs(c, when=when, oid=f"m{i}", **answer(FREQ[0])) for i, c in enumerate(PHQ9_ITEMS[:8])]
    members.append(item9(None, 1, oid="m8", when=when))
    phq = obs("44249-1", when=when, oid="phq", members=[f"Observation/m{i}" for i in range(9)])
    m = depression(phq, *members, total_only(1, 0))
    a = m.flag_answers["suicidality"]
    assert (a.ref, a.total, a.evidence) == ("Observation/m8", 1, ("Observation/m8", "Observation/phq"))


def test_undated_answers_count_only_when_no_dated_answer_is_in_the_look_back():
    undated = item9(None, 2, oid="undated")
    alone = depression(undated)
    assert alone.flags == ("suicidality",) and alone.flag_answers["suicidality"].time is None
    assert any("(date not recorded)" in r for r in alone.reasons)
    assert depression(undated, item9(3, 0)).flags == ()                 # a dated answer decides
    partial = item9(None, 1, when=NOW.strftime("%Y-%m"))                  # a month only: cannot be ordered
    assert depression(partial).flags == ("suicidality",)


def test_unusable_answers_do_not_count():
    bad = obs(ITEM9, when=ago(2), valueInteger=4)                          # outside 0-3
    eie = item9(2, 3, status="entered-in-error")
    future = item9(-5, 3)                                                  # five days ahead of the clock
    p = build_profile([bad, eie, future, panel(30, 0)], [], [], NOW)
    assert p.modulators["depression"].flags == ()
    assert any("outside 0-3" in r.reason for r in p.rejected)


def test_profile_json_carries_the_deciding_answer():
    d = build_profile([panel(20, 1, oid="p"), total_only(1, 2)], [], [], NOW).to_dict()
    fa = d["modulators"]["depression"]["flagAnswers"]["suicidality"]
    assert (fa["ref"], fa["value"], fa["item"], fa["date"][:10]) == ("Observation/p", 1, "http://loinc.org|44260-8",
                                                                      day(20))


@pytest.mark.parametrize("observations, ref", [
    pytest.param(lambda: [panel(20, 2, oid="phq-panel"), total_only(2, 3)], "Observation/phq-panel",
                 id="later-total-only"),
    pytest.param(lambda: [total_only(30, 4), item9(3, 1, oid="item9")], "Observation/item9", id="standalone"),
])
def test_the_safety_alert_follows_the_flag(observations, ref):
    """Through the rules' single entry point: the patient-view item 9 alert appears and cites the answer."""
    from fhir_pain.evaluate import evaluate
    data = PatientData(patient_id="pat-1", now=NOW, observations=observations())
    alerts = [f for f in evaluate(data, "patient-view") if f.rule == "fhir-pain/safety/phq9-item9"]
    assert len(alerts) == 1 and ref in alerts[0].evidence
    cleared = PatientData(patient_id="pat-1", now=NOW, observations=observations() + [item9(1, 0)])
    assert not [f for f in evaluate(cleared, "patient-view") if f.rule == "fhir-pain/safety/phq9-item9"]


def test_the_pain_prefetch_template_fetches_standalone_flagged_items():
    from fhir_pain.services import prefetch_templates
    template = prefetch_templates()["painAssessments"]
    codes = template.partition("&code=")[2].split(",")
    flagged = {c.rsplit("|", 1)[-1] for i in knowledge().instruments.values() if i.items for c in i.items.flags}
    assert flagged == {ITEM9} and flagged <= set(codes)
    assert "44250-9" not in codes                  # other items stay out: the URL stays short
    assert len(codes) == len(set(codes)) and len(template) < 1024


def test_decide_flags_with_only_a_year_dated_answer_before_the_look_back_raises_no_flag():
    # was ValueError (max of nothing) in decide_flags: the whole pain profile was lost
    old = item9(None, 2, when=str(NOW.year - 2))    # a valid FHIR date, a year only, long before the look-back
    m = depression(old)
    assert m.flags == () and m.flag_answers == {}
