"""credhelper-vault's auth methods against a real OpenBao server.

Real: the OpenBao server and every auth method it serves here (token, approle, userpass,
jwt with a static key, cert over TLS, kubernetes). Stubbed: the Kubernetes API behind
kubernetes auth (a TokenReview stub). OpenBao 2.7 ships no LDAP auth plugin, so `auth =
"ldap"` is exercised against a userpass mount, which speaks the same login API.
"""

from __future__ import annotations

import os
import time

from .vaultkit import PASSWORD, expect_token, failure, helper_env, no_leak, run

KV2 = {"secret": "secret/gateway", "field": "token"}


def test_token_from_vault_token_variable_then_cache_hit(base_env, lab):
    env = helper_env(base_env, lab.server.address, **KV2)
    env["VAULT_TOKEN"] = "root"
    expect_token(run("credhelper-vault", env), lab.values["kv2"], "root")
    before = lab.server.count_requests("secret/data/gateway")
    debug = run(["credhelper-vault", "--debug"], env)
    expect_token(debug, lab.values["kv2"])
    assert "cache hit" in debug.stderr
    assert lab.server.count_requests("secret/data/gateway") == before


def test_token_from_vault_token_file(base_env, lab):
    env = helper_env(base_env, lab.server.address, **KV2)
    with open(os.path.join(env["HOME"], ".vault-token"), "w") as f:
        f.write("root\n")
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"])


def test_no_token_at_all_exits_3(base_env, lab):
    env = helper_env(base_env, lab.server.address, **KV2)
    failure(run("credhelper-vault", env), 3, "no Vault token", "bao login")


def test_token_in_a_config_file_is_refused(base_env, lab, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[vault]\ntoken = "root"\n')
    env = helper_env(base_env, lab.server.address, **KV2)
    env["CREDHELPER_CONFIG"] = str(config)
    failure(run("credhelper-vault", env), 2, "does not belong in a configuration file")


def test_revoked_token_exits_5(base_env, lab):
    token = lab.api("POST", "auth/token/create", policies=["gateway-read"])["auth"]["client_token"]
    lab.api("POST", "auth/token/revoke", token=token)
    env = helper_env(base_env, lab.server.address, **KV2)
    env["VAULT_TOKEN"] = token
    failure(run("credhelper-vault", env), 5, "permission denied", secrets=(token,))


def test_policy_without_access_exits_5(base_env, lab):
    token = lab.api("POST", "auth/token/create", policies=["default"])["auth"]["client_token"]
    env = helper_env(base_env, lab.server.address, **KV2)
    env["VAULT_TOKEN"] = token
    failure(run("credhelper-vault", env), 5, "permission denied", secrets=(token,))


def approle_env(base_env, lab, **extra):
    settings = dict(KV2, auth="approle", role_id=lab.role_id, secret_id_file=lab.secret_id_file)
    settings.update(extra)
    return helper_env(base_env, lab.server.address, **settings)


def test_approle_secret_id_from_file_and_login_token_reuse(base_env, lab):
    env = approle_env(base_env, lab)
    logins = lab.server.count_requests("auth/approle/login")
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"], lab.secret_id)
    assert lab.server.count_requests("auth/approle/login") == logins + 1
    # Another secret with the same login settings: the cached login token is reused.
    other = dict(env, CREDHELPER_VAULT_SECRET="kv1/gateway")
    proc = run(["credhelper-vault", "--debug"], other)
    expect_token(proc, lab.values["kv1"], lab.secret_id)
    assert "using the cached Vault login token" in proc.stderr
    assert lab.server.count_requests("auth/approle/login") == logins + 1


def test_approle_secret_id_from_variable(base_env, lab):
    env = approle_env(base_env, lab, secret_id_file=None, secret_id_env="GATEWAY_SECRET_ID")
    env["GATEWAY_SECRET_ID"] = lab.secret_id
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"], lab.secret_id)


def test_approle_wrong_secret_id_exits_5(base_env, lab):
    env = approle_env(base_env, lab, secret_id_file=None, secret_id_env="GATEWAY_SECRET_ID")
    env["GATEWAY_SECRET_ID"] = "00000000-1111-2222-3333-444444444444"
    failure(run(["credhelper-vault", "--debug"], env), 5, "refused the approle login",
            secrets=("00000000-1111-2222-3333-444444444444",))


def test_approle_missing_secret_id_file_or_variable_exits_2(base_env, lab, tmp_path):
    env = approle_env(base_env, lab, secret_id_file=str(tmp_path / "absent"))
    failure(run("credhelper-vault", env), 2, "does not exist", str(tmp_path / "absent"))
    env = approle_env(base_env, lab, secret_id_file=None, secret_id_env="GATEWAY_SECRET_ID")
    failure(run("credhelper-vault", env), 2, "GATEWAY_SECRET_ID is not set")


def test_revoked_cached_login_token_signs_in_again_once(base_env, lab):
    env = approle_env(base_env, lab, secret="kv1/gateway")
    expect_token(run("credhelper-vault", env), lab.values["kv1"], lab.secret_id)
    status = run(["credhelper-vault", "status", "--json"], env)
    accessor = [e for e in __import__("json").loads(status.stdout) if e.get("current")][0]["backend"]["accessor"]
    lab.api("POST", "auth/token/revoke-accessor", accessor=accessor)
    run(["credhelper", "cache", "clear", "--provider", "vault"], env)  # keeps the login state
    logins = lab.server.count_requests("auth/approle/login")
    proc = run(["credhelper-vault", "--debug"], env)
    expect_token(proc, lab.values["kv1"], lab.secret_id)
    assert "signing in again" in proc.stderr
    assert lab.server.count_requests("auth/approle/login") == logins + 1


def test_userpass_password_from_variable(base_env, lab):
    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice",
                     password_env="ALICE_PASSWORD", **KV2)
    env["ALICE_PASSWORD"] = PASSWORD
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"])


