"""credhelper-azure when its authority fails: the fault matrix, after a real sign-in.

The authority is the real OpenID provider (oidc-provider, tests/oidc/idp.mjs) that MSAL
reaches as an ``oidc_authority``, with MSAL's token cache in a real GNOME Keyring. As in
test_oidc_faults.py (whose rig, proxy and helpers this module reuses), a second instance
of the provider runs behind a FaultProxy (tests/faultproxy.py) and names the proxy's URL
as its issuer, so MSAL's discovery, the device code sign-in and every token request pass
through it. Each test first signs a person in with the device code flow (client "cli"),
so the failures hit MSAL's silent renewal with the saved refresh token.

  fault                                        real or injected
  1. provider stopped                          real: the process is stopped
  2. connection accepted, never answered       injected: Fault.hang on discovery, on /token
  3. 503 on discovery, 502 on /token, then ok  injected statuses; the retries are real
     500 on a refresh_token POST               injected; the refresh token stays real
  4. 429 with Retry-After 1 / 120              injected
  5. TLS: a CA the helper does not trust       real (test_azure.py::test_the_wrong_ca_exits_4)
     an expired certificate from a trusted CA  real certificate, presented by the proxy
  6. the helper's clock 2 h ahead / behind     real: libfaketime in the helper only
  7. the answer arrives after the token died   injected: Fault.late on /token, with a
     / with less than min_validity left        real short-lived token (client "cli-short")

Every failure is checked twice: with no cached credential (the exit code, nothing on
stdout, one error line naming the cause) and with a still-valid cached one that a large
min_validity makes the run renew (stale-if-error: that credential is printed with a
warning, and its cache entry is left exactly as it was). MSAL's own cache keeps its
access token either way, so a large min_validity is also what sends every run to the
token endpoint.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import time

import pytest
from conftest import assert_failure, run, skewed_clock
from faultproxy import Fault
from services import MINTED_SECRETS

from credhelper import jwt

from .conftest import SVC_SECRET, desktop_env
from .idpkit import IdP, sign_in
from .test_oidc import interactive
from .test_oidc_faults import (  # noqa: F401  (fixtures: this module's own rig)
    DISCOVERY,
    SHORT_TTL,
    TOKEN,
    cold,
    expect_token,
    proxy,
    rig,
    served_from_cache,
    timed,
)

HELPER = ["credhelper-azure"]


def azure_env(base_env, server: IdP, keyring, tmp_path) -> dict:
    """A person's background runs against ``server``, MSAL's cache in the keyring, signed
    out (the keyring outlives a test)."""
    env = desktop_env(base_env, server, tmp_path)
    env.update({
        "DBUS_SESSION_BUS_ADDRESS": keyring["DBUS_SESSION_BUS_ADDRESS"],
        "XDG_RUNTIME_DIR": keyring["XDG_RUNTIME_DIR"],
        "CREDHELPER_AZURE_AUTHORITY": server.issuer,
        "CREDHELPER_AZURE_CLIENT_ID": "cli",
        "CREDHELPER_AZURE_SCOPES": "gateway",
        "CLAUDE_HELPER_CONTEXT": "background",
    })
    for client in ("cli", "cli-short"):
        out = run([*HELPER, "logout"], {**env, "CREDHELPER_AZURE_CLIENT_ID": client})
        assert out.returncode == 0, out.stderr
    return env


@pytest.fixture
def env(base_env, rig, proxy, keyring_session, tmp_path):
    return azure_env(base_env, rig.server, keyring_session, tmp_path)


# ---------------------------------------------------------------- helpers


def entry_file(env) -> str:
    [path] = glob.glob(os.path.join(env["CREDHELPER_CACHE_DIR"], "azure-*.v1.json"))
    return path


def signed_in(env, server: IdP) -> tuple[str, str, bytes]:
    """A device code sign-in: (the token, its cache entry file, that file's bytes)."""
    token = expect_token(sign_in(HELPER, interactive(env), server))
    MINTED_SECRETS.add(token)  # from now on, checked in every run's stderr and log file
    path = entry_file(env)
    with open(path, "rb") as f:
        data = f.read()
    assert json.loads(data)["token"] == token
    return token, path, data


def due(env) -> dict:
    """The cached credential (1 h) stays valid but is due for renewal, and so is MSAL's
    cached access token: min_validity 2 h."""
    return {**env, "CREDHELPER_AZURE_MIN_VALIDITY": "2h"}


def renewed(proc, old: str) -> str:
    token = expect_token(proc)
    assert token != old and jwt.decode(token)[1]["sub"] == "alice"
    MINTED_SECRETS.add(token)
    return token


# ---------------------------------------------------------------- 1. provider stopped


def test_a_stopped_provider_exits_4_at_once_or_serves_the_cached_token(
        base_env, keyring_session, tmp_path):
    workdir = tmp_path / "idp"
    workdir.mkdir()
    server = IdP(workdir, SVC_SECRET)
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"cannot start the OpenID provider: {exc}")
    try:
        env = azure_env(base_env, server, keyring_session, tmp_path)
        token, path, data = signed_in(env, server)
    finally:
        server.stop()

    proc, elapsed = timed(HELPER, cold(due(env), tmp_path))
    assert_failure(proc, 4, "cannot reach", server.issuer)
    assert elapsed < 5.0, elapsed  # refused at once: no waiting out the 30 s deadline
    proc, elapsed = timed(HELPER, due(env))
    served_from_cache(proc, token, path, data, "cannot reach")
    assert elapsed < 5.0, elapsed


