from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import responses

from cds_hooks.fhir_client import FHIRClient, FHIRError, FHIRServerError
from fhir_pain.facts import Drug, Finding, MedicationUse
from fhir_pain.poller import detected_issue as di
from fhir_pain.poller.cycle import (
    Change, Poller, TypeCursor, _parse_instant, advance, dump_cursor, feed_start, gather, load_cursor, patient_of,
    read_feed, reconcile,
)

BASE = "https://fhir.example.org/r4"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def _mr(rid, ts, patient="p1", version="1"):
    return {"resourceType": "MedicationRequest", "id": rid, "meta": {"versionId": version, "lastUpdated": ts},
            "subject": {"reference": f"Patient/{patient}"}}


def _bundle(resources, next_url=None):
    b = {"resourceType": "Bundle", "type": "searchset",
         "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}
    if next_url:
        b["link"] = [{"relation": "next", "url": next_url}]
    return b


def _params(call):
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


@pytest.fixture
def client():
    return FHIRClient(BASE, auth="t", retries=0)


@pytest.mark.parametrize("ref, expected", [
    ("Patient/abc", "abc"), ("https://x.org/fhir/Patient/abc", "abc"), ("Patient/abc/_history/3", "abc"),
    ("Group/g1", None), ("urn:uuid:1", None), ("Patient/", None),
])
def test_patient_of(ref, expected):
    assert patient_of({"subject": {"reference": ref}}) == expected


def test_patient_of_missing_or_odd_shapes():
    assert patient_of({}) is None
    assert patient_of({"subject": "Patient/x"}) is None
    assert patient_of({"patient": {"reference": "Patient/y"}}) == "y"


@responses.activate
def test_feed_pages_by_keyset_and_never_takes_a_resource_twice(client):
    page1 = [_mr("a", "2026-11-21T10:00:00.001Z"), _mr("b", "2026-11-21T10:00:00.002Z"),
             _mr("c", "2026-11-21T10:00:00.003Z")]
    page2 = [_mr("c", "2026-11-21T10:00:00.003Z"), _mr("d", "2026-11-21T10:00:00.004Z", patient="p2")]
    responses.get(f"{BASE}/MedicationRequest", json=_bundle(page1, f"{BASE}/MedicationRequest?_offset=3"))
    responses.get(f"{BASE}/MedicationRequest", json=_bundle(page2))
    changes = read_feed(client, "MedicationRequest", TypeCursor("2026-11-21T09:00:00.000Z"), page_size=3,
                        limit=100)
    assert [c.key for c in changes] == ["a/1", "b/1", "c/1", "d/1"]
    assert [c.patient_id for c in changes] == ["p1", "p1", "p1", "p2"]
    first, second = (_params(c) for c in responses.calls)
    assert first["_lastUpdated"] == "ge2026-11-21T09:00:00.000Z" and first["_sort"] == "_lastUpdated"
    assert first["_count"] == "3"
    # the second page is asked from the newest instant taken, not through the offset link
    assert second["_lastUpdated"] == "ge2026-11-21T10:00:00.003Z" and "_offset" not in second


@responses.activate
def test_feed_skips_what_the_cursor_already_took_at_its_instant(client):
    ts = "2026-11-21T10:00:00.003Z"
    responses.get(f"{BASE}/MedicationRequest", json=_bundle([_mr("c", ts), _mr("d", "2026-11-21T10:00:01Z")]))
    changes = read_feed(client, "MedicationRequest", TypeCursor(ts, {"c/1": ts}), page_size=50, limit=100)
    assert [c.key for c in changes] == ["d/1"]


@responses.activate
def test_feed_follows_the_servers_links_when_a_whole_page_shares_one_instant(client):
    ts = "2026-11-21T10:00:00.000Z"
    same = [_mr(x, ts) for x in "abc"]
    responses.get(f"{BASE}/MedicationRequest", json=_bundle(same, f"{BASE}/MedicationRequest?page=2"))
    responses.get(f"{BASE}/MedicationRequest", json=_bundle(same, f"{BASE}/MedicationRequest?page=2"))
    responses.get(f"{BASE}/MedicationRequest", json=_bundle([_mr("d", ts), _mr("e", ts)]))
    changes = read_feed(client, "MedicationRequest", TypeCursor(), page_size=3, limit=100)
    assert sorted(c.key for c in changes) == ["a/1", "b/1", "c/1", "d/1", "e/1"]
    assert _params(responses.calls[2]) == {"page": "2"}


@responses.activate
def test_feed_walks_the_links_when_the_server_ignores_sort(client):
    unsorted = [_mr("b", "2026-11-21T10:00:05Z"), _mr("a", "2026-11-21T10:00:01Z")]
    responses.get(f"{BASE}/MedicationRequest", json=_bundle(unsorted, f"{BASE}/MedicationRequest?page=2"))
    responses.get(f"{BASE}/MedicationRequest", json=_bundle([_mr("c", "2026-11-21T10:00:03Z")]))
    changes = read_feed(client, "MedicationRequest", TypeCursor(), page_size=2, limit=100)
    assert [c.key for c in changes] == ["a/1", "c/1", "b/1"]  # oldest first
    assert _params(responses.calls[1]) == {"page": "2"}


@responses.activate
def test_feed_stops_at_the_limit_and_the_rest_waits(client):
    responses.get(f"{BASE}/MedicationRequest", json=_bundle([_mr("a", "2026-11-21T10:00:01Z"),
                                                             _mr("b", "2026-11-21T10:00:02Z")],
                                                            f"{BASE}/MedicationRequest?page=2"))
    changes = read_feed(client, "MedicationRequest", TypeCursor(), page_size=2, limit=2)
    assert len(changes) == 2 and len(responses.calls) == 1


@responses.activate
def test_feed_ignores_entries_without_a_usable_meta_and_included_resources(client):
    bundle = _bundle([_mr("a", "not a date"), {"resourceType": "MedicationRequest", "id": "b"},
                      _mr("c", "2026-11-21T10:00:00Z")])
    bundle["entry"].append({"resource": {"resourceType": "Medication", "id": "m"}, "search": {"mode": "include"}})
    responses.get(f"{BASE}/MedicationRequest", json=bundle)
    assert [c.key for c in read_feed(client, "MedicationRequest", TypeCursor(), page_size=50, limit=10)] == ["c/1"]


def _change(key, ts, patient="p"):
    return Change("MedicationRequest", key, ts, _parse_instant(ts), patient)


def test_advance_stops_before_the_oldest_change_to_retry():
    changes = [_change("a/1", "2026-11-21T10:00:01Z"), _change("b/1", "2026-11-21T10:00:02Z"),
               _change("c/1", "2026-11-21T10:00:02Z"), _change("d/1", "2026-11-21T10:00:03Z")]
    start = TypeCursor("2026-11-21T09:00:00Z")
    assert advance(start, changes, None) == TypeCursor("2026-11-21T10:00:03Z", {"d/1": "2026-11-21T10:00:03Z"})
    assert advance(start, changes, _parse_instant("2026-11-21T10:00:03Z")) == \
        TypeCursor("2026-11-21T10:00:02Z", {"b/1": "2026-11-21T10:00:02Z", "c/1": "2026-11-21T10:00:02Z"})
    assert advance(start, changes, _parse_instant("2026-11-21T10:00:01Z")) == start
    assert advance(start, [], None) == start


def test_advance_at_the_same_instant_keeps_what_was_already_taken():
    cur = TypeCursor("2026-11-21T10:00:02.000Z", {"b/1": "2026-11-21T10:00:02.000Z"})
    assert advance(cur, [_change("c/1", "2026-11-21T10:00:02Z")], None) == \
        TypeCursor("2026-11-21T10:00:02.000Z", {"b/1": "2026-11-21T10:00:02.000Z", "c/1": "2026-11-21T10:00:02Z"})


def test_cursor_round_trip_and_bad_values():
    cursor = load_cursor(None)
    cursor["Observation"] = TypeCursor("2026-11-21T10:00:02Z", {"w/3": "2026-11-21T09:59:30Z",
                                                                 "x/1": "2026-11-21T10:00:02Z"})
    cursor["Condition"] = TypeCursor("2026-11-21T10:00:02Z", floor="2026-11-21T10:00:00Z")
    assert load_cursor(dump_cursor(cursor)) == cursor
    assert load_cursor("{not json") == load_cursor(None)
    assert load_cursor('{"Observation": {"ts": "yesterday"}}')["Observation"] == TypeCursor()
    assert load_cursor('["x"]') == load_cursor(None)


# ---- reconcile and the cycle, over an in-memory stand-in for the server ------------------------------------------

CODEINE = Drug("2670", "codeine")


def _finding(mr="MedicationRequest/m1", summary="CYP2D6 PM: avoid codeine", indicator="critical", action="avoid"):
    return Finding(rule="cpic/codeine/CYP2D6", kind="drug-gene", indicator=indicator, summary=summary,
                   drug=CODEINE, action=action, evidence=("Observation/g1", mr),
                   medication=MedicationUse(mr, "active", "order", (CODEINE,), "codeine"),
                   knowledge={"url": "https://cpicpgx.org/guidelines/guideline-for-codeine-and-cyp2d6/"})


class Recorder:
    def __init__(self):
        self.puts = []

    def update(self, resource):
        self.puts.append(resource)
        return resource


def test_reconcile_creates_updates_closes_and_leaves_the_rest():
    client = Recorder()
    out = reconcile(client, "p1", [_finding()], [], NOW)
    assert (out.findings, out.created) == (1, 1)
    created = dict(client.puts[0], meta={"versionId": "1", "tag": client.puts[0]["meta"]["tag"]})

    client = Recorder()
    out = reconcile(client, "p1", [_finding()], [created], NOW)
    assert (out.unchanged, client.puts) == (1, [])

    out = reconcile(client, "p1", [_finding(summary="CYP2D6 UM: avoid codeine")], [created], NOW)
    assert out.updated == 1 and client.puts[-1]["id"] == created["id"]

    client = Recorder()
    out = reconcile(client, "p1", [_finding(indicator="info", action="standard-dose")], [created], NOW)
    assert (out.findings, out.closed) == (0, 1) and client.puts[0]["status"] == "cancelled"

    closed = client.puts[0]
    client = Recorder()
    assert reconcile(client, "p1", [], [closed], NOW).closed == 0 and client.puts == []
    assert reconcile(client, "p1", [_finding()], [closed], NOW).updated == 1   # it holds again: reopened
    assert client.puts[0]["status"] == "final"


def test_reconcile_never_touches_what_a_clinician_marked_entered_in_error():
    client = Recorder()
    existing = dict(di.render(_finding(), "p1", NOW), status="entered-in-error")
    assert reconcile(client, "p1", [_finding(summary="changed")], [existing], NOW).unchanged == 1
    assert reconcile(client, "p1", [], [existing], NOW).closed == 0
    assert client.puts == []


class FakeServer:
    """Just enough of FHIRClient for run_cycle: a feed of MedicationRequests and per-patient reads."""

    def __init__(self, patients, fail_writes_for=()):
        self.patients = patients
        self.fail_writes_for = set(fail_writes_for)
        self.issues = {}

    def read(self, path):
        if path.startswith("Patient/"):
            return {"resourceType": "Patient", "id": path.split("/")[1]}
        rtype, _, query = path.partition("?")
        params = {k: v[0] for k, v in parse_qs(query).items()}
        since = _parse_instant(params.get("_lastUpdated", "ge1900-01-01T00:00:00Z")[2:])
        found = [_mr(f"m-{p}", ts, patient=p) for p, ts in self.patients.items()
                 if rtype == "MedicationRequest" and _parse_instant(ts) >= since]
        return _bundle(sorted(found, key=lambda r: r["meta"]["lastUpdated"]))

    def search(self, query):
        rtype, _, q = query.partition("?")
        pid = parse_qs(q).get("patient", [None])[0]
        if rtype == "MedicationRequest":
            return [_mr(f"m-{pid}", self.patients[pid], patient=pid)]
        if rtype == "DetectedIssue":
            pid = parse_qs(q)["_tag"][0].split("|")[1]
            return [r for r in self.issues.values() if r["patient"]["reference"] == f"Patient/{pid}"]
        return []

    def update(self, resource):
        pid = resource["patient"]["reference"].split("/")[1]
        if pid in self.fail_writes_for:
            raise FHIRServerError("injected", status=503)
        self.issues[resource["id"]] = resource
        return resource


@pytest.fixture
def store(store_url):
    """The service's store on SQLite and on PostgreSQL: the cursor round-trips through a real database."""
    from fhir_pain.store import Store
    store = Store(store_url)
    yield store
    store.dispose()


class MemoryStore:
    def __init__(self):
        self.values = {}

    def get_cursor(self, name):
        return self.values.get(name)

    def set_cursor(self, name, value):
        self.values[name] = value


def _evaluate(data, hook):
    assert hook == "patient-view"
    if data.patient_id == "bad-data":
        raise KeyError("rules choked")
    return [_finding(mr=f"MedicationRequest/{m['id']}") for m in data.medication_requests]


def test_cycle_holds_the_cursor_before_a_patient_whose_write_failed_and_skips_bad_data(store):
    patients = {"p1": "2026-11-21T10:00:01Z", "bad-data": "2026-11-21T10:00:02Z",
                "p3": "2026-11-21T10:00:03Z", "p4": "2026-11-21T10:00:04Z"}
    server = FakeServer(patients, fail_writes_for={"p3"})
    seen = []
    poller = Poller(server, store, cursor_name="c", evaluate=_evaluate, workers=1, progress=seen.append)
    stats = poller.run_cycle()
    assert (stats.patients, stats.evaluated, stats.created, stats.failed, stats.skipped) == (4, 2, 2, 1, 1)
    assert stats.cursor_advanced and seen[-1] is stats
    cursor = load_cursor(store.get_cursor("c"))
    assert cursor["MedicationRequest"] == TypeCursor("2026-11-21T10:00:02Z", {"m-p1/1": "2026-11-21T10:00:01Z",
                                                                              "m-bad-data/1": "2026-11-21T10:00:02Z"})
    assert stats.summary().startswith("poll: 4 changes, 4 patients, 2 evaluated, 2 findings, 2 written")
    assert "1 failed, 1 skipped, cursor advanced" in stats.summary()

    server.fail_writes_for.clear()
    stats = poller.run_cycle()
    assert (stats.patients, stats.created, stats.unchanged, stats.failed) == (2, 1, 1, 0)
    assert load_cursor(store.get_cursor("c"))["MedicationRequest"].ts == "2026-11-21T10:00:04Z"
    assert len(server.issues) == 3
    stats = poller.run_cycle()
    assert (stats.changes, stats.written, stats.cursor_advanced) == (0, 0, False)


def test_a_feed_failure_ends_the_cycle_with_the_cursor_untouched(store):
    class Down(FakeServer):
        def read(self, path):
            raise FHIRServerError("down")

    with pytest.raises(FHIRError):
        Poller(Down({}), store, cursor_name="c", evaluate=_evaluate).run_cycle()
    assert store.get_cursor("c") is None


def test_first_run_from_since_takes_only_newer_changes():
    server = FakeServer({"old": "2026-01-01T00:00:00Z", "new": "2026-11-21T10:00:00Z"})
    poller = Poller(server, MemoryStore(), cursor_name="c", evaluate=_evaluate,
                    since=datetime(2026, 6, 1, tzinfo=timezone.utc))
    assert poller.run_cycle().patients == 1


# ---- reading one patient: a batch round trip, or one request each ---------------------------------------------------

def _searchset(resources, next_url=None):
    return _bundle(resources, next_url)


def _batch_answer(*resources):
    return {"resourceType": "Bundle", "type": "batch-response",
            "entry": [{"resource": r, "response": {"status": "200 OK"}} for r in resources]}


OBS = {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}}


