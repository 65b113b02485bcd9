"""credhelper test-gateway against a real LiteLLM proxy on loopback. The proxy's auth hook
accepts exactly one key (CANARY) and answers 401 otherwise; its streaming test model
answers in real Anthropic SSE with a tool_use block; its plain model (mock_response)
never streams, like a gateway that speaks the wrong protocol. The credential comes from
a real backend: credhelper-keyring over a real GNOME Keyring."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import CANARY, run
from openbao import free_port


def store(env, secret):
    assert run(["credhelper-keyring", "store"], env, input=secret + "\n").returncode == 0


def check_gateway(env, url, *args):
    p = run(["credhelper", "test-gateway", url, "--provider", "keyring", *args], env, timeout=120)
    assert CANARY.encode() not in p.stdout, "the credential reached the report"
    return p, p.stdout.decode()


@pytest.mark.parametrize("scheme", ["bearer", "x-api-key"])
def test_a_working_gateway_with_both_auth_schemes(keyring_env, gateway, scheme):
    store(keyring_env, CANARY)
    p, out = check_gateway(keyring_env, gateway.url, "--auth-scheme", scheme)
    assert p.returncode == 0, (out, p.stderr)
    assert "helper: printed a credential" in out and "context setup-test" in out
    assert "GET /v1/models: 200" in out and "test-model" in out
    assert "POST /v1/messages (stream, tool): 200" in out and "tool_use" in out
    assert "result: the gateway works" in out


def test_json_report_lists_models_and_events(keyring_env, gateway):
    """Also: a helper that prints the JSON form ({token, headers}) is handled as the app
    handles it: the token is the credential, the headers go along."""
    store(keyring_env, CANARY)
    keyring_env["CREDHELPER_KEYRING_HEADERS"] = '{"X-Team": "ml"}'
    p, out = check_gateway(keyring_env, gateway.url, "--model", "test-model", "--json")
    report = json.loads(out)
    assert p.returncode == 0 and report["exit_code"] == 0, out
    by_name = {c["check"]: c for c in report["checks"]}
    assert "headers X-Team" in by_name["helper"]["detail"]
    assert by_name["GET /v1/models"]["models"] == ["test-model", "plain-model"]
    events = by_name["POST /v1/messages (stream, tool)"]["events"]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(events)


def test_a_wrong_credential_is_reported_as_such(keyring_env, gateway):
    store(keyring_env, "not-the-gateway-key")
    p, out = check_gateway(keyring_env, gateway.url)
    assert p.returncode == 5, out
    assert "refused the credential (401" in out
    assert "problem: the gateway refused the credential the helper printed" in out
    assert "not-the-gateway-key" not in out


def test_a_gateway_that_is_down(keyring_env, gateway):
    store(keyring_env, CANARY)
    p, out = check_gateway(keyring_env, f"http://127.0.0.1:{free_port()}")
    assert p.returncode == 4, out
    assert "cannot reach the gateway" in out and "problem: the gateway could not be reached" in out


def test_a_gateway_model_that_does_not_stream_is_the_wrong_protocol(keyring_env, gateway):
    store(keyring_env, CANARY)
    p, out = check_gateway(keyring_env, gateway.url, "--model", "plain-model")
    assert p.returncode == 4, out
    assert "problem: the gateway answered, but not as the app needs" in out
    assert "tool_use" in out or "event stream" in out


class NotAGateway(BaseHTTPRequestHandler):
    """A web server that is not an LLM gateway: 404 for /v1/models, HTML for the rest."""

    def _send(self, status, body, kind):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send(404, b"not found", "text/plain")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(200, b"<html>welcome</html>", "text/html")

    def log_message(self, *args):
        pass


def test_a_server_that_is_not_a_gateway(keyring_env):
    store(keyring_env, CANARY)
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotAGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        p, out = check_gateway(keyring_env, url, "--model", "m")
    finally:
        server.shutdown()
    assert p.returncode == 4, out
    assert "GET /v1/models: 404" in out  # reported, not fatal
    assert "not an event stream" in out and "wrong protocol" not in out.split("problem:")[0]


def test_a_helper_that_fails_stops_before_the_gateway(keyring_env, gateway):
    p, out = check_gateway(keyring_env, gateway.url)  # nothing stored in the keyring
    assert p.returncode == 5, out
    assert "the helper failed (exit 5)" in out and "nothing stored" in out
    assert "GET /v1/models" not in out


def test_bad_urls_are_usage_errors(keyring_env):
    p = run(["credhelper", "test-gateway", "http://gateway.example.com", "--provider", "keyring"], keyring_env)
    assert p.returncode == 2 and "plain http" in p.stderr and p.stdout == b""


def test_fed_by_vault_over_tls(base_env, gateway, tls_bao):
    """The other real backend: credhelper-vault reads the gateway key from OpenBao (https,
    test CA) and test-gateway uses it as the app would."""
    tls_bao.client().secrets.kv.v2.create_or_update_secret("gateway", secret={"key": CANARY})
    env = {**base_env, "VAULT_ADDR": tls_bao.tls_address, "VAULT_CACERT": tls_bao.ca_pem,
           "VAULT_TOKEN": "root", "CREDHELPER_VAULT_SECRET": "secret/gateway",
           "CREDHELPER_VAULT_FIELD": "key"}
    p = run(["credhelper", "test-gateway", gateway.url, "--provider", "vault",
             "--auth-scheme", "x-api-key"], env, timeout=120)
    out = p.stdout.decode()
    assert p.returncode == 0, (out, p.stderr)
    assert "credhelper-vault" in out and "result: the gateway works" in out and CANARY not in out
