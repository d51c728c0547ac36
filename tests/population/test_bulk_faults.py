"""Bulk sweeps against a misbehaving export server (pytest-httpserver): malformed lines, files off the allowed
origins, failed and never-ending exports, oversized files, interruption. Each ends with a clear error in the
summary, a bounded wait, the job DELETEd, nothing evaluated from incomplete data and the cursor held."""
from __future__ import annotations

import gzip
import re
import threading
import time
from datetime import datetime, timezone

import orjson
import pytest
import requests
from werkzeug.wrappers import Response

from cds_hooks.fhir_client import FHIRClient
from fhir_pain.facts import Drug, Finding
from fhir_pain.population import ndjson as ndjson_mod
from fhir_pain.population.bulk import BulkClient, ExportTimeout
from fhir_pain.population.sweep import Sweep, cursor_name
from fhir_pain.store import Store

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
STATUS = "/fhir/bulk-status/job-1"
ISSUES_STATUS = "/fhir/bulk-status/job-issues"


def patient(pid: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "birthDate": "1970-01-01", "gender": "female"}


def ndjson(*resources: dict) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'faults.sqlite3'}")
    yield s
    s.dispose()


@pytest.fixture
def any_store(store_url):
    """The store on SQLite and on a real PostgreSQL."""
    s = Store(store_url)
    yield s
    s.dispose()


class Export:
    """The export server's script: kick-off -> status (``polls`` answers of 202, then the manifest). The
    system-level export of DetectedIssues finishes at once, empty."""

    def __init__(self, httpserver, *, files: dict[str, bytes] | None = None, polls: int = 1,
                 manifest_urls: list[str] | None = None, status: Response | None = None, retry_after: str = "0"):
        self.server = httpserver
        self.deleted = threading.Event()
        self.kickoffs: list[dict] = []
        self.polls = polls
        self.retry_after = retry_after
        base = httpserver.url_for("/fhir")
        files = files or {}
        urls = manifest_urls or [f"{base}/files/{name}" for name in files]
        self.manifest = {"transactionTime": "2026-11-20T08:00:00Z", "request": f"{base}/Patient/$export",
                         "requiresAccessToken": True, "error": [],
                         "output": [{"type": name.split(".")[0], "url": url} for name, url in zip(files, urls)]}
        httpserver.expect_request("/fhir/Patient/$export").respond_with_handler(self._kickoff)
        httpserver.expect_request("/fhir/$export").respond_with_handler(self._kickoff_issues)
        httpserver.expect_request(ISSUES_STATUS, method="GET").respond_with_json(
            {"transactionTime": "2026-11-20T08:00:00Z", "request": "x", "output": [], "error": []})
        httpserver.expect_request(ISSUES_STATUS, method="DELETE").respond_with_data("", status=202)
        httpserver.expect_request(STATUS, method="DELETE").respond_with_handler(self._delete)
        httpserver.expect_request(STATUS, method="GET").respond_with_handler(
            (lambda _r: status) if status is not None else self._status)
        for name, body in files.items():
            httpserver.expect_request(f"/fhir/files/{name}").respond_with_data(body,
                                                                              content_type="application/fhir+ndjson")

    def _kickoff(self, request):
        self.kickoffs.append({"args": dict(request.args), "prefer": request.headers.get("Prefer"),
                              "auth": request.headers.get("Authorization")})
        return Response(status=202, headers={"Content-Location": self.server.url_for(STATUS)})

    def _kickoff_issues(self, request):
        self.kickoffs.append({"system": dict(request.args)})
        return Response(status=202, headers={"Content-Location": self.server.url_for(ISSUES_STATUS)})

    def _status(self, _request):
        if self.polls > 0:
            self.polls -= 1
            return Response(status=202, headers={"X-Progress": "collecting", "Retry-After": self.retry_after})
        return Response(orjson.dumps(self.manifest), status=200, content_type="application/json")

    def _delete(self, _request):
        self.deleted.set()
        return Response(status=202)


