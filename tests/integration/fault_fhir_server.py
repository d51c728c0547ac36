"""A FHIR server on a loopback port that misbehaves on purpose, for the fetch fault tests.

Each behaviour has its own FHIR base, ``server.base(mode)`` = ``http://127.0.0.1:PORT/<mode>/fhir``, so one
allowlist entry (``server.root_url``) covers them all and every call says by its ``fhirServer`` what it meets:

- ``healthy``        answers at once with realistic data: the Patient, a CYP2D6 *4/*4 genotype to the PGx search,
                     an empty searchset to every other search;
- ``drip``           status line and headers at once, then the body one byte every ``drip_s`` (a complete
                     Patient in the end, tens of seconds later);
- ``drip-headers``   the status line and headers one byte every ``drip_s``;
- ``stall``          headers, half the body, then nothing;
- ``gzip-bomb``      ``Content-Encoding: gzip``: 512 MiB of zeros, compressed while it is sent (about 0.5 MiB on
                     the wire), no Content-Length;
- ``json-bomb``      as gzip-bomb, but the 512 MiB are a searchset Bundle of ever more Observations;
- ``endless``        every search page links to a next page, for ever;
- ``not-json``, ``not-a-resource`` (a JSON array), ``not-a-bundle`` (a Patient where a search was asked),
  ``bad-entries`` (entries that are not resources), ``entry-not-a-list``, ``link-not-a-list``, ``empty``
  (200 with no body), ``bad-gzip`` (gzip declared, garbage sent).

``requests[mode]`` counts the requests each behaviour received. ``stop()`` ends every slow answer at once.
"""
from __future__ import annotations

import json
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from golden.fhir_builders import genotype, patient

BOMB_BYTES = 512 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a hundred fetches connect at once in the starvation tests


class FaultFHIRServer:
    def __init__(self, drip_s: float = 0.05):
        self.drip_s = drip_s
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                try:
                    owner._serve(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: that is the point of most behaviours

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.root_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def base(self, mode: str) -> str:
        return f"{self.root_url}/{mode}/fhir"

    def start(self) -> FaultFHIRServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    # -- behaviours -----------------------------------------------------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        mode, _, rest = parts.path.lstrip("/").partition("/fhir/")
        with self._lock:
            self.requests[mode] += 1
        query = parse_qs(parts.query)
        search = "/" not in rest
        if mode == "healthy":
            return self._json(h, self._healthy(rest, query))
        if mode == "drip":
            body = json.dumps(patient("p1")).encode() + b" " * 400  # about 40 s at 20 bytes a second
            self._head(h, 200, {"Content-Length": str(len(body))})
            return self._drip(h, body)
        if mode == "drip-headers":
            return self._drip(h, b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nX-Padding: "
                              + b"x" * 4000 + b"\r\n\r\n{}")
        if mode == "stall":
            body = json.dumps(patient("p1")).encode()
            self._head(h, 200, {"Content-Length": str(len(body))})
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            self._stopping.wait(60)
            return None
        if mode in ("gzip-bomb", "json-bomb"):
            return self._bomb(h, json_body=mode == "json-bomb")
        if mode == "endless":
            page = int(query.get("page", ["1"])[0])
            return self._json(h, {"resourceType": "Bundle", "type": "searchset",
                                  "link": [{"relation": "next", "url": f"{self.base(mode)}/{rest}?page={page + 1}"}],
                                  "entry": [{"resource": genotype(f"g{page}", "p1", "CYP2D6", "*4/*4")}]})
        if mode == "not-json":
            return self._raw(h, 200, b"<html><body>Service Temporarily Unavailable</body></html>", "text/html")
        if mode == "not-a-resource":
            return self._raw(h, 200, b'[{"resourceType": "Patient"}]')
        if mode == "not-a-bundle":
            return self._json(h, patient("p1") if search else {"resourceType": "Bundle", "type": "searchset"})
        if mode == "bad-entries":
            if not search:
                return self._json(h, patient("p1"))
            return self._json(h, {"resourceType": "Bundle", "type": "searchset",
                                  "entry": [1, "entry", None, {"resource": 5}, {"fullUrl": "x"},
                                            {"resource": genotype("g1", "p1", "CYP2D6", "*4/*4")}]})
        if mode == "entry-not-a-list":
            return self._json(h, {"resourceType": "Bundle", "type": "searchset", "entry": {"resource": 1}}
                              if search else patient("p1"))
        if mode == "link-not-a-list":
            return self._json(h, {"resourceType": "Bundle", "type": "searchset", "link": 5, "entry": []}
                              if search else patient("p1"))
        if mode == "empty":
            return self._raw(h, 200, b"")
        if mode == "bad-gzip":
            return self._raw(h, 200, b"\x1f\x8b\x08\x00 this is not gzip at all", headers={"Content-Encoding": "gzip"})
        return self._raw(h, 404, b'{"resourceType":"OperationOutcome","issue":[{"severity":"error",'
                                 b'"code":"not-found"}]}')

    @staticmethod
    def _healthy(rest: str, query: dict) -> dict:
        if rest.startswith("Patient/"):
            return patient(rest.split("/", 1)[1])
        pid = query.get("patient", ["p1"])[0]
        entries = []
        if rest == "Observation" and "84413-4" in query.get("code", [""])[0]:
            entries = [{"resource": genotype("g1", pid, "CYP2D6", "*4/*4")}]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}

    def _drip(self, h: BaseHTTPRequestHandler, data: bytes) -> None:
        for i in range(len(data)):
            if self._stopping.wait(self.drip_s):
                return
            h.wfile.write(data[i:i + 1])
            h.wfile.flush()

    def _bomb(self, h: BaseHTTPRequestHandler, *, json_body: bool) -> None:
        """BOMB_BYTES inflated, compressed a MiB at a time as it goes out: never held whole, never on disk."""
        self._head(h, 200, {"Content-Encoding": "gzip", "Connection": "close"})
        gz = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
        if json_body:
            entry = b'{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}}},'
            head = b'{"resourceType":"Bundle","type":"searchset","entry":['
            block = entry * (1024 * 1024 // len(entry))
        else:
            head, block = b"", bytes(1024 * 1024)
        sent = 0
        h.wfile.write(gz.compress(head))
        while sent < BOMB_BYTES and not self._stopping.is_set():
            h.wfile.write(gz.compress(block))
            sent += len(block)
        h.wfile.write(gz.flush())
        h.close_connection = True

    @staticmethod
    def _head(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/fhir+json")
        for key, value in headers.items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.flush()

    def _json(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        self._raw(h, 200, json.dumps(body).encode())

    def _raw(self, h: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/fhir+json",
             headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
