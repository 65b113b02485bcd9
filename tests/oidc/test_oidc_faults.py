"""credhelper-oidc when the OpenID provider fails: the fault matrix.

The provider is always the real one (oidc-provider, tests/oidc/idp.mjs). Where a fault
must be injected, a second instance of it runs behind a FaultProxy (tests/faultproxy.py):
the proxy presents its own certificate from the test CA and the provider names the
proxy's URL as its issuer (IDP_ISSUER), so discovery, tokens and sign-in all pass through
it. The client is the confidential "svc" (client_credentials); the refresh-token path
uses a person's sign-in (device code, client "cli") where it matters.

  fault                                        real or injected
  1. provider stopped                          real: the process is stopped
  2. connection accepted, never answered       injected: Fault.hang on discovery, on /token
  3. 503 on discovery, 502 on /token, then ok  injected statuses; the retries are real
     500 on a refresh_token POST               injected; the refresh token stays real
  4. 429 with Retry-After 1 / 120              injected
  5. TLS: a CA the helper does not trust       real (test_oidc.py::test_the_wrong_ca_exits_4)
     an expired certificate from a trusted CA  real certificate, presented by the proxy
  6. the helper's clock 2 h ahead / behind     real: libfaketime in the helper only
  7. the answer arrives after the token died   injected: Fault.late on /token, with a
     / with less than min_validity left        real short-lived token (client "svc-short")

Every failure is checked twice: with no cached credential (the exit code, nothing on
stdout, one error line naming the cause) and with a still-valid cached one that a large
min_validity makes the run renew (stale-if-error: that credential is printed with a
warning, and its cache entry is left exactly as it was).
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import time

import pytest
from conftest import assert_failure, run, skewed_clock
from faultproxy import Fault, FaultProxy

from credhelper import jwt

from .conftest import SVC_SECRET, desktop_env
from .idpkit import IdP, sign_in

SHORT_TTL = 5  # seconds: access tokens of the "-short" clients
DISCOVERY = "/.well-known/openid-configuration"
TOKEN = "/token"


class TimedProxy(FaultProxy):
    """A FaultProxy that also notes when each request arrived (monotonic clock)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[float, str]] = []

    def _handle(self, handler, body: bytes) -> None:
        with self.lock:
            self.arrivals.append((time.monotonic(), handler.path))
        super()._handle(handler, body)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.arrivals.clear()

    def outcomes(self, match: str) -> list[str]:
        with self.lock:
            return [outcome for _, path, outcome in self.seen if match in path]

    def arrived(self, match: str) -> list[float]:
        with self.lock:
            return [at for at, path in self.arrivals if match in path]


class Rig:
    """The provider behind the proxy, and the certificate the proxy normally presents."""

    def __init__(self, server: IdP, proxy: TimedProxy, cert):
        self.server, self.proxy, self.cert = server, proxy, cert


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    server = IdP(tmp_path_factory.mktemp("idp-behind-proxy"), SVC_SECRET, short_ttl=SHORT_TTL)
    cert = server.ca.issue_cert("127.0.0.1", "localhost")
    proxy = TimedProxy(server.origin, tls=cert, upstream_ca=server.ca_pem).start()
    server.issuer = f"{proxy.url}/idp"
    try:
        server.start()
    except Exception as exc:  # node, npm or the package missing must fail loudly in CI
        proxy.stop()
        pytest.fail(f"cannot start the OpenID provider: {exc}")
    yield Rig(server, proxy, cert)
    server.stop()
    proxy.stop()


@pytest.fixture
def proxy(rig):
    """The proxy with no fault queued and nothing seen; unused faults die with the test."""
    rig.proxy.reset()
    yield rig.proxy
    rig.proxy.reset()


def svc_env(base_env, server: IdP, tmp_path) -> dict:
    env = desktop_env(base_env, server, tmp_path)
    env.update({
        "CREDHELPER_OIDC_ISSUER": server.issuer,
        "CREDHELPER_OIDC_CLIENT_ID": "svc",
        "CREDHELPER_OIDC_GRANT": "client_credentials",
        "CREDHELPER_OIDC_CLIENT_SECRET": "env:SVC_SECRET",
        "SVC_SECRET": SVC_SECRET,
        "CLAUDE_HELPER_CONTEXT": "background",
    })
    return env


