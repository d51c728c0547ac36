"""Hostile variants of realistic CDS Hooks requests: a seeded mutator for tests/test_hostile_input.py.

Each case starts from a real request of the suite (tests/golden/*/request.json, the sandbox captures and the CDS
Hooks spec examples in tests/fixtures) or a feedback body, and applies one to three mutations at random JSON
paths: a value of the wrong JSON type, null, a huge string or array, NUL and non-BMP unicode, a deep nest, a
deleted key, a list where an object was and back. Some cases mutate the body as bytes instead (deep nesting past
any recursion limit, invalid UTF-8, truncation), or the headers (odd Content-Type, an access token that is not
Latin-1). A case is fully determined by its number: a failure names it, and ``case(n)`` rebuilds it.
"""
from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

TESTS = Path(__file__).resolve().parent
SERVICES = {"patient-view": "pain-pgx-patient-view", "order-select": "pain-pgx-order-select",
            "order-sign": "pain-pgx-order-sign"}

# values that have the wrong type almost anywhere in a FHIR resource or a CDS Hooks body
SCALARS: tuple[Any, ...] = (
    None, True, False, 0, -1, 3.5, 1e308, -9223372036854775808, 18446744073709551615, "", " ", "\x00",
    "null", "0", "Patient/", "Patient/../../x", "{{context.patientId}}", "ü\u200b€😀\U0010ffff", "\u202e\ufeff",
    "2024-13-45T99:99:99Z", "9999-12-31T23:59:59.999999+14:00", "0001-01-01", "*1/*4" * 50, "x\x00y\x01\x7f",
    "CYP2D6 poor metabolizer", "http://www.nlm.nih.gov/research/umls/rxnorm",
)
CONTAINERS: tuple[Any, ...] = (
    [], {}, [None], [[]], [{}], {"": None}, ["x"], [1, "a", None, {}, []], {"resourceType": None},
    {"resourceType": "Bundle", "entry": "x"}, {"resourceType": "Bundle", "entry": [1, "x", None, {"resource": 5}]},
    {"resourceType": "Bundle", "link": "next"}, {"resourceType": "Bundle", "link": [{"relation": "next", "url": 5}]},
    {"resourceType": "OperationOutcome"}, {"resourceType": ["Patient"]}, {"coding": "x"}, {"coding": [None, 5]},
    {"reference": 5}, {"system": [], "code": {}}, {"start": 5, "end": []},
)
# a token the EHR could send that is not Latin-1 (HTTP headers are): it must never reach a socket
TOKENS: tuple[Any, ...] = ("tökén-€", "😀", "ok\r\nX-Injected: 1", "ok\x00", "a" * 20000, 5, None, [], {})
CONTENT_TYPES: tuple[str, ...] = (
    "application/json", "application/json; charset=utf-8", "Application/JSON; Charset=UTF-8",
    "application/json;charset=latin-1", "application/fhir+json", "application/json, application/json",
    "application/json; application/json", "text/plain", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/json; charset=\"utf-8\"", ";", "/", "application/",
    "application/json; boundary=", "appl\x7fication/json", "application/json;;;", "*/*",
)


MAX_BODY = 4_000_000


@dataclass
class Case:
    number: int
    path: str                                  # "/cds-services/<id>" or ".../feedback"
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    what: list[str] = field(default_factory=list)   # the mutations applied, for the failure message

    def __str__(self) -> str:
        return f"case {self.number} ({self.path}): " + "; ".join(self.what)


