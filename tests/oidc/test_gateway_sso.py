"""credhelper test-gateway --sso: what the app's own sign-in (inferenceGatewayAuthScheme =
sso, inferenceCredentialKind = interactive) needs from a gateway, against a gateway
stand-in backed by the real OpenID provider (oidc-provider on Node, tests/oidc/idp.mjs).

Real: the OpenID provider, its metadata, its device flow, its signed JWT access tokens
and JWKS, and credhelper-oidc run as the app runs a helper. A stand-in: the gateway (see
SsoGateway).
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import run
from openbao import free_port

from .idpkit import IdP, sign_in

AUDIENCE = "https://gateway.example"  # what the provider issues access tokens for (idp.mjs)
METADATA = "GET /.well-known/oauth-authorization-server"

SSE = [
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m",
        "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
        "type": "input_json_delta", "partial_json": '{"city": "Paris"}'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                       "usage": {"output_tokens": 5}}),
    ("message_stop", {"type": "message_stop"}),
]


class SsoGateway:
    """A stand-in for an LLM gateway whose users sign in at its OAuth authorization server,
    here the real OpenID provider; plain http on loopback. It is no gateway and forwards
    nothing. It publishes ``metadata`` at /.well-known/oauth-authorization-server (the
    provider's own document unless a test edits it; None answers 404). On /v1/models and
    /v1/messages it checks the bearer token as a gateway would: a JWT signed by a key of
    the provider's JWKS, with the provider's issuer, ``audience`` and an unexpired exp
    (joserfc), 401 otherwise; then it answers the smallest Anthropic shapes test-gateway
    checks: a model list, and a streamed message with one tool_use block."""

    def __init__(self, idp: IdP):
        session = idp.session()
        self.metadata: dict | None = session.get(
            f"{idp.issuer}/.well-known/openid-configuration", timeout=10).json()
        self.jwks = session.get(self.metadata["jwks_uri"], timeout=10).json()
        self.issuer = idp.issuer
        self.audience = AUDIENCE
        self.seen: list[tuple[str, int, str]] = []  # (path, status, subject or why refused)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def send(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/.well-known/oauth-authorization-server":
                    if gateway.metadata is None:
                        return self.send(404, b'{"error": "not found"}')
                    return self.send(200, json.dumps(gateway.metadata).encode())
                if self.path != "/v1/models":
                    return self.send(404, b'{"error": "not found"}')
                if self.authorized():
                    self.send(200, json.dumps({"data": [{"id": "m", "type": "model"}]}).encode())

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/messages":
                    return self.send(404, b'{"error": "not found"}')
                if self.authorized():
                    stream = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n"
                                     for name, data in SSE)
                    self.send(200, stream.encode(), "text/event-stream")

            def authorized(self) -> bool:
                subject = gateway.verify(self.headers.get("Authorization", ""))
                refused = subject.startswith("refused")
                gateway.seen.append((self.path, 401 if refused else 200, subject))
                if refused:
                    body = {"type": "error", "error": {"type": "authentication_error",
                                                       "message": "invalid bearer token"}}
                    self.send(401, json.dumps(body).encode())
                return not refused

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def verify(self, authorization: str) -> str:
        """The token's subject, or "refused: why"."""
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "refused: no bearer token"
        try:
            decoded = jwt.decode(token, KeySet.import_key_set(self.jwks))
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True}).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            return f"refused: {exc.__class__.__name__}"
        return str(decoded.claims.get("sub"))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(idp):
    server = SsoGateway(idp)
    yield server
    server.stop()


@pytest.fixture
def env(oidc_env):
    """The user's side: a client ID, and no issuer of their own (test-gateway takes the
    gateway's)."""
    env = dict(oidc_env)
    del env["CREDHELPER_OIDC_ISSUER"]
    return env


def signed_in(env, idp: IdP) -> None:
    """A person signs in with the device flow first, so the helper's setup-test run is
    silent (it may not ask anyone)."""
    proc = sign_in(["credhelper-oidc"], {**env, "CREDHELPER_OIDC_ISSUER": idp.issuer,
                                         "CLAUDE_HELPER_CONTEXT": "interactive"}, idp)
    assert proc.returncode == 0, proc.stderr


def check_sso(env, url, *args):
    p = run(["credhelper", "test-gateway", url, "--sso", *args], env, timeout=120)
    assert p.stderr == "" or p.returncode != 0, p.stderr
    return p, p.stdout.decode()


def test_a_gateway_whose_sign_in_works(env, idp, gateway):
    signed_in(env, idp)
    p, out = check_sso(env, gateway.url)
    assert p.returncode == 0, (out, p.stderr)
    assert f"{METADATA}: 200" in out and f"issuer {idp.issuer}" in out
    assert f"device_authorization {idp.issuer}/device/auth" in out
    assert f"token {idp.issuer}/token" in out
    assert f"[oidc] issuer: {idp.issuer}, from the gateway's metadata" in out
    assert "token from: " in out and "credhelper-oidc" in out
    assert "inferenceCredentialHelper" not in out  # with sso the app runs no helper
    assert "helper: printed a credential" in out and "context setup-test" in out
    assert "GET /v1/models: 200" in out and "POST /v1/messages (stream, tool): 200" in out
    assert "warn" not in out
    assert "result: the gateway accepts a token from its sign-in" in out
    # The stand-in verified the person's token on both calls.
    assert gateway.seen == [("/v1/models", 200, "alice"), ("/v1/messages", 200, "alice")]


