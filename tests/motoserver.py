"""A real moto server on loopback, and a small recording proxy in front of it.

``MotoServer`` runs ``moto_server`` (from ``moto[server]``) as a child process on a free
port and stops it by its PID. ``StsProxy`` is a threaded HTTP server in the test process
that forwards every request to moto and records the AWS action of each, so a test can
prove how many backend calls a run made. It also answers STS ``GetWebIdentityToken``
itself, which moto does not implement, with the response shape AWS documents (a JWT and
its expiration); that answer is a stub, not moto. Used by tests/aws and benchmarks.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from services import quiet_server, stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_executable() -> str:
    candidate = Path(sys.executable).parent / "moto_server"
    if candidate.exists():
        return str(candidate)
    import shutil

    found = shutil.which("moto_server")
    if not found:
        raise RuntimeError("moto_server is not installed: pip install 'moto[server]'")
    return found


class MotoServer:
    def __init__(self, log_path: str | os.PathLike | None = None, tls: tuple | None = None):
        """``tls=(cert_file, key_file, ca_file)`` serves https with that certificate."""
        self.port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc = None

    def _open(self, request, timeout):
        import ssl

        context = ssl.create_default_context(cafile=self.tls[2]) if self.tls else None
        return urllib.request.urlopen(request, timeout=timeout, context=context)

    def start(self, timeout: float = 30.0) -> MotoServer:
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.proc = subprocess.Popen(
            [moto_executable(), "-H", "127.0.0.1", "-p", str(self.port)]
            + (["-c", str(self.tls[0]), "-k", str(self.tls[1])] if self.tls else []),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode} "
                                   f"(log: {self.log_path})")
            try:
                with self._open(self.url + "/moto-api/data.json", 1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto_server did not answer within {timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.proc, grace=5)

    def post(self, path: str, body: bytes = b"") -> bytes:
        # Not form-encoded: moto reads the raw body (request.data).
        request = urllib.request.Request(self.url + path, data=body, method="POST",
                                         headers={"Content-Type": "text/plain"})
        with self._open(request, 10) as r:
            return r.read()

    def reset(self) -> None:
        self.post("/moto-api/reset")

    def require_auth(self, enabled: bool) -> None:
        """With auth on, moto checks access keys, signatures and IAM policies."""
        self.post("/moto-api/reset-auth", b"0" if enabled else b"inf")


def fake_jwt(claims: dict) -> str:
    def b64(doc) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'RS256', 'kid': 'stub', 'typ': 'JWT'})}.{b64(claims)}.c3R1Yi1zaWduYXR1cmU"


class StsProxy:
    """Forward to moto, record actions, and stub GetWebIdentityToken."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.calls: list[dict] = []
        self.fail: tuple[int, str] | None = None  # answer every call with this AWS error
        self.lock = threading.Lock()
        self.server, self.url = quiet_server(self._handle)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> StsProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()

    def actions(self) -> list[str]:
        with self.lock:
            return [c["action"] for c in self.calls]

    def _handle(self, handler, body: bytes) -> None:
        if handler.path.startswith("http://"):  # used as an HTTP proxy: absolute URI
            split = urlsplit(handler.path)
            handler.path = split.path + (f"?{split.query}" if split.query else "")
        params = {k: v for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        params.update(parse_qs(urlsplit(handler.path).query))
        action = (params.get("Action") or [handler.headers.get("X-Amz-Target", "?")])[0]
        with self.lock:
            self.calls.append({"action": action.split(".")[-1], "params": params,
                               "auth": handler.headers.get("Authorization", "")})
        if self.fail:
            return self._error(handler, *self.fail)
        if action == "GetWebIdentityToken":
            return self._web_identity_token(handler, params)
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        # The original Host header is kept: it is part of the SigV4 signature moto checks.
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "connection"}
        conn.request(handler.command, handler.path, body=body or None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        handler.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        conn.close()

    def _error(self, handler, status: int, code: str) -> None:
        """An AWS query-protocol error, as STS sends it."""
        body = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                f"<Type>Sender</Type><Code>{code}</Code><Message>stubbed {code}</Message>"
                "</Error><RequestId>0</RequestId></ErrorResponse>").encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _web_identity_token(self, handler, params) -> None:
        """AWS's documented GetWebIdentityToken answer (query protocol, XML)."""
        now = int(time.time())
        duration = int((params.get("DurationSeconds") or ["300"])[0])
        audiences = [v[0] for k, v in sorted(params.items()) if k.startswith("Audience.member.")]
        jwt = fake_jwt({"iss": "https://sts.amazonaws.com", "sub": "stub-caller",
                        "aud": audiences[0] if len(audiences) == 1 else audiences,
                        "iat": now, "exp": now + duration})
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + duration))
        body = (
            '<GetWebIdentityTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<GetWebIdentityTokenResult>"
            f"<WebIdentityToken>{jwt}</WebIdentityToken>"
            f"<Expiration>{expiration}</Expiration>"
            "</GetWebIdentityTokenResult>"
            "<ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId>"
            "</ResponseMetadata></GetWebIdentityTokenResponse>"
        ).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
