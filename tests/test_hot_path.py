"""A cache hit is the hot path: it must not import click, TOML, typing or any backend."""

import json
import subprocess
import sys

import platformdirs
import pytest
from conftest import CANARY, COUNTING, fetches, run

from credhelper import paths

HEAVY = ["click", "keyring", "hvac", "boto3", "botocore", "msal", "authlib", "requests",
         "tomllib", "tomli", "typing", "platformdirs", "filelock", "fasteners", "hashlib", "logging",
         "threading", "credhelper.config", "credhelper.cli", "credhelper.providers"]

PROBE = """
import json, sys
sys.argv = [sys.argv[0]]
import counting_helper  # registers the test backend (it imports the provider base)
from credhelper.run import helper_main
before = set(sys.modules)
code = helper_main("counting")
sys.stderr.write(json.dumps({"code": code, "new": sorted(set(sys.modules) - before)}) + "\\n")
"""


def test_a_cache_hit_imports_nothing_heavy(counting_env):
    assert run("counting", counting_env).returncode == 0  # cold: fetch, snapshot
    env = {**counting_env, "PYTHONPATH": str(__import__("pathlib").Path(COUNTING).parent)}
    p = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    report = json.loads(p.stderr.splitlines()[-1])
    assert report["code"] == 0 and p.stdout == f"{CANARY}\n"
    assert len(fetches(counting_env)) == 1
    imported = report["new"]
    assert not [m for m in imported if any(m == h or m.startswith(h + ".") for h in HEAVY)], imported


def test_the_installed_script_hit_path_imports_nothing_heavy(keyring_env):
    """The real console script, through python -X importtime: no click, no keyring."""
    from conftest import installed_script as script

    jwt = _jwt(3600)
    assert run(["credhelper-keyring", "store"], keyring_env, input=jwt).returncode == 0
    assert run("credhelper-keyring", keyring_env).stdout == f"{jwt}\n".encode()
    p = subprocess.run([sys.executable, "-X", "importtime", script("credhelper-keyring")],
                       env=keyring_env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == f"{jwt}\n"
    modules = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}
    heavy = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert "credhelper.run" in modules and not heavy, heavy
    assert "credhelper.fullpath" not in modules  # the full path is not even imported


def _jwt(ttl):
    import base64
    import time

    def enc(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc({'sub': 'x', 'exp': int(time.time()) + ttl})}.sig"


@pytest.mark.parametrize("xdg", [None, "/somewhere/cache"])
def test_fast_cache_dir_agrees_with_platformdirs_linux(monkeypatch, xdg):
    if xdg:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    else:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("CREDHELPER_CACHE_DIR", raising=False)
    import os

    assert paths.user_cache_dir(os.environ) == platformdirs.user_cache_dir("credhelper", appauthor=False)


@pytest.mark.parametrize("config_home, config_dirs", [
    (None, None), ("/somewhere/config", "/opt/etc:/etc/xdg"), ("  ", " ")])
def test_config_dirs_agree_with_platformdirs_linux(monkeypatch, config_home, config_dirs):
    import os

    for name, value in (("XDG_CONFIG_HOME", config_home), ("XDG_CONFIG_DIRS", config_dirs)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("CREDHELPER_CONFIG", raising=False)
    [(_, system), (_, user)] = paths.config_files(os.environ)
    assert system == os.path.join(platformdirs.site_config_dir("credhelper", appauthor=False), "config.toml")
    assert user == os.path.join(platformdirs.user_config_dir("credhelper", appauthor=False), "config.toml")


def test_fast_cache_dir_agrees_with_platformdirs_macos(monkeypatch):
    """platformdirs' macOS rules are plain path logic, so they can be checked here."""
    from platformdirs.macos import MacOS

    monkeypatch.setattr(sys, "platform", "darwin")
    assert paths.user_cache_dir({}) == MacOS("credhelper", appauthor=False).user_cache_dir
