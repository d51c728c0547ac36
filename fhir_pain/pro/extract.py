"""QuestionnaireResponse -> a transaction Bundle of scored Observations (SDC observation-based extraction).

The Observations are in the shapes fhir_pain.pain.scoring reads: one Observation per answered item marked for
extraction (the item's code, its answer as a LOINC answer code, an integer or a boolean) and one for the total score (the instrument's
total code, ``hasMember`` its items), all with the response's subject and ``authored`` time, category ``survey``
and ``derivedFrom`` the response. A single-question instrument (NRS) is one Observation, its own total.

Idempotent by construction: every entry carries an identifier derived from the response's content
(questionnaire, patient, time, answers) and is a conditional create on it, so the same response written twice
creates nothing new. The condition is ``_tag`` (the same value in ``meta.tag``), not ``identifier``: every server
indexes ``_tag`` for every type, not all index QuestionnaireResponse's identifier (sekmet does not). A response
without an ``id`` travels in the Bundle too (its own identifier kept, ours added when it has none); one with an
``id`` is referenced as ``QuestionnaireResponse/<id>``.

A response that cannot be scored raises :class:`InvalidResponse` naming every problem (missing items, answers not
in the form, a sent total that disagrees) as one OperationOutcome issue each.
"""
from __future__ import annotations

import copy
import hashlib
import re
import uuid
from typing import Any

import orjson

from cds_hooks.errors import CDSError
from fhir_pain.pain.knowledge import UCUM
from fhir_pain.pro.forms import Form, Question, form_for, forms, names_of

SID_RESPONSE = "https://fhir-pain.io/fhir/sid/questionnaire-response"
SID_OBSERVATION = "https://fhir-pain.io/fhir/sid/pro-observation"
SURVEY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey",
                      "display": "Survey"}]}
SCORABLE_STATUS = ("completed", "amended")
MAX_ITEM_DEPTH = 8
_PATIENT = re.compile(r"^Patient/[A-Za-z0-9\-.]{1,64}$")
# FHIR dateTime: a year, a date, or a date-time with seconds and a zone
_DATETIME = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
                       r"(\.\d{1,9})?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?$")


class InvalidResponse(CDSError):
    """The response cannot be scored: ``problems`` is a list of (message, FHIRPath expression or None)."""

    status, code = 422, "invalid"

    def __init__(self, problems: list[tuple[str, str | None]], *, status: int = 422):
        super().__init__("; ".join(m for m, _ in problems))
        self.problems = problems
        self.status = status

    def outcome(self) -> dict[str, Any]:
        issues = []
        for message, expression in self.problems:
            issue: dict[str, Any] = {"severity": "error", "code": "required" if "missing" in message else "invalid",
                                     "diagnostics": message}
            if expression:
                issue["expression"] = [expression]
            issues.append(issue)
        return {"resourceType": "OperationOutcome", "issue": issues}


def response_of(body: object) -> dict:
    """The QuestionnaireResponse of a $extract body: the resource itself, or SDC's Parameters with a
    ``questionnaire-response`` parameter."""
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for p in body.get("parameter") or ():
            if isinstance(p, dict) and p.get("name") == "questionnaire-response":
                body = p.get("resource")
                break
        else:
            raise InvalidResponse([("Parameters has no 'questionnaire-response' parameter", "Parameters.parameter")],
                                  status=400)
    if not isinstance(body, dict) or body.get("resourceType") != "QuestionnaireResponse":
        raise InvalidResponse([("the body must be a QuestionnaireResponse (or Parameters holding one)",
                                "resourceType")], status=400)
    return body


