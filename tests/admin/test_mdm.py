"""credhelper mdm export / lint, run as the installed umbrella. The profiles are checked
with plistlib and with a small .reg reader written here (independent of mdm.parse_reg)."""

from __future__ import annotations

import plistlib
import re

from conftest import CANARY, assert_failure, run

APP_KEYS = {"inferenceProvider", "inferenceGatewayBaseUrl", "inferenceGatewayAuthScheme",
            "inferenceCredentialHelper", "inferenceCredentialHelperTtlSec",
            "inferenceCredentialHelperTimeoutSec", "inferenceGatewayHeaders",
            "inferenceCustomHeaders", "inferenceCredentialKind", "inferenceModels"}
BASE = ["credhelper", "mdm", "export", "--base-url", "https://llm-gateway.example.com"]


def read_reg(path) -> dict[str, dict[str, str]]:
    """The test's own reader: UTF-16 LE with BOM, the 5.00 header, string values only."""
    data = path.read_bytes()
    assert data[:2] == b"\xff\xfe", "regedit expects UTF-16 LE with a byte-order mark"
    text = data[2:].decode("utf-16-le")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")
    assert lines[0] == "Windows Registry Editor Version 5.00"
    keys, current = {}, None
    for line in lines[1:]:
        if not line:
            continue
        if line.startswith("[-"):
            current = None
            continue
        if line.startswith("["):
            current = keys.setdefault(line[1:-1], {})
            continue
        def unescape(s):
            return re.sub(r"\\(.)", r"\1", s)
        deleted = re.fullmatch(r'"((?:[^"\\]|\\.)*)"=-', line)
        if deleted:  # a value this export removes
            current.pop(unescape(deleted.group(1)), None)
            continue
        m = re.fullmatch(r'"((?:[^"\\]|\\.)*)"="((?:[^"\\]|\\.)*)"', line)
        assert m, f"not a string value: {line!r}"
        current[unescape(m.group(1))] = unescape(m.group(2))
    return keys


def export(tmp_path, *args, env):
    out = tmp_path / "out"
    # The export carries the current configuration's settings: the suite-wide debug log
    # file (conftest.base_env) is the test machine's, not the fleet's.
    env = {k: v for k, v in env.items() if k != "CREDHELPER_DEFAULTS_LOG_FILE"}
    p = run(BASE + list(args) + ["--out", str(out)], env)
    assert p.returncode == 0, p.stderr
    return out, p


