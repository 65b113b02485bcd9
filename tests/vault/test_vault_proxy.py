"""credhelper-vault behind a company proxy: a real tinyproxy between the helper and a real
OpenBao (http, and https by CONNECT), with and without Basic authentication, and a Vault
on NO_PROXY reached around it. The proxy's log says which requests went through it."""

from __future__ import annotations

from openbao import free_port
from proxyserver import PROXY_PASSWORD, PROXY_USER, auth_proxy, http_proxy, proxies, proxy_env  # noqa: F401

from .vaultkit import expect_token, failure, helper_env, run

KV2 = {"secret": "secret/gateway", "field": "token"}
WRONG_PASSWORD = "canary-wrong-proxy-pw"


def vault_env(base_env, address, proxy_url, **extra):
    env = proxy_env(helper_env(base_env, address, **KV2, **extra), proxy_url)
    env["VAULT_TOKEN"] = "root"
    return env


def test_through_the_proxy(base_env, lab, proxies):
    proxy, _ = proxies
    env = vault_env(base_env, lab.server.address, proxy.url)
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"])
    seen = proxy.seen()
    assert seen and all(target.startswith(lab.server.address + "/v1/") for _, target in seen)
    assert ("GET", f"{lab.server.address}/v1/secret/data/gateway") in seen


def test_https_through_an_authenticating_proxy(base_env, lab, proxies):
    """CONNECT with the credentials of the proxy URL; the Vault CA still verifies the
    server at the end of the tunnel. Neither stderr (--debug) nor the debug log holds the
    proxy's password (conftest checks both for every canary)."""
    _, proxy = proxies
    env = vault_env(base_env, lab.server.tls_address, proxy.url, ca_cert=lab.ca_pem)
    p = run(["credhelper-vault", "--debug"], env)
    expect_token(p, lab.values["kv2"], PROXY_PASSWORD)
    assert {("CONNECT", lab.server.tls_address.removeprefix("https://"))} == set(proxy.seen())


def test_wrong_proxy_credentials_exit_4_naming_the_proxy(base_env, lab, proxies):
    _, proxy = proxies
    env = vault_env(base_env, lab.server.tls_address,
                    proxy.url_with(PROXY_USER, WRONG_PASSWORD), ca_cert=lab.ca_pem)
    p = run(["credhelper-vault", "--debug"], env)
    failure(p, 4, f"cannot reach Vault at {lab.server.tls_address} through the proxy "
            f"{proxy.address} (HTTPS_PROXY): it refused the credentials in its URL",
            "hint: check the user and password in the proxy URL", secrets=(WRONG_PASSWORD,))
    assert PROXY_USER + ":" not in p.stderr


def test_a_proxy_that_wants_credentials_it_was_not_given(base_env, lab, proxies):
    """A plain http Vault: the 407 is the proxy's answer, not a refusal by Vault (exit 5)."""
    _, proxy = proxies
    env = vault_env(base_env, lab.server.address, proxy.address)
    failure(run(["credhelper-vault"], env), 4,
            f"through the proxy {proxy.address} (HTTP_PROXY): it asks for credentials "
            "(HTTP 407 Proxy Authentication Required)", "http://USER:PASSWORD@host:port")


def test_a_vault_on_no_proxy_is_reached_directly(base_env, lab, proxies):
    proxy, _ = proxies
    env = vault_env(base_env, lab.server.address, proxy.url)
    env["no_proxy"] = "vault.example.com,127.0.0.1"
    expect_token(run(["credhelper-vault"], env), lab.values["kv2"])
    assert proxy.seen() == []


def test_an_unreachable_proxy_exits_4(base_env, lab):
    dead = f"http://{PROXY_USER}:{WRONG_PASSWORD}@127.0.0.1:{free_port()}"
    env = vault_env(base_env, lab.server.address, dead)
    failure(run(["credhelper-vault"], env), 4,
            f"through the proxy http://127.0.0.1:{dead.rsplit(':', 1)[1]} (HTTP_PROXY): it "
            "cannot be reached (Connection refused)", secrets=(WRONG_PASSWORD,))
