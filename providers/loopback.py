"""A browser sign-in's loopback redirect (RFC 8252 §7.3), and authorization code + PKCE
over it: the sign-in of ``grant = "authorization_code"`` and of ``credhelper-oidc login``.

``Listener`` is shared (stable interface; Vault's oidc auth method uses it too)::

    with Listener("127.0.0.1", [8250], "/oidc/callback", "[vault] callback_ports") as found:
        found.redirect_uri    # "http://127.0.0.1:8250/oidc/callback"
        answer = found.wait(seconds)   # the redirect's query parameters, or None

It listens on the first port of the list that it can bind (0: any free port), so that
providers that register exact redirect URIs get one they know, and a port another
program holds is passed over. ``localhost`` is bound on 127.0.0.1 and, where the machine
has IPv6, ::1 too: a browser may resolve it to either. Only a redirect to the path that
carries the expected ``state`` is taken; anything else gets an error page and is ignored.

The PKCE verifier never leaves the process, and a browser sign-in cannot be carried over
to another run: the redirect comes to this run's listener, which ends with the run. So a
sign-in not finished within the run's budget exits 3 and the next interactive run opens
the browser again (the provider's own session usually makes that one click).
"""

from __future__ import annotations

import errno
import html
import os
import re
import secrets
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from credhelper.errors import BackendUnavailable, ConfigError, LoginRequired

from .device_flow import Presenter, oauth_error

DONE_PAGE = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Signed in</title></head>"
             "<body><p>You are signed in. You can close this tab.</p></body></html>")
FAILED_PAGE = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Not signed in</title>"
               "</head><body><p>The sign-in did not complete: {}. You can close this tab."
               "</p></body></html>")
NOT_OURS_PAGE = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Unknown</title>"
                 "</head><body><p>This answer is for no sign-in under way here.</p></body></html>")
PROMPTS = ("none", "login", "consent", "select_account")
NO_IPV6 = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, getattr(errno, "EPROTONOSUPPORT", -1)}


class _Server(ThreadingHTTPServer):
    # SO_REUSEADDR on Windows would let this bind a port another program listens on.
    allow_reuse_address = os.name != "nt"
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer's own looks the host name up (getfqdn), which can stall on a bad DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", self.server_address[1]


class _Server6(_Server):
    address_family = socket.AF_INET6


class Listener:
    def __init__(self, host: str, ports: list[int], path: str, setting: str,
                 state: str | None = None, log=None) -> None:
        self.host, self.path, self.state = host, path, state
        self.answer: dict[str, str] = {}
        self.arrived = threading.Event()
        self._lock = threading.Lock()
        self.servers = self._bind(ports, setting, log)
        port = self.servers[0].server_address[1]
        self.redirect_uri = f"http://{host}:{port}{path}"
        for server in self.servers:
            threading.Thread(target=server.serve_forever, args=(0.1,), name="loopback",
                             daemon=True).start()

    def _bind(self, ports: list[int], setting: str, log) -> list[_Server]:
        handler = self._handler()
        tried = []
        for port in ports:
            servers: list[_Server] = []
            try:
                servers.append(_Server(("127.0.0.1", port), handler))
                if self.host == "localhost":
                    try:
                        servers.append(_Server6(("::1", servers[0].server_address[1]), handler))
                    except OSError as exc:
                        if exc.errno not in NO_IPV6:
                            raise
                return servers
            except OSError as exc:
                for server in servers:
                    server.server_close()
                tried.append(f"{port} ({exc.strerror or exc})")
                if log is not None:
                    log.debug(f"cannot listen on {self.host}:{port} for the redirect: "
                              f"{exc.strerror or exc}; trying the next port")
        raise BackendUnavailable(
            f"cannot listen on {self.host} for the sign-in's redirect: port "
            + ", ".join(tried),
            hint=f"free one, or add a port to {setting} and register "
                 f"http://{self.host}:PORT{self.path} at the provider (0: any free port, "
                 "where the provider allows any port on loopback)")

    def _handler(self):
        listener = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a connection that sends nothing is dropped, not waited for

            def do_GET(self):  # noqa: N802 (http.server's naming)
                parts = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path != listener.path or not listener.offer(params):
                    return self._page(400 if parts.path == listener.path else 404,
                                      NOT_OURS_PAGE)
                error = params.get("error")
                self._page(200, FAILED_PAGE.format(html.escape(error[:80])) if error
                           else DONE_PAGE)

            def _page(self, status: int, text: str) -> None:
                send_page(self, status, text)

            def log_message(self, *args):  # the query holds the code: never log it
                pass

        return Handler

    def offer(self, params: dict[str, str]) -> bool:
        """Take ``params`` as the redirect's answer when it is the first one for this
        sign-in (its state matches); False otherwise."""
        if self.state is not None and not secrets.compare_digest(
                params.get("state", "").encode(), self.state.encode()):
            return False
        if not (params.get("code") or params.get("error")):
            return False
        with self._lock:
            if self.arrived.is_set():
                return False
            self.answer = dict(params)
            self.arrived.set()
        return True

    def wait(self, seconds: float) -> dict[str, str] | None:
        return self.answer if self.arrived.wait(max(0.0, seconds)) else None

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- authorization code + PKCE


