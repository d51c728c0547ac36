"""fhir_pain.app.create_app and fhir_pain.config: defaults, environment overrides, wiring, no shared state."""
from __future__ import annotations

import importlib
import logging
import sys
import types

import pytest

from cds_hooks import Service, schemas
from fhir_pain import config as config_mod
from fhir_pain.app import create_app, sandbox_issuer


def test_create_app_with_defaults_serves_discovery(monkeypatch, db_url):
    for name in [n for n in __import__("os").environ if n.startswith("FHIR_PAIN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FHIR_PAIN_DATABASE_URL", db_url)  # the default would write into the instance folder
    app = create_app()
    assert app.config["AUTH"] == "required" and app.config["TRUST_SANDBOX_ISSUER"] is False
    response = app.test_client().get("/cds-services")
    assert response.status_code == 200
    body = response.get_json()
    assert schemas.first_error("discovery", body) is None
    # with fhir_pain.services present, the three fixed service ids are there; discovery is public
    if importlib.util.find_spec("fhir_pain.services"):
        assert {"pain-pgx-patient-view", "pain-pgx-order-select", "pain-pgx-order-sign"} <= {
            s["id"] for s in body["services"]}
    # ...but a service call is not
    assert app.test_client().post("/cds-services/pain-pgx-patient-view", json={}).status_code == 401
    app.extensions["fhir_pain.store"].dispose()


def test_default_database_is_a_sqlite_file_in_the_instance_folder(tmp_path):
    assert config_mod.default_database_url(str(tmp_path)) == f"sqlite:///{tmp_path}/fhir-pain.sqlite3"
    assert config_mod.load({}, environ={})["DATABASE_URL"] is None


def test_environment_overrides_are_typed():
    env = {"FHIR_PAIN_AUTH": "off", "FHIR_PAIN_TRUST_SANDBOX_ISSUER": "yes",
           "FHIR_PAIN_FHIR_SERVER_ALLOWLIST": "https://a.example/fhir, https://b.example/r4",
           "FHIR_PAIN_TRUSTED_ISSUERS": '[{"iss": "https://ehr.example", "jku": "https://ehr.example/jwks"}]',
           "FHIR_PAIN_FHIR_DEADLINE_S": "1.5", "FHIR_PAIN_MAX_CONTENT_LENGTH": "1000",
           "FHIR_PAIN_PUBLIC_BASE_URL": "https://cds.example.org", "FHIR_PAIN_FHIR_TIMEOUT_S": "[0.5, 1.5]",
           "FHIR_PAIN_REGISTER_CLINICAL_SERVICES": "0", "FHIR_PAIN_FHIR_MAX_RESPONSE_BYTES": "4194304"}
    cfg = config_mod.load({}, environ=env)
    assert cfg["AUTH"] == "off" and cfg["TRUST_SANDBOX_ISSUER"] is True
    assert cfg["FHIR_SERVER_ALLOWLIST"] == ["https://a.example/fhir", "https://b.example/r4"]
    assert cfg["TRUSTED_ISSUERS"][0]["iss"] == "https://ehr.example"
    assert cfg["FHIR_DEADLINE_S"] == 1.5 and cfg["MAX_CONTENT_LENGTH"] == 1000
    assert cfg["PUBLIC_BASE_URL"] == "https://cds.example.org" and cfg["REGISTER_CLINICAL_SERVICES"] is False
    assert config_mod.timeout_pair(cfg["FHIR_TIMEOUT_S"]) == (0.5, 1.5)
    assert cfg["FHIR_MAX_RESPONSE_BYTES"] == 4 * 1024 * 1024
    # the dict given to create_app wins over the environment
    assert config_mod.load({"AUTH": "required"}, environ=env)["AUTH"] == "required"


@pytest.mark.parametrize("env,message", [
    ({"FHIR_PAIN_AUTH": "maybe"}, "AUTH"),
    ({"FHIR_PAIN_TRUST_SANDBOX_ISSUER": "perhaps"}, "boolean"),
    ({"FHIR_PAIN_FHIR_DEADLINE_S": "soon"}, "number"),
    ({"FHIR_PAIN_TRUSTED_ISSUERS": "[{"}, "JSON"),
    ({"FHIR_PAIN_FHIR_SERVER_ALLOWLIST": "*"}, "'\\*'"),
    ({"FHIR_PAIN_FHIR_TIMEOUT_S": "[1]"}, "FHIR_TIMEOUT_S"),
    ({"FHIR_PAIN_FHIR_MAX_RESPONSE_BYTES": "0"}, "FHIR_MAX_RESPONSE_BYTES"),
    ({"FHIR_PAIN_FHIR_MAX_RESPONSE_BYTES": "16.5"}, "FHIR_MAX_RESPONSE_BYTES"),
])
def test_bad_configuration_fails_at_startup(env, message):
    with pytest.raises(ValueError, match=message):
        config_mod.load({}, environ=env)


def test_trusted_issuer_without_keys_fails_at_startup(app_factory):
    with pytest.raises(ValueError, match="jku' or 'jwks"):
        app_factory(AUTH="required", TRUSTED_ISSUERS=[{"iss": "https://ehr.example"}])


def test_every_app_has_its_own_registry_and_store(app_factory, tmp_path):
    a = app_factory()
    b = app_factory(DATABASE_URL=f"sqlite:///{tmp_path / 'other.sqlite3'}")
    a.extensions["cds_hooks"].registry.register(
        Service(id="only-a", hook="patient-view", title="t", description="d", handler=lambda r: []))
    assert [s["id"] for s in b.test_client().get("/cds-services").get_json()["services"]] == []
    assert a.extensions["fhir_pain.store"] is not b.extensions["fhir_pain.store"]


def test_auth_off_and_sandbox_trust_are_logged_loudly(app_factory, caplog):
    with caplog.at_level(logging.WARNING, logger="fhir_pain.app"):
        app_factory(AUTH="off")
        app_factory(AUTH="required", TRUST_SANDBOX_ISSUER=True)
    text = caplog.text
    assert "AUTH is off" in text and "anyone can sign as it" in text


def test_sandbox_issuer_ships_its_public_key_only():
    issuer = sandbox_issuer()
    assert issuer["iss"] == "https://sandbox.cds-hooks.org"
    [key] = issuer["jwks"]["keys"]
    assert key["kid"] == "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f" and "d" not in key  # no private part


def test_clinical_services_are_registered_when_present(app_factory, monkeypatch):
    fake = types.ModuleType("fhir_pain.services")
    calls = []
    fake.register_all = lambda registry, cfg: calls.append((registry, cfg["AUTH"]))
    monkeypatch.setitem(sys.modules, "fhir_pain.services", fake)
    app = app_factory(REGISTER_CLINICAL_SERVICES=True)
    assert calls == [(app.extensions["cds_hooks"].registry, "off")]
    calls.clear()
    app_factory(REGISTER_CLINICAL_SERVICES=False)
    assert calls == []


def test_only_the_services_module_itself_may_be_missing(app_factory, monkeypatch):
    real_import = importlib.import_module

    def missing_services(name, *args):
        if name == "fhir_pain.services":
            raise ModuleNotFoundError("No module named 'fhir_pain.services'", name="fhir_pain.services")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", missing_services)
    app = app_factory(REGISTER_CLINICAL_SERVICES=True)
    assert len(app.extensions["cds_hooks"].registry) == 0

    def broken_dependency(name, *args):
        if name == "fhir_pain.services":
            raise ModuleNotFoundError("No module named 'numpy'", name="numpy")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", broken_dependency)
    with pytest.raises(ModuleNotFoundError, match="numpy"):
        app_factory(REGISTER_CLINICAL_SERVICES=True)
