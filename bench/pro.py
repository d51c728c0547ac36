"""Benchmark of the patient-reported-outcome extraction: one realistic QuestionnaireResponse per shipped form ->
its transaction Bundle (fhir_pain.pro.extract), and the same PHQ-9 through POST /pro/QuestionnaireResponse/$extract
(Flask's test client: routing, body reading, JSON both ways, no network).

    .venv/bin/python -m bench.pro [ROUNDS]
"""
from __future__ import annotations

import statistics
import sys
import time

import orjson

from fhir_pain.pro.extract import extract
from fhir_pain.pro.forms import forms

AUTHORED = "2026-11-30T09:15:00+01:00"


def response(key: str) -> dict:
    form = forms()[key]
    items = []
    for i, q in enumerate(form.questions):
        if q.type == "choice":
            coding = list(q.options.values())[i % len(q.options)][1]
            answer = {"valueCoding": dict(coding)}
        elif q.type == "boolean":
            answer = {"valueBoolean": bool(i % 2)}
        else:
            answer = {"valueInteger": int(q.lo or 0) + i % int((q.hi or 1) - (q.lo or 0) + 1)}
        items.append({"linkId": q.link_id, "text": q.text, "answer": [answer]})
    return {"resourceType": "QuestionnaireResponse", "questionnaire": f"{form.url}|{form.version}",
            "status": "completed", "subject": {"reference": "Patient/p1"}, "authored": AUTHORED, "item": items}


def _time(fn, rounds: int) -> tuple[float, float]:
    for _ in range(min(100, rounds)):
        fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return statistics.median(times) / 1e6, times[max(0, int(len(times) * 0.99) - 1)] / 1e6


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    rounds = int(argv[0]) if argv else 2000
    out = {}
    print("patient-reported outcomes: QuestionnaireResponse -> transaction Bundle of scored Observations")
    for key in forms():
        qr = response(key)
        median, p99 = _time(lambda: extract(qr), rounds)
        out[key] = median
        print(f"  extract {key:5s} ({len(qr['item']):2d} items): median {median:.3f} ms, p99 {p99:.3f} ms")
    from fhir_pain.app import create_app
    app = create_app({"AUTH": "off", "DATABASE_URL": "sqlite://", "REGISTER_CLINICAL_SERVICES": False})
    client = app.test_client()
    body = orjson.dumps(response("phq9"))

    def call():
        r = client.post("/pro/QuestionnaireResponse/$extract", data=body, content_type="application/fhir+json")
        assert r.status_code == 200
    median, p99 = _time(call, rounds)
    out["http_phq9"] = median
    print(f"  POST $extract phq9 (test client): median {median:.3f} ms, p99 {p99:.3f} ms "
          f"({rounds} rounds; target: median < 5 ms)")
    return out


if __name__ == "__main__":
    main()
