"""TLS, AWS_CA_BUNDLE and proxies: a second real moto server serving https with a
certificate from a test CA (trustme), and the recording proxy used as an HTTP proxy."""

import pytest
from conftest import assert_failure
from motoserver import MotoServer

from .helpers import assert_clean, aws, token_of


@pytest.fixture(scope="module")
def tls_moto(tmp_path_factory):
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