# ---------------------------------------------------------------- 2. never answers


@pytest.mark.parametrize("where", [DISCOVERY, TOKEN])
def test_a_provider_that_never_answers_exits_4_by_the_deadline(env, rig, proxy, tmp_path, where):
    env = {**env, "CREDHELPER_AZURE_TIMEOUT": "3s"}
    token, path, data = signed_in(env, rig.server)
    proxy.reset()

    # MSAL's own request bounded by what is left of the deadline: "no answer from <the
    # authority>". (The core's watchdog, which abandons a fetch 1 s past the deadline,
    # would say "no answer from Azure AD <authority> (client cli) within the 3s deadline".)
    proxy.plan(Fault.hang(), match=where)
    proc, elapsed = timed(HELPER, cold(due(env), tmp_path))
    assert_failure(proc, 4, f"no answer from {rig.server.issuer} within the deadline")
    assert elapsed < 8.0, elapsed
    assert proxy.outcomes(where) == ["hang"]

    proxy.plan(Fault.hang(), match=where)
    proc, elapsed = timed(HELPER, due(env))
    served_from_cache(proc, token, path, data, f"no answer from {rig.server.issuer}")
    assert elapsed < 8.0, elapsed


# ---------------------------------------------------------------- 3. 5xx


@pytest.mark.parametrize("where, status", [(DISCOVERY, 503), (TOKEN, 502)])
def test_a_5xx_then_an_answer_is_retried(env, rig, proxy, tmp_path, where, status):
    # MSAL would turn a 5xx into an MsalServiceError (no status, no retry) and its
    # throttling would replay it to a retry in the same process. A 502/503 means the
    # request was not carried out: retried, it renews with the same refresh token.
    token, _, _ = signed_in(env, rig.server)
    proxy.reset()
    proxy.plan(Fault.status(status), match=where)
    fresh = cold(due(env), tmp_path)
    new = renewed(run(HELPER, fresh), token)
    assert proxy.outcomes(where) == [f"injected {status}", "forwarded 200"]
    with open(entry_file(fresh)) as f:
        assert json.load(f)["token"] == new


