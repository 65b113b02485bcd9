"""The reference verifier (credhelper.providers.aws_verify), the gateway side of
presigned-identity tokens.

moto checks no signature and no expiry, so the audience, age, host and signed-header
checks below are the verifier's own, tested as such. The replay goes to the real moto
server with one test-only workaround for moto's routing quirk: moto picks the service of
a request from its Authorization header, and a presigned URL has none, so a plain GET
lands in moto's S3. ``moto_send`` adds an Authorization header carrying the URL's own
X-Amz-Credential; real STS needs no such header (and would refuse one).
"""

import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from credhelper.providers import aws_verify
from credhelper.providers.aws_verify import STSUnavailable, TokenRejected

from .conftest import ACCOUNT, AUDIENCE
from .helpers import aws, token_of


def moto_send(url, headers, timeout):
    """GET the presigned URL as STS would see it, plus moto's routing workaround."""
    credential = parse_qs(urlsplit(url).query)["X-Amz-Credential"][0]
    headers = dict(headers)
    headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=0"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def alice_token(aws_env, iam_user, moto):
    """A real token from credhelper-aws, signed for moto's endpoint."""
    arn, key_id, secret = iam_user("alice")
    aws_env.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret,
                   CREDHELPER_AWS_ENDPOINT_URL=moto.url)
    del aws_env["AWS_SESSION_TOKEN"]
    return arn, key_id, token_of(aws(aws_env))


def test_replay_to_moto_returns_the_caller(alice_token, moto):
    arn, key_id, token = alice_token
    identity = aws_verify.verify(token, AUDIENCE, allowed_endpoints=[moto.url], send=moto_send)
    assert identity.arn == arn and identity.account == ACCOUNT
    assert identity.access_key_id == key_id
    assert identity.expires_at == identity.signed_at + 900


def test_replay_after_assume_role_returns_the_role_session(aws_env, moto):
    aws_env.update(CREDHELPER_AWS_ENDPOINT_URL=moto.url,
                   CREDHELPER_AWS_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/gateway-users",
                   CREDHELPER_AWS_ROLE_SESSION_NAME="dana@example.com")
    token = token_of(aws(aws_env))
    identity = aws_verify.verify(token, AUDIENCE, allowed_endpoints=[moto.url], send=moto_send)
    assert identity.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/gateway-users/dana@example.com"
    assert identity.access_key_id.startswith("ASIA")


def test_the_replay_sends_our_audience_in_the_signed_header(alice_token, moto):
    _, _, token = alice_token
    seen = {}

    def send(url, headers, timeout):
        seen.update(headers)
        return moto_send(url, headers, timeout)

    aws_verify.verify(token, AUDIENCE, allowed_endpoints=[moto.url], send=send)
    assert seen[aws_verify.AUDIENCE_HEADER] == AUDIENCE


def test_audience_mismatch_is_rejected_before_any_replay(alice_token, moto):
    _, _, token = alice_token

    def send(*_):
        raise AssertionError("a token for another audience must not be replayed")

    with pytest.raises(TokenRejected, match="another audience"):
        aws_verify.verify(token, "https://other-gateway.example", allowed_endpoints=[moto.url],
                          send=send)


def test_too_old_and_future_tokens_are_rejected(alice_token, moto):
    _, _, token = alice_token
    d = aws_verify.decode(token, allowed_endpoints=[moto.url])
    with pytest.raises(TokenRejected, match="too old"):
        aws_verify.decode(token, now=d.signed_at + 901, allowed_endpoints=[moto.url])
    with pytest.raises(TokenRejected, match="too old"):  # a gateway's stricter max_age
        aws_verify.decode(token, now=d.signed_at + 120, max_age=60, allowed_endpoints=[moto.url])
    with pytest.raises(TokenRejected, match="future"):
        aws_verify.decode(token, now=d.signed_at - 300, allowed_endpoints=[moto.url])
    # within the window it decodes
    assert aws_verify.decode(token, now=d.signed_at + 899, allowed_endpoints=[moto.url])


def test_a_token_pointing_anywhere_but_sts_is_rejected(alice_token):
    _, _, token = alice_token
    # moto's loopback URL is no STS host unless the gateway allows it explicitly
    with pytest.raises(TokenRejected, match="not a plain https STS URL"):
        aws_verify.decode(token)
    for url in ("https://evil.example/?Action=GetCallerIdentity",
                "https://sts.amazonaws.com.evil.example/?Action=GetCallerIdentity",
                "https://sts.amazonaws.com:8443/?Action=GetCallerIdentity"):
        forged = aws_verify.encode(AUDIENCE, url)
        with pytest.raises(TokenRejected, match="STS"):
            aws_verify.decode(forged)


def _resign(token: str, allowed, **changes) -> str:
    """The same token with some query parameters changed (breaks the signature, which
    only STS could notice; the verifier must notice the changes on its own)."""
    from urllib.parse import urlencode

    d = aws_verify.decode(token, allowed_endpoints=allowed)
    params = dict(d.params, **changes)
    params = {k: v for k, v in params.items() if v is not None}
    split = urlsplit(d.url)
    return aws_verify.encode(d.audience, f"{split.scheme}://{split.netloc}/?{urlencode(params)}")


