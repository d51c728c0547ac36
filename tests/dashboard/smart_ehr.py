"""A test EHR for the SMART launch: an OAuth 2 authorization server built with Authlib's server components, and
a FHIR gateway in front of a real FHIR server (sekmet). Run as its own HTTP process by ``SmartEHR``:

  GET  /fhir/.well-known/smart-configuration   SMART discovery (v2 and v1 scopes, or v1 only: --v1-only)
  GET  /ehr/launch?patient=ID                  the EHR opening an app: a launch id bound to the patient
  GET  /auth/authorize                         checks the request (client, redirect URI, PKCE S256 required,
                                               aud = this FHIR base), then a consent page: Allow / Deny
  POST /auth/authorize                         the user's answer: code (or access_denied) to the redirect URI
  POST /auth/token                             authorization code + PKCE verifier -> access token + patient
  GET  /fhir/...                               a valid, unexpired token of this server -> forwarded to sekmet
                                               with sekmet's own token; otherwise 401
  POST /fhir                                   a transaction, forwarded likewise when the token was granted
                                               Observation and QuestionnaireResponse create (else 403) and
                                               every resource is about the token's patient (else 403)

The consent page has "Allow", "Allow read only" (the write scopes asked are not granted) and "Deny".

``GET /ehr/requests`` lists the authorization requests seen (scope, code_challenge_method), for assertions;
``POST /ehr/expire`` expires every token issued so far.
"""
from __future__ import annotations

import argparse
import html
import secrets
import time

import requests
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, jsonify, request

V2_SCOPES = "launch launch/patient " + " ".join(
    f"patient/{r}.{p}" for r in ("Patient", "Observation", "Condition", "MedicationRequest", "Medication",
                                 "Procedure") for p in ("rs", "read")) + " " + " ".join(
    f"patient/{r}.{p}" for r in ("Observation", "QuestionnaireResponse") for p in ("c", "write"))
WRITE_PERMS = (".c", ".write")


class Client(ClientMixin):
    def __init__(self, client_id: str, redirect_uri: str):
        self.client_id, self.redirect_uri = client_id, redirect_uri

    def get_client_id(self): return self.client_id
    def get_default_redirect_uri(self): return self.redirect_uri
    def get_allowed_scope(self, scope): return " ".join(s for s in (scope or "").split() if s in V2_SCOPES.split())
    def check_redirect_uri(self, redirect_uri): return redirect_uri == self.redirect_uri
    def check_client_secret(self, client_secret): return False
    def check_endpoint_auth_method(self, method, endpoint): return method == "none"   # a public client: PKCE
    def check_response_type(self, response_type): return response_type == "code"
    def check_grant_type(self, grant_type): return grant_type == "authorization_code"


class Code:
    def __init__(self, code, client_id, redirect_uri, scope, challenge, method, patient):
        self.code, self.client_id, self.redirect_uri, self.scope = code, client_id, redirect_uri, scope
        self.code_challenge, self.code_challenge_method, self.patient = challenge, method, patient
        self.expires_at = time.time() + 300

    def get_redirect_uri(self): return self.redirect_uri
    def get_scope(self): return self.scope
    def is_expired(self): return time.time() > self.expires_at


