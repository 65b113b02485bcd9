"""The shared backend contract (tests/conformance.py) for credhelper-oidc and
credhelper-azure against the real OpenID provider."""

from __future__ import annotations

import os

import pytest
from conformance import ContractTests, Harness

from .conftest import SVC_SECRET
from .idpkit import sign_in
from .test_oidc import interactive, token_of


@pytest.fixture
def backend(oidc_env):
    def ok():  # a machine client: no person needed
        return {**oidc_env, "CREDHELPER_OIDC_CLIENT_ID": "svc",
                "CREDHELPER_OIDC_GRANT": "client_credentials", "SVC_SECRET": SVC_SECRET,
                "CREDHELPER_OIDC_CLIENT_SECRET": "env:SVC_SECRET"}

    def refused():
        return {**ok(), "SVC_SECRET": "canary-wrong-secret"}

    def needs_person():  # the device flow, nobody signed in yet
        return dict(oidc_env)

    return Harness("credhelper-oidc", ok, refused,
                   lambda env, url: {**env, "CREDHELPER_OIDC_ISSUER": url}, needs_person,
                   secrets=[SVC_SECRET])


class TestOidcContract(ContractTests):
    pass


@pytest.fixture
def azure_backend(azure_env, idp, tmp_path):
    signed_in = []

    def ok():  # a person signed in once (device code); every later run is silent
        if not signed_in:
            token_of(sign_in(["credhelper-azure"], interactive(azure_env), idp, user="bob"))
            signed_in.append(True)
        return {**azure_env, "CLAUDE_HELPER_CONTEXT": "background"}

    def refused():  # a client the provider does not know
        return interactive(azure_env, CREDHELPER_AZURE_CLIENT_ID="nobody-knows-me")

    def needs_person():
        return dict(azure_env)

    def address_env(env, url):
        # The authority is part of the sign-in's identity (another authority has no
        # account), so the network path is cut with a proxy instead. MSAL would answer
        # from its own cache without the network: a mid-session refresh makes it ask
        # the provider, and an empty helper cache leaves no stale entry to serve.
        empty = tmp_path / f"empty-cache-{len(os.listdir(tmp_path))}"
        return {**env, "HTTPS_PROXY": url, "CREDHELPER_CACHE_DIR": str(empty),
                "CLAUDE_HELPER_CONTEXT": "mid-session-refresh"}

    return Harness("credhelper-azure", ok, refused, address_env, needs_person)


class TestAzureContract(ContractTests):
    @pytest.fixture
    def backend(self, azure_backend):
        return azure_backend
