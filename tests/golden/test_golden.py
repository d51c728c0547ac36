"""Golden scenarios: tests/golden/<scenario>/request.json -> the full response in expected.json.

Each scenario is checked three ways:
1. the response passes the CDS Hooks response schema, the card invariants, the findings contract, and every
   suggested resource is valid R4 (fhir_pain.fhir_models.check_cds_response);
2. the cards match the hand-written about.json (order, indicator, rules, created resource types, and whether a
   delete-only suggestion removes the draft), which the update step never rewrites;
3. the whole response equals expected.json (card/suggestion uuids normalised).

Updating after an intended change (the reviewed update step):
    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/golden      # rewrites expected.json only
    git diff tests/golden                                         # read every changed card before committing
New scenarios: add them to tests/golden/build_requests.py, run it, then the update step above.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fhir_pain.fhir_models import check_cds_response, validate
from fhir_pain.services import SERVICE_IDS

HERE = Path(__file__).resolve().parent
SCENARIOS = sorted(p.name for p in HERE.iterdir() if (p / "request.json").is_file())
NOW = "2026-05-01T12:00:00Z"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def normalise(value):
    if isinstance(value, dict):
        return {k: ("<uuid>" if k == "uuid" else normalise(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def _removes_draft(suggestion: dict) -> bool:
    """A delete-only suggestion: it removes a draft and puts nothing in its place (never marked recommended)."""
    actions = suggestion["actions"]
    if not actions or any(a["type"] != "delete" for a in actions):
        return False
    assert not suggestion.get("isRecommended"), suggestion["label"]
    return True


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fhir_pain.app import create_app
    db = tmp_path_factory.mktemp("golden") / "golden.sqlite3"
    app = create_app({"AUTH": "off", "DATABASE_URL": f"sqlite:///{db}", "NOW": NOW, "VALIDATE_RESPONSES": True,
                      "FHIR_SERVER_ALLOWLIST": []})
    yield app.test_client()
    app.extensions["fhir_pain.store"].dispose()


def test_there_are_enough_scenarios():
    assert len(SCENARIOS) >= 25


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden(name, client):
    folder = HERE / name
    request = json.loads((folder / "request.json").read_text())
    about = json.loads((folder / "about.json").read_text())
    response = client.post(f"/cds-services/{SERVICE_IDS[request['hook']]}", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()

    assert check_cds_response(body) == []

    seen = [{"indicator": c["indicator"],
             "rules": sorted(f["rule"] for f in c["extension"]["io.fhir-pain.findings"]),
             "creates": sorted({a["resource"]["resourceType"] for s in c.get("suggestions", ())
                                for a in s["actions"] if a["type"] == "create"}),
             **({"removesDraft": True} if any(_removes_draft(s) for s in c.get("suggestions", ())) else {})}
            for c in body["cards"]]
    assert seen == about["cards"], about["description"]

    expected_path = folder / "expected.json"
    actual = normalise(body)
    if UPDATE:
        expected_path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
    assert expected_path.is_file(), f"no expected.json: run the update step (see {__file__})"
    assert actual == json.loads(expected_path.read_text())


@pytest.mark.parametrize("name", [n for n in SCENARIOS if not n.startswith(("sandbox-", "spec-"))])
def test_scenario_fixtures_are_valid_r4(name):
    """Our own fixtures are valid R4 (the sandbox and spec requests are real-world shapes and are not)."""
    request = json.loads((HERE / name / "request.json").read_text())
    resources = [e["resource"] for e in request["context"].get("draftOrders", {}).get("entry", ())]
    for value in (request.get("prefetch") or {}).values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            validate(value)
            resources += [e["resource"] for e in value.get("entry", ())]
        elif isinstance(value, dict):
            resources.append(value)
    for resource in resources:
        validate(resource)
