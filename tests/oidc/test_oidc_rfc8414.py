"""credhelper-oidc with an issuer that publishes RFC 8414 authorization server metadata
instead of OpenID discovery.

What is real: the OpenID provider (oidc-provider on Node, tests/oidc/idp.mjs), its
metadata document, its device flow and tokens. What is arranged: where the provider
publishes that document. Its test switch (IDP_METADATA, POST /idp-metadata) makes
``/idp/.well-known/openid-configuration`` answer 404 and serves oidc-provider's own
document only at RFC 8414's path-inserted location (``/.well-known/oauth-authorization-server/idp``)
or only at the appended one (``/idp/.well-known/oauth-authorization-server``, which
oidc-provider serves itself). The provider is this module's own, so the shared one keeps
publishing OpenID discovery.
"""

from __future__ import annotations

import pytest
from conftest import assert_failure, run

from credhelper import jwt

from .conftest import SVC_SECRET, desktop_env
from .idpkit import IdP, sign_in


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = IdP(tmp_path_factory.mktemp("idp-rfc8414"), SVC_SECRET)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("IDP_METADATA", "rfc8414")
            server.start()
    except Exception as exc:  # node, npm or the package missing must fail loudly in CI
        pytest.fail(f"cannot start the OpenID provider: {exc}")
    yield server
    server.stop()


def publish(server: IdP, mode: str) -> None:
    """Where the provider publishes its metadata from now on (see idp.mjs)."""
    answer = server.session().post(f"{server.origin}/idp-metadata", params={"serve": mode},
                                   timeout=5)
    assert answer.status_code == 204, answer.status_code


@pytest.fixture
def metadata_at(server):
    """Set the provider's publishing mode for one test; the module's default afterwards."""
    yield lambda mode: publish(server, mode)
    publish(server, "rfc8414")


@pytest.fixture
def env(base_env, server, tmp_path):
    env = desktop_env(base_env, server, tmp_path)
    env["CREDHELPER_OIDC_ISSUER"] = server.issuer
    env["CREDHELPER_OIDC_CLIENT_ID"] = "cli"
    return env


def token_of(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().rstrip("\n")


def openid_discovery_status(server: IdP) -> int:
    url = f"{server.issuer}/.well-known/openid-configuration"
    return server.session().get(url, timeout=5).status_code


def test_device_sign_in_with_rfc8414_metadata_at_the_path_inserted_location(env, server):
    assert openid_discovery_status(server) == 404  # no OpenID discovery: RFC 8414 only
    proc = sign_in(["credhelper-oidc", "--debug"], {**env, "CLAUDE_HELPER_CONTEXT": "interactive"},
                   server)
    claims = jwt.decode(token_of(proc))[1]
    assert claims["sub"] == "alice" and claims["aud"] == "https://gateway.example"
    inserted = f"{server.origin}/.well-known/oauth-authorization-server/idp"
    assert f"metadata from {inserted} (RFC 8414)" in proc.stderr
    # A later silent run (the app's background refresh) finds the metadata the same way.
    background = {**env, "CLAUDE_HELPER_CONTEXT": "background",
                  "CREDHELPER_OIDC_MIN_VALIDITY": "2h"}  # above the lifetime: must renew
    again = run(["credhelper-oidc", "--debug"], background)
    assert token_of(again) and "refresh token" in again.stderr


def test_the_appended_rfc8414_form_is_tried_last(env, server, metadata_at):
    metadata_at("rfc8414-appended")
    env.update({"CREDHELPER_OIDC_CLIENT_ID": "svc", "CREDHELPER_OIDC_GRANT": "client_credentials",
                "CREDHELPER_OIDC_CLIENT_SECRET": "env:SVC_SECRET", "SVC_SECRET": SVC_SECRET})
    proc = run(["credhelper-oidc", "--debug"], env)
    assert jwt.decode(token_of(proc))[1]["aud"] == "https://gateway.example"
    assert f"metadata from {server.issuer}/.well-known/oauth-authorization-server" in proc.stderr


def test_no_metadata_anywhere_names_every_url_tried(env, server, metadata_at):
    metadata_at("none")
    proc = run(["credhelper-oidc"], {**env, "CLAUDE_HELPER_CONTEXT": "interactive"})
    assert_failure(proc, 2, "discovery failed: no metadata at",
                   f"{server.issuer}/.well-known/openid-configuration (HTTP 404)",
                   f"{server.origin}/.well-known/oauth-authorization-server/idp (HTTP 404)",
                   f"{server.issuer}/.well-known/oauth-authorization-server (HTTP 404)",
                   "check [oidc] issuer")

