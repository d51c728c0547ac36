"""The card model cannot emit an invalid card (CDS Hooks 2.0.1 §CDS Service Response)."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import MappingProxyType

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_hooks import (Action, ActionType, Card, CDSResponse, Coding, Indicator, Link, LinkType, SelectionBehavior,
                       Source, Suggestion)
from cds_hooks import schemas
from cds_hooks.cards import prune

SRC = Source(label="fhir-pain")
MR_DRAFT = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
            "subject": {"reference": "Patient/1288992"},
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                      "code": "161", "display": "acetaminophen"}]}}


def valid(response: dict) -> bool:
    return schemas.first_error("response", response) is None


def test_minimal_card_has_uuid_and_only_set_fields():
    card = Card(summary="Codeine: avoid (CYP2D6 poor metabolizer)", indicator="critical", source=SRC)
    d = card.to_dict()
    assert set(d) == {"uuid", "summary", "indicator", "source"}
    assert uuid.UUID(d["uuid"]).version == 4
    assert d["indicator"] == "critical" and d["source"] == {"label": "fhir-pain"}
    assert valid({"cards": [d]})


def test_each_card_and_suggestion_gets_its_own_uuid():
    a, b = (Card(summary="s", indicator=Indicator.INFO, source=SRC) for _ in range(2))
    assert a.uuid != b.uuid
    s1, s2 = Suggestion(label="x"), Suggestion(label="y")
    assert s1.uuid != s2.uuid


def test_card_uuids_from_random_bits_are_canonical_version_4_rfc_4122_uuids():
    ids = [Card(summary="s", indicator="info", source=SRC).uuid for _ in range(2000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(str(u) == i and u.version == 4 and u.variant == uuid.RFC_4122 for u, i in zip(parsed, ids))
    assert len(set(ids)) == len(ids)


def test_summary_limits():
    Card(summary="x" * 140, indicator="info", source=SRC)
    with pytest.raises(ValueError, match="140"):
        Card(summary="x" * 141, indicator="info", source=SRC)
    for empty in ("", "   ", None):
        with pytest.raises(ValueError, match="summary"):
            Card(summary=empty, indicator="info", source=SRC)


def test_indicator_is_an_enum():
    with pytest.raises(ValueError, match="info, warning, critical"):
        Card(summary="s", indicator="hard-stop", source=SRC)  # pre-1.0 vocabulary (cds-service-example-python)
    assert Card(summary="s", indicator="warning", source=SRC).indicator is Indicator.WARNING


def test_source_needs_label_and_absolute_urls():
    with pytest.raises(ValueError, match="label"):
        Source(label="")
    with pytest.raises(ValueError, match="absolute"):
        Source(label="x", url="/relative")
    with pytest.raises(ValueError, match="absolute"):
        Source(label="x", icon="icon.png")


def test_spec_source_example_round_trips(fixture_json):
    spec = fixture_json("cds-hooks/spec201-L0592-source.json")["source"]
    source = Source(label=spec["label"], url=spec["url"], icon=spec["icon"], topic=Coding(**spec["topic"]))
    assert source.to_dict() == spec


def test_suggestions_require_selection_behavior():
    with pytest.raises(ValueError, match="selectionBehavior"):
        Card(summary="s", indicator="warning", source=SRC, suggestions=[Suggestion(label="x")])
    card = Card(summary="s", indicator="warning", source=SRC, suggestions=[Suggestion(label="x")],
                selection_behavior="at-most-one")
    assert card.to_dict()["selectionBehavior"] == "at-most-one"


def test_selection_behavior_without_suggestions_is_not_emitted():
    card = Card(summary="s", indicator="info", source=SRC, selection_behavior=SelectionBehavior.ANY)
    assert "selectionBehavior" not in card.to_dict()


def test_at_most_one_allows_one_recommended_suggestion():  # cds-resp-1
    two = [Suggestion(label="a", is_recommended=True), Suggestion(label="b", is_recommended=True)]
    with pytest.raises(ValueError, match="at most one recommended"):
        Card(summary="s", indicator="warning", source=SRC, suggestions=two, selection_behavior="at-most-one")
    Card(summary="s", indicator="warning", source=SRC, suggestions=two, selection_behavior="any")


def test_override_reasons_need_display(fixture_json):
    with pytest.raises(ValueError, match="display"):
        Card(summary="s", indicator="warning", source=SRC,
             override_reasons=[Coding(code="c", system="http://example.org/override")])
    spec = fixture_json("cds-hooks/spec201-L0676-reasons-for-rejecting-a-card.json")["overrideReasons"]
    card = Card(summary="s", indicator="warning", source=SRC, override_reasons=[Coding(**c) for c in spec])
    assert card.to_dict()["overrideReasons"] == spec


def test_delete_action_needs_resource_id_and_no_resource(fixture_json):  # cds-resp-2
    with pytest.raises(ValueError, match="resourceId"):
        Action(type="delete", description="Remove the draft")
    with pytest.raises(ValueError, match="not resource"):
        Action(type="delete", description="x", resource=MR_DRAFT, resource_id="MedicationRequest/1")
    spec = fixture_json("cds-hooks/spec201-L0661-action.json")
    assert Action(type=ActionType.DELETE, description=spec["description"],
                  resource_id=spec["resourceId"]).to_dict() == spec


def test_create_and_update_need_the_resource():
    for kind in ("create", "update"):
        with pytest.raises(ValueError, match="needs the resource"):
            Action(type=kind, description="x")
    with pytest.raises(ValueError, match="resourceType"):
        Action(type="create", description="x", resource={"status": "draft"})
    with pytest.raises(ValueError, match="description"):  # cds-resp-5
        Action(type="create", description="", resource=MR_DRAFT)
    with pytest.raises(ValueError, match="create, update, delete"):
        Action(type="replace", description="x", resource=MR_DRAFT)


def test_app_context_only_on_smart_links():  # cds-resp-3
    with pytest.raises(ValueError, match="smart"):
        Link(label="x", url="https://example.org", type="absolute", app_context="{}")
    link = Link(label="app", url="https://smart.example.com/launch", type=LinkType.SMART, app_context='{"a":1}',
                autolaunchable=False)
    assert link.to_dict() == {"label": "app", "url": "https://smart.example.com/launch", "type": "smart",
                              "appContext": '{"a":1}', "autolaunchable": False}


def test_spec_response_example_rebuilt_with_the_model(fixture_json):
    spec = fixture_json("cds-hooks/spec201-L0735-example.json")["cards"]
    first = spec[0]
    card = Card(summary=first["summary"], indicator=first["indicator"], detail=first["detail"],
                source=Source(**first["source"]), uuid=first["uuid"],
                links=[Link(label=li["label"], url=li["url"], type=li["type"], app_context=li.get("appContext"))
                       for li in first["links"]])
    assert card.to_dict() == first
    second = spec[1]
    card2 = Card(summary=second["summary"], indicator=second["indicator"], source=Source(**second["source"]),
                 override_reasons=[Coding(**c) for c in second["overrideReasons"]])
    assert {k: v for k, v in card2.to_dict().items() if k != "uuid"} == second  # we add the uuid the spec omits
    assert valid({"cards": [card.to_dict(), card2.to_dict()]})


def test_spec_example_without_indicator_is_rejected_by_the_response_schema(fixture_json):
    # the spec's own L0793 example omits the REQUIRED indicator: our schema (what we emit) is stricter
    assert not valid(fixture_json("cds-hooks/spec201-L0793-example.json"))


def test_empty_values_are_omitted_at_any_depth():
    resource = {**MR_DRAFT, "note": [], "reasonCode": [{"text": ""}], "dosageInstruction": None}
    card = Card(summary="s", indicator="info", source=SRC, detail="",
                suggestions=[Suggestion(label="Order acetaminophen",
                                        actions=[Action(type="create", description="Order", resource=resource)])],
                selection_behavior="any", extension={"io.fhir-pain.findings": [], "keep": False, "x": {}})
    d = card.to_dict()
    assert "detail" not in d
    assert d["suggestions"][0]["actions"][0]["resource"] == MR_DRAFT
    assert d["extension"] == {"keep": False}
    assert valid({"cards": [d]})


def _prune_as_specified(value):
    """prune()'s contract written the plain way (as it was before it was made fast)."""
    if isinstance(value, Mapping):
        out = {k: p for k, v in value.items() if (p := _prune_as_specified(v)) is not None}
        return out or None
    if isinstance(value, (list, tuple)):
        items = [p for v in value if (p := _prune_as_specified(v)) is not None]
        return items or None
    if isinstance(value, str) and value == "":
        return None
    return value


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.sampled_from(["", "x", " "])
    | st.sampled_from(list(Indicator)),
    lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(st.sampled_from(["a", "b", "c", "resourceType"]), inner, max_size=4)
    | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2).map(MappingProxyType),
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(value=_json)
def test_prune_keeps_exactly_what_its_contract_keeps(value):
    assert prune(value) == _prune_as_specified(value)
    assert type(prune(value)) is type(_prune_as_specified(value))


