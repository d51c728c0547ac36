"""The CDS Hooks 2.0.1 response model: cards that cannot be built invalid.

Every invariant of the spec (and of the 3.0 ballot's machine-checkable ``cds-resp-*`` rules, which only make
2.0.1's prose checkable) is enforced when an object is constructed, so a handler finds out while it builds a
card, not when an EHR rejects it. ``to_dict()`` omits unset and empty values (the spec forbids ``null``, ``""``,
``[]`` and ``{}``), also inside embedded FHIR resources and extensions.
"""
from __future__ import annotations

import random as _random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from operator import attrgetter
from typing import Any
from urllib.parse import urlsplit

SUMMARY_MAX_CHARS = 140


class Indicator(str, Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class SelectionBehavior(str, Enum):
    AT_MOST_ONE = "at-most-one"
    ANY = "any"


class ActionType(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class LinkType(str, Enum):
    ABSOLUTE = "absolute"
    SMART = "smart"


_SCALARS = frozenset({int, float, bool})
# value -> member: Enum's own call takes two Python frames per lookup
_MEMBERS = {enum: {m._value_: m for m in enum} for enum in (Indicator, SelectionBehavior, ActionType, LinkType)}


def prune(value: Any) -> Any:
    """``value`` without ``None``, empty strings, lists and objects, at any depth (FHIR and CDS Hooks both
    forbid them). Returns None when nothing is left."""
    # exact types first (JSON data is dict/list/str/number): no isinstance() against the Mapping ABC per node
    kind = type(value)
    if kind is dict:
        return _prune_dict(value)
    if kind is list or kind is tuple:
        return _prune_list(value)
    if kind is str:
        return value or None
    if isinstance(value, Mapping):
        return _prune_dict(dict(value))
    if isinstance(value, (list, tuple)):
        return _prune_list(value)
    if isinstance(value, str) and value == "":
        return None
    return value


# The two container walks of prune(): strings and numbers (most nodes) are kept or dropped in place, objects go
# straight to the walk of their kind; only what is left (None, other types) takes the general path.
def _prune_dict(value: dict) -> dict | None:
    out = {}
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            if item:
                out[key] = item
        elif kind is dict:
            if (item := _prune_dict(item)) is not None:
                out[key] = item
        elif kind is list:
            if (item := _prune_list(item)) is not None:
                out[key] = item
        elif kind in _SCALARS:
            out[key] = item
        elif item is not None and (item := prune(item)) is not None:
            out[key] = item
    return out or None


def _prune_list(value: list | tuple) -> list | None:
    out = []
    for item in value:
        kind = type(item)
        if kind is str:
            if item:
                out.append(item)
        elif kind is dict:
            if (item := _prune_dict(item)) is not None:
                out.append(item)
        elif kind is list:
            if (item := _prune_list(item)) is not None:
                out.append(item)
        elif kind in _SCALARS:
            out.append(item)
        elif item is not None and (item := prune(item)) is not None:
            out.append(item)
    return out or None


def _text(value: Any, name: str, *, required: bool) -> str | None:
    if type(value) is str and value.strip():   # the usual case, a text, in one test
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(f"{name} is required and must not be empty")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _all_of(items: tuple, kind: type) -> bool:
    return all(map(kind.__instancecheck__, items))   # isinstance() of each, with no Python frame per item


_display = attrgetter("display")


def _is_object(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)   # the exact type first: the ABC check costs more


def _absolute_url(value: str | None, name: str) -> str | None:
    value = _text(value, name, required=False)
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{name} must be an absolute http(s) URL")
    return value


def _enum(enum: type[Enum], value: Any, name: str) -> Any:
    if type(value) is enum:   # already a member
        return value
    if type(value) is str and (member := _MEMBERS[enum].get(value)) is not None:
        return member
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ValueError(f"{name} must be one of: {allowed}") from None


def _new_uuid() -> str:
    """A random (version 4) UUID from the ``random`` module: card and suggestion ids need to be unique, not
    secret (the EHR echoes them in feedback), and ``uuid.uuid4()`` costs a system call and a UUID object per id
    (2.5x the time). ``random`` is reseeded in each forked worker, so workers do not repeat each other."""
    n = _random.getrandbits(128) & ~((0xF000 << 64) | (0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    h = n.to_bytes(16).hex()   # (a tenth cheaper than formatting the int)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class Coding:
    code: str
    system: str
    display: str | None = None

    def __post_init__(self) -> None:
        _text(self.code, "Coding.code", required=True)
        _text(self.system, "Coding.system", required=True)
        _text(self.display, "Coding.display", required=False)

    # The to_dict() methods build the wire object from what __post_init__ checked: a required text is a
    # non-empty string and an optional one is None or a string (left out when None or ""), a boolean is None or
    # a bool, parts are other objects' to_dict() (never empty). Raw JSON (a resource, an extension) is pruned.
    # An enum member's wire value is read as ``_value_`` (``.value`` is a property run in Python code).
    def to_dict(self) -> dict[str, Any]:
        out = {"system": self.system, "code": self.code}
        if self.display:
            out["display"] = self.display
        return out


@dataclass(frozen=True)
class Source:
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None

    def __post_init__(self) -> None:
        _text(self.label, "Source.label", required=True)
        _absolute_url(self.url, "Source.url")
        _absolute_url(self.icon, "Source.icon")
        if self.topic is not None and not isinstance(self.topic, Coding):
            raise ValueError("Source.topic must be a Coding")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label}
        if self.url:
            out["url"] = self.url
        if self.icon:
            out["icon"] = self.icon
        if self.topic is not None:
            out["topic"] = self.topic.to_dict()
        return out


@dataclass(frozen=True)
class Action:
    type: ActionType
    description: str
    resource: Mapping[str, Any] | None = None
    resource_id: str | None = None

    def __post_init__(self) -> None:
        if type(self.type) is not ActionType:   # a member (or below, a tuple) is kept: no rewrite of the field
            object.__setattr__(self, "type", _enum(ActionType, self.type, "Action.type"))
        _text(self.description, "Action.description", required=True)  # cds-resp-5
        if self.resource is not None and not _is_object(self.resource):
            raise ValueError("Action.resource must be a FHIR resource object")
        if self.resource is not None and not self.resource.get("resourceType"):
            raise ValueError("Action.resource must carry a resourceType")
        if self.type is ActionType.DELETE:  # cds-resp-2
            if not self.resource_id:
                raise ValueError("a delete Action needs resourceId")
            if self.resource is not None:
                raise ValueError("a delete Action carries resourceId, not resource")
        elif self.resource is None:
            raise ValueError(f"a {self.type.value} Action needs the resource")
        if self.resource_id is not None:
            _text(self.resource_id, "Action.resourceId", required=True)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type._value_, "description": self.description}
        if (resource := prune(self.resource)) is not None:
            out["resource"] = resource
        if self.resource_id is not None:
            out["resourceId"] = self.resource_id
        return out


@dataclass(frozen=True)
class Suggestion:
    label: str
    actions: tuple[Action, ...] = ()
    is_recommended: bool | None = None
    uuid: str = field(default_factory=_new_uuid)

    def __post_init__(self) -> None:
        _text(self.label, "Suggestion.label", required=True)
        if type(self.actions) is not tuple:
            object.__setattr__(self, "actions", tuple(self.actions))
        if not _all_of(self.actions, Action):
            raise ValueError("Suggestion.actions must be Action objects")
        if self.is_recommended is not None and not isinstance(self.is_recommended, bool):
            raise ValueError("Suggestion.isRecommended must be a boolean")
        _text(self.uuid, "Suggestion.uuid", required=True)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "uuid": self.uuid}
        if self.is_recommended is not None:
            out["isRecommended"] = self.is_recommended
        if self.actions:
            out["actions"] = [a.to_dict() for a in self.actions]
        return out


@dataclass(frozen=True)
class Link:
    label: str
    url: str
    type: LinkType = LinkType.ABSOLUTE
    app_context: str | None = None
    autolaunchable: bool | None = None

    def __post_init__(self) -> None:
        _text(self.label, "Link.label", required=True)
        if _absolute_url(self.url, "Link.url") is None:
            raise ValueError("Link.url is required")
        object.__setattr__(self, "type", _enum(LinkType, self.type, "Link.type"))
        if _text(self.app_context, "Link.appContext", required=False) and self.type is not LinkType.SMART:
            raise ValueError("Link.appContext is only allowed on smart links")  # cds-resp-3
        if self.autolaunchable is not None and not isinstance(self.autolaunchable, bool):
            raise ValueError("Link.autolaunchable must be a boolean")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "url": self.url, "type": self.type._value_}
        if self.app_context:
            out["appContext"] = self.app_context
        if self.autolaunchable is not None:
            out["autolaunchable"] = self.autolaunchable
        return out


