"""IAM Identity Center sign-in inside credhelper-aws, for profiles with an sso_session.

moto 5.2 implements neither SSO OIDC (RegisterClient, StartDeviceAuthorization,
CreateToken) nor the SSO portal's GetRoleCredentials, so those four calls go to the
smallest faithful stand-in (tests/aws/identitycenter.py: botocore's own REST-JSON shapes,
its own verification page for the person's step); STS is the real moto server, which
recognises the moto IAM user whose key the stand-in hands out as role credentials. The
helper runs without a terminal, as under the app: the verification page opens with
xdg-open and the code shows in a notification, both recorders here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import time

import pytest
from conftest import assert_failure, presented, script

from .conftest import ACCOUNT
from .helpers import assert_clean, aws, aws_config, token_of

ROLE_NAME = "GatewayUsers"
SESSION = "corp"
START_URL = "https://corp.awsapps.com/start"
CONFIG = f"""[profile dev]
sso_session = {SESSION}
sso_account_id = {ACCOUNT}
sso_role_name = {ROLE_NAME}
region = us-east-1

[sso-session {SESSION}]
sso_start_url = {START_URL}
sso_region = us-east-1
sso_registration_scopes = sso:account:access
"""
RECORDER = "#!/bin/sh\nprintf '%s\\n' \"$(basename \"$0\") $*\" >> \"$PRESENTER_RECORD\"\n"


@pytest.fixture
def center(iam_user):
    from .identitycenter import IdentityCenter

    arn, key, secret = iam_user("sso-" + os.urandom(3).hex())
    server = IdentityCenter({"accessKeyId": key, "secretAccessKey": secret,
                             "sessionToken": "canary-SSO-ROLE-SESSION"}, ACCOUNT, ROLE_NAME)
    server.arn, server.key = arn, key
    yield server.start()
    server.stop()


@pytest.fixture
def sso_env(aws_env, center, tmp_path):
    """A profile with an sso_session, no keys anywhere, the stand-in for SSO OIDC and the
    portal (botocore's per-service endpoint variables), moto for STS; desktop recorders."""
    env = {k: v for k, v in aws_env.items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    aws_config(env, CONFIG)
    bin_dir = tmp_path / "desktop-bin"
    bin_dir.mkdir()
    for tool in ("xdg-open", "notify-send"):
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    env.update({"AWS_PROFILE": "dev", "AWS_ENDPOINT_URL_SSO_OIDC": center.url,
                "AWS_ENDPOINT_URL_SSO": center.url, "DISPLAY": ":0",
                "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
                "PRESENTER_RECORD": str(tmp_path / "presented.txt")})
    return env


def interactive(env, **more) -> dict:
    return {**env, "CLAUDE_HELPER_CONTEXT": "interactive", **more}


def token_file(env) -> str:
    return os.path.join(env["HOME"], ".aws", "sso", "cache",
                        hashlib.sha1(SESSION.encode()).hexdigest() + ".json")


def drop_cached(env) -> None:
    """Remove the helper's cached credentials, so the next run asks the AWS chain."""
    for name in os.listdir(env["CREDHELPER_CACHE_DIR"]):
        if name.startswith("aws-") and name.endswith(".v1.json"):
            os.unlink(os.path.join(env["CREDHELPER_CACHE_DIR"], name))


def signing_in(env, center, decision: str | None = "approve", timeout: float = 40):
    """Run the helper; when the code shows in the notification, play the person at the
    stand-in's verification page. Returns (CompletedProcess-like, user code)."""
    seen = len(presented(env))
    proc = subprocess.Popen([script("credhelper-aws")], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    code, deadline = None, time.monotonic() + timeout
    while code is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        found = re.search(r"enter the code ([A-Z0-9Q]{4}-[A-Z0-9Q]{4})", presented(env)[seen:])
        code = found and found.group(1)
    if code and decision:
        assert center.person(code, decision) == 200
    out, err = proc.communicate(timeout=timeout)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err.decode())
    assert_clean(done.stderr)
    return done, code


def test_sign_in_writes_the_aws_cli_token_then_runs_are_silent(sso_env, center, sts_proxy):
    started = time.monotonic()
    first, code = signing_in(interactive(sso_env), center)
    took = time.monotonic() - started
    token = token_of(first)
    # The person saw the verification page (opened) and the code (notification).
    shown = presented(sso_env)
    assert f"xdg-open {center.url}/device?user_code={code}" in shown
    assert "notify-send" in shown and code in shown
    assert center.calls[:3] == ["RegisterClient", "StartDeviceAuthorization",
                                "CreateToken:device_code"]
    assert center.count("GetRoleCredentials") == 1
    # Printed: an identity token signed with the role credentials of the sign-in.
    from credhelper.providers import aws_verify

    assert aws_verify.decode(token, allowed_endpoints=[sts_proxy.url]).access_key_id == center.key

    # The token file, as the AWS CLI writes it: its name, fields, formats and mode.
    path = token_file(sso_env)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    with open(path) as f:
        doc = json.load(f)
    assert sorted(doc) == sorted(["startUrl", "region", "accessToken", "expiresAt",
                                  "refreshToken", "clientId", "clientSecret",
                                  "registrationExpiresAt"])
    assert doc["startUrl"] == START_URL and doc["region"] == "us-east-1"
    for field in ("expiresAt", "registrationExpiresAt"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc[field]), doc
    assert doc["accessToken"] in center.tokens

    # Shared: botocore alone (what the AWS CLI runs on) finds the session in that file.
    shared = subprocess.run(
        [sys.executable, "-c", "import botocore.session as s; "
         "print(s.Session(profile='dev').get_credentials().get_frozen_credentials().access_key)"],
        env=sso_env, capture_output=True, text=True, timeout=30)
    assert shared.stdout.strip() == center.key, shared.stderr

    # A background run, the helper's cache gone: silent, no new sign-in.
    drop_cached(sso_env)
    again = aws(sso_env)
    token_of(again)
    assert center.count("StartDeviceAuthorization") == 1 and center.count("RegisterClient") == 1
    print(f"IAM Identity Center sign-in, whole run: {took:.2f}s")


def test_botocore_refreshes_the_token_the_helper_wrote(sso_env, center):
    token_of(signing_in(interactive(sso_env), center)[0])
    path = token_file(sso_env)
    with open(path) as f:
        doc = json.load(f)
    # Ten minutes left: inside botocore's 15-minute refresh window.
    doc["expiresAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
    with open(path, "w") as f:
        json.dump(doc, f)
    drop_cached(sso_env)
    proc = aws(sso_env)  # background, as the fixture's context
    token_of(proc)
    assert center.count("CreateToken:refresh_token") == 1
    assert center.count("StartDeviceAuthorization") == 1  # no new sign-in
    with open(path) as f:
        renewed = json.load(f)
    assert renewed["accessToken"] != doc["accessToken"]
    assert renewed["refreshToken"] != doc["refreshToken"]


@pytest.mark.parametrize("context", ["background", "mid-session-refresh", "scheduled-task"])
def test_other_contexts_exit_3_at_once(sso_env, center, sts_proxy, context):
    started = time.monotonic()
    proc = aws({**sso_env, "CLAUDE_HELPER_CONTEXT": context})
    took = time.monotonic() - started
    assert_failure(proc, 3, f"SSO session for profile 'dev' (sso-session '{SESSION}')",
                   f"may not ask ({context} context)", "hint: run: aws sso login --profile dev",
                   "run credhelper-aws in a terminal: it signs in itself")
    assert took < 3, took
    assert center.calls == [] and sts_proxy.calls == [] and presented(sso_env) == ""
    assert not os.path.exists(token_file(sso_env))


def test_an_unfinished_sign_in_is_kept_and_finished_by_a_background_run(sso_env, center):
    # (login_timeout is never shorter than timeout)
    short = interactive(sso_env, CREDHELPER_AWS_TIMEOUT="3s", CREDHELPER_AWS_LOGIN_TIMEOUT="4s")
    first, code = signing_in(short, center, decision=None)
    assert_failure(first, 3, "is not finished yet", code, "stays valid")
    # The next interactive run shows the same code: one code per sign-in.
    second, again = signing_in(short, center, decision=None)
    assert_failure(second, 3, "is not finished yet")
    assert again == code and center.count("StartDeviceAuthorization") == 1
    # The person approves after the runs ended; a background run asks once and finishes.
    assert center.person(code) == 200
    polls = center.count("CreateToken:device_code")
    token_of(aws(sso_env))
    assert center.count("CreateToken:device_code") == polls + 1
    assert os.path.exists(token_file(sso_env))
    assert center.count("StartDeviceAuthorization") == 1


def test_a_declined_sign_in_exits_5_and_is_forgotten(sso_env, center):
    denied, _ = signing_in(interactive(sso_env), center, decision="deny")
    assert_failure(denied, 5, "was declined")
    assert not os.path.exists(token_file(sso_env))
    # Forgotten: the next background run has nothing pending to poll.
    polls = center.count("CreateToken:device_code")
    assert_failure(aws(sso_env), 3, "may not ask (background context)")
    assert center.count("CreateToken:device_code") == polls


def test_an_expired_code_exits_3_and_is_forgotten(sso_env, center):
    short = interactive(sso_env, CREDHELPER_AWS_TIMEOUT="3s", CREDHELPER_AWS_LOGIN_TIMEOUT="4s")
    first, code = signing_in(short, center, decision=None)
    assert_failure(first, 3, "is not finished yet")
    with center.lock:  # Identity Center lets the code lapse before the time it announced
        for device in center.devices.values():
            device["expires"] = 0
    expired = aws(sso_env)  # polls the saved sign-in once: ExpiredTokenException
    assert_failure(expired, 3, "the sign-in code expired before anyone used it")
    polls = center.count("CreateToken:device_code")
    assert_failure(aws(sso_env), 3, "may not ask (background context)")  # forgotten
    assert center.count("CreateToken:device_code") == polls
    assert center.count("StartDeviceAuthorization") == 1


def test_a_role_profile_whose_source_signs_in_with_sso(sso_env, center, sts_proxy):
    """role_arn + source_profile = the sso_session profile: the sign-in is the source's."""
    aws_config(sso_env, CONFIG + "\n[profile gw]\nrole_arn = arn:aws:iam::"
               f"{ACCOUNT}:role/gateway-users\nsource_profile = dev\n")
    env = interactive(sso_env, AWS_PROFILE="gw", AWS_ENDPOINT_URL=sts_proxy.url)
    proc, _ = signing_in(env, center)
    token_of(proc)
    assert os.path.exists(token_file(sso_env)) and center.count("GetRoleCredentials") == 1
    assert "AssumeRole" in sts_proxy.actions()


def test_throttled_registration_is_retried(sso_env, center):
    center.slow_down["RegisterClient"] = 1  # SlowDownException: a 400 that means "later"
    token_of(signing_in(interactive(sso_env), center)[0])
    assert center.calls[:2] == ["RegisterClient:slow_down", "RegisterClient"]
