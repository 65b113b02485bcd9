"""Endpoints the provider's metadata names get the same check as the configured issuer
(credhelper.config.check_url): https anywhere, plain http only to this machine, never a
user name or password. The real provider's discovery answer is edited on its way back by
test_oidc_faults.py's rig (``Fault.edit``): oidc-provider itself never names such
endpoints."""

from __future__ import annotations

import pytest
from conftest import assert_failure, run
from faultproxy import Fault

from .test_oidc_faults import DISCOVERY, proxy, rig, svc_env  # noqa: F401  (fixtures: this module's own rig)

BAD = {
    "plain http to another machine": ("token_endpoint", "http://198.51.100.7/token"),
    "a password in it": ("token_endpoint", "https://user:canary-metadata-pw@127.0.0.1/token"),
    "a backslash": ("token_endpoint", "https://198.51.100.7\\@127.0.0.1/token"),
    "not a string": ("device_authorization_endpoint", 7),
}


@pytest.mark.parametrize("kind", BAD)
def test_an_endpoint_the_issuer_may_not_name_is_refused(base_env, rig, proxy, tmp_path, kind):
    field, value = BAD[kind]

    def change(doc: dict) -> dict:
        doc[field] = value
        return doc

    proxy.plan(Fault.edit(change), match=DISCOVERY)
    p = run("credhelper-oidc", svc_env(base_env, rig.server, tmp_path))
    assert_failure(p, 2, field, "check [oidc] issuer")
    assert "canary-metadata-pw" not in p.stderr
    assert proxy.paths("/token") == [], "nothing may be sent there"
