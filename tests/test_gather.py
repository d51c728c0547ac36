"""gather: HookRequest -> PatientData, lenient with the shapes real clients send."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cds_hooks import HookRequest
from fhir_pain.gather import CONDITIONS, MEDICATIONS, PAIN, PATIENT, PGX, gather, missing_labels, resources_of

NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def _request(context, prefetch, missing=(), hook="order-sign"):
    return HookRequest(hook=hook, hook_instance="d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", service_id="x",
                       context=context, prefetch=prefetch, missing=tuple(missing))


def _bundle(*resources, include=()):
    entries = [{"fullUrl": f"http://ehr/fhir/{r['resourceType']}/{r['id']}", "resource": r,
                "search": {"mode": "match"}} for r in resources]
    entries += [{"resource": r, "search": {"mode": "include"}} for r in include]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources), "entry": entries}


def _mr(rid, status="active", **extra):
    return {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
            "subject": {"reference": "Patient/p1"}, **extra}


def test_sandbox_order_select_capture(fixture_json):
    raw = fixture_json("sandbox/order-select-request-3.json")
    req = _request(raw["context"], raw["prefetch"], hook="order-select")
    data = gather(req, now=NOW)
    assert data.patient_id == "pat-1"
    assert data.patient["id"] == "pat-1"
    assert [d["id"] for d in data.draft_orders] == ["request-123"]   # Bundle without "type" is accepted
    assert data.selections == ("MedicationRequest/request-123",)
    assert data.now == NOW


def test_prefetch_bundles_are_sorted_by_resource_type_and_deduplicated():
    obs = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}}
    cond = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}
    med = {"resourceType": "Medication", "id": "m1", "code": {"text": "codeine"}}
    prefetch = {
        PATIENT: {"resourceType": "Patient", "id": "p1"},
        PGX: _bundle(obs),
        PAIN: _bundle(obs),                         # the same Observation under two keys counts once
        CONDITIONS: _bundle(cond),
        MEDICATIONS: _bundle(_mr("a1"), _mr("a2", status="stopped"), include=[med]),
    }
    data = gather(_request({"patientId": "p1"}, prefetch), now=NOW)
    assert [o["id"] for o in data.observations] == ["o1"]
    assert [c["id"] for c in data.conditions] == ["c1"]
    assert [m["id"] for m in data.medication_requests] == ["a1", "a2"]   # status filtering is evaluate's job
    assert data.medications == {"Medication/m1": med}


def test_null_operation_outcome_and_garbage_values_give_nothing():
    prefetch = {PGX: None, PAIN: {"resourceType": "OperationOutcome", "issue": []}, CONDITIONS: "nonsense",
                MEDICATIONS: {"resourceType": "Bundle", "entry": [{"fullUrl": "x"}, "junk", {"resource": {}}]}}
    data = gather(_request({"patientId": "p1"}, prefetch), now=NOW)
    assert (data.observations, data.conditions, data.medication_requests) == ([], [], [])


def test_a_draft_already_stored_as_active_counts_once():
    draft = _mr("d1", status="draft")
    context = {"patientId": "p1", "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                                   "entry": [{"resource": draft}]}}
    data = gather(_request(context, {MEDICATIONS: _bundle(_mr("d1"), _mr("a1"))}), now=NOW)
    assert [m["id"] for m in data.medication_requests] == ["a1"]
    assert [d["id"] for d in data.draft_orders] == ["d1"]


def test_draft_orders_as_a_bare_list_and_contained_medications():
    contained = {"resourceType": "Medication", "id": "med1", "code": {"text": "Tramadol 50 MG"}}
    draft = _mr("d1", status="draft", contained=[contained], medicationReference={"reference": "#med1"})
    data = gather(_request({"patientId": "p1", "draftOrders": [{"resource": draft}, draft, 7]}, {}), now=NOW)
    assert len(data.draft_orders) == 2
    assert data.medications["Medication/med1"] == contained


def test_missing_keys_are_passed_on_with_plain_words():
    data = gather(_request({"patientId": "p1"}, {}, missing=(PGX, MEDICATIONS)), now=NOW)
    assert data.missing == (PGX, MEDICATIONS)
    assert missing_labels(data.missing) == ["pharmacogenomic results", "active medication list"]


def test_resources_of_single_resource_and_bundle_without_resource_type():
    assert resources_of({"resourceType": "Patient", "id": "p"}) == [{"resourceType": "Patient", "id": "p"}]
    assert resources_of({"entry": [{"resource": {"resourceType": "Condition", "id": "c"}}]})[0]["id"] == "c"
    assert resources_of(None) == [] and resources_of([1, 2]) == []


# ---- wrong JSON types (hostile-input battery): read leniently, never a TypeError ----------------------------

@pytest.mark.parametrize("entry", ["x", 5, True, 3.5, {"resource": {"resourceType": "Patient"}}, None])
def test_gather_resources_of_with_string_entry_is_ignored(entry):
    # was TypeError ("'int' object is not iterable") for a number or true in Bundle.entry: a 500
    assert resources_of({"resourceType": "Bundle", "type": "searchset", "entry": entry}) == []


def test_gather_with_wrong_types_in_context_and_contained_reads_what_it_can():
    draft = _mr("d1", status="draft", contained=5)
    data = gather(_request({"patientId": 7, "selections": "MedicationRequest/d1",
                            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}, 5]}},
                           {MEDICATIONS: {"resourceType": "Bundle", "entry": True}, PATIENT: "Patient/p1"},
                           missing=[PAIN, 5]), now=NOW)
    assert data.draft_orders == [draft] and data.medication_requests == [] and data.patient is None
    assert data.patient_id == "" and data.selections == () and data.missing == (PAIN,)


def test_medication_by_full_url_is_read_from_a_bundle_that_holds_one_and_only_then():
    med = {"resourceType": "Medication", "code": {"text": "codeine phosphate 30 MG Oral Tablet"}}
    with_med = {"resourceType": "Bundle", "entry": [
        {"fullUrl": "urn:uuid:7f1a0c52-1b7e-4a55-9d1e-3f7a0a1c2b3d", "resource": med},
        {"fullUrl": "http://ehr/fhir/MedicationRequest/m1",
         "resource": _mr("m1", medicationReference={"reference": "urn:uuid:7f1a0c52-1b7e-4a55-9d1e-3f7a0a1c2b3d"})}]}
    data = gather(_request({"patientId": "p1"}, {MEDICATIONS: with_med, CONDITIONS: _bundle()}), now=NOW)
    assert data.medications == {"urn:uuid:7f1a0c52-1b7e-4a55-9d1e-3f7a0a1c2b3d": med}
    data = gather(_request({"patientId": "p1"}, {MEDICATIONS: _bundle(_mr("m2"))}), now=NOW)
    assert data.medications == {}


def test_medication_by_full_url_in_an_odd_container_is_still_read():
    # a typed non-Bundle object holding entries: resources_of reads it as one resource, the fullUrl pass as before
    med = {"resourceType": "Medication", "code": {"text": "tramadol"}}
    odd = {"resourceType": "Parameters", "entry": [{"fullUrl": "urn:uuid:1", "resource": med}]}
    data = gather(_request({"patientId": "p1"}, {MEDICATIONS: odd}), now=NOW)
    assert data.medications == {"urn:uuid:1": med}
