"""What a person debugging a Vault credential reads: the expiry's origin in --debug, and
`login --help` describing Vault's own sign-in (real OpenBao)."""

from __future__ import annotations

from .vaultkit import expect_token, helper_env, run


def test_a_kv_secret_says_its_expiry_is_the_max_age_default(base_env, lab):
    env = helper_env(base_env, lab.server.address, secret="secret/gateway", field="token")
    env["VAULT_TOKEN"] = "root"
    p = run(["credhelper-vault", "--debug"], env)
    expect_token(p, lab.values["kv2"], "root")
    [line] = [ln for ln in p.stderr.splitlines() if "new credential valid for" in ln]
    assert "the default max_age for a secret without expiry (7200s)" in line
    assert "from the backend" not in line
    env["CREDHELPER_VAULT_MAX_AGE"] = "30m"  # another key: fetched again
    p = run(["credhelper-vault", "--debug"], env)
    [line] = [ln for ln in p.stderr.splitlines() if "new credential valid for" in ln]
    assert "(expiry from max_age, set by CREDHELPER_VAULT_MAX_AGE (environment))" in line


def test_a_leased_read_says_its_expiry_is_the_backend(base_env, lab):
    env = helper_env(base_env, lab.server.address, path="kv1/leased", field="token")
    env["VAULT_TOKEN"] = "root"
    p = run(["credhelper-vault", "--debug"], env)
    expect_token(p, lab.values["leased"], "root")
    assert "(expiry from the backend)" in p.stderr


def test_vault_login_help_describes_vaults_own_sign_in(base_env):
    p = run(["credhelper-vault", "login", "--help"], base_env)
    text = p.stdout.decode()
    assert p.returncode == 0 and "auth method" in text and "bao login" in text
    assert "device code" not in text
