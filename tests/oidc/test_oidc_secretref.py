"""credhelper-oidc's client_secret in the one syntax of every backend's secrets: file:PATH
(~ is the run's home), env:VARIABLE, keyring:SERVICE/USER, or in clear (doctor says so).

Real: the OpenID provider (a confidential client ``svc`` with a client secret; its
/idp-stats counts token requests) and, for keyring:, GNOME Keyring on a private D-Bus.
"""

from __future__ import annotations

import json

from conftest import assert_failure, run

from credhelper import jwt

from .conftest import SVC_SECRET


def service(oidc_env: dict, secret: str) -> dict:
    return {**oidc_env, "CREDHELPER_OIDC_CLIENT_ID": "svc",
            "CREDHELPER_OIDC_GRANT": "client_credentials",
            "CREDHELPER_OIDC_CLIENT_SECRET": secret, "CLAUDE_HELPER_CONTEXT": "background"}


def client_of(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.decode().strip()
    assert proc.stdout == (token + "\n").encode()
    return jwt.decode(token)[1]["client_id"]


def test_client_secret_from_the_keyring(oidc_env, keyring_session):
    env = service(oidc_env, "keyring:oidc-clients/svc")
    env.update(DBUS_SESSION_BUS_ADDRESS=keyring_session["DBUS_SESSION_BUS_ADDRESS"],
               XDG_RUNTIME_DIR=keyring_session["XDG_RUNTIME_DIR"])
    store = run(["credhelper-keyring", "store"],
                {**env, "CREDHELPER_KEYRING_SERVICE": "oidc-clients",
                 "CREDHELPER_KEYRING_USERNAME": "svc"}, input=SVC_SECRET + "\n")
    assert store.returncode == 0, store.stderr
    proc = run(["credhelper-oidc", "--debug"], env)
    assert client_of(proc) == "svc"
    assert "client secret: from the keyring entry service 'oidc-clients', user 'svc'" in (
        proc.stderr)
    assert SVC_SECRET not in proc.stderr


def test_client_secret_file_in_the_runs_home_named_in_a_config_file(oidc_env, tmp_path):
    home = oidc_env["HOME"]
    with open(f"{home}/client-secret", "w") as f:
        f.write(SVC_SECRET + "\n")
    config = tmp_path / "config.toml"
    config.write_text('[oidc]\nclient_secret = "file:~/client-secret"\n')
    env = service(oidc_env, "")
    del env["CREDHELPER_OIDC_CLIENT_SECRET"]
    env["CREDHELPER_CONFIG"] = str(config)
    assert client_of(run(["credhelper-oidc"], env)) == "svc"


def test_client_secret_in_clear_works_and_doctor_says_so(oidc_env):
    env = service(oidc_env, SVC_SECRET)
    assert client_of(run(["credhelper-oidc"], env)) == "svc"
    doctor = run(["credhelper", "doctor", "--provider", "oidc", "--json"], env)
    text = doctor.stdout.decode()
    assert SVC_SECRET not in text
    [section] = [s for s in json.loads(text)["sections"] if s["title"] == "provider oidc"]
    checks = {c["check"]: c for c in section["checks"]}
    assert checks["client secret"]["status"] == "warn"
    assert "given in clear" in checks["client secret"]["detail"]
    assert checks["discovery"]["status"] == "ok"


def test_an_unreadable_reference_exits_2_before_asking_the_provider(oidc_env, idp, tmp_path):
    stats = idp.stats()
    for secret, words in ((f"file:{tmp_path}/absent", "does not exist"),
                          ("env:SVC_SECRET_UNSET", "SVC_SECRET_UNSET is not set"),
                          ("keyring:oidc-clients", "keyring: needs a service and a user")):
        proc = run(["credhelper-oidc"], service(oidc_env, secret))
        assert_failure(proc, 2, words, "CREDHELPER_OIDC_CLIENT_SECRET (environment)")
    assert idp.stats() == stats  # no token request was made
