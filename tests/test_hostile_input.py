"""Hostile input: no 5xx, and every error answer a JSON FHIR OperationOutcome.

Mutated variants of the suite's realistic requests (tests/hostile_json.py) go to the three clinical services and
the feedback endpoint: in process through the Flask test client for the bulk, and over a real socket to
``fhir-pain serve`` (gunicorn) for what the server stack refuses before Flask sees it (a very long path or
header, a doubled Content-Type, a malformed request line or chunk).

CI runs a few hundred cases (seconds); ``make fuzz`` sets FHIR_PAIN_FUZZ_CASES=50000 for a long run. A failure
names its case number: ``hostile_json.case(n)`` rebuilds it.
"""
from __future__ import annotations

import collections
import logging
import os
import re
import socket
import sys
import time
from pathlib import Path

import orjson
import pytest
import requests
from werkzeug import Response as WerkzeugResponse

sys.path.insert(0, str(Path(__file__).parent))   # hostile_json, also under pytest's importlib import mode
from hostile_json import TOKENS, case  # noqa: E402
from serve_process import ServeProcess, serve_env  # noqa: E402

CASES = int(os.environ.get("FHIR_PAIN_FUZZ_CASES", "400"))
SERVER_CASES = max(40, CASES // 50)
NOW = "2026-05-01T12:00:00Z"
SENDABLE = re.compile(r"(Bearer [\x21-\x7e]+)?")   # what may reach the EHR's FHIR server as Authorization
SECRETS = ("opaque-token", *(t for t in TOKENS if isinstance(t, str) and len(t) > 3))


def problem_with(status: int, content_type: str | None, body: bytes) -> str | None:
    """What is wrong with one answer to hostile input, or None."""
    if status >= 500:
        return f"status {status}"
    if status < 400:
        return None if status == 200 else f"status {status}"
    if not (content_type or "").startswith("application/json"):
        return f"{status} with Content-Type {content_type!r}"
    try:
        outcome = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"{status} with a body that is not JSON"
    if not (isinstance(outcome, dict) and outcome.get("resourceType") == "OperationOutcome"
            and isinstance(outcome.get("issue"), list) and outcome["issue"]
            and all(isinstance(i, dict) and i.get("severity") and i.get("code") for i in outcome["issue"])):
        return f"{status} without an OperationOutcome: {body[:200]!r}"
    return None


class LogWatch(logging.Handler):
    """Log lines that hold an access token (none may), and reader failures a caller swallowed (the pain profile
    is built under a catch-all so that its failure cannot silence the PGx advice: it must still never fail)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.leaks: list[str] = []
        self.swallowed: list[str] = []
        self.access_lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        self.access_lines += record.name == "cds_hooks.access"
        if any(s in text for s in SECRETS):
            self.leaks.append(f"{record.name}: {text[:120]}")
        if record.name == "fhir_pain.evaluate" and record.levelno >= logging.WARNING:
            self.swallowed.append(text)


def test_hostile_requests_never_get_a_5xx_and_every_error_is_an_operation_outcome(app_factory, httpserver, capsys):
    sent: list[str] = []

    def fhir_server(request) -> WerkzeugResponse:
        """The EHR's FHIR server for cases whose prefetch is left to fetch: an empty searchset, a 404 for reads."""
        sent.append(request.headers.get("Authorization", ""))
        search = "?" in request.full_path.rstrip("?") or request.path.rstrip("/").count("/") <= 2
        body = {"resourceType": "Bundle", "type": "searchset", "total": 0} if search else \
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}
        return WerkzeugResponse(orjson.dumps(body), status=200 if search else 404,
                                content_type="application/fhir+json")

    httpserver.expect_request(re.compile(".*")).respond_with_handler(fhir_server)
    fhir_base = httpserver.url_for("/fhir")
    client = app_factory(REGISTER_CLINICAL_SERVICES=True, NOW=NOW, FHIR_SERVER_ALLOWLIST=[fhir_base],
                         FHIR_DEADLINE_S=2.0).test_client()
    logs = LogWatch()
    root, level = logging.getLogger(), logging.getLogger().level
    root.addHandler(logs)
    root.setLevel(logging.INFO)   # the access and prefetch lines too
    failures: list[str] = []
    statuses: collections.Counter = collections.Counter()
    started = time.perf_counter()
    try:
        for n in range(CASES):
            c = case(n, fhir_server=fhir_base)
            response = client.post(c.path, data=c.body, headers=c.headers)
            statuses[response.status_code] += 1
            problem = problem_with(response.status_code, response.content_type, response.data)
            if logs.swallowed:
                problem, logs.swallowed = f"{problem or 'answered'}, but {logs.swallowed[0]}", []
            if problem:
                failures.append(f"{c}: {problem}")
    finally:
        root.removeHandler(logs)
        root.setLevel(level)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nhostile input in process: {CASES} cases in {elapsed:.1f} s; statuses "
              f"{dict(sorted(statuses.items()))}; 5xx: {sum(v for k, v in statuses.items() if k >= 500)}")
    assert not failures, f"{len(failures)} of {CASES} failed:\n" + "\n".join(failures[:30])
    assert statuses[200] > CASES // 4 and statuses[400] > 0   # the mutations reach the readers, not only the schema
    assert sent and all(SENDABLE.fullmatch(a) for a in sent), "a token HTTP cannot carry reached the FHIR server"
    assert logs.access_lines == CASES and not logs.leaks, logs.leaks[:5]


