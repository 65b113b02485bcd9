"""The shared backend contract (tests/conformance.py) against the real OpenBao server."""

from __future__ import annotations

import pytest
from conformance import ContractTests, Harness

from .vaultkit import helper_env

KV2 = {"secret": "secret/gateway", "field": "token"}


@pytest.fixture
def backend(base_env, lab):
    def ok():
        return {**helper_env(base_env, lab.server.address, **KV2), "VAULT_TOKEN": "root"}

    def refused():  # a real token whose policy does not reach the secret
        token = lab.api("POST", "auth/token/create", policies=["default"])["auth"]["client_token"]
        harness.secrets.append(token)
        return {**ok(), "VAULT_TOKEN": token}

    def needs_person():  # userpass with no password anywhere: only a person can type it
        return helper_env(base_env, lab.server.address, auth="userpass", username="alice", **KV2)

    harness = Harness("credhelper-vault", ok, refused, lambda env, url: {**env, "VAULT_ADDR": url},
                      needs_person, secrets=["root"])
    return harness


class TestVaultContract(ContractTests):
    pass
