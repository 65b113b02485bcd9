"""The fault matrix of credhelper-vault, against the real OpenBao server.

Every fault is either real or injected by tests/faultproxy.py (a reverse proxy in front of
the real server that misbehaves on request and forwards everything else unchanged):

1. backend stopped          real: a throw-away OpenBao server, stopped (connection refused)
2. never answers            injected: Fault.hang on the read; the run's deadline is real
3. 5xx, then success        injected: 502 and 500 answers; then the real server's answer
4. 429 with Retry-After     injected: the 429 and its header ("1", an HTTP-date, "120",
                            garbage); the retried read is the real server's answer
5. TLS: wrong CA, expired   injected: the proxy's certificate (trustme), issued by a CA
                            the helper does not trust, or expired and issued by the CA it
                            trusts; behind the proxy the real server answers
6. clock skew +/-10 min     real: libfaketime moves the helper's wall clock only; the KV
                            secret and the identity token (JWT) are the real server's
7. expiring credentials     real: an AppRole login token with a 4 s TTL, used after the
                            helper's clock was stepped back 10 min (so its record says the
                            token has 10 min left); injected: Fault.delay holds the read
                            until the token has expired on the server.  Real: a 90 min
                            lease and a 1 h identity token, shorter than min_validity.

Each case checks the contract: the exit code, stdout empty or exactly the credential, one
stderr error line naming the cause, no secret on stderr, and, where a credential was
cached, that the cache entry survives the fault unchanged (stale-if-error).
"""

from __future__ import annotations

import datetime
import email.utils
import glob
import json
import math
import os
import re
import time

import pytest
from faultproxy import Fault, FaultProxy

from .vaultkit import CANARY, _root, expect_token, failure, helper_env, jwt_claims, no_leak, run

skewed_clock = _root.skewed_clock

READ = "/v1/secret/data/"  # the KV v2 read: where a fault hits the credential itself
# A cached credential that is still valid (2 minutes) but due for renewal (min_validity 10
# minutes): the next run asks the server, and may fall back on the cached one.
STALE = {"max_age": "2m", "min_validity": "10m"}


# ---------------------------------------------------------------- helpers


@pytest.fixture
def proxy(lab):
    p = FaultProxy(lab.server.address).start()
    yield p
    p.stop()


def kv_env(base_env, address: str, **settings) -> dict:
    settings = {"secret": "secret/gateway", "field": "token", "kv_version": 2, **settings}
    env = helper_env(base_env, address, **settings)
    env["VAULT_TOKEN"] = "root"
    return env


def empty_cache(env: dict, name: str = "empty") -> dict:
    return {**env, "CREDHELPER_CACHE_DIR": env["CREDHELPER_CACHE_DIR"] + "-" + name}


def timed(args, env):
    started = time.monotonic()
    proc = run(args, env)
    return proc, time.monotonic() - started


def entry_path(env: dict) -> str:
    found = glob.glob(os.path.join(env["CREDHELPER_CACHE_DIR"], "vault-*.v1.json"))
    assert len(found) == 1, found
    return found[0]


def entry(env: dict) -> dict:
    with open(entry_path(env), encoding="utf-8") as f:
        return json.load(f)


def entry_bytes(env: dict) -> bytes:
    with open(entry_path(env), "rb") as f:
        return f.read()


def populate(env: dict, token: str) -> bytes:
    """One successful run, so that a still-valid credential is cached; its entry's bytes."""
    expect_token(run("credhelper-vault", env), token)
    return entry_bytes(env)


def served_stale(proc, token: str, *phrases: str) -> None:
    """Stale-if-error: the cached credential on stdout, no error, one warning naming the cause."""
    expect_token(proc, token)
    assert ": error: " not in proc.stderr, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines()
                if ": warning: " in ln and "serving the cached credential" in ln]
    assert len(warnings) == 1, proc.stderr
    for phrase in phrases:
        assert phrase in warnings[0], (phrase, proc.stderr)


def outcomes(proxy) -> list[str]:
    return [outcome for _, _, outcome in proxy.seen]


def no_error(proc) -> None:
    assert ": error: " not in proc.stderr, proc.stderr


# ---------------------------------------------------------------- 1. backend stopped


