"""Start and stop a real FHIR server (sekmet-fhir 0.1.1 from PyPI, in its own virtualenv) for tests and benches.

Free loopback port, a data directory of its own, simulator off, a static bearer token and a SMART Backend
Services client whose key pair is generated here. Readiness: ``GET /fhir/metadata`` answers 200.
Used by tests/integration/conftest.py and bench/poller.py.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

SEKMET_VERSION = "0.1.1"
REPO = Path(__file__).resolve().parents[2]
TOKEN = "fhir-pain-poller-test-token"
SMART_CLIENT_ID = "fhir-pain-poller"
SMART_KID = "poller-test-key"


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
        self.port = port or free_port()
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root_url}/fhir"
        self.token = TOKEN
        self.smart_client_id = SMART_CLIENT_ID
        self.smart_kid = SMART_KID
        self.smart_key_path = self.workdir / "poller-key.pem"
        self._process: subprocess.Popen | None = None
        self._write_settings()
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {self.token}",
                                     "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})

    def _write_settings(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.smart_key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": SMART_KID, "alg": "RS384", "use": "sig"})
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
        }
        self.settings_path = self.workdir / "settings.yaml"
        self.settings_path.write_text(json.dumps(settings, indent=1))

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> Sekmet:
        log = open(self.workdir / "sekmet.log", "ab")
        self._process = subprocess.Popen([str(self.binary), "serve", "--config", str(self.settings_path)],
                                         cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sekmet exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if self.session.get(f"{self.base_url}/metadata", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sekmet not ready after {timeout_s}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "sekmet.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # -- data ---------------------------------------------------------------------------------------------------
    def transaction(self, entries: list[dict]) -> list[str]:
        """POST a transaction Bundle; returns the ``Type/id`` of each entry, in order."""
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        resp = self.session.post(self.base_url, data=json.dumps(bundle), timeout=60)
        resp.raise_for_status()
        refs = []
        for entry in resp.json().get("entry", []):
            location = entry["response"]["location"].split("/_history/")[0]
            refs.append("/".join(location.rstrip("/").split("/")[-2:]))
        return refs

    def put(self, resource: dict) -> dict:
        resp = self.session.put(f"{self.base_url}/{resource['resourceType']}/{resource['id']}",
                                data=json.dumps(resource), timeout=10)
        resp.raise_for_status()
        return resp.json()

    def read(self, ref: str) -> dict:
        resp = self.session.get(f"{self.base_url}/{ref}", timeout=10)
        resp.raise_for_status()
        return resp.json()

    def search(self, query: str) -> list[dict]:
        """Every resource of a search, all pages."""
        url: str | None = f"{self.base_url}/{query}"
        out: list[dict] = []
        while url:
            bundle = self.session.get(url, timeout=30).json()
            out += [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"]
            url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
        return out
