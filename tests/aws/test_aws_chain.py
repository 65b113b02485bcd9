"""Where the AWS credentials come from: profiles in a temporary ~/.aws, a
credential_process profile, role chains and SSO. All against the real moto server."""

import json
import os
import sys
import time

import pytest
from conftest import assert_failure

from .conftest import ACCOUNT, SECRET_CANARY, SESSION_CANARY
from .helpers import (
    assert_clean,
    aws,
    aws_config,
    aws_credentials,
    cache_entries,
    credhelper_config,
    token_of,
    write,
)


def caller(env) -> str:
    (entry,) = [e for e in cache_entries(env) if "caller" in e["details"]][-1:]
    return entry["details"]["caller"]


def without_env_keys(env):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)


def test_profile_selection_from_aws_config(aws_env, iam_user):
    alice, alice_key, alice_secret = iam_user("alice")
    bob, bob_key, bob_secret = iam_user("bob")
    without_env_keys(aws_env)
    aws_credentials(aws_env, f"[alice]\naws_access_key_id = {alice_key}\naws_secret_access_key = {alice_secret}\n"
                             f"[bob]\naws_access_key_id = {bob_key}\naws_secret_access_key = {bob_secret}\n")
    aws_config(aws_env, "[profile alice]\nregion = eu-west-1\n[profile bob]\nregion = us-west-2\n")

    aws_env["AWS_PROFILE"] = "bob"  # the backend's own variable, as a fallback
    p = aws(aws_env, "--debug")
    token_of(p)
    assert caller(aws_env) == bob
    assert cache_entries(aws_env)[0]["details"]["region"] == "us-west-2"  # the profile's region
    assert bob_secret not in p.stderr

    credhelper_config(aws_env, '[aws]\nprofile = "alice"\n')  # a credhelper setting wins
    token_of(aws(aws_env))
    assert {e["details"]["caller"] for e in cache_entries(aws_env)} == {alice, bob}


def test_unknown_profile_is_a_configuration_error(aws_env):
    aws_env["CREDHELPER_AWS_PROFILE"] = "nobody"
    p = aws(aws_env)
    assert_failure(p, 2, "'nobody'", "AWS_PROFILE")


def test_credential_process_profile(aws_env, sts_proxy, tmp_path):
    without_env_keys(aws_env)
    script = write(str(tmp_path / "creds.py"),
                   "import json\nprint(json.dumps({'Version': 1, 'AccessKeyId': 'ASIAPROCESS000000001',"
                   f" 'SecretAccessKey': '{SECRET_CANARY}', 'SessionToken': '{SESSION_CANARY}',"
                   " 'Expiration': '2099-01-01T00:00:00Z'}))\n")
    aws_config(aws_env, f"[profile proc]\ncredential_process = {sys.executable} {script}\n")
    aws_env["AWS_PROFILE"] = "proc"
    p = aws(aws_env, "--debug")
    token = token_of(p)
    assert_clean(p.stderr)
    assert "custom-process" in p.stderr  # the debug log names the source, not the keys
    assert "ASIAPROCESS000000001" in sts_proxy.calls[0]["auth"]
    from credhelper.providers import aws_verify

    d = aws_verify.decode(token, allowed_endpoints=[sts_proxy.url])
    assert d.access_key_id == "ASIAPROCESS000000001"
    assert d.params["X-Amz-Security-Token"] == SESSION_CANARY


def test_failing_credential_process_exits_5(aws_env, tmp_path):
    without_env_keys(aws_env)
    script = write(str(tmp_path / "fail.py"), "import sys\nsys.exit('vault of keys is locked')\n")
    aws_config(aws_env, f"[profile proc]\ncredential_process = {sys.executable} {script}\n")
    aws_env["AWS_PROFILE"] = "proc"
    assert_failure(aws(aws_env), 5, "credential source failed", "vault of keys is locked")


