"""Observations -> scores: totals as sent, totals computed from items (components, hasMember, loose items),
value and unit variants, and what is rejected (recorded, not used)."""
from __future__ import annotations

import pytest

from fhir_pain.pain.knowledge import knowledge
from fhir_pain.pain.scoring import read_scores
from tests.pain.fhir import LOINC, PROJECT, ago, answer, comp, obs, qty

KN = knowledge()
PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
FREQ = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]   # Not at all .. Nearly every day = 0..3


def scores(*observations, code_map=None):
    return read_scores(list(observations), KN, code_map)


def one(*observations, **kw):
    got, rejected = scores(*observations, **kw)
    assert len(got) == 1, (got, rejected)
    return got[0], rejected


# ---- totals as the EHR sends them ---------------------------------------------------------------------------

@pytest.mark.parametrize("code, system, key, value", [
    ("72514-3", LOINC, "nrs", 7), ("38208-5", LOINC, "nrs", 0), ("38221-8", LOINC, "faces", 6),
    ("91147-9", LOINC, "peg", 5.67), ("77565-0", LOINC, "bpi-interference", 4.3), ("44261-6", LOINC, "phq9", 14),
    ("44249-1", LOINC, "phq9", 27), ("55758-7", LOINC, "phq2", 3), ("70274-6", LOINC, "gad7", 11),
    ("89209-1", LOINC, "bdi2", 22), ("77865-4", LOINC, "promis-pi", 58.6), ("97909-6", LOINC, "odi", 32),
    ("pcs-total", PROJECT, "pcs", 31), ("dn4-total", PROJECT, "dn4", 5),
    ("paindetect-total", PROJECT, "paindetect", -1),
    ("lanss-total", PROJECT, "lanss", 14), ("slanss-total", PROJECT, "slanss", 12), ("csi-total", PROJECT, "csi", 44),
    ("pdi-total", PROJECT, "pdi", 35), ("sfmpq2-total", PROJECT, "sfmpq2", 3.2),
    ("sfmpq2-neuropathic", PROJECT, "sfmpq2-neuropathic", 2.5), ("bpi-severity", PROJECT, "bpi-severity", 6.25),
])
def test_every_instrument_total_is_read(code, system, key, value):
    unit = "%" if key == "odi" else "{T-score}" if key == "promis-pi" else "{score}"
    s, rejected = one(obs(code, system, when=ago(3), **qty(value, unit)))
    assert (s.instrument, s.value, s.method) == (key, value, "total") and not rejected
    assert s.evidence == (s.ref,) and s.ref.startswith("Observation/")


@pytest.mark.parametrize("value_el", [
    {"valueInteger": 7}, {"valueDecimal": 7.0}, {"valueString": "7"}, {"valueString": " 7/10 "},
    qty(7), qty(7, "1"), qty(7, "{Score}"), {"valueQuantity": {"value": 7}},
    {"valueQuantity": {"value": 7, "unit": "points"}},
])
def test_value_variants_for_a_score(value_el):
    s, _ = one(obs("72514-3", when=ago(1), **value_el))
    assert s.value == 7


@pytest.mark.parametrize("value_el, reason", [
    ({"valueInteger": 11}, "outside 0-10"), ({"valueInteger": -1}, "outside 0-10"),
    ({"valueQuantity": {"value": 70, "unit": "mm"}}, "not a score unit"),
    (qty(7, "mg/L"), "not a score unit"),
    ({"valueQuantity": {"value": "7"}}, "without a numeric value"),
    ({"valueQuantity": {"unit": "{score}"}}, "without a numeric value"),
    ({"valueQuantity": {"value": 3, "comparator": "<"}}, "comparator"),
    ({"valueInteger": True}, "not a number"), ({"valueInteger": 7.5}, "not an integer"),
    ({"valueString": "severe"}, "not a number"), ({"valueString": "7-8"}, "not a number"),
    ({"valueCodeableConcept": {"text": "moderate"}}, "answer code not recognised"),
    ({"valueRange": {"low": {"value": 6}}}, "unsupported valueRange"),
    ({"dataAbsentReason": {"coding": [{"code": "asked-declined"}]}}, "dataAbsentReason"),
    ({}, "no value"), ({"valueQuantity": {"value": float("nan")}}, "without a numeric value"),
])
def test_malformed_or_out_of_range_values_are_rejected_with_a_reason(value_el, reason):
    got, rejected = scores(obs("72514-3", when=ago(1), **value_el))
    assert got == []
    assert len(rejected) == 1 and reason in rejected[0].reason and rejected[0].instrument == "nrs"


