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
from fhir_pain.demo.hook_requests import build_request, draft_order, hook_request

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


HOURS = ("00:30", "08:59", "09:01", "23:59")  # either side of the demo hour (09:00 UTC) and both ends of the day


@pytest.fixture(params=["UTC", "Pacific/Kiritimati", "America/Los_Angeles"])
def local_zone(request, monkeypatch):
    """A process-local time zone far from UTC: the demo's dates must not depend on it."""
    import time
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def _discovered() -> list[dict]:
    from fhir_pain.app import create_app
    from fhir_pain.demo.runner import discover
    return discover(create_app({"AUTH": "off", "DATABASE_URL": "sqlite://"}).test_client())


def _pin(monkeypatch, hhmm: str) -> datetime:
    now = datetime.fromisoformat(f"2026-12-04T{hhmm}:00+00:00")
    monkeypatch.setattr(catalog, "utcnow", lambda: now)
    return now


@pytest.mark.parametrize("hhmm", HOURS)
def test_every_date_the_demo_writes_is_not_in_the_future_at_any_hour(monkeypatch, local_zone, hhmm):
    # regression: before 09:00 UTC the shift moved the demo now (09:00) onto today, i.e. into the future
    now = _pin(monkeypatch, hhmm)
    days = catalog.shift_days()
    assert catalog.now_on() <= now
    assert now - catalog.now_on() < timedelta(days=1)  # the latest such instant, not an older one
    for p in PATIENTS:
        for value in _date_strings(catalog.shift_dates(p.bundle(), days)):
            if "T" in value:
                assert datetime.fromisoformat(value.replace("Z", "+00:00")) <= now, (p.id, value)
            else:
                assert date.fromisoformat(value) <= now.date(), (p.id, value)
    services = _discovered()
    for scenario in catalog.scenarios():
        built = build_request(scenario, services)
        for value in _date_strings(built.body):
            when = (datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value
                    else datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc))
            assert when <= now, (scenario.name, value)


def test_the_demo_day_is_today_after_the_demo_hour_and_yesterday_before_it(monkeypatch):
    assert _pin(monkeypatch, "09:01") and catalog.now_on() == datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)
    assert _pin(monkeypatch, "09:00") and catalog.now_on() == datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)
    assert _pin(monkeypatch, "08:59") and catalog.now_on() == datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
    assert _pin(monkeypatch, "00:30") and catalog.now_on() == datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
    assert catalog.shift_days(date(2026, 12, 4)) - catalog.shift_days() == 1  # a chosen day is taken as given


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
    assert _diplotype(_genotype("demo-15-olga-cyp2d6-xn", "CYP2D6")) == "CYP2D6 *1/*2xN"
    # duplication of an unstated allele, as a lab writes it when it cannot code it
    assert _genotype("demo-05-elin-cyp2d6-dup", "CYP2D6")["valueCodeableConcept"] == {
        "text": "CYP2D6 *1/*4 with gene duplication"}
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
    # a lab interface: LOINC + the lab's local code, result as text only (no PharmVar, HGNC or LA codes)
    (farid,) = _observations_with("demo-06-farid-paroxetine", LOINC, "84413-4")
    assert farid["valueString"] == "CYP2D6 *1/*2 - Normal metabolizer"
    (jonas,) = _observations_with("demo-10-jonas-neuropathic", LOINC, "53040-2")
    assert jonas["valueCodeableConcept"] == {"text": "CYP2D6 Poor metabolizer"}
    for obs in (farid, jonas):
        assert "component" not in obs and "profile" not in obs.get("meta", {})
        assert any(c["system"] != LOINC for c in obs["code"]["coding"])   # the local code


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
    (pgx,) = body["prefetch"]["pgx"]["entry"]          # Farid's lab text result is coded 84413-4 (+ a local code)
    assert pgx["resource"]["valueString"].startswith("CYP2D6 *1/*2")
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