def test_userpass_without_password_non_interactive_exits_3_at_once(base_env, lab):
    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice", **KV2)
    env["CLAUDE_HELPER_CONTEXT"] = "background"
    started = time.monotonic()
    proc = run("credhelper-vault", env)
    failure(proc, 3, "needs a password", "credhelper-vault login")
    assert time.monotonic() - started < 5


def test_password_in_a_desktop_dialog_when_the_app_runs_it(base_env, lab, tmp_path):
    """Interactive, but stdin and stderr are pipes (as the app runs it): the password is
    asked in a dialog (zenity stands in: the one thing here that is not real)."""
    from services import fake_zenity

    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice", **KV2)
    record = fake_zenity(env, tmp_path, PASSWORD)
    expect_token(run("credhelper-vault", env), lab.values["kv2"])
    with open(record) as f:
        args = f.read().splitlines()
    assert "--hide-text" in args and "--text=Vault userpass password for alice" in args
    assert "--title=credhelper-vault" in args  # who is asking, as every sign-in says


def test_a_person_slower_than_timeout_still_signs_in(base_env, lab, tmp_path):
    """The password took longer to type than the backend's timeout: the login that follows
    has the sign-in's deadline (login_timeout), not the network one (it exited 4)."""
    from services import fake_zenity

    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice", **KV2)
    env.update(CREDHELPER_VAULT_TIMEOUT="2s", CREDHELPER_VAULT_LOGIN_TIMEOUT="30s")
    fake_zenity(env, tmp_path, PASSWORD, delay=3)
    expect_token(run("credhelper-vault", env), lab.values["kv2"])


def test_a_cancelled_password_dialog_exits_3(base_env, lab, tmp_path):
    from services import fake_zenity

    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice", **KV2)
    fake_zenity(env, tmp_path, "", exit_code=1)
    failure(run("credhelper-vault", env), 3, "no password was entered")


def test_userpass_wrong_password_exits_5(base_env, lab):
    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice",
                     password_env="ALICE_PASSWORD", **KV2)
    env["ALICE_PASSWORD"] = "wrong-" + PASSWORD
    failure(run("credhelper-vault", env), 5, "invalid username or password",
            secrets=("wrong-" + PASSWORD,))


def test_ldap_method_against_a_userpass_mount(base_env, lab):
    # Not a real directory: OpenBao 2.7 has no LDAP auth plugin. This proves the ldap
    # method's request (auth/<mount>/login/<user> with the password) on a real server.
    env = helper_env(base_env, lab.server.address, auth="ldap", mount="ldap-userpass",
                     username="bob", password_file=os.path.join(base_env["HOME"], "pw"), **KV2)
    with open(env["CREDHELPER_VAULT_PASSWORD_FILE"], "w") as f:
        f.write(PASSWORD)
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"])


def test_jwt_login_with_static_key(base_env, lab):
    env = helper_env(base_env, lab.server.address, auth="jwt", role="gateway",
                     jwt_file=lab.jwt_file, **KV2)
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"], lab.jwt)


