"""What credhelper-vault prints and how it fails, against a real OpenBao server.

Real: the server, KV v1 and v2, a leased logical read, identity tokens, a namespace, TLS
with the right and a wrong CA, the audit device that counts requests. Faults (a server
that never answers, 5xx, 429) are in test_vault_faults.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from .vaultkit import (
    OTHER_FIELD_VALUE,
    expect_token,
    failure,
    helper_env,
    jwt_claims,
    no_leak,
    run,
    script,
)

KV2 = {"secret": "secret/gateway", "field": "token"}


def root_env(base_env, lab, **settings):
    env = helper_env(base_env, lab.server.address, **settings)
    env["VAULT_TOKEN"] = "root"
    return env


def status_of(env) -> dict:
    proc = run(["credhelper-vault", "status", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return [e for e in json.loads(proc.stdout) if e.get("current")][0]


def test_kv2_detected_from_the_mount(base_env, lab):
    env = root_env(base_env, lab, **KV2)
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"])
    entry = status_of(env)
    assert entry["details"]["kv_version"] == 2
    assert 7190 <= entry["lifetime_seconds"] <= 7200  # no expiry of its own: 2h default


def test_kv2_explicit_version_and_max_age(base_env, lab):
    env = root_env(base_env, lab, kv_version=2, version=1, max_age="10m", **KV2)
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2_v1"])
    assert 590 <= status_of(env)["lifetime_seconds"] <= 600


def test_kv1_detected_and_explicit(base_env, lab):
    env = root_env(base_env, lab, secret="kv1/gateway", field="token")
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv1"])
    assert status_of(env)["details"]["kv_version"] == 1
    env = root_env(base_env, lab, secret="kv1/gateway", field="token", kv_version=1)
    env["CREDHELPER_CACHE_DIR"] += "-explicit"
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv1"])


def test_the_only_field_needs_no_field_setting(base_env, lab):
    lab.api("POST", "secret/data/single", data={"key": lab.values["kv2"]})
    env = root_env(base_env, lab, secret="secret/single")
    expect_token(run("credhelper-vault", env), lab.values["kv2"])


def test_missing_field_exits_2_listing_names_only(base_env, lab):
    env = root_env(base_env, lab, secret="secret/gateway", field="api_key")
    proc = run(["credhelper-vault", "--debug"], env)
    failure(proc, 2, "'api_key'", "other, token")
    assert OTHER_FIELD_VALUE not in proc.stderr and lab.values["kv2"] not in proc.stderr


def test_missing_path_exits_5(base_env, lab):
    env = root_env(base_env, lab, secret="secret/does-not-exist", field="token")
    failure(run("credhelper-vault", env), 5, "no such path", "secret/does-not-exist")


def test_exactly_one_target_is_required(base_env, lab):
    env = root_env(base_env, lab, secret="secret/gateway", identity_token="gateway")
    failure(run("credhelper-vault", env), 2, "exactly one of secret, path, identity_token")
    failure(run("credhelper-vault", root_env(base_env, lab)), 2, "exactly one of")


def test_plain_http_to_another_host_is_a_config_error(base_env, lab):
    env = helper_env(base_env, "http://vault.internal.example:8200", **KV2)
    env["VAULT_TOKEN"] = "root"
    failure(run("credhelper-vault", env), 2, "plain http", "VAULT_ADDR")


def test_leased_logical_read_expires_with_the_lease(base_env, lab):
    # A KV v1 read with a "ttl" field carries a real lease_duration (90m).
    env = root_env(base_env, lab, path="kv1/leased", field="token")
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["leased"])
    entry = status_of(env)
    assert 5390 <= entry["lifetime_seconds"] <= 5400
    assert entry["details"]["lease_duration"] == "5400s"


def test_identity_token_expires_with_its_jwt(base_env, lab):
    # Identity tokens need an entity, so sign in with approle rather than root.
    env = helper_env(base_env, lab.server.address, auth="approle", role_id=lab.role_id,
                     secret_id_file=lab.secret_id_file, identity_token="gateway")
    proc = run(["credhelper-vault", "--debug"], env)
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.decode().rstrip("\n")
    expect_token(proc, token, lab.secret_id)
    claims = jwt_claims(token)
    assert claims["iss"].endswith("/v1/identity/oidc")
    assert 3590 <= claims["exp"] - time.time() <= 3600
    entry = status_of(env)
    assert entry["jwt_claims"]["exp"] == claims["exp"]
    assert entry["expires_at"] == time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(claims["exp"]))
    no_leak(proc, token)


def test_namespace(base_env, lab):
    env = root_env(base_env, lab, secret="kv/gateway", field="token")
    env["VAULT_NAMESPACE"] = "team"
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["ns"])
    env = root_env(base_env, lab, secret="kv/gateway", field="token", kv_version=2)
    env["VAULT_NAMESPACE"] = "team"
    env["CREDHELPER_CACHE_DIR"] += "-explicit"
    expect_token(run("credhelper-vault", env), lab.values["ns"])


def test_tls_with_the_right_ca_file_and_directory(base_env, lab):
    env = helper_env(base_env, lab.server.tls_address, **KV2)
    env.update(VAULT_TOKEN="root", VAULT_CACERT=lab.ca_pem)
    expect_token(run(["credhelper-vault", "--debug"], env), lab.values["kv2"])
    env = helper_env(base_env, lab.server.tls_address, ca_cert=lab.ca_dir, **KV2)
    env["VAULT_TOKEN"] = "root"
    env["CREDHELPER_CACHE_DIR"] += "-dir"
    expect_token(run("credhelper-vault", env), lab.values["kv2"])


def test_tls_with_a_wrong_ca_exits_4(base_env, lab):
    env = helper_env(base_env, lab.server.tls_address, ca_cert=lab.wrong_ca_pem, **KV2)
    env["VAULT_TOKEN"] = "root"
    failure(run("credhelper-vault", env), 4, "certificate verify failed", "ca_cert")
    # And with no CA configured, the system store does not know the test CA either.
    del env["CREDHELPER_VAULT_CA_CERT"]
    failure(run("credhelper-vault", env), 4, "certificate verify failed")


def test_status_shows_the_token_facts_but_never_a_secret(base_env, lab):
    env = helper_env(base_env, lab.server.address, auth="approle", role_id=lab.role_id,
                     secret_id_file=lab.secret_id_file, **KV2)
    expect_token(run("credhelper-vault", env), lab.values["kv2"], lab.secret_id)
    proc = run(["credhelper-vault", "status"], env)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "accessor:" in text and "gateway-read" in text and "ttl:" in text
    assert lab.values["kv2"] not in text and lab.secret_id not in text
    state = status_of(env)["backend"]
    # The accessor names the login token; the token itself is in the private state only.
    lookup = lab.api("POST", "auth/token/lookup-accessor", accessor=state["accessor"])["data"]
    assert lookup["id"] == "" and lookup["display_name"].startswith("approle")


def test_doctor_reports_tls_seal_and_token(base_env, lab):
    token = lab.api("POST", "auth/token/create", policies=["gateway-read"])["auth"]["client_token"]
    env = helper_env(base_env, lab.server.tls_address, ca_cert=lab.ca_pem, **KV2)
    env["VAULT_TOKEN"] = token
    proc = run(["credhelper", "doctor", "--provider", "vault"], env)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr
    assert "TLS certificate: subject" in out and "vault reachable: 2." in out and "unsealed" in out
    assert "policies default, gateway-read" in out
    assert token not in out and token not in proc.stderr


def test_cache_hit_imports_no_backend_library(base_env, lab):
    env = root_env(base_env, lab, **KV2)
    expect_token(run("credhelper-vault", env), lab.values["kv2"])
    code = ("import sys\nfrom credhelper.run import helper_main\nrc = helper_main('vault', [])\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('hvac', 'requests', 'urllib3', 'click', 'tomllib', 'ssl'))\n"
            "sys.stderr.write('HEAVY=%r\\n' % heavy)\nsys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == lab.values["kv2"] + "\n"
    assert "HEAVY=[]" in proc.stderr, proc.stderr


def test_fifty_concurrent_cold_runs_make_one_read_and_one_login(base_env, lab):
    name = f"concurrent-{os.getpid()}"
    lab.api("POST", f"secret/data/{name}", data={"token": lab.values["kv2"]})
    env = helper_env(base_env, lab.server.address, auth="approle", role_id=lab.role_id,
                     secret_id_file=lab.secret_id_file, secret=f"secret/{name}", field="token")
    env["CREDHELPER_DEFAULTS_TIMEOUT"] = "60"
    logins = lab.server.count_requests("auth/approle/login")
    procs = [subprocess.Popen([script("credhelper-vault")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL) for _ in range(50)]
    results = [(p.wait(120), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err.decode()
        assert out == (lab.values["kv2"] + "\n").encode()
        assert lab.values["kv2"].encode() not in err and lab.secret_id.encode() not in err
    assert lab.server.count_requests(f"secret/data/{name}", "read") == 1
    assert lab.server.count_requests("auth/approle/login") == logins + 1
