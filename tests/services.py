"""Small helpers shared by the fixtures that run real services (OpenBao, moto, LiteLLM,
the OpenID provider, GNOME Keyring)."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys

# Secrets a service mints during the tests (secret IDs, refresh tokens): fixtures add
# them here, and conftest.leaked() looks for them in every run's stderr and log file.
# One set in this module, whichever copy of conftest.py a test package imports.
MINTED_SECRETS: set[str] = set()


def stop_process(process: subprocess.Popen | None, grace: float = 10) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL: a service never outlives its test."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def log_tail(path, lines: int = 30) -> str:
    """The end of a service's log, for the failure message when it does not come up."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


class JsonStub:
    """Mixin for http.server handlers of the small stubs (TokenReview, flaky Vault):
    ``self.send_json(status, body)``, and no request log on stderr."""

    def send_json(self, status: int, body) -> None:
        import json

        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def quiet_server(handle, tls_context=None):
    """A threaded HTTP (or, with ``tls_context``, HTTPS) server on a free loopback port
    that hands every request, its body read, to ``handle(handler, body)``, and logs
    nothing. Returns (server, url); the caller runs serve_forever in a thread."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            length = int(self.headers.get("Content-Length") or 0)
            handle(self, self.rfile.read(length) if length else b"")

        do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_LIST = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


def fake_zenity(env, tmp_path, answer: str, exit_code: int = 0, delay: float = 0) -> str:
    """A stand-in zenity on PATH that records its arguments and answers on stdout (after
    ``delay`` seconds: a person taking their time)."""
    folder = tmp_path / "desktop-bin"
    folder.mkdir()
    record = tmp_path / "zenity-args"
    (folder / "zenity").write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(record)!r}, 'w').write('\\n'.join(sys.argv[1:]))\n"
        f"import time\ntime.sleep({delay})\nprint({answer!r})\nsys.exit({exit_code})\n")
    os.chmod(folder / "zenity", 0o755)
    env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"
    env["DISPLAY"] = ":0"
    env["CLAUDE_HELPER_CONTEXT"] = "interactive"
    return str(record)
