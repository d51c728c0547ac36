"""The demo patients (valid R4, each scenario's data present), the prefetch search, the request builder, and
``fhir-pain demo`` end to end through the three services."""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest

from cds_hooks.templates import render
from fhir_pain.demo import catalog
from fhir_pain.demo.bundle_search import UnsupportedQuery, search
from fhir_pain.demo.hook_requests import build_request, draft_order

PATIENTS = catalog.patients()
LOINC, RXNORM = "http://loinc.org", "http://www.nlm.nih.gov/research/umls/rxnorm"
TBD = "http://hl7.org/fhir/uv/genomics-reporting/CodeSystem/tbd-codes-cs"


def _resources(patient_id: str, rtype: str | None = None) -> list[dict]:
    pool = catalog.resources_of(catalog.patient(patient_id).bundle())
    return [r for r in pool if rtype is None or r["resourceType"] == rtype]


def _codes(concept: dict | None) -> set[tuple[str, str]]:
    return {(c.get("system"), c.get("code")) for c in (concept or {}).get("coding", [])}


def _observations_with(patient_id: str, system: str, code: str) -> list[dict]:
    return [o for o in _resources(patient_id, "Observation") if (system, code) in _codes(o.get("code"))]


def _component(obs: dict, system: str, code: str) -> dict | None:
    return next((c for c in obs.get("component", []) if (system, code) in _codes(c.get("code"))), None)


def _active_ingredients(patient_id: str) -> set[str]:
    return {c["code"] for m in _resources(patient_id, "MedicationRequest") if m["status"] == "active"
            for c in m["medicationCodeableConcept"]["coding"] if c["system"] == RXNORM}


# ---- the bundles ------------------------------------------------------------------------------------------------

def test_at_least_twelve_patients_with_unique_ids_and_scenario_names():
    assert len(PATIENTS) >= 12
    assert len({p.id for p in PATIENTS}) == len(PATIENTS)
    names = [s.name for s in catalog.scenarios()]
    assert len(set(names)) == len(names)
    assert {s.hook for s in catalog.scenarios()} == {"patient-view", "order-select", "order-sign"}


@pytest.mark.parametrize("patient", PATIENTS, ids=[p.id for p in PATIENTS])
def test_bundle_is_a_valid_r4_transaction_of_one_synthetic_patient(patient):
    raw = patient.bundle()
    Bundle.model_validate(raw)  # fhir.resources R4B: raises on anything invalid
    assert raw["type"] == "transaction"
    assert raw["timestamp"] == "2026-11-01T09:00:00Z" == catalog.demo_now().isoformat().replace("+00:00", "Z")
    resources = catalog.resources_of(raw)
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    assert len(patients) == 1 and patients[0]["id"] == patient.id
    assert "(synthetic)" in patient.name()
    full_urls = [e["fullUrl"] for e in raw["entry"]]
    assert len(set(full_urls)) == len(full_urls)
    known = set()
    for entry in raw["entry"]:
        resource = entry["resource"]
        ref = f"{resource['resourceType']}/{resource['id']}"
        # idempotent load: PUT to the resource's own id
        assert entry["request"] == {"method": "PUT", "url": ref}
        assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
                "display": "test health data"} in resource["meta"]["tag"]
        if resource["resourceType"] != "Patient":
            assert resource["subject"] == {"reference": f"Patient/{patient.id}"}
        for derived in resource.get("derivedFrom", []):  # written before the resources that point at them
            assert derived["reference"] in known
        known.add(ref)


def test_dates_are_in_the_past_of_demo_now_and_stay_there_after_the_shift():
    now = datetime.now(timezone.utc)
    days = catalog.shift_days()
    for p in PATIENTS:
        for value in _date_strings(catalog.shift_dates(p.bundle(), days)):
            when = datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else None
            if when is not None:
                assert when < now, (p.id, value)


def _date_strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _date_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _date_strings(v)
    elif isinstance(node, str) and catalog._DATE.fullmatch(node):
        yield node


def test_shift_dates_moves_every_date_and_keeps_intervals_codes_and_offsets():
    obs = {"effectiveDateTime": "2026-10-30T10:15:00+01:00", "issued": "2026-10-31T08:00:00Z",
           "code": {"coding": [{"code": "72514-3"}]}, "valueString": "CYP2D6 *1/*2", "birthDate": "1970-02-28",
           "partial": "2018", "list": [{"authoredOn": "2026-10-01"}]}
    moved = catalog.shift_dates(obs, 20)
    assert moved["effectiveDateTime"] == "2026-11-19T10:15:00+01:00"
    assert moved["issued"] == "2026-11-20T08:00:00Z"
    assert moved["birthDate"] == "1970-03-20"
    assert moved["list"][0]["authoredOn"] == "2026-10-21"
    assert moved["code"] == obs["code"] and moved["valueString"] == obs["valueString"]
    assert moved["partial"] == "2018"
    assert obs["issued"] == "2026-10-31T08:00:00Z"  # the input is not modified
    assert catalog.shift_days(date(2026, 11, 21)) == 20