def test_hook_request_works_on_any_patient_bundle_and_refuses_what_it_cannot_build():
    bundle = catalog.patient("demo-09-ines-no-pgx").bundle()
    order = catalog.Order(rxnorm="7804", display="oxycodone", dosage="5 mg every 6 hours")
    built = hook_request(bundle, "order-select", SERVICES, order=order, draft_id="d1", authored_on=date(2026, 11, 2))
    draft = built.body["context"]["draftOrders"]["entry"][0]["resource"]
    assert draft == draft_order(order, "demo-09-ines-no-pgx", draft_id="d1", authored_on=date(2026, 11, 2))
    assert built.body["context"]["selections"] == ["MedicationRequest/d1"]
    with pytest.raises(ValueError):
        hook_request(bundle, "order-select", SERVICES)                     # an order hook needs an order
    with pytest.raises(ValueError):
        hook_request({"resourceType": "Bundle", "entry": []}, "patient-view", SERVICES)


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
    conds = fhir_server.read("Condition?patient=demo-09-ines-no-pgx")
    assert conds["total"] >= 1


@pytest.mark.integration
def test_load_reports_a_server_that_refuses_the_token(fhir_server, capsys):
    from fhir_pain.cli import main

    assert main(["demo", "--load", fhir_server.base_url, "--token", "wrong-token"]) == 1
    out = capsys.readouterr().out
    assert "FHIRUnauthorized" in out and f"loaded 0 of {len(PATIENTS)}" in out


class _RenamedPatient:
    """A demo patient under other ids (so the tests here never touch the ones the load test checks), optionally
    with one resource the server's validation must refuse."""

    def __init__(self, source: catalog.DemoPatient, prefix: str, break_last: bool = False):
        import json

        self.id = source.id.replace("demo-", prefix, 1)
        text = json.dumps(source.bundle()).replace(source.id, self.id)
        self._bundle = json.loads(text)
        if break_last:
            self._bundle["entry"][-1]["resource"]["subject"] = f"Patient/{self.id}"   # a string, not a Reference

    def bundle(self) -> dict:
        import copy

        return copy.deepcopy(self._bundle)


def _stored(server, patient_id: str) -> set[str]:
    found = {f"Patient/{patient_id}"} if server.exists(f"Patient/{patient_id}") else set()
    return found | {f"{r['resourceType']}/{r['id']}" for rtype in ("Observation", "Condition", "MedicationRequest")
                    for r in server.search(f"{rtype}?patient={patient_id}&_count=100")}


@pytest.mark.integration
def test_load_is_one_transaction_per_patient_and_a_refused_patient_leaves_nothing(fhir_server):
    from fhir_pain.demo.loader import TRANSACTION, load_patients

    good = _RenamedPatient(PATIENTS[0], "atomic-ok-")
    bad = _RenamedPatient(PATIENTS[1], "atomic-bad-", break_last=True)
    results = load_patients(fhir_server.base_url, token=fhir_server.token, patients=[bad, good])
    assert [(r.patient_id, r.via) for r in results] == [(bad.id, TRANSACTION), (good.id, TRANSACTION)]
    assert results[0].error and "FHIRError" in results[0].error and results[0].resources == 0
    assert results[1].error is None and results[1].resources == len(good.bundle()["entry"])
    # the refused patient's earlier, valid entries were rolled back with the bad one
    assert _stored(fhir_server, bad.id) == set()
    assert _stored(fhir_server, good.id) == {f"{e['resource']['resourceType']}/{e['resource']['id']}"
                                             for e in good.bundle()["entry"]}


@pytest.mark.integration
def test_load_falls_back_to_puts_behind_a_gateway_that_refuses_transactions(fhir_server):
    from integration.fault_proxy import FaultProxy

    from fhir_pain.demo.loader import PUTS, load_patients

    refuse_transactions = lambda method, path: "refuse" if method == "POST" and path.rstrip("/") == "/fhir" else None  # noqa: E731
    proxy = FaultProxy(fhir_server.root_url, refuse_transactions).start()
    try:
        patients = [_RenamedPatient(p, "fallback-") for p in PATIENTS[:2]]
        results = load_patients(proxy.base_url, token=fhir_server.token, patients=patients)
    finally:
        proxy.stop()
    assert [(r.via, r.error) for r in results] == [(PUTS, None)] * 2
    assert [d for _, _, d in proxy.injected] == ["refuse"]          # asked once, then PUTs only
    for p in patients:
        assert _stored(fhir_server, p.id) == {f"{e['resource']['resourceType']}/{e['resource']['id']}"
                                              for e in p.bundle()["entry"]}