@responses.activate
def test_a_patient_is_read_in_one_batch_and_further_pages_are_followed(client):
    mine = di.render(_finding(), "p1", NOW)
    other = di.render(_finding(), "p2", NOW)  # a server ignoring _tag must not make p2's issue ours
    responses.post(BASE, json=_batch_answer(
        {"resourceType": "Patient", "id": "p1"},
        _searchset([OBS], f"{BASE}/Observation?patient=p1&page=2"),
        _searchset([]),
        _searchset([{"resourceType": "Procedure", "id": "pr1", "status": "completed",
                     "code": {"text": "Tonsillectomy"}, "subject": {"reference": "Patient/p1"}}]),
        _searchset([_mr("m1", "2026-11-21T10:00:00Z"), {"resourceType": "Medication", "id": "med1"}]),
        _searchset([dict(_mr("m0", "2026-08-01T10:00:00Z"), status="completed"),
                    {"resourceType": "Medication", "id": "med0"}]),
        _searchset([mine, other]),
    ))
    responses.get(f"{BASE}/Observation", json=_searchset([dict(OBS, id="o2")]))
    data, existing = gather(client, "p1", NOW, 50, batch=True)
    assert [o["id"] for o in data.observations] == ["o1", "o2"]
    assert [m["id"] for m in data.medication_requests] == ["m0", "m1"]   # by id, whichever search found them
    assert list(data.medications) == ["Medication/med1", "Medication/med0"]
    assert [p["id"] for p in data.procedures] == ["pr1"]
    assert existing == [mine]
    assert len(responses.calls) == 2
    urls = [e["request"]["url"] for e in orjson.loads(responses.calls[0].request.body)["entry"]]
    assert [u.split("?")[0] for u in urls] == ["Patient/p1", "Observation", "Condition", "Procedure",
                                               "MedicationRequest", "MedicationRequest", "DetectedIssue"]


