"""What a service handler receives: one CDS Hooks call with its prefetch resolved."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HookRequest:
    """A validated CDS Hooks call.

    ``prefetch`` holds, for each key the service declared, the data to use: the EHR's prefetch when it sent
    usable data, else what was fetched from ``fhirServer``; ``None`` means the EHR or the FHIR server confirmed
    there is no such data. A key that could not be obtained is absent from ``prefetch`` and listed in
    ``missing``. A search whose later pages could not be read is kept (what was read) *and* listed in
    ``missing``, so a service never mistakes "not seen" for "not there".
    """

    hook: str
    hook_instance: str
    service_id: str
    context: dict[str, Any]
    prefetch: dict[str, dict | None]
    missing: tuple[str, ...] = ()
    fhir_server: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    issuer: str | None = None  # the verified JWT's iss (None with auth off)
    tenant: str | None = None

    @property
    def patient_id(self) -> str | None:
        return _str(self.context.get("patientId"))

    @property
    def user_id(self) -> str | None:
        return _str(self.context.get("userId"))

    @property
    def encounter_id(self) -> str | None:
        return _str(self.context.get("encounterId"))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