# ---- fhir-pain demo end to end: the expected cards for every scenario --------------------------------------------
# scenario -> one (indicator, rule ids of the card's findings, words its summary must hold) per expected card.
# The sets are exact: a card that appears or disappears is a change to review (alert fatigue counts too).
PGX, PAIN = "fhir-pain/pgx-summary", "fhir-pain/pain-profile"
EXPECTED = {
    "ava-codeine": [("critical", ["cpic/codeine/CYP2D6"], ["CYP2D6", "poor", "avoid codeine"])],
    "ava-chart": [("info", [PAIN], ["chronic"]), ("info", [PGX], ["CYP2D6 poor"])],
    "ben-codeine": [("warning", ["cpic/codeine/CYP2D6"], ["CYP2D6 intermediate", "codeine"])],
    "ben-chart": [("info", [PAIN], ["chronic"]), ("info", [PGX], ["CYP2D6 intermediate", "codeine"])],
    "cleo-hydrocodone": [],                                  # NM, standard dosing: silent on the order hooks
    "cleo-chart": [("info", [PAIN], ["chronic"]), ("info", [PGX], ["CYP2D6 normal"])],
    "dev-codeine": [("critical", ["cpic/codeine/CYP2D6"], ["CYP2D6 ultrarapid", "avoid codeine"])],
    "dev-chart": [("info", [PAIN], ["8/10"]), ("info", [PGX], ["CYP2D6 ultrarapid"])],
    "elin-codeine": [("critical", ["cpic/codeine/CYP2D6"], ["Ambiguous", "avoid codeine", "confirm"])],
    "elin-chart": [("info", [PAIN], ["chronic"]), ("info", [PGX], ["CYP2D6"])],
    # the referral is not about the ordered drug: patient-view only (farid-chart)
    "farid-tramadol": [("critical", ["cpic/tramadol/CYP2D6"], ["poor", "paroxetine", "avoid tramadol"])],
    "farid-chart": [("info", [PAIN], ["depression"]), ("info", [PGX], ["poor", "paroxetine"]),
                    ("info", ["fhir-pain/referral/pain-psychology"], ["depression"])],
    "greta-meloxicam": [("warning", ["cpic/meloxicam/CYP2C9"], ["CYP2C9 poor", "alternative", "meloxicam"])],
    "greta-chart": [("warning", ["cpic/ibuprofen/CYP2C9"], ["CYP2C9 poor", "ibuprofen", "lower dose"]),
                    ("info", [PAIN], ["inflammatory"]), ("info", [PGX], ["CYP2C9 poor"])],
    "hugo-amitriptyline": [("warning", ["cpic/amitriptyline/CYP2D6+CYP2C19"], ["CYP2C19 poor", "amitriptyline"])],
    "hugo-chart": [("info", [PAIN], ["neuropathic"]), ("info", [PGX], ["CYP2D6 normal", "CYP2C19 poor"])],
    "ines-tramadol": [("warning", ["cpic-pretest/tramadol/CYP2D6"], ["no CYP2D6 result found", "searched", "tramadol",
                                                                      "test"])],
    "ines-chart": [("info", [PAIN], ["7/10"])],
    "jonas-oxycodone": [("warning", ["fhir-pain/opioid-for-neuropathic-pain"], ["neuropathic", "oxycodone", "not first line"])],
    # no low-dose figure for nortriptyline (and no dose read as low): CPIC's table applies unchanged
    "jonas-nortriptyline": [("critical", ["cpic/nortriptyline/CYP2D6"], ["CYP2D6 poor", "avoid nortriptyline"])],
    "jonas-chart": [("info", [PAIN], ["neuropathic"]), ("info", [PGX], ["CYP2D6 poor"])],
    "kemi-chart": [("info", [PAIN], ["nociplastic"]), ("info", [PGX], ["CYP2D6 normal"]),
                   ("info", ["fhir-pain/referral/physiotherapy"], ["physiotherapy"])],
    "luca-chart": [("warning", ["fhir-pain/safety/phq9-item9"], ["PHQ-9 item 9", "endorsed on", "risk assessment"]),
                   ("info", [PAIN], ["catastrophizing", "depression"]), ("info", [PGX], ["CYP2D6 normal"]),
                   ("info", ["fhir-pain/referral/pain-psychology"], ["PCS 38", "PHQ-9 17", "pain psychology"])],
    "mara-chart": [("warning", ["fhir-pain/analgesic-non-response"], ["gabapentin", "8 → 7"]),
                   ("info", [PAIN], ["neuropathic"]), ("info", [PGX], ["CYP2D6 normal"])],
    "nils-codeine": [("critical", ["cpic/codeine/CYP2D6"], ["poor", "fluoxetine", "avoid codeine"])],
    "nils-chart": [("info", [PAIN], ["6/10"]), ("info", [PGX], ["poor", "fluoxetine"])],
    "olga-tramadol": [("critical", ["cpic/tramadol/CYP2D6"], ["CYP2D6 ultrarapid", "avoid tramadol"])],
    "olga-chart": [("info", [PAIN], ["7/10"]), ("info", [PGX], ["CYP2D6 ultrarapid"])],
}