def test_whole_number_instruments_reject_fractions():
    got, rejected = scores(obs("44261-6", when=ago(1), valueDecimal=12.5))
    assert not got and "whole-number" in rejected[0].reason


@pytest.mark.parametrize("unit, value, expected", [("cm", 6.5, 6.5), ("mm", 65, 6.5), ("{score}", 6, 6)])
def test_vas_units(unit, value, expected):
    s, _ = one(obs("38214-3", when=ago(1), **qty(value, unit)))
    assert s.value == expected


def test_vas_without_unit_is_ambiguous():
    got, rejected = scores(obs("38214-3", when=ago(1), valueInteger=65))
    assert not got and "unit is required" in rejected[0].reason


@pytest.mark.parametrize("unit, value, expected", [("mg/L", 14, 14), ("mg/dL", 1.4, 14), ("ug/mL", 14, 14)])
def test_crp_units_convert_to_mg_per_l(unit, value, expected):
    s, _ = one(obs("1988-5", when=ago(1), category="laboratory", **qty(value, unit)))
    assert s.value == pytest.approx(expected)


def test_crp_in_unknown_unit_is_rejected():
    got, rejected = scores(obs("1988-5", when=ago(1), **qty(14, "nmol/L")))
    assert not got and "nmol/l" in rejected[0].reason


def test_status_entered_in_error_and_cancelled_are_not_used():
    got, rejected = scores(obs("72514-3", when=ago(1), valueInteger=3, status="entered-in-error"),
                           obs("72514-3", when=ago(2), valueInteger=3, status="cancelled"),
                           obs("72514-3", when=ago(3), valueInteger=3, status="amended"))
    assert [s.value for s in got] == [3]
    assert {r.reason for r in rejected} == {"status entered-in-error", "status cancelled"}


def test_unrelated_observations_are_ignored():
    pgx = obs("69548-6", when=ago(1), valueCodeableConcept={"text": "*1/*4"}, category="laboratory")
    hr = obs("8867-4", when=ago(1), **qty(72, "/min"))
    assert scores(pgx, hr, {"resourceType": "Patient"}, "junk", None) == ([], [])


def test_loinc_oid_and_missing_system_are_accepted():
    a = obs("72514-3", when=ago(1), valueInteger=4)
    a["code"]["coding"][0]["system"] = "urn:oid:2.16.840.1.113883.6.1"
    b = obs("44261-6", when=ago(1), valueInteger=9)
    del b["code"]["coding"][0]["system"]
    got, _ = scores(a, b)
    assert {(s.instrument, s.value) for s in got} == {("nrs", 4), ("phq9", 9)}


# ---- totals computed from items ----------------------------------------------------------------------------

def test_peg_from_components_is_the_mean_of_three():
    peg = obs("91148-7", when=ago(2), components=[comp("75893-8", valueInteger=6), comp("91145-3", valueInteger=5),
                                                  comp("91146-1", valueInteger=7)])
    s, _ = one(peg)
    assert (s.instrument, s.value, s.method) == ("peg", 6.0, "items")


def test_peg_sent_total_wins_over_items_and_a_rounding_difference_is_not_a_conflict():
    peg = obs("91148-7", when=ago(2), components=[comp("91147-9", **qty(6)), comp("75893-8", valueInteger=6),
                                                  comp("91145-3", valueInteger=5), comp("91146-1", valueInteger=8)])
    s, _ = one(peg)
    assert (s.value, s.method, s.notes) == (6, "total", ())          # items mean 6.33, LOINC rounds: no note


