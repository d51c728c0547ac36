"""Service declarations (what discovery lists) and the registry the HTTP layer dispatches on."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .cards import Card, CDSResponse
from .errors import NotFound
from .request import HookRequest
from .templates import check_template

# Discovery has no field for required prefetch keys (CDS Hooks 2.0): they are published in the service's
# extension under this name, so that an EHR can tell which keys it must send (or let be fetched) to avoid 412.
REQUIRED_PREFETCH_EXTENSION = "io.fhir-pain.requiredPrefetch"
SERVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")  # one URL path segment, no escaping needed
Handler = Callable[[HookRequest], "CDSResponse | list[Card] | None"]


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str
    handler: Handler = field(repr=False)
    prefetch: Mapping[str, str] = field(default_factory=dict)
    required_prefetch: frozenset[str] = frozenset()  # not obtainable -> 412 (see cds_hooks.prefetch)
    usage_requirements: str | None = None
    extension: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not SERVICE_ID.fullmatch(self.id) or self.id == "feedback":
            raise ValueError(f"service id {self.id!r} must be a URL-safe path segment")
        for name in ("hook", "description"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Service.{name} is required")
        if not callable(self.handler):
            raise ValueError("Service.handler must be callable")
        object.__setattr__(self, "prefetch", dict(self.prefetch))
        for key, template in self.prefetch.items():
            if not isinstance(key, str) or not key:
                raise ValueError("prefetch keys must be non-empty strings")
            check_template(template)
        object.__setattr__(self, "required_prefetch", frozenset(self.required_prefetch))
        unknown = self.required_prefetch - set(self.prefetch)
        if unknown:
            raise ValueError(f"required_prefetch names keys without a template: {sorted(unknown)}")
        if self.extension is not None and not isinstance(self.extension, Mapping):
            raise ValueError("Service.extension must be a JSON object")

    def discovery_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"hook": self.hook, "title": self.title, "description": self.description,
                                 "id": self.id}
        if self.prefetch:
            entry["prefetch"] = dict(self.prefetch)
        if self.usage_requirements:
            entry["usageRequirements"] = self.usage_requirements
        extension = dict(self.extension or {})
        if self.required_prefetch:
            extension[REQUIRED_PREFETCH_EXTENSION] = [k for k in self.prefetch if k in self.required_prefetch]
        if extension:
            entry["extension"] = extension
        if not self.title:
            del entry["title"]
        return entry


class ServiceRegistry:
    """Services by id. An id is unique here: one id, one hook, one handler."""

    def __init__(self) -> None:
        self._services: dict[str, Service] = {}

    def register(self, service: Service) -> Service:
        if not isinstance(service, Service):
            raise TypeError("register() takes a cds_hooks.Service")
        if service.id in self._services:
            raise ValueError(f"service id {service.id!r} is already registered")
        self._services[service.id] = service
        return service

    def get(self, service_id: str) -> Service:
        try:
            return self._services[service_id]
        except KeyError:
            shown = service_id if len(service_id) <= 128 else service_id[:128] + "..."  # no echo of megabytes
            raise NotFound(f"no CDS service with id {shown!r}") from None

    def __contains__(self, service_id: object) -> bool:
        return service_id in self._services

    def __iter__(self) -> Iterator[Service]:
        return iter(self._services.values())

    def __len__(self) -> int:
        return len(self._services)

    def discovery(self) -> dict[str, Any]:
        return {"services": [s.discovery_entry() for s in self._services.values()]}