def sweep(httpserver, store, **kwargs) -> Sweep:
    base = httpserver.url_for("/fhir")
    client = FHIRClient(base, auth="tok", timeout=(2.0, 5.0))
    bulk = BulkClient(base, auth="tok", min_poll_s=0.01, max_poll_s=0.2, max_wait_s=kwargs.pop("max_wait_s", 10.0),
                      allowed_origins=kwargs.pop("allowed_origins", None), sleep=kwargs.pop("sleep", None))
    return Sweep(client, bulk, store, clock=lambda: NOW, **kwargs)


def test_kickoff_asks_async_for_only_what_the_rules_read_and_deletes_the_job_once_downloaded(httpserver, store):
    export = Export(httpserver, files={"Patient.ndjson": ndjson(patient("a"), patient("b"))})
    stats = sweep(httpserver, store).run()
    assert export.kickoffs == [{"args": {"_type": "Patient,Observation,Condition,Procedure,MedicationRequest"},
                                "prefer": "respond-async", "auth": "Bearer tok"},
                               {"system": {"_type": "DetectedIssue"}}]
    assert stats.evaluated == 2 and not stats.errors and stats.cursor_advanced
    assert export.deleted.is_set()
    assert store.get_cursor(cursor_name(httpserver.url_for("/fhir"))) == "2026-11-20T08:00:00Z"


def test_second_sweep_asks_since_the_first_sweeps_transaction_time(httpserver, store):
    export = Export(httpserver, files={"Patient.ndjson": ndjson(patient("a"))})
    sweep(httpserver, store).run()
    export.polls = 0
    sweep(httpserver, store).run()
    assert export.kickoffs[2]["args"] == {"_type": "Patient,Observation,Condition,Procedure,MedicationRequest",
                                          "_since": "2026-11-20T08:00:00Z"}


def test_malformed_lines_are_counted_and_the_good_ones_evaluated(httpserver, store):
    body = ndjson(patient("a")) + b"{not json\n" + b'["a list"]\n' + b"\n" + ndjson(patient("b"))
    Export(httpserver, files={"Patient.ndjson": body})
    stats = sweep(httpserver, store).run()
    assert stats.malformed_lines == 2
    assert stats.evaluated == 2
    assert "2 malformed lines" in stats.summary()


def test_manifest_url_off_the_allowed_origins_is_never_fetched(httpserver, store):
    export = Export(httpserver, files={"Patient.ndjson": ndjson(patient("a"))},
                    manifest_urls=["https://attacker.example/steal.ndjson"])
    stats = sweep(httpserver, store).run()
    assert stats.errors == {"file-off-origin": 1}
    assert stats.evaluated == 0 and not stats.cursor_advanced
    assert export.deleted.is_set()
    assert "file-off-origin 1" in stats.summary()


def test_file_on_an_allowed_other_origin_is_fetched(httpserver, store):
    export = Export(httpserver, files={"Patient.ndjson": ndjson(patient("a"))})
    # the same server under another name for its origin: allowed only by the list
    other = httpserver.url_for("/fhir/files/Patient.ndjson").replace("localhost", "127.0.0.1")
    export.manifest["output"][0]["url"] = other
    assert sweep(httpserver, store).run().errors == {"file-off-origin": 1}
    stats = sweep(httpserver, store, allowed_origins=[other.split("/fhir")[0]]).run()
    assert stats.evaluated == 1 and not stats.errors


def test_failed_export_is_a_clear_error_and_the_job_is_deleted(httpserver, store):
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "exception", "diagnostics": "disk full"}]}
    export = Export(httpserver, status=Response(orjson.dumps(outcome), status=500, content_type="application/json"))
    stats = sweep(httpserver, store).run()
    assert stats.errors == {"export-failed": 1}
    assert export.deleted.is_set() and stats.evaluated == 0 and not stats.cursor_advanced


