"""The patient-view summary cards open the dashboard (a SMART link) when its launch URL is configured, and
discovery says how to register the app; without the setting nothing changes."""
from __future__ import annotations

import pytest

from fhir_pain.app import create_app
from fhir_pain.demo import catalog
from fhir_pain.demo.hook_requests import build_request
from fhir_pain.demo.runner import discover

LAUNCH = "https://cds.example.org/dashboard/launch"


def _cards(config: dict, scenario: str) -> tuple[list[dict], list[dict]]:
    app = create_app({"AUTH": "off", "DATABASE_URL": "sqlite://", "VALIDATE_RESPONSES": True, **config})
    client = app.test_client()
    services = discover(client)
    built = build_request(catalog.scenario(scenario), services)
    response = client.post(f"/cds-services/{built.service_id}", json=built.body)
    assert response.status_code == 200
    return response.get_json()["cards"], services


def _patient_view_scenario() -> str:
    return next(s.name for s in catalog.scenarios() if s.hook == "patient-view")


def test_summary_cards_carry_a_smart_link_to_the_configured_launch_url():
    cards, services = _cards({"DASHBOARD_LAUNCH_URL": LAUNCH}, _patient_view_scenario())
    linked = [c for c in cards if any(link["type"] == "smart" for link in c.get("links", ()))]
    rules = {f["rule"] for c in linked for f in c["extension"]["io.fhir-pain.findings"]}
    assert linked and rules & {"fhir-pain/pgx-summary", "fhir-pain/pain-profile"}
    assert all(link["url"] == LAUNCH for c in linked for link in c["links"] if link["type"] == "smart")
    [view] = [s for s in services if s["hook"] == "patient-view"]
    assert "https://cds.example.org/dashboard/callback" in view["usageRequirements"]
    assert "patient/Observation.rs" in view["usageRequirements"]


def test_no_launch_url_no_link():
    cards, services = _cards({}, _patient_view_scenario())
    assert not [link for c in cards for link in c.get("links", ()) if link["type"] == "smart"]
    assert all("SMART" not in s["usageRequirements"] for s in services)


def test_order_cards_never_carry_the_dashboard_link():
    order = next(s.name for s in catalog.scenarios() if s.hook == "order-select")
    cards, _ = _cards({"DASHBOARD_LAUNCH_URL": LAUNCH}, order)
    assert cards and not [link for c in cards for link in c.get("links", ()) if link["type"] == "smart"]


def test_launch_url_must_be_absolute():
    with pytest.raises(ValueError, match="DASHBOARD_LAUNCH_URL"):
        create_app({"DATABASE_URL": "sqlite://", "DASHBOARD_LAUNCH_URL": "/dashboard/launch"})
