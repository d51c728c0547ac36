"""A loopback HTTP proxy in front of the FHIR server that answers 500 when told to.

``fault(method, path) -> None | "before" | "after" | "throttle" | "stall" | "refuse"``: ``before`` answers 500
without forwarding (the write never happens); ``refuse`` answers 405 without forwarding (a server or gateway that
does not take that method there); ``after`` forwards, lets the server apply it, then answers 500 anyway (the
client cannot know it worked: the case that makes a retried POST a duplicate); ``throttle`` answers 429 with
``Retry-After: 1``; ``stall`` waits ``stall_s`` (or until ``stop()``) before forwarding: make it far longer than the
client's read timeout, it costs the test only that timeout. The server's own base URL in bodies and headers is
rewritten to the proxy's, so paging links lead back through the proxy.

Each request is forwarded on a new connection: a pooled one could be closed by the server's keep-alive timeout
just as it is reused, and the client would see a failure no test injected. If the server cannot be reached the
proxy answers 502 (a gateway's answer), never a dropped connection.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

Fault = Callable[[str, str], str | None]
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "server", "date"}


class FaultProxy:
    def __init__(self, upstream_root: str, fault: Fault | None = None, stall_s: float = 1.5):
        self.upstream_root = upstream_root.rstrip("/")
        self.stall_s = stall_s
        self.fault: Fault = fault or (lambda method, path: None)
        self.injected: list[tuple[str, str, str]] = []  # (method, path, decision)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy._serve(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.root_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.base_url = f"{self.root_url}/fhir"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()   # stalled handlers give up at once
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler, body: bytes | None) -> None:
        method, path = handler.command, handler.path
        decision = self.fault(method, path)
        if decision:
            self._record(method, path, decision)
        if decision == "before":
            return self._fail(handler)
        if decision == "refuse":
            return self._fail(handler, 405)
        if decision == "throttle":
            return self._fail(handler, 429, {"Retry-After": "1"})
        if decision == "stall" and self._stopping.wait(self.stall_s):
            return self._fail(handler, 503, diagnostics="proxy stopping")
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP | {"host"}}
        try:
            with requests.Session() as fresh:
                upstream = fresh.request(method, self.upstream_root + path, data=body, headers=headers,
                                         timeout=(5.0, 120.0), allow_redirects=False)
        except requests.RequestException:
            return self._fail(handler, 502, diagnostics="upstream unreachable")
        if decision == "after":
            return self._fail(handler)
        content = upstream.content.replace(self.upstream_root.encode(), self.root_url.encode())
        handler.send_response(upstream.status_code)
        for key, value in upstream.headers.items():
            if key.lower() not in _HOP:
                handler.send_header(key, value.replace(self.upstream_root, self.root_url))
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)

    def _record(self, method: str, path: str, decision: str) -> None:
        with self._lock:
            self.injected.append((method, path, decision))

    @staticmethod
    def _fail(handler: BaseHTTPRequestHandler, status: int = 500, headers: dict[str, str] | None = None,
              diagnostics: str = "injected failure") -> None:
        body = (b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception",'
                b'"diagnostics":"' + diagnostics.encode() + b'"}]}')
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Type", "application/fhir+json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