def test_every_pain_instrument_the_brief_lists_is_in_the_demo_set():
    seen = {(c.get("system"), c.get("code")) for p in PATIENTS for o in _resources(p.id, "Observation")
            for c in o["code"].get("coding", [])}
    for code in ("72514-3", "91148-7", "44261-6", "44249-1", "70274-6", "1988-5"):  # NRS PEG PHQ-9 GAD-7 CRP
        assert (LOINC, code) in seen, code
    instruments = {code for system, code in seen if system and "pain-instruments" in system}
    assert {"pcs-total", "dn4-total", "csi-total"} <= instruments
    nrs_counts = Counter(p.id for p in PATIENTS for o in _observations_with(p.id, LOINC, "72514-3"))
    assert sum(n >= 3 for n in nrs_counts.values()) >= 6  # NRS histories, not single points


# ---- each scenario's data is there, in the FHIR shape it is meant to show --------------------------------------

def _genotype(patient_id: str, gene: str) -> dict:
    matches = [o for o in _observations_with(patient_id, LOINC, "84413-4")
               if (c := _component(o, LOINC, "48018-6")) and c["valueCodeableConcept"]["coding"][0]["display"] == gene]
    assert len(matches) == 1, (patient_id, gene)
    return matches[0]


def _diplotype(obs: dict) -> str:
    coding = obs["valueCodeableConcept"]["coding"][0]
    assert coding["system"] in ("http://www.pharmvar.org", "https://www.pharmvar.org")
    return coding["code"]


def test_pm_im_nm_um_and_duplication_genotypes():
    assert _diplotype(_genotype("demo-01-ava-cyp2d6-pm", "CYP2D6")) == "CYP2D6 *4/*4"
    assert _diplotype(_genotype("demo-03-cleo-cyp2d6-nm", "CYP2D6")) == "CYP2D6 *1/*41"
    assert _diplotype(_genotype("demo-04-dev-cyp2d6-um", "CYP2D6")) == "CYP2D6 *1/*1x2"
    assert _diplotype(_genotype("demo-05-elin-cyp2d6-dup", "CYP2D6")) == "CYP2D6 *1/*2xN"
    # IM as a STU1 medication-metabolism result: code 53040-2, LOINC answer code, no genotype at all
    (stu1,) = _observations_with("demo-02-ben-cyp2d6-im", LOINC, "53040-2")
    assert _codes(stu1["valueCodeableConcept"]) == {(LOINC, "LA10317-8")}
    assert not _observations_with("demo-02-ben-cyp2d6-im", LOINC, "84413-4")


def test_therapeutic_implication_shapes_stu3_and_stu2():
    (stu3,) = _observations_with("demo-03-cleo-cyp2d6-nm", TBD, "therapeutic-implication")
    assert _component(stu3, TBD, "therapeutic-implication")["valueCodeableConcept"]["coding"][0]["code"] == "LA25391-6"
    assert stu3["derivedFrom"] == [{"reference": "Observation/" + _genotype("demo-03-cleo-cyp2d6-nm", "CYP2D6")["id"]}]
    (stu2,) = _observations_with("demo-14-nils-fluoxetine", TBD, "therapeutic-implication")
    assert _component(stu2, TBD, "predicted-therapeutic-implication") is not None
    assert _codes(_component(stu2, LOINC, "51963-7")["valueCodeableConcept"]) == {(RXNORM, "2670")}


def test_lab_style_text_results_carry_no_genomics_codes():
    for pid, text in (("demo-06-farid-paroxetine", "*1/*2"), ("demo-10-jonas-neuropathic", "Poor metabolizer")):
        (obs,) = [o for o in _resources(pid, "Observation") if "valueString" in o]
        assert text in obs["valueString"] and "CYP2D6" in obs["code"]["text"]
        assert "component" not in obs


def test_phenoconversion_cyp2c9_amitriptyline_and_no_pgx_scenarios():
    assert "32937" in _active_ingredients("demo-06-farid-paroxetine")       # paroxetine, strong CYP2D6 inhibitor
    assert "4493" in _active_ingredients("demo-14-nils-fluoxetine")         # fluoxetine, strong CYP2D6 inhibitor
    assert _diplotype(_genotype("demo-07-greta-cyp2c9-pm", "CYP2C9")) == "CYP2C9 *3/*3"
    assert "5640" in _active_ingredients("demo-07-greta-cyp2c9-pm")         # on ibuprofen
    assert _diplotype(_genotype("demo-08-hugo-amitriptyline", "CYP2C19")) == "CYP2C19 *2/*2"
    assert _diplotype(_genotype("demo-08-hugo-amitriptyline", "CYP2D6")) == "CYP2D6 *1/*41"
    assert catalog.scenario("hugo-amitriptyline").order.rxnorm == "704"
    pgx = [o for o in _resources("demo-09-ines-no-pgx", "Observation") if o["category"][0]["coding"][0]["code"] == "laboratory"]
    assert pgx == []


