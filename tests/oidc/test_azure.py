"""credhelper-azure against the local OpenID provider as its authority (MSAL's
oidc_authority: Microsoft's own endpoints cannot be reached from the tests), with the MSAL
token cache in a real GNOME Keyring, or in the 0600 file fallback."""

from __future__ import annotations

import concurrent.futures
import glob
import json
import os
import time

from conftest import assert_failure, run

from credhelper import jwt

from .idpkit import sign_in
from .test_oidc import drop_cached, interactive, token_of


def msal_files(env) -> list[str]:
    return glob.glob(os.path.join(env["CREDHELPER_CACHE_DIR"], "azure-msal-*.bin"))


def test_first_sign_in_then_silent_from_the_protected_cache(azure_env, idp):
    proc = sign_in(["credhelper-azure"], interactive(azure_env), idp, user="bob")
    token = token_of(proc)
    assert jwt.decode(token)[1]["sub"] == "bob"
    with open(azure_env["PRESENTER_RECORD"]) as f:
        assert proc.user_code in f.read()
    assert msal_files(azure_env) == []  # the MSAL cache lives in the keyring, not on disk

    # A new process, the helper's own cache gone: MSAL's persisted cache answers alone.
    drop_cached(azure_env, "azure")
    stats = idp.stats()
    again = run(["credhelper-azure", "--debug"], {**azure_env, "CLAUDE_HELPER_CONTEXT": "background"})
    assert token_of(again) == token
    assert "token from cache" in again.stderr
    assert idp.stats() == stats  # not one request to the token endpoint

    status = run(["credhelper-azure", "status"], azure_env).stdout.decode()
    assert "account:   bob" in status and "tenant:" in status and "refresh token: present" in status
    assert "Secret Service" in status and token not in status


def test_refresh_after_the_access_token_expires(azure_env, idp):
    env = {**azure_env, "CREDHELPER_AZURE_CLIENT_ID": "cli-short", "CREDHELPER_AZURE_MIN_VALIDITY": "1s"}
    first = token_of(sign_in(["credhelper-azure"], interactive(env), idp))
    time.sleep(max(0.0, jwt.expiry(first) - time.time()) + 0.5)
    before = idp.refreshes()
    second = run(["credhelper-azure"], {**env, "CLAUDE_HELPER_CONTEXT": "mid-session-refresh"})
    assert token_of(second) != first and jwt.expiry(token_of(second)) > time.time()
    assert idp.refreshes() == before + 1


def test_the_file_fallback_only_when_configured(azure_env, idp):
    no_bus = {k: v for k, v in azure_env.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    assert_failure(run(["credhelper-azure"], interactive(no_bus)), 4,
                   "no protected store", 'token_cache = "file"')
    env = {**no_bus, "CREDHELPER_AZURE_TOKEN_CACHE": "file"}
    token = token_of(sign_in(["credhelper-azure"], interactive(env), idp))
    [path] = msal_files(env)
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(path) as f:
        refresh = [v["secret"] for v in json.load(f)["RefreshToken"].values()]
    drop_cached(env, "azure")
    again = run(["credhelper-azure", "--debug"], {**env, "CLAUDE_HELPER_CONTEXT": "background"})
    assert token_of(again) == token
    assert refresh and all(r not in again.stderr for r in refresh)
    doctor = run(["credhelper", "doctor", "-p", "azure"], env).stdout.decode()
    assert "protected by file permissions only" in doctor


def test_id_token_logout_and_denial(azure_env, idp):
    env = {**azure_env, "CREDHELPER_AZURE_TOKEN": "id"}
    token = token_of(sign_in(["credhelper-azure"], interactive(env), idp, user="carol"))
    claims = jwt.decode(token)[1]
    assert claims["sub"] == "carol" and claims["aud"] == "cli"
    out = run(["credhelper-azure", "logout"], env)
    assert out.returncode == 0 and out.stdout == b"", out.stderr
    assert_failure(run(["credhelper-azure"], {**env, "CLAUDE_HELPER_CONTEXT": "background"}), 3,
                   "credhelper-azure login")
    denied = sign_in(["credhelper-azure"], interactive(env), idp, deny_at="confirm")
    assert_failure(denied, 5, "was declined")


def test_the_wrong_ca_exits_4(azure_env, idp):
    env = {**azure_env, "REQUESTS_CA_BUNDLE": idp.wrong_ca_pem, "CLAUDE_HELPER_CONTEXT": "interactive"}
    assert_failure(run(["credhelper-azure"], env), 4, "TLS to", "certificate verify failed",
                   "[azure] ca_cert")


def test_ten_concurrent_renewals_each_use_the_newest_refresh_token(azure_env, idp):
    token_of(sign_in(["credhelper-azure"], interactive(azure_env), idp))
    # min_validity above the token's lifetime: every run renews through MSAL, one after
    # the other under the core's lock, each saving the rotated refresh token for the next.
    env = {**azure_env, "CLAUDE_HELPER_CONTEXT": "background", "CREDHELPER_AZURE_MIN_VALIDITY": "2h"}
    stats = idp.stats()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        tokens = [token_of(p) for p in pool.map(lambda _: run(["credhelper-azure"], env), range(10))]
    assert len(set(tokens)) == 10
    after = idp.stats()
    assert after.get("refresh_token:200", 0) - stats.get("refresh_token:200", 0) == 10
    assert after.get("refresh_token:400", 0) == stats.get("refresh_token:400", 0)
