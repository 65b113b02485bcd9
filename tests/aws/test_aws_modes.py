"""The three modes of credhelper-aws against a real moto server.

presigned-identity and secretsmanager are served by moto itself. web-identity-token is
not: moto does not implement STS GetWebIdentityToken (it answers HTTP 500), so that call
is answered by the test proxy's stub with AWS's documented response shape
(``WebIdentityToken`` and ``Expiration`` in a GetWebIdentityTokenResponse); everything
around it (credentials, signing, the assume-role hop) is real.
"""

import json
import time

from credhelper import jwt
from credhelper.providers import aws_verify

from .conftest import ACCOUNT, AUDIENCE, SESSION_CANARY
from .helpers import assert_clean, aws, cache_entries, token_of


def test_presigned_identity_token(aws_env, sts_proxy, iam_user):
    arn, key_id, secret = iam_user("alice")
    aws_env.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    del aws_env["AWS_SESSION_TOKEN"]
    before = time.time()
    p = aws(aws_env, "--debug")
    token = token_of(p)
    assert_clean(p.stderr)
    assert secret not in p.stderr and secret not in token

    d = aws_verify.decode(token, allowed_endpoints=[sts_proxy.url])
    assert d.audience == AUDIENCE
    assert d.signed_headers == ["host", aws_verify.AUDIENCE_HEADER]
    assert d.access_key_id == key_id and d.region == "us-east-1"
    assert d.params["Action"] == "GetCallerIdentity"
    assert d.params["X-Amz-Expires"] == "900"
    assert "X-Amz-Security-Token" not in d.params  # long-term keys carry none
    assert before - 1 <= d.signed_at <= time.time() + 1
    # verify = true (default): the keys were checked with STS before printing
    assert sts_proxy.actions() == ["GetCallerIdentity"]
    (entry,) = cache_entries(aws_env)
    assert entry["details"]["caller"] == arn and entry["details"]["account"] == ACCOUNT
    assert abs(entry["expires_at"] - (d.signed_at + 900)) <= 2


def test_presigned_identity_carries_the_session_token(aws_env, sts_proxy):
    aws_env["CREDHELPER_AWS_VERIFY"] = "false"
    aws_env["CREDHELPER_AWS_PRESIGN_LIFETIME"] = "10m"
    aws_env["AWS_DEFAULT_REGION"] = "eu-central-1"  # the backend's variables, as fallbacks
    aws_env["AWS_REGION"] = "ap-southeast-2"  # ... AWS_REGION first
    p = aws(aws_env, "--debug")
    token = token_of(p)
    assert_clean(p.stderr)
    d = aws_verify.decode(token, allowed_endpoints=[sts_proxy.url])
    assert d.params["X-Amz-Security-Token"] == SESSION_CANARY
    assert d.params["X-Amz-Expires"] == "600"
    assert d.region == "ap-southeast-2"
    assert sts_proxy.actions() == []  # signing is offline when verify = false


def test_web_identity_token_from_the_stub(aws_env, sts_proxy):
    aws_env["CREDHELPER_AWS_MODE"] = "web-identity-token"
    aws_env["CREDHELPER_AWS_TOKEN_DURATION"] = "30m"
    aws_env["CREDHELPER_AWS_SIGNING_ALGORITHM"] = "ES384"
    p = aws(aws_env, "--debug")
    token = token_of(p)
    assert_clean(p.stderr)
    header, claims = jwt.decode(token)
    assert claims["aud"] == AUDIENCE
    (call,) = sts_proxy.calls
    assert call["action"] == "GetWebIdentityToken"  # answered by the stub, not moto
    assert call["params"]["Audience.member.1"] == [AUDIENCE]
    assert call["params"]["SigningAlgorithm"] == ["ES384"]
    assert call["params"]["DurationSeconds"] == ["1800"]
    assert aws_env["AWS_ACCESS_KEY_ID"] in call["auth"]  # signed with the chain's keys
    (entry,) = cache_entries(aws_env)
    assert entry["expires_at"] == claims["exp"]  # expiry from the response's Expiration


def test_web_identity_token_after_assume_role(aws_env, sts_proxy):
    aws_env["CREDHELPER_AWS_MODE"] = "web-identity-token"
    aws_env["CREDHELPER_AWS_ROLE_ARN"] = f"arn:aws:iam::{ACCOUNT}:role/token-minter"
    aws_env["CREDHELPER_AWS_AUDIENCE"] = "aud-one aud-two"
    aws_env["CREDHELPER_AWS_ROLE_DURATION"] = "15m"  # shorter than token_duration (1h)
    p = aws(aws_env)
    token = token_of(p)
    assert jwt.decode(token)[1]["aud"] == ["aud-one", "aud-two"]
    assume, minted = sts_proxy.calls
    assert assume["action"] == "AssumeRole" and minted["action"] == "GetWebIdentityToken"
    assert "ASIA" in minted["auth"]  # the role's (moto-issued) temporary keys signed it
    # a JWT may not outlive the session that asks for it
    assert 800 <= int(minted["params"]["DurationSeconds"][0]) <= 900


def test_web_identity_federation_disabled_exits_5_with_the_fix(aws_env, sts_proxy):
    aws_env["CREDHELPER_AWS_MODE"] = "web-identity-token"
    sts_proxy.fail = (403, "OutboundWebIdentityFederationDisabledException")
    p = aws(aws_env)
    from conftest import assert_failure

    assert_failure(p, 5, "OutboundWebIdentityFederationDisabledException",
                   "enable-outbound-web-identity-federation")


