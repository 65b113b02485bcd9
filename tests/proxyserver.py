"""A real forward proxy for the proxy tests: Debian's tinyproxy (package tinyproxy-bin,
installed by scripts/test), run in the foreground on a free loopback port with a
temporary configuration, optionally requiring Basic authentication.

Its log (LogLevel Connect) has one line per request it handled, which is how a test sees
whether a call went through it or around it (NO_PROXY):

    proxy.seen()   # [("GET", "http://127.0.0.1:8200/v1/sys/health"), ("CONNECT", "127.0.0.1:8443"), ...]
    proxy.clear()  # forget what was seen so far

Fixtures ``http_proxy`` and ``auth_proxy`` (session scope) are imported by the test modules
that use them. A proxy that cannot start fails the test (pytest.fail), never skips it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from openbao import free_port
from services import log_tail, stop_process

# Every secret a test makes up starts with "canary-" (conftest.leaked): a password that
# reached stderr or the debug log would fail the test that leaked it.
PROXY_USER, PROXY_PASSWORD = "gw-user", "canary-proxy-pa55"

CONFIG = """\
Port {port}
Listen 127.0.0.1
Timeout 60
MaxClients 64
LogFile "{log}"
LogLevel Connect
Allow 127.0.0.1
DisableViaHeader Yes
# No ConnectPort line: CONNECT is allowed to every port (Debian's packaged configuration
# allows only 443 and 563; the test services listen on high ports).
{auth}
"""
REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+)")


class TinyProxy:
    def __init__(self, workdir: Path, auth: tuple[str, str] | None = None):
        self.workdir, self.auth = workdir, auth
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "tinyproxy.log"
        self.process: subprocess.Popen | None = None
        self._offset = 0

    @property
    def url(self) -> str:
        """The proxy URL to configure, with the credentials when it requires them."""
        return self.url_with(*self.auth) if self.auth else self.address

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> TinyProxy:
        binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        if not os.path.exists(binary):
            pytest.fail("tinyproxy is missing: scripts/test installs the tinyproxy-bin package")
        auth = f"BasicAuth {self.auth[0]} {self.auth[1]}" if self.auth else ""
        conf = self.workdir / "tinyproxy.conf"
        conf.write_text(CONFIG.format(port=self.port, log=self.log, auth=auth))
        self.log.touch()
        with open(self.workdir / "tinyproxy.out", "wb") as out:
            self.process = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=out,
                                            stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        start = time.monotonic()
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"tinyproxy exited with {self.process.returncode}:\n"
                            f"{log_tail(self.workdir / 'tinyproxy.out')}{log_tail(self.log)}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                self.started_in = time.monotonic() - start
                return self
            except OSError:
                pass
            if time.monotonic() - start > timeout:
                self.stop()
                pytest.fail(f"tinyproxy did not listen within {timeout}s:\n{log_tail(self.log)}")
            time.sleep(0.05)

    def seen(self) -> list[tuple[str, str]]:
        """(method, target) of every request handled since the last clear()."""
        with open(self.log, encoding="utf-8", errors="replace") as f:
            f.seek(self._offset)
            return [(m.group(1), m.group(2)) for m in REQUEST.finditer(f.read())]

    def clear(self) -> None:
        self._offset = self.log.stat().st_size

    def stop(self) -> None:
        stop_process(self.process, grace=5)


@pytest.fixture(scope="session")
def http_proxy(tmp_path_factory):
    """tinyproxy without authentication."""
    proxy = TinyProxy(tmp_path_factory.mktemp("tinyproxy")).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def auth_proxy(tmp_path_factory):
    """tinyproxy that requires Basic authentication (PROXY_USER, PROXY_PASSWORD)."""
    proxy = TinyProxy(tmp_path_factory.mktemp("tinyproxy-auth"),
                      (PROXY_USER, PROXY_PASSWORD)).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxies(http_proxy, auth_proxy):
    """Both proxies, their logs cleared for this test."""
    http_proxy.clear()
    auth_proxy.clear()
    return http_proxy, auth_proxy


def proxy_env(env: dict, proxy_url: str, no_proxy: str | None = None) -> dict:
    """``env`` with every proxy variable (both cases) pointing at ``proxy_url``."""
    env = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = proxy_url
    if no_proxy is not None:
        env["NO_PROXY"] = no_proxy
    return env
