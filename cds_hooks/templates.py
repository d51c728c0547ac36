"""CDS Hooks 2.0 prefetch templates: checking them at registration and filling them per call.

2.0.1 allows exactly two kinds of token between ``{{`` and ``}}``: ``context.<field>`` naming a root-level,
primitive context field, and the four user tokens derived from ``context.userId``. Anything else
(``{{context.draftOrders...}}``, 3.0-ballot FHIRPath) is refused when a service is declared, so no template can
fail at call time for a reason that was knowable earlier.

Token values are substituted only when they look like a FHIR id (or, for ``{{context.userId}}``, a relative
reference): a value such as ``1&_id=2`` or ``../Patient`` would otherwise change the query sent to the EHR's
FHIR server.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
CONTEXT_TOKEN = re.compile(r"context\.([A-Za-z][A-Za-z0-9_]*)")
# userId is "Practitioner/123", "PractitionerRole/123", "Patient/123" or "RelatedPerson/123"
USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
FHIR_ID = re.compile(r"(?=[A-Za-z0-9.\-]*[A-Za-z0-9])[A-Za-z0-9.\-]{1,64}")
FHIR_REFERENCE = re.compile(r"[A-Z][A-Za-z]{1,63}/" + FHIR_ID.pattern)


class TemplateError(ValueError):
    """A template uses a token that CDS Hooks 2.0 does not define."""


class UnfillableToken(LookupError):
    """This call's context cannot fill a token (field absent, not primitive, or not a safe id)."""

    def __init__(self, token: str):
        super().__init__(token)
        self.token = token


def check_template(template: str) -> None:
    """Raise TemplateError unless every token in ``template`` is a CDS Hooks 2.0 prefetch token."""
    if not isinstance(template, str) or not template.strip():
        raise TemplateError("a prefetch template must be a non-empty string")
    path = template.split("?", 1)[0]
    if path.startswith("/") or "://" in path or ".." in path.split("/"):
        raise TemplateError(f"prefetch template must be a relative FHIR URL: {template!r}")
    stripped = TOKEN.sub("", template)
    if "{{" in stripped or "}}" in stripped:
        raise TemplateError(f"unbalanced token delimiters in {template!r}")
    for token in TOKEN.findall(template):
        if token not in USER_TOKENS and not CONTEXT_TOKEN.fullmatch(token):
            raise TemplateError(f"{{{{{token}}}}} is not a CDS Hooks 2.0 prefetch token")


def _safe(value: Any, *, reference_ok: bool) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value)
    if FHIR_ID.fullmatch(text) or (reference_ok and FHIR_REFERENCE.fullmatch(text)):
        return text
    return None


def token_value(token: str, context: Mapping[str, Any]) -> str:
    """The value of one token for this call's context, or UnfillableToken."""
    if token in USER_TOKENS:
        user = context.get("userId")
        prefix = USER_TOKENS[token] + "/"
        if isinstance(user, str) and user.startswith(prefix):
            value = _safe(user[len(prefix):], reference_ok=False)
            if value is not None:
                return value
        raise UnfillableToken(token)
    match = CONTEXT_TOKEN.fullmatch(token)
    if match:
        # userId is the one context token whose value is a reference ("Practitioner/123"), as the spec's
        # example template "{{context.userId}}" relies on
        value = _safe(context.get(match.group(1)), reference_ok=match.group(1) == "userId")
        if value is not None:
            return value
    raise UnfillableToken(token)


def render(template: str, context: Mapping[str, Any]) -> str:
    """``template`` with every token filled from ``context``; UnfillableToken if one cannot be."""
    return TOKEN.sub(lambda m: token_value(m.group(1).strip(), context), template)