def test_secretsmanager_plain_secret(aws_env, admin, sts_proxy):
    admin("secretsmanager").create_secret(Name="gateway/plain", SecretString="sk-plain-value-1")
    aws_env.update(CREDHELPER_AWS_MODE="secretsmanager", CREDHELPER_AWS_SECRET_ID="gateway/plain",
                   CREDHELPER_AWS_MAX_AGE="10m")
    p = aws(aws_env, "--debug")
    assert token_of(p) == "sk-plain-value-1"
    assert "sk-plain-value-1" not in p.stderr
    assert_clean(p.stderr)
    assert sts_proxy.actions() == ["GetSecretValue", "DescribeSecret"]
    (entry,) = cache_entries(aws_env)
    assert 590 <= entry["expires_at"] - entry["fetched_at"] <= 601  # max_age: no rotation


def test_secretsmanager_json_field_and_version_stage(aws_env, admin):
    sm = admin("secretsmanager")
    sm.create_secret(Name="gateway/json", SecretString=json.dumps({"api_key": "old-key", "user": "x"}))
    sm.put_secret_value(SecretId="gateway/json", SecretString=json.dumps({"api_key": "new-key"}))
    aws_env.update(CREDHELPER_AWS_MODE="secretsmanager", CREDHELPER_AWS_SECRET_ID="gateway/json",
                   CREDHELPER_AWS_FIELD="api_key")
    assert token_of(aws(aws_env)) == "new-key"
    aws_env["CREDHELPER_AWS_VERSION_STAGE"] = "AWSPREVIOUS"
    assert token_of(aws(aws_env)) == "old-key"


def test_secretsmanager_expiry_follows_the_rotation_schedule(aws_env, admin):
    sm = admin("secretsmanager")
    sm.create_secret(Name="gateway/rotating", SecretString="rotating-value")
    sm.rotate_secret(SecretId="gateway/rotating", RotationRules={"AutomaticallyAfterDays": 7},
                     RotateImmediately=False)
    next_rotation = sm.describe_secret(SecretId="gateway/rotating")["NextRotationDate"].timestamp()
    aws_env.update(CREDHELPER_AWS_MODE="secretsmanager", CREDHELPER_AWS_SECRET_ID="gateway/rotating")
    assert token_of(aws(aws_env)) == "rotating-value"
    (entry,) = cache_entries(aws_env)
    assert abs(entry["expires_at"] - next_rotation) <= 2
    # max_age shorter than the schedule wins
    aws_env["CREDHELPER_AWS_MAX_AGE"] = "1h"
    token_of(aws(aws_env))
    lifetimes = sorted(e["expires_at"] - e["fetched_at"] for e in cache_entries(aws_env))
    assert 3590 <= lifetimes[0] <= 3601


def test_secretsmanager_without_expiry_is_not_cached(aws_env, admin, sts_proxy):
    admin("secretsmanager").create_secret(Name="gateway/nocache", SecretString="v")
    aws_env.update(CREDHELPER_AWS_MODE="secretsmanager", CREDHELPER_AWS_SECRET_ID="gateway/nocache")
    assert token_of(aws(aws_env)) == "v"
    assert token_of(aws(aws_env)) == "v"
    assert sts_proxy.actions().count("GetSecretValue") == 2
    assert cache_entries(aws_env) == []


def test_secretsmanager_missing_field_and_missing_secret_exit_5(aws_env, admin):
    from conftest import assert_failure

    admin("secretsmanager").create_secret(Name="gateway/obj", SecretString='{"a": "1", "b": "2"}')
    aws_env.update(CREDHELPER_AWS_MODE="secretsmanager", CREDHELPER_AWS_SECRET_ID="gateway/obj",
                   CREDHELPER_AWS_FIELD="token")
    p = aws(aws_env)
    assert_failure(p, 5, "no field 'token'", "its fields: a, b")
    aws_env["CREDHELPER_AWS_SECRET_ID"] = "gateway/absent"
    p = aws(aws_env)
    assert_failure(p, 5, "ResourceNotFoundException", "secret_id")
    assert_clean(p.stderr)


def test_status_and_doctor_show_the_caller_never_a_secret(aws_env, iam_user):
    from conftest import run

    arn, key_id, secret = iam_user("carol")
    aws_env.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    token = token_of(aws(aws_env))
    p = aws(aws_env, "status")
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert arn in out and ACCOUNT in out and "presigned-identity" in out and "expires:" in out
    assert token not in out and secret not in out + p.stderr
    assert_clean(out, p.stderr)
    p = run(["credhelper", "doctor", "--provider", "aws"], aws_env)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr
    assert f"caller: {arn}" in out and "clock skew" in out
    assert token not in out and secret not in out
    assert_clean(out, p.stderr)


def test_status_does_not_probe_aws_when_aws_is_not_configured(base_env):
    env = dict(base_env, AWS_EC2_METADATA_DISABLED="true")
    p = aws(env, "status")
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert "nothing cached" in out and "caller" not in out and "credentials" not in out


def test_doctor_describes_the_secret_without_reading_it(aws_env, admin, sts_proxy):
    from conftest import run

    admin("secretsmanager").create_secret(Name="gateway/doc", SecretString="doctor-must-not-read")
    aws_env.update(CREDHELPER_AWS_MODE="secretsmanager", CREDHELPER_AWS_SECRET_ID="gateway/doc")
    p = run(["credhelper", "doctor", "--provider", "aws"], aws_env)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr
    assert "secret: gateway/doc (no rotation)" in out
    assert "GetSecretValue" not in sts_proxy.actions()
    assert "doctor-must-not-read" not in out + p.stderr