def test_incomplete_peg_is_rejected():
    got, rejected = scores(obs("91148-7", when=ago(2), components=[comp("75893-8", valueInteger=6),
                                                                   comp("91146-1", valueInteger=7)]))
    assert not got and "only 2 of 3 items" in rejected[0].reason


def test_phq9_from_components_with_loinc_answer_codes_and_item9_flag():
    values = [1, 2, 1, 2, 1, 1, 1, 0, 1]
    panel = obs("44249-1", when=ago(5), components=[comp(c, **answer(FREQ[v])) for c, v in zip(PHQ9_ITEMS, values)])
    s, _ = one(panel)
    assert (s.instrument, s.value, s.method) == ("phq9", 10, "items")
    assert s.flags == ("suicidality",)


def test_phq9_panel_with_has_member_item_observations():
    when = ago(5, tz="-05:00")
    items = [obs(c, when=when, oid=f"phq-item-{i}", **answer(FREQ[2])) for i, c in enumerate(PHQ9_ITEMS)]
    items[8] = obs(PHQ9_ITEMS[8], when=when, oid="phq-item-8", **answer(FREQ[0]))
    panel = obs("44249-1", when=when, oid="phq-panel",
                members=[f"Observation/phq-item-{i}" for i in range(8)]
                + ["http://ehr.example/fhir/Observation/phq-item-8/_history/2"])
    got, rejected = scores(panel, *items)
    phq9 = [s for s in got if s.instrument == "phq9"]
    assert len(phq9) == 1 and phq9[0].value == 16 and phq9[0].flags == ()
    assert phq9[0].evidence[0] == "Observation/phq-panel" and len(phq9[0].evidence) == 10
    # PHQ-9 items 1-2 are the PHQ-2: the loose copy of them at the same time is not scored twice as PHQ-9
    assert not [r for r in rejected if r.instrument == "phq9"]


def test_phq2_from_its_two_items():
    items = [comp("44250-9", **answer(FREQ[2])), comp("44255-8", **answer(FREQ[3]))]
    panel = obs("55757-9", when=ago(3), components=items)
    s, _ = one(panel)
    assert (s.instrument, s.value, s.method) == ("phq2", 5, "items")


def test_loose_item_observations_with_the_same_time_form_one_administration():
    when = ago(10)
    items = [obs(c, when=when, valueInteger=v) for c, v in zip(GAD7_ITEMS, [2, 2, 1, 2, 1, 2, 1])]
    got, _ = scores(*items)
    s = next(s for s in got if s.instrument == "gad7")
    assert (s.value, s.method, len(s.evidence)) == (11, "items", 7)


def test_item_ordinal_extension_is_used_when_the_answer_code_is_local():
    ext = {"url": "http://hl7.org/fhir/StructureDefinition/ordinalValue", "valueDecimal": 3}
    local = {"valueCodeableConcept": {"coding": [{"system": "urn:oid:1.2.3", "code": "NEARLY", "extension": [ext]}]}}
    panel = obs("69737-5", when=ago(1), components=[comp(c, **local) for c in GAD7_ITEMS])
    s, _ = one(panel)
    assert s.value == 21


def test_sent_total_wins_and_a_mismatch_with_the_items_is_noted():
    panel = obs("44249-1", when=ago(5), valueInteger=8,
                components=[comp(c, valueInteger=1) for c in PHQ9_ITEMS])
    s, _ = one(panel)
    assert s.value == 8 and s.method == "total"
    assert s.notes == ("items give 9 but the sent total is 8; the sent total is used",)
    assert s.flags == ("suicidality",)          # item 9 still counts when the total is sent


def test_separate_total_and_panel_at_the_same_time_merge():
    when = ago(5)
    total = obs("44261-6", when=when, oid="phq-total", valueInteger=9)
    panel = obs("44249-1", when=when, oid="phq-panel", components=[comp(c, valueInteger=1) for c in PHQ9_ITEMS])
    s, _ = one(total, panel)
    assert s.value == 9 and set(s.evidence) == {"Observation/phq-total", "Observation/phq-panel"}


