"""An identity switched through the AWS shared credentials file (issue: integrity, item
5), against moto: the next run signs with the new keys, never serves the previous ones'."""

from __future__ import annotations

from pathlib import Path

from conftest import CANARY

from credhelper.providers import aws_verify

from .helpers import aws, aws_credentials, token_of


def test_keys_written_to_the_aws_credentials_file_are_used_by_the_next_run(aws_env, sts_proxy):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        del aws_env[name]
    aws_env["CREDHELPER_AWS_VERIFY"] = "false"  # signing only: the keys need not exist

    def signer() -> str:
        token = token_of(aws(aws_env))
        return aws_verify.decode(token, allowed_endpoints=[sts_proxy.url]).access_key_id

    aws_credentials(aws_env, "[default]\naws_access_key_id = AKIAALICE00000000001\n"
                    f"aws_secret_access_key = {CANARY}alice\n")
    assert signer() == "AKIAALICE00000000001"
    assert signer() == "AKIAALICE00000000001"  # a cache hit
    assert len(list(Path(aws_env["CREDHELPER_CACHE_DIR"]).glob("aws-*.v1.json"))) == 1
    aws_credentials(aws_env, "[default]\naws_access_key_id = AKIABOB000000000002\n"
                    f"aws_secret_access_key = {CANARY}bob\n")
    assert signer() == "AKIABOB000000000002"
