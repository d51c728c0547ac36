"""The dashboard's view rows from realistic FHIR: daily MME from opioid requests over time, analgesic bands and
their ends, the trial window, and the charts' drawn data (gid -> class + data attributes) for each row."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from fhir_pain.dashboard import charts, view
from fhir_pain.facts import PatientData

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


def _opioid(rid: str, code: str, display: str, dose: float, per_day: int, *, start: int, unit: str = "mg",
            status: str = "active", supply_days: int | None = None) -> dict:
    req = {
        "resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
        "subject": {"reference": "Patient/p1"}, "authoredOn": _day(start),
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}],
                                      "text": display},
        "dosageInstruction": [{"timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                               "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit,
                                                                 "system": "http://unitsofmeasure.org",
                                                                 "code": unit}}]}],
    }
    if supply_days is not None:
        req["dispenseRequest"] = {"expectedSupplyDuration": {"value": supply_days, "unit": "days",
                                                             "system": "http://unitsofmeasure.org", "code": "d"}}
    return req


def _nrs(oid: str, value: int, days_ago: int) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
            "effectiveDateTime": f"{_day(days_ago)}T10:00:00Z", "valueInteger": value}


def _patient() -> PatientData:
    return PatientData(
        patient_id="p1", now=NOW,
        patient={"resourceType": "Patient", "id": "p1", "name": [{"given": ["Rosa"], "family": "Test"}]},
        observations=[_nrs("n1", 8, 40), _nrs("n2", 7, 20), _nrs("n3", 5, 2)],
        medication_requests=[
            # hydrocodone/APAP 5/325, 2 tablets x 4/day = 40 mg = 40 MME/d, 14 days' supply from 40 days ago
            _opioid("hc", "857002", "acetaminophen 325 MG / hydrocodone bitartrate 5 MG Oral Tablet", 2, 4,
                    unit="{tbl}", start=40, status="completed", supply_days=14),
            # oxycodone 5 mg x 4/day = 20 mg x 1.5 = 30 MME/d, active since 10 days ago
            _opioid("oxy", "1049621", "oxycodone hydrochloride 5 MG Oral Tablet", 5, 4, start=10),
        ])


def test_daily_mme_follows_each_request_over_its_period():
    v = view.build(_patient())
    by_day = {d.day.isoformat(): d for d in v.mme}
    assert by_day[_day(0)].total == 30.0                 # oxycodone alone today
    assert by_day[_day(33)].total == 40.0                # inside the hydrocodone supply (40..26 days ago)
    assert by_day[_day(20)].total == 0.0                 # between the two
    assert v.mme[0].day.isoformat() == _day(41)          # the chart starts the day before the first opioid


def test_bands_end_at_the_supply_or_now_and_name_the_ingredient():
    v = view.build(_patient())
    bands = {b.ref: b for b in v.bands}
    assert bands["MedicationRequest/hc"].end - bands["MedicationRequest/hc"].start == timedelta(days=14)
    assert bands["MedicationRequest/oxy"].end == NOW and bands["MedicationRequest/oxy"].status == "active"
    assert "oxycodone" in bands["MedicationRequest/oxy"].drug


def test_charts_mark_every_drawn_datum_with_its_values():
    v = view.build(_patient())
    pain = str(charts.pain_chart(v))
    points = re.findall(r'<g id="pain-point-\d+" class="point" data-instrument="nrs" data-value="([\d.]+)" '
                        r'data-date="([\d-]+)"', pain)
    assert points == [("8", _day(40)), ("7", _day(20)), ("5", _day(2))]
    assert len(re.findall(r'class="band"', pain)) == 2
    assert pain.startswith("<svg ") and "<script" not in pain and 'href="http' not in pain   # nothing to fetch
    mme = str(charts.mme_chart(v))
    assert re.search(rf'class="day" data-date="{_day(0)}" data-value="30" data-readable="yes"', mme)
    assert re.findall(r'class="threshold" data-value="(\d+)"', mme) == ["50", "90"]


def test_patient_text_in_a_chart_is_escaped():
    data = _patient()
    data.medication_requests[1]["medicationCodeableConcept"]["text"] = "oxycodone <script>alert(1)</script>"
    svg = str(charts.pain_chart(view.build(data)))
    assert "<script" not in svg


def test_no_data_gives_no_chart_and_no_error():
    v = view.build(PatientData(patient_id="empty", now=NOW))
    assert charts.pain_chart(v) is None and charts.psych_chart(v) is None and charts.mme_chart(v) is None
    assert v.name == "(no name)" and not v.genes and not v.advice
