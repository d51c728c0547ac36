"""The pain and PGx dashboard: a SMART on FHIR app inside the service (``/dashboard/...``).

  GET  /dashboard/launch?iss=..&launch=..   EHR launch (standalone: iss only) -> the EHR's authorize endpoint
  GET  /dashboard/callback?code=..&state=.. the token, kept server side; the browser gets an opaque session id
  GET  /dashboard/                          the launched patient's page
  GET  /dashboard/record/<instrument>       a questionnaire for the session's patient (fhir_pain.pro's form)
  POST /dashboard/record/<instrument>       scored, written to the session's FHIR server with its token, -> 303 /
  POST /dashboard/logout                    ends the session (CSRF token; only a local ``next``)
  GET  /dashboard/demo/[<patient id>]       the demo patients, no launch: only with DASHBOARD_DEMO, AUTH off and
                                            a loopback client (``make run``)

Data come through the hook path (dashboard.data), pages are rendered server side with SVG charts
(dashboard.charts) and a table beside every chart. Errors are pages saying what happened, never a trace.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from cds_hooks.fhir_client import FHIRError, FHIRNotFound, FHIRUnauthorized, URLNotAllowed
from fhir_pain.dashboard import charts, data, smart, view
from fhir_pain.dashboard.sessions import SessionStore
from fhir_pain.pro import views as pro_views
from fhir_pain.pro import write as pro_write
from fhir_pain.pro.extract import InvalidResponse, extract
from fhir_pain.pro.forms import forms

log = logging.getLogger("fhir_pain.dashboard")

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates",
               static_folder="static", static_url_path="/static")
SID = "sid"
PRO_FILL = "/pro/fill/{instrument}?patient={patient}"   # the demo's questionnaire pages (fhir_pain.pro)


def register(app: Flask, cfg: dict[str, Any]) -> None:
    secret = cfg.get("DASHBOARD_SECRET_KEY")
    if not secret:
        secret = secrets.token_urlsafe(32)
        if cfg.get("SMART_CLIENT_ID"):
            log.warning("DASHBOARD_SECRET_KEY is unset: a random one is used, so dashboard sessions do not survive "
                        "a restart and are not shared by several workers or instances")
    app.secret_key = secret
    app.config.update(SESSION_COOKIE_NAME="fhir_pain_dashboard", SESSION_COOKIE_SECURE=True,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE=cfg["DASHBOARD_COOKIE_SAMESITE"],
                      SESSION_COOKIE_PATH="/dashboard")
    app.extensions["fhir_pain.dashboard"] = SessionStore(app.extensions["fhir_pain.store"], secret,
                                                         ttl_s=cfg["DASHBOARD_SESSION_TTL_S"])
    app.register_blueprint(bp)


def _sessions() -> SessionStore:
    return current_app.extensions["fhir_pain.dashboard"]


class Problem(Exception):
    def __init__(self, title: str, message: str, status: int):
        super().__init__(message)
        self.title, self.message, self.status = title, message, status


def _page(title: str, message: str, status: int, *, relaunch: bool = False):
    return render_template("dashboard/error.html", title=title, message=message, relaunch=relaunch), status


@bp.errorhandler(smart.LaunchError)
@bp.errorhandler(Problem)
def _known(exc):
    return _page(exc.title, exc.message, exc.status, relaunch=getattr(exc, "status", 0) == 401)


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException):
    return _page(exc.name, exc.description or exc.name, exc.code or 500)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.error("dashboard: unexpected %s", type(exc).__name__)   # the type only: a message may hold data
    return _page("Something went wrong", "The dashboard could not show this page. The error has been logged.", 500)


@bp.after_request
def _headers(resp):
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self' "
        + " ".join(current_app.config["FHIR_SERVER_ALLOWLIST"]) + "; frame-ancestors "
        + (current_app.config["DASHBOARD_FRAME_ANCESTORS"] or "'self'") + "; base-uri 'none'")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers.setdefault("Referrer-Policy", "no-referrer")   # the callback URL holds the code
    resp.headers["Cache-Control"] = "no-store"
    return resp


# ---- SMART launch -----------------------------------------------------------------------------------------

def _redirect_uri() -> str:
    base = current_app.config["PUBLIC_BASE_URL"]
    if base:
        return base.rstrip("/") + url_for("dashboard.callback")
    if not _loopback(urlsplit(request.host_url).hostname):
        raise Problem("Not configured", "PUBLIC_BASE_URL is not set: until it is, the dashboard answers launches on "
                      "loopback only (a Host header must not choose the redirect URI).", 400)
    return request.host_url.rstrip("/") + url_for("dashboard.callback")


def _client_id() -> str:
    client_id = current_app.config["SMART_CLIENT_ID"]
    if not client_id:
        raise Problem("SMART launch not configured", "SMART_CLIENT_ID is not set: the dashboard is not registered "
                      "with an EHR. See the README, 'The dashboard'.", 404)
    return client_id


@bp.get("/launch")
def launch():
    client_id = _client_id()
    allowlist = current_app.config["FHIR_SERVER_ALLOWLIST"]
    iss = request.args.get("iss") or (allowlist[0] if len(allowlist) == 1 and "launch" not in request.args else None)
    iss = smart.allowed_iss(iss, allowlist)
    launch_id = request.args.get("launch") or None
    endpoints = smart.discover(iss)
    oauth = smart.client(client_id, current_app.config["SMART_CLIENT_SECRET"], _redirect_uri(),
                         smart.scopes(endpoints.v2, ehr_launch=launch_id is not None))
    url, state, verifier = smart.authorization_url(oauth, endpoints, iss, launch_id)
    _sessions().delete(session.get(SID))
    session.clear()
    session[SID] = _sessions().create({"stage": "launch", "iss": iss, "state": state, "verifier": verifier,
                                       "token_endpoint": endpoints.token, "scope": oauth.scope})
    log.info("dashboard: launch (%s) redirected to the authorization endpoint", "ehr" if launch_id else "standalone")
    return redirect(url, 302)


@bp.get("/callback")
def callback():
    pending = _sessions().get(session.get(SID))
    if pending is None or pending.get("stage") != "launch":
        raise Problem("Launch not found", "This sign-in was not started here, or it took too long. Open the "
                      "dashboard again from the EHR.", 400)
    state = request.args.get("state", "")
    if not hmac.compare_digest(state.encode(), pending["state"].encode()):
        raise Problem("Sign-in could not be verified", "The answer from the EHR does not belong to this sign-in "
                      "(state mismatch). Open the dashboard again from the EHR.", 400)
    _sessions().delete(session.pop(SID, None))   # a launch state is used once
    if request.args.get("error"):
        denied = request.args["error"] == "access_denied"
        raise Problem("Access not granted" if denied else "Sign-in failed",
                      "You did not allow the dashboard to read this patient's record." if denied
                      else "The EHR did not grant access.", 403 if denied else 400)
    code = request.args.get("code")
    if not code:
        raise Problem("Sign-in failed", "The EHR sent no authorization code.", 400)
    oauth = smart.client(_client_id(), current_app.config["SMART_CLIENT_SECRET"], _redirect_uri())
    token = smart.exchange(oauth, pending["token_endpoint"], code, pending["verifier"])
    expires_in = token.get("expires_in")
    expires_at = time.time() + float(expires_in) if isinstance(expires_in, (int, float)) else None
    granted = token.get("scope") if isinstance(token.get("scope"), str) else pending["scope"]  # none: as asked
    session[SID] = _sessions().create({"stage": "ready", "iss": pending["iss"], "access_token": token["access_token"],
                                       "patient": token["patient"], "expires_at": expires_at,
                                       "csrf": secrets.token_urlsafe(24), "scope": granted or ""})
    log.info("dashboard: launch completed")
    return redirect(url_for("dashboard.home"), 303)


def _ready() -> dict:
    state = _sessions().get(session.get(SID))
    if state is None or state.get("stage") != "ready":
        raise Problem("Not signed in", "Open the dashboard from the patient's chart in the EHR.", 401)
    if state.get("expires_at") is not None and state["expires_at"] < time.time():
        raise Problem("Session expired", "Your access to this record has expired. Open the dashboard again from "
                      "the EHR.", 401)
    return state


@bp.get("/")
def home():
    state = _ready()
    try:
        patient_data = data.from_fhir_server(current_app, state["iss"], state["access_token"], state["patient"],
                                             _now())
    except FHIRUnauthorized:
        raise Problem("Session expired", "The FHIR server no longer accepts this session's access. Open the "
                      "dashboard again from the EHR.", 401) from None
    except FHIRNotFound:
        raise Problem("Patient not found", "The FHIR server has no record of the patient in context.", 404) from None
    except URLNotAllowed:
        raise Problem("FHIR server not allowed", "This FHIR server is no longer configured for the dashboard.",
                      403) from None
    except FHIRError:
        raise Problem("FHIR server unavailable", "The FHIR server could not be reached or did not answer in time. "
                      "Try again in a moment.", 502) from None
    return _render(patient_data, csrf=state["csrf"])


def _check_csrf(state: dict) -> None:
    sent = request.form.get("csrf", "")
    if not state.get("csrf") or not hmac.compare_digest(sent.encode(), state["csrf"].encode()):
        raise Problem("Request refused", "This form was not sent from the dashboard page (CSRF check).", 400)


@bp.post("/logout")
def logout():
    state = _sessions().get(session.get(SID)) or {}
    _check_csrf(state)
    _sessions().delete(session.pop(SID, None))
    session.clear()
    target = request.form.get("next", "")
    return redirect(target if _local_path(target) else url_for("dashboard.signed_out"), 303)


@bp.get("/signed-out")
def signed_out():
    return _page("Signed out", "You have left the dashboard. Open it again from the EHR.", 200)


def _local_path(target: str) -> bool:
    """Only a path of this dashboard: never another host (open redirect), a scheme-relative or backslash URL."""
    if not target.startswith("/dashboard/") or target.startswith("//") or "\\" in target:
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


# ---- questionnaires for the session's patient -------------------------------------------------------------

@bp.route("/record/<key>", methods=["GET", "POST"])
def record(key: str):
    """fhir_pain.pro's form for the session's patient (never one named by the request). The POST is scored by
    fhir_pain.pro.extract and written to the session's FHIR server with the session's token, as one transaction of
    conditional creates; ``authored`` is the signed time the form was served, so the same POST sent again (a
    reload, a double click) is the same response and writes nothing new."""
    state = _ready()
    form = forms().get(key)
    if form is None or not form.item_text:
        offered = ", ".join(f.key for f in forms().values() if f.item_text)
        raise Problem("No such questionnaire", f"The dashboard offers these questionnaires: {offered}.", 404)
    may_save = all(smart.can_write(state.get("scope", ""), r) for r in smart.WRITES)
    if request.method == "GET":
        return _fill_page(form, state, pro_views.authored_now(), {}, [], 200, may_save)
    _same_origin()
    _check_csrf(state)
    authored = request.form.get("authored", "")
    if not hmac.compare_digest(request.form.get("sig", "").encode(), _sign(state, key, authored).encode()):
        raise Problem("Request refused", "This form was not served by the dashboard for this session.", 400)
    answers = pro_views.answers_of(form, request.form)
    try:
        bundle = extract(pro_views.questionnaire_response(form, state["patient"], answers, authored))
    except InvalidResponse as exc:
        return _fill_page(form, state, authored, answers, [m for m, _ in exc.problems], 422, may_save)
    if not may_save:
        return _result(form, state, bundle, 403, "the EHR did not grant this app permission to write to the "
                       "patient's record (Observation and QuestionnaireResponse create scopes). The answers above "
                       "were scored; note them in the chart, or ask for the app to be registered with write access.")
    try:
        written = pro_write.write_to(bundle, state["iss"], state["access_token"], current_app.config)
    except pro_write.WriteFailed as exc:
        if exc.upstream_status in (401, 403):
            return _result(form, state, bundle, 403, "the FHIR server refused this session's access for writing. "
                           "The answers above were scored; open the dashboard again from the EHR to save them.")
        return _result(form, state, bundle, exc.status, f"{exc.message}. The answers above were scored; "
                       "try again in a moment (sending the same form again does not save them twice).")
    log.info("dashboard: questionnaire written (%d new, %d already there)", len(written.created),
             len(written.existing))
    return redirect(url_for("dashboard.home"), 303)


def _sign(state: dict, key: str, authored: str) -> str:
    """Binds the form's ``authored`` time to this session and instrument (the session's CSRF secret as key)."""
    return hmac.new(state["csrf"].encode(), f"{key}|{authored}".encode(), hashlib.sha256).hexdigest()


def _same_origin() -> None:
    """A POST from a page of another origin is refused (a browser sends ``Origin`` on every POST; none: the
    CSRF token alone decides)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    own = urlsplit(current_app.config["PUBLIC_BASE_URL"] or request.host_url)
    if origin != f"{own.scheme}://{own.netloc}":
        raise Problem("Request refused", "This form can only be sent from the dashboard's own page.", 403)


