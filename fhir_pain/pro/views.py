"""The /pro blueprint: the Questionnaires, ``$extract``, and a server-rendered page to fill an instrument.

JSON routes answer errors as FHIR OperationOutcomes through the app's one error handler (cds_hooks.endpoints);
the fill page answers them as HTML pages of its own. With AUTH=required, ``$extract`` needs the same CDS Client
JWT as the services, and the fill page is closed (401): in production a questionnaire is filled in the dashboard's
SMART session (fhir_pain.dashboard, /dashboard/record/<instrument>), which reuses this page's template and pieces
(answers_of, questionnaire_response, scored). With AUTH=off (local development, the demo) both are open. The
Questionnaires themselves are public.

The fill page's form carries a CSRF token (double-submit: a random value in an HttpOnly, SameSite=Strict cookie
and in the form, compared in constant time) and a POST from another origin is refused.
"""
from __future__ import annotations

import hmac
import re
import secrets
from datetime import datetime, timezone
from typing import Any, Mapping

import orjson
from flask import Blueprint, Flask, Response, current_app, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from cds_hooks.errors import CDSError, NotFound
from fhir_pain.pro import write as writer
from fhir_pain.pro.extract import InvalidResponse, extract, response_of
from fhir_pain.pro.forms import Form, forms

CSRF_COOKIE = "pro_csrf"
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'",
    "Cache-Control": "no-store",            # the result page shows a patient's answers
    "Referrer-Policy": "same-origin",       # not no-referrer: with it Chromium sends "Origin: null" on the POST
    "X-Content-Type-Options": "nosniff",
}


class PageError(Exception):
    """An error the fill page shows as a page: status, a title and what to do."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def register(app: Flask) -> None:
    """Add /pro to an app built by create_app (checks PRO_FHIR_SERVER against the allowlist: ValueError)."""
    writer.check_config(app.config)
    forms()   # load and check every Questionnaire now, not on the first call
    app.register_blueprint(_blueprint())


def _blueprint() -> Blueprint:
    bp = Blueprint("pro", __name__, url_prefix="/pro", template_folder="templates")
    bp.add_url_rule("/Questionnaire", "questionnaires", questionnaires, methods=["GET"])
    bp.add_url_rule("/Questionnaire/<qid>", "questionnaire", questionnaire, methods=["GET"])
    bp.add_url_rule("/QuestionnaireResponse/$extract", "extract", extract_operation, methods=["POST"])
    bp.add_url_rule("/fill/<key>", "fill", fill, methods=["GET", "POST"])
    bp.after_request(_security_headers)
    return bp


def _hooks():
    return current_app.extensions["cds_hooks"]


def _security_headers(response: Response) -> Response:
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    return response


def _fhir(body: dict, status: int = 200) -> Response:
    return current_app.response_class(orjson.dumps(body), status=status, mimetype="application/fhir+json")


# -- JSON: the Questionnaires and $extract -----------------------------------------------------------------------
def questionnaires() -> Response:
    entries = [{"fullUrl": f.url, "resource": f.questionnaire} for f in forms().values()]
    return _fhir({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})


def questionnaire(qid: str) -> Response:
    form = forms().get(qid)
    if form is None:
        raise NotFound(f"no Questionnaire {qid[:64]!r}; known: {', '.join(forms())}")
    return _fhir(form.questionnaire)


def extract_operation() -> Response:
    """SDC $extract: the transaction Bundle of scored Observations; with ``?write=true`` that Bundle written to
    PRO_FHIR_SERVER, answered with the server's transaction-response."""
    hooks = _hooks()
    hooks._authenticate()
    bundle = extract(response_of(hooks._json_body()))
    if request.args.get("write", "").lower() not in ("1", "true", "yes"):
        return _fhir(bundle)
    written = writer.write(bundle, current_app.config)
    return _fhir({"resourceType": "Bundle", "type": "transaction-response",
                  "entry": [{"response": {"status": "201 Created" if ref in written.created else "200 OK",
                                          "location": ref}} for ref in (*written.created, *written.existing)]})


