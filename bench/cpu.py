"""CPU time per call, for comparing changes on a busy machine: ``time.process_time()`` over many in-process calls
of the bench's order-sign request (and the same request to the no-cards service, and the trivial endpoint)
through Flask's test client, repeated; min and median per call. Wall-clock requests/s (``bench.services``)
moves with whatever else the machine runs; this moves far less. Not part of ``make bench``.

    .venv/bin/python -m bench.cpu [CALLS] [REPEATS]
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import orjson


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    calls, repeats = (int(argv[0]) if argv else 200), (int(argv[1]) if len(argv) > 1 else 7)
    os.environ.setdefault("BENCH_DATABASE_URL", "sqlite://")
    from bench.services import EMPTY_SERVICE, make_app, request
    from fhir_pain.services import SERVICE_IDS

    client = make_app().test_client()
    raw, url = orjson.dumps(request("order-sign")), f"/cds-services/{SERVICE_IDS['order-sign']}"

    def sign() -> None:
        assert client.post(url, data=raw, content_type="application/json").status_code == 200

    def trivial() -> None:
        assert client.get("/bench/trivial").status_code == 200

    def floor() -> None:     # the same request, no clinical work (see bench.services)
        assert client.post(f"/cds-services/{EMPTY_SERVICE}", data=raw, content_type="application/json"
                           ).status_code == 200

    out = {}
    for name, call in (("order-sign", sign), ("floor", floor), ("trivial", trivial)):
        for _ in range(30):
            call()
        per_call = []
        for _ in range(repeats):
            t0 = time.process_time()
            for _ in range(calls):
                call()
            per_call.append((time.process_time() - t0) / calls * 1000)
        out[name] = (min(per_call), statistics.median(per_call))
        print(f"{name:<11} CPU per call: min {out[name][0]:.3f} ms, median {out[name][1]:.3f} ms "
              f"({repeats} x {calls} calls through Flask in process)")
    return out


if __name__ == "__main__":
    main()
