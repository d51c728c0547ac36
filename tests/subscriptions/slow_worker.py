"""``fhir-pain worker`` whose evaluations pause SLOW_S seconds between reading a patient and writing its
DetectedIssues, so that a test can kill it in the middle of a job: ``slow_worker.py SLOW_S worker ARGS...``.
The rules are the real ones; only the pause is added (through the Runtime's ``evaluate``, the interface the
queue's jobs are run with). ``SLOW_WORKER_WRITE_BATCH``: DetectedIssues per transaction Bundle of a batch job (so
that a batch marks patients done as it goes, before a kill)."""
from __future__ import annotations

import os
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
    if os.environ.get("SLOW_WORKER_WRITE_BATCH"):
        runtime.write_batch = int(os.environ["SLOW_WORKER_WRITE_BATCH"])
    return app, runtime


worker.build = slow_build
sys.exit(cli.main(sys.argv[2:]))
