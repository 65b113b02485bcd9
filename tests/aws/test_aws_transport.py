"""TLS, AWS_CA_BUNDLE and proxies: a second real moto server serving https with a
certificate from a test CA (trustme), and the recording proxy used as an HTTP proxy."""

from conftest import assert_failure

from .helpers import assert_clean, aws, token_of


def test_aws_ca_bundle_is_honoured(aws_env, tls_moto):
    server, ca_file = tls_moto
    aws_env["CREDHELPER_AWS_ENDPOINT_URL"] = server.url
    aws_env["AWS_CA_BUNDLE"] = ca_file
    assert token_of(aws(aws_env)).startswith("credhelper-aws-v1.")


def test_untrusted_certificate_exits_4(aws_env, tls_moto):
    server, _ = tls_moto
    aws_env["CREDHELPER_AWS_ENDPOINT_URL"] = server.url
    aws_env.pop("AWS_CA_BUNDLE", None)
    p = aws(aws_env, "--debug")
    assert_failure(p, 4, "TLS to", "failed: certificate verify failed", "AWS_CA_BUNDLE")
    assert_clean(p.stderr)


def test_http_proxy_is_honoured(aws_env, moto, sts_proxy):
    aws_env["CREDHELPER_AWS_ENDPOINT_URL"] = moto.url  # straight to moto ...
    aws_env["HTTP_PROXY"] = sts_proxy.url  # ... unless a proxy is configured
    token_of(aws(aws_env))
    assert sts_proxy.actions() == ["GetCallerIdentity"]


def test_ca_cert_is_trusted_for_every_aws_call(aws_env, tls_moto, tmp_path):
    """A company CA given as a setting, as for the other backends: the STS call and the
    presign use it (and nothing else: AWS_CA_BUNDLE is unset); a missing file exits 2."""
    server, ca_file = tls_moto
    aws_env["CREDHELPER_AWS_ENDPOINT_URL"] = server.url
    aws_env.pop("AWS_CA_BUNDLE", None)
    aws_env["CREDHELPER_AWS_CA_CERT"] = ca_file
    assert token_of(aws(aws_env)).startswith("credhelper-aws-v1.")
    aws_env["CREDHELPER_AWS_CA_CERT"] = str(tmp_path / "missing.pem")
    assert_failure(aws(aws_env), 2, "missing.pem", "does not exist")
