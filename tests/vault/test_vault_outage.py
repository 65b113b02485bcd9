"""A sealed and a stopped OpenBao server (real, one throw-away server per test):
stale-if-error serves a still-valid cached credential with a warning; without one the
run exits 4."""

from __future__ import annotations

from .vaultkit import CANARY, expect_token, failure, helper_env, run

VALUE = "outage-" + CANARY


def _env(base_env, server):
    server.client().adapter.request("POST", "/v1/secret/data/gateway",
                                    json={"data": {"token": VALUE}})
    # Valid for 2 minutes but due for renewal at once (min_validity 10 minutes), so the
    # next run asks the server, and may fall back on the cached credential.
    env = helper_env(base_env, server.address, secret="secret/gateway", field="token",
                     max_age="2m", min_validity="10m")
    env["VAULT_TOKEN"] = "root"
    return env


def test_sealed_server(base_env, fresh_server):
    env = _env(base_env, fresh_server)
    expect_token(run("credhelper-vault", env), VALUE)
    response = fresh_server.client().adapter.request("PUT", "/v1/sys/seal")
    assert response.status_code == 204, response.text
    proc = run("credhelper-vault", env)
    expect_token(proc, VALUE)
    assert "warning: Vault at" in proc.stderr and "is sealed; serving the cached credential" in proc.stderr
    doctor = run(["credhelper", "doctor", "--provider", "vault"], env)
    assert doctor.returncode == 2 and "[ FAIL ] vault seal: the server is sealed" in doctor.stdout.decode()
    env["CREDHELPER_CACHE_DIR"] += "-empty"
    failure(run("credhelper-vault", env), 4, "is sealed", "unseal")


def test_stopped_server(base_env, fresh_server):
    env = _env(base_env, fresh_server)
    expect_token(run("credhelper-vault", env), VALUE)
    fresh_server.stop()
    proc = run(["credhelper-vault", "--debug"], env)
    expect_token(proc, VALUE)
    assert "connection refused; serving the cached credential" in proc.stderr.lower()
    env["CREDHELPER_CACHE_DIR"] += "-empty"
    failure(run("credhelper-vault", env), 4, "cannot reach Vault", "Connection refused")