# ---- the real server stack: gunicorn refuses some requests before Flask sees them ------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``fhir-pain serve`` (auth off: the stack's own answers are under test, not the JWT)."""
    server = ServeProcess("--auth", "off", "--workers", "1", "--threads", "4", "--log-level", "warning",
                          env=serve_env(tmp_path_factory.mktemp("hostile") / "serve.sqlite3"))
    try:
        server.wait_ready()
        yield server.port
    finally:
        output = server.stop()
    assert "Traceback" not in output, output[-3000:]


def raw_http(port: int, data: bytes) -> tuple[int, str | None, bytes]:
    """Send bytes as they are (doubled headers, bytes no client library would send) and read the answer
    (status, Content-Type, body) up to the server's close."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    content_type = next((v.strip() for k, v in headers.items() if k.lower() == "content-type"), None)
    return int(lines[0].split()[1]), content_type, body


VIEW = "/cds-services/pain-pgx-patient-view"
# the patient is prefetched: the services require it (412 without it and without FHIR access)
BODY = (b'{"hook":"patient-view","hookInstance":"x","context":{"userId":"Practitioner/1","patientId":"p1"},'
        b'"prefetch":{"patient":{"resourceType":"Patient","id":"p1"}}}')


def post(path: str = VIEW, *headers: str, body: bytes = BODY, length: bool = True) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    if length:
        head.append(f"Content-Length: {len(body)}")
    return "\r\n".join(head).encode("utf-8") + b"\r\n\r\n" + body


@pytest.mark.parametrize("data, status", [
    pytest.param(post(VIEW + "/" + "x" * 5000, "Content-Type: application/json"), 414, id="414-long-path"),
    pytest.param(post(VIEW, "Content-Type: application/json", "Authorization: Bearer " + "a" * 65536), 431,
                 id="431-64KiB-authorization"),
    pytest.param(post(VIEW, "Content-Type: application/json", *(f"X-H{i}: 1" for i in range(200))), 431,
                 id="431-too-many-headers"),
    pytest.param(post(VIEW, "Content-Type: application/json", "Content-Type: application/json"), 400,
                 id="400-doubled-content-type"),
    pytest.param(post(VIEW, "Content-Type: application/json", "Content-Type: text/plain"), 400,
                 id="400-two-content-types"),
    pytest.param(post(VIEW, "Content-Type: application/json, application/json"), 415, id="415-listed-twice"),
    pytest.param(post(VIEW, "Content-Type: Application/JSON; Charset=UTF-8"), 200, id="200-json-any-case"),
    pytest.param(post(VIEW, "Content-Type: application/json; charset=utf-8; x=\"ü\""), 200, id="200-json-params"),
    pytest.param(post(VIEW, "Content-Type: appl\x7fication/json"), 400, id="400-control-char-in-content-type"),
    pytest.param(post(VIEW, "Content-Type: text/plain"), 415, id="415-text"),
    pytest.param(post(VIEW, "Content-Type: application/json", "X-Token: tökén-€"), 200, id="200-utf8-header"),
    pytest.param(post(VIEW, "Content-Type: application/json", "X-Nul: a\x00b"), 400, id="400-nul-in-header"),
    pytest.param(post(VIEW, "Content-Type: application/json", "Transfer-Encoding: chunked",
                      body=b"zz\r\n{}\r\n0\r\n\r\n", length=False), 400, id="400-malformed-chunk"),
    pytest.param(post(VIEW, "Content-Type: application/json", "Transfer-Encoding: gzip", length=False), 400,
                 id="400-unsupported-transfer-coding"),
    pytest.param(post(VIEW, "Content-Type: application/json", "Content-Length: 3"), 400,
                 id="400-two-content-lengths"),
    pytest.param(post(VIEW + "/feedback", "Content-Type: application/json",
                      body=b'{"feedback":' + b"[" * 1000 + b"]" * 1000 + b"}"), 400, id="400-deep-feedback"),
    pytest.param(b"GARBAGE\r\n\r\n", 400, id="400-request-line"),
    pytest.param(b"GET /cds-services HTTP/9.9\r\nHost: x\r\n\r\n", 400, id="400-http-version"),
    pytest.param(b"G\xc3\xa9T /cds-services HTTP/1.1\r\nHost: x\r\n\r\n", 400, id="400-method"),
    pytest.param(b"GET /cds-services\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, id="400-non-ascii-path"),
])
def test_the_server_stack_answers_every_refusal_with_an_operation_outcome(served, data, status):
    got, content_type, body = raw_http(served, data)
    assert got == status, body[:300]
    assert problem_with(got, content_type, body) is None


def test_a_refusal_by_the_server_stack_carries_the_cors_header_a_browser_client_needs(served):
    """Regression: gunicorn's own refusals (here 431) had no Access-Control-Allow-Origin, so the sandbox in a
    browser saw a network error instead of the OperationOutcome."""
    data = post(VIEW, "Content-Type: application/json", "Origin: https://sandbox.cds-hooks.org",
                "Authorization: Bearer " + "a" * 65536)
    with socket.create_connection(("127.0.0.1", served), timeout=30) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1")
    assert head.startswith("HTTP/1.1 431")
    assert "\r\nAccess-Control-Allow-Origin: *\r\n" in head


def test_hostile_requests_over_the_real_server_never_get_a_5xx(served):
    failures = []
    with requests.Session() as session:
        for n in range(SERVER_CASES):
            c = case(10_000_000 + n)
            try:
                response = session.post(f"http://127.0.0.1:{served}{c.path}", data=c.body, headers=c.headers,
                                        timeout=(5, 60))
            except requests.exceptions.InvalidHeader:   # a header the client library refuses to send
                continue
            problem = problem_with(response.status_code, response.headers.get("Content-Type"), response.content)
            if problem:
                failures.append(f"{c}: {problem}")
    assert not failures, "\n".join(failures[:20])