@cache
def seeds() -> tuple[tuple[str, str, dict], ...]:
    """(name, endpoint path, body) of every realistic request and feedback body the suite holds."""
    out: list[tuple[str, str, dict]] = []
    files = sorted(TESTS.glob("golden/*/request.json")) + sorted(TESTS.glob("fixtures/sandbox/*request*.json")) \
        + sorted(TESTS.glob("fixtures/cds-hooks/spec*.json"))
    for f in files:
        body = json.loads(f.read_text(encoding="utf-8"))
        if body.get("hook") in SERVICES and "context" in body:
            out.append((f.parent.name + "/" + f.name, f"/cds-services/{SERVICES[body['hook']]}", body))
    # the pain fixtures are prefetch Bundles: a patient-view call that carries them
    view = next(b for n, _, b in out if n.startswith("sandbox/patient"))
    for f in sorted(TESTS.glob("fixtures/pain/*.json")):
        body = copy.deepcopy(view)
        body["prefetch"] = {"painAssessments": json.loads(f.read_text(encoding="utf-8"))}
        body["prefetch"]["conditions"] = body["prefetch"]["painAssessments"]
        out.append(("pain/" + f.name, "/cds-services/pain-pgx-patient-view", body))
    for f in sorted(TESTS.glob("fixtures/sandbox/feedback-*.json")) + \
            sorted(TESTS.glob("fixtures/cds-hooks/spec*-example-*overrid*.json")) + \
            sorted(TESTS.glob("fixtures/cds-hooks/spec*-suggestion-accepted.json")):
        service = "pain-pgx-order-select" if "order-select" in f.name else "pain-pgx-patient-view"
        out.append((f.name, f"/cds-services/{service}/feedback", json.loads(f.read_text(encoding="utf-8"))))
    return tuple(out)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every JSON path in ``node`` (keys and list indexes), the root included."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(paths(v, prefix + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(paths(v, prefix + (i,)))
    return out


def nest(depth: int, leaf: Any = 1, *, as_list: bool = True) -> Any:
    for _ in range(depth):
        leaf = [leaf] if as_list else {"a": leaf}
    return leaf


