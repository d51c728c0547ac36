"""The OpenAPI 3.1 document of the endpoints, built from the registry and the shipped JSON Schemas.

Each registered service gets its own literal path whose request schema pins ``hook`` to the service's hook,
so the document says exactly what the server accepts (and schemathesis can test it against the server).
"""
from __future__ import annotations

import copy
import re
from typing import Any

from . import schemas
from .registry import ServiceRegistry

_REF = re.compile(r"^(?:(?P<doc>[a-z]+)\.schema\.json)?#/\$defs/(?P<name>[A-Za-z]+)$")


def _component(doc: str, name: str | None = None) -> str:
    return f"{doc}.{name}" if name else doc


def _rewrite(node: Any, doc: str) -> Any:
    """Copy of a schema node with its $refs pointing into components/schemas, and no $schema/$id."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$schema", "$id", "$defs"):
                continue
            if key == "$ref":
                match = _REF.match(value)
                if not match:
                    raise ValueError(f"unexpected $ref {value!r} in schema {doc}")
                out[key] = "#/components/schemas/" + _component(match["doc"] or doc, match["name"])
            else:
                out[key] = _rewrite(value, doc)
        return out
    if isinstance(node, list):
        return [_rewrite(v, doc) for v in node]
    return node


def _components() -> dict[str, Any]:
    comps: dict[str, Any] = {}
    for doc in schemas.NAMES:
        schema = schemas.load(doc)
        for name, sub in schema.get("$defs", {}).items():
            comps[_component(doc, name)] = _rewrite(sub, doc)
        if doc != "common":
            comps[doc] = _rewrite(schema, doc)
    comps["OperationOutcome"] = {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "issue": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["severity", "code"],
                "properties": {"severity": {"type": "string"}, "code": {"type": "string"},
                               "diagnostics": {"type": "string"},
                               "expression": {"type": "array", "items": {"type": "string"}}}}},
        },
    }
    comps["Health"] = {"type": "object", "required": ["status"],
                       "properties": {"status": {"enum": ["pass", "fail"]}}}
    return comps


def _json(schema_ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "malformed JSON or a schema violation (the OperationOutcome names the field)",
            401: "missing or invalid JWT", 404: "unknown service", 405: "method not allowed",
            412: "required prefetch data could not be obtained", 413: "body too large (bytes, prefetch keys or feedback entries)",
            415: "body is not JSON", 500: "unexpected error"}
    return {str(c): {"description": text[c], "content": _json("OperationOutcome")} for c in codes}


def build(registry: ServiceRegistry, *, auth: bool, title: str = "CDS Hooks service",
          version: str = "1.0.0") -> dict[str, Any]:
    security = [{"cdsClientJWT": []}] if auth else []
    auth_errors = (401,) if auth else ()
    paths: dict[str, Any] = {
        "/cds-services": {"get": {
            "operationId": "discovery", "summary": "CDS Hooks discovery",
            "responses": {"200": {"description": "the services", "content": _json("discovery")},
                          **_errors(500)}}},
        "/healthz": {"get": {
            "operationId": "health", "summary": "liveness and store check",
            "responses": {"200": {"description": "healthy", "content": _json("Health")},
                          "503": {"description": "unhealthy", "content": _json("Health")}}}},
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "this document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {
                "schema": {"type": "object"}}}}}}},
    }
    for service in registry:
        request_schema = {"allOf": [{"$ref": "#/components/schemas/request"},
                                    {"properties": {"hook": {"const": service.hook}}}]}
        paths[f"/cds-services/{service.id}"] = {"post": {
            "operationId": f"call-{service.id}", "summary": service.title or service.id,
            "description": service.description, "security": security,
            "requestBody": {"required": True, "content": {"application/json": {"schema": request_schema}}},
            "responses": {"200": {"description": "cards", "content": _json("response")},
                          **_errors(400, *auth_errors, 412, 413, 415, 500)}}}
        paths[f"/cds-services/{service.id}/feedback"] = {"post": {
            "operationId": f"feedback-{service.id}", "summary": f"feedback on {service.id} cards",
            "security": security,
            "requestBody": {"required": True, "content": _json("feedback")},
            "responses": {"200": {"description": "stored", "content": {"application/json": {"schema": {
                "type": "object", "required": ["stored"], "properties": {"stored": {"type": "integer"}}}}}},
                          **_errors(400, *auth_errors, 413, 415, 500)}}}
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "CDS Hooks 2.0.1 endpoints. Schemas are the ones the server validates with."},
        "paths": paths,
        "components": {"schemas": _components()},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"cdsClientJWT": {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT (ES384 or RS384, CDS Hooks 2.0.1)"}}
    return copy.deepcopy(doc)
