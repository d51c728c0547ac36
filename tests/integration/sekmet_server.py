"""Start and stop a real FHIR server (sekmet-fhir 0.1.1 from PyPI, in its own virtualenv) for tests and benches.

Free loopback port, a data directory of its own, simulator off, a static bearer token and a SMART Backend
Services client whose key pair is generated here. Readiness: ``GET /fhir/metadata`` answers 200.
Used by tests/integration/conftest.py, tests/test_demo.py and bench/poller.py.

CI runs the suite once on a busy 2-core machine: the harness's own waits and calls (not the code under test) poll
against generous overall deadlines, retry what is safe to resend, and every process it starts is stopped, also when
a test fails or the run is interrupted (atexit).
"""
from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from cds_hooks.fhir_client import never_sent

SEKMET_VERSION = "0.1.1"
REPO = Path(__file__).resolve().parents[2]
TOKEN = "fhir-pain-poller-test-token"
SMART_CLIENT_ID = "fhir-pain-poller"
SMART_KID = "poller-test-key"
START_DEADLINE_S = 180.0        # a cold start on a loaded machine: imports, SQLite, uvicorn
CALL_DEADLINE_S = 120.0         # the harness's own calls (seed, read back), retries included
CALL_TIMEOUT = (5.0, 60.0)      # connect, read: per attempt
STOP_GRACE_S = 30.0

_STARTED: set[Sekmet] = set()   # held strongly: a server nobody references must still be stopped


@atexit.register
def _stop_all() -> None:
    """No sekmet outlives the test run, however it ends (a failing fixture, Ctrl-C, an error in a helper)."""
    for server in list(_STARTED):
        server.stop()


def sekmet_binary() -> Path:
    """$FHIR_PAIN_SEKMET (make test sets it), else the repo's .venv-fhir, else that venv created now."""
    env = os.environ.get("FHIR_PAIN_SEKMET")
    if env and Path(env).is_file():
        return Path(env)
    venv = REPO / ".venv-fhir"
    binary = venv / "bin" / "sekmet"
    if not binary.is_file():
        # sekmet pins its own fhir.resources/pydantic: it never shares the project's virtualenv
        base_python = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", f"sekmet-fhir=={SEKMET_VERSION}"],
                       check=True)
    return binary


