"""The local OpenID provider (tests/oidc/idp.mjs) and the person's side of a sign-in.

``IdP`` installs oidc-provider with npm into ``tests/oidc/node_modules`` (ignored by git)
when it is missing, starts the Node server over https with a trustme CA, and stops it by
its PID. ``approve``/``deny`` play the person at the verification page with one
``requests.Session``, exactly the pages a browser would show.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from services import stop_process

HERE = Path(__file__).resolve().parent
OIDC_PROVIDER = "oidc-provider@9.13.3"  # pinned in package.json too
PASSWORD = "correct horse"


def npm_install() -> None:
    """Install the pinned oidc-provider next to the script, once (about 4 s)."""
    if (HERE / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        raise RuntimeError("node and npm are needed for the OpenID provider tests (Node 20+)")
    subprocess.run([npm, "install", "--no-package-lock", "--no-audit", "--no-fund",
                    "--loglevel=error"], cwd=HERE, check=True, timeout=300,
                   stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class IdP:
    def __init__(self, workdir: Path, svc_secret: str, short_ttl: int = 5):
        import trustme

        self.dir = workdir
        self.port = free_port()
        self.origin = f"https://127.0.0.1:{self.port}"  # where it listens
        # The issuer it names; set it before start() to put the provider behind a proxy.
        self.issuer = f"{self.origin}/idp"
        self.svc_secret = svc_secret
        self.short_ttl = short_ttl
        # Client "cli-exact" registers exactly these redirect URIs: 127.0.0.1 on the first
        # two ports, localhost on the third (free now; the browser sign-in tests bind them).
        self.exact_ports: list[int] = []
        while len(self.exact_ports) < 3:
            port = free_port()
            if port not in self.exact_ports and port != self.port:
                self.exact_ports.append(port)
        p0, p1, p2 = self.exact_ports
        self.exact_redirects = [f"http://127.0.0.1:{p0}/callback",
                                f"http://127.0.0.1:{p1}/callback",
                                f"http://localhost:{p2}/callback"]
        ca, wrong = trustme.CA(), trustme.CA()
        self.ca = ca  # the CA the tests trust: it can issue more certificates (a proxy's)
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.cert, self.key = str(workdir / "server.crt"), str(workdir / "server.key")
        self.ca_pem, self.wrong_ca_pem = str(workdir / "ca.pem"), str(workdir / "wrong-ca.pem")
        cert.cert_chain_pems[0].write_to_path(self.cert)
        cert.private_key_pem.write_to_path(self.key)
        ca.cert_pem.write_to_path(self.ca_pem)
        wrong.cert_pem.write_to_path(self.wrong_ca_pem)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> IdP:
        npm_install()
        env = {**os.environ, "IDP_PORT": str(self.port), "IDP_CERT": self.cert,
               "IDP_KEY": self.key, "IDP_SVC_SECRET": self.svc_secret,
               "IDP_SHORT_TTL": str(self.short_ttl), "IDP_ISSUER": self.issuer,
               "IDP_EXACT_REDIRECTS": " ".join(self.exact_redirects)}
        self.log = self.dir / "idp.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(["node", str(HERE / "idp.mjs")], env=env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while "ready " not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the OpenID provider did not start: {self.log.read_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        stop_process(self.process, grace=5)

    def session(self):
        import requests

        s = requests.Session()
        s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        s.verify = self.ca_pem
        return s

    def stats(self) -> dict:
        return self.session().get(f"https://127.0.0.1:{self.port}/idp-stats", timeout=5).json()

    def refreshes(self) -> int:
        return self.stats().get("refresh_token:200", 0)


def _hidden(html: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def approve(idp: IdP, user_code: str, user: str = "alice", deny_at: str | None = None) -> str:
    """Complete the person's step for ``user_code``: the code page, confirm, log in,
    consent. ``deny_at`` = "confirm" or "consent" refuses there instead. Returns the last
    page's text."""
    s = idp.session()
    page = s.get(f"{idp.issuer}/device", timeout=10)
    page.raise_for_status()
    confirm = s.post(f"{idp.issuer}/device", data={**_hidden(page.text), "user_code": user_code},
                     timeout=10)
    assert "Confirm" in confirm.text, confirm.text
    fields = _hidden(confirm.text)
    if deny_at == "confirm":
        fields.pop("confirm", None)
        fields["abort"] = "yes"
        return s.post(f"{idp.issuer}/device", data=fields, timeout=10).text
    login = s.post(f"{idp.issuer}/device", data=fields, timeout=10)
    action = re.search(r'action="([^"]+/login)"', login.text)
    if action:  # a fresh session: the login form first
        consent = s.post(_abs(idp, action.group(1)), data={"login": user, "password": PASSWORD},
                         timeout=10)
    else:
        consent = login
    if "Sign-in Success" in consent.text:
        return consent.text
    which = "abort" if deny_at == "consent" else "confirm"
    action = re.search(rf'action="([^"]+/{which})"', consent.text)
    assert action, consent.text
    done = s.post(_abs(idp, action.group(1)), timeout=10)
    return done.text


def _abs(idp: IdP, path: str) -> str:
    return f"https://127.0.0.1:{idp.port}{path}"


def user_code_from(text: str) -> str | None:
    """The user code shown to the person, from the helper's stderr or a recorded prompt."""
    m = re.search(r"code[: ]+([A-Z0-9]{4}-[A-Z0-9]{4})", text)
    return m.group(1) if m else None


def read_json(path) -> list[dict]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def sign_in(args, env, idp: IdP, user: str = "alice", deny_at: str | None = None,
            timeout: float = 40.0):
    """Run a helper that starts a device code sign-in; play the person when the code
    appears (in the recorded desktop notification, else on stderr). Returns the finished
    process with bytes stdout and str stderr, like ``conftest.run``."""
    import tempfile

    from conftest import CANARY, script

    record_path = env.get("PRESENTER_RECORD")
    seen = os.path.getsize(record_path) if record_path and os.path.exists(record_path) else 0
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([script(args[0])] + list(args[1:]), env=env, stdout=subprocess.PIPE,
                            stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    code = None
    while code is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        record = ""
        if record_path and os.path.exists(record_path):
            with open(record_path) as f:
                f.seek(seen)  # only what this run showed
                record = f.read()
        code = user_code_from(record)
    if code:
        approve(idp, code, user=user, deny_at=deny_at)
    out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    err.seek(0)
    proc.stdout = out
    proc.stderr = err.read().decode("utf-8", "replace")
    proc.user_code = code
    assert CANARY not in proc.stderr, "a secret reached stderr"
    return proc


def approve_in_browser(idp: IdP, url: str, user: str = "alice") -> str:
    """Play the browser for an authorization request: log in, consent, and follow the
    redirect to the helper's loopback address. Returns the last page's text."""
    s = idp.session()
    page = s.get(url, timeout=10)
    for _ in range(4):
        login = re.search(r'action="([^"]+/login)"', page.text)
        confirm = re.search(r'action="([^"]+/confirm)"', page.text)
        if login:
            page = s.post(_abs(idp, login.group(1)), data={"login": user, "password": PASSWORD},
                          timeout=10)
        elif confirm:
            page = s.post(_abs(idp, confirm.group(1)), timeout=10)
        else:
            break
    return page.text
