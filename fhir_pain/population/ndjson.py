"""Streaming NDJSON: one resource at a time from a Bulk Data file, never the whole file in memory.

``resources(chunks)`` turns byte chunks (an HTTP body, a local file) into parsed resources; a line that is not a
JSON object naming a ``resourceType`` is counted in ``Tally.malformed`` (with its line number, first few only)
and skipped: one bad line never stops a sweep. ``download(...)`` streams one file's URL, checking first that
it lies on the FHIR server's own origin or an allowed one, and stops at ``max_bytes`` of decoded body (a gzip
bomb counts by what it inflates to) or after ``max_seconds`` (each read has its own timeout as well). A single line longer than ``max_line_bytes`` is malformed, not buffered.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
import requests
import urllib3

READ_BYTES = 1 << 14
DEFAULT_MAX_FILE_BYTES = 8 << 30      # 8 GiB of decoded NDJSON per file
DEFAULT_MAX_LINE_BYTES = 16 << 20     # one resource: 16 MiB
DEFAULT_MAX_FILE_SECONDS = 4 * 3600.0  # one file; each read also has its own timeout
MALFORMED_KEPT = 20                   # line numbers kept for the summary


class NDJSONError(Exception):
    """A file that cannot be used at all (the sweep stops, says why, and advances nothing)."""


class OffOrigin(NDJSONError):
    """A manifest URL on neither the FHIR server's origin nor an allowed one: never fetched."""


class FileTooLarge(NDJSONError):
    """A file larger than the byte limit: what was read of it is not used."""


class DownloadFailed(NDJSONError):
    """The file could not be read (HTTP status, network)."""


@dataclass
class Tally:
    lines: int = 0
    resources: int = 0
    bytes: int = 0
    malformed: int = 0
    malformed_lines: list[int] = field(default_factory=list)

    def bad(self, line: int) -> None:
        self.malformed += 1
        if len(self.malformed_lines) < MALFORMED_KEPT:
            self.malformed_lines.append(line)


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def check_origin(url: str, allowed: Iterable[str]) -> None:
    """Raise OffOrigin unless ``url`` is http(s) on one of the ``allowed`` origins (base URLs or origins)."""
    if urlsplit(url).scheme not in ("http", "https") or origin(url) not in {origin(a) for a in allowed}:
        raise OffOrigin(f"manifest URL off the allowed origins: {_redact(url)}")


def _redact(url: str) -> str:
    """Scheme, host and path, without a query that may carry a signature or a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def resources(chunks: Iterable[bytes], tally: Tally, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES,
              max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, name: str = "file",
              deadline: float | None = None) -> Iterator[dict]:
    """The resources of an NDJSON byte stream, in order (see the module). ``deadline``: a ``time.monotonic()``
    instant after which the stream is given up (a server that drips its file)."""
    pending = bytearray()
    skipping = False          # inside a line already judged too long: drop bytes up to its end
    for chunk in chunks:
        if deadline is not None and time.monotonic() > deadline:
            raise DownloadFailed(f"{name}: not read within its time limit")
        if not chunk:
            continue
        tally.bytes += len(chunk)
        if tally.bytes > max_bytes:
            raise FileTooLarge(f"{name}: more than {max_bytes} bytes")
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not skipping:
                    pending += chunk[start:]
                    if len(pending) > max_line_bytes:
                        tally.lines += 1
                        tally.bad(tally.lines)
                        pending.clear()
                        skipping = True
                break
            if skipping:
                skipping = False
            else:
                pending += chunk[start:end]
                resource = _line(pending, tally)
                if resource is not None:
                    yield resource
            pending.clear()
            start = end + 1
    if pending and not skipping:
        resource = _line(pending, tally)
        if resource is not None:
            yield resource


def _line(raw: bytearray, tally: Tally) -> dict | None:
    if not raw.strip():
        return None          # blank lines (a trailing newline, CRLF files) are not resources
    tally.lines += 1
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        tally.bad(tally.lines)
        return None
    if not (isinstance(value, dict) and isinstance(value.get("resourceType"), str)):
        tally.bad(tally.lines)
        return None
    tally.resources += 1
    return value


def download(session: requests.Session, url: str, tally: Tally, *, allowed: Iterable[str],
             headers: dict[str, str] | None = None, timeout: tuple[float, float] = (5.0, 60.0),
             max_bytes: int = DEFAULT_MAX_FILE_BYTES, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
             max_seconds: float = DEFAULT_MAX_FILE_SECONDS) -> Iterator[dict]:
    """Stream the resources of one manifest file (see the module). Redirects are not followed: a redirect
    could leave the allowed origins."""
    check_origin(url, allowed)
    name = _redact(url)
    deadline = time.monotonic() + max_seconds
    try:
        response = session.get(url, headers={"Accept": "application/fhir+ndjson", **(headers or {})},
                               stream=True, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise DownloadFailed(f"{name}: {type(exc).__name__}") from None
    with response:
        if response.status_code != 200:
            raise DownloadFailed(f"{name}: HTTP {response.status_code}")
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes \
                and not response.headers.get("Content-Encoding"):
            raise FileTooLarge(f"{name}: {declared} bytes declared, the limit is {max_bytes}")
        try:
            yield from resources(_arriving(response), tally, max_bytes=max_bytes,
                                 max_line_bytes=max_line_bytes, name=name, deadline=deadline)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise DownloadFailed(f"{name}: {type(exc).__name__} while reading") from None


def _arriving(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, decoded: one socket read at a time (``iter_content`` waits for a full chunk,
    so a server dripping bytes would never reach the time limit's check). A compressed read inflates to at
    most about a thousand times its size: READ_BYTES keeps that in the megabytes."""
    while True:
        data = response.raw.read1(READ_BYTES, decode_content=True)
        if not data:
            return
        yield data
