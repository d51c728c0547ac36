"""A small FHIR REST client over ``requests``: bounded in time, confined to allowed base URLs, typed errors.

Two callers with different needs share it:
- the hook path (prefetch fallback) builds one client per call with ``retries=0`` and a ``deadline_s`` well
  under the EHR's patience, and only the call's own ``fhirServer`` as allowed base (the bearer token it carries
  must never travel to another server, not even one that a ``next`` link names);
- the poller uses retries with backoff (429/5xx, honouring ``Retry-After``) and no deadline.

The deadline bounds the whole call, body included: socket timeouts bound each read, not a response, so a server
that drips a byte at a time would hold a plain ``requests`` call for as long as it likes (headers as well as
body). A client with a deadline therefore shuts its connections down when the deadline passes (``_Watch``).
Bodies are read as a stream and decoded a chunk at a time against a byte cap per response and, optionally, per
client: a gzip bomb costs the cap, not the worker.

Every URL, including ``next`` links and ``Location`` headers, is checked against the allowed bases before any
request is sent: a server or a template cannot steer the client elsewhere (SSRF).
"""
from __future__ import annotations

import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

FHIR_JSON = "application/fhir+json"
DEFAULT_TIMEOUT = (1.0, 2.0)  # connect, read (seconds)
MAX_RETRY_AFTER_S = 60.0
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # decoded; a patient's prefetch data is a few hundred KiB
_CHUNK = 64 * 1024  # decoded bytes per read: urllib3 inflates at most this much at a time
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # a scheme: not a path relative to the base


class FHIRError(Exception):
    """A FHIR call failed. ``status`` is the HTTP status when there was a response; ``outcome`` its
    OperationOutcome when the server sent one."""

    def __init__(self, message: str, *, status: int | None = None, outcome: dict | None = None,
                 url: str | None = None):
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.url = url


class FHIRUnauthorized(FHIRError):
    """401 or 403: the token is missing, expired or lacks the scope."""


class FHIRNotFound(FHIRError):
    """404 or 410."""


class FHIRServerError(FHIRError):
    """5xx, 429 after the retries, a connection failure, or a body that is not FHIR JSON."""


class FHIRTimeout(FHIRError):
    """A connect/read timeout or the client's overall deadline passed."""


class URLNotAllowed(FHIRError):
    """The URL is not under an allowed FHIR base; nothing was sent."""


class FHIRResponseTooLarge(FHIRError):
    """The decoded body passed the client's byte cap (per response, or all responses of the client together)."""


class FHIRTooManyPages(FHIRError):
    """A search had more pages than ``max_pages``; ``search`` refuses to return part of a result."""


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_tls_or_loopback(url: object) -> bool:
    """Whether ``url`` is https, or http to this machine (local development, tests): anything else would carry
    tokens or keys in clear text."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme.lower() == "https" or (parts.scheme.lower() == "http" and host in LOOPBACK_HOSTS)


def normalize_base(url: str) -> str:
    """``url`` with a lower-case scheme and host, default port dropped and no trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise URLNotAllowed(f"not an absolute http(s) URL: {url!r}")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise URLNotAllowed(f"invalid port in {url!r}") from None
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    if "@" in parts.netloc:  # even an empty userinfo: "https://allowed@evil" tricks start here
        raise URLNotAllowed("credentials in a FHIR base URL are not allowed")
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


