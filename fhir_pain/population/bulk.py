"""FHIR Bulk Data Access client: kick-off, status polling, the manifest, and DELETE of the job.

    kick-off   GET [base]/Patient/$export or [base]/Group/{id}/$export (or [base]/$export for our own
               DetectedIssues) with ``Prefer: respond-async``,
               ``_type`` = only what the rules read, ``_since`` = the cursor on incremental runs -> 202 and the
               status URL (Content-Location)
    status     GET it until 200 + manifest; 202 means running (``X-Progress`` is reported, ``Retry-After`` is
               honoured within [min_poll_s, max_poll_s]); 429 likewise; a total wait bound (``max_wait_s``)
               after which the job is cancelled; a 4xx/5xx OperationOutcome is a failed export
    cancel     DELETE the status URL: when interrupted (SIGINT/SIGTERM sets ``stop``), failed, timed out, and
               once its files are downloaded (the server may then drop them)

Only the FHIR server's own URL and the origins the caller allows are ever called; the status URL must lie on
one of them too. The bearer token (static, or a SMART Backend Services callable) goes with every request.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from urllib.parse import urlencode, urljoin

import orjson
import requests

from fhir_pain.population.ndjson import OffOrigin, check_origin

log = logging.getLogger(__name__)

# What the rules read (fhir_pain.poller.cycle.patient_queries)
RULE_TYPES = ("Patient", "Observation", "Condition", "Procedure", "MedicationRequest")
# Our own DetectedIssues, to reconcile against: a system-level export of their own, because a server need not
# put DetectedIssue in the Patient compartment (sekmet-fhir 0.1.1 does not index DetectedIssue.patient)
ISSUE_TYPES = ("DetectedIssue",)
MAX_MANIFEST_BYTES = 16 << 20


class ExportError(Exception):
    """The export could not be had; ``cause`` names why for the summary."""
    cause = "export-failed"


class ExportTimeout(ExportError):
    cause = "export-timeout"


class ExportInterrupted(ExportError):
    cause = "interrupted"


@dataclass
class Manifest:
    transaction_time: str
    output: list[dict]          # [{"type", "url", "count"?}]
    error: list[dict]
    requires_token: bool
    status_url: str


def _retry_after(value: str | None, default: float) -> float:
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class BulkClient:
    def __init__(self, base_url: str, *, auth: str | Callable[[], str] | None = None,
                 allowed_origins: list[str] | None = None, session: requests.Session | None = None,
                 timeout: tuple[float, float] = (5.0, 60.0), min_poll_s: float = 0.5, max_poll_s: float = 60.0,
                 max_wait_s: float = 6 * 3600.0, stop: threading.Event | None = None,
                 on_progress: Callable[[str], None] | None = None, sleep: Callable[[float], None] | None = None):
        self.base_url = base_url.rstrip("/")
        self.allowed = [self.base_url, *(allowed_origins or [])]
        self._auth = auth
        self.session = session or requests.Session()
        self.timeout = timeout
        self.min_poll_s = min_poll_s
        self.max_poll_s = max_poll_s
        self.max_wait_s = max_wait_s
        self.stop = stop or threading.Event()
        self.on_progress = on_progress
        self._sleep = sleep

    def headers(self, url: str | None = None) -> dict[str, str]:
        """The Authorization header: only toward the FHIR server and the allowed origins."""
        if url is not None:
            check_origin(url, self.allowed)
        token = self._auth() if callable(self._auth) else self._auth
        return {"Authorization": f"Bearer {token}"} if token else {}

    # -- kick-off -----------------------------------------------------------------------------------------------
    def kickoff(self, *, types: tuple[str, ...], since: str | None = None, group: str | None = None,
                system: bool = False) -> str:
        """Start an export (Patient level, Group level, or system level); returns the status URL."""
        path = "$export" if system else f"Group/{group}/$export" if group else "Patient/$export"
        params = {"_type": ",".join(types)}
        if since:
            params["_since"] = since
        url = f"{self.base_url}/{path}?{urlencode(params, safe=',$')}"
        try:
            resp = self.session.get(url, headers={"Accept": "application/fhir+json", "Prefer": "respond-async",
                                                  **self.headers()}, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise ExportError(f"kick-off failed: {type(exc).__name__}") from None
        with resp:
            if resp.status_code != 202:
                raise ExportError(f"kick-off answered HTTP {resp.status_code}{_diagnostics(resp)}")
            location = resp.headers.get("Content-Location")
        if not location:
            raise ExportError("kick-off answered 202 without a Content-Location")
        status_url = urljoin(url, location)
        try:
            check_origin(status_url, self.allowed)
        except OffOrigin as exc:
            raise ExportError(str(exc)) from None
        return status_url

    # -- status -------------------------------------------------------------------------------------------------
    def wait(self, status_url: str) -> Manifest:
        """Poll until the manifest; cancels the job (DELETE) on a failure, the time bound or ``stop``."""
        deadline = time.monotonic() + self.max_wait_s
        try:
            while True:
                if self.stop.is_set():
                    raise ExportInterrupted("interrupted while the export was running")
                try:
                    resp = self.session.get(status_url, headers={"Accept": "application/json",
                                                                 **self.headers(status_url)},
                                            timeout=self.timeout, allow_redirects=False, stream=True)
                except requests.RequestException as exc:
                    log.warning("bulk status poll failed (%s); polling again", type(exc).__name__)
                    resp = None
                if resp is not None:
                    with resp:
                        if resp.status_code == 200:
                            return self._manifest(resp, status_url)
                        # 202 running, 429 too soon, 502-504 a proxy's hiccup: poll again; 500 (the spec's
                        # answer for a failed job) and any other status: the export failed
                        if resp.status_code not in (202, 429, 502, 503, 504):
                            raise ExportError(f"export failed: HTTP {resp.status_code}{_diagnostics(resp)}")
                        progress = resp.headers.get("X-Progress")
                        if progress and self.on_progress:
                            self.on_progress(progress[:100])
                        pause = _retry_after(resp.headers.get("Retry-After"), self.min_poll_s)
                else:
                    pause = self.min_poll_s
                pause = min(max(pause, self.min_poll_s), self.max_poll_s)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ExportTimeout(f"export not finished after {self.max_wait_s:g}s")
                self._pause(min(pause, left))
        except ExportError:
            self.cancel(status_url)
            raise

    def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self.stop.wait(seconds)

    def _manifest(self, resp: requests.Response, status_url: str) -> Manifest:
        body = bytearray()
        for chunk in resp.iter_content(1 << 16):
            body += chunk
            if len(body) > MAX_MANIFEST_BYTES:
                raise ExportError(f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ExportError("the manifest is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("output", []), list) \
                or not isinstance(data.get("transactionTime"), str):
            raise ExportError("the manifest has no transactionTime or output list")
        output = [o for o in data.get("output") or () if isinstance(o, dict) and isinstance(o.get("url"), str)]
        errors = [o for o in data.get("error") or () if isinstance(o, dict) and isinstance(o.get("url"), str)]
        return Manifest(data["transactionTime"], output, errors, bool(data.get("requiresAccessToken", True)),
                        status_url)

    def cancel(self, status_url: str) -> bool:
        """DELETE the job (best effort: a server that already dropped it answers 404)."""
        try:
            resp = self.session.delete(status_url, headers=self.headers(status_url), timeout=self.timeout,
                                       allow_redirects=False)
            resp.close()
            return resp.status_code < 300
        except (requests.RequestException, OffOrigin) as exc:
            log.warning("could not DELETE the bulk export job (%s)", type(exc).__name__)
            return False


def _diagnostics(resp: requests.Response) -> str:
    """The first issue's diagnostics of an OperationOutcome body, short (no patient data is expected there)."""
    try:
        raw = resp.raw.read(65536, decode_content=True) if resp.raw is not None else b""
        outcome = orjson.loads(raw)
        text = outcome["issue"][0].get("diagnostics") or outcome["issue"][0].get("code")
        return f": {str(text)[:200]}" if text else ""
    except Exception:  # noqa: BLE001 - diagnostics are a courtesy
        return ""
