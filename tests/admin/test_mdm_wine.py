"""Every exported .reg file, imported into a real registry: Wine's regedit (Debian package
wine, installed by scripts/test), read back with ``wine reg query``. One Wine prefix for
the session, headless (no display, WINEDEBUG=-all); its wineserver is stopped at the end.

Re-importing a smaller export must remove what it dropped: the helper's own key and
Claude Code's key are replaced whole, the gateway values of Claude's key one by one (the
administrator's other Claude policies stay)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest
from conftest import run

BASE = ["credhelper", "mdm", "export", "--base-url", "https://llm-gateway.example.com"]
POLICIES = r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies"
CLAUDE, CODE, HELPER = POLICIES + r"\Claude", POLICIES + r"\ClaudeCode", POLICIES + r"\credhelper"
WINDOWS_HELPER = r"C:\Program Files\credhelper\credhelper-vault\credhelper-vault.exe"


class Wine:
    def __init__(self, prefix: str) -> None:
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": prefix,
                    "WINEPREFIX": prefix, "WINEDEBUG": "-all", "LANG": "C.UTF-8"}

    def __call__(self, *args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
        # Output goes to files, not pipes: the services wine starts inherit the pipes and
        # outlive the command, so reading a pipe to its end would wait for them.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            done = subprocess.run(["wine", *args], env=self.env, cwd=cwd, stdout=out,
                                  stderr=err, stdin=subprocess.DEVNULL, timeout=120)
            out.seek(0)
            err.seek(0)
            done.stdout, done.stderr = out.read(), err.read()
        return done

    def import_reg(self, path) -> None:
        # regedit takes the file relative to its folder: a Unix path would read as switches.
        done = self("regedit", "/S", path.name, cwd=str(path.parent))
        assert done.returncode == 0, done.stderr

    def query(self) -> dict[str, dict[str, tuple[str, str]]]:
        """Every key under HKLM\\SOFTWARE\\Policies: {key: {name: (type, value)}}."""
        done = self("reg", "query", POLICIES, "/s")
        assert done.returncode == 0, done.stderr
        keys: dict[str, dict[str, tuple[str, str]]] = {}
        current = None
        for line in done.stdout.decode("utf-8", "replace").splitlines():
            if line.startswith("HKEY_"):
                current = keys.setdefault(line.strip(), {})
            elif line.startswith("    ") and current is not None:
                m = re.fullmatch(r"    (.*?)    (REG_\w+)    (.*)", line.rstrip("\r"))
                assert m, repr(line)
                current[m.group(1)] = (m.group(2), m.group(3))
        return keys


@pytest.fixture(scope="session")
def wine(tmp_path_factory):
    if not shutil.which("wine"):
        pytest.fail("wine is missing: scripts/test installs the Debian package wine")
    prefix = str(tmp_path_factory.mktemp("wine"))
    wine = Wine(prefix)
    started = time.monotonic()
    # A persistent wineserver: otherwise it exits 3 s after each command, and every next
    # command pays for starting it again.
    subprocess.run(["wineserver", "-p"], env=wine.env, timeout=60, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = wine("wineboot", "-i")
    assert done.returncode == 0, done.stderr[-2000:]
    print(f"wine prefix ready in {time.monotonic() - started:.1f}s")
    yield wine
    for flag in ("-k", "-w"):  # kill the server, then wait until it is gone
        subprocess.run(["wineserver", flag], env=wine.env, timeout=60, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def registry(wine, tmp_path):
    """The policy keys emptied, then the administrator's own Claude policy set."""
    clean = tmp_path / "clean.reg"
    clean.write_bytes("\r\n".join([
        "Windows Registry Editor Version 5.00", "", f"[-{CLAUDE}]", f"[-{CODE}]", f"[-{HELPER}]",
        "", f"[{CLAUDE}]", '"disableAutoUpdates"="true"', ""]).encode("utf-16"))
    wine.import_reg(clean)
    return wine


def export(tmp_path, name, *args, env):
    out = tmp_path / name
    env = {k: v for k, v in env.items() if k != "CREDHELPER_DEFAULTS_LOG_FILE"}
    p = run(BASE + list(args) + ["--out", str(out)], env)
    assert p.returncode == 0, p.stderr
    return out


def strings(values: dict[str, tuple[str, str]]) -> dict[str, str]:
    assert all(kind == "REG_SZ" for kind, _ in values.values()), values
    return {name: value for name, (_, value) in values.items()}


