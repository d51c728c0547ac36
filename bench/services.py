"""Benchmark of the clinical CDS services (``make bench`` runs it through ``python -m bench``).

1. The service's own time for order-select and order-sign with a realistic prefetch of 100 resources (10 PGx
   results, 60 pain assessments, 10 Conditions, 20 active MedicationRequests) and 3 draft orders: gather +
   evaluate + render + response serialisation, measured around the service handler (no HTTP, no prefetch
   fetching). Also the same request through Flask's test client (JSON parsing, request validation, logging).
2. Requests per second under gunicorn on this machine (gthread, 2 workers x 4 threads, loopback only, a free
   port) for the order-sign service beside a trivial Flask endpoint in the same app, measured in the same run
   in alternating one-second slices by a pool of client threads, and their ratio (order-sign / trivial: what a call
   costs beyond HTTP, comparable between machines and runs). The server is started and stopped here.
3. In the same run, the same order-sign request to a service that answers it with no cards (``bench-empty``: the
   same prefetch, JWT/JSON/depth/schema checks, prefetch resolution, response and log line, no gather, rules or
   cards): the protocol's floor. Its ratio to the trivial endpoint is the most order-sign's ratio could reach;
   order-sign / floor is the share of the call's cost left beside the clinical work.
4. For each, the CPU per request of the server's workers and of the client threads (Linux /proc): client and server
   share this machine's cores, so this says where the requests/s went.

    .venv/bin/python -m bench.services [ROUNDS] [SECONDS]
"""
from __future__ import annotations

import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))   # the FHIR builders of the golden scenarios

from golden.fhir_builders import (  # noqa: E402
    condition, day, draft, gad7, genotype, hook_request, medication_request, nrs, phq9, prefetch, project_score,
    reported_phenotype,
)

NOW = "2026-05-01T12:00:00Z"
PID = "bench-1"


def _pgx() -> list[dict]:
    out = [genotype("g1", PID, "CYP2D6", "*1/*4"), genotype("g2", PID, "CYP2C9", "*1/*3"),
           genotype("g3", PID, "CYP2C19", "*1/*17"), genotype("g4", PID, "CYP2D6", "*1/*4", when="2019-03-01")]
    out += [reported_phenotype(f"ph{i}", PID, gene, ph) for i, (gene, ph) in enumerate(
        [("CYP2D6", "Intermediate Metabolizer"), ("CYP2C9", "Intermediate Metabolizer"),
         ("CYP2C19", "Rapid Metabolizer"), ("CYP2D6", "Intermediate Metabolizer"),
         ("CYP2C9", "Intermediate Metabolizer"), ("CYP2C19", "Rapid Metabolizer")])]
    return out


def _pain() -> list[dict]:
    out = []
    for i in range(40):
        out.append(nrs(f"n{i}", PID, 4 + (i * 7) % 6, day(-7 * i - 1)))
    for i in range(8):
        out.append(phq9(f"q{i}", PID, 6 + i, day(-45 * i - 3)))
    for i in range(6):
        out.append(gad7(f"a{i}", PID, 5 + i, day(-60 * i - 3)))
    for i, (code, value) in enumerate([("dn4-total", 5), ("pcs-total", 31), ("csi-total", 44), ("dn4-total", 4),
                                       ("pcs-total", 28), ("csi-total", 38)]):
        out.append(project_score(f"s{i}", PID, code, value, day(-90 * i - 10)))
    return out


def _conditions() -> list[dict]:
    codes = [("230572002", "Diabetic neuropathy"), ("203082005", "Fibromyalgia"), ("44054006", "Diabetes mellitus type 2"),
             ("38341003", "Hypertensive disorder"), ("279039007", "Low back pain"), ("35489007", "Depressive disorder"),
             ("69896004", "Rheumatoid arthritis"), ("195967001", "Asthma"), ("40930008", "Hypothyroidism"),
             ("2177002", "Postherpetic neuralgia")]
    return [condition(f"c{i}", PID, code, text, day(-100 * i - 200)) for i, (code, text) in enumerate(codes)]


def _meds() -> list[dict]:
    drugs = [("25480", "gabapentin 300 MG Oral Capsule"), ("6809", "metformin 500 MG Oral Tablet"),
             ("29046", "lisinopril 10 MG Oral Tablet"), ("83367", "atorvastatin 20 MG Oral Tablet"),
             ("10582", "levothyroxine 0.05 MG Oral Tablet"), ("72625", "duloxetine 30 MG Delayed Release Capsule"),
             ("161", "acetaminophen 500 MG Oral Tablet"), ("7646", "omeprazole 20 MG Delayed Release Capsule"),
             ("17767", "amlodipine 5 MG Oral Tablet"), ("1191", "aspirin 81 MG Oral Tablet")]
    out = [medication_request(f"m{i}", PID, code, text, authored=day(-30 * i - 20)) for i, (code, text) in
           enumerate(drugs)]
    out += [medication_request(f"m{i + 10}", PID, code, text, status="active", authored=day(-400 - i))
            for i, (code, text) in enumerate(drugs)]
    return out