def test_cds_response_shapes(fixture_json):
    assert CDSResponse().to_dict() == fixture_json("cds-hooks/spec201-L0553-http-response.json") == {"cards": []}
    assert CDSResponse.of(None).to_dict() == {"cards": []}
    card = Card(summary="s", indicator="info", source=SRC)
    assert CDSResponse.of([card]).to_dict() == {"cards": [card.to_dict()]}
    with_system = CDSResponse(system_actions=[Action(type="update", description="record the score",
                                                     resource={"resourceType": "ServiceRequest", "id": "1"})])
    assert with_system.to_dict()["systemActions"][0]["type"] == "update"
    assert valid(with_system.to_dict())
    with pytest.raises(ValueError):
        CDSResponse(cards=[{"summary": "a dict is not a Card"}])


def test_models_are_immutable():
    card = Card(summary="s", indicator="info", source=SRC)
    with pytest.raises(Exception):
        card.summary = "x" * 500  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(summary=st.text(min_size=0, max_size=200), indicator=st.sampled_from(["info", "warning", "critical", "x"]),
       n_suggestions=st.integers(0, 3), behavior=st.sampled_from([None, "any", "at-most-one"]),
       recommended=st.lists(st.booleans(), min_size=3, max_size=3))
def test_whatever_is_constructed_serialises_valid(summary, indicator, n_suggestions, behavior, recommended):
    try:
        card = Card(summary=summary, indicator=indicator, source=SRC, selection_behavior=behavior,
                    suggestions=[Suggestion(label=f"s{i}", is_recommended=recommended[i])
                                 for i in range(n_suggestions)])
    except ValueError:
        return
    assert valid({"cards": [card.to_dict()]})


