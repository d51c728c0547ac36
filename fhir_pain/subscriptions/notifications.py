"""What a notification says: which patients changed (and changed resources whose patient it does not name).

Accepted shapes:
- R4 rest-hook with a payload: the changed resource itself, POSTed to the endpoint or PUT to
  ``<endpoint>/<type>/<id>``; a Bundle of resources;
- R4 rest-hook without a payload: an empty body (a ping). Put to ``<endpoint>/<type>/<id>`` it names the resource;
  at the bare endpoint it names nothing (the next incremental poll or sweep finds the change);
- the R4 Subscriptions Backport (topic-based): a ``history`` Bundle whose first entry is a ``Parameters``
  (R4) or ``SubscriptionStatus`` (R4B) status, of type ``handshake``, ``heartbeat``, ``query-status`` (nothing to
  do) or ``event-notification`` with events (``focus``, ``additional-context``) and, with ``full-resource``
  content, the resources.

Only patient ids are taken from a notification, never data: each patient is read afresh from the FHIR server when
evaluated, so duplicate, late or out-of-order notifications are harmless (the evaluation sees the current state).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from fhir_pain.poller.cycle import patient_of

ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
STATUS_TYPES = ("Parameters", "SubscriptionStatus")


class NotANotification(ValueError):
    """The body is not one of the accepted shapes (the message says why; it names no data)."""


@dataclass
class Notification:
    kind: str = "event-notification"   # or handshake / heartbeat / query-status / ping
    patients: set[str] = field(default_factory=set)
    focus: set[str] = field(default_factory=set)   # "Type/id" of changed resources whose patient is not named


def reference(value) -> tuple[str, str] | None:
    """(type, id) of a relative or absolute literal reference, ``_history`` dropped; None if it is not one."""
    if not isinstance(value, str):
        return None
    parts = value.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) < 2 or not TYPE.match(parts[-2]) or not ID.match(parts[-1]):
        return None
    return parts[-2], parts[-1]


def _patient_of(resource: dict) -> str | None:
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
    else:
        rid = patient_of(resource)
    return rid if isinstance(rid, str) and ID.match(rid) else None


def read(body, path_ref: tuple[str, str] | None = None) -> Notification:
    """The notification in ``body`` (parsed JSON, or None for an empty body) sent to a URL that may name the
    resource (``path_ref``)."""
    note = Notification()
    if body is None:
        note.kind = "ping"
        if path_ref is not None:
            _add_focus(note, *path_ref)
        return note
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise NotANotification("the body is not a FHIR resource")
    if body["resourceType"] == "Bundle":
        entries = [e.get("resource") for e in body.get("entry") if isinstance(e, dict)] if isinstance(body.get("entry"), list) else []
        first = entries[0] if entries and isinstance(entries[0], dict) else {}
        if isinstance(first.get("resourceType"), str) and first["resourceType"] in STATUS_TYPES:
            _read_backport(note, first, [e for e in entries[1:] if isinstance(e, dict)])
            return note
        for resource in entries:
            if isinstance(resource, dict) and (pid := _patient_of(resource)):
                note.patients.add(pid)
        return note
    if pid := _patient_of(body):
        note.patients.add(pid)
    elif path_ref is not None and not body.get("resourceType") == path_ref[0]:
        raise NotANotification("the resource is not of the type its URL names")
    return note


def _add_focus(note: Notification, rtype: str, rid: str) -> None:
    if rtype == "Patient":
        note.patients.add(rid)
    else:
        note.focus.add(f"{rtype}/{rid}")


def _read_backport(note: Notification, status: dict, resources: list[dict]) -> None:
    """A topic-based notification: its type and events (R4 Parameters, kebab or camel case; or R4B)."""
    events: list[tuple[str | None, list[str]]] = []   # (focus reference, additional-context references)
    if status["resourceType"] == "Parameters":
        for p in status.get("parameter") or ():
            if not isinstance(p, dict):
                continue
            if p.get("name") == "type":
                note.kind = str(p.get("valueCode"))
            elif p.get("name") in ("notification-event", "notificationEvent"):
                focus, context = None, []
                for part in p.get("part") or ():
                    ref = (part.get("valueReference") or {}).get("reference") if isinstance(part, dict) else None
                    if part.get("name") == "focus":
                        focus = ref
                    elif part.get("name") in ("additional-context", "additionalContext") and ref:
                        context.append(ref)
                events.append((focus, context))
    else:
        note.kind = str(status.get("type"))
        for e in status.get("notificationEvent") or ():
            if isinstance(e, dict):
                events.append(((e.get("focus") or {}).get("reference"),
                               [c.get("reference") for c in e.get("additionalContext") or ()
                                if isinstance(c, dict)]))
    if note.kind != "event-notification":
        return
    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources}
    for resource in resources:
        if pid := _patient_of(resource):
            note.patients.add(pid)
    for focus, context in events:
        named = [ref for ref in map(reference, context) if ref and ref[0] == "Patient"]
        for _, pid in named:
            note.patients.add(pid)
        ref = reference(focus)
        if ref is None or named:
            continue
        full = by_ref.get(f"{ref[0]}/{ref[1]}")
        if full is not None and _patient_of(full):
            continue   # its patient was taken from the resource above
        _add_focus(note, *ref)
