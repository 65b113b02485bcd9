"""credhelper-oidc and the app's refresh contract, on the real OpenID provider: a forced
refresh spends the refresh token, a revoked one exits 3, and a sign-in that outlasts the
app's time budget is finished by a later run without a new code."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time

from conftest import assert_failure, run, script
from services import MINTED_SECRETS

from .idpkit import approve, sign_in, user_code_from
from .test_oidc import interactive, state_tokens, token_of

MID = {"CLAUDE_HELPER_CONTEXT": "mid-session-refresh"}
BACKGROUND = {"CLAUDE_HELPER_CONTEXT": "background"}


def device_authorizations(idp) -> int:
    return idp.stats().get("device_authorization", 0)


def test_mid_session_refresh_uses_the_refresh_token(oidc_env, idp):
    env = {**oidc_env, "CREDHELPER_OIDC_REFRESH_GRACE": "0s"}
    first = token_of(sign_in(["credhelper-oidc"], interactive(env), idp))
    assert token_of(run(["credhelper-oidc"], {**env, **BACKGROUND})) == first  # cached
    before = idp.refreshes()
    renewed = token_of(run(["credhelper-oidc"], {**env, **MID}))
    assert renewed != first and idp.refreshes() == before + 1
    forced = token_of(run(["credhelper-oidc", "--force-refresh"], {**env, **BACKGROUND}))
    assert forced not in (first, renewed) and idp.refreshes() == before + 2


def test_mid_session_refresh_with_a_revoked_refresh_token_exits_3(oidc_env, idp):
    env = {**oidc_env, "CREDHELPER_OIDC_REFRESH_GRACE": "0s"}
    token_of(sign_in(["credhelper-oidc"], interactive(env), idp))
    [refresh] = state_tokens(env)
    s = idp.session()  # the administrator revokes it at the provider
    answer = s.post(f"{idp.issuer}/token/revocation",
                    data={"token": refresh, "token_type_hint": "refresh_token", "client_id": "cli"},
                    timeout=10)
    assert answer.status_code == 200, answer.text
    before = device_authorizations(idp)
    proc = run(["credhelper-oidc"], {**env, **MID})
    assert_failure(proc, 3, "expired or was revoked", "mid-session-refresh context")
    assert device_authorizations(idp) == before  # nobody was asked


def _start(env):
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([script("credhelper-oidc")], env=env, stdout=subprocess.PIPE,
                            stderr=err, stdin=subprocess.DEVNULL)
    return proc, err


def _finish(proc, err, timeout=30):
    out, _ = proc.communicate(timeout=timeout)
    err.seek(0)
    proc.stdout, proc.stderr = out, err.read().decode("utf-8", "replace")
    for secret in MINTED_SECRETS:
        assert secret not in proc.stderr
    return proc


def test_a_sign_in_that_outlasts_the_app_is_finished_by_the_next_run(oidc_env, idp):
    """app_timeout 8 s; the person approves at 15 s. The first run exits 3 by 8 s showing
    one code; a later background run prints the token; one device authorization in all."""
    env = interactive(oidc_env, CREDHELPER_DEFAULTS_APP_TIMEOUT="8s")
    before = device_authorizations(idp)
    started = time.monotonic()
    proc = _finish(*_start(env))
    took = time.monotonic() - started
    assert_failure(proc, 3, "is not finished yet", "the next run completes this sign-in")
    assert took < 8, took  # the app would have killed it at 8 s
    codes = {user_code_from(line) for line in proc.stderr.splitlines()} - {None}
    assert len(codes) == 1, proc.stderr
    [code] = codes
    # Nobody has approved yet: a background run asks the provider once, shows the same
    # code, and starts nothing new.
    waiting = run(["credhelper-oidc"], {**oidc_env, **BACKGROUND})
    assert_failure(waiting, 3, code, "is not finished yet")
    time.sleep(max(0.0, 15 - (time.monotonic() - started)))
    approve(idp, code)
    token = token_of(run(["credhelper-oidc"], {**oidc_env, **BACKGROUND}))
    assert token and len(state_tokens(oidc_env)) == 1
    assert device_authorizations(idp) == before + 1
    # The sign-in is over: the next interactive run needs nobody.
    assert token_of(run(["credhelper-oidc"], env)) == token


def test_approval_while_the_next_run_polls(oidc_env, idp):
    """The other order: the next (interactive) run is already polling the saved
    authorization when the person approves; it shows the same code, not a new one."""
    env = interactive(oidc_env, CREDHELPER_DEFAULTS_APP_TIMEOUT="5s")
    before = device_authorizations(idp)
    first = _finish(*_start(env))
    assert first.returncode == 3, first.stderr
    [code] = {user_code_from(line) for line in first.stderr.splitlines()} - {None}
    second, err = _start(interactive(oidc_env, CREDHELPER_DEFAULTS_APP_TIMEOUT="20s"))
    time.sleep(2)
    person = threading.Thread(target=approve, args=(idp, code))
    person.start()
    second = _finish(second, err)
    person.join(10)
    token_of(second)
    assert user_code_from(second.stderr) == code
    assert device_authorizations(idp) == before + 1


def test_a_declined_pending_sign_in_is_forgotten(oidc_env, idp):
    env = interactive(oidc_env, CREDHELPER_DEFAULTS_APP_TIMEOUT="5s")
    first = _finish(*_start(env))
    [code] = {user_code_from(line) for line in first.stderr.splitlines()} - {None}
    approve(idp, code, deny_at="confirm")
    assert_failure(run(["credhelper-oidc"], {**oidc_env, **BACKGROUND}), 5, "declined")
    # Forgotten: the next background run says nobody has signed in, with no code.
    proc = run(["credhelper-oidc"], {**oidc_env, **BACKGROUND})
    assert_failure(proc, 3, "nobody has signed in")
    assert user_code_from(proc.stderr) is None
