"""Forced refresh against a real OpenBao server: ``mid-session-refresh`` and
``--force-refresh`` read the secret again after it was rotated, a storm of them costs one
read, and an identity token comes back new.

Real: the server, KV v2 versions written by the test (the rotation), identity tokens
minted for an AppRole login, the audit device that counts every read. The same cases
with the test backend are in tests/test_refresh.py.
"""

from __future__ import annotations

import concurrent.futures
import os
import time

from .vaultkit import expect_token, helper_env, jwt_claims, run

OLD, NEW = "refresh-old-", "refresh-new-"  # + CANARY: the values a rotation swaps


def _mid_session(env: dict) -> dict:
    return {**env, "CLAUDE_HELPER_CONTEXT": "mid-session-refresh"}


class Rotating:
    """A KV v2 secret of the test's own (its reads counted alone in the shared audit
    log), an environment that reads it as root, and the rotation that writes a new
    version of it."""

    def __init__(self, base_env: dict, lab, name: str, **settings):
        self.lab = lab
        self.name = f"refresh-{name}-{os.getpid()}"
        self.old = OLD + lab.values["kv2"]
        self.new = NEW + lab.values["kv2"]
        lab.api("POST", f"secret/data/{self.name}", data={"token": self.old})
        self.env = helper_env(base_env, lab.server.address, secret=f"secret/{self.name}",
                              field="token", **settings)
        self.env["VAULT_TOKEN"] = "root"

    def rotate(self) -> None:
        self.lab.api("POST", f"secret/data/{self.name}", data={"token": self.new})

    def reads(self) -> int:
        """KV reads of this secret the server has received so far."""
        return self.lab.server.count_requests(f"secret/data/{self.name}", "read")


def test_mid_session_refresh_reads_the_rotated_secret(base_env, lab):
    # refresh_grace long enough that the third run surely falls inside it on a busy machine
    kv = Rotating(base_env, lab, "mid-session", refresh_grace="3s")
    expect_token(run("credhelper-vault", kv.env), kv.old)
    assert kv.reads() == 1
    kv.rotate()
    # An ordinary run serves the cached entry: it is fresh (max_age is 2h).
    expect_token(run("credhelper-vault", kv.env), kv.old)
    assert kv.reads() == 1
    # Within refresh_grace of the fetch, a forced refresh counts it as already refreshed ...
    expect_token(run("credhelper-vault", _mid_session(kv.env)), kv.old)
    assert kv.reads() == 1
    time.sleep(3.2)
    # ... past it, the app's mid-session refresh reads the secret again.
    proc = run(["credhelper-vault", "--debug"], _mid_session(kv.env))
    expect_token(proc, kv.new)
    assert "forced refresh" in proc.stderr
    assert kv.reads() == 2
    # The new value is cached for every later ordinary run.
    proc = run(["credhelper-vault", "--debug"], kv.env)
    expect_token(proc, kv.new)
    assert "cache hit" in proc.stderr
    assert kv.reads() == 2


def test_a_storm_of_mid_session_refreshes_makes_one_read(base_env, lab):
    """10 sessions refresh at once after a rotation: all print the new value, and the
    audit log shows one read for the whole storm (one run fetches under the cache lock;
    the others find its entry, fetched within refresh_grace, and serve it)."""
    kv = Rotating(base_env, lab, "storm", refresh_grace="4s")
    kv.env["CREDHELPER_DEFAULTS_TIMEOUT"] = "60"
    expect_token(run("credhelper-vault", kv.env), kv.old)
    kv.rotate()
    time.sleep(4.2)  # the cached entry is now older than refresh_grace
    before = kv.reads()
    assert before == 1
    env = _mid_session(kv.env)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: run("credhelper-vault", env), range(10)))
    for proc in results:
        expect_token(proc, kv.new)
    assert kv.reads() == before + 1


def test_force_refresh_flag_reads_again_on_every_command(base_env, lab):
    """``--force-refresh`` on the helper (hot-path parse and click's ``get``) and on the
    umbrella: each run reads the secret again (refresh_grace = 0s: nothing counts as
    just refreshed)."""
    kv = Rotating(base_env, lab, "flag", refresh_grace="0s")
    expect_token(run("credhelper-vault", kv.env), kv.old)
    kv.rotate()
    expect_token(run("credhelper-vault", kv.env), kv.old)  # cached
    assert kv.reads() == 1

    expect_token(run(["credhelper-vault", "--force-refresh"], kv.env), kv.new)
    assert kv.reads() == 2
    expect_token(run(["credhelper", "get", "--provider", "vault", "--force-refresh"], kv.env),
                 kv.new)
    assert kv.reads() == 3
    expect_token(run(["credhelper-vault", "get", "--force-refresh"], kv.env), kv.new)
    assert kv.reads() == 4
    # Without the flag the entry the last forced run wrote is served.
    expect_token(run(["credhelper", "get", "--provider", "vault"], kv.env), kv.new)
    assert kv.reads() == 4


def test_forced_refresh_mints_a_new_identity_token(base_env, lab):
    """The dynamic case the fixtures provision: an identity token (a JWT Vault signs on
    every read). A forced refresh past refresh_grace gets a new one, which is cached."""
    env = helper_env(base_env, lab.server.address, auth="approle", role_id=lab.role_id,
                     secret_id_file=lab.secret_id_file, identity_token="gateway",
                     refresh_grace="1s")
    path = "identity/oidc/token/gateway"
    before = lab.server.count_requests(path, "read")
    first = run("credhelper-vault", env)
    token = first.stdout.decode().rstrip("\n")
    expect_token(first, token, lab.secret_id)
    assert lab.server.count_requests(path, "read") == before + 1
    expect_token(run("credhelper-vault", env), token, lab.secret_id)  # cached
    time.sleep(1.2)  # past refresh_grace, and a later iat than the first token's

    refreshed = run("credhelper-vault", _mid_session(env))
    assert refreshed.returncode == 0, refreshed.stderr
    new = refreshed.stdout.decode().rstrip("\n")
    expect_token(refreshed, new, lab.secret_id, token)
    assert new != token
    assert jwt_claims(new)["iat"] > jwt_claims(token)["iat"]
    assert jwt_claims(new)["sub"] == jwt_claims(token)["sub"]  # the same entity
    assert lab.server.count_requests(path, "read") == before + 2

    time.sleep(1.2)
    forced = run(["credhelper-vault", "--force-refresh"], env)
    newest = forced.stdout.decode().rstrip("\n")
    expect_token(forced, newest, lab.secret_id, token, new)
    assert newest not in (token, new)
    assert lab.server.count_requests(path, "read") == before + 3
    expect_token(run("credhelper-vault", env), newest, lab.secret_id)  # cached again
    assert lab.server.count_requests(path, "read") == before + 3