def test_export_that_never_finishes_is_cancelled_after_the_bound(httpserver, store):
    export = Export(httpserver, polls=10 ** 9, retry_after="0")
    t0 = time.monotonic()
    stats = sweep(httpserver, store, max_wait_s=1.0).run()
    assert time.monotonic() - t0 < 10
    assert stats.errors == {"export-timeout": 1}
    assert export.deleted.is_set() and not stats.cursor_advanced


def test_retry_after_and_x_progress_are_honoured_within_bounds(httpserver):
    Export(httpserver, polls=2, retry_after="3")
    pauses: list[float] = []
    progress: list[str] = []
    bulk = BulkClient(httpserver.url_for("/fhir"), min_poll_s=0.5, max_poll_s=2.0, max_wait_s=60,
                      sleep=pauses.append, on_progress=progress.append)
    manifest = bulk.wait(bulk.kickoff(types=("Patient",)))
    assert pauses == [2.0, 2.0]          # 3 s asked, capped at max_poll_s
    assert progress == ["collecting", "collecting"]
    assert manifest.transaction_time == "2026-11-20T08:00:00Z"


def test_wait_bound_counts_the_pauses(httpserver):
    Export(httpserver, polls=10 ** 9, retry_after="5")
    bulk = BulkClient(httpserver.url_for("/fhir"), min_poll_s=0.05, max_poll_s=0.1, max_wait_s=0.3)
    with pytest.raises(ExportTimeout):
        bulk.wait(bulk.kickoff(types=("Patient",)))


def test_oversized_file_fails_the_sweep_and_nothing_is_evaluated(httpserver, store):
    Export(httpserver, files={"Patient.ndjson": ndjson(*[patient(f"p{i}") for i in range(200)])})
    stats = sweep(httpserver, store, max_file_bytes=2000).run()
    assert stats.errors == {"file-too-large": 1}
    assert stats.evaluated == 0 and not stats.cursor_advanced


def test_gzip_bomb_counts_what_it_inflates_to(httpserver, store):
    bomb = gzip.compress(ndjson(patient("a")) + b" " * 5_000_000 + b"\n")
    Export(httpserver)
    httpserver.expect_request("/fhir/files/bomb.ndjson").respond_with_response(
        Response(bomb, headers={"Content-Encoding": "gzip"}, content_type="application/fhir+ndjson"))
    export_manifest = {"url": httpserver.url_for("/fhir/files/bomb.ndjson"), "type": "Patient"}
    s = sweep(httpserver, store, max_file_bytes=1_000_000)
    s.bulk.wait = lambda url, _w=s.bulk.wait: _with_output(_w(url), export_manifest)
    assert s.run().errors == {"file-too-large": 1}


def _with_output(manifest, item):
    manifest.output = [item]
    return manifest


def test_interrupt_while_the_export_runs_deletes_the_job(httpserver, store):
    export = Export(httpserver, polls=10 ** 9, retry_after="0")
    s = sweep(httpserver, store)
    threading.Timer(0.3, s.stop.set).start()
    stats = s.run()
    assert stats.interrupted and stats.errors == {"interrupted": 1}
    assert export.deleted.is_set() and not stats.cursor_advanced


def test_interrupted_evaluation_resumes_without_redoing_finished_patients(httpserver, any_store):
    store = any_store
    Export(httpserver, files={"Patient.ndjson": ndjson(*[patient(f"p{i:02d}") for i in range(30)])})
    seen: list[str] = []
    stop = threading.Event()

    def evaluate(data, hook):
        seen.append(data.patient_id)
        if len(seen) == 12:
            stop.set()
        return []

    first = sweep(httpserver, store, evaluate=evaluate, stop=stop, chunk=5).run()
    assert first.interrupted and first.evaluated == 12 and not first.cursor_advanced
    stop.clear()
    second = sweep(httpserver, store, evaluate=evaluate, stop=stop, chunk=5).run()
    assert second.resumed and second.evaluated == 18 and second.cursor_advanced
    assert sorted(seen) == [f"p{i:02d}" for i in range(30)]      # each exactly once


