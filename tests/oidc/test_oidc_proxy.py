"""credhelper-oidc (authlib) and credhelper-azure (MSAL) behind a company proxy: a real
tinyproxy between the helper and the real OpenID provider (https, so every call is a
CONNECT tunnel; the provider's CA still verifies the server at its end), with and without
Basic authentication, and the provider on NO_PROXY reached around it."""

from __future__ import annotations

import time

from conftest import assert_failure, run
from openbao import free_port
from proxyserver import PROXY_PASSWORD, PROXY_USER, auth_proxy, http_proxy, proxies, proxy_env  # noqa: F401

from credhelper import jwt

from .conftest import SVC_SECRET
from .idpkit import sign_in
from .test_oidc import interactive, token_of

WRONG_PASSWORD = "canary-wrong-proxy-pw"


def service_env(oidc_env, proxy_url, **extra):
    """client_credentials: a silent grant, one discovery and one token call."""
    env = proxy_env(oidc_env, proxy_url, **extra)
    env.update(CREDHELPER_OIDC_CLIENT_ID="svc", CREDHELPER_OIDC_GRANT="client_credentials",
               CREDHELPER_OIDC_CLIENT_SECRET="env:SVC_SECRET", SVC_SECRET=SVC_SECRET,
               CLAUDE_HELPER_CONTEXT="background")
    return env


def tunnel(idp) -> tuple[str, str]:
    return ("CONNECT", idp.origin.removeprefix("https://"))


def test_oidc_through_an_authenticating_proxy(oidc_env, idp, proxies):
    _, proxy = proxies
    p = run(["credhelper-oidc", "--debug"], service_env(oidc_env, proxy.url))
    token_of(p)
    seen = proxy.seen()
    assert seen and set(seen) == {tunnel(idp)}  # discovery, token: all through the proxy
    assert PROXY_PASSWORD not in p.stderr and SVC_SECRET not in p.stderr


def test_oidc_with_wrong_proxy_credentials_exits_4(oidc_env, idp, proxies):
    _, proxy = proxies
    env = service_env(oidc_env, proxy.url_with(PROXY_USER, WRONG_PASSWORD))
    p = run(["credhelper-oidc", "--debug"], env)
    assert_failure(p, 4, f"cannot reach {idp.issuer} through the proxy {proxy.address} "
                   "(HTTPS_PROXY): it refused the credentials in its URL (HTTP 401 Unauthorized)",
                   "hint: check the user and password in the proxy URL")
    assert WRONG_PASSWORD not in p.stderr and PROXY_USER + ":" not in p.stderr


def test_oidc_without_the_credentials_a_proxy_asks_for_exits_4(oidc_env, idp, proxies):
    _, proxy = proxies
    assert_failure(run(["credhelper-oidc"], service_env(oidc_env, proxy.address)), 4,
                   f"through the proxy {proxy.address} (HTTPS_PROXY): it asks for credentials "
                   "(HTTP 407 Proxy Authentication Required)")


def test_a_provider_on_no_proxy_is_reached_directly(oidc_env, idp, proxies):
    proxy, _ = proxies
    token_of(run(["credhelper-oidc"], service_env(oidc_env, proxy.url, no_proxy="127.0.0.1")))
    assert proxy.seen() == []


def test_oidc_with_an_unreachable_proxy_exits_4(oidc_env, idp):
    port = free_port()
    env = service_env(oidc_env, f"http://127.0.0.1:{port}")
    assert_failure(run(["credhelper-oidc"], env), 4, f"cannot reach {idp.issuer} through the "
                   f"proxy http://127.0.0.1:{port} (HTTPS_PROXY): it cannot be reached "
                   "(Connection refused)")


def test_azure_msal_signs_in_and_renews_through_the_proxy(azure_env, idp, proxies):
    """MSAL's every call (discovery, device code, token, refresh) goes through credhelper's
    session, so through the proxy: none reaches the provider around it."""
    proxy, _ = proxies
    env = proxy_env({**azure_env, "CREDHELPER_AZURE_CLIENT_ID": "cli-short",
                     "CREDHELPER_AZURE_MIN_VALIDITY": "1s"}, proxy.url)
    first = token_of(sign_in(["credhelper-azure"], interactive(env), idp))
    assert proxy.seen() and set(proxy.seen()) == {tunnel(idp)}
    time.sleep(max(0.0, jwt.expiry(first) - time.time()) + 0.5)  # a 5 s token
    proxy.clear()
    before = idp.refreshes()
    renewed = run(["credhelper-azure"], {**env, "CLAUDE_HELPER_CONTEXT": "mid-session-refresh"})
    assert token_of(renewed) != first and idp.refreshes() == before + 1
    assert proxy.seen() and set(proxy.seen()) == {tunnel(idp)}


def test_azure_with_an_unreachable_proxy_exits_4(azure_env, idp):
    port = free_port()
    env = proxy_env(azure_env, f"http://127.0.0.1:{port}")
    assert_failure(run(["credhelper-azure"], interactive(env)), 4,
                   f"through the proxy http://127.0.0.1:{port} (HTTPS_PROXY): it cannot be "
                   "reached (Connection refused)")
