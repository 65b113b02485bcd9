"""Checks that only make sense for built binaries (CREDHELPER_TEST_BINARIES is set).

The behavioural contract is not repeated here: the keyring and Vault test suites run a
second time against the binaries (see scripts/test), through conftest.script().
"""

import os
import subprocess
import sys
from pathlib import Path

from conftest import BINARIES, CANARY, run, script


def test_version_names_commit_layout_and_backend_library(base_env):
    for name, library in (("credhelper-keyring", "keyring "), ("credhelper-vault", "hvac ")):
        p = run([name, "--version"], base_env)
        text = p.stdout.decode()
        assert p.returncode == 0 and text.startswith(f"{name} "), p.stderr
        assert library in text and "commit " in text and "binary" in text, text


def test_binary_prints_exactly_what_the_source_install_prints(keyring_env):
    assert run(["credhelper-keyring", "store"], keyring_env, input=CANARY).returncode == 0
    keyring_env["CREDHELPER_KEYRING_MAX_AGE"] = "1h"
    binary = run("credhelper-keyring", keyring_env)  # fetch and cache
    source = subprocess.run([str(Path(sys.executable).parent / "credhelper-keyring")],
                            env=keyring_env, capture_output=True)  # cache hit of the same entry
    assert binary.returncode == source.returncode == 0
    assert binary.stdout == source.stdout == f"{CANARY}\n".encode()


def test_binaries_are_built_where_the_tests_look():
    assert BINARIES and os.path.isdir(BINARIES)
    assert script("credhelper-vault").startswith(BINARIES)