def test_export_writes_a_profile_and_a_reg_file_of_strings(base_env, tmp_path):
    out, p = export(tmp_path, "--provider", "vault", "--set", "vault.address=https://vault.example.com:8200",
                    "--set", "vault.secret=secret/gateway", "--set", "defaults.timeout=20s",
                    "--helper", "/Library/Application Support/credhelper/credhelper-vault/credhelper-vault",
                    "--windows-helper", r"C:\Program Files\credhelper\credhelper-vault\credhelper-vault.exe",
                    "--auth-scheme", "x-api-key", "--ttl", "1800", "--timeout", "120",
                    "--header", "X-Team: ml", "--legacy-headers",
                    "--model", "claude-sonnet", env={**base_env, "VAULT_ADDR": "https://vault.example.com:8200"})
    assert b"claude-gateway.mobileconfig" in p.stdout and b"claude-gateway.reg" in p.stdout
    profile = plistlib.loads((out / "claude-gateway.mobileconfig").read_bytes())
    assert profile["PayloadType"] == "Configuration"
    app, helper = profile["PayloadContent"]
    assert app["PayloadType"] == "com.anthropic.claudefordesktop"
    values = {k: v for k, v in app.items() if not k.startswith("Payload")}
    assert set(values) <= APP_KEYS and all(isinstance(v, str) for v in values.values())
    assert values["inferenceProvider"] == "gateway"
    assert values["inferenceGatewayAuthScheme"] == "x-api-key"
    assert values["inferenceCredentialHelperTtlSec"] == "1800"
    assert values["inferenceCredentialHelperTimeoutSec"] == "120"
    assert values["inferenceCredentialHelper"].startswith("/Library/")
    # --legacy-headers: releases before 1.8089.0 read the old key, so both are written.
    assert values["inferenceGatewayHeaders"] == values["inferenceCustomHeaders"] == '{"X-Team":"ml"}'
    assert values["inferenceModels"] == '["claude-sonnet"]'
    assert helper["PayloadType"] == "com.credhelper"
    assert helper["vault"] == {"address": "https://vault.example.com:8200", "secret": "secret/gateway"}
    assert helper["defaults"] == {"timeout": "20s"}

    reg = read_reg(out / "claude-gateway.reg")
    claude = reg[r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Claude"]
    assert claude["inferenceCredentialHelper"] == r"C:\Program Files\credhelper\credhelper-vault\credhelper-vault.exe"
    assert {k: v for k, v in claude.items() if k != "inferenceCredentialHelper"} == \
        {k: v for k, v in values.items() if k != "inferenceCredentialHelper"}
    assert reg[r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\credhelper\vault"]["address"] == "https://vault.example.com:8200"
    assert reg[r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\credhelper\defaults"] == {"timeout": "20s"}
    lint = run(["credhelper", "mdm", "lint", str(out / "claude-gateway.mobileconfig"),
                str(out / "claude-gateway.reg")], base_env)
    # The old header key is deprecated: one warning per file, and still exit 0.
    assert lint.returncode == 0 and lint.stdout.count(b": ok (1 warning)") == 2, \
        (lint.stdout, lint.stderr)
    assert lint.stdout.count(b": warning: ") == 2 and b"use inferenceCustomHeaders" in lint.stdout


def test_payload_uuids_are_stable_for_the_same_input(base_env, tmp_path):
    args = ["--helper", "/opt/credhelper/credhelper-keyring", "--ttl", "900"]
    a, _ = export(tmp_path / "a", *args, env=base_env)
    b, _ = export(tmp_path / "b", *args, env=base_env)
    assert (a / "claude-gateway.mobileconfig").read_bytes() == (b / "claude-gateway.mobileconfig").read_bytes()
    assert (a / "claude-gateway.reg").read_bytes() == (b / "claude-gateway.reg").read_bytes()
    c, _ = export(tmp_path / "c", "--helper", "/opt/credhelper/credhelper-keyring", "--ttl", "600", env=base_env)
    first = plistlib.loads((a / "claude-gateway.mobileconfig").read_bytes())
    changed = plistlib.loads((c / "claude-gateway.mobileconfig").read_bytes())
    assert first["PayloadIdentifier"] == changed["PayloadIdentifier"]  # same profile, updated
    assert first["PayloadUUID"] != changed["PayloadUUID"]


def test_export_defaults_the_helper_path_to_the_documented_install_location(base_env, tmp_path):
    out, p = export(tmp_path, "--provider", "keyring", env=base_env)
    app = plistlib.loads((out / "claude-gateway.mobileconfig").read_bytes())["PayloadContent"][0]
    assert app["inferenceCredentialHelper"] == \
        "/Library/Application Support/credhelper/credhelper-keyring/credhelper-keyring"
    assert "the install layout's; --helper PATH sets another" in p.stderr and "README" not in p.stderr


def test_export_refuses_a_secret(base_env, tmp_path):
    p = run(BASE + ["--helper", "/usr/local/bin/credhelper-vault", "--set", f"vault.token={CANARY}",
                    "--out", str(tmp_path)], base_env)
    assert_failure(p, 2, "refusing", "secret", "[vault] token")
    env = {**base_env, "VAULT_ADDR": "https://vault.example.com", "VAULT_TOKEN": CANARY}
    p = run(BASE + ["--provider", "vault", "--out", str(tmp_path)], env)
    assert_failure(p, 2, "refusing", "[vault] token", "VAULT_TOKEN")
    # VAULT_TOKEN holds the token itself, whatever it looks like: still refused.
    p = run(BASE + ["--provider", "vault", "--out", str(tmp_path)], {**env, "VAULT_TOKEN": "env:X"})
    assert_failure(p, 2, "refusing", "[vault] token")
    assert not list(tmp_path.glob("claude-gateway.*"))


def test_export_takes_a_reference_to_a_secret(base_env, tmp_path):
    """file:, env: and keyring: say where each machine keeps its secret: no secret in them."""
    out, _ = export(tmp_path / "a", "--helper", "/usr/local/bin/credhelper-vault",
                    "--set", "vault.token=file:/run/secrets/vault-token",
                    "--set", "vault.secret_id=keyring:credhelper/approle", env=base_env)
    helper = plistlib.loads((out / "claude-gateway.mobileconfig").read_bytes())["PayloadContent"][1]
    assert helper["vault"] == {"token": "file:/run/secrets/vault-token",
                               "secret_id": "keyring:credhelper/approle"}
    env = {**base_env, "VAULT_ADDR": "https://vault.example.com",
           "CREDHELPER_VAULT_TOKEN": "env:VAULT_TOKEN_OF_THIS_MACHINE"}
    out, _ = export(tmp_path / "b", "--provider", "vault", env=env)
    reg = read_reg(out / "claude-gateway.reg")
    assert reg[r"HKEY_LOCAL_MACHINE\SOFTWARE\Policies\credhelper\vault"]["token"] == \
        "env:VAULT_TOKEN_OF_THIS_MACHINE"


def test_export_rejects_bad_options(base_env, tmp_path):
    out = ["--out", str(tmp_path)]
    for url in ("http://gw.example.com", "http://127.0.0.1:4000"):  # the app takes https only
        assert_failure(run(["credhelper", "mdm", "export", "--base-url", url,
                            "--helper", "/usr/local/bin/credhelper-vault"] + out, base_env),
                       2, "plain http", "https://")
    for timeout in ("0", "601"):
        assert_failure(run(BASE + ["--helper", "/usr/local/bin/x", "--timeout", timeout] + out,
                           base_env), 2, "--timeout", "1..600")
    assert_failure(run(BASE + ["--helper", "bin/credhelper-vault"] + out, base_env), 2, "absolute")
    assert_failure(run(BASE + ["--helper", "/usr/local/bin/x", "--ttl", "5"] + out, base_env), 2, "60..86400")
    assert_failure(run(BASE + ["--helper", "/usr/local/bin/x", "--set", "vault.colour=red"] + out,
                       base_env), 2, "unknown key [vault] colour")
    assert_failure(run(BASE + out, base_env), 2, "--helper PATH or --provider NAME")


def test_export_warns_when_the_ttl_outlives_the_credential(keyring_env, tmp_path):
    keyring_env["CREDHELPER_KEYRING_MAX_AGE"] = "10m"
    assert run(["credhelper-keyring", "store"], keyring_env, input=CANARY + "\n").returncode == 0
    assert run("credhelper-keyring", keyring_env).returncode == 0  # caches a 10-minute credential
    out, p = export(tmp_path, "--provider", "keyring", "--ttl", "3600", env=keyring_env)
    assert "lives 600s ([keyring] max_age = 600s), less than Claude Desktop keeps it (3600s)" \
        in p.stderr and "--ttl 300" in p.stderr
    helper = plistlib.loads((out / "claude-gateway.mobileconfig").read_bytes())["PayloadContent"][1]
    assert helper["keyring"]["max_age"] == "600"


BAD_PROFILE = {
    "PayloadType": "Configuration", "PayloadIdentifier": "x", "PayloadUUID": "U", "PayloadVersion": 1,
    "PayloadContent": [
        {"PayloadType": "com.anthropic.claudefordesktop", "PayloadIdentifier": "x.app",
         "PayloadUUID": "V", "PayloadVersion": 1,
         "inferenceProvider": "gateway",
         "inferenceGatewayBaseUrl": "http://gw.example.com",
         "inferenceCredentialHelper": "credhelper-vault",
         "inferenceCredentialHelperTtlSec": 3600,
         "inferenceGatewayHeader": "{}"},
        {"PayloadType": "com.credhelper", "PayloadIdentifier": "x.helper", "PayloadUUID": "W",
         "PayloadVersion": 1, "vault": {"token": "s.x", "addres": "https://v"}},
    ],
}


def test_lint_reports_each_problem_in_a_profile(base_env, tmp_path):
    path = tmp_path / "bad.mobileconfig"
    path.write_bytes(plistlib.dumps(BAD_PROFILE))
    p = run(["credhelper", "mdm", "lint", str(path)], base_env)
    text = p.stdout.decode()
    assert p.returncode == 2 and "Traceback" not in p.stderr
    # An unknown key is a warning (a newer release may read it); the file is named once.
    assert f"{path}: warning: com.anthropic.claudefordesktop inferenceGatewayHeader: unknown key" \
        in text
    assert all(line.count(str(path)) == 1 for line in text.splitlines())
    assert "inferenceCredentialHelperTtlSec: must be a string, not int" in text
    assert "plain http" in text
    assert "'credhelper-vault' is not an absolute macOS or Linux path" in text
    assert "[vault] token" in text and "secret" in text
    assert "unknown key [vault] addres" in text


def test_lint_reports_each_problem_in_a_reg_file(base_env, tmp_path):
    path = tmp_path / "bad.reg"
    text = "\r\n".join([
        "Windows Registry Editor Version 5.00", "",
        r"[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Claude]",
        '"inferenceProvider"="gateway"',
        '"inferenceGatewayBaseUrl"="http://127.0.0.1:4000"',  # loopback: still not https
        '"inferenceCredentialHelper"="credhelper-vault.exe"',
        '"inferenceCredentialHelperTtlSec"=dword:00000e10',  # REG_DWORD: read as 3600
        '"inferenceCredentialHelperTimeoutSec"=hex(2):36,00,30,00,00,00',  # REG_EXPAND_SZ
        '"disabledBuiltinTools"=hex(7):61,00,00,00,00,00',  # REG_MULTI_SZ
        '"inferenceGatewayAuthScheme"="basic"', "",
        r"[HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Claude\gateway]",
        '"inferenceProvider"="gateway"', "",
    ])
    path.write_bytes(text.encode("utf-16"))
    p = run(["credhelper", "mdm", "lint", str(path)], base_env)
    out = p.stdout.decode()
    assert p.returncode == 2, out
    assert "not an absolute Windows path" in out
    assert "inferenceCredentialHelperTtlSec" not in out
    assert "inferenceCredentialHelperTimeoutSec: REG_EXPAND_SZ: the app reads REG_SZ only" in out
    assert "disabledBuiltinTools: REG_MULTI_SZ" in out
    assert "'basic' is not one of: bearer, x-api-key, sso, auto" in out
    assert "inferenceGatewayBaseUrl: 'http://127.0.0.1:4000' is plain http" in out
    assert "Claude\\gateway: the app never reads subkeys" in out


def test_lint_rejects_unreadable_input_in_one_line(base_env, tmp_path):
    garbage = tmp_path / "profile.mobileconfig"
    garbage.write_bytes(b"\x00\x01 not a plist")
    assert_failure(run(["credhelper", "mdm", "lint", str(garbage)], base_env), 2, "not a property list")
    assert_failure(run(["credhelper", "mdm", "lint", str(tmp_path / "missing.reg")], base_env), 2,
                   "cannot read")
    bad_reg = tmp_path / "x.reg"
    bad_reg.write_bytes("REGEDIT4\r\n".encode("utf-16"))
    assert_failure(run(["credhelper", "mdm", "lint", str(bad_reg)], base_env), 2, "Windows Registry Editor")


def test_set_values_complete_the_provider_configuration(base_env, tmp_path):
    """A required setting given only with --set is enough to resolve the provider."""
    out, _ = export(tmp_path, "--provider", "vault", "--set", "vault.address=https://vault.example.com",
                    "--set", "vault.auth=jwt", env=base_env)
    helper = plistlib.loads((out / "claude-gateway.mobileconfig").read_bytes())["PayloadContent"][1]
    assert helper["vault"] == {"address": "https://vault.example.com", "auth": "jwt"}
