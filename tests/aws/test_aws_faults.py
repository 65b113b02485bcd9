"""The fault matrix of the AWS backend: what a run does when AWS misbehaves.

Every run goes to the real moto server through a FaultProxy (tests/faultproxy.py) that
forwards unchanged unless a fault is queued. What is real and what is injected:

1. endpoint stopped: real. The proxy is stopped, so nothing listens on the endpoint's
   port: exit 4 at once; with a still-valid cached token, that token and a warning.
2. accepting connections but never answering: injected (``Fault.hang``): exit 4 by the
   run's deadline (3 s), or the cached token.
3. 5xx then success: injected 503 (STS's XML error) and 502 (an HTML page, as a load
   balancer sends it), then forwarded to moto: the retry succeeds within the deadline.
   The same for Secrets Manager with its JSON errors (500, 503).
4. throttling with Retry-After: injected STS ``Throttling`` (400, XML) with a
   Retry-After header, then forwarded: "1" is obeyed; "120" with a 5 s deadline gives up
   at once (exit 4, or the cached token). Throttling without Retry-After past the
   deadline: test_aws_errors_and_cache.py.
5. TLS: the proxy presents a certificate from a CA the helper trusts (AWS_CA_BUNDLE),
   then, on the same address, an EXPIRED (or not yet valid) one from that CA: a real TLS
   failure, exit 4 naming the expiry. An untrusted CA (a TLS moto server):
   test_untrusted_certificate_exits_4 in test_aws_transport.py.
6. clock skew: the helper's wall clock is moved with libfaketime (``skewed_clock``); moto
   does not check request times, so the presigned token is still produced, and its cache
   expiry is the helper's clock plus the lifetime. ``credhelper doctor`` measures the
   skew against the Date header of the STS answer. What real STS answers to a request
   signed with a clock off by more than 15 minutes (403 ``SignatureDoesNotMatch``,
   "Signature expired: ..." / "Signature not yet current: ..."; Secrets Manager: 400
   ``InvalidSignatureException``) is injected, with the request's real timestamps: exit 4
   with a line that says the clock is off and how to fix it.
7. credentials that expire during the run: STS ``ExpiredToken`` is injected on the first
   call, then forwarded. Static keys from the environment: exit 5 with the renew hint, and
   no stale fallback. Refreshable credentials (a ``credential_process`` profile that hands
   out a new key each time): resolved again once, then the call is retried and succeeds;
   expired again, exit 5. That a token never outlives its signing credentials:
   test_token_expiry_never_outlives_the_signing_credentials (test_aws_errors_and_cache.py).

Every case checks the exit code, stdout (empty, or exactly the credential), one clear
error line on stderr (``assert_failure``), no canary on stderr, and that a still-valid
cached entry survives: one successful run primes the cache, then a run with a
min_validity longer than the token's lifetime (``forced``) must ask AWS while the entry
is still valid, and the entry file is byte for byte the same afterwards.
"""

import datetime
import glob
import json
import os
import re
import sys
import time

import pytest
from conftest import assert_failure, run, skewed_clock
from faultproxy import Fault, FaultProxy

from credhelper.providers import aws_verify

from .helpers import (
    assert_clean,
    assert_stale,
    aws,
    aws_config,
    cache_entries,
    entry_files,
    forced,
    json_error,
    sts_error,
    token_of,
    write,
)

FORWARDED = ("POST", "/", "forwarded 200")


def via(env, proxy, timeout="10s") -> dict:
    env["CREDHELPER_AWS_ENDPOINT_URL"] = proxy.url
    env["CREDHELPER_AWS_TIMEOUT"] = timeout
    return env


def cold(env, tmp_path) -> dict:
    """The same configuration with an empty cache."""
    return dict(env, CREDHELPER_CACHE_DIR=str(tmp_path / "cold-cache"))


def prime(env) -> tuple[str, dict]:
    """One successful run: the token it printed and the entry file it left."""
    token = token_of(aws(env))
    files = entry_files(env)
    assert len(files) == 1 and token in next(iter(files.values())).decode()
    return token, files


def timed(env, *args):
    start = time.monotonic()
    p = aws(env, *args)
    return p, time.monotonic() - start