@pytest.fixture(scope="module")
def demo_run():
    """``fhir-pain demo --json``, run once, in-process, with the response schema checked on every call."""
    import io
    import json
    from contextlib import redirect_stdout

    from fhir_pain.cli import main

    mp = pytest.MonkeyPatch()
    mp.setenv("FHIR_PAIN_VALIDATE_RESPONSES", "true")
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            code = main(["demo", "--json"])
    finally:
        mp.undo()
    data = json.loads(out.getvalue())
    return code, {r["scenario"]: r for r in data["results"]}


def _findings(card: dict) -> list[dict]:
    return card["extension"]["io.fhir-pain.findings"]


def _finding(results, scenario: str, rule: str) -> dict:
    return next(f for c in results[scenario]["cards"] for f in _findings(c) if f["rule"] == rule)


def test_expectations_cover_every_scenario():
    assert set(EXPECTED) == {s.name for s in catalog.scenarios()}


def test_demo_answers_every_scenario(demo_run):
    code, results = demo_run
    assert code == 0
    assert set(results) == set(EXPECTED)
    for name, r in results.items():
        assert r["status"] == 200 and r["error"] is None and r["warnings"] == [], name
        assert r["service"] == f"pain-pgx-{r['hook']}"


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_demo_scenario_gives_the_expected_cards(demo_run, scenario):
    _, results = demo_run
    cards = results[scenario]["cards"]
    got = sorted((c["indicator"], sorted(f["rule"] for f in _findings(c))) for c in cards)
    assert got == sorted((ind, sorted(rules)) for ind, rules, _ in EXPECTED[scenario])
    for indicator, rules, words in EXPECTED[scenario]:
        card = next(c for c in cards if sorted(f["rule"] for f in _findings(c)) == sorted(rules))
        for word in words:
            assert word.lower() in card["summary"].lower(), (scenario, word, card["summary"])
        assert len(card["summary"]) <= 140 and card["uuid"] and card["source"]["label"]


def test_drug_gene_findings_carry_genotype_score_and_classification(demo_run):
    _, results = demo_run
    ava = _finding(results, "ava-codeine", "cpic/codeine/CYP2D6")
    assert ava["genes"]["CYP2D6"] == {"diplotype": "*4/*4", "activityScore": "0.0", "phenotype": "Poor Metabolizer",
                                      "source": "computed"}
    assert (ava["classification"], ava["action"], ava["drug"]) == ("Strong", "avoid", {"rxnorm": "2670", "name": "codeine"})
    assert ava["knowledge"]["source"] == "CPIC" and "Observation/demo-01-ava-cyp2d6-pm-cyp2d6" in ava["evidence"]
    # *41 is 0.25 since CPIC's 2022-11 update: *1/*41 = 1.25, normal
    cleo = results["cleo-chart"]["cards"]
    assert _finding(results, "cleo-chart", PGX)["genes"]["CYP2D6"]["activityScore"] == "1.25"
    assert cleo and results["cleo-hydrocodone"]["cards"] == []
    assert _finding(results, "dev-codeine", "cpic/codeine/CYP2D6")["genes"]["CYP2D6"]["activityScore"] == "3.0"
    assert _finding(results, "olga-tramadol", "cpic/tramadol/CYP2D6")["genes"]["CYP2D6"]["activityScore"] == "≥3.0"
    ben = _finding(results, "ben-codeine", "cpic/codeine/CYP2D6")
    assert ben["genes"]["CYP2D6"] == {"phenotype": "Intermediate Metabolizer", "source": "reported"}
    assert ben["classification"] == "Moderate"
    greta = _finding(results, "greta-meloxicam", "cpic/meloxicam/CYP2C9")
    assert (greta["genes"]["CYP2C9"]["phenotype"], greta["action"]) == ("Poor Metabolizer", "use-alternative")
    assert _finding(results, "greta-chart", "cpic/ibuprofen/CYP2C9")["action"] == "reduce-dose"
    hugo = _finding(results, "hugo-amitriptyline", "cpic/amitriptyline/CYP2D6+CYP2C19")
    assert {g: v["phenotype"] for g, v in hugo["genes"].items()} == {"CYP2D6": "Normal Metabolizer",
                                                                    "CYP2C19": "Poor Metabolizer"}


