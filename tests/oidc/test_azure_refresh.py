"""credhelper-azure and the app's refresh contract, with the local OpenID provider as
MSAL's authority: a forced refresh makes MSAL spend the refresh token even while its
cached access token is fresh, a revoked refresh token exits 3, and a device sign-in that
outlasts the app's budget is finished by the next run without a new code."""

from __future__ import annotations

import json
import time

from conftest import assert_failure, run
from services import MINTED_SECRETS

from .idpkit import approve, sign_in, user_code_from
from .test_azure import msal_files
from .test_oidc import interactive, token_of
from .test_oidc_refresh import device_authorizations

MID = {"CLAUDE_HELPER_CONTEXT": "mid-session-refresh", "CREDHELPER_AZURE_REFRESH_GRACE": "0s"}
BACKGROUND = {"CLAUDE_HELPER_CONTEXT": "background"}


def test_mid_session_refresh_makes_msal_use_the_refresh_token(azure_env, idp):
    first = token_of(sign_in(["credhelper-azure"], interactive(azure_env), idp))
    before = idp.refreshes()
    renewed = run(["credhelper-azure", "--debug"], {**azure_env, **MID})
    assert token_of(renewed) != first
    assert "token from identity_provider" in renewed.stderr  # not MSAL's cached one
    assert idp.refreshes() == before + 1


def test_mid_session_refresh_with_a_revoked_refresh_token_exits_3(azure_env, idp):
    no_bus = {k: v for k, v in azure_env.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    env = {**no_bus, "CREDHELPER_AZURE_TOKEN_CACHE": "file"}
    token_of(sign_in(["credhelper-azure"], interactive(env), idp))
    [path] = msal_files(env)
    with open(path) as f:
        tokens = [item["secret"] for item in json.load(f)["RefreshToken"].values()]
    MINTED_SECRETS.update(tokens)
    for token in tokens:
        answer = idp.session().post(f"{idp.issuer}/token/revocation", timeout=10,
                                    data={"token": token, "client_id": "cli"})
        assert answer.status_code == 200, answer.text
    before = device_authorizations(idp)
    assert_failure(run(["credhelper-azure"], {**env, **MID}), 3, "mid-session-refresh context")
    assert device_authorizations(idp) == before


def test_a_sign_in_that_outlasts_the_app_is_finished_by_the_next_run(azure_env, idp):
    env = interactive(azure_env, CREDHELPER_DEFAULTS_APP_TIMEOUT="6s")
    before = device_authorizations(idp)
    started = time.monotonic()
    first = run(["credhelper-azure"], env)
    assert time.monotonic() - started < 6
    assert_failure(first, 3, "is not finished yet")
    [code] = {user_code_from(line) for line in first.stderr.splitlines()} - {None}
    assert_failure(run(["credhelper-azure"], {**azure_env, **BACKGROUND}), 3, code)
    approve(idp, code, user="bob")
    token = token_of(run(["credhelper-azure"], {**azure_env, **BACKGROUND}))
    assert token and device_authorizations(idp) == before + 1
