"""Prefetch templates (2.0.1 §Prefetch tokens) and the service registry's discovery entries."""
from __future__ import annotations

import pytest

from cds_hooks import Service, ServiceRegistry
from cds_hooks.errors import NotFound
from cds_hooks.templates import TemplateError, UnfillableToken, check_template, render


def noop(_request):
    return []


@pytest.mark.parametrize("name", ["spec201-L0417-example-prefetch-templates.json",
                                  "spec201-L0294-prefetch-tokens-identifying-the-user.json",
                                  "spec201-L0302-prefetch-tokens-identifying-the-user.json"])
def test_spec_templates_are_accepted(fixture_json, name):
    for template in fixture_json(f"cds-hooks/{name}")["prefetch"].values():
        check_template(template)


@pytest.mark.parametrize("template", [
    "Medication/{{context.medication.id}}",                          # spec: explicitly invalid
    "MedicationRequest/{{context.draftOrders.entry.resource.id}}",    # not a root-level primitive
    "Observation?date=gt{{today() - 90 days}}",                      # 3.0-ballot FHIRPath
    "Practitioner/{{userPracticionerId}}",                            # the misspelling that does not exist
    "Patient/{{context.patientId}",                                  # unbalanced
    "https://evil.example/Patient/{{context.patientId}}",            # must be relative
    "",
])
def test_invalid_templates_are_refused_at_registration(template):
    with pytest.raises(TemplateError):
        check_template(template)
    with pytest.raises(ValueError):
        Service(id="s", hook="patient-view", title="t", description="d", handler=noop,
                prefetch={"k": template})


def test_render_context_and_user_tokens(fixture_json):
    context = fixture_json("cds-hooks/patient-view-L0038-examples.json")["context"]  # Practitioner/abc
    assert render("Patient/{{context.patientId}}", context) == "Patient/1288992"
    assert render("Encounter/{{ context.encounterId }}", context) == "Encounter/456"
    assert render("Practitioner/{{userPractitionerId}}", context) == "Practitioner/abc"
    assert render("{{context.userId}}", context) == "Practitioner/abc"  # spec: the user as a relative reference
    with pytest.raises(UnfillableToken):
        render("PractitionerRole?_id={{userPractitionerRoleId}}", context)  # the user is a Practitioner
    role_context = fixture_json("cds-hooks/patient-view-L0031-examples.json")["context"]  # PractitionerRole/123
    assert render("PractitionerRole?_id={{userPractitionerRoleId}}", role_context) == "PractitionerRole?_id=123"
    with pytest.raises(UnfillableToken):
        render("Encounter/{{context.encounterId}}", role_context)  # optional field absent in this call


@pytest.mark.parametrize("patient_id", ["1&_id=2", "../Practitioner/x", "..", "a b", "x" * 65, "", True,
                                        {"id": "1"}])
def test_unsafe_values_are_never_substituted(patient_id):
    with pytest.raises(UnfillableToken):
        render("Observation?patient={{context.patientId}}", {"patientId": patient_id})


def test_registry_discovery_matches_the_spec_example(fixture_json):
    spec = fixture_json("cds-hooks/spec201-L0130-discovery-example.json")["services"]
    registry = ServiceRegistry()
    for entry in spec:
        registry.register(Service(id=entry["id"], hook=entry["hook"], title=entry["title"],
                                  description=entry["description"], handler=noop,
                                  prefetch=entry.get("prefetch", {}),
                                  usage_requirements=entry.get("usageRequirements")))
    discovered = registry.discovery()["services"]
    assert [sorted(d.items()) for d in discovered] == [sorted(e.items()) for e in spec]
    assert len(registry) == 3 and "order-echo" in registry
    assert registry.get("order-echo").hook == "order-select"
    with pytest.raises(NotFound):
        registry.get("nope")


def test_discovery_extension_example(fixture_json):
    entry = fixture_json("cds-hooks/spec201-L1136-extensions.json")["services"][0]
    service = Service(id=entry["id"], hook=entry["hook"], title=entry["title"], description=entry["description"],
                      handler=noop, prefetch=entry["prefetch"], extension=entry["extension"])
    assert service.discovery_entry() == entry


def test_registry_rejects_duplicates_and_bad_declarations():
    registry = ServiceRegistry()
    registry.register(Service(id="a", hook="patient-view", title="t", description="d", handler=noop))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Service(id="a", hook="order-sign", title="t", description="d", handler=noop))
    for bad in ("a/b", "", "feedback", "a b", "é"):
        with pytest.raises(ValueError, match="path segment"):
            Service(id=bad, hook="patient-view", title="t", description="d", handler=noop)
    with pytest.raises(ValueError, match="description"):
        Service(id="b", hook="patient-view", title="t", description="", handler=noop)
    with pytest.raises(ValueError, match="without a template"):
        Service(id="b", hook="patient-view", title="t", description="d", handler=noop,
                required_prefetch=frozenset({"patient"}))