def test_a_500_on_a_refresh_is_not_retried_and_the_refresh_token_survives(env, rig, proxy,
                                                                         tmp_path):
    token, path, data = signed_in(env, rig.server)
    refreshes = rig.server.refreshes()
    proxy.reset()

    # A 500 may mean the provider spent the refresh token: one POST, never a second.
    proxy.plan(Fault.status(500), match=TOKEN)
    served_from_cache(run(HELPER, due(env)), token, path, data, "HTTP 500")
    assert proxy.outcomes(TOKEN) == ["injected 500"]

    proxy.plan(Fault.status(500), match=TOKEN)
    assert_failure(run(HELPER, cold(due(env), tmp_path)), 4, "HTTP 500", f"POST /idp{TOKEN}")
    assert proxy.outcomes(TOKEN) == ["injected 500"] * 2

    # The saved sign-in was not lost: the next run still renews silently.
    renewed(run(HELPER, due(env)), token)
    assert proxy.outcomes(TOKEN) == ["injected 500"] * 2 + ["forwarded 200"]
    assert rig.server.refreshes() == refreshes + 1


# ---------------------------------------------------------------- 4. 429 Retry-After


def test_a_retry_after_within_the_deadline_is_obeyed(env, rig, proxy, tmp_path):
    token, _, _ = signed_in(env, rig.server)
    proxy.reset()
    proxy.plan(Fault.status(429, retry_after="1"), match=TOKEN)
    proc, elapsed = timed(HELPER, cold(due(env), tmp_path))
    renewed(proc, token)
    # Two real requests: MSAL's ThrottledHttpClient, which remembers a 429 for its
    # Retry-After within a process, never saw this one.
    assert proxy.outcomes(TOKEN) == ["injected 429", "forwarded 200"]
    first, second = proxy.arrived(TOKEN)
    assert second - first >= 1.0, second - first  # not the 0.25 s default back-off
    assert elapsed >= 1.0


def test_a_retry_after_past_the_deadline_fails_at_once(env, rig, proxy, tmp_path):
    env = {**env, "CREDHELPER_AZURE_TIMEOUT": "5s"}
    token, path, data = signed_in(env, rig.server)
    proxy.reset()

    proxy.plan(Fault.status(429, retry_after="120"), match=TOKEN)
    proc, elapsed = timed(HELPER, cold(due(env), tmp_path))
    assert_failure(proc, 4, "HTTP 429", "asks to retry after 120")
    assert elapsed < 4.5, elapsed  # gave up at once instead of sleeping to the deadline
    assert proxy.outcomes(TOKEN) == ["injected 429"]

    proxy.plan(Fault.status(429, retry_after="120"), match=TOKEN)
    proc, elapsed = timed(HELPER, due(env))
    served_from_cache(proc, token, path, data, "HTTP 429", "asks to retry after 120")
    assert elapsed < 4.5, elapsed


# ---------------------------------------------------------------- 5. TLS
# A certificate from a CA the helper does not trust: test_azure.py::test_the_wrong_ca_exits_4.


def test_an_expired_certificate_exits_4_and_says_so(env, rig, proxy, tmp_path):
    token, path, data = signed_in(env, rig.server)
    proxy.reset()
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    expired = rig.server.ca.issue_cert("127.0.0.1", "localhost",
                                       not_before=now - datetime.timedelta(days=30),
                                       not_after=now - datetime.timedelta(days=1))
    context = proxy.server.socket.context  # each new connection takes the current certificate
    expired.configure_cert(context)
    try:
        assert_failure(run(HELPER, cold(due(env), tmp_path)), 4,
                       "the server's certificate has expired", rig.server.issuer)
        served_from_cache(run(HELPER, due(env)), token, path, data,
                          "the server's certificate has expired")
    finally:
        rig.cert.configure_cert(context)
    assert proxy.seen == []  # no request got past the handshake
    renewed(run(HELPER, due(env)), token)


# ---------------------------------------------------------------- 6. clock skew


# MSAL's cached access token (1 h, cached by the sign-in on the right clock) as the
# skewed helper sees it: 2 h ahead, already expired, so MSAL refreshes on its own; 2 h
# behind, 3 h left, so a min_validity of 4 h makes the run refresh. (The sign-in itself
# is not run on a skewed clock: libfaketime breaks Python's time.sleep, which MSAL's
# device code polling uses.)
@pytest.mark.parametrize("offset, seconds, min_validity",
                         [("+2h", 7200, "5m"), ("-2h", -7200, "4h")])
