"""The server against its own OpenAPI document, in-process with schemathesis: every operation, schema-valid
and schema-invalid inputs (the coverage phase adds boundary cases); no 5xx, documented status codes and content
types, responses that match their schemas, invalid data refused and valid data accepted.
Bounded (5 generated examples per operation, derandomized): a few seconds."""
from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from schemathesis.config._checks import PositiveDataAcceptanceConfig
from hypothesis import HealthCheck, settings

from cds_hooks import Card, CDSResponse, Service, Source


def handler(request):
    return CDSResponse(cards=[Card(summary=f"{len(request.missing)} prefetch keys missing", indicator="info",
                                   source=Source(label="contract test"))])


def build_app():
    from fhir_pain.app import create_app
    # built at collection (schemathesis parametrizes from the live document); its store is a temporary file
    db = Path(tempfile.mkdtemp(prefix="fhir-pain-contract-")) / "db.sqlite3"
    app = create_app({"AUTH": "off", "REGISTER_CLINICAL_SERVICES": False, "VALIDATE_RESPONSES": True,
                      "DATABASE_URL": f"sqlite:///{db}"})
    registry = app.extensions["cds_hooks"].registry
    registry.register(Service(id="pv", hook="patient-view", title="Patient view", description="degrades",
                              handler=handler, prefetch={"patient": "Patient/{{context.patientId}}"}))
    registry.register(Service(id="sign", hook="order-sign", title="Order sign", description="needs data",
                              handler=handler, prefetch={"patient": "Patient/{{context.patientId}}"},
                              required_prefetch=frozenset({"patient"})))
    registry.register(Service(id="os", hook="order-select", title="Order select", description="no prefetch",
                              handler=handler))
    return app


schema = schemathesis.openapi.from_wsgi("/openapi.json", build_app())
# 412 is the spec's own answer to schema-valid calls whose required prefetch cannot be had (2.0.1 §Prefetch)
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
    expected_statuses=["2XX", "401", "404", "412"])


@schema.parametrize()
@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    response = case.call_and_validate()
    assert response.status_code < 500
