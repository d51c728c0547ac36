"""Prefetch resolution: use what the EHR sent, fetch what it did not, and say what could not be had.

Per declared key (CDS Hooks 2.0.1 §Prefetch, and HAPI's ``CdsPrefetchSvc`` for absent-vs-null):
- present and usable                  -> used as is (a searchset with a ``next`` link gets its pages read);
- present and ``null``                -> the EHR says there is no data: ``None`` (for a required read: 412);
- absent, an ``OperationOutcome``, or
  not the shape the template asks for -> fetched from ``fhirServer`` with the call's bearer token;
- not obtainable                      -> 412 if the service declared the key required, else ``missing``.

Fetching is bounded: only the call's ``fhirServer`` and only if configuration allows it (so the token is
never sent anywhere else); one deadline for all keys together, bodies included; one byte budget for all the
responses of the call. The keys are fetched in parallel in threads of the call's own (a pool shared by calls
would let a slow server hold every slot, and calls to healthy servers would starve behind it).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import cache
from typing import Any

from .errors import PreconditionFailed
from .fhir_client import (DEFAULT_MAX_RESPONSE_BYTES, FHIRClient, FHIRError, FHIRNotFound, FHIRResponseTooLarge,
                          FHIRTimeout, FHIRUnauthorized, URLNotAllowed, is_allowed)
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
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # decoded, all responses of one call together


class RequiredPrefetchMissing(PreconditionFailed):
    """412: the keys a service declared required could not be had. The OperationOutcome names them all."""

    def __init__(self, keys: list[str], reasons: Mapping[str, str]):
        super().__init__("required prefetch data could not be obtained: "
                         + "; ".join(f"{k} ({reasons[k]})" for k in keys), expression=keys[0])
        self.keys = tuple(keys)

    def outcome(self) -> dict[str, Any]:
        out = super().outcome()
        out["issue"][0]["expression"] = list(self.keys)
        return out


# why a key could not be had, in words for the caller (never data: the OperationOutcome goes to the EHR)
_LATE = "the FHIR server did not answer within the deadline"
_REASONS = ((FHIRTimeout, _LATE),
            (FHIRResponseTooLarge, "the FHIR server's answer is larger than allowed"),
            (FHIRUnauthorized, "the FHIR server refused the access token"),
            (FHIRNotFound, "not found on the FHIR server"),
            (UnfillableToken, "its template cannot be filled from this context"))


def _reason(exc: Exception) -> str:
    for cls, text in _REASONS:
        if isinstance(exc, cls):
            return text
    status = getattr(exc, "status", None)
    if status is not None and status >= 300:
        return f"the FHIR server answered {status}"
    return "the FHIR server could not be reached, or its answer is not usable FHIR"


# templates are the services' own (a few, fixed at startup): classified once, not once per key per call
@cache
def _is_search(template: str) -> bool:
    path = template.split("?", 1)[0]
    return "?" in template or "/" not in path.strip("/")


@cache
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
    # no allowed base (the default): nothing to parse the URL for, it could only be refused
    if not policy.allowed_bases or not isinstance(server, str) or not is_allowed(server, policy.allowed_bases):
        return None
    try:
        # allowed_bases = the call's own server: a next link to another (even allowed) server would carry
        # this EHR's token there
        return FHIRClient(server, auth=_bearer(body), allowed_bases=[server], timeout=policy.timeout,
                          deadline_s=policy.deadline_s, retries=0, max_pages=policy.max_pages,
                          max_response_bytes=policy.max_response_bytes, max_total_bytes=policy.max_response_bytes)
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
    reasons: dict[str, str] = {}
    if client is not None:
        with client:
            jobs = {}
            for key in to_fetch:
                jobs[key] = (_fetch, (client, service.prefetch[key], context))
            for key in to_page:
                jobs[key] = (_complete_pages, (client, resolved[key]))
            for key, (data, complete, reason) in _run(jobs, executor, policy.deadline_s + 0.5).items():
                if data is not None or key in to_page:
                    resolved[key] = data
                if not complete:
                    incomplete.add(key)
                    reasons[key] = reason or "not every page of the search could be read"
    else:
        incomplete.update(to_page)
        reasons.update((key, "further pages, and no allowed fhirServer to read them") for key in to_page)

    missing = [k for k in service.prefetch if k not in resolved or k in incomplete]
    for key in service.required_prefetch:
        # null for a read says the resource does not exist (for a search it says "no matches", which is data)
        if resolved.get(key, ...) is None and not _is_search(service.prefetch[key]):
            reasons[key] = "the EHR sent null: no such resource"
    required = [k for k in service.prefetch if k in service.required_prefetch and (k in missing or k in reasons)]
    if required:
        raise RequiredPrefetchMissing(required, {
            k: reasons.get(k, "not in the prefetch, and no allowed fhirServer to fetch it from") for k in required})
    return resolved, tuple(missing)


def _run(jobs: dict[str, tuple], executor: Executor | None,
         timeout_s: float) -> dict[str, tuple[Any, bool, str | None]]:
    """Run the fetch jobs, in parallel when there are several: (data, complete, why not) per key; a job that
    fails yields (None, False, the reason).

    Without an ``executor`` the threads are the call's own, as many as it has jobs, and end with it: each job
    ends by the client's deadline, so nothing outlives the call for long, and no other call waits for them."""
    results: dict[str, tuple[Any, bool, str | None]] = {}

    def outcome(key: str, call) -> tuple[Any, bool, str | None]:
        try:
            data, complete = call()
            return data, complete, None
        except UnfillableToken as exc:
            log.info("prefetch %s: token %s cannot be filled from this context", key, exc.token)
            return None, False, _reason(exc)
        except FHIRError as exc:
            log.info("prefetch %s: fetch failed (%s, status %s)", key, type(exc).__name__, exc.status)
            return None, False, _reason(exc)

    if len(jobs) == 1:
        for key, (fn, args) in jobs.items():
            results[key] = outcome(key, lambda fn=fn, args=args: fn(*args))
        return results
    pool = executor or ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="cds-prefetch")
    try:
        futures = {key: pool.submit(outcome, key, lambda fn=fn, args=args: fn(*args))
                   for key, (fn, args) in jobs.items()}
        wait(futures.values(), timeout=timeout_s)
    finally:
        if executor is None:
            pool.shutdown(wait=False, cancel_futures=True)
    for key, future in futures.items():
        results[key] = future.result() if future.done() else (None, False, _LATE)
    return results
