"""Prefetch resolution: use what the EHR sent, fetch what it did not, and say what could not be had.

Per declared key (CDS Hooks 2.0.1 §Prefetch, and HAPI's ``CdsPrefetchSvc`` for absent-vs-null):
- present and usable                  -> used as is (a searchset with a ``next`` link gets its pages read);
- present and ``null``                -> the EHR says there is no data: ``None``;
- absent, an ``OperationOutcome``, or
  not the shape the template asks for -> fetched from ``fhirServer`` with the call's bearer token;
- not obtainable                      -> 412 if the service declared the key required, else ``missing``.

Fetching is bounded twice: only the call's ``fhirServer`` and only if configuration allows it (so the token is
never sent anywhere else), and one deadline for all keys together, fetched in parallel.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Executor, wait
from dataclasses import dataclass
from typing import Any

from .errors import PreconditionFailed
from .fhir_client import FHIRClient, FHIRError, URLNotAllowed, is_allowed
from .registry import Service
from .templates import UnfillableToken, render

log = logging.getLogger("cds_hooks.prefetch")


@dataclass(frozen=True)
class FetchPolicy:
    """How the hook path may call an EHR's FHIR server."""

    allowed_bases: tuple[str, ...] = ()  # nothing is fetched unless configuration names the server
    timeout: tuple[float, float] = (1.0, 2.0)
    deadline_s: float = 2.5
    max_pages: int = 10


def _is_search(template: str) -> bool:
    path = template.split("?", 1)[0]
    return "?" in template or "/" not in path.strip("/")


def _literal_type(template: str) -> str | None:
    head = template.split("?", 1)[0].split("/", 1)[0]
    return head if head.isalpha() else None


def _usable(value: Any, template: str) -> bool:
    """Whether a prefetched value is the kind of data its template asks for."""
    if not isinstance(value, Mapping):
        return False
    rtype = value.get("resourceType")
    if rtype == "OperationOutcome" or not isinstance(rtype, str):
        return False
    if _is_search(template):
        return rtype == "Bundle"
    literal = _literal_type(template)
    return rtype != "Bundle" and (literal is None or rtype == literal)


def _list(value: Any) -> list:
    """A JSON array as sent, else nothing: a prefetched Bundle may carry any JSON where an array belongs."""
    return value if isinstance(value, list) else []


def _has_next(bundle: Mapping[str, Any]) -> bool:
    return any(isinstance(link, Mapping) and link.get("relation") == "next" for link in _list(bundle.get("link")))


def _bearer(body: Mapping[str, Any]) -> str | None:
    auth = body.get("fhirAuthorization")
    if isinstance(auth, Mapping) and str(auth.get("token_type", "")).lower() == "bearer":
        token = auth.get("access_token")
        return token if isinstance(token, str) and token else None
    return None


def _client_for(body: Mapping[str, Any], policy: FetchPolicy) -> FHIRClient | None:
    server = body.get("fhirServer")
    if not isinstance(server, str) or not is_allowed(server, policy.allowed_bases):
        return None
    try:
        # allowed_bases = the call's own server: a next link to another (even allowed) server would carry
        # this EHR's token there
        return FHIRClient(server, auth=_bearer(body), allowed_bases=[server], timeout=policy.timeout,
                          deadline_s=policy.deadline_s, retries=0, max_pages=policy.max_pages)
    except URLNotAllowed:
        return None


def _fetch(client: FHIRClient, template: str, context: Mapping[str, Any]) -> tuple[dict | None, bool]:
    """(data, complete) for one key; raises FHIRError or UnfillableToken."""
    query = render(template, context)
    if _is_search(template):
        bundle = client.get_bundle(query)
        return bundle, not _has_next(bundle)
    resource = client.read(query)
    if not _usable(resource, template):
        raise FHIRError(f"read returned a {resource.get('resourceType')}, not what the template asks for")
    return resource, True


def _complete_pages(client: FHIRClient, bundle: dict) -> tuple[dict, bool]:
    """Read the remaining pages of a prefetched searchset (the EHR MAY paginate prefetch)."""
    next_url = next(link.get("url") for link in _list(bundle.get("link"))
                    if isinstance(link, Mapping) and link.get("relation") == "next")
    if not isinstance(next_url, str):
        return bundle, False
    try:
        rest = client.get_bundle(next_url)
    except FHIRError:
        return bundle, False
    merged = {k: v for k, v in bundle.items() if k != "link"}
    entries = _list(bundle.get("entry")) + _list(rest.get("entry"))
    if entries:
        merged["entry"] = entries
    if _has_next(rest):
        merged["link"] = rest["link"]
    return merged, not _has_next(rest)


def resolve(service: Service, body: Mapping[str, Any], policy: FetchPolicy,
            executor: Executor | None = None) -> tuple[dict[str, dict | None], tuple[str, ...]]:
    """(prefetch, missing) for ``service`` and this call; PreconditionFailed if a required key is missing."""
    given = body.get("prefetch") if isinstance(body.get("prefetch"), Mapping) else {}
    context = body.get("context") or {}
    resolved: dict[str, dict | None] = {}
    incomplete: set[str] = set()
    to_fetch: list[str] = []
    to_page: list[str] = []
    for key, template in service.prefetch.items():
        value = given.get(key, ...)
        if value is None:
            resolved[key] = None
        elif _usable(value, template):
            resolved[key] = value
            if value.get("resourceType") == "Bundle" and _has_next(value):
                to_page.append(key)
        else:
            to_fetch.append(key)

    client = _client_for(body, policy) if (to_fetch or to_page) else None
    if client is not None:
        with client:
            jobs = {}
            for key in to_fetch:
                jobs[key] = (_fetch, (client, service.prefetch[key], context))
            for key in to_page:
                jobs[key] = (_complete_pages, (client, resolved[key]))
            for key, (data, complete) in _run(jobs, executor, policy.deadline_s + 0.5).items():
                if data is not None or key in to_page:
                    resolved[key] = data
                if not complete:
                    incomplete.add(key)
    else:
        incomplete.update(to_page)

    missing = [k for k in service.prefetch if k not in resolved or k in incomplete]
    required = [k for k in missing if k in service.required_prefetch]
    if required:
        raise PreconditionFailed(
            "required prefetch data could not be obtained: " + ", ".join(required)
            + (" (no allowed fhirServer to fetch it from)" if client is None else ""),
            expression=required[0])
    return resolved, tuple(missing)


def _run(jobs: dict[str, tuple], executor: Executor | None, timeout_s: float) -> dict[str, tuple[Any, bool]]:
    """Run the fetch jobs (in parallel when an executor is given); a job that fails yields (None, False)."""
    results: dict[str, tuple[Any, bool]] = {}

    def outcome(key: str, call) -> tuple[Any, bool]:
        try:
            return call()
        except UnfillableToken as exc:
            log.info("prefetch %s: token %s cannot be filled from this context", key, exc.token)
        except FHIRError as exc:
            log.info("prefetch %s: fetch failed (%s, status %s)", key, type(exc).__name__, exc.status)
        return None, False

    if executor is None or len(jobs) == 1:
        for key, (fn, args) in jobs.items():
            results[key] = outcome(key, lambda fn=fn, args=args: fn(*args))
        return results
    futures = {key: executor.submit(outcome, key, lambda fn=fn, args=args: fn(*args))
               for key, (fn, args) in jobs.items()}
    wait(futures.values(), timeout=timeout_s)
    for key, future in futures.items():
        results[key] = future.result() if future.done() else (None, False)
    return results
