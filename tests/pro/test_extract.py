"""QuestionnaireResponse -> scored Observations (fhir_pain.pro.extract), read back by the pain engine."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_pain.fhir_models import validate
from fhir_pain.pain.engine import build_profile
from fhir_pain.pain.knowledge import knowledge
from fhir_pain.pain.scoring import read_observations
from fhir_pain.pro.extract import SID_OBSERVATION, InvalidResponse, extract, response_of
from pro_builders import CASES, observations, response, stored

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _issues(exc: InvalidResponse) -> list[str]:
    outcome = exc.outcome()
    validate(outcome)
    return [i["diagnostics"] for i in outcome["issue"]]


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_instrument_gives_observations_the_engine_scores_as_the_items_say(key):
    scores, total = CASES[key]
    bundle = extract(response(key))
    validate(bundle)
    assert bundle["type"] == "transaction"
    obs = observations(bundle)
    for o in obs:
        assert o["status"] == "final" and o["subject"] == {"reference": "Patient/pat-1"}
        assert o["effectiveDateTime"] == "2026-11-30T09:15:00+01:00"
        assert o["category"][0]["coding"][0]["code"] == "survey"
        assert o["derivedFrom"] == [{"reference": "QuestionnaireResponse/x0"}]
    reading = read_observations(obs, knowledge())
    assert reading.rejected == []
    [score] = [s for s in reading.scores if s.instrument == key]
    assert score.value == total and score.notes == ()      # no "items give X but the total is Y"
    if key == "nrs":
        assert len(obs) == 1 and obs[0]["valueInteger"] == 7
    elif key == "phq2":       # its items are PHQ-9's: alone they would read as an incomplete PHQ-9
        assert len(obs) == 1 and obs[0]["valueInteger"] == 3 and "hasMember" not in obs[0]
    else:
        [head] = [o for o in obs if "hasMember" in o]
        assert len(obs) == len(scores) + 1 and len(head["hasMember"]) == len(scores)
        assert set(score.evidence) == {f"Observation/{o['id']}" for o in obs}   # every item is its evidence


def test_peg_is_the_mean_of_its_items_as_a_score_quantity():
    bundle = extract(response("peg", [5, 6, 6]))
    [total] = [o for o in observations(bundle) if "hasMember" in o]
    assert total["code"]["coding"][0]["code"] == "91147-9"
    assert total["valueQuantity"] == {"value": 5.67, "unit": "{score}", "system": "http://unitsofmeasure.org",
                                      "code": "{score}"}


def test_phq9_item9_above_zero_raises_the_engines_suicidality_flag():
    obs = observations(extract(response("phq9", [0, 1, 0, 0, 0, 0, 0, 0, 2])))
    profile = build_profile(obs, [], [], NOW)
    depression = profile.modulators["depression"]
    assert "suicidality" in depression.flags
    item9 = next(o for o in obs if o["code"]["coding"][0]["code"] == "44260-8")
    assert item9["valueCodeableConcept"]["coding"][0]["code"] == "LA6570-1"

    calm = observations(extract(response("phq9", [0, 1, 0, 0, 0, 0, 0, 0, 0])))
    assert "suicidality" not in getattr(build_profile(calm, [], [], NOW).modulators.get("depression"), "flags", ())


def test_the_response_is_in_the_bundle_with_an_identifier_when_it_has_no_id():
    qr = response("gad7")
    bundle = extract(qr)
    first = bundle["entry"][0]
    assert first["resource"]["resourceType"] == "QuestionnaireResponse" and "id" not in first["resource"]
    assert first["resource"]["item"] == qr["item"]
    assert first["request"]["ifNoneExist"].startswith("_tag=https://fhir-pain.io/fhir/sid/questionnaire-response|")


def test_a_stored_response_is_referenced_not_sent_again():
    bundle = extract({**response("gad7"), "id": "qr-77"})
    assert all(e["resource"]["resourceType"] == "Observation" for e in bundle["entry"])
    assert all(e["resource"]["derivedFrom"] == [{"reference": "QuestionnaireResponse/qr-77"}] for e in bundle["entry"])


def test_the_same_response_twice_gives_the_same_conditional_creates_and_other_answers_other_ones():
    one, again = extract(response("phq9")), extract(copy.deepcopy(response("phq9")))
    assert one == again
    for entry in one["entry"]:
        tag = entry["resource"]["meta"]["tag"][0]
        assert entry["request"] == {"method": "POST", "url": entry["resource"]["resourceType"],
                                    "ifNoneExist": f"_tag={tag['system']}|{tag['code']}"}
    idents = {e["resource"]["identifier"][0]["value"] for e in one["entry"][1:]}
    other = extract(response("phq9", [1, 2, 0, 1, 1, 0, 2, 1, 0]))
    assert idents.isdisjoint(e["resource"]["identifier"][0]["value"] for e in other["entry"][1:])
    later = extract(response("phq9", authored="2026-12-07T09:15:00+01:00"))
    assert idents.isdisjoint(e["resource"]["identifier"][0]["value"] for e in later["entry"][1:])
    assert all(e["resource"]["identifier"][0]["system"] == SID_OBSERVATION for e in one["entry"][1:])


def test_a_response_to_loincs_own_phq9_form_is_scored_as_ours():
    """LHC-Forms and the NLM form builder name the form http://loinc.org/q/44249-1 and the items "/<LOINC code>"."""
    ours = response("phq9")
    loinc = copy.deepcopy(ours)
    loinc["questionnaire"] = "http://loinc.org/q/44249-1"
    codes = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
    for item, code in zip(loinc["item"], codes):
        item["linkId"] = f"/{code}"
    loinc["item"].append({"linkId": "/44261-6", "text": "Patient Health Questionnaire 9 item (PHQ-9) total score",
                          "answer": [{"valueInteger": 9}]})
    assert extract(loinc)["entry"][1:] == extract(ours)["entry"][1:]
    loinc["item"][-1]["answer"] = [{"valueInteger": 10}]
    with pytest.raises(InvalidResponse, match="the total sent"):
        extract(loinc)


