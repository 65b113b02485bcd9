"""credhelper-vault's secret-valued settings (token, secret_id, password, jwt, role_id)
in the one syntax of every backend: file:PATH, env:VARIABLE, keyring:SERVICE/USER, or the
value in clear where Vault's rule allows it (from the environment only). The older
*_file / *_env settings still work as deprecated aliases.

Real: the OpenBao server (its audit log counts the logins), and for keyring: references
GNOME Keyring on a private D-Bus (the root conftest's keyring_session).
"""

from __future__ import annotations

import json
import os

from .vaultkit import PASSWORD, expect_token, failure, helper_env, no_leak, run

KV2 = {"secret": "secret/gateway", "field": "token"}


def config_file(env: dict, tmp_path, **settings) -> dict:
    """``env`` reading a config file with these [vault] settings (strings)."""
    path = tmp_path / "config.toml"
    lines = ["[vault]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return {**env, "CREDHELPER_CONFIG": str(path)}


def approle(base_env, lab, **extra) -> dict:
    return helper_env(base_env, lab.server.address, auth="approle", role_id=lab.role_id,
                      **KV2, **extra)


def logins(lab) -> int:
    return lab.server.count_requests("auth/approle/login")


# ---------------------------------------------------------------- the three references


def test_secret_id_from_a_file_reference_in_a_config_file(base_env, lab, tmp_path):
    # ~ is the run's home: the secret ID sits in HOME, the file names it as ~/...
    with open(os.path.join(base_env["HOME"], "vault-secret-id"), "w") as f:
        f.write(lab.secret_id + "\n")
    env = config_file(approle(base_env, lab), tmp_path, secret_id="file:~/vault-secret-id")
    before = logins(lab)
    proc = run(["credhelper-vault", "--debug"], env)
    expect_token(proc, lab.values["kv2"], lab.secret_id)
    assert "approle secret ID: from the file " + base_env["HOME"] in proc.stderr
    assert logins(lab) == before + 1


def test_secret_id_from_an_env_reference(base_env, lab):
    env = approle(base_env, lab, secret_id="env:GATEWAY_SECRET_ID")
    env["GATEWAY_SECRET_ID"] = lab.secret_id
    before = logins(lab)
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"], lab.secret_id)
    assert logins(lab) == before + 1
    del env["GATEWAY_SECRET_ID"]
    env["CREDHELPER_CACHE_DIR"] += "-unset"
    failure(run("credhelper-vault", env), 2, "GATEWAY_SECRET_ID is not set",
            "CREDHELPER_VAULT_SECRET_ID (environment)")


def test_secret_id_from_the_keyring(base_env, lab, keyring_session):
    """The secret ID in a real Secret Service (GNOME Keyring), put there by
    credhelper-keyring store; credhelper-vault reads it through keyring:SERVICE/USER."""
    env = approle(base_env, lab, secret_id="keyring:vault-approle/gateway-host")
    env.update(DBUS_SESSION_BUS_ADDRESS=keyring_session["DBUS_SESSION_BUS_ADDRESS"],
               XDG_RUNTIME_DIR=keyring_session["XDG_RUNTIME_DIR"])
    store = run(["credhelper-keyring", "store"],
                {**env, "CREDHELPER_KEYRING_SERVICE": "vault-approle",
                 "CREDHELPER_KEYRING_USERNAME": "gateway-host"}, input=lab.secret_id + "\n")
    assert store.returncode == 0, store.stderr
    before = logins(lab)
    proc = run(["credhelper-vault", "--debug"], env)
    expect_token(proc, lab.values["kv2"], lab.secret_id)
    assert "from the keyring entry service 'vault-approle', user 'gateway-host'" in proc.stderr
    assert logins(lab) == before + 1

    # An entry that is not there is a configuration error, and says how to store it.
    missing = {**env, "CREDHELPER_VAULT_SECRET_ID": "keyring:vault-approle/nobody",
               "CREDHELPER_CACHE_DIR": env["CREDHELPER_CACHE_DIR"] + "-missing"}
    failure(run("credhelper-vault", missing), 2, "no approle secret ID in the keyring",
            "keyring set vault-approle nobody")


def test_an_unreachable_keyring_exits_4(base_env, lab, tmp_path):
    env = approle(base_env, lab, secret_id="keyring:vault-approle/gateway-host")
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path}/no-bus"
    before = logins(lab)
    failure(run("credhelper-vault", env), 4, "approle secret ID from the keyring",
            "no usable OS keyring")
    assert logins(lab) == before  # nothing was sent


# ---------------------------------------------------------------- the other secrets


def test_password_from_a_file_reference_and_from_an_env_reference(base_env, lab, tmp_path):
    with open(os.path.join(base_env["HOME"], "pw"), "w") as f:
        f.write(PASSWORD + "\n")
    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice",
                     password="file:~/pw", **KV2)
    expect_token(run("credhelper-vault", env), lab.values["kv2"])
    env = helper_env(base_env, lab.server.address, auth="userpass", username="alice",
                     password="env:ALICE_PASSWORD", **KV2)
    env["CREDHELPER_CACHE_DIR"] += "-env"
    env["ALICE_PASSWORD"] = PASSWORD
    expect_token(run("credhelper-vault", env), lab.values["kv2"])
    # Unset, the variable means "ask a person": a background run exits 3 saying so.
    del env["ALICE_PASSWORD"]
    env.update(CLAUDE_HELPER_CONTEXT="background",
               CREDHELPER_CACHE_DIR=env["CREDHELPER_CACHE_DIR"] + "-unset")
    failure(run("credhelper-vault", env), 3, "needs a password (ALICE_PASSWORD is not set)")