def test_claude_desktop_reg(registry, base_env, tmp_path):
    big = export(tmp_path, "big", "--provider", "vault", "--windows-helper", WINDOWS_HELPER,
                 "--helper", "/opt/credhelper/credhelper-vault", "--ttl", "1800",
                 "--timeout", "120", "--header", 'X-Team: m"l\\x', "--model", "claude-sonnet-5",
                 "--set", "vault.address=https://vault.example.com:8200",
                 "--set", "vault.auth=jwt", "--set", "defaults.timeout=20s", env=base_env)
    registry.import_reg(big / "claude-gateway.reg")
    keys = registry.query()
    assert strings(keys[CLAUDE]) == {
        "disableAutoUpdates": "true",  # the administrator's own, untouched
        "inferenceProvider": "gateway",
        "inferenceGatewayBaseUrl": "https://llm-gateway.example.com",
        "inferenceGatewayAuthScheme": "bearer",
        "inferenceCredentialHelper": WINDOWS_HELPER,
        "inferenceCredentialHelperTtlSec": "1800",
        "inferenceCredentialHelperTimeoutSec": "120",
        "inferenceCustomHeaders": json.dumps({"X-Team": 'm"l\\x'}, separators=(",", ":")),
        "inferenceModels": '["claude-sonnet-5"]'}
    assert strings(keys[HELPER + r"\vault"]) == {"address": "https://vault.example.com:8200",
                                                  "auth": "jwt"}
    assert strings(keys[HELPER + r"\defaults"]) == {"timeout": "20s"}

    small = export(tmp_path, "small", "--helper", "/opt/credhelper/credhelper-vault",
                   "--windows-helper", WINDOWS_HELPER, "--set", "vault.auth=token", env=base_env)
    registry.import_reg(small / "claude-gateway.reg")
    keys = registry.query()
    assert strings(keys[CLAUDE]) == {
        "disableAutoUpdates": "true", "inferenceProvider": "gateway",
        "inferenceGatewayBaseUrl": "https://llm-gateway.example.com",
        "inferenceGatewayAuthScheme": "bearer", "inferenceCredentialHelper": WINDOWS_HELPER}
    assert strings(keys[HELPER + r"\vault"]) == {"auth": "token"}
    assert HELPER + r"\defaults" not in keys

    # The app's sign-in replaces the helper: its values and the helper's key go.
    sign_in = export(tmp_path, "sign-in", "--credential-kind", "interactive", env=base_env)
    registry.import_reg(sign_in / "claude-gateway.reg")
    keys = registry.query()
    assert strings(keys[CLAUDE]) == {
        "disableAutoUpdates": "true", "inferenceProvider": "gateway",
        "inferenceGatewayBaseUrl": "https://llm-gateway.example.com",
        "inferenceGatewayAuthScheme": "bearer", "inferenceCredentialKind": "interactive"}
    assert [k for k in keys if k.startswith(HELPER)] == [HELPER]  # emptied


def test_claude_code_reg(registry, base_env, tmp_path):
    stray = tmp_path / "stray.reg"  # an old value Claude Code does not read
    stray.write_bytes("\r\n".join(["Windows Registry Editor Version 5.00", "", f"[{CODE}]",
                                   '"Old"="1"', ""]).encode("utf-16"))
    registry.import_reg(stray)
    big = export(tmp_path, "big", "--app", "claude-code", "--helper", "/opt/credhelper/h",
                 "--windows-helper", WINDOWS_HELPER, "--ttl", "900", "--header", "X-Team: ml",
                 "--set", "vault.address=https://vault.example.com", env=base_env)
    registry.import_reg(big / "claude-code.reg")
    keys = registry.query()
    assert list(keys[CODE]) == ["Settings"]
    assert json.loads(strings(keys[CODE])["Settings"]) == {
        "apiKeyHelper": f'"{WINDOWS_HELPER}" --force-refresh',
        "env": {"ANTHROPIC_BASE_URL": "https://llm-gateway.example.com",
                "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "900000",
                "ANTHROPIC_CUSTOM_HEADERS": "X-Team: ml"}}
    assert strings(keys[HELPER + r"\vault"]) == {"address": "https://vault.example.com"}
    assert strings(keys[CLAUDE]) == {"disableAutoUpdates": "true"}  # not Claude Code's

    small = export(tmp_path, "small", "--app", "claude-code", "--helper", "/opt/credhelper/h",
                   "--windows-helper", WINDOWS_HELPER, env=base_env)
    registry.import_reg(small / "claude-code.reg")
    keys = registry.query()
    assert json.loads(strings(keys[CODE])["Settings"])["env"] == {
        "ANTHROPIC_BASE_URL": "https://llm-gateway.example.com"}
    assert HELPER + r"\vault" not in keys


def test_both_apps_reg(registry, base_env, tmp_path):
    out = export(tmp_path, "both", "--app", "both", "--provider", "keyring",
                 "--windows-helper", WINDOWS_HELPER, "--set", "keyring.service=gw", env=base_env)
    for name in ("claude-gateway.reg", "claude-code.reg"):
        registry.import_reg(out / name)
    keys = registry.query()
    assert strings(keys[CLAUDE])["inferenceCredentialHelper"] == WINDOWS_HELPER
    settings = json.loads(strings(keys[CODE])["Settings"])
    assert settings["apiKeyHelper"] == f'"{WINDOWS_HELPER}" --force-refresh'
    assert strings(keys[HELPER + r"\keyring"]) == {"service": "gw"}