def test_stopped_backend_serves_a_valid_cached_credential_else_exits_4(base_env, fresh_server):
    value = "stopped-" + CANARY
    fresh_server.client().adapter.request("POST", "/v1/secret/data/gateway",
                                          json={"data": {"token": value}})
    env = kv_env(base_env, fresh_server.address, **STALE)
    before = populate(env, value)
    fresh_server.stop()

    proc, elapsed = timed("credhelper-vault", env)
    served_stale(proc, value, "Connection refused")
    assert elapsed < 5, elapsed
    assert entry_bytes(env) == before

    proc, elapsed = timed("credhelper-vault", empty_cache(env))
    failure(proc, 4, "cannot reach Vault", "Connection refused", "server is running",
            secrets=(value,))
    assert elapsed < 5, elapsed  # refused is final: no waiting, no retries


# ---------------------------------------------------------------- 2. never answers


def test_server_that_never_answers_ends_by_the_deadline(base_env, lab, proxy):
    env = kv_env(base_env, proxy.url, timeout="3s", **STALE)
    before = populate(env, lab.values["kv2"])

    proxy.reset()
    proxy.plan(Fault.hang())
    proc, elapsed = timed("credhelper-vault", env)
    served_stale(proc, lab.values["kv2"], "no answer from Vault", "deadline")
    assert 2.9 <= elapsed < 8, elapsed
    assert proxy.seen == [("GET", "/v1/secret/data/gateway", "hang")]
    assert entry_bytes(env) == before

    proxy.plan(Fault.hang())
    proc, elapsed = timed("credhelper-vault", empty_cache(env))
    failure(proc, 4, "no answer from Vault", "within the deadline")
    assert 2.9 <= elapsed < 8, elapsed


# ---------------------------------------------------------------- 3. 5xx, then success


def test_5xx_then_success(base_env, lab, proxy):
    env = kv_env(base_env, proxy.url, timeout="10s")
    proxy.plan(Fault.status(502), Fault.status(500), match=READ)
    proc, elapsed = timed(["credhelper-vault", "--debug"], env)
    expect_token(proc, lab.values["kv2"])
    no_error(proc)
    assert outcomes(proxy) == ["injected 502", "injected 500", "forwarded 200"]
    assert "with HTTP 502; retrying in" in proc.stderr and "with HTTP 500; retrying in" in proc.stderr
    assert elapsed < 8, elapsed  # within the 10 s deadline, backoff included
    assert entry(env)["token"] == lab.values["kv2"]


# ---------------------------------------------------------------- 4. 429 and Retry-After


@pytest.mark.parametrize("header, said, at_least", [
    ("1", "retrying in 1.00s (Retry-After)", 1.0),
    ("soon, maybe", "with HTTP 429; retrying in 0.20s", 0.0),  # unreadable: normal back-off
], ids=["seconds", "garbage"])
def test_retry_after_seconds_is_obeyed_and_garbage_ignored(base_env, lab, proxy, header, said,
                                                           at_least):
    env = kv_env(base_env, proxy.url, timeout="10s")
    proxy.plan(Fault.status(429, retry_after=header), match=READ)
    proc, elapsed = timed(["credhelper-vault", "--debug"], env)
    expect_token(proc, lab.values["kv2"])
    no_error(proc)
    assert outcomes(proxy) == ["injected 429", "forwarded 200"]
    assert said in proc.stderr
    assert ("(Retry-After)" in proc.stderr) == (at_least > 0)
    assert at_least <= elapsed < 8, elapsed


def test_retry_after_http_date_is_obeyed(base_env, lab, proxy):
    env = kv_env(base_env, proxy.url, timeout="15s")
    # Whole seconds (an HTTP-date has no fraction), far enough ahead that a backoff of
    # 0.2 s instead would end well before it.
    until = math.ceil(time.time()) + 3
    proxy.plan(Fault.status(429, retry_after=email.utils.formatdate(until, usegmt=True)),
               match=READ)
    proc, elapsed = timed(["credhelper-vault", "--debug"], env)
    finished = time.time()
    expect_token(proc, lab.values["kv2"])
    no_error(proc)
    assert outcomes(proxy) == ["injected 429", "forwarded 200"]
    assert "(Retry-After)" in proc.stderr
    assert finished >= until, (finished, until)
    assert elapsed < 12, elapsed


def test_retry_after_past_the_deadline_gives_up_at_once(base_env, lab, proxy):
    env = kv_env(base_env, proxy.url, timeout="5s", **STALE)
    before = populate(env, lab.values["kv2"])

    proxy.reset()
    proxy.plan(Fault.status(429, retry_after="120"), match=READ)
    proc, elapsed = timed("credhelper-vault", env)
    served_stale(proc, lab.values["kv2"], "HTTP 429", "retry after 120")
    assert elapsed < 4, elapsed  # no waiting for a retry that cannot fit
    assert outcomes(proxy) == ["injected 429"]
    assert entry_bytes(env) == before

    proxy.reset()
    proxy.plan(Fault.status(429, retry_after="120"), match=READ)
    proc, elapsed = timed("credhelper-vault", empty_cache(env))
    failure(proc, 4, "HTTP 429", "it asks to retry after 120")
    assert elapsed < 4, elapsed
    assert outcomes(proxy) == ["injected 429"]


