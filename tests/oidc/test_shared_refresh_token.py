"""Two configurations that share one refresh token, on the real OpenID provider.

``token = "access"`` and ``token = "id"`` with the same issuer, client and scopes are two
cache keys (two cache locks) but one sign-in: one refresh token, which the provider
rotates on every use (a public client) and treats as stolen when it is presented twice
(oidc-provider answers invalid_grant and revokes the whole grant). idp.mjs counts every
refresh-token grant that presents a refresh token it has seen before
(``refresh_token_reused``).

Every run is a forced refresh (mid-session-refresh, refresh_grace 0s), so every run of
each configuration fetches, one after the other under its cache lock, while the other
configuration's runs do the same: the two chains of renewals meet on the one refresh
token. Azure's MSAL token cache is shared the same way (one cache per authority and
client, whatever the scopes or token kind).
"""

from __future__ import annotations

import concurrent.futures

from conftest import run

from .idpkit import sign_in
from .test_oidc import interactive, state_tokens, token_of

# Every run must fetch: the app gave up on the credential it holds, and no entry counts
# as refreshed a moment ago.
FORCED = {"CLAUDE_HELPER_CONTEXT": "mid-session-refresh"}
# Forty interpreters start at once on a small machine: the deadline must not be what
# the test measures (each run still waits for its cache lock by that deadline).
SLOW_START = {"CREDHELPER_DEFAULTS_APP_TIMEOUT": "180s", "CREDHELPER_DEFAULTS_TIMEOUT": "170s"}


def _all_at_once(envs: list[dict]) -> list:
    with concurrent.futures.ThreadPoolExecutor(len(envs)) as pool:
        return list(pool.map(lambda env: run(["credhelper-oidc" if "CREDHELPER_OIDC_ISSUER" in env
                                               else "credhelper-azure"], env, timeout=240),
                             envs))


def _failures(procs) -> list[tuple[int, str]]:
    """(exit code, error line) of the runs that printed no token, the first five."""
    return [(p.returncode, next((line for line in p.stderr.splitlines() if "error:" in line), ""))
            for p in procs if p.returncode != 0][:5]


def _spent(before: dict, after: dict) -> tuple[int, int]:
    """(refresh-token grants answered 200, refresh tokens presented a second time)."""
    return (after.get("refresh_token:200", 0) - before.get("refresh_token:200", 0),
            after.get("refresh_token_reused", 0) - before.get("refresh_token_reused", 0))


def test_twenty_runs_of_each_of_two_configurations_never_spend_a_refresh_token_twice(
        oidc_env, idp):
    token_of(sign_in(["credhelper-oidc"], interactive(oidc_env), idp))
    access = {**oidc_env, **FORCED, **SLOW_START, "CREDHELPER_OIDC_REFRESH_GRACE": "0s"}
    ident = {**access, "CREDHELPER_OIDC_TOKEN": "id"}
    before = idp.stats()
    procs = _all_at_once([access, ident] * 20)
    failed = _failures(procs)
    after = idp.stats()
    renewals, reused = _spent(before, after)
    assert reused == 0, f"{reused} refresh token(s) spent twice; failed runs: {failed}"
    assert not failed, failed
    tokens = [token_of(p) for p in procs]  # every run printed one token
    assert len(tokens) == 40
    # Each configuration's twenty runs fetched one after another; a run of one that
    # waited while the other renewed took that renewal instead of spending again.
    assert 20 <= renewals <= 40, renewals
    assert after.get("refresh_token:400", 0) == before.get("refresh_token:400", 0)
    # The chain is intact: one saved refresh token, which the provider still honours.
    assert len(state_tokens(oidc_env)) == 1
    token_of(run(["credhelper-oidc"], {**access, "CREDHELPER_OIDC_MIN_VALIDITY": "2h"}))


def test_msal_cache_shared_by_two_configurations_never_spends_a_refresh_token_twice(
        azure_env, idp):
    token_of(sign_in(["credhelper-azure"], interactive(azure_env), idp))
    access = {**azure_env, **FORCED, **SLOW_START, "CREDHELPER_AZURE_REFRESH_GRACE": "0s"}
    ident = {**access, "CREDHELPER_AZURE_TOKEN": "id"}
    before = idp.stats()
    procs = _all_at_once([access, ident] * 10)
    failed = _failures(procs)
    after = idp.stats()
    renewals, reused = _spent(before, after)
    assert reused == 0, f"{reused} refresh token(s) spent twice; failed runs: {failed}"
    assert not failed, failed
    assert len([token_of(p) for p in procs]) == 20
    assert 10 <= renewals <= 20, renewals
    assert after.get("refresh_token:400", 0) == before.get("refresh_token:400", 0)
    token_of(run(["credhelper-azure"], access))  # MSAL's saved refresh token still works