@pytest.fixture
def env(base_env, rig, proxy, tmp_path):
    """A machine client of the provider behind the proxy."""
    return svc_env(base_env, rig.server, tmp_path)


# ---------------------------------------------------------------- helpers


def expect_token(proc) -> str:
    """Exit 0 and exactly one line on stdout: the token."""
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.endswith("\n") and out.count("\n") == 1 and out.strip() == out[:-1], out
    assert ": error: " not in proc.stderr, proc.stderr
    return out[:-1]


def entry_file(env) -> str:
    [path] = glob.glob(os.path.join(env["CREDHELPER_CACHE_DIR"], "oidc-*.v1.json"))
    return path


def prime(env) -> tuple[str, str, bytes]:
    """One successful run: (the token, its cache entry file, that file's bytes)."""
    token = expect_token(run(["credhelper-oidc"], env))
    path = entry_file(env)
    with open(path, "rb") as f:
        data = f.read()
    assert json.loads(data)["token"] == token
    return token, path, data


def due(env) -> dict:
    """The cached credential (1 h) stays valid but is due for renewal: min_validity 2 h."""
    return {**env, "CREDHELPER_OIDC_MIN_VALIDITY": "2h"}


def cold(env, tmp_path) -> dict:
    """The same configuration with an empty cache."""
    return {**env, "CREDHELPER_CACHE_DIR": str(tmp_path / "cold-cache")}


def served_from_cache(proc, token: str, path: str, data: bytes, *phrases: str) -> None:
    """Stale-if-error: the cached token printed, a warning naming the cause, the entry
    untouched."""
    assert expect_token(proc) == token
    warnings = [ln for ln in proc.stderr.splitlines() if ": warning: " in ln]
    assert any("serving the cached credential" in ln for ln in warnings), proc.stderr
    for phrase in phrases:
        assert phrase in proc.stderr, (phrase, proc.stderr)
    with open(path, "rb") as f:
        assert f.read() == data, "the cached credential was rewritten"


def timed(args, env) -> tuple[object, float]:
    start = time.monotonic()
    proc = run(args, env)
    return proc, time.monotonic() - start


# ---------------------------------------------------------------- 1. provider stopped


def test_a_stopped_provider_exits_4_at_once_or_serves_the_cached_token(base_env, tmp_path):
    workdir = tmp_path / "idp"
    workdir.mkdir()
    server = IdP(workdir, SVC_SECRET)
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"cannot start the OpenID provider: {exc}")
    try:
        env = svc_env(base_env, server, tmp_path)
        token, path, data = prime(env)
    finally:
        server.stop()

    proc, elapsed = timed(["credhelper-oidc"], cold(env, tmp_path))
    assert_failure(proc, 4, "cannot reach", server.issuer)
    assert elapsed < 5.0, elapsed  # refused at once: no waiting out the 30 s deadline
    proc, elapsed = timed(["credhelper-oidc"], due(env))
    served_from_cache(proc, token, path, data, "cannot reach")
    assert elapsed < 5.0, elapsed


# ---------------------------------------------------------------- 2. never answers


@pytest.mark.parametrize("where", [DISCOVERY, TOKEN])
def test_a_provider_that_never_answers_exits_4_by_the_deadline(env, proxy, tmp_path, where):
    env = {**env, "CREDHELPER_OIDC_TIMEOUT": "3s"}
    token, path, data = prime(env)
    proxy.reset()

    proxy.plan(Fault.hang(), match=where)
    proc, elapsed = timed(["credhelper-oidc"], cold(env, tmp_path))
    assert_failure(proc, 4, "no answer from", "deadline")
    assert elapsed < 8.0, elapsed
    assert proxy.outcomes(where) == ["hang"]

    proxy.plan(Fault.hang(), match=where)
    proc, elapsed = timed(["credhelper-oidc"], due(env))
    served_from_cache(proc, token, path, data, "no answer from")
    assert elapsed < 8.0, elapsed


# ---------------------------------------------------------------- 3. 5xx


