"""Helpers shared by the Vault tests: the root conftest's helpers, a helper environment
for a given server and auth method, JWT signing, and the stdout/stderr checks every test
makes (stdout exactly the token and a newline; no secret on stderr)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys
import time

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


def _root_conftest():
    # tests/conftest.py is imported by pytest as the module "conftest", a name that every
    # conftest of a sub-folder rebinds: load our own copy by path for its helpers.
    spec = importlib.util.spec_from_file_location("credhelper_tests_conftest",
                                                  os.path.join(_TESTS, "conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_root = _root_conftest()
CANARY = _root.CANARY
run = _root.run
assert_failure = _root.assert_failure
script = _root.script

# Values that must never be printed anywhere but stdout (where only the token goes).
PASSWORD = "pw-" + CANARY
OTHER_FIELD_VALUE = "other-" + CANARY  # a field that exists but is never asked for


def helper_env(base_env: dict, address: str, **settings) -> dict:
    """base_env pointed at a Vault: VAULT_ADDR plus CREDHELPER_VAULT_<KEY> for settings."""
    env = dict(base_env)
    env["VAULT_ADDR"] = address
    for key, value in settings.items():
        if value is not None:
            env[f"CREDHELPER_VAULT_{key.upper()}"] = str(value)
    return env


def expect_token(proc, token: str, *secrets: str) -> None:
    """Success: stdout exactly the token and a newline; no secret on stderr."""
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (token + "\n").encode(), proc.stdout
    assert "Traceback" not in proc.stderr
    no_leak(proc, token, *secrets)


def no_leak(proc, *secrets: str) -> None:
    for value in (CANARY, PASSWORD, OTHER_FIELD_VALUE) + secrets:
        if value:
            assert value not in proc.stderr, f"a secret reached stderr: {proc.stderr}"


def failure(proc, code: int, *phrases: str, secrets: tuple = ()) -> None:
    assert_failure(proc, code, *phrases)
    no_leak(proc, *secrets)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(private_key, claims: dict, kid: str = "test") -> str:
    """An RS256 JWT signed with a cryptography RSA key (no JWT library needed)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode())).encode()
    signature = private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + b64url(signature)


def jwt_claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def now() -> int:
    return int(time.time())