def _fields_as_specified(**fields):
    """The to_dict() contract written the plain way: every field in wire order, unset and empty ones left out."""
    return {k: v for k, v in fields.items() if v is not None and v != "" and v != []}


def _card_as_specified(card: Card) -> dict:
    coding = lambda c: _fields_as_specified(system=c.system, code=c.code, display=c.display)  # noqa: E731
    action = lambda a: _fields_as_specified(type=a.type.value, description=a.description,  # noqa: E731
                                            resource=prune(a.resource), resourceId=a.resource_id)
    src = card.source
    return _fields_as_specified(
        uuid=card.uuid, summary=card.summary, detail=card.detail, indicator=card.indicator.value,
        source=_fields_as_specified(label=src.label, url=src.url, icon=src.icon,
                                    topic=coding(src.topic) if src.topic else None),
        suggestions=[_fields_as_specified(label=s.label, uuid=s.uuid, isRecommended=s.is_recommended,
                                          actions=[action(a) for a in s.actions]) for s in card.suggestions],
        selectionBehavior=card.selection_behavior.value if card.suggestions else None,
        overrideReasons=[coding(r) for r in card.override_reasons],
        links=[_fields_as_specified(label=li.label, url=li.url, type=li.type.value, appContext=li.app_context,
                                    autolaunchable=li.autolaunchable) for li in card.links],
        extension=prune(card.extension))


_optional_text = st.sampled_from([None, "", " ", "x"])
_url = st.sampled_from([None, "", " ", "https://example.org/a"])
_flag = st.sampled_from([None, False, True])
_codings = st.builds(Coding, code=st.just("c"), system=st.just("http://example.org/cs"), display=_optional_text)
_actions = (st.builds(Action, type=st.just("delete"), description=st.just("Remove"),
                      resource_id=st.just("MedicationRequest/1"))
            | st.builds(Action, type=st.sampled_from(["create", ActionType.UPDATE]), description=st.just("Order"),
                        resource=st.just({**MR_DRAFT, "note": [{"text": ""}]})))


@settings(max_examples=300, deadline=None)
@given(detail=_optional_text, url=_url, icon=_url, topic=st.none() | _codings,
       suggestions=st.lists(st.builds(Suggestion, label=st.just("s"), actions=st.lists(_actions, max_size=2),
                                      is_recommended=_flag, uuid=st.uuids().map(str)), max_size=3),
       reasons=st.lists(_codings, max_size=2), behavior=st.sampled_from([None, "any", SelectionBehavior.ANY]),
       links=st.lists(st.builds(Link, label=st.just("l"), url=st.just("https://smart.example.org/launch"),
                                type=st.just(LinkType.SMART), app_context=_optional_text, autolaunchable=_flag),
                      max_size=2),
       extension=st.none() | st.just({}) | st.just({"k": [{"a": ""}, "v"], "e": []}))
def test_to_dict_keeps_exactly_the_set_fields_in_wire_order(detail, url, icon, topic, suggestions, reasons,
                                                            behavior, links, extension):
    # to_dict() builds the wire objects from what the constructors checked: the same dict, keys in the same order
    try:
        card = Card(summary="s", indicator="warning", detail=detail, source=Source(label="x", url=url, icon=icon,
                                                                                  topic=topic),
                    suggestions=suggestions, selection_behavior=behavior, override_reasons=reasons, links=links,
                    extension=extension)
    except ValueError:
        return
    expected = _card_as_specified(card)
    assert list(card.to_dict().items()) == list(expected.items())
    assert orjson.dumps(card.to_dict()) == orjson.dumps(expected)