def extract(qr: dict) -> dict:
    """The transaction Bundle of scored Observations for one QuestionnaireResponse, or InvalidResponse."""
    form = form_for(qr.get("questionnaire"))
    if form is None:
        known = ", ".join(f.url for f in forms().values())
        raise InvalidResponse([(f"questionnaire {str(qr.get('questionnaire'))[:200]!r} is not one this service "
                                f"scores (known: {known})", "QuestionnaireResponse.questionnaire")])
    problems: list[tuple[str, str | None]] = []
    if not isinstance(qr.get("status"), str) or qr["status"] not in SCORABLE_STATUS:
        problems.append((f"status must be completed or amended to be scored, not {str(qr.get('status'))[:40]!r}",
                         "QuestionnaireResponse.status"))
    subject = (qr.get("subject") or {}).get("reference") if isinstance(qr.get("subject"), dict) else None
    if not isinstance(subject, str) or not _PATIENT.fullmatch(subject):
        problems.append(("subject must reference the patient as 'Patient/<id>'", "QuestionnaireResponse.subject"))
    authored = qr.get("authored")
    if not isinstance(authored, str) or not _DATETIME.fullmatch(authored):
        problems.append(("authored must be a FHIR dateTime: it is when the answers were given",
                         "QuestionnaireResponse.authored"))
    answers: dict[str, object] = {}
    _collect(qr.get("item"), answers, problems, 0)
    scored = _score_items(form, answers, problems)
    total = _total(form, scored, answers, problems)
    if problems:
        raise InvalidResponse(problems)
    return _bundle(form, qr, subject, authored, scored, total)


def _collect(items: object, out: dict[str, object], problems: list, depth: int) -> None:
    """Every item's answers by linkId, groups flattened."""
    if items is None:
        return
    if not isinstance(items, list) or depth > MAX_ITEM_DEPTH:
        problems.append(("item must be a list of items (at most 8 levels of groups)", "QuestionnaireResponse.item"))
        return
    for item in items:
        link = item.get("linkId") if isinstance(item, dict) else None
        if not isinstance(link, str) or not link:
            problems.append(("every item needs a linkId", "QuestionnaireResponse.item"))
            continue
        if "answer" in item or "item" not in item:       # a group carries items, not answers
            if link in out:
                problems.append((f"item {link[:64]!r} appears twice", _where(link)))
                continue
            out[link] = item.get("answer")
        _collect(item.get("item"), out, problems, depth + 1)


def _where(link: str) -> str:
    return f"QuestionnaireResponse.item.where(linkId='{link[:64]}')"


def _score_items(form: Form, answers: dict[str, object], problems: list) -> list[tuple[Question, float, dict]]:
    scored, missing = [], []
    for q in form.questions:
        given = next((answers.pop(n) for n in q.names if n in answers), None)
        if not given:
            missing.append(q)
            continue
        if not isinstance(given, list) or len(given) != 1 or not isinstance(given[0], dict):
            problems.append((f"item {q.link_id} must have exactly one answer", _where(q.link_id)))
            continue
        value, why = _value(q, given[0])
        if why:
            problems.append((f"item {q.link_id}: {why}", _where(q.link_id)))
        else:
            scored.append((q, *value))
    if missing:
        names = ", ".join(q.link_id + (f" ({_short(q.text)})" if q.text else "") for q in missing)
        problems.append((f"{len(missing)} of {len(form.questions)} {form.title} items missing: {names}",
                         "QuestionnaireResponse.item"))
    for link in answers:
        if link not in form.displays and link not in _total_names(form):
            problems.append((f"item {link[:64]!r} is not an item of {form.title}", _where(link)))
    return scored


def _value(q: Question, answer: dict) -> tuple[tuple[float, dict] | None, str | None]:
    """(score, the Observation's value[x]) or a reason."""
    if q.type == "choice":
        coding = answer.get("valueCoding")
        key = (coding.get("system"), coding.get("code")) if isinstance(coding, dict) else None
        option = q.options.get(key) if key and all(isinstance(k, str) for k in key) else None
        if option is None:
            return None, "the answer must be a valueCoding of the item's answer options"
        score, coding = option
        return (score, {"valueCodeableConcept": {"coding": [dict(coding)], "text": coding.get("display")}}), None
    if q.type == "integer":
        v = answer.get("valueInteger")
        if not isinstance(v, int) or isinstance(v, bool):
            return None, "the answer must be a valueInteger"
        if (q.lo is not None and v < q.lo) or (q.hi is not None and v > q.hi):
            return None, f"{v} is outside {q.lo}-{q.hi}"
        return (float(v), {"valueInteger": v}), None
    if q.type == "boolean":
        v = answer.get("valueBoolean")
        if not isinstance(v, bool):
            return None, "the answer must be a valueBoolean"
        return (1.0 if v else 0.0, {"valueBoolean": v}), None
    return None, f"unsupported item type {q.type}"


