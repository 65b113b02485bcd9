"""The shared backend contract (tests/conformance.py) against the real moto server."""

from __future__ import annotations

import pytest
from conformance import ContractTests, Harness

from .conftest import SECRET_CANARY, SESSION_CANARY


@pytest.fixture
def backend(aws_env, moto, request):
    def ok():
        return dict(aws_env)

    def refused():  # keys moto does not know, once it checks them
        moto.require_auth(True)
        return dict(aws_env)

    def needs_person():  # a role profile with mfa_serial: only a person has the code
        return request.getfixturevalue("mfa_env")

    return Harness("credhelper-aws", ok, refused,
                   lambda env, url: {**env, "CREDHELPER_AWS_ENDPOINT_URL": url}, needs_person,
                   secrets=[SECRET_CANARY, SESSION_CANARY])


class TestAwsContract(ContractTests):
    pass