def request(hook: str) -> dict:
    drafts = [draft("rx1", PID, "2670", "codeine phosphate 30 MG Oral Tablet"),
              draft("rx2", PID, "140587", "celecoxib 200 MG Oral Capsule"),
              draft("rx3", PID, "704", "amitriptyline hydrochloride 10 MG Oral Tablet", dose_mg=10)]
    pre = prefetch(PID, pgx=_pgx(), pain=_pain(), conditions=_conditions(), meds=_meds())
    body = hook_request(hook, PID, name=f"bench-{hook}", drafts=drafts, prefetch=pre,
                        selections=["MedicationRequest/rx1"] if hook == "order-select" else None)
    n = sum(len(v.get("entry", ())) for v in pre.values() if v.get("resourceType") == "Bundle") + 1
    assert n >= 100, n
    return body


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def own_time(rounds: int) -> dict:
    """The handler alone (HookRequest in, serialised response out), and the in-process HTTP path."""
    from cds_hooks import HookRequest
    from fhir_pain.app import create_app
    from fhir_pain.services import SERVICE_IDS, build_services

    services = {s.hook: s for s in build_services({"NOW": NOW})}
    app = create_app({"AUTH": "off", "DATABASE_URL": "sqlite://", "NOW": NOW})
    client = app.test_client()
    out = {}
    for hook in ("order-select", "order-sign"):
        body = request(hook)
        service = services[hook]
        hr = HookRequest(hook=hook, hook_instance=body["hookInstance"], service_id=service.id,
                         context=body["context"], prefetch=body["prefetch"], raw=body)
        cards = len(service.handler(hr).cards)
        for _ in range(30):
            service.handler(hr)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            orjson.dumps(service.handler(hr).to_dict())
            times.append((time.perf_counter() - t0) * 1000)
        raw = orjson.dumps(body)
        http = []
        for _ in range(max(50, rounds // 4)):
            t0 = time.perf_counter()
            r = client.post(f"/cds-services/{SERVICE_IDS[hook]}", data=raw, content_type="application/json")
            http.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200
        out[hook] = {"cards": cards, "own": _percentiles(times), "in_process_http": _percentiles(http)}
    return out


# ---- gunicorn ---------------------------------------------------------------------------------------------

EMPTY_SERVICE = "bench-empty"


def make_app():
    """gunicorn entry point ('bench.services:make_app()'): the real app plus a trivial endpoint and a service
    with no clinical work (``EMPTY_SERVICE``, the same hook and prefetch as order-sign) to compare."""
    from flask import jsonify

    from cds_hooks import CDSResponse

    from fhir_pain.app import create_app
    from fhir_pain.server import settle_heap
    app = create_app({"AUTH": "off", "DATABASE_URL": os.environ["BENCH_DATABASE_URL"], "NOW": NOW})

    @app.get("/bench/trivial")
    def trivial():
        return jsonify(ok=True)

    sign = app.extensions["cds_hooks"].registry.get("pain-pgx-order-sign")
    app.extensions["cds_hooks"].registry.register(dataclasses.replace(
        sign, id=EMPTY_SERVICE, title="bench: no clinical work", handler=lambda request: CDSResponse(cards=())))
    settle_heap()     # as `fhir-pain serve` does in each worker
    return app


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False      # loopback only: never through a proxy from the environment
    return session


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load(url: str, body: bytes | None, seconds: float, threads: int) -> dict:
    """Latencies of ``threads`` keep-alive clients hammering ``url`` for ``seconds``."""
    stop = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads

    def worker(i: int) -> None:
        session = _session()
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = (session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
                 if body is not None else session.get(url, timeout=10))
            if r.status_code != 200:
                errors[i] += 1
            latencies[i].append((time.perf_counter() - t0) * 1000)
        session.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 15)
    elapsed = time.perf_counter() - started
    flat = [x for lat in latencies for x in lat]
    return {"latencies": flat, "elapsed": elapsed, "errors": sum(errors)}


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds of these processes so far (Linux /proc), None where /proc cannot say."""
    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return total


def _children(pid: int) -> list[int]:
    """The gunicorn master's workers (Linux /proc), empty where /proc cannot say."""
    out = []
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            out.append(int(entry))
                except (OSError, ValueError, IndexError):
                    continue
    except OSError:
        return []
    return out


def _merge(runs: list[dict]) -> dict:
    """Requests/s and latency over several slices of one target."""
    flat = [x for r in runs for x in r["latencies"]]
    median, p99 = _percentiles(flat)
    cpu = [r.get("server_cpu") for r in runs]
    return {"rps": len(flat) / sum(r["elapsed"] for r in runs), "requests": len(flat),
            "errors": sum(r["errors"] for r in runs), "median_ms": median, "p99_ms": p99,
            # where the two cores went: the server's workers and this process's client threads, per request
            "server_cpu_ms": 1000 * sum(cpu) / len(flat) if flat and None not in cpu else None,
            "client_cpu_ms": 1000 * sum(r["client_cpu"] for r in runs) / len(flat) if flat else None}


def under_gunicorn(seconds: float, threads: int = 8) -> dict:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, BENCH_DATABASE_URL=f"sqlite:///{tmp}/bench.sqlite3", PYTHONPATH=str(ROOT))
        cmd = [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--worker-class",
               "gthread", "--workers", "2", "--threads", "4", "--no-control-socket", "--log-level", "warning",
               "--timeout", "30", "bench.services:make_app()"]
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.time() + 60
            probe = _session()
            while True:
                try:
                    if probe.get(base + "/bench/trivial", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError("gunicorn did not start: " + server.stderr.read().decode()[-2000:])
                time.sleep(0.1)
            body = orjson.dumps(request("order-sign"))
            targets = {"trivial": (base + "/bench/trivial", None),
                       "order-sign": (base + "/cds-services/pain-pgx-order-sign", body),
                       "floor": (base + f"/cds-services/{EMPTY_SERVICE}", body)}
            for url, data in targets.values():                                     # warm the workers
                _load(url, data, 1.0, threads)
            # alternating one-second slices: on a shared machine, load that comes and goes falls on both alike
            slices = max(1, round(seconds))
            runs: dict[str, list[dict]] = {name: [] for name in targets}
            workers = _children(server.pid)
            for _ in range(slices):
                for name, (url, data) in targets.items():
                    before, client = _cpu_seconds(workers) if workers else None, time.process_time()
                    run = _load(url, data, seconds / slices, threads)
                    after = _cpu_seconds(workers) if workers else None
                    run["client_cpu"] = time.process_time() - client
                    run["server_cpu"] = after - before if before is not None and after is not None else None
                    runs[name].append(run)
            trivial, sign, floor = (_merge(runs[name]) for name in targets)
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
    return {"trivial": trivial, "order-sign": sign, "floor": floor, "threads": threads}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    rounds = int(argv[0]) if argv else 500
    seconds = float(argv[1]) if len(argv) > 1 else 5.0
    own = own_time(rounds)
    print(f"CDS services: prefetch of 100 resources (10 PGx, 60 pain, 10 Conditions, 20 MedicationRequests), "
          f"3 drafts, {rounds} rounds, {os.cpu_count()} CPUs")
    for hook, r in own.items():
        print(f"  {hook:12s} service's own time: median {r['own'][0]:.2f} ms, p99 {r['own'][1]:.2f} ms "
              f"({r['cards']} cards); through Flask in-process: median {r['in_process_http'][0]:.2f} ms, "
              f"p99 {r['in_process_http'][1]:.2f} ms")
    g = under_gunicorn(seconds)
    print(f"  gunicorn gthread 2 workers x 4 threads, {g['threads']} keep-alive client threads on the same "
          f"machine, {seconds:g} s each in alternating 1 s slices:")
    for name in ("trivial", "order-sign", "floor"):
        r = g[name]
        cpu = (f"; CPU per request: server {r['server_cpu_ms']:.2f} ms, client {r['client_cpu_ms']:.2f} ms"
               if r["server_cpu_ms"] is not None else "")
        print(f"    {name:12s} {r['rps']:7.0f} requests/s  median {r['median_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms"
              f"  ({r['requests']} requests, {r['errors']} errors{cpu})")
    g["ratio"] = g["order-sign"]["rps"] / g["trivial"]["rps"]
    print(f"    order-sign / trivial: {g['ratio']:.2f} (requests/s in the same run; the machine's speed and load "
          f"cancel out)")
    g["floor_ratio"] = g["floor"]["rps"] / g["trivial"]["rps"]
    print(f"    floor / trivial: {g['floor_ratio']:.2f} (the same request answered with no cards: the most order-sign's "
          f"ratio could reach); order-sign / floor: {g['order-sign']['rps'] / g['floor']['rps']:.2f}")
    return {"own": own, "gunicorn": g}


if __name__ == "__main__":
    main()
