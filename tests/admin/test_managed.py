"""Managed preferences, highest precedence of all. These tests run on Linux, so they drive
both real readers through their seams: the macOS reader reads fixture plist files from a
temporary folder (``managed.PLIST_DIR``), and the Windows reader talks to a fake of the
``winreg`` module (``managed.winreg``) that holds keys in memory. Both run in-process,
with ``managed.platform`` set to the platform under test."""

from __future__ import annotations

import io
import plistlib
import sys
from pathlib import Path

import pytest

from credhelper import config, managed, registry, run as run_mod
from credhelper.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import counting_helper  # noqa: E402, F401  registers the counting test backend

KEYRING = registry.load("keyring")


@pytest.fixture
def mac(tmp_path, monkeypatch):
    """The macOS reader over a temporary 'Managed Preferences' folder, user alice."""
    root = tmp_path / "Managed Preferences"
    (root / "alice").mkdir(parents=True)
    monkeypatch.setattr(managed, "platform", "darwin")
    monkeypatch.setattr(managed, "PLIST_DIR", str(root))
    monkeypatch.setattr(managed, "_user_name", lambda: "alice")

    def write(tables, user=False):
        path = (root / "alice" if user else root) / f"{managed.DOMAIN}.plist"
        path.write_bytes(plistlib.dumps(tables, fmt=plistlib.FMT_BINARY))
        return path

    return write


class FakeWinreg:
    """Just enough of ``winreg`` for the reader: keys are dicts, values (data, type)."""

    HKEY_LOCAL_MACHINE, HKEY_CURRENT_USER = "HKLM", "HKCU"
    REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ = 1, 2, 3, 4, 7

    def __init__(self):
        self.hives = {"HKLM": {}, "HKCU": {}}
        self.clock = 1000

    def set(self, hive, path, name, data, kind=REG_SZ):
        node = self.hives[hive]
        for part in path.split("\\"):
            node = node.setdefault(part.lower(), {"values": {}, "keys": {}, "name": part, "time": 0})
            node = node["keys"] if part != path.split("\\")[-1] else node
        self.clock += 1
        node["values"][name] = (data, kind)
        node["time"] = self.clock

    class Key:
        def __init__(self, node):
            self.node = node

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def OpenKey(self, parent, path):
        node = {"keys": self.hives[parent]} if isinstance(parent, str) else {"keys": parent.node["keys"]}
        for part in path.split("\\"):
            node = node["keys"].get(part.lower())
            if node is None:
                raise FileNotFoundError(path)
        return self.Key(node)

    def QueryInfoKey(self, key):
        return len(key.node["keys"]), len(key.node["values"]), key.node["time"]

    def EnumKey(self, key, i):
        return list(key.node["keys"].values())[i]["name"]

    def EnumValue(self, key, i):
        name, (data, kind) = list(key.node["values"].items())[i]
        return name, data, kind

    def QueryValueEx(self, key, name):
        if name not in key.node["values"]:
            raise FileNotFoundError(name)
        return key.node["values"][name]


@pytest.fixture
def win(monkeypatch):
    fake = FakeWinreg()
    monkeypatch.setattr(managed, "platform", "win32")
    monkeypatch.setattr(managed, "winreg", fake)
    return fake


def load(env, provider=KEYRING):
    return config.load(provider, env)


