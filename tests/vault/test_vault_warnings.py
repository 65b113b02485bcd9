"""Vault answers whose warnings quote a secret of the same answer, on the real OpenBao.

Vault and OpenBao log every ``warnings`` entry of an answer (credhelper-vault writes them
to the debug log). OpenBao cannot be made to put a token it has just minted, or a secret
it reads out, into a warning: the warnings it sends quote parameter names and TTLs. So the
real answer is edited on its way back by tests/faultproxy.py (``Fault.edit``), which adds
such a warning; everything else in it is what OpenBao sent. Every secret of an answer
must be masked before anything from that answer is logged: on stderr (--debug) and in
``log_file`` (base_env's suite-wide debug log).
"""

from __future__ import annotations

import pytest
from faultproxy import Fault, FaultProxy
from services import MINTED_SECRETS

from .vaultkit import OTHER_FIELD_VALUE, expect_token, helper_env, run


@pytest.fixture
def proxy(lab):
    p = FaultProxy(lab.server.address).start()
    yield p
    p.stop()


def _quoting(found: list, *where: str):
    """An edit that adds a warning quoting every string under ``where`` in the answer (a
    path of keys), noting them in ``found``."""

    def change(doc: dict) -> dict:
        part = doc
        for key in where:
            part = part[key]
        values = [part] if isinstance(part, str) else [v for v in part.values()
                                                       if isinstance(v, str)]
        found.extend(values)
        doc["warnings"] = (doc.get("warnings") or []) + [f"echo: {v}" for v in values]
        return doc

    return change


def _log(base_env) -> str:
    with open(base_env["CREDHELPER_DEFAULTS_LOG_FILE"], encoding="utf-8") as f:
        return f.read()


def _assert_masked(proc, base_env, values: list) -> None:
    assert values, "the proxy edited no answer"
    log = _log(base_env)
    # The warning was logged, with the secret masked.
    assert "Vault warning on" in proc.stderr and "echo: ***" in proc.stderr, proc.stderr
    assert "echo: ***" in log
    for value in values:
        assert value not in proc.stderr, "a secret of the answer reached stderr"
        assert value not in log, "a secret of the answer reached the log file"


def test_a_login_token_quoted_in_a_warning_is_masked(base_env, lab, proxy):
    env = helper_env(base_env, proxy.url, secret="secret/gateway", field="token",
                     auth="approle", role_id=lab.role_id, secret_id_file=lab.secret_id_file)
    tokens: list[str] = []
    proxy.plan(Fault.edit(_quoting(tokens, "auth", "client_token")), match="/login")
    proc = run(["credhelper-vault", "--debug"], env)
    expect_token(proc, lab.values["kv2"])
    assert [outcome for _, path, outcome in proxy.seen if "/login" in path] == ["edited 200"]
    _assert_masked(proc, base_env, tokens)
    MINTED_SECRETS.update(tokens)  # and in every later run's stderr and log file


def test_secret_values_quoted_in_a_warning_of_the_read_are_masked(base_env, lab, proxy):
    env = helper_env(base_env, proxy.url, secret="secret/gateway", field="token",
                     kv_version=2)
    env["VAULT_TOKEN"] = "root"
    values: list[str] = []
    proxy.plan(Fault.edit(_quoting(values, "data", "data")), match="/v1/secret/data/")
    proc = run(["credhelper-vault", "--debug"], env)
    expect_token(proc, lab.values["kv2"])
    # The credential printed and the field never asked for: neither may be logged.
    assert sorted(values) == sorted([lab.values["kv2"], OTHER_FIELD_VALUE])
    _assert_masked(proc, base_env, values)