class PortTaken(RuntimeError):
    """The server could not bind its port: something took it after ``free_port`` picked it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sekmet:
    """One sekmet process; ``stop()``/``start()`` keep the port and the data (a server that goes away and
    comes back)."""

    def __init__(self, workdir: Path, binary: Path | None = None, port: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary or sekmet_binary()
        self.token = TOKEN
        self.smart_client_id = SMART_CLIENT_ID
        self.smart_kid = SMART_KID
        self.smart_key_path = self.workdir / "poller-key.pem"
        self._process: subprocess.Popen | None = None
        self._port_chosen_here = port is None
        self._ever_ready = False
        # told back in the CapabilityStatement: the readiness probe knows it reached this server, not another
        # (another suite's) that took the port first
        self.facility = f"fhir-pain test server {uuid.uuid4()}"
        self._jwk = self._make_smart_key()
        self._use_port(port or free_port())
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {self.token}",
                                     "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})

    def _make_smart_key(self) -> dict:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.smart_key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": SMART_KID, "alg": "RS384", "use": "sig"})
        return jwk

    def _use_port(self, port: int) -> None:
        self.port = port
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root_url}/fhir"
        self._write_settings(self._jwk)

    def _write_settings(self, jwk: dict) -> None:
        settings = {  # YAML is a superset of JSON
            "base_url": self.base_url, "host": "127.0.0.1", "port": self.port,
            "data_dir": str(self.workdir / "data"),
            "own_private_key_path": str(self.workdir / "keys" / "sekmet_private.pem"),
            "server_auth": {"types": ["bearer", "smart"], "tokens": [self.token],
                            "smart_clients": [{"client_id": SMART_CLIENT_ID, "jwks": {"keys": [jwk]},
                                               "scopes": "system/*.read system/DetectedIssue.write"}]},
            "simulator": {"enabled": False},
            "validation": {"inbound": "strict"},
            "log_inbound": False,
            "facility_name": self.facility,
        }
        self.settings_path = self.workdir / "settings.yaml"
        self.settings_path.write_text(json.dumps(settings, indent=1))

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self, timeout_s: float = START_DEADLINE_S) -> Sekmet:
        """Start and wait until ``metadata`` answers 200; ready in well under a second on an idle machine, the
        deadline is for a loaded one. Any failure while waiting stops the process before raising.

        The free port was only free when it was picked: another process may take it first. Before the server
        has ever run (nobody holds its URL yet) that is retried on a new port; a restart keeps its port."""
        for attempt in range(3):
            log = open(self.workdir / "sekmet.log", "ab")
            self._process = subprocess.Popen([str(self.binary), "serve", "--config", str(self.settings_path)],
                                             cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
            log.close()
            _STARTED.add(self)
            try:
                self._wait_ready(timeout_s)
            except PortTaken:
                self.stop()
                if attempt == 2 or self._ever_ready or not self._port_chosen_here:
                    raise
                self._use_port(free_port())
                continue
            except BaseException:
                self.stop()
                raise
            self._ever_ready = True
            return self
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pause = 0.05
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                error = PortTaken if "address already in use" in tail.lower() else RuntimeError
                raise error(f"sekmet exited with {self._process.returncode}:\n{tail}")
            try:
                # a fresh connection each time: never a pooled one to a process that has gone
                resp = requests.get(f"{self.base_url}/metadata", timeout=(2.0, 10.0))
                if resp.status_code == 200 and self._is_mine(resp):
                    return
            except requests.RequestException:
                pass
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
        raise RuntimeError(f"sekmet not ready after {timeout_s}s:\n{self.log_tail()}")

    def _is_mine(self, resp: requests.Response) -> bool:
        try:
            return resp.json()["implementation"]["description"].startswith(self.facility)
        except (ValueError, KeyError, TypeError, AttributeError):
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        _STARTED.discard(self)
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.session.close()   # pooled connections belong to the process that has gone

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "sekmet.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # -- data: the harness's own calls ----------------------------------------------------------------------------
    def call(self, method: str, path_or_url: str, body: dict | None = None) -> requests.Response:
        """One request of the harness (not of the code under test), answered within ``CALL_DEADLINE_S``.

        A GET or PUT (the same data to the same id) is sent again after a timeout or a dropped connection; a POST
        only when it never left (connection refused): seed transactions create new ids, and sent twice they
        would seed everything twice. The POST goes out on a new connection, never on a pooled one the server
        may be closing. The response is returned whatever its status (``raise_for_status`` is the caller's)."""
        url = path_or_url if "://" in path_or_url else f"{self.base_url}/{path_or_url}"
        data = None if body is None else json.dumps(body)
        resend = method.upper() in ("GET", "PUT")
        deadline = time.monotonic() + CALL_DEADLINE_S
        pause = 0.1
        while True:
            try:
                if resend:
                    return self.session.request(method, url, data=data, timeout=CALL_TIMEOUT)
                with requests.Session() as fresh:
                    fresh.headers.update(self.session.headers)
                    return fresh.request(method, url, data=data, timeout=CALL_TIMEOUT)
            except requests.RequestException as exc:
                if not (resend or never_sent(exc)) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _json(self, method: str, path_or_url: str, body: dict | None = None) -> dict:
        resp = self.call(method, path_or_url, body)
        resp.raise_for_status()
        return resp.json()

    def transaction(self, entries: list[dict]) -> list[str]:
        """POST a transaction Bundle; returns the ``Type/id`` of each entry, in order."""
        answer = self._json("POST", self.base_url, {"resourceType": "Bundle", "type": "transaction", "entry": entries})
        refs = []
        for entry in answer.get("entry", []):
            location = entry["response"]["location"].split("/_history/")[0]
            refs.append("/".join(location.rstrip("/").split("/")[-2:]))
        return refs

    def put(self, resource: dict) -> dict:
        return self._json("PUT", f"{resource['resourceType']}/{resource['id']}", resource)

    def read(self, ref: str) -> dict:
        return self._json("GET", ref)

    def exists(self, ref: str) -> bool:
        resp = self.call("GET", ref)
        if resp.status_code in (404, 410):
            return False
        resp.raise_for_status()
        return True

    def search(self, query: str) -> list[dict]:
        """Every resource of a search, all pages."""
        url: str | None = f"{self.base_url}/{query}"
        out: list[dict] = []
        while url:
            bundle = self._json("GET", url)
            out += [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"]
            url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
        return out
