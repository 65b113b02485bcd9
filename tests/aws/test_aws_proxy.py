"""credhelper-aws behind a company proxy: a real tinyproxy between botocore and a real moto
server (plain http through the recording STS proxy, and https by CONNECT with
AWS_CA_BUNDLE), with and without Basic authentication, and an endpoint on NO_PROXY
reached around it. botocore reads the proxy itself (urllib's getproxies, as requests
does); what credhelper adds is the words when the proxy fails, and masking its password."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import assert_failure
from openbao import free_port
from proxyserver import PROXY_PASSWORD, PROXY_USER, auth_proxy, http_proxy, proxies, proxy_env  # noqa: F401

from .helpers import assert_clean, aws, token_of

WRONG_PASSWORD = "canary-wrong-proxy-pw"



def test_through_the_proxy(aws_env, sts_proxy, proxies):
    proxy, _ = proxies
    env = proxy_env(aws_env, proxy.url)
    p = aws(env, "--debug")
    assert token_of(p).startswith("credhelper-aws-v1.")
    assert proxy.seen() == [("POST", sts_proxy.url + "/")]
    assert sts_proxy.actions() == ["GetCallerIdentity"]
    assert_clean(p.stderr)


def test_https_through_an_authenticating_proxy(aws_env, tls_moto, proxies):
    """CONNECT with the proxy URL's credentials; AWS_CA_BUNDLE verifies moto at the end of
    the tunnel. The password reaches neither stderr (--debug) nor the debug log."""
    _, proxy = proxies
    server, ca_file = tls_moto
    env = proxy_env(aws_env, proxy.url)
    env.update(CREDHELPER_AWS_ENDPOINT_URL=server.url, AWS_CA_BUNDLE=ca_file)
    p = aws(env, "--debug")
    assert token_of(p).startswith("credhelper-aws-v1.")
    assert set(proxy.seen()) == {("CONNECT", server.url.removeprefix("https://"))}
    assert PROXY_PASSWORD not in p.stderr


def test_wrong_proxy_credentials_exit_4_naming_the_proxy(aws_env, tls_moto, proxies):
    _, proxy = proxies
    server, ca_file = tls_moto
    env = proxy_env(aws_env, proxy.url_with(PROXY_USER, WRONG_PASSWORD))
    env.update(CREDHELPER_AWS_ENDPOINT_URL=server.url, AWS_CA_BUNDLE=ca_file)
    p = aws(env, "--debug")
    assert_failure(p, 4, f"cannot reach AWS through the proxy {proxy.address} (HTTPS_PROXY): "
                   "it refused the credentials in its URL (HTTP 401 Unauthorized)",
                   "hint: check the user and password in the proxy URL")
    assert WRONG_PASSWORD not in p.stderr and PROXY_USER + ":" not in p.stderr


def test_a_proxy_that_wants_credentials_it_was_not_given(aws_env, tls_moto, proxies):
    _, proxy = proxies
    server, ca_file = tls_moto
    env = proxy_env(aws_env, proxy.address)
    env.update(CREDHELPER_AWS_ENDPOINT_URL=server.url, AWS_CA_BUNDLE=ca_file)
    assert_failure(aws(env), 4, f"cannot reach AWS through the proxy {proxy.address} "
                   "(HTTPS_PROXY): it asks for credentials (HTTP 407 Proxy Authentication "
                   "Required)", "http://USER:PASSWORD@host:port")


def test_a_407_answer_is_a_proxys_not_a_refusal_by_aws(aws_env):
    """An intercepting proxy nobody configured answers a plain http call 407: exit 4 saying
    so, not exit 5 as for an AWS refusal. (tinyproxy itself resets a POST it refuses
    before reading its body, so the answer comes from a stand-in here.)"""

    class Intercepting(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(407, "Proxy Authentication Required")
            self.send_header("Proxy-Authenticate", 'Basic realm="corp"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Intercepting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = dict(aws_env, CREDHELPER_AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.server_address[1]}")
        p = aws(env)
    finally:
        server.shutdown()
    assert_failure(p, 4, "cannot reach AWS through a proxy on the way (none is configured "
                   "here): it asks for credentials (HTTP 407 Proxy Authentication Required)")


def test_an_endpoint_on_no_proxy_is_reached_directly(aws_env, sts_proxy, proxies):
    proxy, _ = proxies
    env = proxy_env(aws_env, proxy.url, no_proxy="127.0.0.1")
    assert token_of(aws(env)).startswith("credhelper-aws-v1.")
    assert proxy.seen() == []
    assert sts_proxy.actions() == ["GetCallerIdentity"]


def test_an_unreachable_proxy_exits_4(aws_env, sts_proxy):
    port = free_port()
    env = proxy_env(aws_env, f"http://{PROXY_USER}:{WRONG_PASSWORD}@127.0.0.1:{port}")
    p = aws(env)
    assert_failure(p, 4, f"through the proxy http://127.0.0.1:{port} (HTTP_PROXY): it cannot "
                   "be reached (Connection refused)")
    assert WRONG_PASSWORD not in p.stderr
