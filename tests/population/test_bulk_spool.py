"""The spool on both store backends (SQLite and a real PostgreSQL): patients in keyset chunks, each with its
resources and the Medications its orders reference, done marks that a resumed or concurrent sweep can repeat,
and the sweep states that make a crash resumable."""
from __future__ import annotations

from datetime import timedelta

import pytest

from fhir_pain.population import spool
from fhir_pain.store import Store


@pytest.fixture
def store(store_url):
    s = Store(store_url)
    yield s
    s.dispose()


def patient(pid):
    return {"resourceType": "Patient", "id": pid}


def order(pid, n, med=None):
    r = {"resourceType": "MedicationRequest", "id": f"{pid}-{n}", "status": "active", "intent": "order",
         "subject": {"reference": f"Patient/{pid}"}}
    if med:
        r["medicationReference"] = {"reference": f"Medication/{med}"}
    else:
        r["medicationCodeableConcept"] = {"text": "codeine"}
    return r


def issue(pid):
    return {"resourceType": "DetectedIssue", "id": f"di-{pid}", "status": "final",
            "patient": {"reference": f"Patient/{pid}"}}


def test_patients_come_in_chunks_with_their_resources_and_medications(store):
    sweep = spool.new_sweep(store, "https://fhir.example.org", "full", "k1")
    writer = spool.Writer(store, sweep, batch=7)
    for i in range(23):
        pid = f"p{i:02d}"
        writer.add(order(pid, 1, med="m1" if i % 2 else None))   # before its Patient: files come in any order
        writer.add(patient(pid))
    writer.add(issue("p03"))
    writer.add(issue("outside-the-group"))                       # a system-level export names others too
    writer.add({"resourceType": "Observation", "id": "lost", "subject": {"reference": "Patient/no-such"}})
    writer.add({"resourceType": "Observation", "id": "nobody"})
    writer.close()
    assert writer.orphans == 1 and spool.unrooted(store, sweep) == 1
    assert spool.missing_medications(store, sweep) == ["m1"]
    spool.put_medications(store, sweep, [{"resourceType": "Medication", "id": "m1", "code": {"text": "x"}}])
    assert spool.missing_medications(store, sweep) == []

    chunks = list(spool.patients(store, sweep, chunk=10))
    assert [len(c) for c in chunks] == [10, 10, 3]
    assert [p for c in chunks for p in c] == [f"p{i:02d}" for i in range(23)]
    assert spool.count_patients(store, sweep) == 23

    loaded = spool.load_many(store, sweep, ["p01", "p02", "p03"])
    assert [r["resourceType"] for r in loaded["p01"]] == ["MedicationRequest", "Patient", "Medication"]
    assert [r["resourceType"] for r in loaded["p02"]] == ["MedicationRequest", "Patient"]
    assert [r["resourceType"] for r in loaded["p03"]] == ["MedicationRequest", "Patient", "DetectedIssue",
                                                          "Medication"]
    assert spool.load(store, sweep, "p01") == loaded["p01"]


def test_done_marks_are_idempotent_and_skip_finished_patients(store):
    sweep = spool.new_sweep(store, "https://fhir.example.org", "full", "k1")
    writer = spool.Writer(store, sweep)
    for i in range(5):
        writer.add(patient(f"p{i}"))
    writer.close()
    spool.mark_done(store, sweep, {"p0": "evaluated", "p3": "error"})
    spool.mark_done(store, sweep, {"p0": "evaluated"})       # a second sweep resuming the same one
    assert [p for c in spool.patients(store, sweep) for p in c] == ["p1", "p2", "p4"]
    assert spool.count_patients(store, sweep) == 3
    assert spool.count_patients(store, sweep, pending_only=False) == 5


def test_incremental_rows_name_patients_to_read_whole(store):
    sweep = spool.new_sweep(store, "https://fhir.example.org", "incremental", "k1")
    writer = spool.Writer(store, sweep)
    for pid in ("b", "a", "b"):                                 # a patient changed twice is evaluated once
        writer.add_patient(pid)
    writer.close()
    assert list(spool.patients(store, sweep)) == [["a", "b"]]
    assert spool.load_many(store, sweep, ["a"]) == {"a": None}


def test_a_crash_while_evaluating_is_resumed_one_while_exporting_is_dropped(store):
    server = "https://fhir.example.org"
    evaluating = spool.new_sweep(store, server, "full", "k1")
    spool.set_state(store, evaluating, "evaluating", transaction_time="2026-11-20T08:00:00Z")
    exporting = spool.new_sweep(store, server, "full", "k1")
    spool.new_sweep(store, "https://other.example.org", "full", "k1")
    found = spool.unfinished(store, server)
    assert found["sweep"] == evaluating and found["transaction_time"] == "2026-11-20T08:00:00Z"
    assert spool.abandoned(store, server) == []            # may be exporting right now in another process
    assert spool.abandoned(store, server, quiet_for=timedelta(0)) == [exporting]
    writer = spool.Writer(store, exporting)
    writer.add(patient("y"))
    writer.close()                                          # spooling touches it
    assert spool.abandoned(store, server, quiet_for=timedelta(seconds=30)) == []
    writer = spool.Writer(store, evaluating)
    writer.add(patient("p"))
    writer.close()
    spool.drop(store, evaluating)
    assert spool.count_patients(store, evaluating) == 0


def test_a_workers_first_jobs_defining_the_tables_together_all_get_them(tmp_path, monkeypatch):
    # the queue runs a worker's jobs in threads: the first ones reach spool.tables() on a fresh Store at once
    import threading
    import time

    import sqlalchemy as sa

    from fhir_pain.population import spool as spool_mod
    from fhir_pain.store import Store as StoreCls

    real_table = sa.Table

    def slow_table(*args, **kwargs):     # widens the window between the first table and the last
        time.sleep(0.02)
        return real_table(*args, **kwargs)

    monkeypatch.setattr(spool_mod.sa, "Table", slow_table)
    store = StoreCls(f"sqlite:///{tmp_path / 'race.sqlite3'}")
    barrier, errors = threading.Barrier(4), []

    def first_job():
        barrier.wait()
        try:
            assert set(spool_mod.tables(store)) == {"bulk_sweeps", "bulk_spool", "bulk_medications", "bulk_done"}
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=first_job) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.dispose()
    assert errors == []
