"""Bulk sweeps: evaluation from NDJSON per core, and the sweep's peak memory as the population grows.

    .venv/bin/python -m bench.bulk [--eval-patients 5000] [--sweep-patients 10000 50000]

evaluation   the synthetic population (scripts/build_population.py) as NDJSON files; parsed line by line
             (population.ndjson), joined per patient and evaluated as a sweep does (patient_job: the rules and
             the DetectedIssues to write, collected, not sent), one process, one core: patients/s of CPU time
sweep        the whole sweep (population.sweep.Sweep) in a child process against a local stand-in for the FHIR
             server (this process, another core): Patient/$export and $export kick-off, status, the NDJSON
             files streamed over HTTP, the spool in SQLite, evaluation, DetectedIssues POSTed in transaction
             Bundles. Reports the child's peak RSS (ru_maxrss), wall and CPU time, and bytes per patient.

The stand-in answers at once and stores nothing: the figures are fhir-pain's own costs, not a FHIR server's.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def _generator():
    spec = importlib.util.spec_from_file_location("build_population", REPO / "scripts" / "build_population.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(out: Path, patients: int) -> int:
    _generator().main(["--patients", str(patients), "--out", str(out)])
    return sum(f.stat().st_size for f in out.glob("*.ndjson"))


# ---- evaluation from NDJSON, in this process ---------------------------------------------------------------

def evaluation(patients: int) -> None:
    from fhir_pain.poller.cycle import patient_of
    from fhir_pain.population import ndjson
    from fhir_pain.population.patient_job import evaluate_patient

    with tempfile.TemporaryDirectory(prefix="bench-bulk-eval-") as tmp:
        size = build(Path(tmp), patients)
        t0, c0 = time.perf_counter(), time.process_time()
        by_patient: dict[str, list[dict]] = {}
        meds: list[dict] = []
        tally = ndjson.Tally()
        for path in sorted(Path(tmp).glob("*.ndjson")):
            with path.open("rb") as f:
                for r in ndjson.resources(iter(lambda: f.read(1 << 16), b""), tally):
                    if r["resourceType"] == "Medication":
                        meds.append(r)
                    else:
                        pid = r["id"] if r["resourceType"] == "Patient" else patient_of(r)
                        by_patient.setdefault(pid, []).append(r)
        parse_cpu = time.process_time() - c0
        parse_wall = time.perf_counter() - t0
        for pid, resources in list(by_patient.items())[:200]:        # warm the knowledge caches
            evaluate_patient(None, None, patient_id=pid, resources=resources + meds, now=NOW, writes=[])
        writes: list[dict] = []
        t1, c1 = time.perf_counter(), time.process_time()
        for pid, resources in by_patient.items():
            evaluate_patient(None, None, patient_id=pid, resources=resources + meds, now=NOW, writes=writes)
        eval_cpu = time.process_time() - c1
        eval_wall = time.perf_counter() - t1
    n = len(by_patient)
    print(f"evaluation from NDJSON, {n} patients ({size / n:.0f} bytes of NDJSON each, {tally.resources} "
          f"resources): parse {n / parse_cpu:,.0f} patients/s CPU ({size / parse_cpu / 2**20:.0f} MiB/s); "
          f"evaluate {n / eval_cpu:,.0f} patients/s CPU ({eval_cpu / n * 1e6:.0f} us each, wall "
          f"{n / eval_wall:,.0f}/s); parse+evaluate {n / (parse_cpu + eval_cpu):,.0f} patients/s per core; "
          f"{len(writes)} DetectedIssues", flush=True)


# ---- the sweep, in a child process, against a stand-in server in this one -----------------------------------

class StandIn(BaseHTTPRequestHandler):
    """$export (Patient and system level), status, files, DELETE, transaction Bundles, Medication search."""
    files: dict[str, Path] = {}
    base = ""
    posted = 0
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        if path.endswith("/$export"):
            job = "issues" if path == "/fhir/$export" else "data"
            self._send(202, headers={"Content-Location": f"{self.base}/status/{job}"})
        elif path.startswith("/fhir/status/"):
            job = path.rsplit("/", 1)[1]
            output = [] if job == "issues" else [
                {"type": p.stem, "url": f"{self.base}/files/{p.name}"} for p in self.files.values()]
            body = json.dumps({"transactionTime": "2026-11-20T08:00:00Z", "request": "x",
                               "requiresAccessToken": False, "output": output, "error": []}).encode()
            self._send(200, body, {"Content-Type": "application/json"})
        elif path.startswith("/fhir/files/"):
            f = self.files[path.rsplit("/", 1)[1]]
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+ndjson")
            self.send_header("Content-Length", str(f.stat().st_size))
            self.end_headers()
            with f.open("rb") as src:
                while chunk := src.read(1 << 16):
                    self.wfile.write(chunk)
        else:
            self._send(200, b'{"resourceType":"Bundle","type":"searchset","entry":[]}',
                       {"Content-Type": "application/fhir+json"})

    def do_DELETE(self) -> None:  # noqa: N802
        self._send(202)

    def do_POST(self) -> None:  # noqa: N802
        bundle = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            StandIn.posted += len(bundle["entry"])
        answer = {"resourceType": "Bundle", "type": "transaction-response",
                  "entry": [{"response": {"status": "200 OK"}} for _ in bundle["entry"]]}
        self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/fhir+json"})


def child(base: str, db: str) -> None:
    """Run one sweep; print its figures as JSON (in the child process)."""
    from cds_hooks.fhir_client import FHIRClient
    from fhir_pain.population.bulk import BulkClient
    from fhir_pain.population.sweep import Sweep
    from fhir_pain.store import Store

    client = FHIRClient(base, timeout=(5.0, 120.0))
    bulk = BulkClient(base, min_poll_s=0.05)
    c0 = time.process_time()
    stats = Sweep(client, bulk, Store(f"sqlite:///{db}"), clock=lambda: NOW).run()
    print(json.dumps({"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "cpu": time.process_time() - c0,
                      "wall": stats.seconds, "export": stats.export_seconds, "evaluated": stats.evaluated,
                      "written": stats.written, "errors": dict(stats.errors), "bytes": stats.bytes,
                      "db_bytes": os.path.getsize(db)}))


def sweep(patients: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-bulk-sweep-") as tmp:
        out = Path(tmp) / "ndjson"
        build(out, patients)
        StandIn.files = {p.name: p for p in out.glob("*.ndjson")}
        server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
        StandIn.base = f"http://127.0.0.1:{server.server_port}/fhir"
        StandIn.posted = 0
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            proc = subprocess.run([sys.executable, "-m", "bench.bulk", "--child", StandIn.base,
                                   str(Path(tmp) / "spool.sqlite3")], cwd=REPO, capture_output=True, text=True,
                                  check=True)
        finally:
            server.shutdown()
        r = json.loads(proc.stdout.strip().splitlines()[-1])
    n = r["evaluated"]
    print(f"sweep of {patients:,} patients: peak RSS {r['rss_kib'] / 1024:.0f} MiB; {n:,} evaluated, "
          f"{r['written']:,} DetectedIssues in {StandIn.posted:,} transaction entries, errors {r['errors'] or 'none'};"
          f" wall {r['wall']:.1f}s (export+spool {r['export']:.1f}s) = {n / r['wall']:,.0f} patients/s, CPU "
          f"{r['cpu']:.1f}s = {r['cpu'] / n * 1e6:.0f} us/patient; {r['bytes'] / n:,.0f} NDJSON bytes/patient; "
          f"spool peak {r['db_bytes'] / n:,.0f} bytes/patient", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.bulk", description=__doc__.splitlines()[0])
    parser.add_argument("--eval-patients", type=int, default=5000)
    parser.add_argument("--sweep-patients", type=int, nargs="*", default=[10_000, 50_000])
    parser.add_argument("--child", nargs=2, metavar=("BASE", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    if args.eval_patients:
        evaluation(args.eval_patients)
    for n in args.sweep_patients:
        sweep(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
