"""The rest-hook receiver: ``POST|PUT /subscriptions/notify/<key>[/<type>/<id>]``, in the service.

Per request: the key and its secret (``Authorization: Bearer``, constant-time; anything wrong is a bare 401),
the size (at most ``MAX_NOTIFICATION_BYTES``: 413), the body (JSON, one of the shapes in notifications.py: 400
otherwise), at most ``MAX_PATIENTS`` patients and changed resources named (413: a flood is refused, not half
taken), then the patients are queued durably (fhir_pain.population.queue, coalesced) and the answer goes back:
the evaluation happens in the workers, not in the request. Handshakes and heartbeats are answered 200.

With the SQLite store (one process, no queue) the patients are evaluated in the request, with the FHIR server's
static token from ``FHIR_PAIN_POLL_TOKEN`` (the poller's); a patient that fails is taken up by the next poll.
A notification that is lost (the service down longer than the FHIR server retries) is caught by the next
incremental poll or sweep, which reads every change since its cursor.
"""
from __future__ import annotations

import logging
import os
import threading

import orjson
from flask import Blueprint, Flask, Response, request

import sqlalchemy.exc

from cds_hooks.errors import BadRequest, CDSError, PayloadTooLarge, Unauthorized, operation_outcome
from fhir_pain.population import queue as work_queue
from fhir_pain.subscriptions import notifications
from fhir_pain.subscriptions.registry import SubscriptionRegistry

log = logging.getLogger(__name__)

NOTIFY_PATH = "/subscriptions/notify"
MAX_NOTIFICATION_BYTES = 1024 * 1024   # a full-resource notification is one resource; 1 MiB is generous
MAX_PATIENTS = 100                      # patients plus unresolved resources named by one notification
TOKEN_ENV = "FHIR_PAIN_POLL_TOKEN"


class QueueUnavailable(CDSError):
    """The store or its queue cannot be reached: the FHIR server should send the notification again."""

    status, code = 503, "transient"


def _database_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError]
    try:
        import psycopg
        from procrastinate.exceptions import ConnectorException
        errors += [psycopg.OperationalError, ConnectorException]
    except ImportError:   # SQLite only: no PostgreSQL drivers installed
        pass
    return tuple(errors)


class Receiver:
    def __init__(self, store):
        self.store = store
        self.registry = SubscriptionRegistry(store)
        self.queued_mode = work_queue.is_postgresql(store.url)
        self._queue: work_queue.WorkQueue | None = None
        self._lock = threading.Lock()

    def queue(self) -> work_queue.WorkQueue:
        """Opened on the first notification: a service that receives none never touches the queue."""
        with self._lock:
            if self._queue is None:
                self._queue = work_queue.WorkQueue(self.store.url, wait_s=5.0)
            return self._queue

    def close(self) -> None:
        with self._lock:
            if self._queue is not None:
                self._queue.close()
                self._queue = None

    def notify(self, key: str, rtype: str | None = None, rid: str | None = None) -> Response:
        try:
            return self._notify(key, rtype, rid)
        except _database_errors() as exc:
            log.warning("notification not taken: the database is unavailable (%s)", type(exc).__name__)
            raise QueueUnavailable("the work queue is unavailable; send the notification again") from None

    def _notify(self, key: str, rtype: str | None, rid: str | None) -> Response:
        registration = self.registry.verify(key, request.headers.get("Authorization"))
        if registration is None:
            raise Unauthorized("subscription key or secret not accepted")
        if request.content_length is not None and request.content_length > MAX_NOTIFICATION_BYTES:
            raise PayloadTooLarge(f"a notification may have at most {MAX_NOTIFICATION_BYTES} bytes")
        raw = request.stream.read(MAX_NOTIFICATION_BYTES + 1)
        if len(raw) > MAX_NOTIFICATION_BYTES:
            raise PayloadTooLarge(f"a notification may have at most {MAX_NOTIFICATION_BYTES} bytes")
        path_ref = None
        if rtype is not None:
            path_ref = notifications.reference(f"{rtype}/{rid}")
            if path_ref is None:
                raise BadRequest("the URL does not name a FHIR resource (<type>/<id>)")
        try:
            body = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            raise BadRequest("the body is not JSON") from None
        try:
            note = notifications.read(body, path_ref)
        except notifications.NotANotification as exc:
            raise BadRequest(str(exc)) from None
        if len(note.patients) + len(note.focus) > MAX_PATIENTS:
            raise PayloadTooLarge(f"a notification may name at most {MAX_PATIENTS} patients")
        queued = self._dispatch(registration.server, note)
        outcome = operation_outcome("informational", f"{note.kind}: {queued} queued", severity="information")
        return Response(orjson.dumps(outcome), 200, mimetype="application/fhir+json")

    def _dispatch(self, server: str, note: notifications.Notification) -> int:
        items = [(server, pid, None) for pid in sorted(note.patients)]
        if self.queued_mode:
            queue = self.queue()
            return queue.enqueue(items) + sum(queue.enqueue_focus(server, ref) for ref in sorted(note.focus))
        from cds_hooks.fhir_client import FHIRClient

        with FHIRClient(server, auth=os.environ.get(TOKEN_ENV) or None, timeout=(3.05, 10.0)) as client:
            for ref in sorted(note.focus):   # inline: find the resource's patient now
                try:
                    if pid := notifications._patient_of(client.read(ref)):
                        items.append((server, pid, None))
                except Exception as exc:  # noqa: BLE001 - gone or unreadable: the next poll sees the change
                    log.warning("notification: changed resource unreadable (%s)", type(exc).__name__)
            return work_queue.enqueue_patients(items, store=self.store, client=client)


def init_app(app: Flask, store) -> Receiver:
    receiver = Receiver(store)
    bp = Blueprint("fhir_pain_subscriptions", __name__)
    for rule in (f"{NOTIFY_PATH}/<key>", f"{NOTIFY_PATH}/<key>/<rtype>/<rid>"):
        bp.add_url_rule(rule, view_func=receiver.notify, methods=["POST", "PUT"],
                        endpoint="notify" if rule.endswith("<key>") else "notify_resource")
    app.register_blueprint(bp)
    app.extensions["fhir_pain.subscriptions"] = receiver
    return receiver