@responses.activate
def test_a_server_without_batch_support_is_read_one_request_at_a_time():
    responses.post(BASE, status=405, json={"resourceType": "OperationOutcome", "issue": []})
    responses.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    for rtype in ("Observation", "Condition", "Procedure", "MedicationRequest", "DetectedIssue"):
        responses.get(f"{BASE}/{rtype}", json=_searchset([OBS] if rtype == "Observation" else []))
    poller = Poller(FHIRClient(BASE, retries=0), MemoryStore(), cursor_name="c", evaluate=lambda d, h: [])
    assert poller.batch
    assert poller._one("p1", NOW).findings == 0
    assert not poller.batch
    assert poller._one("p1", NOW).findings == 0
    methods = [c.request.method for c in responses.calls]
    assert methods.count("POST") == 1 and methods.count("GET") == 14
    statuses = [_params(c).get("status") for c in responses.calls if "/MedicationRequest" in c.request.url]
    assert statuses == ["active", "completed,stopped,on-hold"] * 2


@responses.activate
def test_an_error_inside_the_batch_is_that_reads_error(client):
    responses.post(BASE, json={"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"response": {"status": "404 Not Found"}}] + [{"resource": _searchset([]), "response": {"status": "200"}}] * 6})
    with pytest.raises(FHIRError) as err:
        gather(client, "gone", NOW, 50, batch=True)
    assert err.value.status == 404


def test_a_refused_token_or_token_endpoint_holds_the_cursor_and_asks_for_a_new_token():
    from cds_hooks.fhir_client import FHIRUnauthorized
    from fhir_pain.poller.smart_auth import SmartAuthError

    class Refusing(FakeServer):
        def update(self, resource):
            pid = resource["patient"]["reference"].split("/")[1]
            if pid == "p1":
                raise FHIRUnauthorized("expired", status=401)
            if pid == "p2":
                raise SmartAuthError("token endpoint unreachable")
            return super().update(resource)

    renewals = []
    store = MemoryStore()
    poller = Poller(Refusing({"p1": "2026-11-21T10:00:01Z", "p2": "2026-11-21T10:00:02Z",
                              "p3": "2026-11-21T10:00:03Z"}), store, cursor_name="c", evaluate=_evaluate,
                    workers=1, reauthenticate=lambda: renewals.append(1))
    stats = poller.run_cycle()
    assert (stats.failed, stats.skipped, stats.created, stats.cursor_advanced) == (2, 0, 1, False)
    assert renewals == [1] and store.values == {}


# ---- the overlap window: late-committed changes, each taken once ---------------------------------------------------

WINDOW = timedelta(seconds=120)


def _counting(evaluated):
    def evaluate(data, hook):
        evaluated.append(data.patient_id)
        return _evaluate(data, hook)
    return evaluate


@pytest.mark.parametrize("cursor, overlap, start", [
    (TypeCursor(), WINDOW, None),
    (TypeCursor("2026-11-21T10:00:00.003+01:00"), timedelta(0), "2026-11-21T10:00:00.003+01:00"),
    (TypeCursor("2026-11-21T10:00:00Z"), WINDOW, "2026-11-21T09:58:00.000Z"),
    (TypeCursor("2026-11-21T10:00:00.250+01:00"), WINDOW, "2026-11-21T08:58:00.250Z"),
    (TypeCursor("2026-11-21T10:00:00.123456Z"), WINDOW, "2026-11-21T09:58:00.123Z"),
    (TypeCursor("2026-11-21T10:00:00Z", floor="2026-11-21T09:59:00Z"), WINDOW, "2026-11-21T09:59:00Z"),
    (TypeCursor("2026-11-21T10:00:00Z", floor="2026-11-21T09:57:00Z"), WINDOW, "2026-11-21T09:58:00.000Z"),
])
def test_the_feed_starts_the_overlap_before_the_cursor_never_behind_its_floor(cursor, overlap, start):
    assert feed_start(cursor, overlap) == start


def test_a_change_committed_late_with_an_older_instant_inside_the_window_is_evaluated_once():
    server = FakeServer({"p1": "2026-11-21T10:00:00Z", "p2": "2026-11-21T10:01:00Z"})
    evaluated = []
    poller = Poller(server, MemoryStore(), cursor_name="c", evaluate=_counting(evaluated), workers=1)
    assert poller.run_cycle().patients == 2
    # its transaction was stamped at 10:00:30 and committed after the cursor had moved to 10:01:00
    server.patients["late"] = "2026-11-21T10:00:30Z"
    stats = poller.run_cycle()
    assert (stats.changes, stats.patients, stats.created) == (1, 1, 1)
    assert evaluated == ["p1", "p2", "late"]
    for _ in range(2):   # the window is read again each cycle; what it already took is not evaluated again
        stats = poller.run_cycle()
        assert (stats.changes, stats.patients, stats.written, stats.cursor_advanced) == (0, 0, 0, False)
    assert evaluated == ["p1", "p2", "late"] and len(server.issues) == 3


def test_without_the_window_the_late_change_is_never_seen():
    server = FakeServer({"p1": "2026-11-21T10:00:00Z", "p2": "2026-11-21T10:01:00Z"})
    poller = Poller(server, MemoryStore(), cursor_name="c", evaluate=_evaluate, overlap=0)
    poller.run_cycle()
    server.patients["late"] = "2026-11-21T10:00:30Z"
    assert poller.run_cycle().changes == 0


def test_a_change_committed_later_than_the_window_reaches_is_missed_the_documented_limit():
    server = FakeServer({"p1": "2026-11-21T10:00:00Z", "p2": "2026-11-21T10:05:00Z"})
    poller = Poller(server, MemoryStore(), cursor_name="c", evaluate=_evaluate)
    poller.run_cycle()
    server.patients["too-late"] = "2026-11-21T10:02:59.999Z"   # just over 120 s behind the cursor
    assert poller.run_cycle().changes == 0
    server.patients["at-the-edge"] = "2026-11-21T10:03:00Z"     # exactly 120 s behind: the search is ge
    stats = poller.run_cycle()
    assert (stats.changes, stats.patients) == (1, 1)


def test_the_window_never_reaches_behind_a_first_runs_since_and_forgets_it_once_past(store):
    server = FakeServer({"before": "2026-11-21T09:59:50Z", "after": "2026-11-21T10:00:10Z"})
    evaluated = []
    poller = Poller(server, store, cursor_name="c", evaluate=_counting(evaluated),
                    since=datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc))
    poller.run_cycle()
    assert evaluated == ["after"]
    # "before" is within 120 s of the cursor, but older than --since: still not taken
    assert poller.run_cycle().changes == 0
    assert load_cursor(store.get_cursor("c"))["MedicationRequest"].floor == "2026-11-21T10:00:00Z"
    server.patients["much-later"] = "2026-11-21T10:05:00Z"
    poller.run_cycle()
    assert evaluated == ["after", "much-later"]
    cursor = load_cursor(store.get_cursor("c"))["MedicationRequest"]
    assert (cursor.ts, cursor.floor, cursor.taken) == ("2026-11-21T10:05:00Z", None,
                                                       {"m-much-later/1": "2026-11-21T10:05:00Z"})


def test_the_cursor_keeps_only_the_keys_inside_the_window_oldest_first():
    cursor = TypeCursor("2026-11-21T10:00:00Z", {"a/1": "2026-11-21T09:58:30Z", "b/1": "2026-11-21T10:00:00Z"})
    changes = [_change("c/1", "2026-11-21T10:01:00Z"), _change("late/1", "2026-11-21T09:59:10Z"),
               _change("stale/1", "2026-11-21T09:58:59Z")]   # read, but older than the new window's start
    new = advance(cursor, changes, None, WINDOW)
    assert new.ts == "2026-11-21T10:01:00Z"
    assert list(new.taken) == ["late/1", "b/1", "c/1"]     # a/1 and stale/1 fell out of 09:59:00 .. 10:01:00


def test_a_held_late_change_keeps_the_cursor_and_what_was_done_before_it():
    cursor = TypeCursor("2026-11-21T10:01:00Z", {"p/1": "2026-11-21T10:01:00Z"})
    changes = [_change("ok/1", "2026-11-21T10:00:10Z"), _change("held/1", "2026-11-21T10:00:20Z"),
               _change("new/1", "2026-11-21T10:02:00Z")]
    new = advance(cursor, changes, _parse_instant("2026-11-21T10:00:20Z"), WINDOW)
    # never past the held change: held/1 and new/1 come again next cycle (re-evaluating new/1 writes nothing)
    assert new == TypeCursor("2026-11-21T10:01:00Z", {"ok/1": "2026-11-21T10:00:10Z", "p/1": "2026-11-21T10:01:00Z"})


@responses.activate
def test_a_window_of_changes_already_taken_is_paged_through_by_keyset_and_yields_only_the_new(client):
    t = [f"2026-11-21T10:00:0{i}Z" for i in range(5)]
    cursor = TypeCursor(t[3], {"a/1": t[1], "b/1": t[2], "c/1": t[3]})
    pages = [[_mr("a", t[1]), _mr("b", t[2])], [_mr("b", t[2]), _mr("c", t[3])], [_mr("c", t[3]), _mr("d", t[4])],
             [_mr("d", t[4])]]
    for page in pages:
        more = f"{BASE}/MedicationRequest?_offset=2" if len(page) == 2 else None
        responses.get(f"{BASE}/MedicationRequest", json=_bundle(page, more))
    changes = read_feed(client, "MedicationRequest", cursor, page_size=2, limit=100, overlap=WINDOW)
    assert [c.key for c in changes] == ["d/1"]
    assert [_params(c)["_lastUpdated"] for c in responses.calls] == \
        ["ge2026-11-21T09:58:03.000Z", f"ge{t[2]}", f"ge{t[3]}", f"ge{t[4]}"]


@responses.activate
def test_without_a_version_id_each_instant_of_a_resource_is_its_own_change(client):
    def obs(ts):
        return {"resourceType": "Observation", "id": "o", "meta": {"lastUpdated": ts},
                "subject": {"reference": "Patient/p1"}}
    first, second = "2026-11-21T10:00:00Z", "2026-11-21T10:00:05Z"
    responses.get(f"{BASE}/Observation", json=_bundle([obs(first), obs(second)]))
    cursor = TypeCursor(first, {f"o@{first}": first})
    changes = read_feed(client, "Observation", cursor, page_size=50, limit=100, overlap=WINDOW)
    assert [c.key for c in changes] == [f"o@{second}"]


def test_a_cursor_written_before_the_window_loads_and_reads_the_window_once(store):
    old = '{"MedicationRequest": {"ts": "2026-11-21T10:00:02Z", "seen": ["m-p2/1", 7]}}'
    assert load_cursor(old)["MedicationRequest"] == TypeCursor("2026-11-21T10:00:02Z",
                                                               {"m-p2/1": "2026-11-21T10:00:02Z"})
    assert load_cursor(old)["Observation"] == TypeCursor()
    store.set_cursor("c", old)
    evaluated = []
    server = FakeServer({"p1": "2026-11-21T10:00:01Z", "p2": "2026-11-21T10:00:02Z"})
    poller = Poller(server, store, cursor_name="c", evaluate=_counting(evaluated))
    poller.run_cycle()
    assert evaluated == ["p1"]       # what the old cursor could not say it took, once; p2 it could
    assert poller.run_cycle().changes == 0 and evaluated == ["p1"]


def test_unusable_window_entries_are_dropped_on_load():
    raw = ('{"Condition": {"ts": "2026-11-21T10:00:02Z", "taken": {"a/1": "2026-11-21T10:00:01Z", "b/1": "soon",'
           ' "c/1": 5}, "floor": "never"}}')
    assert load_cursor(raw)["Condition"] == TypeCursor("2026-11-21T10:00:02Z", {"a/1": "2026-11-21T10:00:01Z"})


# ---- earlier prescriptions: renewals link as they do in the services --------------------------------------------

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _gabapentin(rid, status, authored, prior=None):
    r = {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
         "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "25480",
                                                   "display": "gabapentin 300 MG Oral Capsule"}]},
         "subject": {"reference": "Patient/p1"}, "authoredOn": authored}
    if prior:
        r["priorPrescription"] = {"reference": f"MedicationRequest/{prior}"}
    return r