def test_a_skewed_clock_counts_the_lifetime_from_its_own_now(env, rig, proxy, tmp_path,
                                                           offset, seconds, min_validity):
    token, _, _ = signed_in(env, rig.server)
    refreshes = rig.server.refreshes()
    skewed = cold(skewed_clock({**env, "CREDHELPER_AZURE_MIN_VALIDITY": min_validity},
                               offset), tmp_path)
    before = time.time()
    proc = run(HELPER, skewed)
    after = time.time()
    new = renewed(proc, token)
    assert rig.server.refreshes() == refreshes + 1
    claims = jwt.decode(new)[1]
    lifetime = claims["exp"] - claims["iat"]
    assert lifetime == 3600
    with open(entry_file(skewed)) as f:
        entry = json.load(f)
    assert entry["token"] == new
    # On the helper's clock: its now plus the token's lifetime, not the issuer's exp.
    assert before + seconds + lifetime - 2 <= entry["expires_at"] <= after + seconds + lifetime + 2, (
        entry["expires_at"] - before - seconds - lifetime)
    warnings = [ln for ln in proc.stderr.splitlines() if ": warning: " in ln]
    assert any("clock" in w and ("ahead of" if seconds > 0 else "behind") in w
               for w in warnings), proc.stderr


# ---------------------------------------------------------------- 7. dies on the way


def short(env) -> dict:
    return {**env, "CREDHELPER_AZURE_CLIENT_ID": "cli-short", "CREDHELPER_AZURE_TIMEOUT": "20s"}


def test_a_token_dead_on_arrival_is_never_printed(env, rig, proxy):
    env = short(env)
    token, path, data = signed_in(env, rig.server)
    assert jwt.decode(token)[1]["exp"] - jwt.decode(token)[1]["iat"] == SHORT_TTL
    proxy.reset()

    # The refresh answer is held longer than the token lives: it arrives already expired.
    # No refetch (see test_oidc_faults.py): exit 4, nothing dead on stdout or in the cache.
    proxy.plan(Fault.late(SHORT_TTL + 1.5), match=TOKEN)
    proc = run(HELPER, {**env, "CREDHELPER_AZURE_MIN_VALIDITY": "1m"})
    assert_failure(proc, 4, "it arrived expired")
    assert proxy.outcomes(TOKEN) == ["forwarded 200"]  # one request, no refetch
    with open(path, "rb") as f:
        assert f.read() == data, "the dead token replaced the cached entry"

    # MSAL keeps the dead token (its expires_in counted from the arrival): the next run
    # must not be served it. The refresh token that came with it renews.
    proc = run(HELPER, {**env, "CREDHELPER_AZURE_MIN_VALIDITY": "1s"})
    new = renewed(proc, token)
    assert jwt.decode(new)[1]["exp"] > time.time()
    assert proxy.outcomes(TOKEN) == ["forwarded 200"] * 2


def test_a_token_that_arrives_short_of_min_validity_is_printed_with_a_warning(env, rig, proxy):
    env = short(env)
    token, _, _ = signed_in(env, rig.server)
    proxy.reset()
    # The sign-in's 5 s token is short of min_validity (300 s): a refresh, answered late.
    proxy.plan(Fault.late(2.0), match=TOKEN)
    proc = run(HELPER, env)
    new = renewed(proc, token)
    assert proxy.outcomes(TOKEN) == ["forwarded 200"]
    assert "warning: the new credential is valid for only" in proc.stderr
    assert "less than min_validity (300s)" in proc.stderr
    claims = jwt.decode(new)[1]
    with open(entry_file(env)) as f:
        expires_at = json.load(f)["expires_at"]
    # Counted from when the request was sent (at most 1 s after iat, which is whole
    # seconds), not from when the answer arrived 2 s later.
    assert claims["exp"] - 1.0 <= expires_at < claims["exp"] + 1.5, expires_at - claims["exp"]