def _values(patient_id: str, system: str, code: str) -> list[int]:
    return [o.get("valueInteger", o.get("valueQuantity", {}).get("value"))
            for o in _observations_with(patient_id, system, code)]


def test_pain_profile_scenarios_have_their_scores():
    project = next(c["system"] for o in _resources("demo-12-luca-catastrophizing", "Observation")
                   for c in o["code"]["coding"] if c["code"] == "pcs-total")
    assert _values("demo-12-luca-catastrophizing", project, "pcs-total") == [38]              # PCS >= 30
    (phq9,) = _observations_with("demo-12-luca-catastrophizing", LOINC, "44249-1")           # items only
    assert len(phq9["component"]) == 9 and sum(c["valueInteger"] for c in phq9["component"]) >= 10
    assert _values("demo-12-luca-catastrophizing", LOINC, "70274-6") == [12]                  # GAD-7 >= 10
    assert _values("demo-11-kemi-nociplastic", project, "csi-total")[0] >= 40
    assert _values("demo-10-jonas-neuropathic", project, "dn4-total")[0] >= 4
    assert _values("demo-08-hugo-amitriptyline", project, "dn4-total")[0] >= 4
    crp = _observations_with("demo-07-greta-cyp2c9-pm", LOINC, "1988-5")[0]["valueQuantity"]
    assert crp["value"] > 10 and crp["code"] == "mg/L"


def test_non_responder_has_baseline_before_start_adequate_trial_and_under_30_percent_change():
    (gaba,) = _resources("demo-13-mara-non-responder", "MedicationRequest")
    start = datetime.fromisoformat(gaba["authoredOn"].replace("Z", "+00:00"))
    scores = sorted((datetime.fromisoformat(o["effectiveDateTime"].replace("Z", "+00:00")),
                     o.get("valueInteger", o.get("valueQuantity", {}).get("value")))
                    for o in _observations_with("demo-13-mara-non-responder", LOINC, "72514-3"))
    baseline = [v for t, v in scores if t < start][-1]
    latest_t, latest = scores[-1]
    assert latest_t - start >= timedelta(days=70)           # gabapentin: about 2 months is an adequate trial
    assert 0 <= (baseline - latest) / baseline < 0.30


# ---- the prefetch search ----------------------------------------------------------------------------------------

def test_search_reads_filters_by_patient_code_and_status():
    pool = _resources("demo-06-farid-paroxetine")
    assert search(pool, "Patient/demo-06-farid-paroxetine")["id"] == "demo-06-farid-paroxetine"
    assert search(pool, "Patient/nobody") is None
    nrs = search(pool, f"Observation?patient=demo-06-farid-paroxetine&code={LOINC}|72514-3,{LOINC}|44261-6")
    assert nrs["type"] == "searchset" and nrs["total"] == 3
    assert search(pool, "Observation?patient=someone-else")["total"] == 0
    assert search(pool, f"Observation?subject=Patient/demo-06-farid-paroxetine&code=http://other|72514-3")["total"] == 0
    meds = search(pool, "MedicationRequest?patient=demo-06-farid-paroxetine&status=active,on-hold&_count=100")
    assert [e["resource"]["id"] for e in meds["entry"]] == ["demo-06-farid-paroxetine-paroxetine"]
    assert search(pool, f"MedicationRequest?code={RXNORM}|4493")["total"] == 0
    conds = search(pool, "Condition?patient=demo-06-farid-paroxetine&clinical-status=active")
    assert conds["total"] == 2
    assert search(pool, "Observation?category=laboratory&date=ge2020-01-01")["total"] == 1


@pytest.mark.parametrize("query", ["Observation?code:text=pain", "Observation?value-quantity=gt5",
                                   "Observation?_has:Patient:link:id=1", "Patient/1/_history",
                                   "Observation?date=soon"])
def test_search_refuses_what_it_cannot_evaluate_exactly(query):
    with pytest.raises(UnsupportedQuery):
        search(_resources("demo-01-ava-cyp2d6-pm"), query)


# ---- the request builder ----------------------------------------------------------------------------------------

