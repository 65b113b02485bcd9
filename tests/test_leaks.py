"""Leaks: with every backend configured with canary secrets and a real credential cached,
no command for people (status, cache list, doctor, --debug, version) shows a secret unless
asked with --show-secret. The suite-wide checks in conftest.py (every run's stderr, every
test's debug log file, 0600/0700) cover the rest of the suite; this covers stdout too.
"""

import json

import pytest
from conftest import CANARY, leaked, run

# Secrets each backend holds while `doctor` looks at it: in clear, as the worst case.
CONFIGURED_SECRETS = {
    "VAULT_ADDR": "http://127.0.0.1:9",  # nothing listens: doctor reports, never hangs
    "VAULT_TOKEN": "canary-vault-token",
    "CREDHELPER_VAULT_SECRET": "secret/gateway",
    "CREDHELPER_OIDC_ISSUER": "http://127.0.0.1:9/idp",
    "CREDHELPER_OIDC_CLIENT_ID": "svc",
    "CREDHELPER_OIDC_CLIENT_SECRET": "canary-client-secret-in-clear",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLELEAKTEST0",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-key",
    "AWS_SESSION_TOKEN": "canary-aws-session-token",
    "CREDHELPER_AWS_AUDIENCE": "https://gateway.example",
    "CREDHELPER_AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_EC2_METADATA_DISABLED": "true",
    "CREDHELPER_DEFAULTS_TIMEOUT": "2",
}


@pytest.fixture
def cached(keyring_env):
    """A real keyring credential, fetched once so the cache holds it."""
    env = {**keyring_env, **CONFIGURED_SECRETS, "CREDHELPER_KEYRING_MAX_AGE": "1h"}
    assert run(["credhelper-keyring", "store"], env, input=CANARY + "\n").returncode == 0
    assert run("credhelper-keyring", env).stdout == f"{CANARY}\n".encode()
    return env


@pytest.mark.parametrize("command", [
    ["credhelper", "status"],
    ["credhelper", "status", "--json"],
    ["credhelper-keyring", "status"],
    ["credhelper", "cache", "list"],
    ["credhelper", "doctor"],
    ["credhelper", "doctor", "--json"],
    ["credhelper", "--debug", "doctor"],
    ["credhelper", "version"],
], ids=" ".join)
def test_commands_for_people_never_show_a_secret(cached, command):
    p = run(command, cached)
    assert "Traceback" not in p.stderr
    out = p.stdout.decode("utf-8", "replace")
    assert not leaked(out), (command, leaked(out))
    if "status" in command or "list" in command:  # it did describe the cached credential
        assert "keyring" in out and "v1.json" in out, out


def test_show_secret_is_the_one_way_to_see_it(cached):
    """The control: the same status shows the credential when asked, so the test above
    would see a leak."""
    p = run(["credhelper", "status", "--show-secret"], cached)
    assert CANARY in p.stdout.decode()
    entries = json.loads(run(["credhelper", "status", "--json", "--show-secret"], cached).stdout)
    assert any(CANARY in json.dumps(e) for e in entries)


def test_debug_get_prints_only_the_credential(cached):
    for command in (["credhelper", "--debug", "get", "--provider", "keyring"],
                    ["credhelper-keyring", "--debug"]):
        p = run(command, cached)
        assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode(), p.stderr
        assert "debug" in p.stderr  # the debug log was written, and run() found no secret in it


def test_a_clear_client_secret_is_flagged_not_shown(cached):
    report = json.loads(run(["credhelper", "doctor", "--json", "-p", "oidc"], cached).stdout)
    text = json.dumps(report)
    assert "canary-client-secret-in-clear" not in text
    assert "clear" in text.lower()  # doctor says the secret sits in clear, not what it is


def test_a_short_secret_inside_a_longer_one_never_unmasks_it():
    from credhelper.log import Log

    log = Log("test")
    log.secret("role-42")
    log.secret("prefix-role-42-suffix-canary-long")
    text = log.redact("token prefix-role-42-suffix-canary-long and role-42")
    assert "canary" not in text and "suffix" not in text and "role-42" not in text
