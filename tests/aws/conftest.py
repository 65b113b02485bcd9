"""Fixtures for the AWS backend: one real moto server per session, a recording proxy in
front of it, and per-test environments with canary credentials.

The moto server is real (``moto_server`` on loopback). The helper talks to it through
``StsProxy``, which forwards to moto and records each AWS action; only STS
``GetWebIdentityToken``, which moto does not implement, is answered by the proxy itself.
If moto cannot start, the session fails: these tests never skip.
"""

from __future__ import annotations

import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from motoserver import MotoServer, StsProxy  # noqa: E402

ACCOUNT = "123456789012"
AUDIENCE = "https://gateway.test.example"
# Canaries: credentials that must never show up anywhere but inside the printed token.
SECRET_CANARY = "canary-AWS-SECRET-9b2e71"
SESSION_CANARY = "canary-AWS-SESSION-TOKEN-4c8d02"
SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/mia"  # an MFA device of a role profile
ROLE = f"arn:aws:iam::{ACCOUNT}:role/gateway-users"


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    try:
        server = MotoServer(log).start()
    except Exception as exc:  # CI must install moto[server]; a skip would hide that
        pytest.fail(f"cannot start the moto server: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sts_proxy(moto):
    proxy = StsProxy(moto.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def admin(moto):
    """boto3 clients straight to moto, for setting up users, roles and secrets."""
    import boto3

    def client(service):
        return boto3.client(service, endpoint_url=moto.url, region_name="us-east-1",
                            aws_access_key_id="AKIAADMINSETUP000000",
                            aws_secret_access_key="admin-setup-secret")

    return client


@pytest.fixture
def aws_env(base_env, moto, sts_proxy):
    """A helper environment: static canary keys, the proxy as endpoint, no IMDS."""
    moto.require_auth(False)
    moto.reset()
    sts_proxy.clear()
    sts_proxy.fail = None
    env = dict(base_env)
    env.update({
        "AWS_ACCESS_KEY_ID": "AKIA" + uuid.uuid4().hex[:16].upper(),
        "AWS_SECRET_ACCESS_KEY": SECRET_CANARY,
        "AWS_SESSION_TOKEN": SESSION_CANARY,
        # base_env carries no AWS_ variables and a fresh HOME, so botocore finds only the
        # ~/.aws files a test writes; IMDS must not be probed either.
        "AWS_EC2_METADATA_DISABLED": "true",
        "CREDHELPER_AWS_ENDPOINT_URL": sts_proxy.url,
        "CREDHELPER_AWS_AUDIENCE": AUDIENCE,
        "CLAUDE_HELPER_CONTEXT": "background",
    })
    yield env
    sts_proxy.fail = None
    moto.require_auth(False)


@pytest.fixture
def iam_user(admin):
    """A real moto IAM user with an access key: (arn, access key id, secret)."""

    def make(name: str):
        iam = admin("iam")
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return f"arn:aws:iam::{ACCOUNT}:user/{name}", key["AccessKeyId"], key["SecretAccessKey"]

    return make


@pytest.fixture
def fault_proxy(moto):
    """A FaultProxy (tests/faultproxy.py) in front of the real moto server, plain http;
    the test points the helper at ``fault_proxy.url`` and queues faults."""
    from faultproxy import FaultProxy

    proxy = FaultProxy(moto.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def mfa_env(aws_env, iam_user):
    """A role profile: role_arn + source_profile + mfa_serial, the source a moto IAM user."""
    _, key, secret = iam_user("mia")
    from .helpers import aws_config, aws_credentials

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        aws_env.pop(name)
    aws_credentials(aws_env, f"[base]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    aws_config(aws_env, f"[profile mfa]\nrole_arn = {ROLE}\nsource_profile = base\n"
                        f"mfa_serial = {SERIAL}\nrole_session_name = mia\n")
    # botocore's AssumeRole client (and ours in its place) reads AWS_ENDPOINT_URL.
    aws_env["AWS_ENDPOINT_URL"] = aws_env.pop("CREDHELPER_AWS_ENDPOINT_URL")
    aws_env["AWS_PROFILE"] = "mfa"
    return aws_env


@pytest.fixture(scope="session")
def tls_moto(tmp_path_factory):
    """A second moto server over https, its certificate from a test CA: (server, CA file)."""
    import trustme

    folder = tmp_path_factory.mktemp("moto-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = (folder / "server.pem", folder / "server.key", folder / "ca.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(str(files[0]))
    cert.private_key_pem.write_to_path(str(files[1]))
    ca.cert_pem.write_to_path(str(files[2]))
    try:
        server = MotoServer(folder / "moto.log", tls=files).start()
    except Exception as exc:
        pytest.fail(f"cannot start the TLS moto server: {exc}")
    yield server, str(files[2])
    server.stop()