def test_jwt_signed_by_another_key_exits_5(base_env, lab, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import rsa

    from .vaultkit import now, sign_jwt

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = sign_jwt(other, {"iss": "https://ci.example", "sub": "x", "aud": "vault",
                              "exp": now() + 600})
    (tmp_path / "forged.jwt").write_text(forged)
    env = helper_env(base_env, lab.server.address, auth="jwt", role="gateway",
                     jwt_file=str(tmp_path / "forged.jwt"), **KV2)
    failure(run("credhelper-vault", env), 5, "jwt login", secrets=(forged,))


def test_kubernetes_login_against_tokenreview_stub(base_env, lab):
    # Real: OpenBao's kubernetes auth method. Stub: the cluster's TokenReview API.
    env = helper_env(base_env, lab.server.address, auth="kubernetes", role="gateway",
                     jwt_file=lab.k8s_jwt_file, **KV2)
    reviews = lab.k8s_handler.reviews
    proc = run(["credhelper-vault", "--debug"], env)
    expect_token(proc, lab.values["kv2"], lab.k8s_jwt)
    assert lab.k8s_handler.reviews == reviews + 1


def test_cert_auth_over_tls(base_env, lab):
    env = helper_env(base_env, lab.server.tls_address, auth="cert", role="gateway",
                     ca_cert=lab.ca_pem, client_cert=lab.client_cert, client_key=lab.client_key,
                     **KV2)
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"])


def test_login_and_logout_commands(base_env, lab):
    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice",
                     password_env="ALICE_PASSWORD", **KV2)
    env["ALICE_PASSWORD"] = PASSWORD
    proc = run(["credhelper-vault", "login"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    no_leak(proc)
    del env["ALICE_PASSWORD"]
    env["CLAUDE_HELPER_CONTEXT"] = "background"
    # Signed in: a background run needs no password.
    expect_token(run("credhelper-vault", env), lab.values["kv2"])
    proc = run(["credhelper-vault", "logout"], env)
    assert proc.returncode == 0, proc.stderr
    failure(run("credhelper-vault", env), 3, "needs a password (ALICE_PASSWORD is not set)")


def test_login_token_near_expiry_is_renewed_not_replaced(base_env, lab):
    import glob
    import json

    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice",
                     password_env="ALICE_PASSWORD", secret="kv1/gateway", field="token")
    env["ALICE_PASSWORD"] = PASSWORD
    expect_token(run("credhelper-vault", env), lab.values["kv1"])
    [state_file] = glob.glob(os.path.join(env["CREDHELPER_CACHE_DIR"], "vault-state-*.json"))
    with open(state_file) as f:
        state = json.load(f)
    assert state["renewable"] and state["token"] not in json.dumps(
        lab.api("POST", "auth/token/lookup-accessor", accessor=state["accessor"]))
    state["expires_at"] = time.time() + 20  # pretend it is about to expire
    with open(state_file, "w") as f:
        json.dump(state, f)
    run(["credhelper", "cache", "clear", "--provider", "vault"], env)
    logins = lab.server.count_requests("auth/userpass/login/alice")
    renewals = lab.server.count_requests("auth/token/renew-self")
    del env["ALICE_PASSWORD"]  # a renewal needs no password
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv1"], state["token"])
    assert lab.server.count_requests("auth/token/renew-self") == renewals + 1
    assert lab.server.count_requests("auth/userpass/login/alice") == logins
    with open(state_file) as f:
        assert json.load(f)["expires_at"] > time.time() + 3000


def test_password_prompt_on_a_terminal_in_the_interactive_context(base_env, lab):
    """A real pseudo-terminal on stdin: the helper asks, without echo, on the terminal."""
    import pty
    import subprocess

    from .vaultkit import script

    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice", **KV2)
    env["CLAUDE_HELPER_CONTEXT"] = "interactive"
    master, slave = pty.openpty()
    proc = subprocess.Popen([script("credhelper-vault")], env=env, stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    os.close(slave)
    # getpass flushes pending terminal input when it turns echo off: type after the prompt.
    import select

    seen, deadline = b"", time.monotonic() + 30
    while b"password for alice" not in seen and time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 0.5)[0]:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    os.write(master, (PASSWORD + "\n").encode())
    out, err = proc.communicate(timeout=60)
    err = seen + err
    os.close(master)
    err = err.decode()
    assert proc.returncode == 0, err
    assert out == (lab.values["kv2"] + "\n").encode()
    assert "password for alice" in err and PASSWORD not in err
