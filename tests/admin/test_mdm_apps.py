"""mdm export for the app's own sign-in and for Claude Code, and lint of what it writes,
run as the installed umbrella. The exported apiKeyHelper is run through /bin/sh, as
Claude Code runs it."""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
import sys

import pytest
from conftest import assert_failure, run

from admin.test_mdm import read_reg

BASE = ["credhelper", "mdm", "export", "--base-url", "https://llm-gateway.example.com"]
CODE_FILES = {"managed-settings.json", "claude-code.mobileconfig", "claude-code.reg"}
DESKTOP_FILES = {"claude-gateway.mobileconfig", "claude-gateway.reg"}


def export(tmp_path, *args, env, name="out"):
    out = tmp_path / name
    env = {k: v for k, v in env.items() if k != "CREDHELPER_DEFAULTS_LOG_FILE"}
    p = run(BASE + list(args) + ["--out", str(out)], env)
    assert p.returncode == 0, p.stderr
    return out, p


def lint(paths, env):
    p = run(["credhelper", "mdm", "lint", *map(str, paths)], env)
    assert "Traceback" not in p.stderr
    return p, p.stdout.decode()


def app_values(out) -> dict:
    content = plistlib.loads((out / "claude-gateway.mobileconfig").read_bytes())["PayloadContent"]
    return {k: v for k, v in content[0].items() if not k.startswith("Payload")}


# ---------------------------------------------------------------- the app's sign-in


