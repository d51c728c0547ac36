"""Bulk sweeps against a real FHIR server (sekmet-fhir) loaded with the synthetic population.

Equivalence with the poller both ways: what a bulk sweep writes, the per-patient poller finds already there
(it would create, update or close anything that differed), and a full bulk sweep over what the poller wrote
writes nothing. FHIR_PAIN_BULK_PATIENTS sets the size (a few hundred here; ``make bench-population`` runs 10,000).
"""
from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from population_helpers import NOW, fhir_client, load_population, make_sweep
from fhir_pain.knowledge_version import knowledge_version
from fhir_pain.poller import detected_issue as di
from fhir_pain.poller.cycle import Poller
from fhir_pain.store import Store
from sekmet_server import Sekmet

pytestmark = pytest.mark.integration

PATIENTS = int(os.environ.get("FHIR_PAIN_BULK_PATIENTS", "240"))


def our_issues(server) -> list[dict]:
    return [r for r in server.search("DetectedIssue?_count=500") if di.issue_key(r)]


def poll(server, store, since: datetime):
    poller = Poller(fhir_client(server), store, cursor_name="poller:test", since=since, clock=lambda: NOW,
                    workers=2, page_size=100)
    return poller.run_cycle()


@pytest.fixture(scope="module")
def population_server(tmp_path_factory):
    server = Sekmet(tmp_path_factory.mktemp("sekmet-bulk")).start()
    yield server
    server.stop()


def test_bulk_sweep_writes_exactly_what_the_per_patient_poller_writes(population_server, tmp_path):
    server = population_server
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    half = PATIENTS // 2
    first = load_population(server, half)

    # 1. bulk first: the poller then finds every issue it would write, and nothing to change
    bulk = make_sweep(server, Store(f"sqlite:///{tmp_path / 'bulk1.sqlite3'}")).run()
    assert bulk.evaluated == half and not bulk.errors and bulk.created > 0
    polled = poll(server, Store(f"sqlite:///{tmp_path / 'poll1.sqlite3'}"), since)
    assert polled.evaluated == half and polled.failed == polled.skipped == 0
    assert (polled.created, polled.updated, polled.closed) == (0, 0, 0)
    assert polled.findings == bulk.findings == polled.unchanged

    # 2. poller first on new patients: a full bulk sweep over everyone then writes nothing
    since2 = datetime.now(timezone.utc) - timedelta(seconds=1)
    second = load_population(server, PATIENTS - half, start=half)
    polled2 = poll(server, Store(f"sqlite:///{tmp_path / 'poll2.sqlite3'}"), since2)
    assert polled2.evaluated == len(second) and polled2.created > 0
    bulk2 = make_sweep(server, Store(f"sqlite:///{tmp_path / 'bulk2.sqlite3'}")).run()
    assert bulk2.evaluated == len(first) + len(second) and not bulk2.errors
    assert (bulk2.created, bulk2.updated, bulk2.closed) == (0, 0, 0)
    assert bulk2.findings == bulk.findings + polled2.findings

    issues = our_issues(server)
    assert len(issues) == bulk2.findings
    assert all(di.knowledge_of(r) == knowledge_version() for r in issues)
    # the spool is emptied once a sweep is complete
    assert make_sweep(server, Store(f"sqlite:///{tmp_path / 'bulk2.sqlite3'}")).store.engine.connect().exec_driver_sql(
        "SELECT count(*) FROM bulk_spool").scalar() == 0


@pytest.mark.slow
def test_ten_thousand_patients_bulk_sweep_writes_what_the_poller_would(tmp_path_factory, tmp_path):
    server = Sekmet(tmp_path_factory.mktemp("sekmet-10k")).start()
    try:
        since = datetime.now(timezone.utc) - timedelta(seconds=5)
        ids = load_population(server, 10_000, seed=31, per_bundle=250)
        bulk = make_sweep(server, Store(f"sqlite:///{tmp_path / 'bulk.sqlite3'}")).run()
        assert bulk.evaluated == len(ids) == 10_000 and not bulk.errors and bulk.created > 1000
        polled = poll(server, Store(f"sqlite:///{tmp_path / 'poll.sqlite3'}"), since)
        assert polled.evaluated == 10_000 and polled.failed == polled.skipped == 0
        assert (polled.created, polled.updated, polled.closed) == (0, 0, 0)
        assert polled.findings == bulk.findings == polled.unchanged == len(our_issues(server))
        print(f"\n{bulk.summary()}\n{polled.summary()}")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    server = Sekmet(tmp_path_factory.mktemp("sekmet-bulk-small")).start()
    load_population(server, 150, seed=23)
    yield server
    server.stop()