# -- the fill page ---------------------------------------------------------------------------------------------------
def fill(key: str) -> Response:
    try:
        if _hooks().verifier is not None:
            raise PageError(401, "Unauthorized", "Unauthorized")
        form = forms().get(key)
        if form is None or not form.item_text:
            offered = ", ".join(f.key for f in forms().values() if f.item_text)
            raise PageError(404, "No such questionnaire",
                            f"This service offers these questionnaires to fill: {offered}. "
                            "Licensed instruments (PCS, DN4) are scored from responses given on a site's own copy.")
        patient = request.values.get("patient", "")
        if not _FHIR_ID.fullmatch(patient):
            raise PageError(400, "Which patient?", "The address must name the patient: ?patient=<FHIR id>.")
        if request.method == "GET":
            return _form_page(form, patient, {}, [], 200)
        _check_csrf()
        answers = answers_of(form, request.form)
        try:
            bundle = extract(questionnaire_response(form, patient, answers, authored_now()))
        except InvalidResponse as exc:
            return _form_page(form, patient, answers, [m for m, _ in exc.problems], 422)
        written = None
        if writer.check_config(current_app.config):
            try:
                written = writer.write(bundle, current_app.config)
            except CDSError as exc:
                raise PageError(exc.status, "Not saved", f"The answers were scored but not saved: {exc.message}. "
                                "Please try again later.") from None
        return _page("result.html", 200, **scored(form, patient, bundle), written=written)
    except PageError as exc:
        return _page("error.html", exc.status, title=exc.title, message=exc.message)
    except HTTPException as exc:   # e.g. 413 for a form too large: still a page, not JSON
        return _page("error.html", exc.code or 400, title=exc.name, message=exc.description or exc.name)


def _page(template: str, status: int, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def _form_page(form: Form, patient: str, answers: dict[str, str], errors: list[str], status: int) -> Response:
    token = secrets.token_urlsafe(32)
    response = _page("fill.html", status, form=form, answers=answers, errors=errors,
                     action=url_for("pro.fill", key=form.key), hidden={"patient": patient, "csrf": token})
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure,
                        path="/pro/fill")
    return response


def scored(form: Form, patient: str, bundle: dict) -> dict[str, Any]:
    """What result.html shows of an extracted Bundle: the Observations (the total first), the score and its band."""
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    total = form.total["code"][0]["code"] if form.total else None
    observations.sort(key=lambda o: o["code"]["coding"][0]["code"] != total)   # the total first, then the items
    head = observations[0]
    score = head.get("valueInteger", head.get("valueQuantity", {}).get("value"))
    band = form.instrument.band(score) if isinstance(score, (int, float)) else None
    return {"form": form, "patient": patient, "observations": observations, "total": total, "score": score,
            "band": band}


def answers_of(form: Form, values: Mapping[str, str]) -> dict[str, str]:
    """The form's fields as sent (an unanswered item is "")."""
    return {q.link_id: values.get(q.link_id, "") for q in form.questions}


def _check_csrf() -> None:
    origin = request.headers.get("Origin")
    if origin and origin != request.host_url.rstrip("/"):
        raise PageError(403, "Refused", "This form can only be sent from its own page.")
    sent, kept = request.form.get("csrf", ""), request.cookies.get(CSRF_COOKIE, "")
    if not sent or not kept or not hmac.compare_digest(sent.encode(), kept.encode()):
        raise PageError(403, "The form has expired", "The form was not sent from its page, or has expired. "
                        "Please open it again and re-enter the answers.")


def questionnaire_response(form: Form, patient: str, answers: dict[str, str], authored: str) -> dict:
    """The QuestionnaireResponse the form's fields make (unanswered items left out: extract names them)."""
    items = []
    for q in form.questions:
        raw = answers.get(q.link_id, "")
        if not raw:
            continue
        if q.type == "choice":
            coding = next((c for (_, code), (_, c) in q.options.items() if code == raw), None)
            answer = {"valueCoding": dict(coding)} if coding else {"valueString": raw[:40]}
        elif q.type == "integer":
            answer = {"valueInteger": int(raw)} if re.fullmatch(r"-?\d{1,3}", raw) else {"valueString": raw[:40]}
        else:
            answer = {"valueBoolean": raw == "yes"} if raw in ("yes", "no") else {"valueString": raw[:40]}
        items.append({"linkId": q.link_id, "text": q.text, "answer": [answer]})
    return {"resourceType": "QuestionnaireResponse", "questionnaire": f"{form.url}|{form.version}",
            "status": "completed", "subject": {"reference": f"Patient/{patient}"}, "authored": authored, "item": items}


def authored_now() -> str:
    """Now (the configured NOW in tests), as a FHIR dateTime in UTC to the second."""
    fixed = current_app.config.get("NOW")
    when = datetime.fromisoformat(str(fixed).replace("Z", "+00:00")) if fixed else datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
