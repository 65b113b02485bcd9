"""Proxies in credhelper.net, in-process, through a real tinyproxy (tests/proxyserver.py):
a request goes through the proxy named by HTTP_PROXY / HTTPS_PROXY in either case, around
it for a host on NO_PROXY, by CONNECT to an https backend; a proxy that is unreachable,
asks for credentials (407) or refuses them is exit 4 naming the proxy without its
credentials; credentials in a proxy URL are masked everywhere. The backends through the
proxy, run as the app runs them, are in tests/{vault,aws,oidc,admin}/test_*_proxy.py."""

from __future__ import annotations

import io
import ssl
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from openbao import free_port
from proxyserver import PROXY_PASSWORD, PROXY_USER, auth_proxy, http_proxy, proxies  # noqa: F401

from credhelper import net
from credhelper.errors import BackendUnavailable
from credhelper.log import Log

WRONG_PASSWORD = "canary-not-the-proxy-pw"


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b'{"hello": "backend"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    """(http URL, https URL, CA file) of a small JSON server on loopback, twice."""
    import trustme

    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    plain = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    secure = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    for server in (plain, secure):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield (f"http://127.0.0.1:{plain.server_address[1]}",
           f"https://127.0.0.1:{secure.server_address[1]}", str(ca_file))
    for server in (plain, secure):
        server.shutdown()


