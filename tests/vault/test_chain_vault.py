"""credhelper-chain on real services: the OS keyring (GNOME Keyring on a private D-Bus)
first, then Vault (the session's OpenBao server, whose audit device counts every read).

The chain's logic with test backends is in tests/test_chain.py; the sign-in contexts with
the OpenID provider in tests/oidc/test_chain_oidc.py.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

from .vaultkit import CANARY, assert_failure, helper_env, run


def _jwt(ttl: int) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    claims = {"sub": "alice", "exp": int(time.time()) + ttl}
    return f"{enc({'alg': 'RS256', 'typ': 'JWT'})}.{enc(claims)}.{CANARY}-signature"


class Chain:
    """keyring, then Vault: a KV v2 secret of the test's own, read as root."""

    def __init__(self, keyring_env: dict, lab, name: str):
        self.lab = lab
        self.path = f"secret/data/chain-{name}-{os.getpid()}"
        self.vault_value = f"vault-{name}-{CANARY}"
        lab.api("POST", self.path, data={"token": self.vault_value})
        self.env = helper_env(keyring_env, lab.server.address,
                              secret=self.path.replace("/data/", "/", 1), field="token")
        self.env["VAULT_TOKEN"] = "root"
        self.env["CREDHELPER_CHAIN_PROVIDERS"] = "keyring vault"

    def reads(self) -> int:
        return self.lab.server.count_requests(self.path, "read")

    def store(self, secret: str) -> None:
        assert run(["credhelper-keyring", "store"], self.env, input=secret + "\n").returncode == 0


def _served(proc, value: str) -> None:
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{value}\n".encode(), proc.stdout


def test_keyring_empty_vault_serves_then_the_keyring_wins_once_set(keyring_env, lab):
    c = Chain(keyring_env, lab, "order")
    proc = run("credhelper-chain", c.env)
    _served(proc, c.vault_value)
    assert proc.stderr == "" and c.reads() == 1
    # Vault's own cache entry serves the next run: no second read.
    debug = run(["credhelper-chain", "--debug"], c.env)
    _served(debug, c.vault_value)
    assert "keyring: nothing stored in the keyring" in debug.stderr
    assert "vault: debug: cache hit:" in debug.stderr and c.reads() == 1
    # Order is the order: once the keyring holds a credential, it is the one printed,
    # though Vault's entry is still cached.
    token = _jwt(3600)
    c.store(token)
    _served(run("credhelper-chain", c.env), token)
    assert c.reads() == 1


def test_keyring_set_serves_and_vault_is_not_asked(keyring_env, lab):
    c = Chain(keyring_env, lab, "first")
    token = _jwt(3600)
    c.store(token)
    for _ in range(2):  # a fetch from the keyring, then the keyring's cache hit
        _served(run("credhelper-chain", c.env), token)
    assert c.reads() == 0
    names = os.listdir(c.env["CREDHELPER_CACHE_DIR"])
    assert not [n for n in names if n.startswith(("vault-", "snapshot-vault"))], names


def test_both_failing_exit_with_the_most_actionable_code_and_a_line_each(keyring_env, lab):
    c = Chain(keyring_env, lab, "fail")
    # Nothing in the keyring (5) and Vault unreachable (4): exit 4.
    down = {**c.env, "VAULT_ADDR": "http://127.0.0.1:9", "CREDHELPER_VAULT_TIMEOUT": "3s"}
    proc = run("credhelper-chain", down)
    assert_failure(proc, 4, "exit 4 from vault")
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("credhelper-chain: warning: keyring: nothing stored in the keyring")
    assert lines[0].endswith("(exit 5)")
    assert lines[1].startswith("credhelper-chain: warning: vault: ")
    assert lines[1].endswith("(exit 4)")
    assert lines[2].startswith("credhelper-chain: error: no backend of the chain gave a "
                               "credential (keyring, vault)")
    # Nothing in the keyring (5) and a token Vault refuses (5): exit 5.
    token = lab.api("POST", "auth/token/create", policies=["default"])["auth"]["client_token"]
    proc = run("credhelper-chain", {**c.env, "VAULT_TOKEN": token})
    assert_failure(proc, 5, "keyring: nothing stored", "vault: ", "exit 5 from keyring")
    assert token not in proc.stderr


def test_a_chain_hit_loads_no_backend_library(keyring_env, lab):
    """When the first backend has a fresh cached credential, the chain run is its cache
    hit: neither the keyring library, nor hvac, nor click is imported."""
    from conftest import installed_script

    c = Chain(keyring_env, lab, "light")
    token = _jwt(3600)
    c.store(token)
    _served(run("credhelper-chain", c.env), token)
    p = subprocess.run([sys.executable, "-X", "importtime", installed_script("credhelper-chain")],
                       env=c.env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and p.stdout == f"{token}\n"
    modules = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}
    heavy = sorted(m for m in modules if m.split(".")[0] in
                   ("keyring", "secretstorage", "jeepney", "hvac", "requests", "urllib3",
                    "click", "boto3", "botocore", "msal", "authlib"))
    assert not heavy, heavy
    assert "credhelper.fullpath" not in modules  # not even the full path's module