def stamp(ts: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


# ------------------------------------------------------------------ 1. endpoint stopped


def test_stopped_endpoint_exits_4_at_once_or_serves_the_cached_token(aws_env, fault_proxy, tmp_path):
    env = via(aws_env, fault_proxy)
    token, files = prime(env)
    fault_proxy.stop()  # nothing listens on the endpoint's port any more

    p, elapsed = timed(forced(env))
    assert_stale(p, token, "cannot reach AWS")
    assert elapsed < 6, elapsed
    assert entry_files(env) == files

    p, elapsed = timed(cold(env, tmp_path), "--debug")
    assert_failure(p, 4, "cannot reach AWS", "Could not connect", "hint: check the network")
    assert_clean(p.stderr)
    assert elapsed < 6, elapsed  # two quick reconnects, not the 10 s deadline
    assert not glob.glob(str(tmp_path / "cold-cache" / "aws-*.v1.json"))


# ------------------------------------------------------------------ 2. never answers


def test_hanging_endpoint_exits_4_by_the_deadline_or_serves_the_cached_token(aws_env, fault_proxy, tmp_path):
    env = via(aws_env, fault_proxy, timeout="3s")
    fault_proxy.plan(Fault.hang())
    p, elapsed = timed(cold(env, tmp_path))
    assert_failure(p, 4, "no answer from AWS in time", "timeout")
    assert 2.0 <= elapsed < 8, elapsed
    assert fault_proxy.seen == [("POST", "/", "hang")]

    token, files = prime(env)
    fault_proxy.plan(Fault.hang())
    p, elapsed = timed(forced(env))
    assert_stale(p, token, "no answer from AWS in time")
    assert elapsed < 8, elapsed
    assert entry_files(env) == files
    assert fault_proxy.paths("hang") == ["/", "/"]


# ------------------------------------------------------------------ 3. 5xx, then success


def test_5xx_then_success_within_the_deadline(aws_env, fault_proxy):
    env = via(aws_env, fault_proxy)
    _, files = prime(env)
    fault_proxy.reset()
    fault_proxy.plan(sts_error(503, "ServiceUnavailable", "Service is unavailable. Please try again later."),
                     Fault.status(502, body=b"<html><body>502 Bad Gateway</body></html>",
                                  content_type="text/html"))
    p, elapsed = timed(forced(env), "--debug")
    fresh = token_of(p)
    assert elapsed < 10
    assert fault_proxy.seen == [("POST", "/", "injected 503"), ("POST", "/", "injected 502"), FORWARDED]
    assert "ServiceUnavailable" in p.stderr and "retrying in" in p.stderr
    assert_clean(p.stderr)
    (entry,) = cache_entries(env)  # the entry now holds the new token
    assert entry["token"] == fresh
    assert entry_files(env) != files


def test_secretsmanager_5xx_then_success(aws_env, fault_proxy, admin):
    admin("secretsmanager").create_secret(Name="gateway/faults", SecretString=f"sm-{os.urandom(6).hex()}")
    value = admin("secretsmanager").get_secret_value(SecretId="gateway/faults")["SecretString"]
    env = via(aws_env, fault_proxy)
    env.update(CREDHELPER_AWS_MODE="secretsmanager", CREDHELPER_AWS_SECRET_ID="gateway/faults",
               CREDHELPER_AWS_MAX_AGE="15m")
    fault_proxy.plan(json_error(500, "InternalServiceError", "An error occurred on the server side."),
                     json_error(503, "ServiceUnavailable", "Service unavailable"))
    p = aws(env)
    assert token_of(p) == value
    assert [outcome for _, _, outcome in fault_proxy.seen] == [
        "injected 500", "injected 503", "forwarded 200", "forwarded 200"]  # GetSecretValue, DescribeSecret
    assert p.stderr == ""


# ------------------------------------------------------------------ 4. Retry-After


def test_botocore_exposes_the_retry_after_header(fault_proxy):
    """What the helper's back-off relies on: the header reaches the ClientError."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    fault_proxy.plan(sts_error(400, "Throttling", "Rate exceeded", retry_after="7"))
    sts = boto3.client("sts", endpoint_url=fault_proxy.url, region_name="us-east-1",
                       aws_access_key_id="AKIAFAULTTEST0000000", aws_secret_access_key="fault-test",
                       config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as caught:
        sts.get_caller_identity()
    meta = caught.value.response["ResponseMetadata"]
    assert caught.value.response["Error"]["Code"] == "Throttling"
    assert meta["HTTPHeaders"]["retry-after"] == "7"


def test_retry_after_1_is_obeyed_then_success(aws_env, fault_proxy):
    env = via(aws_env, fault_proxy, timeout="8s")
    token, _ = prime(env)
    fault_proxy.reset()
    fault_proxy.plan(sts_error(400, "Throttling", "Rate exceeded", retry_after="1"))
    p, elapsed = timed(forced(env), "--debug")
    fresh = token_of(p)
    assert elapsed >= 1.0
    assert "retrying in 1.00s (Retry-After)" in p.stderr
    assert fault_proxy.seen == [("POST", "/", "injected 400"), FORWARDED]
    assert cache_entries(env)[0]["token"] == fresh
    assert_clean(p.stderr)


def test_retry_after_past_the_deadline_gives_up_at_once(aws_env, fault_proxy, tmp_path):
    env = via(aws_env, fault_proxy, timeout="5s")
    fault_proxy.plan(sts_error(400, "Throttling", "Rate exceeded", retry_after="120"))
    p, elapsed = timed(cold(env, tmp_path))
    assert_failure(p, 4, "Throttling: Rate exceeded", "it asks to retry after 120s, past this run's "
                   "deadline", "gave up at once", "hint: AWS is throttling")
    assert elapsed < 4, elapsed  # no sleep towards a 120 s pause, no waiting for the deadline
    assert fault_proxy.seen == [("POST", "/", "injected 400")]  # and no second attempt

    token, files = prime(env)
    fault_proxy.plan(sts_error(400, "Throttling", "Rate exceeded", retry_after="120"))
    p, elapsed = timed(forced(env))
    assert_stale(p, token, "Throttling", "retry after 120s")
    assert elapsed < 4, elapsed
    assert entry_files(env) == files


# ------------------------------------------------------------------ 5. TLS


@pytest.fixture
def tls_proxy(moto, tmp_path):
    """A TLS FaultProxy with a certificate from a test CA, and that CA's file.
    ``proxy.present(not_before=, not_after=)`` switches it, on the same address, to
    another certificate from that CA (new connections get the context's current one)."""
    import trustme

    ca = trustme.CA()
    ca_file = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    proxy = FaultProxy(moto.url, tls=ca.issue_cert("127.0.0.1")).start()

    def present(**dates):
        ca.issue_cert("127.0.0.1", **dates).configure_cert(proxy.server.socket.context)

    proxy.present = present
    yield proxy, ca_file
    proxy.stop()


DAY = datetime.timedelta(days=1)


@pytest.mark.parametrize("dates,reason,hint", [
    (lambda now: {"not_before": now - 30 * DAY, "not_after": now - DAY},
     "the server's certificate has expired", "its operator must renew the certificate"),
    (lambda now: {"not_before": now + DAY, "not_after": now + 30 * DAY},
     "the server's certificate is not yet valid", "check this machine's clock"),
], ids=["expired", "not-yet-valid"])
def test_server_certificate_out_of_its_dates_exits_4_and_says_so(aws_env, tls_proxy, tmp_path,
                                                                 dates, reason, hint):
    proxy, ca_file = tls_proxy
    env = via(aws_env, proxy)
    env["AWS_CA_BUNDLE"] = ca_file  # the CA is trusted: only the dates are wrong
    token, files = prime(env)  # the same address with a valid certificate
    proxy.present(**dates(datetime.datetime.now(datetime.timezone.utc)))

    p = aws(forced(env))
    assert_stale(p, token, reason)
    assert entry_files(env) == files

    p = aws(cold(env, tmp_path))
    assert_failure(p, 4, "TLS to https://127.0.0.1", f"failed: {reason}", f"hint: {hint}")
    assert "AWS_CA_BUNDLE" not in p.stderr  # the trust store is not the problem here
    assert proxy.seen == [FORWARDED]  # nothing got through the failed handshakes


# ------------------------------------------------------------------ 6. clock skew


@pytest.mark.parametrize("offset,seconds", [("+10m", 600), ("-10m", -600)])
def test_skewed_clock_still_gets_a_token_with_an_unshifted_expiry(aws_env, fault_proxy, offset, seconds):
    env = skewed_clock(via(aws_env, fault_proxy), offset)
    before = time.time()
    p = aws(env)
    token = token_of(p)
    after = time.time()
    assert p.stderr == ""
    assert fault_proxy.seen == [FORWARDED]  # moto answered: it does not check request times
    d = aws_verify.decode(token, now=before + seconds, allowed_endpoints=[fault_proxy.url])
    # signed with the helper's clock ...
    assert before + seconds - 2 <= d.signed_at <= after + seconds + 1
    (entry,) = cache_entries(env)
    # ... and cached until the helper's clock plus the lifetime: nothing shifted twice
    assert before + seconds - 1 <= entry["fetched_at"] <= after + seconds + 1
    assert abs(entry["expires_at"] - (entry["fetched_at"] + 900)) <= 2
    assert abs(entry["expires_at"] - (d.signed_at + 900)) <= 2

    p = run(["credhelper", "doctor", "--provider", "aws", "--json"], env)
    report = json.loads(p.stdout)
    (check,) = [c for s in report["sections"] for c in s["checks"]
                if c["check"] == "clock skew" and "against STS" in c["detail"]]
    assert check["status"] == "fail", check  # 10 min: beyond what signed requests tolerate
    measured = float(check["detail"].split("s against STS")[0])
    assert abs(measured - seconds) <= 5, check
    assert "fix the clock" in check["detail"]
    assert_clean(p.stdout.decode(), p.stderr)


def assert_skew_said(stderr: str, seconds: int) -> None:
    """The message measured the skew from the Date of AWS's answer."""
    found = re.search(r"clock is off \(about (\d+)s (ahead of|behind) AWS\)", stderr)
    assert found, stderr
    assert abs(int(found.group(1)) - abs(seconds)) <= 5, stderr
    assert found.group(2) == ("ahead of" if seconds > 0 else "behind"), stderr


def _signature_expired(helper_time: float, now: float) -> str:
    return (f"Signature expired: {stamp(helper_time)} is now earlier than {stamp(now - 900)} "
            f"({stamp(now)} - 15 min.)")


def _signature_not_yet_current(helper_time: float, now: float) -> str:
    return (f"Signature not yet current: {stamp(helper_time)} is still later than "
            f"{stamp(now + 900)} ({stamp(now)} + 15 min.)")


@pytest.mark.parametrize("offset,seconds,message", [
    ("-20m", -1200, _signature_expired),
    ("+20m", 1200, _signature_not_yet_current),
])
def test_sts_refusing_a_skewed_request_says_the_clock_is_off(aws_env, fault_proxy, tmp_path,
                                                              offset, seconds, message):
    """What STS answers to a request whose X-Amz-Date is more than 15 minutes off.
    Exit 4, not 5: AWS rejected the request's time, not the credentials (see
    providers/aws.py), so a cached token that is still valid may be served."""
    env = skewed_clock(via(aws_env, fault_proxy), offset)
    now = time.time()
    fault_proxy.plan(sts_error(403, "SignatureDoesNotMatch", message(now + seconds, now)))
    p = aws(cold(env, tmp_path))
    assert_failure(p, 4, "this machine's clock is off", "SignatureDoesNotMatch",
                   message(0, 0).split(":")[0], "hint: fix the system clock")
    assert_skew_said(p.stderr, seconds)
    assert_clean(p.stderr)

    token, files = prime(env)
    fault_proxy.plan(sts_error(403, "SignatureDoesNotMatch", message(time.time() + seconds, time.time())))
    p = aws(forced(env))
    assert_stale(p, token, "this machine's clock is off")
    assert_skew_said(p.stderr, seconds)
    assert entry_files(env) == files


def test_secretsmanager_refusing_a_skewed_request_says_the_clock_is_off(aws_env, fault_proxy, admin,
                                                                        tmp_path):
    """The JSON protocol's form of the same answer: 400 InvalidSignatureException."""
    admin("secretsmanager").create_secret(Name="gateway/skew", SecretString="skew-secret-value")
    env = skewed_clock(via(aws_env, fault_proxy), "-20m")
    env.update(CREDHELPER_AWS_MODE="secretsmanager", CREDHELPER_AWS_SECRET_ID="gateway/skew",
               CREDHELPER_AWS_MAX_AGE="15m")
    now = time.time()
    fault_proxy.plan(json_error(400, "InvalidSignatureException", _signature_expired(now - 1200, now)))
    p = aws(cold(env, tmp_path))
    assert_failure(p, 4, "InvalidSignatureException", "this machine's clock is off",
                   "hint: fix the system clock")
    assert_skew_said(p.stderr, -1200)
    assert "skew-secret-value" not in p.stderr
    assert_clean(p.stderr)

    assert prime(env)[0] == "skew-secret-value"
    files = entry_files(env)
    fault_proxy.plan(json_error(400, "InvalidSignatureException", _signature_expired(now - 1200, now)))
    p = aws(forced(env))
    assert_stale(p, "skew-secret-value", "this machine's clock is off")
    assert entry_files(env) == files


# ------------------------------------------------------------------ 7. expiring credentials


EXPIRED = ("ExpiredToken", "The security token included in the request is expired")


def test_expired_static_keys_exit_5_without_stale_fallback(aws_env, fault_proxy):
    env = via(aws_env, fault_proxy)
    _, files = prime(env)
    fault_proxy.reset()
    fault_proxy.plan(sts_error(403, *EXPIRED))
    p = aws(forced(env))
    assert_failure(p, 5, "ExpiredToken", "hint: the session token in the environment has expired")
    assert "serving the cached credential" not in p.stderr
    assert fault_proxy.seen == [("POST", "/", "injected 403")]  # the same keys are not tried again
    assert entry_files(env) == files


@pytest.fixture
def process_profile(aws_env, fault_proxy, tmp_path):
    """A credential_process profile that hands out a new access key on every call (what
    an SSO or vault-backed process does once the old session is gone). Returns the env
    and a function listing the keys handed out so far."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        aws_env.pop(name, None)
    counter = tmp_path / "process-calls"
    script = write(str(tmp_path / "rotating.py"), (
        "import json\n"
        f"path = {str(counter)!r}\n"
        "try:\n    n = len(open(path).read().split())\nexcept FileNotFoundError:\n    n = 0\n"
        "key = 'ASIAROTATING%08d' % (n + 1)\n"
        "open(path, 'a').write(key + '\\n')\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': key, 'SecretAccessKey': 'rotating-secret',"
        " 'SessionToken': 'rotating-session-%d' % (n + 1), 'Expiration': '2099-01-01T00:00:00Z'}))\n"))
    aws_config(aws_env, f"[profile rotating]\ncredential_process = {sys.executable} {script}\n")
    aws_env["AWS_PROFILE"] = "rotating"
    env = via(aws_env, fault_proxy)

    def keys() -> list[str]:
        return counter.read_text().split() if counter.exists() else []

    return env, keys


def test_refreshable_credentials_expired_mid_run_are_resolved_again_once(process_profile, fault_proxy):
    env, keys = process_profile
    _, files = prime(env)
    assert keys() == ["ASIAROTATING00000001"]
    fault_proxy.reset()
    fault_proxy.plan(sts_error(403, *EXPIRED))
    p = aws(forced(env), "--debug")
    token = token_of(p)
    assert fault_proxy.seen == [("POST", "/", "injected 403"), FORWARDED]
    assert keys() == ["ASIAROTATING00000001", "ASIAROTATING00000002", "ASIAROTATING00000003"]
    assert "resolving the AWS credentials again" in p.stderr
    signed = aws_verify.decode(token, allowed_endpoints=[fault_proxy.url])
    assert signed.access_key_id == "ASIAROTATING00000003"  # signed with the new credentials
    assert cache_entries(env)[0]["token"] == token
    assert entry_files(env) != files
    assert "rotating-secret" not in p.stderr and "rotating-session" not in p.stderr


def test_refreshable_credentials_expired_again_exit_5(process_profile, fault_proxy):
    env, keys = process_profile
    _, files = prime(env)
    fault_proxy.reset()
    fault_proxy.plan(sts_error(403, *EXPIRED), sts_error(403, *EXPIRED))
    p = aws(forced(env))
    assert_failure(p, 5, "ExpiredToken", "hint: renew the credentials of profile 'rotating'")
    assert fault_proxy.seen == [("POST", "/", "injected 403")] * 2  # one retry, not a loop
    assert len(keys()) == 3  # the prime, the run, its one refresh
    assert entry_files(env) == files
    assert "serving the cached credential" not in p.stderr