def _nrs(oid, value, when):
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": when, "valueInteger": value}


ORIGINAL = _gabapentin("a1", "completed", "2026-07-01")
RENEWAL = _gabapentin("a2", "active", "2026-10-01", prior="a1")
PAIN = [_nrs("n0", 7, "2026-06-10T10:00:00Z"), _nrs("n1", 7, "2026-11-14T10:00:00Z")]


class SearchingServer:
    """A batch-capable server that answers each search by its type and ``status`` (or ignores the status)."""

    def __init__(self, requests, observations=(), honour_status=True):
        self.requests, self.observations, self.honour_status = requests, list(observations), honour_status
        self.paths = []

    def batch_get(self, paths):
        self.paths.extend(paths)
        return [self._answer(p) for p in paths]

    def _answer(self, path):
        if path.startswith("Patient/"):
            return {"resourceType": "Patient", "id": path.split("/")[1]}
        rtype, _, q = path.partition("?")
        params = {k: v[0] for k, v in parse_qs(q).items()}
        if rtype == "Observation":
            return _bundle(self.observations)
        if rtype == "MedicationRequest":
            wanted = params["status"].split(",")
            return _bundle([r for r in self.requests if not self.honour_status or r["status"] in wanted])
        return _bundle([])


def _history_query(queries):
    [q] = [q for q in queries if q.startswith("MedicationRequest?") and "status=active" not in q]
    return {k: v[0] for k, v in parse_qs(q.partition("?")[2]).items()}


