"""Typed protocol errors and their one mapping to HTTP status + FHIR OperationOutcome.

Code below the HTTP layer raises these; ``cds_hooks.flask_ext`` turns every error (these, werkzeug's and any
unexpected exception) into an OperationOutcome body in one handler. Messages are written for the caller:
they name the offending field or prefetch key, never echo tokens or patient data.
"""
from __future__ import annotations

from typing import Any


class CDSError(Exception):
    """Base of the protocol errors. ``status`` is the HTTP status, ``code`` the OperationOutcome issue code."""

    status = 500
    code = "exception"

    def __init__(self, message: str = "", *, expression: str | None = None):
        super().__init__(message)
        self.message = message
        self.expression = expression  # e.g. "context.patientId" or the prefetch key

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.code, self.message, expression=self.expression)


class BadRequest(CDSError):
    status, code = 400, "invalid"


class Unauthorized(CDSError):
    """Always answered with the same generic text: the reason goes to the log, never to the caller."""

    status, code = 401, "login"
    public_message = "Unauthorized"

    def __init__(self, reason: str = "unauthorized"):
        super().__init__(self.public_message)
        self.reason = reason  # for the log only

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.code, self.public_message)


class NotFound(CDSError):
    status, code = 404, "not-found"


class MethodNotAllowed(CDSError):
    status, code = 405, "not-supported"


class PayloadTooLarge(CDSError):
    status, code = 413, "too-costly"


class UnsupportedMediaType(CDSError):
    status, code = 415, "not-supported"


class PreconditionFailed(CDSError):
    """Required prefetch data could not be obtained (CDS Hooks 2.0.1: SHALL answer 412)."""

    status, code = 412, "processing"


def operation_outcome(code: str, diagnostics: str, *, expression: str | None = None,
                      severity: str = "error") -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code}
    if diagnostics:
        issue["diagnostics"] = diagnostics
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


# HTTP status -> OperationOutcome issue code, for errors raised by werkzeug (routing, body size).
HTTP_ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                    412: "processing", 413: "too-costly", 415: "not-supported", 429: "throttled"}
