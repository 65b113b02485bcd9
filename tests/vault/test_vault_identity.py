"""An identity switched through Vault's token file (issue: integrity, item 5), on real
OpenBao: the next run reads with the new token, never serves the previous one's secret."""

from __future__ import annotations

from pathlib import Path

from .vaultkit import helper_env, run


def test_a_token_written_to_the_vault_token_file_is_used_by_the_next_run(base_env, lab):
    allowed = lab.api("POST", "auth/token/create", policies=["gateway-read"])["auth"]
    refused = lab.api("POST", "auth/token/create", policies=["default"])["auth"]
    env = helper_env(base_env, lab.server.address, secret="secret/gateway", field="token")
    token_file = Path(env["HOME"]) / ".vault-token"
    token_file.write_text(allowed["client_token"] + "\n")
    for _ in range(2):  # a fetch, then a cache hit
        p = run("credhelper-vault", env)
        assert p.stdout == f"{lab.values['kv2']}\n".encode(), p.stderr
    token_file.write_text(refused["client_token"] + "\n")  # `bao login` as someone else
    p = run("credhelper-vault", env)
    assert p.returncode == 5 and p.stdout == b"", p.stderr  # asked with the new token
    token_file.write_text(allowed["client_token"] + "\n")
    assert run("credhelper-vault", env).stdout == f"{lab.values['kv2']}\n".encode()


def test_a_token_behind_a_file_reference_is_part_of_the_identity(base_env, lab, tmp_path):
    allowed = lab.api("POST", "auth/token/create", policies=["gateway-read"])["auth"]
    refused = lab.api("POST", "auth/token/create", policies=["default"])["auth"]
    token_file = tmp_path / "vault-token"
    token_file.write_text(allowed["client_token"] + "\n")
    env = helper_env(base_env, lab.server.address, secret="secret/gateway", field="token",
                     token=f"file:{token_file}")
    for _ in range(2):
        assert run("credhelper-vault", env).stdout == f"{lab.values['kv2']}\n".encode()
    token_file.write_text(refused["client_token"] + "\n")
    p = run("credhelper-vault", env)
    assert p.returncode == 5 and p.stdout == b"", p.stderr