SERVICES = [
    {"id": "pain-pgx-order-select", "hook": "order-select",
     "prefetch": {"patient": "Patient/{{context.patientId}}",
                  "pgx": "Observation?patient={{context.patientId}}&code=http://loinc.org|84413-4",
                  "meds": "MedicationRequest?patient={{context.patientId}}&status=active",
                  "practitioner": "Practitioner/{{userPractitionerId}}",
                  "encounter": "Encounter/{{context.encounterId}}"}},
    {"id": "pain-pgx-patient-view", "hook": "patient-view", "prefetch": {"patient": "Patient/{{context.patientId}}"}},
]


def test_order_select_request_has_draft_selection_and_prefetch_from_the_templates():
    scenario = catalog.scenario("farid-tramadol")
    built = build_request(scenario, SERVICES, today=date(2026, 11, 21))
    body = built.body
    assert built.service_id == "pain-pgx-order-select" and body["hook"] == "order-select"
    (entry,) = body["context"]["draftOrders"]["entry"]
    assert body["context"]["selections"] == [f"MedicationRequest/{entry['resource']['id']}"]
    assert entry["resource"]["medicationCodeableConcept"]["coding"][0]["code"] == "10689"
    assert entry["resource"]["authoredOn"] == "2026-11-21"
    MedicationRequest.model_validate(entry["resource"])
    assert body["prefetch"]["patient"]["id"] == "demo-06-farid-paroxetine"
    assert body["prefetch"]["pgx"]["total"] == 0       # Farid's result is a lab text result, not 84413-4
    (med,) = body["prefetch"]["meds"]["entry"]
    assert med["resource"]["authoredOn"] == "2025-10-17T11:00:00Z"  # 400 days before the demo now, +20 days
    assert body["prefetch"]["practitioner"] is None    # read of a resource the demo does not hold: null = no data
    # a template whose token this context cannot fill is left out, as a real EHR does, and said so
    assert "encounter" not in body["prefetch"] and any("encounter" in w for w in built.warnings)


def test_patient_view_request_has_no_draft_orders_and_needs_a_service():
    built = build_request(catalog.scenario("kemi-chart"), SERVICES, today=date(2026, 11, 1))
    assert built.body["context"] == {"userId": "Practitioner/demo-clinician", "patientId": "demo-11-kemi-nociplastic"}
    with pytest.raises(LookupError):
        build_request(catalog.scenario("cleo-hydrocodone"), SERVICES)   # no order-sign service discovered


def test_draft_order_needs_an_order():
    with pytest.raises(ValueError):
        draft_order(catalog.scenario("kemi-chart"), date(2026, 11, 1))


def test_templates_render_with_the_protocol_layer():
    assert render("Patient/{{context.patientId}}", {"patientId": "demo-01"}) == "Patient/demo-01"


# ---- --load against a real FHIR server --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fhir_server(tmp_path_factory):
    from integration.sekmet_server import Sekmet   # the project's sekmet-fhir harness (tests/integration)

    server = Sekmet(tmp_path_factory.mktemp("sekmet-demo")).start()
    yield server
    server.stop()


@pytest.mark.integration
def test_load_puts_every_patient_into_a_real_fhir_server_idempotently(fhir_server, capsys):
    from fhir_pain.cli import main

    argv = ["demo", "--load", fhir_server.base_url, "--token", fhir_server.token, "--date", "2026-11-21"]
    assert main(argv) == 0
    assert f"loaded {len(PATIENTS)} of {len(PATIENTS)} demo patients" in capsys.readouterr().out
    assert main(argv) == 0                                  # a second load replaces, never duplicates
    for p in PATIENTS:
        stored = {f"{r['resourceType']}/{r['id']}" for rtype in ("Observation", "Condition", "MedicationRequest")
                  for r in fhir_server.search(f"{rtype}?patient={p.id}&_count=100")}
        expected = {f"{r['resourceType']}/{r['id']}" for r in catalog.resources_of(p.bundle())
                    if r["resourceType"] != "Patient"}
        assert stored == expected, p.id
    patient = fhir_server.read("Patient/demo-13-mara-non-responder")
    assert patient["name"][0]["given"] == ["Mara"]
    # dates arrive shifted: the demo now (2026-11-01) became the --date (2026-11-21)
    gaba = fhir_server.read("MedicationRequest/demo-13-mara-non-responder-gabapentin")
    assert gaba["authoredOn"].startswith("2026-07-24")      # 120 days before 2026-11-21
    # the sandbox's "Treating" list needs Condition?patient with total > 0
    conds = fhir_server.session.get(f"{fhir_server.base_url}/Condition?patient=demo-09-ines-no-pgx").json()
    assert conds["total"] >= 1


@pytest.mark.integration
def test_load_reports_a_server_that_refuses_the_token(fhir_server, capsys):
    from fhir_pain.cli import main

    assert main(["demo", "--load", fhir_server.base_url, "--token", "wrong-token"]) == 1
    out = capsys.readouterr().out
    assert "FHIRUnauthorized" in out and f"loaded 0 of {len(PATIENTS)}" in out
