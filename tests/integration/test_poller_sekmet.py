"""The poller against a real FHIR server (sekmet-fhir): right patients, idempotent, incremental, closing,
and nothing lost or duplicated when the server fails mid-cycle."""
from __future__ import annotations

import time
from collections import Counter

import pytest

from cds_hooks.fhir_client import FHIRClient
from fhir_pain.evaluate import evaluate
from fhir_pain.fhir_models import validate
from fhir_pain.poller import detected_issue as di
from fhir_pain.poller.cycle import TypeCursor, dump_cursor, initial_cursor, load_cursor
from fhir_pain.poller.smart_auth import SmartBackendAuth
from written_issues import issues_for
from fault_proxy import FaultProxy
from pgx_seed import CODEINE, IBUPROFEN, medication_request, patient_entries, seed

pytestmark = pytest.mark.integration


def _versions(server, refs) -> dict[str, str]:
    return {r: server.read(r)["meta"]["versionId"] for r in refs}


def test_issues_for_the_right_patients_only_and_a_second_run_writes_nothing(live_sekmet, make_poller):
    at_risk = seed(live_sekmet, [patient_entries(f"Risk{i}", diplotype="*4/*4", drugs=(CODEINE,)) for i in range(3)])
    others = seed(live_sekmet, [
        patient_entries("Normal", diplotype="*1/*1", drugs=(CODEINE,)),       # normal metabolizer: standard dose
        patient_entries("NotCovered", diplotype="*4/*4", drugs=(IBUPROFEN,)),  # CYP2D6 is not ibuprofen's gene
        patient_entries("Untested", drugs=(CODEINE,)),                         # pre-test reminder: a card, no issue
    ])
    poller = make_poller()

    stats = poller.run_cycle()
    assert (stats.patients, stats.evaluated, stats.failed, stats.skipped) == (6, 6, 0, 0)
    assert stats.created == 3 and stats.cursor_advanced

    written = {}
    for refs in at_risk:
        patient, genotype, order = refs
        issues = issues_for(live_sekmet, patient)
        assert len(issues) == 1, patient
        issue = issues[0]
        validate(issue)
        assert issue["status"] == "final" and issue["severity"] == "high"
        assert issue["patient"]["reference"] == patient
        assert {r["reference"] for r in issue["implicated"]} == {order, genotype}
        assert issue["reference"].startswith("https://cpicpgx.org/")
        assert "codeine" in issue["detail"].lower() and "poor metabolizer" in issue["detail"].lower()
        written[f"DetectedIssue/{issue['id']}"] = issue["meta"]["versionId"]
    for refs in others:
        assert issues_for(live_sekmet, refs[0]) == []

    again = poller.run_cycle()
    assert (again.patients, again.written) == (0, 0)
    assert _versions(live_sekmet, written) == written


def test_a_new_medication_request_is_picked_up_next_cycle_and_nothing_else_is_rewritten(live_sekmet, make_poller):
    first, second = seed(live_sekmet, [patient_entries("Stable", diplotype="*4/*4", drugs=(CODEINE,)),
                                       patient_entries("Later", diplotype="*4/*4", drugs=(IBUPROFEN,))])
    poller = make_poller()
    assert poller.run_cycle().created == 1
    stable_issue = issues_for(live_sekmet, first[0])[0]

    new_order = live_sekmet.transaction([{"resource": medication_request(second[0], CODEINE),
                                          "request": {"method": "POST", "url": "MedicationRequest"}}])[0]
    stats = poller.run_cycle()
    assert (stats.changes, stats.patients, stats.created, stats.updated, stats.closed) == (1, 1, 1, 0, 0)
    [issue] = issues_for(live_sekmet, second[0])
    assert {"reference": new_order} in issue["implicated"]
    assert live_sekmet.read(f"DetectedIssue/{stable_issue['id']}")["meta"]["versionId"] == \
        stable_issue["meta"]["versionId"]


def test_a_patient_only_change_is_evaluated_regression_birth_date_feeds_the_age_limits(live_sekmet, make_poller):
    """The FDA age limit reads Patient.birthDate: a corrected birth date alone must reach the rules (the feeds
    once watched only MedicationRequest, Observation and Condition)."""
    [(patient, _)] = seed(live_sekmet, [patient_entries("Corrected", drugs=(CODEINE,))])
    poller = make_poller()
    poller.run_cycle()
    before = {i["id"] for i in issues_for(live_sekmet, patient)}
    child = live_sekmet.read(patient) | {"birthDate": f"{time.gmtime().tm_year - 9}-01-15"}
    live_sekmet.transaction([{"resource": child, "request": {"method": "PUT", "url": patient}}])
    stats = poller.run_cycle()
    assert (stats.changes, stats.patients) == (1, 1)
    new = [i for i in issues_for(live_sekmet, patient) if i["id"] not in before]
    assert any("12" in (i.get("detail") or "") for i in new), [i.get("detail") for i in new]


