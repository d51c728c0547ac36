"""fhir_pain.store: feedback persistence (nothing lost under concurrency), cursors, the shared JWT replay cache.

Every test that takes ``store_url`` runs twice: on SQLite and on a real PostgreSQL server (tests/conftest.py)."""
from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from datetime import timezone

import pytest
import sqlalchemy as sa

from fhir_pain.store import Store


def entry(card: str, i: int = 0) -> dict:
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": f"s-{i}"}],
            "outcomeTimestamp": "2026-11-21T09:27:42.654+02:00"}


def test_feedback_round_trip(store_url, fixture_json):
    store = Store(store_url)
    overridden = fixture_json("cds-hooks/spec201-L0926-example-overridden-guidance-with-overridereason.json")
    assert store.save_feedback("svc", overridden["feedback"], "https://ehr.example.org", "tenant-1") == 1
    assert store.save_feedback("svc", [entry("card-2")], None, None) == 1
    first, second = store.list_feedback()
    assert first["card_uuid"] == "9368d37b-283f-44a0-93ea-547cebab93ed" and first["outcome"] == "overridden"
    assert (first["override_reason_code"], first["override_reason_system"]) == (
        "d7ecf885", "https://example.com/cds-hooks/override-reason-system")
    assert first["override_comment"] == "A comment entered by the clinician."
    assert (first["issuer"], first["tenant"]) == ("https://ehr.example.org", "tenant-1")
    assert first["accepted_suggestions"] == []
    assert second["accepted_suggestions"] == ["s-0"]
    # stored in UTC whatever the offset sent; returned timezone-aware
    assert second["outcome_timestamp"].tzinfo is not None
    assert second["outcome_timestamp"].astimezone(timezone.utc).hour == 7
    assert second["outcome_timestamp_raw"] == "2026-11-21T09:27:42.654+02:00"
    assert [r["card_uuid"] for r in store.list_feedback(card_uuid="card-2")] == ["card-2"]
    assert store.list_feedback(service_id="other") == []
    store.dispose()


def test_concurrent_feedback_from_threads_loses_nothing(store_url):
    store = Store(store_url)
    threads, per_thread, errors = 16, 25, []

    def post(t: int) -> None:
        try:
            for i in range(per_thread):
                store.save_feedback("svc", [entry(f"card-{t}-{i}", i)], "iss", None)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=post, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    stored = Counter(r["card_uuid"] for r in store.list_feedback(limit=None))
    assert len(stored) == threads * per_thread and set(stored.values()) == {1}   # each exactly once
    store.dispose()


def _process_writer(url: str, n: int, tag: str) -> None:
    store = Store(url)
    for i in range(n):
        store.save_feedback("svc", [entry(f"{tag}-{i}")], None, None)
    store.dispose()


def test_concurrent_feedback_from_processes_loses_nothing(store_url):
    # gunicorn runs several worker processes on the same SQLite file
    Store(store_url).dispose()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(store_url, 40, f"p{p}")) for p in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(store_url)
    stored = Counter(r["card_uuid"] for r in store.list_feedback(limit=None))
    assert len(stored) == 120 and set(stored.values()) == {1}
    store.dispose()


def test_sqlite_runs_in_wal_mode(db_url):
    store = Store(db_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.dispose()


def test_cursors(store_url):
    store = Store(store_url)
    assert store.get_cursor("poller") is None
    store.set_cursor("poller", "2026-11-21T09:00:00Z")
    store.set_cursor("poller", "2026-11-21T10:00:00Z")
    store.set_cursor("other", "x")
    assert store.get_cursor("poller") == "2026-11-21T10:00:00Z" and store.get_cursor("other") == "x"
    # the cursor survives a restart (it lives in the file)
    store.dispose()
    assert Store(store_url).get_cursor("poller") == "2026-11-21T10:00:00Z"


def test_jwt_replay_cache_is_shared_and_forgets_expired(store_url):
    a, b = Store(store_url), Store(store_url)  # two workers on one database
    assert a.claim("iss", "jti-1", time.time() + 300)
    assert not b.claim("iss", "jti-1", time.time() + 300)
    assert b.claim("other-iss", "jti-1", time.time() + 300)
    assert a.claim("iss", "jti-old", time.time() - 1)
    assert b.claim("iss", "jti-new", time.time() + 300)  # purges expired rows on the way
    with a.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(a.jwt_ids)).scalar() == 3
    a.dispose()
    b.dispose()


