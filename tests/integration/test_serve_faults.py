"""The fetch faults against a real ``fhir-pain serve`` (gunicorn, one gthread worker of 8 threads, the default
thread count): a drip is cut at the deadline, a gzip bomb does not grow the worker, and while 16 calls hang on a
dripping server a call to a healthy one gets its data.

The worker's memory is read from /proc: its peak resident size is reset (clear_refs) before the bomb, and
read (VmHWM) after it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from fhir_pain.gather import PGX
from fhir_pain.services import SERVICE_IDS
from golden.fhir_builders import draft, hook_request, prefetch

DEADLINE = 1.0
MARGIN = 1.5
MiB = 1024 * 1024
CODEINE = ("2670", "codeine phosphate 30 MG Oral Tablet")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(proc.name))
    return out


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.fixture(scope="module")
def served(fault_fhir, tmp_path_factory):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_PAIN_")}
    env.update({"FHIR_PAIN_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('serve') / 'serve.sqlite3'}",
                "FHIR_PAIN_FHIR_SERVER_ALLOWLIST": json.dumps([fault_fhir.root_url]),
                "FHIR_PAIN_FHIR_DEADLINE_S": str(DEADLINE)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhir_pain.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--auth", "off", "--workers", "1", "--threads", "8", "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a busy machine; about a second when idle
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "fhir-pain serve did not start"
            try:
                if requests.get(f"{url}/healthz", timeout=(2, 10)).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        [worker] = children(proc.pid)
        yield url, worker
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post(url: str, server, mode: str, name: str, prefetch_: dict | None) -> tuple[requests.Response, float]:
    body = hook_request("order-sign", "p1", name=name, drafts=[draft("rx1", "p1", *CODEINE)], prefetch=prefetch_)
    body["fhirServer"] = server.base(mode)
    body["fhirAuthorization"] = {"access_token": "opaque-token-of-the-ehr", "token_type": "Bearer",
                                 "expires_in": 300, "scope": "patient/*.read", "subject": "fhir-pain"}
    started = time.monotonic()
    response = requests.post(f"{url}/cds-services/{SERVICE_IDS['order-sign']}", json=body, timeout=(5, 60))
    return response, time.monotonic() - started


@pytest.mark.parametrize("mode", ("drip", "drip-headers"))
def test_a_dripping_fhir_server_is_cut_at_the_deadline(served, fault_fhir, mode):
    url, _ = served
    response, elapsed = post(url, fault_fhir, mode, f"serve-{mode}", None)
    print(f"\n{mode}: {response.status_code} in {elapsed:.2f} s (deadline {DEADLINE} s)")
    assert response.status_code == 412 and response.json()["issue"][0]["expression"] == ["patient"]
    assert elapsed < DEADLINE + MARGIN


@pytest.mark.parametrize("keys", (1, 5))
def test_a_gzip_bomb_does_not_grow_the_worker(served, fault_fhir, keys):
    url, worker = served
    given = prefetch("p1", omit=(PGX,)) if keys == 1 else {"patient": prefetch("p1")["patient"]}
    Path(f"/proc/{worker}/clear_refs").write_text("5")  # peak resident size := current
    before = status_kib(worker, "VmRSS")
    response, elapsed = post(url, fault_fhir, "gzip-bomb", f"serve-bomb-{keys}", given)
    growth = (status_kib(worker, "VmHWM") - before) * 1024
    print(f"\ngzip bomb (512 MiB inflated) on {keys} key(s) at once: {response.status_code} in {elapsed:.2f} s, "
          f"worker peak RSS growth {growth / MiB:.1f} MiB")
    assert response.status_code == 200
    assert [c["summary"] for c in response.json()["cards"]] == [
        "PGx results could not be retrieved: CYP2D6 check for codeine not done"]
    assert growth < 200 * MiB


def test_sixteen_calls_hanging_on_a_slow_server_do_not_starve_a_healthy_one(served, fault_fhir):
    url, _ = served
    before = fault_fhir.requests["drip"]
    with ThreadPoolExecutor(17) as pool:
        slow = [pool.submit(post, url, fault_fhir, "drip", f"serve-slow-{i}", None) for i in range(16)]
        while fault_fhir.requests["drip"] - before < 8 * 6:  # the worker's 8 threads all wait on the drip
            time.sleep(0.02)
        healthy, elapsed = pool.submit(post, url, fault_fhir, "healthy", "serve-healthy", None).result()
        slow_answers = [f.result() for f in slow]
    print(f"\nhealthy call beside 16 slow ones: {healthy.status_code} in {elapsed:.2f} s, "
          f"slow ones {sorted({r.status_code for r, _ in slow_answers})} in at most "
          f"{max(t for _, t in slow_answers):.2f} s")
    assert healthy.status_code == 200, healthy.text
    [card] = healthy.json()["cards"]
    assert card["summary"] == "CYP2D6 poor metabolizer: avoid codeine (CPIC Strong)"
    assert "Data not available" not in card["detail"]
    assert {r.status_code for r, _ in slow_answers} == {412}