def test_a_finding_that_no_longer_holds_is_closed_and_a_changed_one_updated(live_sekmet, make_poller):
    [(patient, genotype, order)] = seed(live_sekmet, [patient_entries("Stops", diplotype="*4/*4", drugs=(CODEINE,))])
    [(patient2, genotype2, order2)] = seed(live_sekmet, [patient_entries("Retested", diplotype="*4/*4",
                                                                         drugs=(CODEINE,))])
    poller = make_poller()
    assert poller.run_cycle().created == 2
    [before2] = issues_for(live_sekmet, patient2)

    stopped = dict(live_sekmet.read(order), status="stopped")
    live_sekmet.put(stopped)
    # a corrected genotype: ultrarapid instead of poor - still "avoid codeine", but another finding
    retest = dict(live_sekmet.read(genotype2))
    retest["valueCodeableConcept"] = {"coding": [{"system": "http://www.pharmvar.org", "code": "CYP2D6 *1/*1x2",
                                                  "display": "CYP2D6 *1/*1x2"}]}
    retest["status"] = "amended"
    live_sekmet.put(retest)

    stats = poller.run_cycle()
    assert (stats.patients, stats.closed, stats.updated, stats.created) == (2, 1, 1, 0)
    [closed] = issues_for(live_sekmet, patient)
    validate(closed)
    assert closed["status"] == "cancelled" and closed["mitigation"][0]["action"]["coding"][0]["code"] == \
        "no-longer-applies"
    [after2] = issues_for(live_sekmet, patient2)
    validate(after2)
    assert after2["id"] == before2["id"] and after2["status"] == "final"
    assert di.stored_hash(after2) != di.stored_hash(before2)
    assert after2["identifiedDateTime"] == before2["identifiedDateTime"]
    assert poller.run_cycle().written == 0


def _assert_complete_and_unique(server, patients):
    for refs in patients:
        issues = issues_for(server, refs[0])
        assert len(issues) == 1, refs[0]
        assert issues[0]["status"] == "final"
    keys = Counter(di.issue_key(i) for refs in patients for i in issues_for(server, refs[0]))
    assert all(n == 1 for n in keys.values())


def test_server_stopped_mid_cycle_loses_nothing_and_duplicates_nothing(live_sekmet, make_poller, store):
    patients = seed(live_sekmet, [patient_entries(f"Outage{i}", diplotype="*4/*4", drugs=(CODEINE,))
                                  for i in range(12)])
    calls = []

    def evaluate_then_pull_the_plug(data, hook):
        calls.append(data.patient_id)
        if len(calls) == 5:
            live_sekmet.stop()
        return evaluate(data, hook)

    poller = make_poller(evaluate=evaluate_then_pull_the_plug, workers=1, retries=1)
    stats = poller.run_cycle()
    assert stats.evaluated == 4 and stats.failed == 8 and stats.skipped == 0
    held = load_cursor(store.get_cursor("poller:test"))

    live_sekmet.start()
    # the cursor moved, but not past any change of a patient whose writes did not happen
    assert held["MedicationRequest"].ts is not None and held["Observation"].ts is not None
    done = set(calls[:4])
    for _, genotype, order in (refs for refs in patients if refs[0].split("/")[1] not in done):
        assert live_sekmet.read(genotype)["meta"]["lastUpdated"] > held["Observation"].ts
        assert live_sekmet.read(order)["meta"]["lastUpdated"] > held["MedicationRequest"].ts
    poller.evaluate = evaluate
    stats = poller.run_cycle()
    # the eight not done are written now; a done one may be seen again (its changes overlap), never rewritten
    assert (stats.failed, stats.created, stats.updated, stats.closed) == (0, 8, 0, 0)
    _assert_complete_and_unique(live_sekmet, patients)
    assert poller.run_cycle().written == 0


def test_server_answering_500_mid_cycle_loses_nothing_and_duplicates_nothing(live_sekmet, make_poller):
    patients = seed(live_sekmet, [patient_entries(f"Flaky{i}", diplotype="*4/*4", drugs=(CODEINE,))
                                  for i in range(10)])
    writes = Counter()
    broken = {"on": True}

    def fault(method, path):
        if method != "PUT" or "/DetectedIssue/" not in path:
            return None
        writes[path] += 1
        n = sum(writes.values())
        if n <= 3:
            return "after"        # applied, but the client is told it failed: its retry must not duplicate
        if broken["on"] and n > 6:
            return "before"       # the server stays down for writes: those patients must be retried next cycle
        return None

    proxy = FaultProxy(live_sekmet.root_url, fault).start()
    try:
        poller = make_poller(base_url=proxy.base_url, workers=1, retries=1)
        stats = poller.run_cycle()
        assert stats.failed > 0 and stats.created >= 2
        assert any(d == "after" for _, _, d in proxy.injected)
        broken["on"] = False
        stats = poller.run_cycle()
        assert stats.failed == 0
        _assert_complete_and_unique(live_sekmet, patients)
        assert poller.run_cycle().written == 0
    finally:
        proxy.stop()