def test_429_without_retry_after_until_the_deadline_exits_4(base_env, lab, proxy):
    env = kv_env(base_env, proxy.url, timeout="3s")
    proxy.plan(*[Fault.status(429, body={"errors": ["try later"]})] * 20, match=READ)
    proc, elapsed = timed("credhelper-vault", empty_cache(env))
    failure(proc, 4, "HTTP 429", "try later")
    assert elapsed < 6, elapsed  # backs off, then leaves the deadline's last half second
    assert 2 <= len(outcomes(proxy)) <= 6, outcomes(proxy)


# ---------------------------------------------------------------- 5. TLS


@pytest.fixture(scope="module")
def tls_cas(tmp_path_factory):
    """The CA the helper trusts (its PEM file) and another one."""
    import trustme

    trusted, other = trustme.CA(), trustme.CA()
    pem = str(tmp_path_factory.mktemp("tls-faults") / "trusted-ca.pem")
    trusted.cert_pem.write_to_path(pem)
    return trusted, other, pem


def present(proxy, leaf) -> None:
    """Make the proxy present ``leaf`` from the next handshake on (each helper run is a
    new process, so a new connection)."""
    leaf.configure_cert(proxy.server.socket.context)


def test_tls_wrong_ca_and_expired_certificate(base_env, lab, tls_cas):
    trusted, other, trusted_pem = tls_cas
    proxy = FaultProxy(lab.server.address, tls=trusted.issue_cert("127.0.0.1")).start()
    try:
        env = kv_env(base_env, proxy.url, ca_cert=trusted_pem, **STALE)
        before = populate(env, lab.values["kv2"])
        requests_seen = len(proxy.seen)

        # The trusted CA's certificate, expired yesterday.
        day = datetime.timedelta(days=1)
        utcnow = datetime.datetime.now(datetime.timezone.utc)
        present(proxy, trusted.issue_cert("127.0.0.1", not_before=utcnow - 30 * day,
                                          not_after=utcnow - day))
        proc = run("credhelper-vault", env)
        served_stale(proc, lab.values["kv2"], "certificate has expired")
        assert entry_bytes(env) == before
        proc = run("credhelper-vault", empty_cache(env))
        failure(proc, 4, "TLS to https://127.0.0.1", "certificate has expired", "renew")
        assert "ca_cert" not in proc.stderr  # the CA is right: do not send them after it

        # A valid certificate from a CA the helper does not trust.
        present(proxy, other.issue_cert("127.0.0.1"))
        proc = run("credhelper-vault", env)
        served_stale(proc, lab.values["kv2"], "certificate verify failed")
        assert entry_bytes(env) == before
        proc = run("credhelper-vault", empty_cache(env))
        failure(proc, 4, "TLS to https://127.0.0.1", "unable to get local issuer certificate",
                "hint: set [vault] ca_cert")
        assert len(proxy.seen) == requests_seen  # no request got past a failed handshake
    finally:
        proxy.stop()


# ---------------------------------------------------------------- 6. clock skew


@pytest.mark.parametrize("offset,seconds,words", [("+10m", 600, "ahead of"), ("-10m", -600, "behind")])
def test_clock_skew_does_not_shift_the_expiry(base_env, lab, offset, seconds, words):
    # A KV secret: its expiry is max_age on the helper's own clock.
    env = skewed_clock(kv_env(base_env, lab.server.address, max_age="1h"), offset)
    started = time.time()
    proc = run("credhelper-vault", env)
    ended = time.time()
    expect_token(proc, lab.values["kv2"])
    no_error(proc)
    doc = entry(env)
    assert started + seconds - 1 <= doc["fetched_at"] <= ended + seconds + 1, doc  # skewed
    assert started + seconds + 3600 - 1 <= doc["expires_at"] <= ended + seconds + 3600 + 1, doc

    # An identity token (1 h role): exp is on the server's clock, the entry on the helper's.
    env = skewed_clock(helper_env(base_env, lab.server.address, auth="approle",
                                  role_id=lab.role_id, secret_id_file=lab.secret_id_file,
                                  identity_token="gateway"), offset)
    env["CREDHELPER_CACHE_DIR"] += "-identity"
    started = time.time()
    proc = run("credhelper-vault", env)
    ended = time.time()
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.decode().rstrip("\n")
    expect_token(proc, token, lab.secret_id)
    no_error(proc)
    claims = jwt_claims(token)
    assert started - 2 <= claims["iat"] <= ended + 1 and claims["exp"] - claims["iat"] == 3600
    doc = entry(env)
    assert started + seconds + 3600 - 2 <= doc["expires_at"] <= ended + seconds + 3600 + 1, (
        doc["expires_at"] - claims["exp"])
    assert re.search(rf"warning: this machine's clock is (599|600|601)s {words} Vault at ",
                     proc.stderr), proc.stderr