def test_conflicting_totals_at_the_same_time_are_both_rejected():
    when = ago(5)
    got, rejected = scores(obs("44261-6", when=when, valueInteger=9), obs("44261-6", when=when, valueInteger=15))
    assert not got and len(rejected) == 2 and all("conflicting" in r.reason for r in rejected)


def test_dn4_from_yes_no_items_boolean_and_answer_codes():
    yes, no = answer("LA33-6", "Yes"), answer("LA32-8", "No")
    comps = [comp(f"dn4-{i}", PROJECT, **(yes if i <= 3 else no)) for i in range(1, 9)]
    comps += [comp("dn4-9", PROJECT, valueBoolean=True), comp("dn4-10", PROJECT, valueBoolean=False)]
    s, _ = one(obs("dn4-total", PROJECT, when=ago(1), components=comps))
    assert (s.instrument, s.value, s.method) == ("dn4", 4, "items")


@pytest.mark.parametrize("key, prefix, n, item_value, expected", [
    ("pcs", "pcs", 13, 3, 39), ("csi", "csi", 25, 2, 50), ("pdi", "pdi", 7, 5, 35), ("sfmpq2", "sfmpq2", 22, 4, 4.0),
])
def test_project_instruments_from_items(key, prefix, n, item_value, expected):
    comps = [comp(f"{prefix}-{i}", PROJECT, valueInteger=item_value) for i in range(1, n + 1)]
    s, _ = one(obs(f"{prefix}-total", PROJECT, when=ago(1), components=comps))
    assert (s.instrument, s.value, s.method) == (key, expected, "items")


def test_out_of_range_item_is_rejected_and_the_sum_is_not_computed():
    comps = [comp(c, valueInteger=1) for c in PHQ9_ITEMS[:8]] + [comp(PHQ9_ITEMS[8], valueInteger=4)]
    got, rejected = scores(obs("44249-1", when=ago(1), components=comps))
    assert not got
    reasons = [r.reason for r in rejected]
    assert "item 44260-8: item value 4 is outside 0-3" in reasons
    assert any("only 8 of 9 items" in r for r in reasons)


def test_item_answered_twice_differently_is_a_conflict():
    comps = [comp(c, valueInteger=1) for c in GAD7_ITEMS] + [comp(GAD7_ITEMS[0], valueInteger=3)]
    got, rejected = scores(obs("69737-5", when=ago(1), components=comps))
    assert not got and "answered twice" in rejected[0].reason


def test_undated_loose_items_cannot_be_grouped():
    got, rejected = scores(*[obs(c, valueInteger=1) for c in GAD7_ITEMS])
    assert not [s for s in got if s.instrument == "gad7"]
    assert rejected and all("undated item" in r.reason for r in rejected)


def test_panel_without_value_items_or_members_is_rejected():
    got, rejected = scores(obs("44249-1", when=ago(1), dataAbsentReason={"text": "declined"}))
    assert not got and rejected[0].reason == "no value (dataAbsentReason)"


def test_malformed_structures_do_not_crash():
    weird = [
        {"resourceType": "Observation", "code": "72514-3"},
        {"resourceType": "Observation", "code": {"coding": "72514-3"}},
        {"resourceType": "Observation", "code": {"coding": [None, 5, {"code": 7}]}},
        obs("91148-7", when=ago(1), components=["x", {"code": None}, {"code": {"coding": [{"code": "75893-8"}]}}]),
        obs("44249-1", when=ago(1), members=None) | {"hasMember": "Observation/1"},
        obs("72514-3", when="not-a-date", valueInteger=3),
        obs("72514-3", when=ago(1), valueQuantity=[7]),
        obs("69725-0", when=ago(1), valueCodeableConcept={"coding": True}),
        obs("69725-0", when=ago(1), valueCodeableConcept={"coding": [{"system": ["l"], "code": {"c": 1}}]}),
        obs("69725-0", when=ago(1), valueCodeableConcept={"coding": [{"system": LOINC, "code": ["LA6568-5"]}]}),
        obs("69725-0", when=ago(1), valueCodeableConcept={"coding": [{"code": "x", "extension": {"url": 1}}]}),
        obs("44249-1", when=ago(1), component={"code": {"coding": [{"code": "44250-9"}]}}),
        {"resourceType": "Observation", "code": {"coding": [{"system": ["x"], "code": "72514-3"}]}, "valueInteger": 1},
    ]
    got, rejected = scores(*weird)
    assert [s.value for s in got] == [3] and got[0].time is None      # the undated score is kept, without a date


