"""The version of the knowledge that produced a finding: CPIC's data version and every profile's own version.

A DetectedIssue carries it (``detected_issue.KNOWLEDGE_TAG_SYSTEM``) so that a knowledge update can find the
issues an older version wrote (``fhir-pain poll --bulk --reevaluate``). The code is short and searchable:
``<CPIC data version>+p.<hash of every profile's path and meta.version>``; the display spells the CPIC part out.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

from fhir_pain import profiles

CPIC_FILE = "pgx/recommendations.json"   # its meta.version is CPIC's data release ("cpic-v1.30.0; wording-3.2")
_SUBDIRS = ("pgx", "pain", "rules", "opioid")


@lru_cache(maxsize=1)
def profile_versions() -> dict[str, str]:
    """Every knowledge file's ``meta.version``, by path (e.g. ``{"pgx/cyp2d6.json": "2024-08-27-21-12"}``)."""
    out: dict[str, str] = {}
    for sub in _SUBDIRS:
        for path in profiles.list_files(sub):
            meta = profiles.load(path).get("meta") or {}
            out[path] = str(meta.get("version", ""))
    return out


@lru_cache(maxsize=1)
def cpic_version() -> str:
    return str(profiles.load(CPIC_FILE)["meta"]["version"])


@lru_cache(maxsize=1)
def knowledge_version() -> str:
    """The code recorded on each DetectedIssue: changes whenever any profile's version changes."""
    digest = hashlib.sha256("\n".join(f"{p}={v}" for p, v in sorted(profile_versions().items())).encode())
    cpic = cpic_version().split(";")[0].strip().replace(" ", "")
    return f"{cpic}+p.{digest.hexdigest()[:12]}"