@dataclass(frozen=True)
class Card:
    summary: str
    indicator: Indicator
    source: Source
    detail: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    selection_behavior: SelectionBehavior | None = None
    override_reasons: tuple[Coding, ...] = ()
    links: tuple[Link, ...] = ()
    extension: Mapping[str, Any] | None = None
    uuid: str = field(default_factory=_new_uuid)

    def __post_init__(self) -> None:
        summary = _text(self.summary, "Card.summary", required=True)
        if len(summary) > SUMMARY_MAX_CHARS:
            raise ValueError(f"Card.summary has {len(summary)} characters; at most {SUMMARY_MAX_CHARS}")
        object.__setattr__(self, "indicator", _enum(Indicator, self.indicator, "Card.indicator"))
        if not isinstance(self.source, Source):
            raise ValueError("Card.source must be a Source")
        _text(self.detail, "Card.detail", required=False)
        for name, kind in (("suggestions", Suggestion), ("override_reasons", Coding), ("links", Link)):
            given = getattr(self, name)
            items = tuple(given)
            if not _all_of(items, kind):
                raise ValueError(f"Card.{name} must hold {kind.__name__} objects")
            if items is not given:   # a tuple is kept as it is
                object.__setattr__(self, name, items)
        if self.selection_behavior is not None and type(self.selection_behavior) is not SelectionBehavior:
            object.__setattr__(self, "selection_behavior",
                               _enum(SelectionBehavior, self.selection_behavior, "Card.selectionBehavior"))
        if self.suggestions and self.selection_behavior is None:  # cds-resp-6
            raise ValueError("Card.selectionBehavior is required when there are suggestions")
        if (self.selection_behavior is SelectionBehavior.AT_MOST_ONE
                and sum(1 for s in self.suggestions if s.is_recommended) > 1):  # cds-resp-1
            raise ValueError("at-most-one selection allows at most one recommended suggestion")
        if not all(map(_display, self.override_reasons)):  # cds-resp-4
            raise ValueError("every Card.overrideReasons entry needs a display")
        if self.extension is not None and not _is_object(self.extension):
            raise ValueError("Card.extension must be a JSON object")
        _text(self.uuid, "Card.uuid", required=True)
        uuids = [s.uuid for s in self.suggestions]
        if len(uuids) > 1 and len(set(uuids)) != len(uuids):
            raise ValueError("suggestion uuids must be unique within a card")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uuid": self.uuid, "summary": self.summary}
        if self.detail:
            out["detail"] = self.detail
        out["indicator"] = self.indicator._value_
        out["source"] = self.source.to_dict()
        if self.suggestions:
            out["suggestions"] = [s.to_dict() for s in self.suggestions]
            # selectionBehavior is only meaningful with suggestions; alone it would be noise
            out["selectionBehavior"] = self.selection_behavior._value_
        if self.override_reasons:
            out["overrideReasons"] = [r.to_dict() for r in self.override_reasons]
        if self.links:
            out["links"] = [link.to_dict() for link in self.links]
        if (extension := prune(self.extension)) is not None:
            out["extension"] = extension
        return out


@dataclass(frozen=True)
class CDSResponse:
    cards: tuple[Card, ...] = ()
    system_actions: tuple[Action, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cards", tuple(self.cards))
        object.__setattr__(self, "system_actions", tuple(self.system_actions))
        if not _all_of(self.cards, Card):
            raise ValueError("CDSResponse.cards must be Card objects")
        if not _all_of(self.system_actions, Action):
            raise ValueError("CDSResponse.systemActions must be Action objects")

    @classmethod
    def of(cls, result: CDSResponse | Iterable[Card] | None) -> CDSResponse:
        """What a service handler returned (a response, a list of cards or None) as a response."""
        if isinstance(result, CDSResponse):
            return result
        return cls(cards=tuple(result or ()))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cards": [c.to_dict() for c in self.cards]}  # [] is the one allowed empty
        if self.system_actions:
            out["systemActions"] = [a.to_dict() for a in self.system_actions]
        return out
