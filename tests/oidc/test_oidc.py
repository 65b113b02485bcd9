"""credhelper-oidc against a real OpenID provider: device code sign-in, silent renewal,
rotation under concurrency, client credentials, and the failures a person can meet."""

from __future__ import annotations

import concurrent.futures
import glob
import json
import os
import time

import pytest
from conftest import CANARY, assert_failure, run
from services import MINTED_SECRETS

from credhelper import jwt

from .conftest import SVC_SECRET
from .idpkit import sign_in

BACKGROUND = ["mid-session-refresh", "scheduled-task", "setup-test", "background"]
HEAVY = ("authlib", "requests", "msal", "msal_extensions", "urllib3", "click")


def heavy_imports(name: str, env) -> tuple[int, list[str]]:
    """(exit code, heavy modules imported) of one run under python -X importtime."""
    import subprocess
    import sys

    from conftest import installed_script

    p = subprocess.run([sys.executable, "-X", "importtime", installed_script(name)], env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    modules = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}
    return p.returncode, sorted(m for m in modules if m.split(".")[0] in HEAVY)


def token_of(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.endswith("\n") and out.count("\n") == 1 and out.strip() == out[:-1], out
    return out[:-1]


def state_tokens(env) -> list[str]:
    found = []
    for path in glob.glob(os.path.join(env["CREDHELPER_CACHE_DIR"], "oidc-state-*.json")):
        with open(path) as f:
            found.append(json.load(f)["refresh_token"])
    MINTED_SECRETS.update(found)  # from now on, checked in every run's stderr and log file
    return found


def drop_cached(env, provider="oidc"):
    for path in glob.glob(os.path.join(env["CREDHELPER_CACHE_DIR"], f"{provider}-*.v1.json")):
        os.unlink(path)


def interactive(env, **more):
    return {**env, "CLAUDE_HELPER_CONTEXT": "interactive", **more}


def test_first_sign_in_shows_the_code_on_the_desktop_then_renews_silently(oidc_env, idp):
    proc = sign_in(["credhelper-oidc"], interactive(oidc_env), idp)
    token = token_of(proc)
    claims = jwt.decode(token)[1]
    assert claims["sub"] == "alice" and claims["aud"] == "https://gateway.example"
    # No terminal: the verification page went to the browser, the code to a notification.
    with open(oidc_env["PRESENTER_RECORD"]) as f:
        shown = f.read()
    assert f"xdg-open {idp.issuer}/device?user_code={proc.user_code}" in shown
    assert "notify-send" in shown and proc.user_code in shown
    refresh_tokens = state_tokens(oidc_env)
    assert len(refresh_tokens) == 1

    # A later background run needs nobody: the cached credential, then the refresh token.
    again = run(["credhelper-oidc"], {**oidc_env, "CLAUDE_HELPER_CONTEXT": "background"})
    assert token_of(again) == token
    assert heavy_imports("credhelper-oidc", oidc_env) == (0, [])  # the cache hit stays light
    drop_cached(oidc_env)
    before = idp.refreshes()
    renewed = run(["credhelper-oidc", "--debug"], {**oidc_env, "CLAUDE_HELPER_CONTEXT": "background"})
    assert token_of(renewed) != token
    assert idp.refreshes() == before + 1
    assert "rotated the refresh token" in renewed.stderr
    for secret in refresh_tokens + state_tokens(oidc_env):
        assert secret not in renewed.stderr and secret not in proc.stderr


@pytest.mark.parametrize("provider", ["oidc", "azure"])
def test_every_background_context_exits_3_at_once_without_a_sign_in(provider, oidc_env, azure_env):
    env = oidc_env if provider == "oidc" else azure_env
    variants = [{"CLAUDE_HELPER_CONTEXT": c} for c in BACKGROUND]
    variants += [{"CLAUDE_HELPER_MANUAL_RUN": "1"}, {}]  # older apps; no variable, no terminal
    for extra in variants:
        start = time.monotonic()
        proc = run([f"credhelper-{provider}"], {**env, **extra})
        elapsed = time.monotonic() - start
        assert_failure(proc, 3, f"credhelper-{provider} login")
        assert elapsed < 2.0, (extra, elapsed)
    if provider == "oidc":  # no saved sign-in: no network, not even the HTTP libraries
        assert heavy_imports("credhelper-oidc", {**env, "CLAUDE_HELPER_CONTEXT": "background"}) == (3, [])
    assert not os.path.exists(env["PRESENTER_RECORD"]), "a background run showed a prompt"


def test_refresh_after_the_access_token_expires(oidc_env, idp):
    env = {**oidc_env, "CREDHELPER_OIDC_CLIENT_ID": "cli-short", "CREDHELPER_OIDC_MIN_VALIDITY": "1s"}
    first = token_of(sign_in(["credhelper-oidc"], interactive(env), idp))
    exp = jwt.expiry(first)
    assert exp - time.time() <= idp.short_ttl + 1
    time.sleep(max(0.0, exp - time.time()) + 0.5)
    before = idp.refreshes()
    second = run(["credhelper-oidc"], {**env, "CLAUDE_HELPER_CONTEXT": "scheduled-task"})
    assert token_of(second) != first
    assert jwt.expiry(token_of(second)) > time.time()
    assert idp.refreshes() == before + 1


def test_rotation_under_ten_concurrent_runs_spends_each_refresh_token_once(oidc_env, idp):
    token_of(sign_in(["credhelper-oidc"], interactive(oidc_env), idp))
    # min_validity above the token's lifetime: every run must renew, so ten runs make ten
    # rotations, one after the other under the lock, and none reuses a spent token.
    env = {**oidc_env, "CLAUDE_HELPER_CONTEXT": "background", "CREDHELPER_OIDC_MIN_VALIDITY": "2h"}
    stats = idp.stats()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        procs = list(pool.map(lambda _: run(["credhelper-oidc"], env), range(10)))
    tokens = [token_of(p) for p in procs]
    assert len(set(tokens)) == 10
    after = idp.stats()
    assert after.get("refresh_token:200", 0) - stats.get("refresh_token:200", 0) == 10
    assert after.get("refresh_token:400", 0) == stats.get("refresh_token:400", 0)
    token_of(run(["credhelper-oidc"], env))  # the last rotated token still works


def test_a_declined_sign_in_exits_5_in_plain_words(oidc_env, idp):
    proc = sign_in(["credhelper-oidc"], interactive(oidc_env), idp, deny_at="confirm")
    assert_failure(proc, 5, "was declined", "credhelper-oidc login")


def test_client_credentials_with_a_secret_file(oidc_env, idp, tmp_path):
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(SVC_SECRET + "\n")
    env = {**oidc_env, "CREDHELPER_OIDC_CLIENT_ID": "svc",
           "CREDHELPER_OIDC_GRANT": "client_credentials",
           "CREDHELPER_OIDC_CLIENT_SECRET": f"file:{secret_file}",
           "CREDHELPER_OIDC_AUDIENCE": "https://gateway.example/other",
           "CREDHELPER_OIDC_AUDIENCE_PARAM": "resource",
           "CLAUDE_HELPER_CONTEXT": "background"}
    proc = run(["credhelper-oidc", "--debug"], env)
    claims = jwt.decode(token_of(proc))[1]
    assert claims["client_id"] == "svc" and claims["aud"] == "https://gateway.example/other"
    assert SVC_SECRET not in proc.stderr


def test_a_wrong_client_secret_exits_5(oidc_env):
    env = {**oidc_env, "CREDHELPER_OIDC_CLIENT_ID": "svc",
           "CREDHELPER_OIDC_GRANT": "client_credentials",
           "CREDHELPER_OIDC_CLIENT_SECRET": "env:SVC_SECRET", "SVC_SECRET": "wrong-" + CANARY,
           "CLAUDE_HELPER_CONTEXT": "background"}
    proc = run(["credhelper-oidc", "--debug"], env)
    assert_failure(proc, 5, "refused the client", "client_secret")


def test_the_wrong_ca_exits_4(oidc_env, idp):
    token_of(sign_in(["credhelper-oidc"], interactive(oidc_env), idp))
    drop_cached(oidc_env)
    wrong = {**oidc_env, "REQUESTS_CA_BUNDLE": idp.wrong_ca_pem}
    for extra in ({"CLAUDE_HELPER_CONTEXT": "background"}, {"CLAUDE_HELPER_CONTEXT": "interactive"}):
        assert_failure(run(["credhelper-oidc"], {**wrong, **extra}), 4, "TLS to",
                       "certificate verify failed", "[oidc] ca_cert")
    # ca_cert names the right CA and wins over the variable.
    token_of(run(["credhelper-oidc"], {**wrong, "CREDHELPER_OIDC_CA_CERT": idp.ca_pem}))


def test_login_then_logout_revokes(oidc_env, idp):
    proc = sign_in(["credhelper-oidc", "login"], oidc_env, idp)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    [refresh] = state_tokens(oidc_env)
    bg = {**oidc_env, "CLAUDE_HELPER_CONTEXT": "background"}
    token_of(run(["credhelper-oidc"], bg))
    status = run(["credhelper-oidc", "status"], bg)
    assert "saved refresh token for alice" in status.stdout.decode()
    assert refresh not in status.stdout.decode() + status.stderr
    out = run(["credhelper-oidc", "logout"], bg)
    assert out.returncode == 0, out.stderr
    assert state_tokens(oidc_env) == []
    assert_failure(run(["credhelper-oidc"], bg), 3, "credhelper-oidc login")
    # The revoked refresh token is dead at the provider too.
    s = idp.session()
    answer = s.post(f"{idp.issuer}/token", data={"grant_type": "refresh_token", "client_id": "cli",
                                                 "refresh_token": refresh}, timeout=10)
    assert answer.json().get("error") == "invalid_grant"


def test_on_a_terminal_the_code_goes_to_stderr_and_nothing_pops_up(oidc_env, idp):
    import pty
    import subprocess
    import threading

    from conftest import script

    from .idpkit import approve, user_code_from

    master, slave = pty.openpty()
    proc = subprocess.Popen([script("credhelper-oidc")], env=oidc_env, stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = []

    def person():
        text = ""
        while user_code_from(text) is None:
            try:
                chunk = os.read(master, 4096).decode(errors="replace")
            except OSError:
                return
            if not chunk:
                return
            text += chunk
        seen.append(text)
        approve(idp, user_code_from(text))

    thread = threading.Thread(target=person, daemon=True)
    thread.start()
    out, _ = proc.communicate(timeout=40)
    thread.join(5)
    os.close(master)
    assert proc.returncode == 0 and out.endswith(b"\n") and out.count(b"\n") == 1
    assert seen and f"open {idp.issuer}/device and enter the code" in seen[0]
    assert not os.path.exists(oidc_env["PRESENTER_RECORD"])  # a terminal: no browser, no popup


def test_a_sign_in_nobody_completes_ends_at_the_login_deadline(oidc_env):
    env = interactive(oidc_env, CREDHELPER_OIDC_LOGIN_TIMEOUT="3s", CREDHELPER_OIDC_TIMEOUT="2s")
    start = time.monotonic()
    proc = run(["credhelper-oidc"], env)
    elapsed = time.monotonic() - start
    assert_failure(proc, 3, "is not finished yet", "the next run completes this sign-in")
    # 3 s deadline (the last poll that fits one interval before it), not the budget
    assert 1.5 < elapsed < 12, elapsed


def test_login_in_the_browser_with_pkce_and_a_loopback_redirect(oidc_env, idp):
    import re
    import subprocess

    from conftest import script

    from .idpkit import approve_in_browser

    env = {**oidc_env, "DISPLAY": ":99",  # a desktop: login picks the browser
           # any free port (the client allows any on loopback); a refresh token only with
           # consent at this provider, and consent is no longer forced
           "CREDHELPER_OIDC_REDIRECT_PORTS": "0", "CREDHELPER_OIDC_PROMPT": "consent"}
    proc = subprocess.Popen([script("credhelper-oidc"), "login"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    url = None
    deadline = time.monotonic() + 20
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        if os.path.exists(env["PRESENTER_RECORD"]):
            with open(env["PRESENTER_RECORD"]) as f:
                m = re.search(r"xdg-open (\S+)", f.read())
            url = m and m.group(1)
    assert url and "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2F127.0.0.1" in url
    assert "You are signed in" in approve_in_browser(idp, url, user="dave")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and out == b"", err
    token = token_of(run(["credhelper-oidc"], {**oidc_env, "CLAUDE_HELPER_CONTEXT": "background"}))
    assert jwt.decode(token)[1]["sub"] == "dave"


def test_a_provisioned_refresh_token_is_renewed_and_its_rotations_kept(oidc_env, idp, tmp_path):
    token_of(sign_in(["credhelper-oidc"], interactive(oidc_env), idp))
    [provisioned] = state_tokens(oidc_env)
    seed = tmp_path / "refresh-token"
    seed.write_text(provisioned + "\n")
    # Another machine: no sign-in of its own, only the provisioned token; never asks anyone.
    other = {**oidc_env, "CREDHELPER_CACHE_DIR": str(tmp_path / "other-cache"),
             "CREDHELPER_OIDC_GRANT": "refresh_token",
             "CREDHELPER_OIDC_REFRESH_TOKEN_FILE": str(seed),
             "CREDHELPER_OIDC_MIN_VALIDITY": "2h", "CLAUDE_HELPER_CONTEXT": "background"}
    runs = [run(["credhelper-oidc", "--debug"], other) for _ in range(3)]
    assert len({token_of(p) for p in runs}) == 3  # each renewed with the newest rotation
    assert all(provisioned not in p.stderr for p in runs)
    seed.write_text("not-a-valid-token\n")  # a replaced file wins over the saved chain
    drop_cached(other)  # else the still-valid cached credential is served (stale-if-error)
    assert_failure(run(["credhelper-oidc"], other), 3, "expired or was revoked")


def test_with_cache_keyring_the_refresh_token_lives_in_the_keyring(oidc_env, idp, keyring_session):
    env = {**oidc_env, "CREDHELPER_OIDC_CACHE": "keyring",
           "DBUS_SESSION_BUS_ADDRESS": keyring_session["DBUS_SESSION_BUS_ADDRESS"],
           "XDG_RUNTIME_DIR": keyring_session["XDG_RUNTIME_DIR"],
           # a scope of its own, so this test's state never meets another's in the keyring
           "CREDHELPER_OIDC_SCOPES": "openid offline_access profile email"}
    first = token_of(sign_in(["credhelper-oidc"], interactive(env), idp))
    assert state_tokens(env) == []  # nothing on disk
    before = idp.refreshes()
    bg = {**env, "CLAUDE_HELPER_CONTEXT": "background", "CREDHELPER_OIDC_MIN_VALIDITY": "2h"}
    assert token_of(run(["credhelper-oidc"], bg)) != first
    assert idp.refreshes() == before + 1
    assert run(["credhelper-oidc", "logout"], env).returncode == 0
