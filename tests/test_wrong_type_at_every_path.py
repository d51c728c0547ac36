"""Every path of realistic requests, one at a time, given each JSON type it should not have: never a 5xx.

The random mutator (test_hostile_input.py) samples; this walks. It found what sampling missed: a coding whose
``system`` was a list (unhashable in a set look-up), a ``coding`` or ``doseAndRate`` that was a number (not
iterable), in the opioid classifier, the condition lists and the dose reader; each one a 500 on order-sign.
The requests are golden scenarios chosen to reach every reader: PGx, pain, conditions, medications and their
history, procedures, safety observations, urine drug tests, and draft orders.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import orjson
import pytest

from fhir_pain.app import create_app
from fhir_pain.services import SERVICE_IDS

GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = ("sign-tramadol-cyp2d6-um-80mme-alprazolam", "sign-oxycodone-prn-unreadable-with-alprazolam",
             "view-sickle-cell-excluded", "sandbox-order-select-codeine-pm", "sandbox-patient-view",
             "sign-carbamazepine-hla-b-1502-positive", "sign-codeine-breastfeeding", "sign-codeine-post-tonsillectomy-15y",
             "select-tramadol-osa-14y", "sign-contained-medication-pm", "sign-gabapentin-renewal-non-response",
             "sign-amitriptyline-cyp2d6-pm-neuropathic-low-dose", "sign-codeine-ambiguous-duplication",
             "view-pain-profile-nociplastic-depression-anxiety", "view-long-term-oxycodone-no-drug-test",
             "view-opioid-use-disorder-fentanyl-patch", "sign-oxycodone-acute-14-days", "spec-order-sign-r4",
             "view-pgx-summary-three-genes", "select-amitriptyline-phq9-item9")
WRONG = (5, True, "x", [], {}, [5], [{}], {"a": [1]})


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


def _with(body: dict, path: tuple, wrong) -> dict:
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = wrong
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_wrong_json_type_at_any_path_never_gets_a_5xx(scenario):
    body = json.loads((GOLDEN / scenario / "request.json").read_text())
    app = create_app({"AUTH": "off", "DATABASE_URL": "sqlite://", "NOW": "2026-05-01T12:00:00Z"})
    client = app.test_client()
    url = f"/cds-services/{SERVICE_IDS[body['hook']]}"
    failures, calls = [], 0
    logging.getLogger("cds_hooks.error").disabled = True   # a 500's traceback is reported below, once
    try:
        for path in _paths(body):
            if not path:
                continue
            for wrong in WRONG:
                response = client.post(url, data=orjson.dumps(_with(body, path, wrong)),
                                       content_type="application/json")
                calls += 1
                if response.status_code >= 500:
                    failures.append(f"{'.'.join(map(str, path))} = {wrong!r}")
    finally:
        logging.getLogger("cds_hooks.error").disabled = False
    assert calls > 500
    assert not failures, f"{len(failures)} of {calls} answered 5xx:\n" + "\n".join(failures[:40])