def check_prompt(value: str | None) -> str | None:
    """``[oidc] prompt``: space-separated values of OpenID Connect's prompt parameter."""
    if not value:
        return None
    words = value.split()
    wrong = [w for w in words if w not in PROMPTS]
    if wrong:
        raise ConfigError(f"[oidc] prompt: {wrong[0][:40]!r} is not one of: {', '.join(PROMPTS)}")
    return " ".join(words)


def authorization_code_sign_in(provider, request, sess, doc: dict) -> dict:
    """Sign a person in with the authorization code and PKCE: the browser (or, with no
    browser here, an address to open elsewhere and paste back) and a loopback redirect.
    Ends by the run's sign-in deadline. Returns the token answer."""
    config, issuer = provider.config, provider.config["issuer"]
    if not isinstance(doc.get("authorization_endpoint"), str):
        raise ConfigError(f"{issuer} offers no authorization endpoint",
                          hint="use grant = \"device_code\"")
    prompt = check_prompt(config.get("prompt"))
    shown = Presenter.of(request, provider)
    paste = bool(config.get("paste")) or not shown.can_open_browser()
    if paste and not (request.stdin_is_tty and request.stderr_is_tty):  # shown, and read
        raise LoginRequired("no browser can be opened here and there is no terminal to paste "
                            "the sign-in into",
                            hint="set browser_command, run `credhelper-oidc login` in a "
                                 "terminal, or use grant = \"device_code\"")
    where = urlsplit(issuer).hostname or issuer
    state = secrets.token_urlsafe(24)
    with Listener(config["redirect_host"], config["redirect_ports"], "/callback",
                  "[oidc] redirect_ports", state, request.log) as listener:
        verifier = secrets.token_urlsafe(48)
        request.log.secret(verifier)
        sess.redirect_uri = listener.redirect_uri
        sess.code_challenge_method = "S256"
        sess.scope = " ".join(provider.scopes())
        params = provider.extra_params()
        if prompt:
            params["prompt"] = prompt
        url, _ = sess.create_authorization_url(doc["authorization_endpoint"], state=state,
                                               code_verifier=verifier, **params)
        _check_request(provider, request, sess, url, listener.redirect_uri)
        shown.browser(url, where, paste=paste)
        if paste:
            threading.Thread(target=_read_pasted, args=(listener, request.log), name="paste",
                             daemon=True).start()
        left = request.login_deadline - request.monotonic()
        answer = listener.wait(left)
    if answer is None:
        raise LoginRequired(
            f"the browser sign-in at {issuer} was not finished within this run's "
            f"{max(0, int(left))}s; a browser sign-in cannot be carried over to another run",
            hint="the next interactive run opens the browser again (your session at the "
                 "provider usually makes it one click); or sign in with `credhelper-oidc "
                 "login`, which may take login_timeout")
    if answer.get("error"):
        raise oauth_error(answer["error"], answer.get("error_description"), issuer,
                          "sign in again", "device")
    request.log.secret(answer["code"])
    return provider._token(request.signing_in(), sess, doc["token_endpoint"], "token",
                           grant_type="authorization_code", code=answer["code"],
                           redirect_uri=listener.redirect_uri, code_verifier=verifier)


