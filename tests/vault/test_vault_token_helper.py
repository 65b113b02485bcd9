"""`auth = "token"` honours the Vault CLI's `token_helper` (in ~/.vault, or the file
VAULT_CONFIG_PATH names): `HELPER get` prints the token, as the Vault CLI runs it.

Real: the OpenBao server and the tokens it mints. The token helpers are small shell
scripts written by each test, which record how they were called.
"""

from __future__ import annotations

import os
import stat
import time

from .vaultkit import expect_token, failure, helper_env, run

KV2 = {"secret": "secret/gateway", "field": "token"}


def make_helper(tmp_path, body: str, name: str = "token-helper") -> str:
    """A token helper script whose calls are appended to calls.txt next to it."""
    path = tmp_path / name
    path.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/calls.txt"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def calls(tmp_path) -> list[str]:
    try:
        return (tmp_path / "calls.txt").read_text().splitlines()
    except FileNotFoundError:
        return []


def configure(env, helper: str, where: str | None = None) -> None:
    """Name ``helper`` in the Vault CLI's configuration (~/.vault, or ``where``)."""
    path = where or os.path.join(env["HOME"], ".vault")
    with open(path, "w") as f:
        f.write(f'# the Vault CLI\'s configuration\ntoken_helper = "{helper}"\n')


def new_token(lab, policies=("gateway-read",)) -> str:
    return lab.api("POST", "auth/token/create", policies=list(policies),
                   ttl="1h")["auth"]["client_token"]


def test_the_token_comes_from_the_helper_not_the_token_file(base_env, lab, tmp_path):
    token = new_token(lab)
    helper = make_helper(tmp_path, f"printf '%s\\n' '{token}'")
    env = helper_env(base_env, lab.server.address, **KV2)
    configure(env, helper)
    with open(os.path.join(env["HOME"], ".vault-token"), "w") as f:
        f.write("not-the-token\n")  # the Vault CLI does not read it when a helper is set
    proc = run(["credhelper-vault", "--debug"], {**env, "CLAUDE_HELPER_CONTEXT": "background"})
    expect_token(proc, lab.values["kv2"], token)
    assert calls(tmp_path) == ["get"]
    assert f"asking the Vault token helper {helper}" in proc.stderr
    status = run(["credhelper-vault", "status"], env)
    assert f"token helper {helper}" in status.stderr + status.stdout.decode()


def test_vault_config_path_names_the_file_and_vault_token_still_wins(base_env, lab, tmp_path):
    token = new_token(lab)
    helper = make_helper(tmp_path, f"echo '{token}'")
    env = helper_env(base_env, lab.server.address, **KV2)
    configure(env, helper, str(tmp_path / "vault.hcl"))
    env["VAULT_CONFIG_PATH"] = str(tmp_path / "vault.hcl")
    expect_token(run("credhelper-vault", env), lab.values["kv2"], token)
    assert calls(tmp_path) == ["get"]
    other = {**env, "VAULT_TOKEN": "root", "CREDHELPER_VAULT_SECRET": "kv1/gateway"}
    expect_token(run("credhelper-vault", other), lab.values["kv1"])
    assert calls(tmp_path) == ["get"]  # VAULT_TOKEN set: the helper is not run


def test_a_new_helper_is_a_new_identity_for_the_cache(base_env, lab, tmp_path):
    """The helper's path and content stand for the token it prints (a command cannot run
    on a cache hit): replacing the helper is seen by the next run."""
    good = make_helper(tmp_path, f"echo '{new_token(lab)}'")
    env = helper_env(base_env, lab.server.address, **KV2)
    configure(env, good)
    expect_token(run("credhelper-vault", env), lab.values["kv2"])
    hit = run(["credhelper-vault", "--debug"], env)
    assert "cache hit" in hit.stderr and calls(tmp_path) == ["get"]
    time.sleep(0.01)  # another mtime, whatever the file system's resolution
    make_helper(tmp_path, f"echo '{new_token(lab, ('default',))}'")  # the same path
    failure(run("credhelper-vault", env), 5, "permission denied")
    assert calls(tmp_path) == ["get", "get"]


def test_a_failing_helper_exits_3_with_its_reason(base_env, lab, tmp_path):
    helper = make_helper(tmp_path, "echo 'the keychain is locked' >&2\nexit 1")
    env = helper_env(base_env, lab.server.address, **KV2)
    configure(env, helper)
    failure(run("credhelper-vault", env), 3, f"the Vault token helper {helper} failed (exit 1): "
            "the keychain is locked", "vault login")


def test_a_helper_without_a_token_exits_3(base_env, lab, tmp_path):
    helper = make_helper(tmp_path, "exit 0")
    env = helper_env(base_env, lab.server.address, **KV2)
    configure(env, helper)
    failure(run("credhelper-vault", env), 3, "has no token", "vault login")


def test_a_helper_that_hangs_ends_at_the_deadline(base_env, lab, tmp_path):
    helper = make_helper(tmp_path, "exec sleep 30")
    env = helper_env(base_env, lab.server.address, timeout="2s", **KV2)
    configure(env, helper)
    started = time.monotonic()
    proc = run("credhelper-vault", env)
    elapsed = time.monotonic() - started
    failure(proc, 4, "did not answer within 2s")
    assert elapsed < 6, elapsed


def test_a_helper_that_is_missing_or_relative_is_a_configuration_error(base_env, lab, tmp_path):
    env = helper_env(base_env, lab.server.address, **KV2)
    configure(env, str(tmp_path / "nowhere"))
    failure(run("credhelper-vault", env), 2, "does not exist", "token_helper in")
    configure(env, "bin/helper")
    failure(run("credhelper-vault", env), 2, "is not an absolute path")
    with open(os.path.join(env["HOME"], ".vault"), "w") as f:
        f.write("token_helper = /no/quotes\n")
    failure(run("credhelper-vault", env), 2, "cannot read the token_helper line")


def test_a_helper_printing_several_lines_is_refused(base_env, lab, tmp_path):
    helper = make_helper(tmp_path, "echo one; echo two")
    env = helper_env(base_env, lab.server.address, **KV2)
    configure(env, helper)
    failure(run("credhelper-vault", env), 2, "printed several lines")


def test_an_explicit_token_file_beats_the_helper(base_env, lab, tmp_path):
    helper = make_helper(tmp_path, "echo never-used")
    token_file = tmp_path / "token"
    token_file.write_text("root\n")
    env = helper_env(base_env, lab.server.address, token_file=str(token_file), **KV2)
    configure(env, helper)
    expect_token(run("credhelper-vault", env), lab.values["kv2"])
    assert calls(tmp_path) == []