@pytest.mark.parametrize("one_store", [False, True], ids=["two-stores", "one-store"])
def test_two_sweeps_started_together_write_each_issue_once(small_server, tmp_path, one_store):
    stores = [Store(f"sqlite:///{tmp_path / f'twin{0 if one_store else i}.sqlite3'}") for i in range(2)]
    results = [None, None]
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait()
        results[i] = make_sweep(small_server, stores[i]).run()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(r is not None and r.evaluated == 150 and not r.errors for r in results)
    issues = our_issues(small_server)
    keys = Counter(di.issue_key(r) for r in issues)
    assert keys and max(keys.values()) == 1
    assert len(issues) == results[0].findings == results[1].findings


def test_incremental_sweep_evaluates_only_the_changed_patients(small_server, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'incr.sqlite3'}")
    full = make_sweep(small_server, store).run()
    assert full.mode == "full" and full.cursor_advanced
    before = {di.issue_key(r): r for r in our_issues(small_server)}

    # 100 patients get a codeine order; 25 of them have a CYP2D6 result that makes it an issue or not
    changed = [f"p23-{i:07d}" for i in range(0, 150, 3)][:50] + [f"p23-{i:07d}" for i in range(1, 150, 3)][:50]
    entries = [{"resource": {"resourceType": "MedicationRequest", "id": f"{pid}-new-codeine", "status": "active",
                             "intent": "order", "subject": {"reference": f"Patient/{pid}"},
                             "authoredOn": "2026-11-19T09:00:00Z",
                             "medicationCodeableConcept": {"coding": [{
                                 "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "2670",
                                 "display": "codeine"}], "text": "Codeine Sulfate 30 MG Oral Tablet"}},
                "request": {"method": "PUT", "url": f"MedicationRequest/{pid}-new-codeine"}} for pid in changed]
    small_server.transaction(entries)

    incremental = make_sweep(small_server, store).run()
    assert incremental.mode == "incremental" and not incremental.errors
    assert incremental.evaluated == 100
    after = {di.issue_key(r): r for r in our_issues(small_server)}
    written = {k for k, r in after.items() if k not in before or r["meta"].get("versionId")
               != before[k]["meta"].get("versionId")}
    assert written and len(written) == incremental.written
    assert {after[k]["patient"]["reference"].split("/")[1] for k in written} <= set(changed)

    # nothing changed since: nobody is evaluated
    assert make_sweep(small_server, store).run().evaluated == 0


def test_reevaluate_rechecks_only_patients_judged_by_older_knowledge(small_server, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'reeval.sqlite3'}")
    make_sweep(small_server, store).run()
    issues = our_issues(small_server)
    with_issues = sorted({r["patient"]["reference"].split("/")[1] for r in issues})
    stale = with_issues[:10]
    old = 0
    for r in issues:
        if r["patient"]["reference"].split("/")[1] in stale:
            r["meta"] = {"tag": [t if t["system"] != di.KNOWLEDGE_TAG_SYSTEM else
                                 {"system": di.KNOWLEDGE_TAG_SYSTEM, "code": "cpic-v1.29.0+p.000000000000"}
                                 for t in r["meta"]["tag"]]}
            small_server.put(r)
            old += 1

    stats = make_sweep(small_server, store, reevaluate=True).run()
    without_issues = 150 - len(with_issues)
    assert stats.mode == "reevaluate" and not stats.errors
    assert stats.evaluated == len(stale) + without_issues
    assert stats.current == len(with_issues) - len(stale)
    assert stats.updated == old and stats.created == stats.closed == 0
    assert all(di.knowledge_of(r) == knowledge_version() for r in our_issues(small_server))


def test_group_sweep_evaluates_the_groups_members_only(small_server, tmp_path):
    members = [f"p23-{i:07d}" for i in (5, 17, 42, 99, 140)]
    small_server.put({"resourceType": "Group", "id": "bulk-test-group", "type": "person", "actual": True,
                      "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in members]})
    seen: list[str] = []

    def evaluate(data, hook):
        from fhir_pain.population.patient_job import writeback_evaluate
        seen.append(data.patient_id)
        return writeback_evaluate(data, hook)

    stats = make_sweep(small_server, Store(f"sqlite:///{tmp_path / 'group.sqlite3'}"), group="bulk-test-group",
                       evaluate=evaluate).run()
    assert sorted(seen) == members
    assert stats.evaluated == 5 and not stats.errors and stats.orphans == 0
    assert stats.written == 0          # the earlier sweeps wrote their issues already
