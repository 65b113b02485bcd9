"""Exit codes for refusals and outages, and the cache in front of AWS.

Refusals come from moto itself with its IAM enforcement switched on (unknown keys,
a user without permission). Throttling and an expired session token are answered by the
test proxy with STS's error shape, since moto never throttles and checks no expiry.
"""

import subprocess
import sys
import time

from conftest import assert_failure
from motoserver import free_port

from .conftest import ACCOUNT
from .helpers import assert_clean, aws, cache_entries, token_of


def test_unknown_keys_are_refused_with_exit_5(aws_env, moto):
    moto.require_auth(True)
    p = aws(aws_env)
    assert_failure(p, 5, "InvalidClientTokenId", "IAM policy")
    assert_clean(p.stderr)


def test_missing_permission_is_refused_with_exit_5(aws_env, moto, admin, iam_user):
    admin("secretsmanager").create_secret(Name="gateway/locked", SecretString="locked-value")
    _, key, secret = iam_user("frank")  # no policy at all
    aws_env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
                   CREDHELPER_AWS_MODE="secretsmanager", CREDHELPER_AWS_SECRET_ID="gateway/locked")
    del aws_env["AWS_SESSION_TOKEN"]
    moto.require_auth(True)
    p = aws(aws_env, "--debug")
    assert_failure(p, 5, "AccessDenied", "frank")
    assert secret not in p.stderr and "locked-value" not in p.stderr


def test_expired_session_token_exits_5(aws_env, sts_proxy):
    sts_proxy.fail = (403, "ExpiredToken")
    p = aws(aws_env, "--debug")
    assert_failure(p, 5, "ExpiredToken", "session token in the environment has expired")
    assert_clean(p.stderr)


def test_no_credentials_anywhere_exits_5(aws_env, sts_proxy):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        del aws_env[name]
    p = aws(aws_env)
    assert_failure(p, 5, "no AWS credentials found", "AWS_PROFILE")
    assert sts_proxy.calls == []


