"""credhelper-chain and sign-in, on the real OpenID provider: ``[chain] providers =
["keyring", "oidc", "azure"]`` with nothing in the keyring and neither identity-provider
backend signed in. A background run asks nobody and exits 3; an interactive run starts the
device sign-in of the first backend that needs one (oidc) and of no other (azure).
Desktop tools are recorders (tests/oidc/conftest.py), so every prompt shown is counted.
"""

from __future__ import annotations

import os
import time

from conftest import assert_failure, run

from .idpkit import sign_in

CHAIN = "keyring oidc azure"


def _env(oidc_env, azure_env, keyring_session, **more) -> dict:
    env = {**oidc_env, **azure_env, "CREDHELPER_CHAIN_PROVIDERS": CHAIN, **more}
    env["CREDHELPER_KEYRING_SERVICE"] = f"credhelper-test-{os.urandom(4).hex()}"  # empty
    return env


def _shown(env) -> list[str]:
    try:
        with open(env["PRESENTER_RECORD"]) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def test_a_background_chain_exits_3_without_a_prompt(oidc_env, azure_env, keyring_session):
    env = _env(oidc_env, azure_env, keyring_session, CLAUDE_HELPER_CONTEXT="background")
    start = time.monotonic()
    proc = run("credhelper-chain", env)
    elapsed = time.monotonic() - start
    assert_failure(proc, 3, "exit 3 from oidc", "hint: oidc: ", "credhelper-oidc login")
    tried = [line.split(": ")[2] for line in proc.stderr.splitlines() if ": warning: " in line]
    assert tried == ["keyring", "oidc", "azure"], proc.stderr
    assert "(exit 5)" in proc.stderr  # the keyring's nothing stored
    assert _shown(env) == [] and elapsed < 5.0, elapsed


def test_an_interactive_chain_signs_in_to_the_first_that_needs_it_only(oidc_env, azure_env,
                                                                       keyring_session, idp):
    env = _env(oidc_env, azure_env, keyring_session, CLAUDE_HELPER_CONTEXT="interactive")
    proc = sign_in(["credhelper-chain"], env, idp)
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.decode().strip()
    assert "signing in to oidc" in proc.stderr
    # One device code shown, the oidc backend's: azure's sign-in never started.
    opened = [line for line in _shown(env) if line.startswith("xdg-open ")]
    assert opened == [f"xdg-open {idp.issuer}/device?user_code={proc.user_code}"], _shown(env)
    # The credential is the oidc backend's own entry: a background chain run and the oidc
    # helper itself serve it, asking nobody.
    background = {**env, "CLAUDE_HELPER_CONTEXT": "background"}
    again = run("credhelper-chain", background)
    assert again.returncode == 0 and again.stdout.decode().strip() == token
    alone = run("credhelper-oidc", background)
    assert alone.returncode == 0 and alone.stdout.decode().strip() == token
    assert len([line for line in _shown(env) if line.startswith("xdg-open ")]) == 1
