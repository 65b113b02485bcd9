"""A reverse proxy in front of a real service (OpenBao, moto, the OpenID provider) that
misbehaves on request, for the fault tests.

The service stays real: requests the plan does not touch are forwarded unchanged (the
Host header too, since SigV4 signs it). A test queues faults for the next matching
requests, then checks what the proxy saw:

    proxy = FaultProxy(upstream_url, tls=leaf_cert, upstream_ca=ca_pem).start()
    proxy.plan(Fault.status(503), Fault.status(429, retry_after="1"))   # then forward
    proxy.plan(Fault.hang(), match="/token")                           # only token calls
    proxy.plan(Fault.edit(lambda doc: {**doc, "interval": "abc"}))      # the real answer, edited
    proxy.plan(Fault.huge(300 * 2**20))                                # 300 MB, made as sent
    ...
    proxy.seen  # [(method, path, status answered or "hang"/"forwarded <status>"), ...]

``tls`` is a trustme LeafCert the proxy presents (issued by a CA the helper does or does
not trust, or already expired); without it the proxy speaks plain HTTP.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from services import quiet_server

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server",
              "date", "proxy-connection", "upgrade", "te", "trailer"}


@dataclass
class Fault:
    kind: str  # "status", "hang", "delay", "late", "drop", "edit", "huge"
    code: int = 0  # the HTTP status of a "status" or "huge" fault
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    match: str = ""  # a substring of the request path; "" matches every request
    change: Callable | None = None  # an "edit" fault's change of the JSON answer
    size: int = 0  # a "huge" answer's length in bytes
    chunked: bool = False  # a "huge" answer without Content-Length

    @classmethod
    def status(cls, status: int, *, retry_after: str | None = None, body=None,
               content_type: str = "application/json") -> Fault:
        """Answer with ``status`` (and a Retry-After header, when given) instead of forwarding."""
        headers = {"Content-Type": content_type}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if body is None:
            body = {"errors": [f"injected HTTP {status}"], "error": "temporarily_unavailable"}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return cls("status", code=status, headers=headers, body=data)

    @classmethod
    def hang(cls) -> Fault:
        """Read the request, then never answer (until the proxy stops)."""
        return cls("hang")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Hold the request ``seconds``, then forward it: the service sees it late."""
        return cls("delay", seconds=seconds)

    @classmethod
    def late(cls, seconds: float) -> Fault:
        """Forward at once, then hold the answer ``seconds``: what the service minted
        ages on the way back (a token can expire before the client reads it)."""
        return cls("late", seconds=seconds)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without an answer."""
        return cls("drop")

    @classmethod
    def edit(cls, change: Callable) -> Fault:
        """Forward, then answer with the real answer's JSON body changed: ``change(doc)``
        returns the new document (Python's json writes NaN and Infinity as JavaScript
        does), or bytes sent as they are (a number JSON cannot spell otherwise)."""
        return cls("edit", change=change)

    @classmethod
    def huge(cls, size: int, status: int = 200, *, chunked: bool = False, prefix: bytes = b"",
             content_type: str = "text/xml") -> Fault:
        """Answer ``size`` bytes (``prefix``, then filler), made while they are sent, never
        held in memory: with a Content-Length, or ``chunked`` without one. Stops when the
        client hangs up."""
        return cls("huge", code=status, headers={"Content-Type": content_type}, body=prefix,
                   size=size, chunked=chunked)


class FaultProxy:
    def __init__(self, upstream: str, *, tls=None, upstream_ca: str | None = None):
        self.upstream = urlsplit(upstream)
        self.upstream_ca = upstream_ca
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.configure_cert(context)
        self.server, self.url = quiet_server(self._handle, context)
        self.port = self.server.server_address[1]
        # A short poll interval: stop() returns at once instead of after up to half a second.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases hanging handlers
        self.server.shutdown()
        self.server.server_close()

    def plan(self, *faults: Fault, match: str = "") -> None:
        """Queue ``faults`` for the next requests whose path contains ``match``."""
        with self.lock:
            for fault in faults:
                fault.match = match
                self.faults.append(fault)

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.seen.clear()

    def paths(self, kind: str = "") -> list[str]:
        """Paths of the requests seen whose outcome starts with ``kind``."""
        with self.lock:
            return [path for _, path, outcome in self.seen if outcome.startswith(kind)]

    # ------------------------------------------------------------ internals

    def _next_fault(self, path: str) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.match in path:
                    return self.faults.pop(i)
        return None

    def _record(self, handler, outcome: str) -> None:
        with self.lock:
            self.seen.append((handler.command, handler.path, outcome))

    def _handle(self, handler, body: bytes) -> None:
        fault = self._next_fault(handler.path)
        if fault is not None and fault.kind == "hang":
            self._record(handler, "hang")
            self.stopping.wait()
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "drop":
            self._record(handler, "drop")
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            self._record(handler, f"injected {fault.code}")
            return self._answer(handler, fault.code, fault.headers.items(), fault.body)
        if fault is not None and fault.kind == "huge":
            self._record(handler, f"huge {fault.code}")
            return self._huge(handler, fault)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        # An answer to edit is asked for uncompressed.
        status, headers, data = self._forward(handler, body,
                                              plain=fault is not None and fault.kind == "edit")
        if fault is not None and fault.kind == "late":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "edit":
            changed = fault.change(json.loads(data))
            data = changed if isinstance(changed, bytes) else json.dumps(changed).encode()
            self._record(handler, f"edited {status}")
            return self._answer(handler, status, headers, data)
        self._record(handler, f"forwarded {status}")
        self._answer(handler, status, headers, data)

    def _forward(self, handler, body: bytes, plain: bool = False):
        up = self.upstream
        if up.scheme == "https":
            context = ssl.create_default_context(cafile=self.upstream_ca)
            conn = http.client.HTTPSConnection(up.hostname, up.port, timeout=30, context=context)
        else:
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP
                   and not (plain and k.lower() == "accept-encoding")}
        try:
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    @staticmethod
    def _huge(handler, fault: Fault) -> None:
        handler.send_response(fault.code)
        for k, v in fault.headers.items():
            handler.send_header(k, v)
        if fault.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(fault.size))
        handler.end_headers()
        filler, first = b"A" * (1 << 16), fault.body
        left = fault.size
        try:
            while left > 0:
                piece, first = (first or filler)[:left], b""
                left -= len(piece)
                if fault.chunked:
                    piece = b"%x\r\n%s\r\n" % (len(piece), piece)
                handler.wfile.write(piece)
            if fault.chunked:
                handler.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client stopped reading and hung up: what it should do
            pass
        handler.close_connection = True

    @staticmethod
    def _answer(handler, status: int, headers, data: bytes) -> None:
        handler.send_response(status)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP:
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