# urlsplit drops tabs and newlines anywhere and urllib3 does not, and some servers read "\\" as "/": a URL
# holding any of these before its query could be checked as one host or path and sent to another. A real FHIR
# URL has none there, and no control character anywhere (a space in a search value is encoded when sent).
_AMBIGUOUS_BEFORE_QUERY = re.compile(r"[\x00-\x20\x7f\\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# a bearer token as RFC 6750 allows it (b64token), widened to any visible ASCII: what an HTTP header can carry
_TOKEN = re.compile(r"[\x21-\x7e]+")


def is_allowed(url: str, allowed_bases: Iterable[str]) -> bool:
    """True when ``url`` is one of ``allowed_bases`` or lies below one of them (on a path-segment boundary).

    Hosts compare exactly after lower-casing: no trailing-dot, IDN or userinfo equivalents (an allowed host
    in another spelling is refused, never a different host accepted)."""
    if not isinstance(url, str) or _CONTROL.search(url):
        return False
    if _AMBIGUOUS_BEFORE_QUERY.search(re.split(r"[?#]", url, maxsplit=1)[0]):
        return False
    try:
        parts = urlsplit(url)
        if not (parts.hostname or "").isascii():  # an IDN host must be listed, and called, in its xn-- form
            return False
        target = normalize_base(url.split("?", 1)[0].split("#", 1)[0])
    except URLNotAllowed:
        return False
    if any(seg in (".", "..") for seg in parts.path.split("/")) or "%2e" in parts.path.lower():
        return False  # dot segments could climb out of the allowed base on the server side
    for base in allowed_bases:
        try:
            base = normalize_base(base)
        except URLNotAllowed:
            continue
        if target == base or target.startswith(base + "/"):
            return True
    return False


_tracking = threading.local()  # the watch of the request this thread is sending, read by _Watched.request


def _cut(conn: HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:  # shutdown, not close: it wakes a read blocked in another thread at once
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the base method also on an SSLSocket
        except OSError:
            pass


class _Watch:
    """At the deadline, shuts down every connection the client has used: any read in progress ends at once
    (and the request fails as a timeout). One timer thread per client, started by its first request."""

    def __init__(self, deadline: float):
        self._deadline = deadline
        self._conns: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.fired = False

    def track(self, conn: HTTPConnection) -> None:
        with self._lock:
            if self._timer is None and not self.fired:
                self._timer = threading.Timer(max(0.0, self._deadline - time.monotonic()), self._fire)
                self._timer.daemon = True
                self._timer.start()
            self._conns.add(conn)
            fired = self.fired
        if fired:
            _cut(conn)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            conns = list(self._conns)
        for conn in conns:
            _cut(conn)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._conns.clear()


class _Watched:
    def request(self, *args, **kwargs):  # every request on a connection, new or reused, before it is sent
        watch = getattr(_tracking, "watch", None)
        if watch is not None:
            watch.track(self)
        return super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """The transport of a client with a deadline: its connections are known to its watch, and a request the
    watch cut reads as the timeout it is."""

    def __init__(self, watch: _Watch):
        self._watch = watch
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def send(self, request, *args, **kwargs):
        _tracking.watch = self._watch
        try:
            return super().send(request, *args, **kwargs)
        except requests.RequestException:
            if self._watch.fired:
                raise requests.ReadTimeout("the client's deadline passed", request=request) from None
            raise
        finally:
            _tracking.watch = None


class FHIRClient:
    def __init__(self, base_url: str, *, auth: str | Callable[[], str] | None = None,
                 allowed_bases: list[str] | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 deadline_s: float | None = None, retries: int = 0, backoff_s: float = 0.5,
                 max_pages: int = 10, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 max_total_bytes: int | None = None, session: requests.Session | None = None):
        """``deadline_s``: the whole life of the client, every request and body included (the hook path).
        ``max_response_bytes``: decoded bytes of one response; ``max_total_bytes``: of all its responses."""
        self.base_url = normalize_base(base_url)
        self.allowed_bases = [normalize_base(b) for b in (allowed_bases or [self.base_url])]
        if not is_allowed(self.base_url, self.allowed_bases):
            raise URLNotAllowed(f"FHIR base {self.base_url} is not allowed by configuration", url=self.base_url)
        self._auth = auth
        self.timeout = (float(timeout[0]), float(timeout[1]))
        self._deadline = None if deadline_s is None else time.monotonic() + float(deadline_s)
        self.retries = max(0, int(retries))
        self.backoff_s = float(backoff_s)
        self.max_pages = max(1, int(max_pages))
        self.max_response_bytes = int(max_response_bytes)
        self.max_total_bytes = None if max_total_bytes is None else int(max_total_bytes)
        self._bytes_read = 0
        self._bytes_lock = threading.Lock()
        self._own_session = session is None
        self.session = session or requests.Session()
        self._watch = None
        if self._deadline is not None:
            self._watch = _Watch(self._deadline)
            adapter = _DeadlineAdapter(self._watch)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)

    # -- context management: a client made for one hook call closes its session with it
    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        if self._own_session:
            self.session.close()

    def __enter__(self) -> FHIRClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API ---------------------------------------------------------------------------------------------
    def read(self, path: str) -> dict:
        """GET one resource, e.g. ``read("Patient/1")``."""
        return self._request("GET", self.url_for(path))

    def get_bundle(self, path: str) -> dict:
        """GET a search and follow ``next`` links (up to ``max_pages``, only to allowed bases), merging every
        page's entries into one searchset Bundle. If not every page could be read, the merged Bundle keeps the
        unread ``next`` link: its presence tells the caller that the result is incomplete."""
        return self._collect(self.url_for(path))

    def search(self, query: str) -> list[dict]:
        """Every matching resource of a search (e.g. ``"Observation?patient=1&code=..."``), all pages."""
        return self._resources(self.url_for(query))

    def search_url(self, url: str) -> list[dict]:
        """As ``search`` for an absolute URL (which must lie under an allowed base)."""
        return self._resources(url)

    def create(self, resource: dict) -> dict:
        # a POST the server may have applied is never sent again: that would create the resource twice
        return self._write("POST", self.url_for(_resource_type(resource)), resource, idempotent=False,
                           resend_unsure=False)

    def update(self, resource: dict) -> dict:
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid:
            raise ValueError("update needs a resource with an id")
        return self._write("PUT", self.url_for(f"{_resource_type(resource)}/{rid}"), resource, idempotent=True)

    def conditional_create(self, resource: dict, if_none_exist: str) -> dict:
        """POST with ``If-None-Exist`` (e.g. ``"identifier=sys|val"``): the existing match or the new resource."""
        return self._write("POST", self.url_for(_resource_type(resource)), resource, idempotent=True,
                           headers={"If-None-Exist": if_none_exist})

    def transaction(self, bundle: dict) -> dict:
        """POST a ``transaction`` Bundle to the base: the server applies every entry or none. Returns the
        ``transaction-response`` Bundle (one entry per request entry, in order).

        Sent again only when the server cannot have applied it: a 429, or a connection that never opened. A 5xx,
        a read timeout or a dropped connection may come after the commit, and a transaction of POSTs sent twice
        writes everything twice, so those are raised for the caller to decide (as ``create`` does for a 5xx).
        Entry URLs must be relative to the base or under an allowed base (``URLNotAllowed``, nothing sent)."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or \
                bundle.get("type") != "transaction" or not isinstance(bundle.get("entry", []), list):
            raise ValueError("transaction needs a Bundle of type transaction")
        entries = bundle.get("entry", [])
        for entry in entries:
            request = entry.get("request") if isinstance(entry, dict) else None
            if not isinstance(request, dict) or not isinstance(request.get("method"), str) or \
                    not isinstance(request.get("url"), str) or not request["url"]:
                raise ValueError("every transaction entry needs request.method and request.url")
            self.url_for(request["url"])
        answer = self._write("POST", self.base_url, bundle, idempotent=False, resend_unsure=False)
        got = answer.get("entry", [])
        if answer.get("resourceType") != "Bundle" or answer.get("type") != "transaction-response" or \
                not isinstance(got, list) or len(got) != len(entries):
            raise FHIRServerError("a transaction did not return one entry per request", url=_redact(self.base_url))
        for entry in got:
            status = _entry_status(entry)
            if status is not None and status >= 400:  # a conformant server fails the whole transaction instead
                raise FHIRServerError(f"a transaction answered 200 with an entry failing {status}: it may have "
                                      "been applied in part", status=status, url=_redact(self.base_url))
        return answer

    def batch_get(self, paths: list[str]) -> list[dict | FHIRError]:
        """Several reads/searches (paths relative to the base) in one ``batch`` Bundle: one round trip. Per path,
        in order: the resource (a searchset Bundle for a search, its ``next`` link kept: ``search_url`` reads
        the rest) or the typed error its entry carries. Only GETs, so it is retried like one."""
        for path in paths:
            if "://" in path:
                raise URLNotAllowed("batch entries are paths relative to the base", url=_redact(path))
            self.url_for(path)
        bundle = {"resourceType": "Bundle", "type": "batch",
                  "entry": [{"request": {"method": "GET", "url": path.lstrip("/")}} for path in paths]}
        answer = self._write("POST", self.base_url, bundle, idempotent=True)
        entries = answer.get("entry") or []
        if answer.get("resourceType") != "Bundle" or len(entries) != len(paths):
            raise FHIRServerError("a batch did not return one entry per request", url=_redact(self.base_url))
        out: list[dict | FHIRError] = []
        for path, entry in zip(paths, entries):
            entry = entry if isinstance(entry, dict) else {}
            resource = entry.get("resource")
            try:
                status = int(str((entry.get("response") or {}).get("status", "")).split()[0])
            except (ValueError, IndexError):
                status = 200 if isinstance(resource, dict) else 500
            if status < 300 and isinstance(resource, dict):
                out.append(resource)
            else:
                outcome = entry.get("response", {}).get("outcome") or resource
                outcome = outcome if isinstance(outcome, dict) and outcome.get("resourceType") == "OperationOutcome" \
                    else None
                out.append(_error_for(status, outcome, self.url_for(path)))
        return out

    def url_for(self, path_or_url: str) -> str:
        """The absolute URL for a path relative to the base (or an absolute URL), if allowed."""
        if _ABSOLUTE.match(path_or_url):
            url = path_or_url
        else:
            url = f"{self.base_url}/{path_or_url.lstrip('/')}"
        if not is_allowed(url, self.allowed_bases):
            raise URLNotAllowed("URL is not under an allowed FHIR base", url=_redact(url))
        return url

    # -- internals ----------------------------------------------------------------------------------------------
    def _resources(self, url: str) -> list[dict]:
        bundle = self._collect(url, strict=True)
        return [e["resource"] for e in bundle.get("entry", ()) if isinstance(e, dict)
                and isinstance(e.get("resource"), dict)]

    def _collect(self, url: str, *, strict: bool = False) -> dict:
        first = self._request("GET", self.url_for(url))
        if first.get("resourceType") != "Bundle" or not isinstance(first.get("entry") or [], list):
            raise FHIRServerError("a search did not return a Bundle", url=_redact(url))
        entries = _entries(first)
        next_url = next_link(first)
        pages = 1
        while next_url:
            next_url = urljoin(url, next_url)
            if pages >= self.max_pages:
                if strict:
                    raise FHIRTooManyPages(f"search has more than {self.max_pages} pages", url=_redact(url))
                break
            if not is_allowed(next_url, self.allowed_bases):
                if strict:
                    raise URLNotAllowed("next link leaves the allowed FHIR bases", url=_redact(next_url))
                break
            try:
                page = self._request("GET", next_url)
            except FHIRError:
                if strict:
                    raise
                break
            if page.get("resourceType") != "Bundle" or not isinstance(page.get("entry") or [], list):
                if strict:
                    raise FHIRServerError("a next page is not a Bundle", url=_redact(next_url))
                break
            entries.extend(_entries(page))
            pages += 1
            next_url = next_link(page)
        merged = {k: v for k, v in first.items() if k not in ("entry", "link")}
        merged.setdefault("type", "searchset")
        if entries:
            merged["entry"] = entries
        if next_url:  # an unread page remains
            merged["link"] = [{"relation": "next", "url": next_url}]
        return merged

    def _write(self, method: str, url: str, resource: dict, *, idempotent: bool,
               headers: dict[str, str] | None = None, resend_unsure: bool = True) -> dict:
        body = orjson.dumps(resource)
        hdrs = {"Content-Type": FHIR_JSON, "Prefer": "return=representation", **(headers or {})}
        result, response = self._send(method, url, body=body, headers=hdrs, idempotent=idempotent,
                                      resend_unsure=resend_unsure)
        if result is not None:
            return result
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        if location:  # the server answered without a body: read what it created
            return self._request("GET", self.url_for(urljoin(url + "/", location)))
        raise FHIRServerError(f"{method} returned neither a resource nor a Location", status=response.status_code,
                              url=_redact(url))

    def _request(self, method: str, url: str) -> dict:
        result, response = self._send(method, url, idempotent=True)
        if result is None:
            raise FHIRServerError("empty response body", status=response.status_code, url=_redact(url))
        return result

    def _token(self) -> str | None:
        return self._auth() if callable(self._auth) else self._auth

    def _remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _send(self, method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
              idempotent: bool, resend_unsure: bool = True) -> tuple[dict | None, requests.Response]:
        """``resend_unsure=False``: a timeout or connection failure is retried only if no connection was open
        (the request cannot have reached the server)."""
        if not is_allowed(url, self.allowed_bases):  # last line of defence: every request passes here
            raise URLNotAllowed("URL is not under an allowed FHIR base", url=_redact(url))
        attempt = 0
        while True:
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                raise FHIRTimeout("deadline passed before the FHIR call", url=_redact(url))
            connect, read = self.timeout
            if remaining is not None:
                connect, read = min(connect, remaining), min(read, remaining)
            hdrs = {"Accept": FHIR_JSON, **(headers or {})}
            token = self._token()
            if token:
                if not isinstance(token, str) or not _TOKEN.fullmatch(token):
                    # not even encodable as an HTTP header (non-Latin-1, CR/LF, spaces): never sent, nor logged
                    raise FHIRUnauthorized("the access token cannot be sent in an HTTP header", url=_redact(url))
                hdrs["Authorization"] = f"Bearer {token}"
            try:
                response = self.session.request(method, url, data=body, headers=hdrs, timeout=(connect, read),
                                                allow_redirects=False, stream=True)
                content = self._read_body(response, url)
            except requests.Timeout as exc:
                error: FHIRError = FHIRTimeout("FHIR server did not answer in time", url=_redact(url))
                retry_after = None
                if not (resend_unsure or never_sent(exc)):
                    raise error from None
            except requests.RequestException as exc:
                error = FHIRServerError(f"FHIR server unreachable ({type(exc).__name__})", url=_redact(url))
                retry_after = None
                if not (resend_unsure or never_sent(exc)):
                    raise error from None
            else:
                if response.status_code < 300:
                    return _json_body(content, response.status_code, url), response
                error = _http_error(response.status_code, content, url)
                retry_after = _retry_after(response)
                # a non-idempotent POST may have been applied on a 5xx: only 429 says it was not
                if not (response.status_code == 429 or (idempotent and response.status_code >= 500)):
                    raise error
            if attempt >= self.retries:
                raise error
            attempt += 1
            delay = retry_after if retry_after is not None else self.backoff_s * (2 ** (attempt - 1))
            remaining = self._remaining()
            if remaining is not None and delay >= remaining:
                raise error
            time.sleep(min(delay, MAX_RETRY_AFTER_S))

    def _read_body(self, response: requests.Response, url: str) -> bytearray:
        """The decoded body, read as it arrives, within the byte caps and the deadline. A connection failure
        is raised as the ``requests`` exception it is (``_send`` decides whether to retry), unless the
        deadline cut it."""
        try:
            length = response.headers.get("Content-Length", "")
            if not response.headers.get("Content-Encoding") and length.isdigit() and \
                    int(length) > self.max_response_bytes:
                raise self._too_large(url, response)
            body = bytearray()
            for chunk in response.iter_content(_CHUNK):
                body += chunk
                self._count(len(chunk), len(body), url, response)
                if self._expired():  # also here: a transport the watch does not know (a SOCKS proxy)
                    break
        except requests.RequestException as exc:
            if self._expired():
                raise FHIRTimeout("FHIR server did not answer in time", url=_redact(url)) from None
            if isinstance(exc, requests.exceptions.ContentDecodingError):
                raise FHIRServerError("response body does not decode as its Content-Encoding says",
                                      status=response.status_code, url=_redact(url)) from None
            raise
        finally:
            response.close()
        if self._expired():  # a body without a length, cut short by the watch, would read as complete
            raise FHIRTimeout("FHIR server did not answer in time", url=_redact(url))
        return body

    def _count(self, chunk: int, size: int, url: str, response: requests.Response) -> None:
        if size > self.max_response_bytes:
            raise self._too_large(url, response)
        if self.max_total_bytes is not None:
            with self._bytes_lock:
                self._bytes_read += chunk
                total = self._bytes_read
            if total > self.max_total_bytes:
                raise FHIRResponseTooLarge(f"FHIR responses together larger than {self.max_total_bytes} bytes",
                                           status=response.status_code, url=_redact(url))

    def _too_large(self, url: str, response: requests.Response) -> FHIRResponseTooLarge:
        return FHIRResponseTooLarge(f"FHIR response larger than {self.max_response_bytes} bytes",
                                    status=response.status_code, url=_redact(url))

    def _expired(self) -> bool:
        remaining = self._remaining()
        return remaining is not None and remaining <= 0


def _resource_type(resource: dict) -> str:
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(rtype, str) or not rtype.isalpha():
        raise ValueError("a FHIR resource needs a resourceType")
    return rtype


def never_sent(exc: requests.RequestException) -> bool:
    """Whether the request failed before a connection was open (refused, unresolvable, connect timeout)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None  # requests wraps urllib3's MaxRetryError
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _entry_status(entry: object) -> int | None:
    """The HTTP status of a batch/transaction response entry (``"201 Created"`` -> 201), None if unreadable."""
    response = entry.get("response") if isinstance(entry, dict) else None
    try:
        return int(str((response or {}).get("status", "")).split()[0])
    except (ValueError, IndexError, AttributeError):
        return None


def _entries(bundle: dict) -> list[dict]:
    """A Bundle's entries that are objects (an entry that is not cannot hold a resource)."""
    return [e for e in bundle.get("entry") or () if isinstance(e, dict)]


def next_link(bundle: dict) -> str | None:
    """The URL of a Bundle's ``next`` link, if any."""
    links = bundle.get("link")
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


_next_link = next_link  # the name fhir_pain.poller first imported


def _json_body(content: bytearray, status: int, url: str) -> dict | None:
    if not content:
        return None
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise FHIRServerError("response is not JSON", status=status, url=_redact(url)) from None
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise FHIRServerError("response is not a FHIR resource", status=status, url=_redact(url))
    return data


def _http_error(status: int, content: bytearray, url: str) -> FHIRError:
    outcome = None
    try:
        data = orjson.loads(content) if content else None
        if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome":
            outcome = data
    except orjson.JSONDecodeError:
        pass
    return _error_for(status, outcome, url)


def _error_for(status: int, outcome: dict | None, url: str) -> FHIRError:
    cls = (FHIRUnauthorized if status in (401, 403) else FHIRNotFound if status in (404, 410)
           else FHIRServerError if status >= 500 or status == 429 else FHIRError)
    return cls(f"FHIR server answered {status}", status=status, outcome=outcome, url=_redact(url))


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _redact(url: str) -> str:
    """The URL without its query: search parameters carry patient ids, which must not reach logs."""
    return url.split("?", 1)[0]