def _fill_page(form, state: dict, authored: str, answers: dict, errors: list, status: int, may_save: bool):
    notice = None if may_save else ("The EHR did not grant this app permission to write to the record: the "
                                    "answers will be scored and shown, not saved.")
    resp = current_app.make_response((render_template(
        "fill.html", form=form, answers=answers, errors=errors, notice=notice, back=url_for("dashboard.home"),
        action=url_for("dashboard.record", key=form.key),
        hidden={"csrf": state["csrf"], "authored": authored, "sig": _sign(state, form.key, authored)}), status))
    resp.headers["Referrer-Policy"] = "same-origin"   # no-referrer would make Chromium send "Origin: null"
    return resp


def _result(form, state: dict, bundle: dict, status: int, not_saved: str):
    return render_template("result.html", **pro_views.scored(form, state["patient"], bundle), written=None,
                           not_saved=not_saved, back=url_for("dashboard.home")), status


# ---- demo (make run) --------------------------------------------------------------------------------------

def _loopback(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _demo_allowed() -> None:
    cfg = current_app.config
    if not (cfg["DASHBOARD_DEMO"] and cfg["AUTH"] == "off" and _loopback(request.remote_addr)
            and _loopback(urlsplit(request.host_url).hostname)):
        abort(404)


@bp.get("/demo/")
def demo_index():
    _demo_allowed()
    from fhir_pain.demo import catalog
    return render_template("dashboard/demo_index.html", patients=[(p.id, p.name(), p.about) for p in catalog.patients()])


@bp.get("/demo/<patient_id>")
def demo_patient(patient_id: str):
    _demo_allowed()
    try:
        patient_data = data.from_demo(current_app, patient_id)
    except KeyError:
        abort(404, "No demo patient with this id.")
    return _render(patient_data, demo=True)


# ---- the page ---------------------------------------------------------------------------------------------

def _now():
    from fhir_pain.services import clock_from
    return clock_from(current_app.config)()


def _render(patient_data, *, csrf: str | None = None, demo: bool = False):
    v = view.build(patient_data)
    patient = quote(v.patient_id, safe="")
    # in a session the dashboard's own pages (written to the session's FHIR server); in the demo /pro's (scored,
    # not saved)
    questionnaires = [(f.key, f.title, PRO_FILL.format(instrument=f.key, patient=patient) if demo
                       else url_for("dashboard.record", key=f.key)) for f in forms().values() if f.item_text]
    return render_template(
        "dashboard/patient.html", v=v, demo=demo, csrf=csrf,
        pain_svg=charts.pain_chart(v), psych_svg=charts.psych_chart(v), mme_svg=charts.mme_chart(v),
        questionnaires=questionnaires,
        mme_points=[d for d in v.mme if d.known or d.total is None])
