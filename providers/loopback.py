"""Authorization code + PKCE with a loopback redirect (RFC 8252): the sign-in of
``credhelper-oidc login`` when a browser is at hand, as kubelogin does.

A one-shot HTTP server on 127.0.0.1 and a random port receives the redirect; the state
value ties the answer to this request, and the PKCE verifier never leaves the process.
"""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from credhelper.errors import BackendUnavailable, LoginRequired

from .device_flow import oauth_error, open_browser, remember_token_secrets

DONE_PAGE = (b"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Signed in</title></head>"
             b"<body><p>You are signed in. You can close this tab.</p></body></html>")


def browser_sign_in(provider, request, sess, doc: dict) -> dict:
    from authlib.integrations.base_client import OAuthError

    answer: dict = {}
    arrived = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            parts = urlsplit(self.path)
            if parts.path != "/callback" or arrived.is_set():
                self.send_response(404)
                self.end_headers()
                return
            answer.update({k: v[0] for k, v in parse_qs(parts.query).items()})
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(DONE_PAGE)))
            self.end_headers()
            self.wfile.write(DONE_PAGE)
            arrived.set()

        def log_message(self, *args):  # the query holds the code: never log it
            pass

    try:
        server = HTTPServer(("127.0.0.1", 0), Handler)
    except OSError as exc:
        raise BackendUnavailable(
            f"cannot listen on loopback for the sign-in: {exc.strerror}") from None
    redirect_uri = f"http://127.0.0.1:{server.server_port}/callback"
    thread = threading.Thread(target=server.serve_forever, name="loopback", daemon=True)
    thread.start()
    try:
        verifier = secrets.token_urlsafe(48)
        request.log.secret(verifier)
        state = secrets.token_urlsafe(24)
        sess.redirect_uri = redirect_uri
        sess.code_challenge_method = "S256"
        sess.scope = " ".join(provider.scopes())
        params = provider.extra_params()
        if "offline_access" in sess.scope.split():
            params["prompt"] = "consent"  # most providers grant offline access only on consent
        url, _ = sess.create_authorization_url(doc["authorization_endpoint"], state=state,
                                               code_verifier=verifier, **params)
        opened = open_browser(url, request.env)
        request.log.info("Sign in in your browser" + ("" if opened else " (it did not open)")
                         + f"; if it did not open, visit:\n{url}")
        if not arrived.wait(max(0.0, request.login_deadline - request.monotonic())):
            raise LoginRequired("the browser sign-in was not completed in time",
                                hint="run `credhelper-oidc login` again, "
                                     "or set login_flow = \"device\"")
    finally:
        server.shutdown()
        server.server_close()
    if answer.get("error"):
        raise oauth_error(answer["error"], answer.get("error_description"),
                          provider.config["issuer"], "run `credhelper-oidc login` again", "device")
    if not secrets.compare_digest(answer.get("state", ""), state) or not answer.get("code"):
        raise LoginRequired("the browser sign-in answered for another request (state mismatch)",
                            hint="run `credhelper-oidc login` again")
    request.log.secret(answer["code"])
    try:
        token = provider.call(request, "the authorization_code request", sess.fetch_token,
                               doc["token_endpoint"], grant_type="authorization_code",
                               code=answer["code"], redirect_uri=redirect_uri,
                               code_verifier=verifier)
    except OAuthError as exc:
        raise oauth_error(exc.error, exc.description, provider.config["issuer"],
                          "run `credhelper-oidc login` again", "device") from None
    return remember_token_secrets(request, dict(token))