def test_signed_headers_must_cover_the_audience(alice_token, moto):
    _, _, token = alice_token
    allowed = [moto.url]
    for changes, reason in (
        ({"X-Amz-SignedHeaders": "host"}, "x-credhelper-audience"),
        ({"X-Amz-SignedHeaders": "host;x-credhelper-audience;x-extra"}, "cannot reproduce"),
        ({"Action": "AssumeRole"}, "not an STS GetCallerIdentity"),
        ({"X-Amz-Algorithm": "AWS4-HMAC-SHA1"}, "AWS4-HMAC-SHA256"),
        ({"X-Amz-Signature": None}, "lacks X-Amz-Signature"),
        ({"RoleArn": "x"}, "unexpected parameter"),
        ({"X-Amz-Credential": "AKIA/20250101/us-east-1/s3/aws4_request"}, "STS signing scope"),
    ):
        with pytest.raises(TokenRejected, match=reason):
            aws_verify.decode(_resign(token, allowed, **changes), allowed_endpoints=allowed)


def test_malformed_tokens_are_rejected_with_a_reason():
    for bad in ("", "Bearer x", "credhelper-aws-v1.only-two", "k8s-aws-v1.abc.def",
                "credhelper-aws-v1.***.abc", "credhelper-aws-v1.YQ.%%%",
                aws_verify.encode(AUDIENCE, "https://sts.amazonaws.com/?Action"),
                aws_verify.encode(AUDIENCE, "https://[::1/?Action=GetCallerIdentity"),
                aws_verify.encode(AUDIENCE, "https://sts.amazonaws.com:x/?Action=GetCallerIdentity"),
                aws_verify.encode(AUDIENCE, "https://sts.amazonaws.com/?Action=GetCallerIdentity"
                                            "&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256"
                                            "&X-Amz-Credential=a/b/c/sts/aws4_request&X-Amz-Date=x"
                                            "&X-Amz-SignedHeaders=host;x-credhelper-audience"
                                            "&X-Amz-Signature=0")):
        with pytest.raises(TokenRejected):
            aws_verify.decode(bad)


def test_any_input_is_rejected_cleanly_never_with_another_error():
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.text(), st.text())
    def check(audience, url):
        for token in (aws_verify.encode(audience, url), f"credhelper-aws-v1.{audience}.{url}"):
            try:
                aws_verify.decode(token)
            except TokenRejected:
                pass

    check()


def test_sts_refusal_and_outage_are_told_apart(alice_token, moto):
    _, _, token = alice_token
    kwargs = {"allowed_endpoints": [moto.url]}
    refused = b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>"
    with pytest.raises(TokenRejected, match="SignatureDoesNotMatch"):
        aws_verify.verify(token, AUDIENCE, send=lambda *a: (403, refused), **kwargs)
    with pytest.raises(STSUnavailable):
        aws_verify.verify(token, AUDIENCE, send=lambda *a: (503, b""), **kwargs)
    throttled = b"<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>"
    with pytest.raises(STSUnavailable):
        aws_verify.verify(token, AUDIENCE, send=lambda *a: (400, throttled), **kwargs)
    answer = (b'{"GetCallerIdentityResponse": {"GetCallerIdentityResult": {"Arn": '
              b'"arn:aws:iam::123456789012:user/json", "Account": "123456789012", "UserId": "U"}}}')
    who = aws_verify.verify(token, AUDIENCE, send=lambda *a: (200, answer), **kwargs)
    assert who.arn.endswith("user/json")  # STS's JSON answer (Accept: application/json)

    def down(*_):
        raise urllib.error.URLError("connection refused")

    with pytest.raises(STSUnavailable):
        aws_verify.verify(token, AUDIENCE, send=down, **kwargs)


def test_command_line_decode_only(alice_token, moto, tmp_path):
    _, key_id, token = alice_token
    cmd = [sys.executable, "-m", "credhelper.providers.aws_verify", "--audience", AUDIENCE,
           "--allow-endpoint", moto.url, "--decode-only", "-"]
    # cwd elsewhere: the source tree's credhelper/ would shadow the installed package
    p = subprocess.run(cmd, input=token, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert key_id in p.stdout and '"audience"' in p.stdout
    p = subprocess.run(cmd[:4] + ["https://elsewhere.example"] + cmd[5:], input=token,
                       capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert p.returncode == 1 and "rejected: " in p.stderr and "Traceback" not in p.stderr
    assert token not in p.stderr


@pytest.mark.parametrize("region, host", [
    ("us-east-1", "sts.us-east-1.amazonaws.com"),
    ("eu-west-1", "sts.eu-west-1.amazonaws.com"),
    ("cn-north-1", "sts.cn-north-1.amazonaws.com.cn"),
])
def test_tokens_for_real_sts_hosts_decode_without_extra_allowances(region, host):
    """Signed offline by botocore for the public endpoints (no network, no moto)."""
    import botocore.session

    sts = botocore.session.Session().create_client(
        "sts", region_name=region, aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="not-a-real-secret")

    def add(request, **_):
        request.headers[aws_verify.AUDIENCE_HEADER] = AUDIENCE

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add)
    url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=900, HttpMethod="GET")
    d = aws_verify.decode(aws_verify.encode(AUDIENCE, url))
    assert urlsplit(d.url).hostname == host
    assert d.region == region and d.access_key_id == "AKIAIOSFODNN7EXAMPLE"
    assert d.signed_headers == ["host", aws_verify.AUDIENCE_HEADER]