def test_jwt_from_an_env_reference(base_env, lab):
    env = helper_env(base_env, lab.server.address, auth="jwt", role="gateway",
                     jwt="env:CI_JOB_JWT", **KV2)
    env["CI_JOB_JWT"] = lab.jwt
    expect_token(run("credhelper-vault", env), lab.values["kv2"], lab.jwt)


def test_kubernetes_jwt_from_a_file_reference(base_env, lab):
    env = helper_env(base_env, lab.server.address, auth="kubernetes", role="gateway",
                     jwt=f"file:{lab.k8s_jwt_file}", **KV2)
    expect_token(run("credhelper-vault", env), lab.values["kv2"], lab.k8s_jwt)


def test_token_from_a_file_reference_in_a_config_file(base_env, lab, tmp_path):
    token = lab.api("POST", "auth/token/create", policies=["gateway-read"])["auth"]["client_token"]
    (tmp_path / "vault-token").write_text(token + "\n")
    env = config_file(helper_env(base_env, lab.server.address, **KV2), tmp_path,
                      token=f"file:{tmp_path / 'vault-token'}")
    expect_token(run("credhelper-vault", env), lab.values["kv2"], token)
    # VAULT_TOKEN is Vault's own variable: below every credhelper source, as before.
    env["VAULT_TOKEN"] = "not-used-" + token
    env["CREDHELPER_CACHE_DIR"] += "-2"
    expect_token(run("credhelper-vault", env), lab.values["kv2"], token)


def test_role_id_from_a_file_reference(base_env, lab, tmp_path):
    (tmp_path / "role-id").write_text(lab.role_id + "\n")
    env = helper_env(base_env, lab.server.address, auth="approle",
                     role_id=f"file:{tmp_path / 'role-id'}", secret_id="env:SID", **KV2)
    env["SID"] = lab.secret_id
    expect_token(run("credhelper-vault", env), lab.values["kv2"], lab.secret_id)


# ---------------------------------------------------------------- in clear, and the old names


def test_a_secret_id_in_clear_is_refused_in_a_config_file_not_in_the_environment(
        base_env, lab, tmp_path):
    env = config_file(approle(base_env, lab), tmp_path, secret_id=lab.secret_id)
    failure(run("credhelper-vault", env), 2, "the approle secret ID does not belong in a "
            "configuration file in clear", 'secret_id = "file:PATH"', secrets=(lab.secret_id,))
    env = approle(base_env, lab, secret_id=lab.secret_id)  # CREDHELPER_VAULT_SECRET_ID
    expect_token(run("credhelper-vault", env), lab.values["kv2"], lab.secret_id)
    doctor = run(["credhelper", "doctor", "--provider", "vault", "--json"], env)
    text = doctor.stdout.decode()
    assert lab.secret_id not in text
    line = _doctor_line(text, "approle secret ID")
    assert line["status"] == "warn" and "given in clear" in line["detail"]


def test_deprecated_settings_still_work_and_doctor_names_the_new_form(base_env, lab):
    env = helper_env(base_env, lab.server.address, auth="approle", role_id=lab.role_id,
                     secret_id_file=lab.secret_id_file, **KV2)
    expect_token(run("credhelper-vault", env), lab.values["kv2"], lab.secret_id)
    doctor = run(["credhelper", "doctor", "--provider", "vault", "--json"], env)
    text = doctor.stdout.decode()
    assert lab.secret_id not in text
    line = _doctor_line(text, "approle secret ID")
    assert line["status"] == "warn"
    assert "secret_id_file is deprecated" in line["detail"]
    assert f'secret_id = "file:{lab.secret_id_file}"' in line["detail"]
    assert "from the file" in line["detail"]


def test_a_setting_and_its_deprecated_alias_together_exit_2(base_env, lab):
    env = approle(base_env, lab, secret_id="env:SID", secret_id_file=lab.secret_id_file)
    env["SID"] = lab.secret_id
    failure(run("credhelper-vault", env), 2, "set only one of [vault] secret_id, secret_id_file")


def test_moving_to_the_new_form_keeps_the_saved_login(base_env, lab, tmp_path):
    """role_id_file names the login in the saved state; role_id = "file:..." names it
    the same way, so an upgraded configuration reuses the login token."""
    (tmp_path / "role-id").write_text(lab.role_id)
    old = helper_env(base_env, lab.server.address, auth="approle",
                     role_id_file=str(tmp_path / "role-id"), secret_id_file=lab.secret_id_file,
                     **KV2)
    expect_token(run("credhelper-vault", old), lab.values["kv2"], lab.secret_id)
    run(["credhelper", "cache", "clear", "--provider", "vault"], old)  # keeps the login state
    new = helper_env(base_env, lab.server.address, auth="approle",
                     role_id=f"file:{tmp_path / 'role-id'}",
                     secret_id=f"file:{lab.secret_id_file}", **KV2)
    before = logins(lab)
    proc = run(["credhelper-vault", "--debug"], new)
    expect_token(proc, lab.values["kv2"], lab.secret_id)
    assert "using the cached Vault login token" in proc.stderr
    assert logins(lab) == before
    no_leak(proc, lab.secret_id)


def _doctor_line(text: str, check: str) -> dict:
    report = json.loads(text)
    [section] = [s for s in report["sections"] if s["title"] == "provider vault"]
    [line] = [c for c in section["checks"] if c["check"] == check]
    return line