@pytest.fixture
def no_proxy_env(monkeypatch):
    """No proxy variable from the machine running the tests."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def get(url: str, ca: str | None = None) -> requests.Response:
    return net.session(ca).get(url + "/v1/sys/health", timeout=10)


def failure_of(url: str, ca: str | None = None) -> BackendUnavailable:
    with pytest.raises(net.ProxyFailure) as caught:
        get(url, ca)
    error = net.failure(caught.value, url, name="Vault", address_setting="[vault] address")
    assert isinstance(error, BackendUnavailable) and error.exit_code == 4
    assert PROXY_PASSWORD not in error.message + error.hint
    assert WRONG_PASSWORD not in error.message + error.hint
    return error


def test_requests_and_botocore_take_proxies_from_urllib():
    """Both libraries ask urllib.request.getproxies and proxy_bypass, which read the
    environment and, on macOS and Windows, the system's proxy settings and exceptions:
    what this suite cannot set up on Linux is at least wired to the function that does."""
    import botocore.utils
    import requests.utils

    for module in (requests.utils, botocore.utils):
        assert module.getproxies is urllib.request.getproxies
        assert module.proxy_bypass is urllib.request.proxy_bypass


@pytest.mark.parametrize("case", [str.upper, str.lower])
def test_through_the_proxy_and_around_it_for_no_proxy(proxies, backends, no_proxy_env, case):
    proxy, _ = proxies
    plain, _, _ = backends
    no_proxy_env.setenv(case("HTTP_PROXY"), proxy.url)
    assert get(plain).json() == {"hello": "backend"}
    assert proxy.seen() == [("GET", plain + "/v1/sys/health")]

    proxy.clear()
    no_proxy_env.setenv(case("NO_PROXY"), "localhost,127.0.0.1")
    assert get(plain).json() == {"hello": "backend"}
    assert proxy.seen() == []  # straight to the backend


def test_an_https_backend_is_reached_by_connect(proxies, backends, no_proxy_env):
    proxy, _ = proxies
    _, secure, ca = backends
    no_proxy_env.setenv("HTTPS_PROXY", proxy.url)
    assert get(secure, ca).json() == {"hello": "backend"}
    assert proxy.seen() == [("CONNECT", secure.removeprefix("https://"))]


def test_an_authenticating_proxy_with_the_right_credentials(proxies, backends, no_proxy_env):
    _, proxy = proxies
    plain, secure, ca = backends
    no_proxy_env.setenv("HTTP_PROXY", proxy.url)
    no_proxy_env.setenv("HTTPS_PROXY", proxy.url)
    assert get(plain).json() == get(secure, ca).json() == {"hello": "backend"}
    assert [m for m, _ in proxy.seen()] == ["GET", "CONNECT"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_proxy_that_asks_for_credentials(proxies, backends, no_proxy_env, scheme):
    """407 to a plain request (the proxy's answer) and to a CONNECT (a failed tunnel)."""
    _, proxy = proxies
    plain, secure, ca = backends
    no_proxy_env.setenv(f"{scheme.upper()}_PROXY", proxy.address)
    url = plain if scheme == "http" else secure
    error = failure_of(url, ca)
    assert error.message == (
        f"cannot reach Vault at {url} through the proxy {proxy.address} "
        f"({scheme.upper()}_PROXY): it asks for credentials (HTTP 407 Proxy Authentication "
        "Required)")
    assert "http://USER:PASSWORD@host:port" in error.hint and "NO_PROXY" in error.hint


def test_a_proxy_that_refuses_the_credentials(proxies, backends, no_proxy_env):
    """tinyproxy answers a CONNECT with wrong credentials 401 (not 407): either is the
    proxy's, since a tunnel that was not opened reached no backend."""
    _, proxy = proxies
    _, secure, ca = backends
    no_proxy_env.setenv("https_proxy", proxy.url_with(PROXY_USER, WRONG_PASSWORD))
    error = failure_of(secure, ca)
    assert error.message == (
        f"cannot reach Vault at {secure} through the proxy {proxy.address} (HTTPS_PROXY): "
        "it refused the credentials in its URL (HTTP 401 Unauthorized)")
    assert "check the user and password in the proxy URL (HTTPS_PROXY)" in error.hint


def test_an_unreachable_proxy(backends, no_proxy_env):
    plain, secure, ca = backends
    dead = f"http://{PROXY_USER}:{WRONG_PASSWORD}@127.0.0.1:{free_port()}"
    no_proxy_env.setenv("HTTP_PROXY", dead)
    no_proxy_env.setenv("HTTPS_PROXY", dead)
    for url in (plain, secure):
        error = failure_of(url, ca)
        assert error.message.endswith(
            f"through the proxy {net.proxy_address(dead)} (HTTP{'S' if url == secure else ''}"
            "_PROXY): it cannot be reached (Connection refused)"), error.message
        assert "and that it is running" in error.hint


def test_proxy_credentials_are_masked_in_every_message(no_proxy_env):
    """Registered when a session is made, before any request: whatever a library puts in
    an exception or a debug line, the password (plain or percent-encoded) is masked."""
    encoded = "canary-p%40ss%3Aword"
    no_proxy_env.setenv("HTTPS_PROXY", f"http://{PROXY_USER}:{encoded}@proxy.invalid:3128")
    net.session()
    err = io.StringIO()
    log = Log("t", err, debug=True)
    log.debug(f"proxy http://{PROXY_USER}:{encoded}@proxy.invalid:3128, "
              f"decoded canary-p@ss:word")
    assert "canary-" not in err.getvalue() and "***" in err.getvalue()


def test_where_a_proxy_comes_from(monkeypatch):
    env = {"https_proxy": "http://a:3128", "HTTPS_PROXY": "http://b:3128",
           "ALL_PROXY": "http://c:3128"}
    assert net.proxy_source("https://x", env) == "HTTPS_PROXY"
    assert net.proxy_source("http://x", env) == "ALL_PROXY"
    assert net.proxy_source("http://x", {}) == "the system proxy settings"
    assert net.proxy_address("http://u:p@proxy:3128") == "http://proxy:3128"
    assert net.proxy_address("proxy.corp:8080") == "http://proxy.corp:8080"


def test_a_407_from_a_proxy_nobody_configured(no_proxy_env):
    """An intercepting proxy answers a plain request 407 with no proxy set: still the
    proxy's answer, never a refusal by the backend (exit 5)."""

    class Intercepting(Hello):
        def do_GET(self):
            self.send_response(407, "Proxy Authentication Required")
            self.send_header("Proxy-Authenticate", 'Basic realm="corp"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Intercepting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        error = failure_of(url)
    finally:
        server.shutdown()
    assert error.message == (f"cannot reach Vault at {url} through a proxy on the way (none is "
                             "configured here): it asks for credentials (HTTP 407 Proxy "
                             "Authentication Required)")
