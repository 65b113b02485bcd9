"""credhelper doctor against a real OpenBao server over TLS (certificate from a test CA):
reachability, certificate subject/issuer/expiry, clock skew from the Date header, and
secrets masked in both the plain and the JSON report."""

from __future__ import annotations

import io
import json
import re
import time

from conftest import CANARY, run

from credhelper import run as run_mod


def checks(report: dict, title: str) -> dict:
    [section] = [s for s in report["sections"] if s["title"] == title]
    return {c["check"]: c for c in section["checks"]}


def vault_env(base_env, bao, ca=True):
    env = {**base_env, "VAULT_ADDR": bao.tls_address, "VAULT_TOKEN": CANARY,
           "CREDHELPER_VAULT_SECRET": "secret/gateway"}
    if ca:
        env["VAULT_CACERT"] = bao.ca_pem
    return env


def test_doctor_shows_the_backend_certificate_and_clock(base_env, tls_bao):
    p = run(["credhelper", "doctor", "-p", "vault", "--json"], vault_env(base_env, tls_bao))
    assert CANARY.encode() not in p.stdout
    vault = checks(json.loads(p.stdout), "provider vault")
    assert vault["token"]["detail"].startswith("***")
    assert vault["reachable"]["status"] == "ok" and tls_bao.tls_address in vault["reachable"]["detail"]
    cert = vault["TLS certificate"]
    assert cert["status"] == "ok", cert
    assert "CN=bao.test" in cert["detail"] and "credhelper test CA" in cert["detail"]
    assert re.search(r"expires \d{4}-\d\d-\d\d", cert["detail"])
    assert vault["clock skew"]["status"] == "ok" and "Date:" in vault["clock skew"]["detail"]
    sources = checks(json.loads(p.stdout), "configuration sources")
    assert sources["managed preferences"]["detail"].startswith("none")

    text = run(["credhelper", "doctor", "-p", "vault"], vault_env(base_env, tls_bao)).stdout.decode()
    assert "[  ok  ] TLS certificate: subject " in text and CANARY not in text
    assert "inferenceCredentialHelper: /" in text


def test_doctor_says_when_the_certificate_is_not_trusted(base_env, tls_bao):
    p = run(["credhelper", "doctor", "-p", "vault", "--json"], vault_env(base_env, tls_bao, ca=False))
    assert p.returncode == 2  # a failed check
    tls = checks(json.loads(p.stdout), "provider vault")["TLS"]
    assert tls["status"] == "fail" and "not trusted" in tls["detail"]
    assert "CN=bao.test" in tls["detail"] and "set ca_cert" in tls["detail"]


def test_doctor_reports_an_unreachable_backend(base_env, tls_bao):
    from openbao import free_port

    env = {**vault_env(base_env, tls_bao), "VAULT_ADDR": f"https://127.0.0.1:{free_port()}"}
    p = run(["credhelper", "doctor", "-p", "vault", "--json"], env)
    reachable = checks(json.loads(p.stdout), "provider vault")["reachable"]
    assert reachable["status"] == "fail" and "refused" in reachable["detail"].lower()


def test_doctor_flags_clock_skew(base_env, tls_bao):
    """In-process, with this machine's clock ten minutes slow."""
    out, err = io.StringIO(), io.StringIO()
    run_mod.umbrella_main(["doctor", "-p", "vault", "--json"], env=vault_env(base_env, tls_bao),
                          stdout=out, stderr=err, clock=lambda: time.time() - 600)
    skew = checks(json.loads(out.getvalue()), "provider vault")["clock skew"]
    # The Date header has one-second resolution.
    assert skew["status"] == "fail" and re.search(r"\b(599|600|601)s behind", skew["detail"]), skew


def test_doctor_names_the_keyring_backend(keyring_env):
    p = run(["credhelper", "doctor", "-p", "keyring", "--json"], keyring_env)
    backend = checks(json.loads(p.stdout), "cache")["keyring backend"]
    assert backend["status"] == "ok" and "SecretService" in backend["detail"]


def test_a_fresh_install_reads_not_configured_and_passes(base_env):
    p = run(["credhelper", "doctor", "--json"], base_env)
    assert p.returncode == 0, p.stdout
    report = json.loads(p.stdout)
    for name in ("vault", "aws", "azure", "oidc", "keyring"):
        [check] = checks(report, f"provider {name}").values()
        assert check["status"] == "skip" and check["check"] == "not configured"
        assert f"--provider {name}" in check["detail"]
    plain = run(["credhelper", "doctor"], base_env)
    assert plain.returncode == 0 and "FAIL" not in plain.stdout.decode()


def test_only_a_configured_broken_backend_fails_doctor(base_env):
    env = {**base_env, "CREDHELPER_VAULT_SECRET": "secret/gateway",
           "VAULT_ADDR": "http://127.0.0.1:9", "VAULT_TOKEN": CANARY}  # nothing listens
    p = run(["credhelper", "doctor", "--json"], env)
    assert p.returncode == 2
    report = json.loads(p.stdout)
    assert any(c["status"] == "fail" for c in checks(report, "provider vault").values())
    assert checks(report, "provider aws")["not configured"]["status"] == "skip"
    # asked for by name, an unconfigured backend is checked, and its failure counts
    p = run(["credhelper", "doctor", "--provider", "oidc"], base_env)
    assert p.returncode == 2 and "missing setting [oidc]" in p.stdout.decode()