def test_the_history_search_asks_for_what_the_services_medication_history_prefetch_asks_for():
    from fhir_pain.gather import MEDICATION_HISTORY
    from fhir_pain.poller.cycle import patient_queries
    from fhir_pain.services import prefetch_templates
    template = parse_qs(prefetch_templates()[MEDICATION_HISTORY].partition("?")[2])
    params = _history_query(patient_queries("p1", 50))
    assert params["status"] == template["status"][0] == "completed,stopped,on-hold"
    assert (params["patient"], params["_include"], params["_count"]) == ("p1", "MedicationRequest:medication", "50")


def test_a_request_returned_by_both_searches_counts_once():
    server = SearchingServer([RENEWAL, ORIGINAL], honour_status=False)   # the server ignores the status filter
    data, _ = gather(server, "p1", NOW, 50, batch=True)
    assert [m["id"] for m in data.medication_requests] == ["a1", "a2"]   # once each, by id
    assert sum(p.startswith("MedicationRequest?") for p in server.paths) == 2


@pytest.mark.parametrize("requests, linked", [([RENEWAL, ORIGINAL], True), ([RENEWAL], False)])
def test_a_renewal_is_linked_to_the_trial_it_continues_as_in_the_services(requests, linked):
    """The poller's data through the rules' single entry point gives what the services give for the same data."""
    from types import SimpleNamespace

    from fhir_pain.evaluate import evaluate
    from fhir_pain.gather import gather as gather_prefetch
    data, _ = gather(SearchingServer(requests, PAIN), "p1", NOW, 50, batch=True)
    polled = evaluate(data, "patient-view")
    non_response = [f for f in polled if f.rule == "fhir-pain/analgesic-non-response"]
    if linked:
        [f] = non_response
        assert {"MedicationRequest/a1", "MedicationRequest/a2"} <= set(f.evidence) and di.is_actionable(f)
        assert f.medication.ref == "MedicationRequest/a2"
    else:                 # the renewed request is not in the data: the start of the trial is unknown, no guess
        assert non_response == []
    # the services' prefetch of the same data: activeMedications + medicationHistory
    history = [r for r in requests if r["status"] != "active"]
    request = SimpleNamespace(context={"patientId": "p1"}, patient_id="p1", missing=(), prefetch={
        "patient": {"resourceType": "Patient", "id": "p1"}, "painAssessments": _bundle(PAIN),
        "activeMedications": _bundle([RENEWAL]), "medicationHistory": _bundle(history)})
    served = evaluate(gather_prefetch(request, now=NOW), "patient-view")
    assert [(f.rule, f.summary, f.evidence) for f in polled] == [(f.rule, f.summary, f.evidence) for f in served]