def test_managed_plist_beats_environment_and_files(mac, base_env, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[keyring]\nservice = "from-file"\nusername = "file-user"\ntimeout = "9s"\n')
    env = {**base_env, "CREDHELPER_CONFIG": str(cfg), "CREDHELPER_KEYRING_SERVICE": "from-env"}
    path = mac({"keyring": {"service": "from-mdm"}, "defaults": {"timeout": "12"}})
    conf = load(env)
    assert conf["service"] == "from-mdm" and str(path) in conf.source("service")
    assert conf["timeout"] == 12.0 and "managed preferences" in conf.source("timeout")
    assert conf["username"] == "file-user"  # what the profile leaves out still comes from below


def test_the_users_managed_plist_beats_the_machines(mac, base_env):
    mac({"keyring": {"service": "machine", "username": "machine-user"}})
    mac({"keyring": {"service": "alice"}}, user=True)
    conf = load(base_env)
    assert conf["service"] == "alice" and conf["username"] == "machine-user"


def test_managed_values_are_parsed_like_environment_variables(mac, base_env):
    mac({"keyring": {"headers": '{"X-Team": "ml"}', "min_validity": "2m", "max_age": 600}})
    conf = load(base_env)
    assert conf["headers"] == {"X-Team": "ml"} and conf["min_validity"] == 120.0
    assert conf["max_age"] == 600.0


def test_a_bad_managed_value_names_the_key_and_the_source(mac, base_env):
    path = mac({"keyring": {"timeout": "soon"}})
    with pytest.raises(ConfigError) as e:
        load(base_env)
    assert "[keyring] timeout" in e.value.message and str(path) in e.value.message
    mac({"keyring": {"colour": "red"}})
    with pytest.raises(ConfigError, match=r"unknown key \[keyring\] colour in managed preferences"):
        load(base_env)
    mac({"bogus": {"x": "1"}})
    with pytest.raises(ConfigError, match="unknown table"):
        load(base_env)


def test_a_damaged_plist_is_a_configuration_error(mac, base_env):
    path = mac({})
    path.write_bytes(b"not a plist")
    with pytest.raises(ConfigError, match="not a valid plist"):
        load(base_env)
    mac({"keyring": "service"})
    with pytest.raises(ConfigError, match="must be a dictionary"):
        load(base_env)


def test_plist_identity_changes_with_the_file(mac, base_env):
    assert managed.identity(base_env) == managed.identity(base_env)
    before = managed.identity(base_env)
    mac({"keyring": {"service": "a"}})
    after = managed.identity(base_env)
    assert before != after
    mac({"keyring": {"service": "a-longer-name"}})
    assert managed.identity(base_env) != after


def test_policy_key_hklm_beats_hkcu_beats_environment(win, base_env):
    win.set("HKCU", r"SOFTWARE\Policies\credhelper\keyring", "service", "hkcu")
    win.set("HKCU", r"SOFTWARE\Policies\credhelper\keyring", "username", "hkcu-user")
    win.set("HKLM", r"SOFTWARE\Policies\credhelper\keyring", "service", "hklm")
    win.set("HKLM", r"SOFTWARE\Policies\credhelper\defaults", "max_age", 900, FakeWinreg.REG_DWORD)
    conf = load({**base_env, "CREDHELPER_KEYRING_SERVICE": "env", "CREDHELPER_KEYRING_USERNAME": "env"})
    assert conf["service"] == "hklm" and conf["username"] == "hkcu-user" and conf["max_age"] == 900.0
    assert r"HKLM\SOFTWARE\Policies\credhelper" in conf.source("service")


def test_policy_values_outside_a_table_or_of_odd_types_are_errors(win, base_env):
    win.set("HKLM", r"SOFTWARE\Policies\credhelper\keyring", "service", b"\x00", FakeWinreg.REG_BINARY)
    with pytest.raises(ConfigError, match=r"keyring service: unsupported registry type"):
        load(base_env)
    win2 = FakeWinreg()
    win2.set("HKLM", r"SOFTWARE\Policies\credhelper", "service", "x")
    managed.winreg = win2
    with pytest.raises(ConfigError, match="not inside a table subkey"):
        load(base_env)


def test_policy_identity_follows_last_write_times(win, base_env):
    before = managed.identity(base_env)
    win.set("HKLM", r"SOFTWARE\Policies\credhelper\keyring", "service", "a")
    after = managed.identity(base_env)
    assert after != before
    win.set("HKLM", r"SOFTWARE\Policies\credhelper\keyring", "service", "b")
    assert managed.identity(base_env) != after


def test_no_managed_source_elsewhere(base_env, monkeypatch):
    monkeypatch.setattr(managed, "platform", "linux")
    assert managed.read(base_env) is None and managed.identity(base_env) == ["linux"]


def helper(env) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_mod.helper_main("counting", [], env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_end_to_end_managed_wins_and_a_change_reaches_the_next_run(mac, counting_env, tmp_path):
    """The whole helper run, in-process: the managed token beats the environment's and
    the config file's, and changing the profile invalidates the hot path's snapshot."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('[counting]\ntoken = "file-token"\n')
    env = {**counting_env, "CREDHELPER_CONFIG": str(cfg), "CREDHELPER_COUNTING_TOKEN": "env-token"}
    mac({"counting": {"token": "managed-token-1"}})
    assert helper(env)[:2] == (0, "managed-token-1\n")
    assert helper(env)[:2] == (0, "managed-token-1\n")  # a cache hit: no second fetch
    assert len(open(env["CREDHELPER_COUNTING_COUNT_FILE"]).read().splitlines()) == 1
    mac({"counting": {"token": "managed-token-2", "ttl": "2h"}})
    assert helper(env)[:2] == (0, "managed-token-2\n")
    assert len(open(env["CREDHELPER_COUNTING_COUNT_FILE"]).read().splitlines()) == 2


def test_doctor_names_the_managed_source(mac, base_env):
    path = mac({"keyring": {"service": "from-mdm"}})
    out, err = io.StringIO(), io.StringIO()
    run_mod.umbrella_main(["doctor", "-p", "keyring"], env=base_env, stdout=out, stderr=err)
    text = out.getvalue()
    assert f"managed preferences: managed preferences {path}" in text
    assert f"service: from-mdm  ([keyring] service in managed preferences {path})" in text