def _get(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def _replacement(value: Any, rng: random.Random) -> tuple[Any, str]:
    """A hostile value for a node that held ``value``."""
    roll = rng.random()
    if roll < 0.30:
        return rng.choice(SCALARS), "scalar"
    if roll < 0.50:
        return copy.deepcopy(rng.choice(CONTAINERS)), "container"
    if roll < 0.58:
        return [value], "wrapped in a list"
    if roll < 0.63:
        return {"value": value}, "wrapped in an object"
    if roll < 0.70:
        if isinstance(value, list):
            return (value[0] if value else None), "list unwrapped"
        if isinstance(value, dict):
            return (list(value.values()) or [None])[0], "object unwrapped"
        return str(value) if not isinstance(value, str) else len(value), "scalar type switched"
    if roll < 0.76:
        if isinstance(value, dict):
            return list(value.values()), "object turned into its values"
        if isinstance(value, list):
            return {str(i): v for i, v in enumerate(value)}, "list turned into an object"
        return [value] * 3, "scalar repeated in a list"
    if roll < 0.80:   # up to ~2 MB: the body limit (10 MB, 413) has its own test
        copies = min(rng.choice((500, 5000)), max(2, 2_000_000 // len(_dumps(value))))
        return [value] * copies, "huge array"
    if roll < 0.84:
        return "ü" * rng.choice((10_000, 300_000)), "huge string"
    if roll < 0.88:
        return nest(rng.choice((30, 60, 200)), value, as_list=rng.random() < 0.5), "nested"
    if roll < 0.94 and isinstance(value, str):
        i = rng.randrange(len(value) + 1)
        return value[:i] + rng.choice(("\x00", "😀", "\u0301", "\\", "\"", "%00", "\ud7ff")) + value[i:], \
            "string edited"
    return None, "null"


def mutate_json(body: Any, rng: random.Random, what: list[str]) -> Any:
    body = copy.deepcopy(body)
    for _ in range(rng.choice((1, 1, 2, 3))):
        all_paths = paths(body)
        path = rng.choice(all_paths[1:] or all_paths)
        shown = "/".join(map(str, path)) or "(root)"
        if not path:
            body, how = _replacement(body, rng)
            what.append(f"{shown}: {how}")
            continue
        parent = _get(body, path[:-1])
        if isinstance(parent, dict) and rng.random() < 0.12:
            del parent[path[-1]]
            what.append(f"{shown}: deleted")
            continue
        parent[path[-1]], how = _replacement(parent[path[-1]], rng)
        what.append(f"{shown}: {how}")
        if how == "huge array":   # its items are one shared object: a later edit inside would repeat thousands of times
            break
    return body


def _dumps(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:   # an int beyond 64 bits, a lone surrogate: the stdlib writes them
        return json.dumps(body).encode()


def _bytes_mutation(raw: bytes, rng: random.Random, what: list[str]) -> bytes:
    roll = rng.random()
    if roll < 0.25:
        depth = rng.choice((65, 100, 1000, 1100, 5000, 100_000))
        what.append(f"body nested {depth} deep")
        inner = raw.decode()
        head = rng.choice(('{"context":', "[", '{"prefetch":{"patient":'))
        close = "]" if head == "[" else "}" * head.count("{")
        return (head + '{"a":' * depth + inner + "}" * depth + close).encode()
    if roll < 0.35:
        what.append("invalid UTF-8")
        i = rng.randrange(len(raw))
        return raw[:i] + b"\xff\xfe\xc3" + raw[i:]
    if roll < 0.45:
        what.append("truncated")
        return raw[:rng.randrange(len(raw))]
    if roll < 0.50:
        what.append("UTF-8 BOM")
        return b"\xef\xbb\xbf" + raw
    if roll < 0.55:
        what.append("trailing garbage")
        return raw + b"\x00garbage"
    if roll < 0.60:
        what.append("lone surrogate escape")
        return raw.replace(b'"hookInstance":"', b'"hookInstance":"\\ud800', 1)
    if roll < 0.70:
        what.append("NaN and huge numbers")
        return raw.replace(b"true", b"NaN", 1).replace(b"1", b"1e99999", 1)
    if roll < 0.80:
        what.append("empty body")
        return rng.choice((b"", b" ", b"null", b"[]", b"0", b'""', b"{}"))
    what.append("duplicate keys")
    return raw[:-1] + b',"hook":"patient-view","context":null}' if raw.endswith(b"}") else raw


def case(number: int, *, fhir_server: str | None = None) -> Case:
    """Hostile case ``number`` (deterministic). ``fhir_server``: set as the request's fhirServer (an allowed
    test server) in part of the cases, so that unusable prefetch is fetched with the call's access token."""
    rng = random.Random(number)
    name, endpoint, seed = rng.choice(seeds())
    what = [name]
    body = copy.deepcopy(seed)
    headers = {"Content-Type": "application/json"}
    if fhir_server and "feedback" not in endpoint and rng.random() < 0.3:
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {"access_token": "opaque-token", "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "cds-service"}
        if rng.random() < 0.5:
            body["fhirAuthorization"]["access_token"] = rng.choice(TOKENS)
            what.append(f"access_token {body['fhirAuthorization']['access_token']!r:.40}")
        for key in rng.sample(sorted(body.get("prefetch") or {}), k=min(2, len(body.get("prefetch") or {}))):
            del body["prefetch"][key]       # missing: fetched from the test server
            what.append(f"prefetch {key} left to fetch")
    roll = rng.random()
    if roll < 0.08:
        headers["Content-Type"] = rng.choice(CONTENT_TYPES)
        what.append(f"Content-Type {headers['Content-Type']!r}")
    if roll < 0.85:
        for _ in range(5):   # mutations compound (a huge array of huge strings): keep bodies to a few MB
            done: list[str] = []
            raw = _dumps(mutate_json(body, rng, done))
            if len(raw) <= MAX_BODY:
                what += done
                break
        else:
            raw = _dumps(body)
    elif roll < 0.852:
        raw = _dumps(body) + b" " * (10 * 1024 * 1024)
        what.append("body over the 10 MiB limit")
    else:
        raw = _bytes_mutation(_dumps(body), rng, what)
    path = endpoint
    if rng.random() < 0.03:
        path = rng.choice((endpoint + "/", endpoint.replace("/cds-services/", "/cds-services//"),
                           endpoint + "%00", endpoint.replace("pain", "p\u00e4in"), "/cds-services/" + "x" * 3000))
        what.append(f"path {path[:60]!r}")
    return Case(number, path, raw, headers, what)
