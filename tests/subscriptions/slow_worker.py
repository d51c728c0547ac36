"""``fhir-pain worker`` whose evaluations pause SLOW_S seconds between reading a patient and writing its
DetectedIssues, so that a test can kill it in the middle of a job: ``slow_worker.py SLOW_S worker ARGS...``.
The rules are the real ones; only the pause is added (through the Runtime's ``evaluate``, the interface the
queue's jobs are run with)."""
from __future__ import annotations

import sys
import time

from fhir_pain import cli
from fhir_pain.evaluate import evaluate
from fhir_pain.population import worker

pause = float(sys.argv[1])
build = worker.build


def slow_evaluate(data, hook):
    time.sleep(pause)
    return evaluate(data, hook)


def slow_build(args):
    app, runtime = build(args)
    runtime.evaluate = slow_evaluate
    return app, runtime


worker.build = slow_build
sys.exit(cli.main(sys.argv[2:]))