def make_app(*, fhir_upstream: str, upstream_token: str, client_id: str, redirect_uri: str, token_lifetime: int,
             v1_only: bool) -> Flask:
    app = Flask("smart_ehr")
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"authorization_code": token_lifetime}
    clients = {client_id: Client(client_id, redirect_uri)}
    launches: dict[str, str] = {}       # launch id -> patient id
    codes: dict[str, Code] = {}
    tokens: dict[str, tuple[float, str, str]] = {}   # access token -> (expires at, patient, granted scope)
    seen: list[dict] = []

    class AuthorizationCode(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

        def save_authorization_code(self, code, req):
            payload = req.payload
            scope = payload.scope
            if req.user.get("read_only"):      # the user allowed reading only: the write scopes are not granted
                scope = " ".join(s for s in scope.split() if not s.endswith(WRITE_PERMS))
            codes[code] = Code(code, req.client.get_client_id(), payload.redirect_uri, scope,
                               payload.data.get("code_challenge"), payload.data.get("code_challenge_method"),
                               req.user["patient"])

        def query_authorization_code(self, code, client):
            found = codes.get(code)
            return found if found and found.client_id == client.get_client_id() and not found.is_expired() else None

        def delete_authorization_code(self, authorization_code):
            codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code):
            return {"patient": authorization_code.patient}

    def save_token(token, req):
        patient = req.authorization_code.patient
        tokens[token["access_token"]] = (time.time() + token_lifetime, patient, token.get("scope", ""))
        token["patient"] = patient     # SMART launch context in the token response

    server = AuthorizationServer(app, query_client=clients.get, save_token=save_token)
    server.register_grant(AuthorizationCode, [CodeChallenge(required=True)])
    base = {}

    @app.before_request
    def _base():
        base["url"] = request.host_url.rstrip("/")

    @app.get("/fhir/.well-known/smart-configuration")
    def smart_configuration():
        return jsonify({
            "authorization_endpoint": f"{base['url']}/auth/authorize",
            "token_endpoint": f"{base['url']}/auth/token",
            "token_endpoint_auth_methods_supported": ["none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": V2_SCOPES.split(),
            "capabilities": ["launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
                             "context-standalone-patient", "permission-v1"] + ([] if v1_only else ["permission-v2"]),
        })

    @app.get("/ehr/launch")
    def ehr_launch():
        launch = secrets.token_urlsafe(16)
        launches[launch] = request.args["patient"]
        return jsonify({"launch": launch, "iss": f"{base['url']}/fhir"})

    @app.get("/ehr/requests")
    def ehr_requests():
        return jsonify(seen)

    @app.post("/ehr/expire")
    def ehr_expire():   # every token issued so far expires now (the FHIR server's clock has passed them)
        for key, (_, patient, scope) in list(tokens.items()):
            tokens[key] = (0.0, patient, scope)
        return jsonify({"expired": len(tokens)})

    def _launch_patient() -> str | None:
        launch = request.values.get("launch")
        if launch:
            return launches.get(launch)
        return request.values.get("standalone_patient")   # standalone: the user picks the patient on the form

    @app.route("/auth/authorize", methods=["GET", "POST"])
    def authorize():
        try:
            server.get_consent_grant(end_user=None)
        except OAuth2Error as error:
            return Response(f"<h1>Bad authorization request</h1><p>{html.escape(error.error)}</p>", 400)
        if request.values.get("aud") != f"{base['url']}/fhir":
            return Response("<h1>Bad authorization request</h1><p>aud is not this FHIR server</p>", 400)
        patient = _launch_patient()
        if request.method == "GET":
            seen.append({k: request.args.get(k) for k in ("scope", "code_challenge_method", "launch", "aud")})
            hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                             for k, v in request.args.items())
            pick = "" if request.args.get("launch") else '<input name="standalone_patient" id="patient-id">'
            return Response(f"<!doctype html><title>Consent</title><h1>Allow the dashboard to read this patient's "
                            f"record?</h1><form method=post action=/auth/authorize>{hidden}{pick}<button name=consent value=allow id=allow>"
                            f"Allow</button><button name=consent value=read id=allow-read>Allow read only</button>"
                            f"<button name=consent value=deny id=deny>Deny</button></form>")
        consent = request.form.get("consent")
        granted = consent in ("allow", "read") and patient is not None
        return server.create_authorization_response(
            grant_user={"patient": patient, "read_only": consent == "read"} if granted else None)

    @app.post("/auth/token")
    def token():
        return server.create_token_response()

    def _held():
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        held = tokens.get(value) if scheme.lower() == "bearer" else None
        return held if held is not None and held[0] >= time.time() else None

    def _outcome(status: int, code: str, why: str):
        return jsonify({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": code, "diagnostics": why}]}), status

    @app.route("/fhir/<path:path>", methods=["GET"])
    def fhir(path):
        if _held() is None:
            return _outcome(401, "login", "invalid or expired token")
        upstream = requests.get(f"{fhir_upstream}/{path}", params=request.args, timeout=(5, 60),
                                headers={"Authorization": f"Bearer {upstream_token}",
                                         "Accept": "application/fhir+json"})
        body = upstream.content.replace(fhir_upstream.encode(), f"{base['url']}/fhir".encode())  # next links
        return Response(body, upstream.status_code, content_type="application/fhir+json")

    @app.post("/fhir")
    def fhir_transaction():
        held = _held()
        if held is None:
            return _outcome(401, "login", "invalid or expired token")
        _, patient, scope = held
        granted = scope.split()
        bundle = request.get_json(force=True, silent=True) or {}
        resources = [e.get("resource") or {} for e in bundle.get("entry") or []]
        for r in resources:
            if not any(f"patient/{r.get('resourceType')}{p}" in granted for p in WRITE_PERMS):
                return _outcome(403, "forbidden", f"this token may not create {r.get('resourceType')}")
            if (r.get("subject") or {}).get("reference") != f"Patient/{patient}":
                return _outcome(403, "forbidden", "a resource is not about the patient in context")
        upstream = requests.post(fhir_upstream, data=request.get_data(), timeout=(5, 60),
                                 headers={"Authorization": f"Bearer {upstream_token}",
                                          "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
        body = upstream.content.replace(fhir_upstream.encode(), f"{base['url']}/fhir".encode())
        return Response(body, upstream.status_code, content_type="application/fhir+json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fhir-upstream", required=True)
    parser.add_argument("--upstream-token", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--token-lifetime", type=int, default=3600)
    parser.add_argument("--v1-only", action="store_true")
    args = parser.parse_args()
    app = make_app(fhir_upstream=args.fhir_upstream, upstream_token=args.upstream_token, client_id=args.client_id,
                   redirect_uri=args.redirect_uri, token_lifetime=args.token_lifetime, v1_only=args.v1_only)
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