@pytest.mark.parametrize("where, status", [(DISCOVERY, 503), (TOKEN, 502)])
def test_a_5xx_then_an_answer_is_retried(env, proxy, where, status):
    proxy.plan(Fault.status(status), match=where)
    token = expect_token(run(["credhelper-oidc"], env))
    assert jwt.decode(token)[1]["client_id"] == "svc"
    assert proxy.outcomes(where) == [f"injected {status}", "forwarded 200"]
    with open(entry_file(env)) as f:
        assert json.load(f)["token"] == token


def test_a_500_on_a_refresh_is_not_retried_and_the_refresh_token_survives(env, rig, proxy):
    person = {**env, "CREDHELPER_OIDC_CLIENT_ID": "cli", "CREDHELPER_OIDC_GRANT": "device_code",
              "CLAUDE_HELPER_CONTEXT": "interactive"}
    del person["CREDHELPER_OIDC_CLIENT_SECRET"]
    token = expect_token(sign_in(["credhelper-oidc"], person, rig.server))
    path = entry_file(person)
    with open(path, "rb") as f:
        data = f.read()
    background = due({**person, "CLAUDE_HELPER_CONTEXT": "background"})
    refreshes = rig.server.refreshes()
    proxy.reset()

    # A 500 may mean the provider spent the refresh token: one POST, never a second.
    proxy.plan(Fault.status(500), match=TOKEN)
    served_from_cache(run(["credhelper-oidc"], background), token, path, data, "HTTP 500")
    assert proxy.outcomes(TOKEN) == ["injected 500"]

    os.unlink(path)
    proxy.plan(Fault.status(500), match=TOKEN)
    assert_failure(run(["credhelper-oidc"], background), 4, "HTTP 500", "refresh_token request")
    assert proxy.outcomes(TOKEN) == ["injected 500"] * 2

    # The saved refresh token was never spent: it still renews.
    renewed = expect_token(run(["credhelper-oidc"], background))
    assert renewed != token and jwt.decode(renewed)[1]["sub"] == "alice"
    assert proxy.outcomes(TOKEN) == ["injected 500"] * 2 + ["forwarded 200"]
    assert rig.server.refreshes() == refreshes + 1


# ---------------------------------------------------------------- 4. 429 Retry-After


def test_a_retry_after_within_the_deadline_is_obeyed(env, proxy):
    proxy.plan(Fault.status(429, retry_after="1"), match=TOKEN)
    proc, elapsed = timed(["credhelper-oidc"], env)
    expect_token(proc)
    assert proxy.outcomes(TOKEN) == ["injected 429", "forwarded 200"]
    first, second = proxy.arrived(TOKEN)
    assert second - first >= 1.0, second - first  # not the 0.25 s default back-off
    assert elapsed >= 1.0


def test_a_retry_after_past_the_deadline_fails_at_once(env, proxy, tmp_path):
    env = {**env, "CREDHELPER_OIDC_TIMEOUT": "5s"}
    token, path, data = prime(env)
    proxy.reset()

    proxy.plan(Fault.status(429, retry_after="120"), match=TOKEN)
    proc, elapsed = timed(["credhelper-oidc"], cold(env, tmp_path))
    assert_failure(proc, 4, "HTTP 429", "retry after 120")
    assert elapsed < 4.5, elapsed  # gave up at once instead of sleeping to the deadline
    assert proxy.outcomes(TOKEN) == ["injected 429"]

    proxy.plan(Fault.status(429, retry_after="120"), match=TOKEN)
    proc, elapsed = timed(["credhelper-oidc"], due(env))
    served_from_cache(proc, token, path, data, "HTTP 429", "retry after 120")
    assert elapsed < 4.5, elapsed


# ---------------------------------------------------------------- 5. TLS
# A certificate from a CA the helper does not trust: test_oidc.py::test_the_wrong_ca_exits_4.