def test_phenoconversion_reports_genotype_and_inhibitor(demo_run):
    _, results = demo_run
    for scenario, rule, inhibitor in (("farid-tramadol", "cpic/tramadol/CYP2D6", "paroxetine"),
                                      ("nils-codeine", "cpic/codeine/CYP2D6", "fluoxetine")):
        gene = _finding(results, scenario, rule)["genes"]["CYP2D6"]
        assert gene["phenotype"] == "Poor Metabolizer" and gene["activityScore"] == "0.0"
        assert gene["phenoconvertedBy"] == [inhibitor] and gene["diplotype"] in ("*1/*2", "*1/*1")


def test_ambiguous_duplication_gives_the_advice_safe_under_every_possibility(demo_run):
    _, results = demo_run
    (card,) = results["elin-codeine"]["cards"]
    (finding,) = _findings(card)
    assert finding["genes"]["CYP2D6"]["phenotype"] == "Indeterminate"
    # one possibility is an ultrarapid metabolizer: CPIC's Strong "avoid" holds, never softened by the others
    assert (finding["action"], finding["classification"], card["indicator"]) == ("avoid", "Strong", "critical")
    assert finding["uncertainty"]["why"] == "ambiguous"
    assert "Ultrarapid Metabolizer" in {p["phenotype"] for p in finding["uncertainty"]["possibilities"]}
    labels = [s["label"] for s in card["suggestions"]]
    assert labels[0] == "Order a confirmatory CYP2D6 genotype test" and any("Remove" in x for x in labels)


def test_suggestions_are_valid_r4_and_respect_the_patients_pgx(demo_run):
    from fhir.resources.R4B import get_fhir_model_class

    _, results = demo_run
    created: dict[str, list[dict]] = {}
    for name, r in results.items():
        for card in r["cards"]:
            for suggestion in card.get("suggestions", []):
                assert suggestion["uuid"]
                for action in suggestion["actions"]:
                    if action["type"] == "create":
                        get_fhir_model_class(action["resource"]["resourceType"]).model_validate(action["resource"])
                        created.setdefault(name, []).append(action["resource"])
    def ingredients(name):
        return {c["code"] for r in created.get(name, []) if r["resourceType"] == "MedicationRequest"
                for c in r["medicationCodeableConcept"]["coding"]}
    # codeine/tramadol for a PM or UM: CPIC names a class ("a non-tramadol opioid"), never a drug, so no opioid
    # is drafted on its authority (least of all the other CYP2D6 prodrug); the card says which one to leave out
    for name, other in (("ava-codeine", "tramadol"), ("dev-codeine", "tramadol"), ("farid-tramadol", "codeine"),
                        ("nils-codeine", "tramadol"), ("olga-tramadol", "codeine")):
        assert not ingredients(name), name
        assert any(f"other than {other}" in c["detail"] for c in results[name]["cards"]), name
    # neuropathic pain in a CYP2D6 poor metabolizer: first-line alternatives, but no tricyclic
    assert ingredients("jonas-oxycodone") and not ingredients("jonas-oxycodone") & {"704", "7531", "3247", "5691"}
    assert not {"41493", "5640", "140587", "8356"} & ingredients("greta-meloxicam")   # no CYP2C9-dependent NSAID
    assert {r["resourceType"] for r in created["ines-tramadol"]} == {"ServiceRequest"}     # CPIC pre-test: a test
    assert {r["resourceType"] for r in created["luca-chart"]} == {"ServiceRequest"}        # referral
    for resources in created.values():
        for r in resources:
            assert r["subject"]["reference"].startswith("Patient/demo-")