# ---- a site's own codes --------------------------------------------------------------------------------------

def test_site_code_map_maps_local_codes_to_instruments_and_items():
    site = "urn:oid:1.2.840.114350.1.13.0.1.7.2.707679"
    code_map = {f"{site}|3040104328": "nrs", f"{site}|777": "dn4",
                f"{site}|778": f"dn4#{PROJECT}|dn4-1", f"{site}|999": "no-such-instrument"}
    local_nrs = obs("3040104328", site, when=ago(1), valueInteger=5)
    comps = [comp("778", site, valueBoolean=True)]
    comps += [comp(f"dn4-{i}", PROJECT, valueBoolean=True) for i in range(2, 11)]
    local_dn4 = obs("777", site, when=ago(1), components=comps)
    unknown = obs("999", site, when=ago(1), valueInteger=5)
    got, _ = scores(local_nrs, local_dn4, unknown, code_map=code_map)
    assert {(s.instrument, s.value) for s in got} == {("nrs", 5), ("dn4", 10)}
    assert scores(local_nrs) == ([], [])          # without the map the local code means nothing


# ---- wrong JSON types (hostile-input battery): skipped or rejected, never a TypeError -----------------------

@pytest.mark.parametrize("status", [["final"], {"code": "final"}])
def test_read_observations_with_a_list_or_object_status_is_read_as_an_unknown_status(status):
    # was TypeError ("unhashable type: 'list'") in read_observations: the whole pain profile was lost
    s, _ = one(obs("72514-3", when=ago(1), status=status, valueInteger=7))
    assert s.value == 7


def test_answer_with_a_list_extension_url_is_not_recognised():
    # was TypeError in values._answer (unhashable url): the whole pain profile was lost
    ext = {"url": ["http://hl7.org/fhir/StructureDefinition/ordinalValue"], "valueDecimal": 3}
    local = {"valueCodeableConcept": {"coding": [{"system": "urn:oid:1.2.3", "code": "NEARLY", "extension": [ext]}]}}
    got, rejected = scores(obs("69737-5", when=ago(1), components=[comp(c, **local) for c in GAD7_ITEMS]))
    assert got == [] and any("answer code not recognised" in r.reason for r in rejected)


@pytest.mark.parametrize("dated", [
    {"effectiveDateTime": "2026-04-01T10:00:00+02:00"}, {"effectiveDateTime": "2026-04"},
    {"effectiveDateTime": "not a date"}, {"effectiveDateTime": "2026-04-01T10:00:00+02:00" + " " * 80},
    {"effectiveDateTime": 20260401, "issued": "2026-04-02T08:00:00Z"}, {"effectiveDateTime": ["2026-04-01"]},
    {"effectivePeriod": {"start": "2026-03-01", "end": "2026-03-05"}}, {"issued": "2026-04-02T08:00:00Z"}, {},
])
def test_scores_are_dated_as_fhirdates_effective_reads_them(dated):
    # the scorer reads effectiveDateTime texts through its own memo: the same answer as fhirdates.effective
    from fhir_pain.fhirdates import effective
    o = obs("72514-3", valueInteger=4)
    o.update(dated)
    got, _ = scores(o)
    assert [s.time for s in got] == [effective(o)]
