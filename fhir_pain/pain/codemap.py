"""A site's local Observation codes mapped to our instruments: configuration, not code.

File format (see profiles/pain/code-map.example.json): either ``{"system|code": "phq9", ...}`` or the
knowledge-file shape ``{"schema": "pain-code-map", "meta": {...}, "map": {...}}``. Values name an instrument
key, or ``"key#system|code"`` for one of its items. A bad file fails at load time, never during a request.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import orjson

from fhir_pain.pain.knowledge import Knowledge, knowledge as shipped_knowledge, norm_system
from fhir_pain.pain.scoring import mapped_role


def load_code_map(path: str | Path, *, knowledge: Knowledge | None = None) -> dict[str, str]:
    data = orjson.loads(Path(path).read_bytes())
    return validate_code_map(data.get("map", data) if isinstance(data, dict) and "schema" in data else data,
                             knowledge=knowledge)


def validate_code_map(mapping: object, *, knowledge: Knowledge | None = None) -> dict[str, str]:
    """Check every entry; raise ValueError listing the bad ones."""
    kn = knowledge or shipped_knowledge()
    if not isinstance(mapping, Mapping):
        raise ValueError("a pain code map is a JSON object of 'system|code' -> instrument key")
    bad, out = [], {}
    for key, value in mapping.items():
        system, sep, code = key.partition("|") if isinstance(key, str) else ("", "", "")
        if not (system and sep and code) or mapped_role(value, kn) is None:
            bad.append(f"{key!r} -> {value!r}")
        out[f"{norm_system(system)}|{code}"] = value   # codings are looked up with normalised systems
    if bad:
        raise ValueError(f"pain code map: unknown code or instrument in {', '.join(bad[:10])}")
    return out