def test_an_expired_certificate_exits_4_and_says_so(env, rig, proxy, tmp_path):
    token, path, data = prime(env)
    proxy.reset()
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    expired = rig.server.ca.issue_cert("127.0.0.1", "localhost",
                                       not_before=now - datetime.timedelta(days=30),
                                       not_after=now - datetime.timedelta(days=1))
    context = proxy.server.socket.context  # each new connection takes the current certificate
    expired.configure_cert(context)
    try:
        assert_failure(run(["credhelper-oidc"], cold(env, tmp_path)), 4,
                       "certificate has expired", rig.server.issuer)
        served_from_cache(run(["credhelper-oidc"], due(env)), token, path, data,
                          "certificate has expired")
    finally:
        rig.cert.configure_cert(context)
    assert proxy.seen == []  # no request got past the handshake
    assert expect_token(run(["credhelper-oidc"], due(env))) != token


# ---------------------------------------------------------------- 6. clock skew


@pytest.mark.parametrize("offset, seconds", [("+2h", 7200), ("-2h", -7200)])
def test_a_skewed_clock_counts_the_lifetime_from_its_own_now(env, proxy, offset, seconds):
    before = time.time()
    proc = run(["credhelper-oidc"], skewed_clock(env, offset))
    after = time.time()
    token = expect_token(proc)
    claims = jwt.decode(token)[1]
    lifetime = claims["exp"] - claims["iat"]
    assert lifetime == 3600
    with open(entry_file(env)) as f:
        entry = json.load(f)
    assert entry["token"] == token
    # The entry's expiry is on the helper's clock: its now plus the token's lifetime.
    assert before + seconds + lifetime - 2 <= entry["expires_at"] <= after + seconds + lifetime + 2, (
        entry["expires_at"] - before - seconds - lifetime)
    warnings = [ln for ln in proc.stderr.splitlines() if ": warning: " in ln]
    assert any("clock" in w and ("ahead of" if seconds > 0 else "behind") in w
               for w in warnings), proc.stderr


# ---------------------------------------------------------------- 7. dies on the way


def test_a_token_dead_on_arrival_is_never_printed(env, proxy):
    env = {**env, "CREDHELPER_OIDC_CLIENT_ID": "svc-short", "CREDHELPER_OIDC_TIMEOUT": "20s",
           "CREDHELPER_OIDC_MIN_VALIDITY": "1s"}
    token, path, data = prime(env)
    assert jwt.decode(token)[1]["exp"] - jwt.decode(token)[1]["iat"] == SHORT_TTL
    proxy.reset()

    # The answer is held longer than the token lives: it arrives already expired. No
    # refetch: a token dies on the way only when the answer took longer than its whole
    # lifetime, so within the run's deadline its lifetime is shorter than the deadline and
    # a second request would most likely meet the same fate, spending the rest of the
    # deadline (and, on the refresh path, a rotation). A slow answer is no refusal: exit 4
    # (a still-valid cached token would be served), and nothing dead reaches stdout or
    # the cache.
    proxy.plan(Fault.late(SHORT_TTL + 1.5), match=TOKEN)
    proc = run(["credhelper-oidc"], {**env, "CREDHELPER_OIDC_MIN_VALIDITY": "1m"})
    assert_failure(proc, 4, "it arrived expired")
    assert proxy.outcomes(TOKEN) == ["forwarded 200"]  # one request, no refetch
    with open(path, "rb") as f:
        assert f.read() == data, "the dead token replaced the cached entry"


def test_a_token_that_arrives_short_of_min_validity_is_printed_with_a_warning(env, proxy):
    env = {**env, "CREDHELPER_OIDC_CLIENT_ID": "svc-short", "CREDHELPER_OIDC_TIMEOUT": "20s"}
    proxy.plan(Fault.late(2.0), match=TOKEN)
    proc = run(["credhelper-oidc"], env)
    token = expect_token(proc)
    assert "warning: the new credential is valid for only" in proc.stderr
    assert "less than min_validity (300s)" in proc.stderr
    claims = jwt.decode(token)[1]
    with open(entry_file(env)) as f:
        expires_at = json.load(f)["expires_at"]
    # Counted from when the request was sent (at most 1 s after iat, which is whole
    # seconds), not from when the answer arrived 2 s later.
    assert claims["exp"] - 1.0 <= expires_at < claims["exp"] + 1.5, expires_at - claims["exp"]
