"""A real ``fhir-pain serve`` (gunicorn) on a free port, for the tests that need the whole server stack."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``fhir-pain serve --host 127.0.0.1 --port <free> *args`` with the environment ``env``."""

    def __init__(self, *args: str, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fhir_pain.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, path: str = "/healthz") -> requests.Response:
        """The first answer to GET ``path``. gunicorn accepts connections before its worker has booted: on a busy
        machine a probe can be refused or wait; poll with short probes against a generous overall deadline
        (ready in about a second when idle)."""
        deadline = time.monotonic() + 180
        while True:
            try:
                return requests.get(self.url + path, timeout=(2, 10))
            except requests.RequestException:
                assert self.proc.poll() is None and time.monotonic() < deadline, self.proc.stdout.read()
                time.sleep(0.2)

    def stop(self) -> str:
        """SIGTERM (gunicorn's graceful stop), then everything the server printed."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            output, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            output, _ = self.proc.communicate()
        return output


def serve_env(database_path: os.PathLike) -> dict[str, str]:
    """The caller's environment without its FHIR_PAIN_ settings, and a throw-away SQLite store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_PAIN_")}
    env["FHIR_PAIN_DATABASE_URL"] = f"sqlite:///{database_path}"
    return env