def test_other_parts_can_add_tables(store_url):
    store = Store(store_url, create=False)
    extra = sa.Table("poller_seen", store.metadata, sa.Column("id", sa.String(64), primary_key=True))
    store.create_all()
    with store.engine.begin() as conn:
        conn.execute(extra.insert().values(id="x"))
    assert store.ping()
    store.dispose()


def test_any_sqlalchemy_url_in_memory():
    store = Store("sqlite://")
    assert store.save_feedback("svc", [entry("c")], None, None) == 1
    assert len(store.list_feedback()) == 1


def _together(n: int, work) -> tuple[list, list]:
    """Run ``work()`` in ``n`` threads released at the same instant; (results, exceptions)."""
    barrier, results, errors = threading.Barrier(n), [], []

    def run() -> None:
        barrier.wait()
        try:
            results.append(work())
        except Exception as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_workers_booting_together_on_an_empty_database_create_the_schema_once(store_url):
    # gunicorn starts its workers at once; each builds the app and so the store's tables
    stores, errors = _together(8, lambda: Store(store_url))
    assert errors == []
    assert stores[0].save_feedback("svc", [entry("c")], None, None) == 1
    for store in stores:
        store.dispose()


def test_one_of_concurrent_claims_of_a_jti_wins(store_url):
    store = Store(store_url)
    expires = time.time() + 300
    results, errors = _together(12, lambda: store.claim("iss", "raced", expires))
    assert errors == [] and sorted(results) == [False] * 11 + [True]
    store.dispose()


def test_a_cursor_named_after_a_long_server_url(store_url):
    store = Store(store_url)
    name = "poller:https://fhir.example.org/" + "tenant/" * 60 + "R4"
    store.set_cursor(name, "2026-11-21T09:00:00Z")
    assert store.get_cursor(name) == "2026-11-21T09:00:00Z"
    store.dispose()


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_an_outcome_time_outside_the_utc_calendar_is_kept_raw(store_url, timestamp):
    # valid RFC 3339, but one hour past datetime's range once in UTC
    store = Store(store_url)
    assert store.save_feedback("svc", [{**entry("c"), "outcomeTimestamp": timestamp}], None, None) == 1
    [row] = store.list_feedback()
    assert (row["outcome_timestamp"], row["outcome_timestamp_raw"]) == (None, timestamp)
    store.dispose()


def test_feedback_through_the_service_on_each_backend(app_factory, store_url, fixture_json):
    from cds_hooks import Service
    app = app_factory(DATABASE_URL=store_url)
    app.extensions["cds_hooks"].registry.register(Service(id="pv", hook="patient-view", title="t", description="d",
                                                          handler=lambda r: []))
    client = app.test_client()
    body = fixture_json("cds-hooks/spec201-L0926-example-overridden-guidance-with-overridereason.json")
    assert client.post("/cds-services/pv/feedback", json=body).get_json() == {"stored": 1}
    # JSON may carry U+0000; PostgreSQL text cannot: refused at the edge on every backend, nothing stored
    body["feedback"][0]["overrideReason"]["userComment"] = "dose \u0000 too high"
    response = client.post("/cds-services/pv/feedback", json=body)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["feedback.0.overrideReason.userComment"]
    [row] = app.extensions["fhir_pain.store"].list_feedback()
    assert row["override_comment"] == "A comment entered by the clinician."


def test_the_store_survives_a_postgresql_restart(postgres):
    url = postgres.create_database()
    store = Store(url)
    assert store.save_feedback("svc", [entry("before")], None, None) == 1
    postgres.restart()   # every pooled connection is now dead
    assert store.ping()
    assert store.save_feedback("svc", [entry("after")], None, None) == 1
    assert store.claim("iss", "jti-after-restart", time.time() + 300)
    assert [r["card_uuid"] for r in store.list_feedback()] == ["before", "after"]
    store.dispose()
    postgres.drop_database(url)


def test_feedback_with_a_timestamp_before_year_1_in_utc_is_stored_with_its_raw_text(db_url):
    # was OverflowError in _parse_instant ("0001-01-01T00:00:00+14:00" is in year 0 in UTC): a 500
    store = Store(db_url)
    late = {**entry("card-x"), "outcomeTimestamp": "0001-01-01T00:00:00+14:00"}
    assert store.save_feedback("svc", [late], None, None) == 1
    [row] = store.list_feedback()
    assert row["outcome_timestamp"] is None and row["outcome_timestamp_raw"] == "0001-01-01T00:00:00+14:00"
    store.dispose()
