"""A KV secret that is no valid HTTP header value, read from a real OpenBao: exit 5 naming
the character's kind and position, nothing printed, no cache entry, and the next run
reads the secret again (so a corrected value is served at once).

A lone surrogate cannot be stored as such: the KV JSON "\\ud800" is kept by OpenBao (Go)
as U+FFFD, a non-ASCII character, which the helper refuses the same way.
"""

from __future__ import annotations

import os

import pytest

from .vaultkit import CANARY, failure, helper_env, run

CASES = [
    (f"{CANARY}-with space", "a space at position 26 of 31"),
    (f"{CANARY}\x0bvt", "a control character (U+000B) at position 21"),
    (f"{CANARY}\u2028ls", "(U+2028) at position 21"),
    (f"\x1b[31m{CANARY}", "an escape character"),
    (f"{CANARY}\ud800", "a non-ASCII character at position 21"),
]


def entries(env) -> list[str]:
    folder = env["CREDHELPER_CACHE_DIR"]
    return [n for n in os.listdir(folder) if n.endswith(".v1.json")] if os.path.isdir(folder) else []


@pytest.mark.parametrize("value, phrase", CASES, ids=["space", "vt", "u2028", "ansi", "surrogate"])
def test_a_bad_kv_value_exits_5_is_not_cached_and_is_read_again(base_env, lab, value, phrase):
    path = f"chars-{CASES.index((value, phrase))}"
    lab.api("POST", f"secret/data/{path}", data={"token": value})
    env = helper_env(base_env, lab.server.address, secret=f"secret/{path}", field="token")
    env["VAULT_TOKEN"] = "root"
    before = lab.server.count_requests(f"secret/data/{path}", "read")
    failure(run("credhelper-vault", env), 5, "not a valid HTTP header value", phrase)
    assert not entries(env)
    good = f"good-{CANARY}"
    lab.api("POST", f"secret/data/{path}", data={"token": good})
    p = run("credhelper-vault", env)
    assert p.returncode == 0 and p.stdout == f"{good}\n".encode(), p.stderr
    assert lab.server.count_requests(f"secret/data/{path}", "read") == before + 2
    assert entries(env)