def test_before_anyone_signed_in_it_exits_3_and_says_how(env, idp, gateway):
    p, out = check_sso(env, gateway.url)
    assert p.returncode == 3, out
    assert f"{METADATA}: 200" in out and "credhelper-oidc login" in out
    assert "problem: the helper could not get a credential: the gateway was not called" in out
    assert gateway.seen == []


def test_a_gateway_without_metadata_fails_with_a_clear_line(env, gateway):
    gateway.metadata = None
    p, out = check_sso(env, gateway.url)
    assert p.returncode == 2, out
    assert (f"{METADATA} answered 404: the gateway publishes no OAuth authorization server "
            f"metadata at {gateway.url}/.well-known/oauth-authorization-server") in out
    assert "problem: the gateway does not publish what the app's sign-in needs" in out
    assert "helper:" not in out and gateway.seen == []  # the helper did not run


def test_metadata_without_a_device_endpoint_is_a_warning(env, idp, gateway):
    """A warning: the app signs in with a browser (authorization code), which works
    without it; only a device code sign-in needs it."""
    signed_in(env, idp)
    del gateway.metadata["device_authorization_endpoint"]
    p, out = check_sso(env, gateway.url)
    assert p.returncode == 0, out
    assert "[ warn ] device_authorization_endpoint: none" in out
    assert "result: the gateway accepts a token from its sign-in" in out


def test_metadata_with_no_way_to_sign_in_fails(env, gateway):
    del gateway.metadata["device_authorization_endpoint"]
    del gateway.metadata["authorization_endpoint"]
    p, out = check_sso(env, gateway.url)
    assert p.returncode == 2, out
    assert "neither a device authorization endpoint nor an authorization endpoint" in out


def test_a_token_the_gateway_refuses_exits_5(env, idp, gateway):
    """The token is the provider's, valid, but for another audience than this gateway's.
    The user's configuration names the gateway's issuer: said to agree."""
    signed_in(env, idp)
    gateway.audience = "https://another-gateway.example"
    env["CREDHELPER_OIDC_ISSUER"] = idp.issuer
    p, out = check_sso(env, gateway.url)
    assert p.returncode == 5, out
    assert (f"[oidc] issuer: {idp.issuer} (CREDHELPER_OIDC_ISSUER (environment)) "
            "is the gateway's") in out
    assert "refused the credential (401: invalid bearer token)" in out
    assert "problem: the gateway refused the credential the helper printed" in out
    assert gateway.seen == [("/v1/models", 401, "refused: InvalidClaimError")]


def test_a_configured_issuer_that_differs_is_warned_about(env, idp, gateway):
    """The gateway names an issuer other than the user's: the user's is kept and tested,
    with a warning (the app would sign in at the gateway's)."""
    signed_in(env, idp)
    env["CREDHELPER_OIDC_ISSUER"] = idp.issuer
    gateway.metadata["issuer"] = "https://sso.example.com"
    p, out = check_sso(env, gateway.url)
    assert p.returncode == 0, out
    assert (f"[ warn ] [oidc] issuer: {idp.issuer} (CREDHELPER_OIDC_ISSUER (environment)) is "
            "not the issuer the gateway names (https://sso.example.com)") in out


def test_a_gateway_that_is_down_exits_4(env):
    p, out = check_sso(env, f"http://127.0.0.1:{free_port()}")
    assert p.returncode == 4, out
    assert "cannot reach the gateway" in out and "problem: the gateway could not be reached" in out


@pytest.mark.parametrize("extra, said", [
    (["--provider", "keyring"], "signs in with credhelper-oidc"),
    (["--auth-scheme", "x-api-key"], "bearer token"),
])
def test_sso_with_another_helper_or_scheme_is_a_usage_error(env, extra, said):
    p = run(["credhelper", "test-gateway", "https://gateway.example", "--sso", *extra], env)
    assert p.returncode == 2 and said in p.stderr and p.stdout == b"", p.stderr


def test_a_broken_configuration_file_is_said_as_such(env, gateway):
    """Reading the user's [oidc] issuer can fail: that is the file's fault, not the
    gateway's (exit 2, the file named, no verdict about the gateway)."""
    config = os.path.join(env["XDG_CONFIG_HOME"], "credhelper", "config.toml")
    os.makedirs(os.path.dirname(config))
    with open(config, "w") as f:
        f.write("[oidc\n")
    p, out = check_sso(env, gateway.url)
    assert p.returncode == 2 and "config.toml" in p.stderr, p.stderr
    assert "does not publish" not in out and "Traceback" not in p.stderr
