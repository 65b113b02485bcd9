"""Integrity of what is served: a configuration edited during a fetch, an identity
switched through a file, a damaged or foreign snapshot, an expiry no clock can show.

Real services: GNOME Keyring (private D-Bus session) for the keyring backend; the core's
rules through the counting test backend, whose fetches can be counted across processes.
The identity files of real backends: tests/vault/test_vault_identity.py (OpenBao) and
tests/aws/test_aws_identity.py (moto).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CANARY, COUNTING, fetches, run


def snapshot_file(env) -> Path:
    [path] = Path(env["CREDHELPER_CACHE_DIR"]).glob("snapshot-*.json")
    return path


# ---------------------------------------------------------------- item 4


def test_a_config_edited_during_the_fetch_is_read_by_the_next_run(counting_env, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[counting]\ntoken = "{CANARY}-old"\nbehaviour = "slow"\n')
    counting_env["CREDHELPER_CONFIG"] = str(config)
    del counting_env["CREDHELPER_COUNTING_TOKEN"]
    first = subprocess.Popen([sys.executable, COUNTING], env=counting_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not fetches(counting_env):  # the first run has read the file and is fetching
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.01)
    config.write_text(f'[counting]\ntoken = "{CANARY}-new"\nbehaviour = "slow"\n')
    out, _ = first.communicate(timeout=20)
    assert out == f"{CANARY}-old\n".encode()  # what it read
    second = run("counting", counting_env)
    assert second.stdout == f"{CANARY}-new\n".encode()
    assert len(fetches(counting_env)) == 2


# ---------------------------------------------------------------- item 10


DAMAGE = {
    "min_validity as text": lambda d: d["settings"].update(min_validity="300"),
    "NaN refresh_grace": lambda d: d["settings"].update(refresh_grace=float("nan")),
    "unknown cache mode": lambda d: d["settings"].update(cache="floppy"),
    "key not text": lambda d: d["settings"].update(key=12),
    "headers a list": lambda d: d["settings"].update(headers=["x"]),
    "header value a number": lambda d: d["settings"].update(headers={"X-A": 1}),
    "output a number": lambda d: d["settings"].update(output=7),
    "log_file a table": lambda d: d["settings"].update(log_file={}),
    "settings missing": lambda d: d.pop("settings"),
    "a newer release": lambda d: d.update(version="99.0"),
    "no version": lambda d: d.pop("version"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_or_foreign_snapshot_is_a_miss_that_the_full_path_rewrites(counting_env,
                                                                             damage):
    assert run("counting", counting_env).returncode == 0
    path = snapshot_file(counting_env)
    doc = json.loads(path.read_text())
    DAMAGE[damage](doc)
    path.write_text(json.dumps(doc))
    p = run(["counting", "--debug"], counting_env)
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode(), p.stderr
    assert "Traceback" not in p.stderr and "cache hit (full path)" in p.stderr
    assert len(fetches(counting_env)) == 1  # the entry was still good: no new fetch
    rewritten = json.loads(path.read_text())
    assert rewritten["settings"]["min_validity"] == 300 and rewritten["version"]
    p = run(["counting", "--debug"], counting_env)  # and the hot path serves again
    assert p.stdout == f"{CANARY}\n".encode() and "cache hit: counting" in p.stderr


# ---------------------------------------------------------------- item 11


def _jwt(exp_text: str) -> str:
    """A JWT whose exp is written as given (1e999 is valid JSON, read as infinity)."""
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    claims = b'{"sub": "alice", "exp": ' + exp_text.encode() + b"}"
    header = enc(b'{"alg": "RS256"}')
    return f"{header}.{enc(claims)}.{CANARY}"


@pytest.mark.parametrize("exp", ["1e999", "1e300", "253402300800"])
def test_an_expiry_no_clock_can_show_is_no_expiry_with_one_warning(keyring_env, exp):
    token = _jwt(exp)
    p = run(["credhelper-keyring", "store"], keyring_env, input=token + "\n")
    assert p.returncode == 0, p.stderr
    keyring_env["CREDHELPER_KEYRING_MAX_AGE"] = "1h"
    first = run("credhelper-keyring", keyring_env)
    assert first.returncode == 0 and first.stdout == f"{token}\n".encode(), first.stderr
    warnings = [line for line in first.stderr.splitlines() if "no date" in line]
    assert len(warnings) == 1 and "max_age" in warnings[0], first.stderr
    second = run(["credhelper-keyring", "--debug"], keyring_env)  # max_age: cached
    assert second.stdout == first.stdout and "cache hit" in second.stderr
    assert "no date" not in second.stderr
    status = run(["credhelper-keyring", "status"], keyring_env)  # the claim is shown as is
    assert status.returncode == 0 and "exp: " in status.stdout.decode(), status.stderr


def test_status_says_why_a_credential_without_expiry_is_not_cached(keyring_env):
    assert run(["credhelper-keyring", "store"], keyring_env, input=CANARY + "\n").returncode == 0
    assert run("credhelper-keyring", keyring_env).returncode == 0
    status = run(["credhelper-keyring", "status"], keyring_env).stdout.decode()
    assert "nothing cached" in status and "unless max_age is set" in status
    assert "cached:" in status and "location:" not in status  # the same label as an entry's


def test_an_expiry_no_clock_can_show_without_max_age_is_not_cached(counting_env):
    counting_env["CREDHELPER_COUNTING_EXPIRY"] = "inf"
    for _ in range(2):
        p = run("counting", counting_env)
        assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode(), p.stderr
        assert p.stderr.count("no date") == 1
    assert len(fetches(counting_env)) == 2