def _check_request(provider, request, sess, url: str, redirect_uri: str) -> None:
    """Ask the authorization endpoint once, as the browser will, before any browser opens:
    a provider that refuses the request (an unregistered redirect URI, an unknown client)
    answers an error page instead of a sign-in page, which the person would otherwise
    meet while this run waits until its end."""
    config, issuer = provider.config, provider.config["issuer"]
    response = provider.call(request, "the authorization request", sess.get, url,
                             allow_redirects=False, withhold_token=True, idempotent=True)
    sess.cookies.clear()  # the browser has its own session there
    location = response.headers.get("Location", "")
    if 300 <= response.status_code < 400:
        if location.startswith(redirect_uri):  # refused, with an OAuth error for the client
            answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
            if answer.get("error"):
                raise oauth_error(answer["error"], answer.get("error_description"), issuer,
                                  "check [oidc] client_id, scopes and audience", "token")
        return
    said = _what_it_said(response)
    redirect_refused = re.search(r"redirect|AADSTS50011", said, re.IGNORECASE)
    if response.status_code < 400 and not redirect_refused:
        return  # a sign-in page
    if response.status_code >= 500:
        raise BackendUnavailable(f"{issuer} answered HTTP {response.status_code} to the "
                                 "authorization request")
    if redirect_refused:
        raise ConfigError(
            f"{issuer} refused the redirect URI {redirect_uri} (HTTP {response.status_code}): "
            f"{said}",
            hint=f"register it for client {config['client_id']} at the provider, or set "
                 f"[oidc] redirect_ports ({' '.join(map(str, config['redirect_ports']))}) and "
                 f"redirect_host ({config['redirect_host']}) to a redirect URI it has")
    raise ConfigError(f"{issuer} refused the authorization request (HTTP "
                      f"{response.status_code}): {said}",
                      hint="check [oidc] client_id, scopes and audience")


def _what_it_said(response) -> str:
    """An error page's message in one short line: an OAuth error's fields, or the page's
    text from its first mention of an error."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("error"):
        text = f"{doc.get('error')}: {doc.get('error_description') or ''}"
    else:
        page = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", response.text[:100_000])
        text = html.unescape(re.sub(r"<[^>]+>", " ", page))
        found = re.search(r"error|redirect", text, re.IGNORECASE)
        text = text[found.start():] if found else text
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return (text if len(text) <= 200 else text[:197] + "...") or "(no message)"


def _read_pasted(listener: Listener, log) -> None:
    """Paste mode: read lines from the terminal (stdin) until one holds the code, as the
    address the browser ended on or the bare code. A bare code has no state to check,
    but PKCE ties it to this run's verifier all the same. Reads the file descriptor, not
    sys.stdin: a thread left blocked in sys.stdin's buffer would stall the interpreter's
    exit."""
    pending = b""
    while not listener.arrived.is_set():
        try:
            chunk = os.read(0, 4096)
        except OSError:
            return
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            if "code=" in text or "error=" in text:
                query = urlsplit(text).query or text.split("?", 1)[-1]
                params = {k: v[0] for k, v in parse_qs(query).items()}
            elif re.fullmatch(r"[\w.~+/=-]{6,}", text):
                params = {"code": text, "state": listener.state or ""}
            else:
                params = {}
            if listener.offer(params):
                return
            log.info("that is not the address the browser ended on for this sign-in; paste "
                     "it again (all of it, or the code= value)")


def send_page(handler: BaseHTTPRequestHandler, status: int, text: str) -> None:
    """Answer the browser's redirect with a small HTML page, never cached (it ends a
    sign-in: the Vault oidc callback uses it too)."""
    body = text.encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    handler.wfile.write(body)
