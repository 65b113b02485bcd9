"""credhelper test-gateway behind a company proxy and a company CA: a real tinyproxy between
it and the real LiteLLM gateway (plain http on loopback) and a TLS stand-in gateway whose
certificate a test CA signed (reached by CONNECT), ``--ca-cert``, ``--header`` on every
gateway call, NO_PROXY, and an event stream read event by event through the proxy. The
credential comes from credhelper-keyring over a real GNOME Keyring."""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import CANARY, run
from proxyserver import PROXY_PASSWORD, PROXY_USER, auth_proxy, http_proxy, proxies, proxy_env  # noqa: F401

WRONG_PASSWORD = "canary-wrong-proxy-pw"
EVENTS = [
    ("message_start", {"type": "message_start", "message": {"id": "m", "content": []}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "tool_use", "name": "get_weather"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
    ("message_stop", {"type": "message_stop"}),
]


def store(env, secret):
    assert run(["credhelper-keyring", "store"], env, input=secret + "\n").returncode == 0


def check_gateway(env, url, *args):
    p = run(["credhelper", "test-gateway", url, "--provider", "keyring", *args], env, timeout=120)
    out = p.stdout.decode()
    for secret in (CANARY, PROXY_PASSWORD, WRONG_PASSWORD):
        assert secret not in out and secret not in p.stderr, "a secret reached the report"
    return p, out


class StandIn:
    """A gateway stand-in: /v1/models lists one model, /v1/messages streams EVENTS with
    a pause after the first (chunked, or ended by closing the connection); every
    request's path and headers are kept. https when given an SSLContext."""

    def __init__(self, context: ssl.SSLContext | None = None, pause: float = 1.0,
                 chunked: bool = True):
        self.requests: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if chunked else "HTTP/1.0"

            def do_GET(self):
                outer.requests.append((self.path, dict(self.headers)))
                body = json.dumps({"data": [{"id": "m1"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append((self.path, dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i, (name, data) in enumerate(EVENTS):
                    event = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event) if chunked else event)
                    self.wfile.flush()
                    if i == 0:
                        time.sleep(pause)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def company_ca(tmp_path_factory):
    import trustme

    ca = trustme.CA(organization_name="credhelper test company CA")
    path = tmp_path_factory.mktemp("company-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


@pytest.fixture
def tls_standin(company_ca):
    ca, _ = company_ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = StandIn(context, pause=0)
    yield server
    server.stop()


def test_litellm_through_the_proxy(keyring_env, gateway, proxies):
    proxy, _ = proxies
    store(keyring_env, CANARY)
    p, out = check_gateway(proxy_env(keyring_env, proxy.url), gateway.url)
    assert p.returncode == 0, (out, p.stderr)
    assert "GET /v1/models: 200" in out and "POST /v1/messages (stream, tool): 200" in out
    assert "result: the gateway works" in out
    assert proxy.seen() == [("GET", gateway.url + "/v1/models"),
                            ("POST", gateway.url + "/v1/messages")]


def test_litellm_on_no_proxy_is_reached_directly(keyring_env, gateway, proxies):
    proxy, _ = proxies
    store(keyring_env, CANARY)
    env = proxy_env(keyring_env, proxy.url, no_proxy="127.0.0.1")
    p, out = check_gateway(env, gateway.url)
    assert p.returncode == 0 and "result: the gateway works" in out, (out, p.stderr)
    assert proxy.seen() == []


def test_a_proxy_that_wants_credentials_exits_4_naming_it(keyring_env, gateway, proxies):
    _, proxy = proxies
    store(keyring_env, CANARY)
    p, out = check_gateway(proxy_env(keyring_env, proxy.address), gateway.url)
    assert p.returncode == 4, out
    assert (f"cannot reach the gateway at {gateway.url} through the proxy {proxy.address} "
            "(HTTP_PROXY): it asks for credentials (HTTP 407 Proxy Authentication Required)"
            in out)
    assert "problem: the gateway could not be reached" in out


def test_a_company_ca_a_custom_header_and_an_authenticating_proxy(keyring_env, tls_standin,
                                                                  company_ca, proxies):
    """https by CONNECT through the authenticating proxy; the gateway's certificate is
    verified against --ca-cert (without it: exit 4 naming --ca-cert); every gateway
    call carries the --header values, as the app sends its custom headers."""
    _, proxy = proxies
    _, ca_file = company_ca
    store(keyring_env, CANARY)
    env = proxy_env(keyring_env, proxy.url)
    p, out = check_gateway(env, tls_standin.url)
    assert p.returncode == 4, out
    assert "certificate verify failed" in out and "--ca-cert" in out
    assert tls_standin.requests == []

    p, out = check_gateway(env, tls_standin.url, "--ca-cert", ca_file,
                           "--header", "X-Team: ml research", "--header", "x-cost-center:42")
    assert p.returncode == 0, (out, p.stderr)
    assert [path for path, _ in tls_standin.requests] == ["/v1/models", "/v1/messages"]
    for _, headers in tls_standin.requests:
        assert headers["X-Team"] == "ml research" and headers["x-cost-center"] == "42"
        assert headers["authorization"] == f"Bearer {CANARY}"
    assert set(proxy.seen()) == {("CONNECT", tls_standin.url.removeprefix("https://"))}

    wrong = proxy_env(keyring_env, proxy.url_with(PROXY_USER, WRONG_PASSWORD))
    p, out = check_gateway(wrong, tls_standin.url, "--ca-cert", ca_file)
    assert p.returncode == 4, out
    assert (f"through the proxy {proxy.address} (HTTPS_PROXY): it refused the credentials "
            "in its URL (HTTP 401 Unauthorized)") in out


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "ended-by-close"])
def test_the_event_stream_is_read_as_it_arrives_through_the_proxy(keyring_env, proxies,
                                                                  chunked):
    """The first event is seen when it arrives, not when the stream ends 1.5 s later."""
    proxy, _ = proxies
    store(keyring_env, CANARY)
    server = StandIn(pause=1.5, chunked=chunked)
    try:
        p, out = check_gateway(proxy_env(keyring_env, proxy.url), server.url, "--json")
    finally:
        server.stop()
    report = json.loads(out)
    assert p.returncode == 0, out
    stream = {c["check"]: c for c in report["checks"]}["POST /v1/messages (stream, tool)"]
    assert stream["first_event_ms"] < 1000 <= 1500 <= stream["latency_ms"], stream
    assert stream["events"] == [name for name, _ in EVENTS]
    assert ("POST", server.url + "/v1/messages") in proxy.seen()


@pytest.mark.parametrize("header, said", [
    ("X-Team", "expected 'Name: Value'"), ("Bad Name: x", "expected 'Name: Value'"),
    ("X-Team: caf\u00e9", "visible ASCII"), ("X-Team:", "visible ASCII")])
def test_a_malformed_header_is_a_usage_error(keyring_env, header, said):
    p = run(["credhelper", "test-gateway", "http://127.0.0.1:9", "--provider", "keyring",
             "--header", header], keyring_env)
    assert p.returncode == 2 and said in p.stderr and p.stdout == b"", p.stderr


def test_an_unreadable_ca_cert_is_a_usage_error(keyring_env, tmp_path):
    p = run(["credhelper", "test-gateway", "http://127.0.0.1:9", "--provider", "keyring",
             "--ca-cert", str(tmp_path / "missing.pem")], keyring_env)
    assert p.returncode == 2 and p.stdout == b"", p.stderr
    assert f"TLS file not found: {tmp_path / 'missing.pem'} (--ca-cert)" in p.stderr
