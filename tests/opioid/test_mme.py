"""MME per day from realistic MedicationRequests: every ingredient with a CDC 2022 factor, tablets, liquids (mg/mL),
patches (mcg/h), combination products, PRN orders with maxDosePerPeriod, dose ranges, timing codes; and the orders
whose dose cannot be read (no number, a reason). Each figure is worked by hand in its row's comment:
daily amount of the opioid x the CDC 2022 factor (profiles/opioid/rules.json, checked below against the copies of
CDC's table in reference/opioid/)."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from fhir_pain import pgx
from fhir_pain.opioid import classify, daily_mme
from fhir_pain.opioid.knowledge import rules

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "opioid"


def q(value, unit):
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def order(code, display, *, dose=None, rng=None, freq=None, period=None, unit="h", period_max=None, freq_max=None,
          timing_code=None, prn=False, max_per=None, mid="rx1", status="active"):
    di: dict = {}
    if dose is not None:
        di["doseAndRate"] = [{"doseQuantity": q(*dose)}]
    if rng is not None:
        di["doseAndRate"] = [{"doseRange": {"low": q(*rng[0]), "high": q(*rng[1])} if rng[1] else {"low": q(*rng[0])}}]
    if freq is not None:
        rep = {"frequency": freq, "period": period, "periodUnit": unit}
        if period_max:
            rep["periodMax"] = period_max
        if freq_max:
            rep["frequencyMax"] = freq_max
        di["timing"] = {"repeat": rep}
    if timing_code:
        di["timing"] = {"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
                                             "code": timing_code}]}}
    if prn:
        di["asNeededBoolean"] = True
    if max_per:
        di["maxDosePerPeriod"] = {"numerator": q(*max_per[0]), "denominator": q(max_per[1], "d")}
    concept = {"coding": [{"system": RXNORM, "code": code, "display": display}] if code else [], "text": display}
    mr = {"resourceType": "MedicationRequest", "id": mid, "status": status, "intent": "order",
          "medicationCodeableConcept": concept, "subject": {"reference": "Patient/p1"}}
    if di:
        mr["dosageInstruction"] = [di]
    return mr


def mme_of(*resources):
    return daily_mme([classify(pgx.identify(r)) for r in resources])


# (order, expected MME/d, ingredient) -- the working in each comment
TABLE = [
    # oxycodone 5 mg tab, 1 every 4 h: 6/d x 5 mg = 30 mg x 1.5 = 45.0
    (order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", dose=(1, "{tbl}"), freq=1, period=4), "45.0",
     "oxycodone"),
    # acetaminophen/oxycodone 325/5, 2 tabs every 6 h: 8 tabs x 5 mg = 40 mg x 1.5 = 60.0 (acetaminophen ignored)
    (order("1049221", "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet", dose=(2, "{tbl}"), freq=1,
           period=6), "60.0", "oxycodone"),
    # acetaminophen/hydrocodone 325/5, 1 tab TID (timing code): 3 x 5 mg = 15 mg x 1 = 15.0
    (order("857002", "acetaminophen 325 MG / hydrocodone bitartrate 5 MG Oral Tablet", dose=(1, "{tbl}"),
           timing_code="TID"), "15.0", "hydrocodone"),
    # 12 h morphine ER 30 mg, 1 tab every 12 h: 2 x 30 = 60 mg x 1 = 60.0
    (order("891885", "12 HR morphine sulfate 30 MG Extended Release Oral Tablet", dose=(1, "{tbl}"), freq=1,
           period=12), "60.0", "morphine"),
    # morphine 2 mg/mL solution, 5 mL every 4 h PRN, at most 20 mL/day: 6 x 5 mL = 30 mL > cap 20 mL;
    # 20 mL x 2 mg/mL = 40 mg x 1 = 40.0
    (order("892589", "morphine sulfate 2 MG/ML Oral Solution", dose=(5, "mL"), freq=1, period=4, prn=True,
           max_per=((20, "mL"), 1)), "40.0", "morphine"),
    # hydromorphone 2 mg tab, 1-2 tabs every 4-6 h: the most, 2 tabs x 6/d = 12 tabs x 2 mg = 24 mg x 5 = 120.0
    (order("897696", "hydromorphone hydrochloride 2 MG Oral Tablet", rng=((1, "{tbl}"), (2, "{tbl}")), freq=1,
           period=4, period_max=6), "120.0", "hydromorphone"),
    # hydromorphone 1 mg/mL solution, 2 mL every 6 h: 4 x 2 mL x 1 mg/mL = 8 mg x 5 = 40.0
    (order("897657", "hydromorphone hydrochloride 1 MG/ML Oral Solution", dose=(2, "mL"), freq=1, period=6), "40.0",
     "hydromorphone"),
    # methadone 10 mg tab, 1 every 8 h: 3 x 10 = 30 mg x 4.7 = 141.0
    (order("864706", "methadone hydrochloride 10 MG Oral Tablet", dose=(1, "{tbl}"), freq=3, period=1, unit="d"),
     "141.0", "methadone"),
    # methadone 10 mg/mL solution, 0.5 mL BID: 2 x 0.5 mL x 10 mg/mL = 10 mg x 4.7 = 47.0
    (order("991147", "methadone hydrochloride 10 MG/ML Oral Solution", dose=(0.5, "mL"), timing_code="BID"), "47.0",
     "methadone"),
    # fentanyl 25 mcg/h patch, 1 every 72 h: 25 mcg/h x 2.4 = 60.0 (the change interval does not matter)
    (order("245134", "72 HR fentanyl 0.025 MG/HR Transdermal System", dose=(1, "{patch}"), freq=1, period=72), "60.0",
     "fentanyl"),
    # fentanyl 50 mcg/h, 2 patches at once: 100 mcg/h x 2.4 = 240.0
    (order("245135", "72 HR fentanyl 0.05 MG/HR Transdermal System", dose=(2, "{patch}"), freq=1, period=3,
           unit="d"), "240.0", "fentanyl"),
    # fentanyl patch known by its name only (no code): "fentanyl 12 mcg/hr patch", 1 patch: 12 x 2.4 = 28.8
    (order(None, "fentanyl 12 mcg/hr transdermal patch", dose=(1, "{patch}"), freq=1, period=72), "28.8", "fentanyl"),
    # tramadol 50 mg, 1-2 tabs every 6 h PRN, at most 8 tabs/day: 2 x 4 = 8 tabs = cap; 400 mg x 0.2 = 80.0
    (order("835603", "tramadol hydrochloride 50 MG Oral Tablet", rng=((1, "{tbl}"), (2, "{tbl}")), freq=1, period=6,
           prn=True, max_per=((8, "{tbl}"), 1)), "80.0", "tramadol"),
    # tramadol 100 mg (dose in mg) every 6 h, at most 300 mg/day: 400 mg > cap 300 mg; 300 x 0.2 = 60.0
    (order("835603", "tramadol hydrochloride 50 MG Oral Tablet", dose=(100, "mg"), freq=4, period=1, unit="d",
           max_per=((300, "mg"), 1)), "60.0", "tramadol"),
    # tapentadol 50 mg, 1 every 4 h, at most 600 mg/day: 6 x 50 = 300 mg (under the cap) x 0.4 = 120.0
    (order("825411", "tapentadol 50 MG Oral Tablet", dose=(1, "{tbl}"), freq=1, period=4,
           max_per=((600, "mg"), 1)), "120.0", "tapentadol"),
    # oxymorphone 5 mg, 1 every 6 h: 4 x 5 = 20 mg x 3 = 60.0
    (order("977939", "oxymorphone hydrochloride 5 MG Oral Tablet", dose=(1, "{tbl}"), freq=1, period=6), "60.0",
     "oxymorphone"),
    # acetaminophen/codeine 300/30, 2 tabs every 4 h: 12 tabs x 30 = 360 mg x 0.15 = 54.0
    (order("993781", "acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet", dose=(2, "{tbl}"), freq=1,
           period=4), "54.0", "codeine"),
    # acetaminophen/codeine solution by name only, 2.4 mg/mL codeine, 12.5 mL every 6 h:
    # 4 x 12.5 mL x 2.4 mg/mL = 120 mg x 0.15 = 18.0
    (order(None, "acetaminophen 24 MG/ML / codeine phosphate 2.4 MG/ML Oral Solution", dose=(12.5, "mL"), freq=1,
           period=6), "18.0", "codeine"),
    # codeine 15 mg TID by name: 45 mg x 0.15 = 6.75 -> 6.8 (half up)
    (order(None, "codeine sulfate 15 MG Oral Tablet", dose=(1, "{tbl}"), timing_code="TID"), "6.8", "codeine"),
    # oxycodone 5 mg tab dosed 7.5 mg every 6 h: 4 x 7.5 = 30 mg x 1.5 = 45.0
    (order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", dose=(7.5, "mg"), freq=4, period=1, unit="d"),
     "45.0", "oxycodone"),
    # hydrocodone 7.5 mg combination by name, 1 every 4 h PRN, frequencyMax 6 per day:
    # 6 x 7.5 = 45 mg x 1 = 45.0
    (order(None, "acetaminophen 325 MG / hydrocodone bitartrate 7.5 MG Oral Tablet", dose=(1, "{tbl}"), freq=4,
           freq_max=6, period=1, unit="d", prn=True), "45.0", "hydrocodone"),
    # tramadol/acetaminophen 37.5/325 by name, 1 every 6 h: 4 x 37.5 = 150 mg x 0.2 = 30.0
    (order(None, "acetaminophen 325 MG / tramadol hydrochloride 37.5 MG Oral Tablet", dose=(1, "{tbl}"), freq=1,
           period=6), "30.0", "tramadol"),
    # morphine 15 mg tab, 1 each morning and evening (timeOfDay 2): 30 mg x 1 = 30.0
    (order("892582", "morphine sulfate 15 MG Oral Tablet", dose=(1, "{tbl}"), timing_code="BID"), "30.0", "morphine"),
    # oxycodone 5 mg, 1 weekly 14 times: 14/7 = 2/d x 5 = 10 mg x 1.5 = 15.0
    (order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", dose=(1, "{tbl}"), freq=14, period=1, unit="wk"),
     "15.0", "oxycodone"),
]


@pytest.mark.parametrize("resource,expected,ingredient", TABLE,
                         ids=[r[0]["medicationCodeableConcept"]["text"][:60] for r in TABLE])
def test_mme_of_one_order_is_worked_by_hand(resource, expected, ingredient):
    result = mme_of(resource)
    assert result.total == Decimal(expected)
    assert result.by_ingredient == {ingredient: Decimal(expected)}
    assert result.to_contract() == {"total": float(expected), "byIngredient": {ingredient: float(expected)},
                                    "unit": "MME/d"}


def test_total_sums_active_and_draft_orders_per_ingredient():
    # 60.0 (morphine ER 30 mg q12h) + 45.0 (oxycodone 5 mg q4h) + 45.0 (oxycodone draft 7.5 mg QID) = 150.0
    result = mme_of(TABLE[3][0] | {"id": "a1"}, TABLE[0][0] | {"id": "a2"},
                    TABLE[19][0] | {"id": "d1", "status": "draft"})
    assert result.total == Decimal("150.0")
    assert result.by_ingredient == {"morphine": Decimal("60.0"), "oxycodone": Decimal("90.0")}


UNREADABLE = [
    # no CDC factor for fentanyl other than the patch
    (order("668363", "fentanyl 0.1 MG Buccal Tablet", dose=(1, "{tbl}"), freq=4, period=1, unit="d"), "transdermal"),
    # meperidine: no CDC 2022 factor
    (order("861455", "meperidine hydrochloride 100 MG Oral Tablet", dose=(1, "{tbl}"), freq=1, period=4),
     "no CDC 2022 conversion factor"),
    # as needed, no frequency, no maximum
    (order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", dose=(1, "{tbl}"), prn=True), "as-needed"),
    # a volume for a tablet
    (order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", dose=(5, "mL"), freq=1, period=4), "mL"),
    # mg of a combination product: either ingredient
    (order("1049221", "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet", dose=(5, "mg"), freq=1,
           period=4), "combination"),
    # tablets of a liquid
    (order("892589", "morphine sulfate 2 MG/ML Oral Solution", dose=(1, "{tbl}"), freq=1, period=4), "volume"),
    # no strength anywhere: "oxycodone tablet"
    (order(None, "oxycodone tablet", dose=(1, "{tbl}"), freq=1, period=4), "strength"),
    # a dose range without an upper bound
    (order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", rng=((1, "{tbl}"), None), freq=1, period=4),
     "upper bound"),
    # no dosage at all
    (order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet"), "no dosage instruction"),
]


@pytest.mark.parametrize("resource,why", UNREADABLE, ids=[w for _, w in UNREADABLE])
def test_unreadable_dose_gives_a_reason_and_no_number(resource, why):
    with_readable = mme_of(resource, TABLE[0][0] | {"id": "other"})
    assert with_readable.total is None and with_readable.to_contract() is None
    bad = with_readable.unreadable
    assert len(bad) == 1 and bad[0].ref == "MedicationRequest/rx1" and why in bad[0].reason
    assert with_readable.known_total == Decimal("45.0")   # what was read, a lower bound only


def test_buprenorphine_is_named_as_excluded_and_counts_nothing():
    # 7-day buprenorphine 20 mcg/h patch + oxycodone 45.0: total 45.0, buprenorphine excluded
    bup = order("904876", "168 HR buprenorphine 0.02 MG/HR Transdermal System", dose=(1, "{patch}"), freq=1, period=7,
                unit="d", mid="bup")
    result = mme_of(bup, TABLE[0][0])
    assert result.total == Decimal("45.0")
    assert result.by_ingredient == {"oxycodone": Decimal("45.0")}
    assert [o.excluded for o in result.orders if o.ref == "MedicationRequest/bup"] == [("buprenorphine",)]


def test_factors_are_cdc_2022_as_the_reference_copies_state_them():
    shared = json.loads((REFERENCE / "mme-conversion-factors-cdc2022.json").read_text())["factors"]
    codesystem = json.loads((REFERENCE / "codesystem-CDCMMEClinicalConversionFactors.json").read_text())["concept"]
    ours = rules()["factors"]
    for f in shared:
        name = f["ingredient"].split(" (")[0]
        assert Decimal(ours[name]["factor"]) == Decimal(str(f["factor"])), name
        assert ours[name]["rxnorm"] == f["rxcui"]
    for c in codesystem:
        props = {p["code"]: p.get("valueDecimal", p.get("valueString")) for p in c["property"]}
        name = c["display"].lower()
        if name == "fentanyl":
            # CodeSystem: mg/h x 7200 mg/day-factor x 1/3 doses a day = mcg/h x 2.4
            assert Decimal("0.001") * Decimal(7200) * Decimal(1) / Decimal(3) == Decimal(ours[name]["factor"])
        else:
            assert Decimal(str(props["conversion-factor"])) == Decimal(ours[name]["factor"]), name
    table = (REFERENCE / "conversion-factors.md").read_text()
    for name, f in ours.items():
        assert f"| {Decimal(f['factor']):.2f}".rstrip("0") in table.replace(" | ", "| ") or f["factor"] in table