def test_pain_profiles_and_treatment_response(demo_run):
    _, results = demo_run
    assert set(_finding(results, "kemi-chart", PAIN)["phenotypes"]) >= {"chronic-pain", "nociplastic-features"}
    assert set(_finding(results, "luca-chart", PAIN)["phenotypes"]) >= {"high-catastrophizing", "depression"}
    assert "neuropathic-likely" in _finding(results, "jonas-oxycodone", "fhir-pain/opioid-for-neuropathic-pain")["phenotypes"]
    assert "inflammatory-contribution" in _finding(results, "greta-chart", PAIN)["phenotypes"]
    mara = _finding(results, "mara-chart", "fhir-pain/analgesic-non-response")
    assert mara["drug"]["name"] == "gabapentin" and mara["phenotypes"] == ["treatment-non-response"]
    assert "MedicationRequest/demo-13-mara-non-responder-gabapentin" in mara["evidence"]


def test_cards_are_the_same_on_any_day():
    """Data and the services' clock move with the run day, so the answers do not: two years on, the same cards."""
    from fhir_pain.demo.runner import run_scenarios

    names = ("mara-chart", "kemi-chart", "ava-codeine", "ines-tramadol")
    picked = [catalog.scenario(n) for n in names]
    later = run_scenarios(picked, today=date.today() + timedelta(days=730))
    for r in later:
        got = sorted((c["indicator"], sorted(f["rule"] for f in _findings(c))) for c in r.cards)
        assert got == sorted((i, sorted(rules)) for i, rules, _ in EXPECTED[r.scenario.name]), r.scenario.name