def _total(form: Form, scored: list, answers: dict[str, object], problems: list) -> float | None:
    """The instrument's score, as the engine computes it from the items (fhir_pain.pain.scoring); a total the
    response carries must agree."""
    if len(scored) != len(form.questions):
        return None
    items = form.instrument.items
    values = [s for _, s, _ in scored]
    if items is None:                     # one question, which is the score (NRS)
        total = values[0]
    else:
        total = sum(values) if items.method == "sum" else round(sum(values) / len(values), 2)
    sent = next((answers[n] for n in _total_names(form) if n in answers), None)
    if sent:
        v = sent[0].get("valueInteger", sent[0].get("valueDecimal")) if isinstance(sent, list) and \
            isinstance(sent[0], dict) else None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or abs(v - total) > 1e-6:
            problems.append((f"the total sent ({str(v)[:20]}) is not the items' score ({total:g})",
                             _where(form.total["linkId"])))
    return total


def _total_names(form: Form) -> tuple[str, ...]:
    return names_of(form.total) if form.total else ()


def _bundle(form: Form, qr: dict, subject: str, authored: str, scored: list, total: float) -> dict:
    digest = hashlib.sha256(orjson.dumps({
        "questionnaire": f"{form.url}|{form.version}", "subject": subject, "authored": authored,
        "answers": {q.link_id: value for q, _, value in scored}}, option=orjson.OPT_SORT_KEYS)).hexdigest()
    entries: list[dict] = []
    qid = qr.get("id")
    if isinstance(qid, str) and qid:
        response_ref = f"QuestionnaireResponse/{qid}"
    else:
        resource = copy.deepcopy(qr)
        resource.pop("meta", None)
        if not isinstance(resource.get("identifier"), dict):
            resource["identifier"] = {"system": SID_RESPONSE, "value": digest}
        response_ref = _urn(SID_RESPONSE, digest)
        entries.append(_entry(response_ref, resource, SID_RESPONSE, digest))
    base = {"status": "final", "category": [SURVEY], "subject": {"reference": subject},
            "effectiveDateTime": authored, "derivedFrom": [{"reference": response_ref}]}
    members = []
    for q, _, value in scored:
        if not q.extract:
            continue
        obs = _observation(digest, q.link_id, q.code, q.text, base, value)
        members.append(_urn(SID_OBSERVATION, obs["identifier"][0]["value"]))
        entries.append(_entry(members[-1], obs, SID_OBSERVATION, obs["identifier"][0]["value"]))
    if form.total is not None:
        number = int(total) if form.instrument.integer else total
        value = {"valueInteger": number} if form.instrument.integer else \
            {"valueQuantity": {"value": number, "unit": "{score}", "system": UCUM, "code": "{score}"}}
        obs = _observation(digest, form.total["linkId"], form.total["code"][0], form.total.get("text", ""), base,
                           value)
        if members:
            obs["hasMember"] = [{"reference": m} for m in members]
        ident = obs["identifier"][0]["value"]
        entries.append(_entry(_urn(SID_OBSERVATION, ident), obs, SID_OBSERVATION, ident))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _observation(digest: str, link: str, code: dict, text: str, base: dict, value: dict) -> dict:
    ident = hashlib.sha256(f"{digest}|{link}".encode()).hexdigest()
    obs = {"resourceType": "Observation", "identifier": [{"system": SID_OBSERVATION, "value": ident}]}
    obs.update(copy.deepcopy(base))
    obs["code"] = {"coding": [dict(code)], "text": code.get("display") or text or link}
    obs.update(value)
    return obs


def _urn(system: str, value: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{system}|{value}')}"


def _entry(full_url: str, resource: dict, system: str, value: str) -> dict:
    """A conditional create on the resource's derived identity, kept in meta.tag for servers to search."""
    resource["meta"] = {"tag": [{"system": system, "code": value}]}
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": f"_tag={system}|{value}"}}


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + "…"