def test_items_nested_in_groups_are_found():
    assert extract(response("phq9", grouped=True))["entry"][1:] == extract(response("phq9"))["entry"][1:]


def test_missing_items_are_named_and_nothing_is_extracted():
    qr = response("phq9")
    del qr["item"][8], qr["item"][2]
    with pytest.raises(InvalidResponse) as err:
        extract(qr)
    assert err.value.status == 422
    [message] = _issues(err.value)
    assert message.startswith("2 of 9 Patient Health Questionnaire-9 (PHQ-9) items missing: phq9-3 (Trouble "
                              "falling or staying asleep")
    assert "phq9-9 (Thoughts that you would be better off dead" in message


def test_an_item_with_an_empty_answer_counts_as_missing():
    qr = response("gad7")
    qr["item"][0]["answer"] = []
    with pytest.raises(InvalidResponse, match="1 of 7 .* items missing: gad7-1"):
        extract(qr)


@pytest.mark.parametrize("key, index, bad, why", [
    ("phq9", 0, {"valueCoding": {"system": "http://loinc.org", "code": "LA33-6"}}, "answer options"),
    ("phq9", 0, {"valueInteger": 2}, "answer options"),
    ("phq9", 0, {"valueCoding": {"system": ["http://loinc.org"], "code": "LA6569-3"}}, "answer options"),
    ("peg", 1, {"valueInteger": 11}, "11 is outside 0-10"),
    ("peg", 1, {"valueDecimal": 5.5}, "must be a valueInteger"),
    ("pcs", 4, {"valueInteger": -1}, "-1 is outside 0-4"),
    ("dn4", 2, {"valueString": "yes"}, "must be a valueBoolean"),
    ("nrs", 0, {"valueInteger": True}, "must be a valueInteger"),
])
def test_an_answer_the_form_does_not_allow_is_refused_by_item(key, index, bad, why):
    qr = response(key)
    qr["item"][index]["answer"] = [bad]
    with pytest.raises(InvalidResponse) as err:
        extract(qr)
    [message] = _issues(err.value)
    assert message.startswith(f"item {qr['item'][index]['linkId']}: ") and why in message