def test_text_summary_request_and_list_commands(capsys):
    import json

    from fhir_pain.cli import main
    from fhir_pain.demo.runner import make_app

    assert main(["demo", "--scenario", "nils-codeine", "--scenario", "ava-codeine"]) == 0
    out = capsys.readouterr().out
    assert out.index("Ava Demo (synthetic)") < out.index("Nils Demo (synthetic)")   # catalog order
    assert "CRITICAL" in out and "rules: cpic/codeine/CYP2D6" in out and "2 of 2 calls answered 200" in out

    # --request: the ready-made request the README's curl example posts to `make run`
    assert main(["demo", "--request", "ava-codeine"]) == 0
    captured = capsys.readouterr()
    request = json.loads(captured.out)
    assert "POST /cds-services/pain-pgx-order-select" in captured.err
    response = make_app().test_client().post("/cds-services/pain-pgx-order-select", json=request)
    assert response.status_code == 200
    assert [c["indicator"] for c in response.get_json()["cards"]] == ["critical"]

    assert main(["demo", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(s.name in listing for s in catalog.scenarios())
    assert main(["demo", "--request", "no-such-scenario"]) == 2


def test_sandbox_guide_auth_on_recipe(monkeypatch):
    """docs/sandbox.md: FHIR_PAIN_TRUST_SANDBOX_ISSUER + PUBLIC_BASE_URL accept a sandbox-signed call; without the
    opt-in the same call is refused; the browser's preflight needs no token."""
    import time
    import uuid
    from pathlib import Path

    import jwt

    from fhir_pain.app import create_app
    from fhir_pain.demo.runner import discover

    key = (Path(__file__).parent / "fixtures" / "sandbox" / "sandbox-published-private-key.pem").read_text()
    url = "http://127.0.0.1:8080/cds-services/pain-pgx-order-select"

    def sandbox_token(aud: str) -> str:   # as the sandbox signs (tests/fixtures/sandbox/jwt-decoded.json)
        now = int(time.time())
        return jwt.encode({"iss": "https://sandbox.cds-hooks.org", "aud": aud, "iat": now, "exp": now + 300,
                           "jti": str(uuid.uuid4())}, key, algorithm="ES384",
                          headers={"kid": "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f",
                                   "jku": "https://sandbox.cds-hooks.org/.well-known/jwks.json"})

    monkeypatch.setenv("FHIR_PAIN_PUBLIC_BASE_URL", "http://127.0.0.1:8080")
    services = discover(create_app({"AUTH": "off", "DATABASE_URL": "sqlite://"}).test_client())
    body = build_request(catalog.scenario("ava-codeine"), services).body
    refused = create_app({"AUTH": "required", "DATABASE_URL": "sqlite://"}).test_client()
    preflight = refused.options("/cds-services/pain-pgx-order-select", headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200 and preflight.headers["Access-Control-Allow-Origin"]
    auth = {"Authorization": f"Bearer {sandbox_token(url)}"}
    assert refused.post("/cds-services/pain-pgx-order-select", json=body, headers=auth).status_code == 401

    monkeypatch.setenv("FHIR_PAIN_TRUST_SANDBOX_ISSUER", "true")
    trusting = create_app({"AUTH": "required", "DATABASE_URL": "sqlite://"}).test_client()
    response = trusting.post("/cds-services/pain-pgx-order-select", json=body, headers=auth)
    assert response.status_code == 200
    assert [c["indicator"] for c in response.get_json()["cards"]] == ["critical"]
    wrong_aud = {"Authorization": f"Bearer {sandbox_token(url.replace('127.0.0.1', 'localhost'))}"}
    assert trusting.post("/cds-services/pain-pgx-order-select", json=body, headers=wrong_aud).status_code == 401


# ---- --load, mocked: one transaction per patient, or the PUTs one by one where transactions are not taken --------

MOCK_BASE = "http://fhir.test/fhir"
NO_TRANSACTIONS = {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                   "rest": [{"mode": "server", "interaction": [{"code": "history-system"}]}]}
TRANSACTIONS = {**NO_TRANSACTIONS, "rest": [{"mode": "server", "interaction": [{"code": "transaction"}]}]}
REFUSED = '{"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}'
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _body(request) -> dict:
    import json

    return json.loads(request.body.decode() if isinstance(request.body, bytes) else request.body)


def _echo_put(reject: str | None = None):
    """A server that stores every PUT (echoing it back) and rejects the resource whose id is ``reject``."""
    def put(request):
        if reject and request.url.endswith(f"/{reject}"):
            return 400, FHIR_JSON, REFUSED
        return 200, FHIR_JSON, request.body
    return put


def _transaction_response(request):
    bundle = _body(request)
    assert bundle["type"] == "transaction"
    return 200, FHIR_JSON, __import__("json").dumps({"resourceType": "Bundle", "type": "transaction-response",
                                                      "entry": [{"response": {"status": "200 OK"}}
                                                                for _ in bundle["entry"]]})


def _methods(calls) -> list[str]:
    return [c.request.method for c in calls]


def _no_retry_client(base: str):
    from cds_hooks.fhir_client import FHIRClient

    return FHIRClient(base, retries=0)


def test_load_sends_one_transaction_per_patient_and_a_rejected_one_costs_only_that_patient():
    import responses

    from fhir_pain.demo.loader import TRANSACTION, load_patients

    patients = list(PATIENTS[:3])
    with responses.RequestsMock() as mock:
        mock.get(f"{MOCK_BASE}/metadata", json=TRANSACTIONS)

        def transaction(request):
            if any(e["resource"]["id"] == "demo-02-ben-cyp2d6-im-peg-1" for e in _body(request)["entry"]):
                return 422, FHIR_JSON, REFUSED     # the server rolls the whole patient back
            return _transaction_response(request)
        mock.add_callback(responses.POST, MOCK_BASE, callback=transaction)
        results = load_patients(MOCK_BASE, token="t", patients=patients, today=date(2026, 11, 21))
        calls = list(mock.calls)
    assert [(r.patient_id, r.via, r.error is None) for r in results] == [
        (patients[0].id, TRANSACTION, True), (patients[1].id, TRANSACTION, False), (patients[2].id, TRANSACTION, True)]
    assert "FHIRError" in results[1].error and "422" in results[1].error
    assert results[1].resources == 0                                 # all or nothing: never half a patient
    assert [r.resources for r in results[::2]] == [len(p.bundle()["entry"]) for p in patients[::2]]
    assert _methods(calls) == ["GET", "POST", "POST", "POST"]        # no PUT: a data error is not "unsupported"
    sent = _body(calls[1].request)
    assert sent["type"] == "transaction" and len(sent["entry"]) == len(patients[0].bundle()["entry"])
    assert all(e["request"]["method"] == "PUT" for e in sent["entry"])   # fixed ids: loading twice replaces
    third = [e["resource"] for e in _body(calls[3].request)["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert [r["id"] for r in third] == [patients[2].id]
    assert all(c.request.headers["Authorization"] == "Bearer t" for c in calls)


@pytest.mark.parametrize("metadata, first_status", [
    ({"status": 404}, 405),                  # no CapabilityStatement; the base takes no POST
    ({"status": 404}, 400),                  # nothing declared: a 4xx on the first try means "not here"
    ({"json": TRANSACTIONS}, 501),           # declared, but not implemented after all
], ids=["unknown-405", "unknown-400", "declared-501"])
def test_load_falls_back_to_puts_when_the_first_transaction_is_refused(metadata, first_status):
    import re

    import responses

    from fhir_pain.demo.loader import PUTS, load_patients

    patients = list(PATIENTS[:2])
    with responses.RequestsMock() as mock:
        mock.get(f"{MOCK_BASE}/metadata", **metadata)
        mock.post(MOCK_BASE, status=first_status, body=REFUSED, headers=FHIR_JSON)
        mock.add_callback(responses.PUT, re.compile(re.escape(MOCK_BASE) + "/.*"), callback=_echo_put())
        results = load_patients(MOCK_BASE, patients=patients, client=_no_retry_client(MOCK_BASE))
        calls = list(mock.calls)
    assert [(r.via, r.error, r.resources) for r in results] == [(PUTS, None, len(p.bundle()["entry"]))
                                                                 for p in patients]
    methods = _methods(calls)
    assert methods[:2] == ["GET", "POST"] and set(methods[2:]) == {"PUT"}   # asked once, then PUTs only
    assert [c.request.url for c in calls[2:4]] == [
        f"{MOCK_BASE}/{e['request']['url']}" for e in patients[0].bundle()["entry"][:2]]   # in Bundle order


def test_load_keeps_going_after_one_rejected_resource_and_stops_when_the_server_is_gone(capsys):
    import re

    import responses

    from fhir_pain.cli import main
    from fhir_pain.demo.loader import PUTS, load_patients

    with responses.RequestsMock() as mock:   # the server says it takes no transactions: PUTs from the start
        mock.get(f"{MOCK_BASE}/metadata", json=NO_TRANSACTIONS)
        mock.add_callback(responses.PUT, re.compile(re.escape(MOCK_BASE) + "/.*"),
                          callback=_echo_put(reject="demo-02-ben-cyp2d6-im-peg-1"))
        results = load_patients(MOCK_BASE, token="t", patients=list(PATIENTS[:3]))
        assert [(r.patient_id, r.via, r.error is None) for r in results] == [
            (PATIENTS[0].id, PUTS, True), (PATIENTS[1].id, PUTS, False), (PATIENTS[2].id, PUTS, True)]
        assert results[0].resources == len(PATIENTS[0].bundle()["entry"])
        assert "POST" not in _methods(mock.calls)
        assert all(c.request.headers["Authorization"] == "Bearer t" for c in mock.calls)

    with responses.RequestsMock() as mock:   # nothing answers: the first failure stops the run
        results = load_patients(MOCK_BASE, patients=list(PATIENTS[:3]), client=_no_retry_client(MOCK_BASE))
        assert results[0].error.startswith("FHIRServerError")
        assert all(r.error.startswith("not tried") for r in results[1:])
        assert [(c.request.method, c.request.url) for c in mock.calls] == [
            ("GET", f"{MOCK_BASE}/metadata"), ("POST", MOCK_BASE)]

    assert main(["demo", "--load", "not-a-url"]) == 2
    assert "not an absolute http(s) URL" in capsys.readouterr().err