# ---------------------------------------------------------------- 7. expiring credentials


@pytest.fixture
def short_role(lab, tmp_path):
    """An AppRole whose login tokens live 4 s, and a second secret to read with them."""
    lab.api("POST", "auth/approle/role/short", token_policies="gateway-read", token_ttl="4s",
            token_max_ttl="4s")
    role_id = lab.api("GET", "auth/approle/role/short/role-id")["data"]["role_id"]
    secret_id = lab.api("POST", "auth/approle/role/short/secret-id")["data"]["secret_id"]
    path = tmp_path / "short-secret-id"
    path.write_text(secret_id + "\n")
    lab.api("POST", "secret/data/faults-other", data={"token": "other-" + lab.values["kv2"]})
    return role_id, str(path), secret_id


def test_login_token_that_expires_during_the_run_signs_in_again_once(base_env, lab, proxy,
                                                                      short_role):
    role_id, secret_id_file, secret_id = short_role
    settings = dict(auth="approle", role_id=role_id, secret_id_file=secret_id_file, field="token",
                    kv_version=2)
    # The first run signs in while this machine's clock is 10 minutes fast, so its record
    # of the 4 s token's expiry is 10 minutes late once the clock is set right: the next
    # run believes the token has minutes left and uses it.
    first = skewed_clock(helper_env(base_env, proxy.url, secret="secret/gateway", **settings),
                         "+10m")
    expect_token(run("credhelper-vault", first), lab.values["kv2"], secret_id)
    assert outcomes(proxy) == ["forwarded 200", "forwarded 200"]  # login, read

    # Another secret with the same login, on the right clock; the read reaches the server
    # only after the token has expired there.
    proxy.reset()
    proxy.plan(Fault.delay(5), match=READ)
    second = helper_env(base_env, proxy.url, secret="secret/faults-other", **settings)
    proc, elapsed = timed(["credhelper-vault", "--debug"], second)
    expect_token(proc, "other-" + lab.values["kv2"], secret_id)
    no_error(proc)
    assert "using the cached Vault login token" in proc.stderr
    assert "the cached Vault token was refused; signing in again" in proc.stderr
    assert proxy.seen == [("GET", "/v1/secret/data/faults-other", "forwarded 403"),
                          ("POST", "/v1/auth/approle/login", "forwarded 200"),
                          ("GET", "/v1/secret/data/faults-other", "forwarded 200")]
    assert elapsed < 15, elapsed


def _leased_env(base_env, lab):
    env = helper_env(base_env, lab.server.address, path="kv1/leased", field="token",
                     min_validity="2h")
    env["VAULT_TOKEN"] = "root"
    return env, 5400


def _identity_env(base_env, lab):
    env = helper_env(base_env, lab.server.address, auth="approle", role_id=lab.role_id,
                     secret_id_file=lab.secret_id_file, identity_token="gateway",
                     min_validity="2h")
    return env, 3600


@pytest.mark.parametrize("make_env", [_leased_env, _identity_env], ids=["lease", "identity"])
def test_credential_shorter_than_min_validity_is_printed_with_a_warning(base_env, lab, make_env):
    env, lifetime = make_env(base_env, lab)
    for _attempt in (1, 2):  # not fresh enough to be a cache hit: every run fetches and warns
        started = time.time()
        proc = run("credhelper-vault", env)
        assert proc.returncode == 0, proc.stderr
        token = proc.stdout.decode().rstrip("\n")
        expect_token(proc, token, lab.secret_id)
        if make_env is _leased_env:
            assert token == lab.values["leased"]
        else:
            no_leak(proc, token)
        no_error(proc)
        warning = re.search(r"warning: the new credential is valid for only (\d+)s, less than "
                            r"min_validity \(7200s\)", proc.stderr)
        assert warning, proc.stderr
        assert lifetime - 10 <= int(warning.group(1)) <= lifetime, proc.stderr
        doc = entry(env)
        assert doc["token"] == token and doc["fetched_at"] >= started - 1
        assert abs(doc["expires_at"] - (doc["fetched_at"] + lifetime)) <= 3, doc