def test_resources_of_a_patient_not_exported_are_counted_not_evaluated(httpserver, store):
    orphan_obs = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
                  "subject": {"reference": "Patient/gone"}}
    Export(httpserver, files={"Patient.ndjson": ndjson(patient("a")), "Observation.ndjson": ndjson(orphan_obs)})
    stats = sweep(httpserver, store).run()
    assert stats.evaluated == 1 and not stats.errors and stats.orphans == 1
    assert "1 without a patient" in stats.summary()


def test_file_dripped_slower_than_its_time_limit_is_given_up(httpserver, store):
    def drip():
        yield orjson.dumps(patient("a")) + b"\n"
        for _ in range(30):
            time.sleep(0.05)
            yield b" "
    httpserver.expect_request("/fhir/files/slow.ndjson").respond_with_response(
        Response(drip(), content_type="application/fhir+ndjson"))
    url = httpserver.url_for("/fhir/files/slow.ndjson")
    got = []
    t0 = time.monotonic()
    with pytest.raises(ndjson_mod.DownloadFailed, match="time limit"):
        for r in ndjson_mod.download(requests.Session(), url, ndjson_mod.Tally(), allowed=[url],
                                     max_seconds=0.4):
            got.append(r)
    assert time.monotonic() - t0 < 1.2          # the drip would take 1.5 s
    assert [r["id"] for r in got] == ["a"]


def test_slow_file_is_a_download_failure_in_the_summary(httpserver, store):
    def drip():
        yield orjson.dumps(patient("a")) + b"\n"
        time.sleep(0.5)
        yield b"\n"
    Export(httpserver)
    httpserver.expect_request("/fhir/files/slow.ndjson").respond_with_response(
        Response(drip(), content_type="application/fhir+ndjson"))
    s = sweep(httpserver, store, max_file_seconds=0.2)
    s.bulk.wait = lambda url, _w=s.bulk.wait: _with_output(
        _w(url), {"url": httpserver.url_for("/fhir/files/slow.ndjson"), "type": "Patient"})
    stats = s.run()
    assert stats.errors == {"file-download-failed": 1} and stats.evaluated == 0 and not stats.cursor_advanced


def test_failed_writes_leave_their_patients_for_the_next_run(httpserver, store):
    def evaluate(data, hook):
        return [Finding(rule="cpic/codeine/CYP2D6", kind="drug-gene", indicator="critical",
                        summary="avoid codeine", drug=Drug(rxnorm="2670", name="codeine"), action="avoid")]

    Export(httpserver, files={"Patient.ndjson": ndjson(patient("a"), patient("b"))})
    refused = orjson.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]})
    puts: list[dict] = []

    def put(request):
        puts.append(orjson.loads(request.data))
        if len(puts) == 1:       # the server is down for the first write, then back
            return Response(refused, status=503, content_type="application/fhir+json")
        return Response(request.data, status=200, content_type="application/fhir+json")

    # no transactions here: the sweep falls back to one PUT each
    httpserver.expect_request("/fhir", method="POST").respond_with_response(
        Response(refused, status=503, content_type="application/fhir+json"))
    httpserver.expect_request(re.compile(r"/fhir/DetectedIssue/.*"), method="PUT").respond_with_handler(put)
    first = sweep(httpserver, store, evaluate=evaluate).run()
    assert first.errors == {"write-failed": 2} and first.created == 0 and not first.cursor_advanced
    second = sweep(httpserver, store, evaluate=evaluate).run()
    assert second.resumed and second.evaluated == 2 and second.created == 2 and second.cursor_advanced
    assert {p["patient"]["reference"] for p in puts[1:]} == {"Patient/a", "Patient/b"}