def test_unreachable_endpoint_exits_4_within_the_deadline(aws_env):
    aws_env["CREDHELPER_AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    aws_env["CREDHELPER_AWS_TIMEOUT"] = "5s"
    start = time.monotonic()
    p = aws(aws_env, "--debug")
    assert time.monotonic() - start < 8
    assert_failure(p, 4, "cannot reach AWS", "endpoint_url")
    assert_clean(p.stderr)


def test_throttling_past_the_deadline_exits_4(aws_env, sts_proxy):
    sts_proxy.fail = (400, "Throttling")
    aws_env["CREDHELPER_AWS_TIMEOUT"] = "3s"
    start = time.monotonic()
    p = aws(aws_env, "--debug")
    elapsed = time.monotonic() - start
    assert_failure(p, 4, "Throttling", "gave up at the deadline")
    assert 1.5 < elapsed < 6  # retried while time was left, stopped at the deadline
    assert len(sts_proxy.calls) >= 2


def test_second_run_is_a_cache_hit_without_any_aws_call(aws_env, sts_proxy):
    first = token_of(aws(aws_env))
    calls = sts_proxy.actions()
    assert calls == ["GetCallerIdentity"]
    p = aws(aws_env, "--debug")
    assert token_of(p) == first
    assert "cache hit" in p.stderr
    assert sts_proxy.actions() == calls  # no second backend call
    from conftest import run

    p = run(["credhelper", "get", "--provider", "aws"], aws_env)  # the umbrella shares it
    assert token_of(p) == first
    assert sts_proxy.actions() == calls


def test_cache_hit_does_not_import_botocore(aws_env, tmp_path):
    token = token_of(aws(aws_env))
    probe = ("import io, sys\n"
             "from credhelper.run import helper_main\n"
             "out = io.StringIO()\n"
             "code = helper_main('aws', [], stdout=out, stderr=sys.stderr)\n"
             "sys.stderr.write(repr((code, out.getvalue() == sys.argv[1] + '\\n', sorted(m for m in"
             " sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'click')))))\n")
    p = subprocess.run([sys.executable, "-c", probe, token], env=aws_env, capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert p.stdout == ""
    assert p.stderr.strip() == "(0, True, [])", p.stderr


def test_renewed_when_less_than_min_validity_is_left(aws_env, sts_proxy):
    aws_env["CREDHELPER_AWS_PRESIGN_LIFETIME"] = "60s"
    aws_env["CREDHELPER_AWS_MIN_VALIDITY"] = "58s"
    first = token_of(aws(aws_env))
    time.sleep(2.1)
    second = token_of(aws(aws_env))
    assert second != first
    assert sts_proxy.actions() == ["GetCallerIdentity", "GetCallerIdentity"]
    (entry,) = cache_entries(aws_env)
    assert 59 <= entry["expires_at"] - entry["fetched_at"] <= 60.5


def test_token_expiry_never_outlives_the_signing_credentials(aws_env, sts_proxy):
    """Role credentials that expire first cap the presigned token's expiry."""
    aws_env["CREDHELPER_AWS_ROLE_ARN"] = f"arn:aws:iam::{ACCOUNT}:role/short"
    aws_env["CREDHELPER_AWS_ROLE_DURATION"] = "15m"
    aws_env["CREDHELPER_AWS_PRESIGN_LIFETIME"] = "15m"
    token_of(aws(aws_env))
    (entry,) = cache_entries(aws_env)
    assert entry["expires_at"] <= entry["fetched_at"] + 900.5
    assert "credentials_expire" in entry["details"]


def test_stale_token_is_served_while_aws_is_throttling(aws_env, sts_proxy):
    aws_env["CREDHELPER_AWS_PRESIGN_LIFETIME"] = "60s"
    aws_env["CREDHELPER_AWS_MIN_VALIDITY"] = "58s"
    aws_env["CREDHELPER_AWS_TIMEOUT"] = "2s"
    first = token_of(aws(aws_env))
    time.sleep(2.1)
    sts_proxy.fail = (400, "Throttling")
    p = aws(aws_env)
    assert token_of(p) == first
    assert "serving the cached credential" in p.stderr


def test_configuration_errors_exit_2(aws_env):
    cases = [
        ({"CREDHELPER_AWS_AUDIENCE": ""}, "audience"),
        ({"CREDHELPER_AWS_AUDIENCE": "one two"}, "exactly one audience"),
        ({"CREDHELPER_AWS_PRESIGN_LIFETIME": "1h"}, "PRESIGN_LIFETIME (environment): must be"),
        ({"CREDHELPER_AWS_MODE": "secretsmanager"}, "secret_id"),
        ({"CREDHELPER_AWS_MODE": "kms"}, "not one of"),
        ({"CREDHELPER_AWS_ENDPOINT_URL": "http://sts.example.com"}, "plain http"),
        ({"CREDHELPER_AWS_ROLE_SESSION_NAME": "has space"}, "ROLE_SESSION_NAME (environment): 2 to 64"),
    ]
    for changes, phrase in cases:
        env = dict(aws_env, **changes)
        if changes.get("CREDHELPER_AWS_AUDIENCE") == "":
            del env["CREDHELPER_AWS_AUDIENCE"]
        assert_failure(aws(env), 2, phrase)


def test_debug_output_of_every_mode_is_free_of_secrets(aws_env, admin, tmp_path):
    admin("secretsmanager").create_secret(Name="gateway/dbg", SecretString="dbg-secret-value")
    for mode in ("presigned-identity", "web-identity-token", "secretsmanager"):
        env = dict(aws_env, CREDHELPER_AWS_MODE=mode, CREDHELPER_AWS_SECRET_ID="gateway/dbg",
                   CREDHELPER_AWS_MAX_AGE="5m", CREDHELPER_AWS_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/dbg",
                   CREDHELPER_CACHE_DIR=str(tmp_path / f"cache-{mode}"))
        p = aws(env, "--debug")
        token = token_of(p)
        assert token not in p.stderr and "dbg-secret-value" not in p.stderr
        assert_clean(p.stderr)


def test_concurrent_cold_runs_make_one_aws_call(aws_env, sts_proxy):
    from conftest import script

    procs = [subprocess.Popen([script("credhelper-aws")], env=aws_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL) for _ in range(4)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outputs]
    assert len({out for out, _ in outputs}) == 1 and outputs[0][0].endswith(b"\n")
    assert outputs[0][0].count(b"\n") == 1
    assert sts_proxy.actions() == ["GetCallerIdentity"]