@pytest.mark.parametrize("args,expected", [
    (["--auth-scheme", "sso"], {"inferenceGatewayAuthScheme": "sso"}),
    (["--credential-kind", "interactive"], {"inferenceGatewayAuthScheme": "bearer",
                                            "inferenceCredentialKind": "interactive"}),
])
def test_sign_in_is_exported_without_a_helper(base_env, tmp_path, args, expected):
    out, p = export(tmp_path, *args, env=base_env)
    assert {f.name for f in out.iterdir()} == DESKTOP_FILES
    values = app_values(out)
    assert values == {"inferenceProvider": "gateway",
                      "inferenceGatewayBaseUrl": "https://llm-gateway.example.com", **expected}
    claude = read_reg(out / "claude-gateway.reg")[r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Claude"]
    assert claude == values  # and the helper value of an earlier export is deleted
    assert '"inferenceCredentialHelper"=-' in (out / "claude-gateway.reg").read_bytes().decode(
        "utf-16")
    lint_p, text = lint(out.iterdir(), base_env)
    assert lint_p.returncode == 0, text
    if "sso" in args:  # deprecated in 1.40609.0: export and lint both say so
        assert "--credential-kind interactive" in p.stderr
        assert text.count(": warning: ") == 2
        assert "use inferenceCredentialKind = interactive" in text
    else:
        assert ": warning: " not in text and p.stderr == ""


@pytest.mark.parametrize("sign_in", [["--auth-scheme", "sso"],
                                     ["--credential-kind", "interactive"]])
@pytest.mark.parametrize("helper,phrase", [
    (["--helper", "/usr/local/bin/credhelper-oidc"], "--helper"),
    (["--provider", "oidc"], "--provider"),
    (["--ttl", "900"], "--ttl"),
    (["--timeout", "120"], "--timeout"),
    (["--set", "oidc.issuer=https://idp.example.com"], "--set"),
])
def test_sign_in_refuses_a_helper(base_env, tmp_path, sign_in, helper, phrase):
    p = run(BASE + sign_in + helper + ["--out", str(tmp_path / "out")], base_env)
    assert_failure(p, 2, "sign users in itself", phrase)
    assert not (tmp_path / "out").exists()


def test_export_refuses_keys_that_contradict_each_other(base_env, tmp_path):
    p = run(BASE + ["--auth-scheme", "sso", "--credential-kind", "helper-script",
                    "--out", str(tmp_path / "out")], base_env)
    assert_failure(p, 2, "helper-script needs inferenceCredentialHelper")
    assert not (tmp_path / "out").exists()


def test_claude_code_has_no_sign_in_to_export(base_env, tmp_path):
    for app in ("claude-code", "both"):
        p = run(BASE + ["--credential-kind", "interactive", "--app", app, "--out", str(tmp_path)],
                base_env)
        assert_failure(p, 2, "Claude Code reads its credential only from apiKeyHelper")


# ---------------------------------------------------------------- Claude Code


def test_claude_code_files(base_env, tmp_path):
    helper = "/Library/Application Support/credhelper/credhelper-vault/credhelper-vault"
    windows = r"C:\Program Files\credhelper\credhelper-vault\credhelper-vault.exe"
    out, _ = export(tmp_path, "--app", "claude-code", "--helper", helper, "--windows-helper",
                    windows, "--ttl", "1800", "--header", "X-Team: ml", "--header", "X-Env: prod",
                    "--set", "vault.address=https://vault.example.com", env=base_env)
    assert {f.name for f in out.iterdir()} == CODE_FILES
    settings = json.loads((out / "managed-settings.json").read_text())
    assert settings == {
        "apiKeyHelper": f"'{helper}' --force-refresh",
        "env": {"ANTHROPIC_BASE_URL": "https://llm-gateway.example.com",
                "CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "1800000",
                "ANTHROPIC_CUSTOM_HEADERS": "X-Team: ml\nX-Env: prod"}}
    # macOS: the domain's top-level keys are managed-settings.json's (env a dictionary),
    # and Claude Code alone gets the helper's own payload.
    code, helper_payload = plistlib.loads(
        (out / "claude-code.mobileconfig").read_bytes())["PayloadContent"]
    assert code["PayloadType"] == "com.anthropic.claudecode"
    assert {k: v for k, v in code.items() if not k.startswith("Payload")} == settings
    assert helper_payload["PayloadType"] == "com.credhelper"
    assert helper_payload["vault"] == {"address": "https://vault.example.com"}
    # Windows: one Settings value holding the JSON, the Windows path in double quotes.
    keys = read_reg(out / "claude-code.reg")
    win = json.loads(keys[r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\ClaudeCode"]["Settings"])
    assert win == {**settings, "apiKeyHelper": f'"{windows}" --force-refresh'}
    assert keys[r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\credhelper\vault"] == \
        {"address": "https://vault.example.com"}
    text = (out / "claude-code.reg").read_bytes().decode("utf-16")
    assert text.index(r"[-HKEY_LOCAL_MACHINE\SOFTWARE\Policies\ClaudeCode]") < \
        text.index(r"[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\ClaudeCode]")
    p, report = lint(out.iterdir(), base_env)
    assert p.returncode == 0 and report.count(": ok\n") == 3, report


def test_both_apps(base_env, tmp_path):
    out, _ = export(tmp_path, "--app", "both", "--provider", "keyring", "--ttl", "900",
                    "--set", "keyring.service=gateway-key", env=base_env)
    assert {f.name for f in out.iterdir()} == CODE_FILES | DESKTOP_FILES
    assert app_values(out)["inferenceCredentialHelperTtlSec"] == "900"
    # The helper's settings travel once, with the desktop profile.
    code_profile = plistlib.loads((out / "claude-code.mobileconfig").read_bytes())
    assert len(code_profile["PayloadContent"]) == 1
    desktop = plistlib.loads((out / "claude-gateway.mobileconfig").read_bytes())
    assert desktop["PayloadContent"][1]["keyring"] == {"service": "gateway-key"}
    assert r"SOFTWARE\Policies\credhelper" not in (out / "claude-code.reg").read_bytes().decode(
        "utf-16")
    p, report = lint(out.iterdir(), base_env)
    assert p.returncode == 0 and report.count(": ok\n") == 5, report


def test_the_exported_command_runs_through_sh(base_env, tmp_path):
    """Claude Code hands apiKeyHelper to /bin/sh: the exported command must reach the
    helper as one path, with --force-refresh as its only argument, whatever the path holds."""
    folder = tmp_path / "Application Support" / "it's $HOME `x`"
    folder.mkdir(parents=True)
    helper = folder / "credhelper-fake"
    helper.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv))\n")
    helper.chmod(0o755)
    out, _ = export(tmp_path, "--app", "claude-code", "--helper", str(helper), env=base_env)
    command = json.loads((out / "managed-settings.json").read_text())["apiKeyHelper"]
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"]}, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [str(helper), "--force-refresh"]


def test_a_windows_path_that_cannot_be_quoted_is_refused(base_env, tmp_path):
    p = run(BASE + ["--app", "claude-code", "--helper", "/usr/local/bin/credhelper-vault",
                    "--windows-helper", r"C:\Tools\100%\credhelper-vault.exe",
                    "--out", str(tmp_path)], base_env)
    assert_failure(p, 2, "cannot be quoted", "%")


def test_code_settings_are_merged(base_env, tmp_path):
    other = tmp_path / "org.json"
    other.write_text(json.dumps({"permissions": {"deny": ["WebFetch"]},
                                 "env": {"DISABLE_TELEMETRY": "1",
                                         "ANTHROPIC_BASE_URL": "https://old.example.com"}}))
    out, _ = export(tmp_path, "--app", "claude-code", "--helper", "/opt/credhelper/h",
                    "--code-settings", str(other), env=base_env)
    settings = json.loads((out / "managed-settings.json").read_text())
    assert settings["permissions"] == {"deny": ["WebFetch"]}
    assert settings["env"] == {"DISABLE_TELEMETRY": "1",
                               "ANTHROPIC_BASE_URL": "https://llm-gateway.example.com"}
    other.write_text("[1]")
    p = run(BASE + ["--app", "claude-code", "--helper", "/opt/h", "--code-settings", str(other),
                    "--out", str(tmp_path / "x")], base_env)
    assert_failure(p, 2, "--code-settings", "must be a JSON object")


def test_lint_checks_claude_code_files(base_env, tmp_path):
    bad = tmp_path / "managed-settings.json"
    bad.write_text(json.dumps({"apiKeyHelper": "/opt/credhelper/credhelper-vault",
                               "env": {"CLAUDE_CODE_API_KEY_HELPER_TTL_MS": "5m",
                                       "ANTHROPIC_BASE_URL": "http://gw.example.com"}}))
    p, text = lint([bad], base_env)
    assert p.returncode == 2, text
    assert "apiKeyHelper: no --force-refresh" in text
    assert "env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '5m' is not a whole number" in text
    assert "env.ANTHROPIC_BASE_URL" in text and "plain http" in text
    reg = tmp_path / "code.reg"
    reg.write_bytes("\r\n".join([
        "Windows Registry Editor Version 5.00", "",
        r"[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\ClaudeCode]",
        '"Settings"=hex(7):7b,00,7d,00,00,00,00,00', '"apiKeyHelper"="x"', ""]).encode("utf-16"))
    p, text = lint([reg], base_env)
    assert p.returncode == 2, text
    assert "Settings: must be REG_SZ (or REG_EXPAND_SZ) JSON text, not REG_MULTI_SZ" in text
    assert "apiKeyHelper: not read: Claude Code reads only the Settings value" in text
    plist = tmp_path / "code.plist"  # a bare managed-preferences plist of Claude Code's
    plist.write_bytes(plistlib.dumps({"apiKeyHelper": "'/opt/credhelper/h' --force-refresh",
                                      "env": {"ANTHROPIC_BASE_URL": "https://gw.example.com"}}))
    p, text = lint([plist], base_env)
    assert p.returncode == 0 and text.strip().endswith(": ok"), text


# ---------------------------------------------------------------- TTL and lifetime


def test_the_ttl_is_checked_against_the_lifetime_the_backend_declares(base_env, tmp_path):
    """A presigned AWS identity lives presign_lifetime (15 min by default): nothing needs
    to be cached on this machine for export to know the app's TTL outlives it."""
    env = {**base_env, "AWS_REGION": "us-east-1"}
    _, p = export(tmp_path, "--provider", "aws", "--app", "both", env=env, name="a")
    assert "the aws credential lives 900s ([aws] presign_lifetime = 900s), less than " \
           "Claude Desktop keeps it (3600s, the default of inferenceCredentialHelperTtlSec): " \
           "export with --ttl 600" in p.stderr
    assert "Claude Code keeps it" not in p.stderr  # its default, 5 minutes, is shorter
    _, p = export(tmp_path, "--provider", "aws", "--ttl", "1200", "--app", "both",
                  "--set", "aws.presign_lifetime=10m", env=env, name="b")
    assert "lives 600s ([aws] presign_lifetime = 600s), less than Claude Desktop keeps it " \
           "(1200s)" in p.stderr
    assert "less than Claude Code keeps it (1200s)" in p.stderr and "--ttl 300" in p.stderr
    _, p = export(tmp_path, "--provider", "aws", "--ttl", "600", env=env, name="c")
    assert "lives" not in p.stderr


@pytest.mark.parametrize("app", ["desktop", "claude-code", "both"])
@pytest.mark.parametrize("scheme", [[], ["--auth-scheme", "bearer"], ["--auth-scheme", "x-api-key"]])
def test_every_export_lints_clean(base_env, tmp_path, app, scheme):
    """Export then lint, for each app and each way the credential is sent by a helper (the
    app's own sign-in is covered above): no error, no warning."""
    out, p = export(tmp_path, "--app", app, "--provider", "vault", "--ttl", "900",
                    "--timeout", "120", "--set", "vault.address=https://vault.example.com",
                    "--set", "vault.secret=secret/gateway", *scheme, env=base_env)
    files = list(out.iterdir())
    assert len(files) == {"desktop": 2, "claude-code": 3, "both": 5}[app]
    lint_p, report = lint(files, base_env)
    assert lint_p.returncode == 0, report
    assert ": warning: " not in report and ": error: " not in report, report
    assert report.count(": ok") == len(files), report