def test_smart_backend_services_against_the_server(live_sekmet, make_poller):
    [(patient, _, _)] = seed(live_sekmet, [patient_entries("Smart", diplotype="*4/*4", drugs=(CODEINE,))])
    auth = SmartBackendAuth.from_key_file(live_sekmet.smart_key_path, client_id=live_sekmet.smart_client_id,
                                          kid=live_sekmet.smart_kid, fhir_base=live_sekmet.base_url)
    stats = make_poller(auth=auth).run_cycle()
    assert stats.created == 1 and stats.failed == 0
    assert auth.token_url == f"{live_sekmet.root_url}/auth/token"   # discovered from .well-known
    assert len(issues_for(live_sekmet, patient)) == 1


def test_a_wrong_token_fails_the_cycle_before_anything_moves(live_sekmet, make_poller, store):
    seed(live_sekmet, [patient_entries("Denied", diplotype="*4/*4", drugs=(CODEINE,))])
    poller = make_poller(auth="not-the-token")
    with pytest.raises(Exception) as err:
        poller.run_cycle()
    assert getattr(err.value, "status", None) == 401
    assert store.get_cursor("poller:test") is None


def test_throttling_is_waited_out_and_a_stalled_call_times_out_without_losing_the_patient(live_sekmet, make_poller):
    patients = seed(live_sekmet, [patient_entries(f"Slow{i}", diplotype="*4/*4", drugs=(CODEINE,)) for i in range(3)])
    batches = Counter()

    def fault(method, path):
        if method == "POST" and path.rstrip("/").endswith("/fhir"):   # a patient's batch read
            batches["n"] += 1
            return {1: "throttle", 3: "stall"}.get(batches["n"])
        return None

    # the stall outlasts any read timeout (it costs the test only the timeout); the timeout is long enough that an
    # unstalled call on a busy machine never meets it
    proxy = FaultProxy(live_sekmet.root_url, fault, stall_s=120.0).start()
    try:
        poller = make_poller(base_url=proxy.base_url, workers=1, retries=1)
        poller.client.timeout = (2.0, 2.0)
        poller.client.retries = 1
        started = time.monotonic()
        stats = poller.run_cycle()
        # 1st batch: 429, retried after its Retry-After (1 s); the stalled one times out, is retried and works
        assert time.monotonic() - started >= 1.0
        assert (stats.failed, stats.created) == (0, 3)
        assert [d for _, _, d in proxy.injected] == ["throttle", "stall"]

        batches.clear()
        seed(live_sekmet, [patient_entries("SlowLater", diplotype="*4/*4", drugs=(CODEINE,))])
        poller.client.retries = 0
        proxy.fault = lambda method, path: "stall" if method == "POST" else None
        stats = poller.run_cycle()
        assert (stats.failed, stats.cursor_advanced) == (1, False)   # timed out: retried next cycle, not lost
        proxy.fault = lambda method, path: None
        assert poller.run_cycle().created == 1
    finally:
        proxy.stop()
    _assert_complete_and_unique(live_sekmet, patients)


def test_a_change_that_became_visible_late_is_picked_up_through_the_window(live_sekmet, make_poller, store):
    [late] = seed(live_sekmet, [patient_entries("LateCommit", diplotype="*4/*4", drugs=(CODEINE,))])
    [first] = seed(live_sekmet, [patient_entries("SeenFirst", diplotype="*4/*4", drugs=(CODEINE,))])
    evaluated = []

    def counting(data, hook):
        evaluated.append(f"Patient/{data.patient_id}")
        return evaluate(data, hook)

    # the cursor as a poller leaves it when it took SeenFirst while LateCommit's transaction (stamped earlier)
    # was not yet visible
    poller = make_poller(evaluate=counting, overlap=0)
    cursor = initial_cursor(poller.since)
    for rtype, ref in (("Patient", first[0]), ("Observation", first[1]), ("MedicationRequest", first[2])):
        meta = live_sekmet.read(ref)["meta"]
        key = f"{ref.split('/')[1]}/{meta['versionId']}"
        cursor[rtype] = TypeCursor(meta["lastUpdated"], {key: meta["lastUpdated"]}, cursor[rtype].floor)
    store.set_cursor("poller:test", dump_cursor(cursor))

    assert poller.run_cycle().changes == 0 and evaluated == []   # without the window it is never seen
    poller = make_poller(evaluate=counting)                      # the default window: 120 s behind the cursor
    stats = poller.run_cycle()
    assert (stats.changes, stats.patients, stats.created) == (3, 1, 1)   # its Patient, Observation, MedicationRequest
    assert evaluated == [late[0]]                                # SeenFirst, already taken, is not evaluated again
    assert len(issues_for(live_sekmet, late[0])) == 1
    assert poller.run_cycle().patients == 0 and evaluated == [late[0]]