def test_assume_role_chain_profile_then_role_arn(aws_env, sts_proxy, iam_user):
    """source profile -> role in ~/.aws/config (botocore's hop) -> [aws] role_arn (ours)."""
    _, key, secret = iam_user("erin")
    without_env_keys(aws_env)
    aws_credentials(aws_env, f"[base]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    aws_config(aws_env, f"[profile hop]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/first-hop\n"
                        "source_profile = base\nrole_session_name = erin-hop\n")
    # botocore's own AssumeRole client reads the endpoint from AWS_ENDPOINT_URL, which is
    # also the fallback of [aws] endpoint_url
    aws_env["AWS_ENDPOINT_URL"] = aws_env.pop("CREDHELPER_AWS_ENDPOINT_URL")
    aws_env.update(AWS_PROFILE="hop", CREDHELPER_AWS_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/second-hop",
                   CREDHELPER_AWS_ROLE_SESSION_NAME="erin", CREDHELPER_AWS_EXTERNAL_ID="ext-1234",
                   CREDHELPER_AWS_ROLE_DURATION="30m")
    p = aws(aws_env, "--debug")
    token_of(p)
    assert sts_proxy.actions() == ["AssumeRole", "AssumeRole", "GetCallerIdentity"]
    first, second = sts_proxy.calls[0], sts_proxy.calls[1]
    assert first["params"]["RoleArn"] == [f"arn:aws:iam::{ACCOUNT}:role/first-hop"]
    assert key in first["auth"]
    assert second["params"]["RoleArn"] == [f"arn:aws:iam::{ACCOUNT}:role/second-hop"]
    assert second["params"]["ExternalId"] == ["ext-1234"]
    assert second["params"]["DurationSeconds"] == ["1800"]
    assert "ASIA" in second["auth"]  # signed with the first hop's temporary keys
    assert caller(aws_env) == f"arn:aws:sts::{ACCOUNT}:assumed-role/second-hop/erin"
    assert "ext-1234" not in p.stderr  # external_id is masked like a secret


def test_default_role_session_name_identifies_the_person(aws_env, sts_proxy):
    aws_env["CREDHELPER_AWS_ROLE_ARN"] = f"arn:aws:iam::{ACCOUNT}:role/gw"
    token_of(aws(aws_env))
    name = sts_proxy.calls[0]["params"]["RoleSessionName"][0]
    assert name.startswith("credhelper-") and len(name) <= 64


def _expired_sso(env, style="legacy", token=None):
    """An SSO profile whose cached sign-in expired long ago, as `aws sso login` leaves it:
    the legacy form (sso_start_url in the profile) or an [sso-session] section. ``token``
    adds to or replaces fields of the cached token (a refresh token, a later expiry)."""
    import hashlib

    start_url = "https://example-sso.awsapps.com/start"
    if style == "legacy":
        aws_config(env, f"[profile dev]\nsso_start_url = {start_url}\nsso_region = us-east-1\n"
                        f"sso_account_id = {ACCOUNT}\nsso_role_name = Developer\n")
        cache_key = start_url
    else:
        aws_config(env, f"[profile dev]\nsso_session = corp\nsso_account_id = {ACCOUNT}\n"
                        "sso_role_name = Developer\n[sso-session corp]\n"
                        f"sso_start_url = {start_url}\nsso_region = us-east-1\n"
                        "sso_registration_scopes = sso:account:access\n")
        cache_key = "corp"
    name = hashlib.sha1(cache_key.encode()).hexdigest() + ".json"
    write(os.path.join(env["HOME"], ".aws", "sso", "cache", name), json.dumps({
        "startUrl": start_url, "region": "us-east-1", "accessToken": SESSION_CANARY,
        "expiresAt": "2020-01-01T00:00:00Z", **(token or {})}))
    without_env_keys(env)
    env["AWS_PROFILE"] = "dev"


@pytest.mark.parametrize("style", ["legacy", "sso-session"])
def test_expired_sso_session_in_background_exits_3_at_once(aws_env, sts_proxy, style):
    _expired_sso(aws_env, style)
    start = time.monotonic()
    p = aws(aws_env, "--debug")
    assert time.monotonic() - start < 10
    assert_failure(p, 3, "SSO session for profile 'dev'", "may not ask (background context)",
                   "hint: run: aws sso login --profile dev")
    assert sts_proxy.calls == []  # nothing was asked of AWS
    assert_clean(p.stderr)