def test_a_feed_added_by_an_upgrade_starts_where_the_stored_cursor_stands_not_at_the_beginning():
    """Regression: Procedure and Patient joined the feeds; a cursor stored before that must not re-read them all."""
    stored = orjson.dumps({"MedicationRequest": {"ts": "2026-11-21T10:00:02Z", "taken": {}},
                           "Observation": {"ts": "2026-11-20T08:00:00Z", "taken": {}},
                           "Condition": {"ts": "2026-11-21T11:00:00Z", "taken": {}}}).decode()
    cursor = load_cursor(stored)
    assert cursor["Procedure"] == TypeCursor("2026-11-20T08:00:00Z", floor="2026-11-20T08:00:00Z")
    assert cursor["Patient"] == TypeCursor("2026-11-20T08:00:00Z", floor="2026-11-20T08:00:00Z")
    assert cursor["Observation"].ts == "2026-11-20T08:00:00Z" and cursor["Observation"].floor is None
    # a feed that has simply seen nothing yet stays at the beginning after a round trip
    cursor["Condition"] = cursor["Procedure"] = TypeCursor()
    assert load_cursor(dump_cursor(cursor))["Condition"] == TypeCursor()
    assert load_cursor(dump_cursor(cursor))["Procedure"] == TypeCursor()


def test_a_procedure_or_a_patient_change_names_its_patient():
    assert patient_of({"resourceType": "Procedure", "subject": {"reference": "Patient/p9"}}) == "p9"
    assert patient_of({"resourceType": "Patient", "id": "p9"}) == "p9"
    assert patient_of({"resourceType": "Patient"}) is None
