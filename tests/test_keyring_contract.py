"""The shared backend contract (tests/conformance.py) against a real GNOME Keyring.

The keyring has no network address and no sign-in: a hung Secret Service is covered by
tests/test_keyring.py (a daemon stopped with SIGSTOP), an unreachable one (no D-Bus
session) there too."""

from __future__ import annotations

import pytest
from conformance import ContractTests, Harness
from conftest import CANARY, run
from test_keyring import jwt


@pytest.fixture
def backend(keyring_env):
    stored = []

    def ok():
        if not stored:
            p = run(["credhelper-keyring", "store"], keyring_env, input=jwt(3600, CANARY) + "\n")
            assert p.returncode == 0, p.stderr
            stored.append(True)
        return dict(keyring_env)

    def refused():  # nothing stored under this service: the keyring says no such item
        return {**keyring_env, "CREDHELPER_KEYRING_SERVICE": keyring_env["CREDHELPER_KEYRING_SERVICE"] + "-none"}

    return Harness("credhelper-keyring", ok, refused, None)


class TestKeyringContract(ContractTests):
    test_unreachable_backend_exits_4_at_once = None  # no address: see the docstring
    test_a_hung_backend_ends_at_the_deadline = None
    test_a_hung_backend_ends_before_the_app_kills_the_run = None
    test_a_background_run_never_asks_a_person = None  # nothing to sign in to