def test_expired_sso_session_in_interactive_context_says_what_to_run(aws_env):
    _expired_sso(aws_env)
    aws_env["CLAUDE_HELPER_CONTEXT"] = "interactive"
    p = aws(aws_env)
    assert_failure(p, 3, "SSO session for profile 'dev' has expired", "aws sso login --profile dev")
    assert "may not ask" not in p.stderr


def _aws_json_error(status: int, code: str, body: dict):
    """An IAM Identity Center error answer (REST-JSON: the code in x-amzn-ErrorType)."""
    from faultproxy import Fault

    return Fault("status", code=status, body=json.dumps(body).encode(),
                 headers={"Content-Type": "application/json", "x-amzn-ErrorType": code})


def test_sso_token_whose_refresh_is_refused_exits_3(aws_env, fault_proxy):
    """An expired IAM Identity Center token with a refresh token: botocore tries to renew
    it (sso-oidc CreateToken); the refresh token has expired too (invalid_grant). That
    is a sign-in to do again: exit 3 with the hint, never 1."""
    _expired_sso(aws_env, "sso-session", token={
        "refreshToken": "canary-sso-refresh", "clientId": "sso-client",
        "clientSecret": "canary-sso-client-secret", "registrationExpiresAt": "2099-01-01T00:00:00Z"})
    aws_env["AWS_ENDPOINT_URL"] = fault_proxy.url  # botocore's own SSO clients
    fault_proxy.plan(_aws_json_error(400, "InvalidGrantException", {
        "error": "invalid_grant", "error_description": "Invalid refresh token provided"}), match="/token")
    p = aws(aws_env, "--debug")
    assert_failure(p, 3, "SSO session for profile 'dev'", "hint: run: aws sso login --profile dev")
    assert fault_proxy.seen == [("POST", "/token", "injected 400")]  # the refresh was tried
    assert_clean(p.stderr)


def test_sso_token_refused_by_aws_exits_3(aws_env, fault_proxy):
    """A cached token that looks valid but IAM Identity Center no longer takes (signed out
    elsewhere, or revoked): GetRoleCredentials answers 401 UnauthorizedException."""
    _expired_sso(aws_env, token={"expiresAt": "2099-01-01T00:00:00Z"})
    aws_env["AWS_ENDPOINT_URL"] = fault_proxy.url
    fault_proxy.plan(_aws_json_error(401, "UnauthorizedException",
                                     {"message": "Session token not found or invalid"}),
                     match="/federation/credentials")
    p = aws(aws_env)
    assert_failure(p, 3, "SSO session for profile 'dev'", "hint: run: aws sso login --profile dev")
    assert [outcome for _, _, outcome in fault_proxy.seen] == ["injected 401"]


def test_sso_profile_never_signed_in_exits_3(aws_env):
    import glob

    _expired_sso(aws_env)
    for path in glob.glob(os.path.join(aws_env["HOME"], ".aws", "sso", "cache", "*")):
        os.remove(path)  # no `aws sso login` ever ran
    assert_failure(aws(aws_env), 3, "SSO session for profile 'dev'",
                   "hint: run: aws sso login --profile dev")


def test_broken_aws_config_is_a_configuration_error(aws_env):
    aws_config(aws_env, "[profile dev\nregion = eu-west-1\n")
    aws_env["AWS_PROFILE"] = "dev"
    assert_failure(aws(aws_env), 2, "invalid AWS configuration", "~/.aws/config")


def test_partial_keys_in_the_environment_are_a_configuration_error(aws_env):
    del aws_env["AWS_SECRET_ACCESS_KEY"]
    p = aws(aws_env)
    assert_failure(p, 2, "AWS_SECRET_ACCESS_KEY")
    assert_clean(p.stderr)
