"""The SMART launch stack of the dashboard's browser tests: a test EHR (smart_ehr.py, its own HTTP process) in
front of a real FHIR server (sekmet) holding the demo patients, and the dashboard as ``fhir-pain serve``."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests

from fhir_pain.demo.loader import load_patients
from integration.sekmet_server import Sekmet
from serve_process import ServeProcess, serve_env

CLIENT_ID = "fhir-pain-dashboard"
EHR_SCRIPT = Path(__file__).with_name("smart_ehr.py")


class SmartEHR:
    """tests/dashboard/smart_ehr.py as its own HTTP process on a free port."""

    def __init__(self, sekmet: Sekmet, redirect_uri: str, *, port: int, token_lifetime: int = 3600,
                 v1_only: bool = False):
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.iss = f"{self.url}/fhir"
        args = [sys.executable, str(EHR_SCRIPT), "--port", str(self.port), "--fhir-upstream", sekmet.base_url,
                "--upstream-token", sekmet.token, "--client-id", CLIENT_ID, "--redirect-uri", redirect_uri,
                "--token-lifetime", str(token_lifetime)] + (["--v1-only"] if v1_only else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            try:
                requests.get(f"{self.iss}/.well-known/smart-configuration", timeout=(2, 10)).raise_for_status()
                break
            except requests.RequestException:
                assert self.proc.poll() is None and time.monotonic() < deadline, "the test EHR did not start"
                time.sleep(0.2)

    def launch(self, patient: str) -> str:
        return requests.get(f"{self.url}/ehr/launch", params={"patient": patient}, timeout=(2, 10)).json()["launch"]

    def requests_seen(self) -> list[dict]:
        return requests.get(f"{self.url}/ehr/requests", timeout=(2, 10)).json()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def demo_sekmet(folder: Path) -> Sekmet:
    """A started sekmet holding the demo patients."""
    server = Sekmet(folder).start()
    results = load_patients(server.base_url, token=server.token)
    assert not [r for r in results if r.error], results
    return server


def dashboard(folder: Path, ehr_port: int, *, workers: int) -> ServeProcess:
    """``fhir-pain serve`` registered as the EHR's SMART client; the EHR's FHIR base is the one allowed server.
    Generous FHIR deadlines: the gateway and sekmet share a busy 2-core machine with the rest of the suite."""
    env = serve_env(folder / "store.sqlite3")
    env.update({"FHIR_PAIN_SMART_CLIENT_ID": CLIENT_ID, "FHIR_PAIN_DASHBOARD_SECRET_KEY": "test-secret-" + "x" * 32,
                "FHIR_PAIN_FHIR_SERVER_ALLOWLIST": f"http://127.0.0.1:{ehr_port}/fhir",
                "FHIR_PAIN_FHIR_DEADLINE_S": "30", "FHIR_PAIN_FHIR_TIMEOUT_S": "[3, 25]"})
    serve = ServeProcess("--workers", str(workers), "--threads", "4", env=env)
    serve.wait_ready()
    return serve


def launch(page, serve: ServeProcess, ehr: SmartEHR, patient: str) -> None:
    """The EHR opens the dashboard for ``patient``: the browser lands on the EHR's consent page."""
    page.goto(f"{serve.url}/dashboard/launch?iss={ehr.iss}&launch={ehr.launch(patient)}")