def test_every_problem_is_reported_at_once():
    qr = response("gad7")
    qr.update(status="in-progress", subject={"reference": "Group/7"}, authored="yesterday")
    qr["item"].append({"linkId": "gad7-extra", "answer": [{"valueInteger": 1}]})
    qr["item"].append(copy.deepcopy(qr["item"][0]))
    with pytest.raises(InvalidResponse) as err:
        extract(qr)
    messages = _issues(err.value)
    assert any("status must be completed or amended" in m for m in messages)
    assert any("subject must reference the patient" in m for m in messages)
    assert any("authored must be a FHIR dateTime" in m for m in messages)
    assert any("'gad7-extra' is not an item of" in m for m in messages)
    assert any("'gad7-1' appears twice" in m for m in messages)


@pytest.mark.parametrize("field, value", [("subject", {"reference": "Patient/p1\n"}),
                                          ("authored", "2026-11-30T09:15:00Z\n"), ("authored", "2026-11-30T09:15Z")])
def test_a_subject_or_time_with_trailing_junk_is_refused(field, value):
    with pytest.raises(InvalidResponse, match=field):
        extract({**response("nrs"), field: value})


def test_a_sent_total_must_agree_with_the_items():
    qr = response("phq9")
    qr["item"].append({"linkId": "phq9-total", "answer": [{"valueInteger": 9}]})
    assert extract(qr)["entry"][-1]["resource"]["valueInteger"] == 9
    qr["item"][-1]["answer"] = [{"valueInteger": 12}]
    with pytest.raises(InvalidResponse, match=r"the total sent \(12\) is not the items' score \(9\)"):
        extract(qr)


def test_an_unknown_questionnaire_names_the_known_ones():
    with pytest.raises(InvalidResponse) as err:
        extract({**response("phq9"), "questionnaire": "http://example.org/Questionnaire/bpi"})
    assert "is not one this service scores" in str(err.value) and "Questionnaire/phq9" in str(err.value)
    with pytest.raises(InvalidResponse):   # the right form in another version
        extract({**response("phq9"), "questionnaire": "https://fhir-pain.io/fhir/Questionnaire/phq9|0.9"})


def test_sdc_parameters_and_bare_responses_are_both_accepted():
    qr = response("nrs")
    assert response_of({"resourceType": "Parameters",
                        "parameter": [{"name": "questionnaire-response", "resource": qr}]}) is qr
    assert response_of(qr) is qr
    for body in ({"resourceType": "Patient"}, [], {"resourceType": "Parameters", "parameter": []}):
        with pytest.raises(InvalidResponse) as err:
            response_of(body)
        assert err.value.status == 400


def test_stored_resources_keep_the_extracted_links():
    resources = stored(extract(response("dn4")))
    assert resources[0]["resourceType"] == "QuestionnaireResponse"
    total = resources[-1]
    assert total["code"]["coding"][0]["code"] == "dn4-total" and total["valueInteger"] == 5
    assert [m["reference"] for m in total["hasMember"]] == [f"Observation/x{i}" for i in range(1, 11)]


_KEYS = st.sampled_from(["system", "code", "linkId", "answer", "item", "reference", "valueCoding", "valueInteger",
                         "valueBoolean"]) | st.text(max_size=8)
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda children: st.one_of(st.lists(children, max_size=3),
                                                st.dictionaries(_KEYS, children, max_size=3)), max_leaves=12)
_FIELDS = ["questionnaire", "status", "subject", "authored", "item", "identifier", "id"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(CASES)), field=st.sampled_from(_FIELDS), index=st.integers(0, 12),
       where=st.sampled_from(["field", "answer", "answer-value", "item"]), junk=_json)
def test_any_mangled_response_is_scored_or_refused_never_a_crash(key, field, index, where, junk):
    qr = response(key)
    items = qr["item"]
    i = index % len(items)
    if where == "field":
        qr[field] = junk
    elif where == "answer":
        items[i]["answer"] = junk
    elif where == "answer-value":
        items[i]["answer"] = [{next(iter(items[i]["answer"][0])): junk}]
    else:
        items[i] = junk
    try:
        bundle = extract(qr)
    except InvalidResponse as exc:
        assert exc.status in (400, 422) and exc.outcome()["issue"]
    else:
        assert bundle["type"] == "transaction"
