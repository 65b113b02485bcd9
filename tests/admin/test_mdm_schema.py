"""mdm lint against Claude Desktop's whole key schema, run as the installed umbrella.

``VALID`` is this test's own copy of the configuration reference: every documented key of
Claude Desktop on third-party inference with a value the reference allows, written as the
app wants it (a string; JSON-typed keys as JSON text). ``DEPRECATED`` holds the renamed and
deprecated keys the configuration changelog lists, with their replacements."""

from __future__ import annotations

import json
import plistlib
import re

import pytest
from conftest import run

from credhelper import mdm

VALID = {
    # Connection
    "inferenceProvider": "gateway", "inferenceCredentialKind": "helper-script",
    "inferenceCustomHeaders": '{"X-Org-Id":"team1"}', "inferenceSessionLifetimeSec": "28800",
    "inferenceCredentialHelper": "/usr/local/bin/credhelper-vault",
    "inferenceCredentialHelperTtlSec": "1800", "inferenceCredentialHelperTimeoutSec": "120",
    "inferenceCredentialHelperSilentRefreshEnabled": "true",
    "userContentRendererUrl": "https://renderer.example.com",
    "inferenceStreamIdleTimeoutSec": "600",
    "inferenceAnthropicApiKey": "sk-placeholder", "inferenceBedrockRegion": "us-east-1",
    "inferenceBedrockBaseUrl": "https://bedrock.example.com",
    "inferenceBedrockServiceTier": "flex", "inferenceBedrockBearerToken": "placeholder",
    "inferenceBedrockSsoStartUrl": "https://example.awsapps.com/start",
    "inferenceBedrockSsoRegion": "us-east-1", "inferenceBedrockSsoAccountId": "123456789012",
    "inferenceBedrockSsoRoleName": "BedrockUsers", "inferenceBedrockProfile": "default",
    "inferenceBedrockAwsDir": "~/.aws", "inferenceBedrockAwsCliPath": "/usr/local/bin/aws",
    "inferenceFoundryResource": "my-resource", "inferenceFoundryApiKey": "placeholder",
    "inferenceFoundryTenantId": "0f5c3a52-7d1e-5b8e-9c39-2b8f3f4e6a10",
    "inferenceFoundryClientId": "1f5c3a52-7d1e-5b8e-9c39-2b8f3f4e6a10",
    "inferenceFoundryAuthFlow": "browser",
    "inferenceGatewayBaseUrl": "https://llm-gateway.example.com",
    "inferenceGatewayAuthScheme": "bearer", "inferenceGatewayOidcAuthFlow": "browser",
    "inferenceGatewayOidc": '{"issuer":"https://idp.example.com","clientId":"abc"}',
    # Models
    "modelDiscoveryEnabled": "false", "modelPrefer1mContext": "true",
    "inferenceModels": '[{"name":"claude-sonnet-5","supports1m":true},"claude-opus-4-8"]',
    "inferenceModelPricingEnabled": "true", "inferenceModelPricingMultiplier": "1.5",
    "inferenceModelPricing": '[{"name":"claude-sonnet-5","inputPerMtok":3}]',
    # Vertex
    "inferenceVertexProjectId": "my-project", "inferenceVertexRegion": "us-east5",
    "inferenceVertexBaseUrl": "https://psc.example.com", "inferenceVertexOAuthClientId": "id",
    "inferenceVertexOAuthClientSecret": "placeholder", "inferenceVertexOAuthScopes": "a b",
    "inferenceVertexOAuthLoginHint": "{username}@example.com",
    "inferenceVertexWorkforceAudience": "//iam.googleapis.com/locations/global/pool",
    "inferenceVertexWorkforceUserProject": "my-project",
    "inferenceVertexWorkforceAuthFlow": "broker",
    "inferenceVertexWorkforceOidc": '{"issuer":"https://idp.example.com","clientId":"abc"}',
    "inferenceVertexCredentialsFile": "/etc/gcp/service-account.json",
    # Workspace
    "disableDeploymentModeChooser": "true", "disableDeepLinkRegistration": "1",
    "chatTabEnabled": "true", "chatAdvancedFileAnalysisEnabled": "false",
    "isClaudeCodeForDesktopEnabled": "true", "coworkTabEnabled": "true",
    "disabledBuiltinTools": '["WebSearch","WebFetch"]', "disableBundledSkills": "0",
    "skillCreationEnabled": "false", "builtinToolPolicy": '{"Bash":"ask"}',
    "autoModeEnabled": "false", "toolSearchEnabled": "false",
    "allowedWorkspaceFolders": '[{"path":"~/Documents/Claude"},"/Users"]',
    "coworkEgressAllowedHosts": '["*.example.corp"]', "skipWebFetchPreflight": "false",
    "organizationInstructions": "Answer briefly.", "disableBypassPermissionsMode": "true",
    "blockReadsOutsideWorkingDirectories": "true",
    "egressProxyUrl": "http://proxy.example.com:3128",
    "egressProxyPacUrl": "https://proxy.example.com/proxy.pac",
    "sshHostAllowlist": '["*.example.corp"]', "sshClientPath": "/usr/bin/ssh",
    # Connectors, MCP, plugins
    "claudeAiImport": '{"enabled":true}', "microsoftAuthBroker": "auto",
    "isDesktopExtensionEnabled": "false", "isDesktopExtensionSignatureRequired": "true",
    "managedMcpServers": '[{"name":"docs","transport":"http","url":"https://mcp.example.com"}]',
    "mcpPersistentAlwaysAllowEnabled": "true", "mcpToolTimeoutSec": "120",
    "isLocalDevMcpEnabled": "false",
    "orgPluginSettings": '[{"serverName":"s","tools":[{"toolName":"t","permission":"ask"}]}]',
    "allowedPluginMarketplaces": '[{"source":"github","repo":"example/plugins"}]',
    "userPluginMarketplacesEnabled": "false", "userPluginUploadsEnabled": "false",
    # Telemetry & updates
    "deploymentOrganizationUuid": "2f5c3a52-7d1e-5b8e-9c39-2b8f3f4e6a10",
    "disableEssentialTelemetry": "false", "disableNonessentialTelemetry": "true",
    "disableNonessentialServices": "true", "disableAutoUpdates": "false",
    "autoUpdaterEnforcementHours": "24", "updateViaUpdatesHost": "true",
    "relaunchEnforcementHours": "24", "configRecheckIntervalMinutes": "10",
    "otlpEndpoint": "https://otel.example.com", "otlpProtocol": "grpc",
    "otlpHeaders": '{"X-Tenant":"a"}', "otlpAuthMode": "none",
    "otlpHeadersHelper": "/usr/local/bin/otel-headers", "otlpResourceAttributes": '{"team":"ml"}',
    "otlpDesktopLogLevel": "warn", "otlpContentCapture": '["userPrompts","toolDetails"]',
    "otlpTracesEnabled": "true",
    # Limits, appearance
    "inferenceMaxTokensPerWindow": "1000000", "inferenceTokenWindowHours": "24",
    "endUserAttribution": "true", "deploymentDisplayName": "Claude",
    "deploymentDisplaySubtitle": "ML team", "banner": '{"enabled":true,"text":"Internal"}',
    "disableFeatureDiscovery": "true", "disableConfigDeprecationWarnings": "false",
    # Bootstrap
    "bootstrapEnabled": "false", "bootstrapUrl": "https://bootstrap.example.com/config",
    "bootstrapOidc": '{"issuer":"https://idp.example.com","clientId":"abc"}',
    "bootstrapHeaders": '{"X-Tenant":"a"}', "bootstrapHeadersHelper": "/usr/local/bin/bh",
    "trustBootstrapDelivery": "false",
}
# The one documented key a helper profile must not hold (the helper always wins over it).
STATIC = {"inferenceProvider": "gateway", "inferenceGatewayBaseUrl": "https://gw.example.com",
          "inferenceGatewayApiKey": "placeholder", "inferenceCredentialKind": "static"}
DEPRECATED = {
    "inferenceGatewayHeaders": "inferenceCustomHeaders",
    "isDxtEnabled": "isDesktopExtensionEnabled",
    "isDxtSignatureRequired": "isDesktopExtensionSignatureRequired",
    "trustBootstrapLocalExec": "trustBootstrapDelivery",
    "enduserAttribution": "endUserAttribution",
    "organizationPluginsUrl": "allowedPluginMarketplaces",
    "requireCoworkFullVmSandbox": "(no replacement)",
    "betaFeaturesEnabled": "(no replacement)",
    "disableDefaultPlugins": "(no replacement)",
}


def profile(values: dict, domain: str = "com.anthropic.claudefordesktop") -> bytes:
    return plistlib.dumps({
        "PayloadType": "Configuration", "PayloadIdentifier": "x", "PayloadUUID": "U",
        "PayloadVersion": 1,
        "PayloadContent": [{"PayloadType": domain, "PayloadIdentifier": "x.app",
                            "PayloadUUID": "V", "PayloadVersion": 1, **values}]})


def reg(values: dict, key: str = r"SOFTWARE\Policies\Claude") -> bytes:
    def quote(v):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["Windows Registry Editor Version 5.00", "", f"[HKEY_LOCAL_MACHINE\\{key}]"]
    lines += [f"{quote(k)}={v if v.startswith(('dword:', 'hex')) else quote(v)}"
              for k, v in values.items()]
    return "\r\n".join(lines + [""]).encode("utf-16")


def lint(tmp_path, name: str, data: bytes, env):
    path = tmp_path / name
    path.write_bytes(data)
    p = run(["credhelper", "mdm", "lint", str(path)], env)
    assert "Traceback" not in p.stderr
    return p, p.stdout.decode(), str(path)


def lines(text: str, level: str) -> list[str]:
    return [line for line in text.splitlines() if f": {level}: " in line]


def test_the_table_holds_every_documented_key():
    assert set(mdm.KEYS) == set(VALID) | set(STATIC) | set(DEPRECATED)
    for name, replacement in DEPRECATED.items():
        assert mdm.KEYS[name].replaced_by == replacement
    for key in mdm.APP_KEYS:
        assert key.since and key.type in (
            "string", "boolean", "integer", "number", "enum", "url", "path", "string[]",
            "enum[]", "object", "object[]", "headers"), key
        assert bool(key.values) == (key.type in ("enum", "enum[]")), key


def test_every_documented_key_with_a_valid_value_lints_clean(base_env, tmp_path):
    p, out, _ = lint(tmp_path, "all.mobileconfig", profile(VALID), base_env)
    assert p.returncode == 0 and out.strip().endswith(": ok"), out
    assert not lines(out, "warning") and not lines(out, "error")
    # The static-key form, on Windows, with REG_DWORD where the reference allows it.
    p, out, _ = lint(tmp_path, "static.reg", reg({**STATIC, "disableAutoUpdates": "dword:1",
                                                  "autoUpdaterEnforcementHours": "dword:18"}),
                     base_env)
    assert p.returncode == 0 and out.strip().endswith(": ok"), out
    # Linux: /etc/claude-desktop/managed-settings.json, JSON-typed keys as native JSON.
    native = {k: json.loads(v) if mdm.KEYS[k].type in mdm.JSON_TYPES else v
              for k, v in VALID.items()}
    p, out, _ = lint(tmp_path, "managed-settings.json", json.dumps(native).encode(), base_env)
    assert p.returncode == 0 and out.strip().endswith(": ok"), out


def test_an_undocumented_key_is_one_warning_and_exit_0(base_env, tmp_path):
    values = {**STATIC, "inferenceGatewayTimeoutSec": "30"}
    for name, data in (("one.mobileconfig", profile(values)), ("one.reg", reg(values))):
        p, out, path = lint(tmp_path, name, data, base_env)
        assert p.returncode == 0, out
        warnings = lines(out, "warning")
        assert len(warnings) == 1 and "inferenceGatewayTimeoutSec: unknown key" in warnings[0]
        assert warnings[0].startswith(f"{path}: warning: ") and warnings[0].count(path) == 1
        assert out.splitlines()[-1] == f"{path}: ok (1 warning)"


def test_dotted_keys_are_never_read(base_env, tmp_path):
    p, out, _ = lint(tmp_path, "dotted.reg", reg({**STATIC,
                                                  "inferenceGatewayOidc.clientId": "abc"}),
                     base_env)
    assert p.returncode == 0 and "write inferenceGatewayOidc as one JSON value" in out, out


@pytest.mark.parametrize("name,replacement", sorted(DEPRECATED.items()))
def test_a_deprecated_key_warns_with_its_replacement(base_env, tmp_path, name, replacement):
    value = "{}" if mdm.KEYS[name].type == "headers" else (
        "https://x.example.com" if name == "organizationPluginsUrl" else "true")
    p, out, _ = lint(tmp_path, "old.mobileconfig", profile({**STATIC, name: value}), base_env)
    assert p.returncode == 0, out
    warnings = lines(out, "warning")
    assert len(warnings) == 1 and f"{name}: deprecated" in warnings[0], out
    assert f"use {replacement}" in warnings[0]


@pytest.mark.parametrize("key,value,phrase", [
    ("inferenceGatewayAuthScheme", "sso", "use inferenceCredentialKind = interactive"),
    ("inferenceGatewayAuthScheme", "auto", "use bearer"),
    ("inferenceCredentialKind", "oauth", "use interactive"),
    ("inferenceCustomHeaders", '["X-Org-Id: team1"]', '["Name: Value", ...] form is deprecated'),
    ("inferenceCustomHeaders", "X-Org-Id=team1,X-Env=prod", '"Name=value,..." form is deprecated'),
])
def test_deprecated_values_warn(base_env, tmp_path, key, value, phrase):
    values = {"inferenceProvider": "gateway", "inferenceGatewayBaseUrl": "https://gw.example.com",
              "inferenceGatewayOidc": '{"issuer":"https://idp.example.com","clientId":"a"}',
              key: value}
    p, out, _ = lint(tmp_path, "values.mobileconfig", profile(values), base_env)
    assert p.returncode == 0 and len(lines(out, "warning")) == 1 and phrase in out, out


@pytest.mark.parametrize("key,value,phrase", [
    ("inferenceCredentialHelperSilentRefreshEnabled", "yes", "not a boolean"),
    ("inferenceSessionLifetimeSec", "8h", "not an integer"),
    ("inferenceCredentialHelperTimeoutSec", "601", "outside the documented range 1..600"),
    ("autoUpdaterEnforcementHours", "0", "outside the documented range 1..72"),
    ("inferenceModelPricingMultiplier", "x2", "not a decimal number"),
    ("otlpProtocol", "udp", "is not one of: http/protobuf, http/json, grpc"),
    ("otlpContentCapture", '["everything"]', "'everything' is not one of"),
    ("disabledBuiltinTools", "WebSearch", "is not valid JSON"),
    ("disabledBuiltinTools", '{"WebSearch":true}', "must be a JSON array"),
    ("inferenceModels", '[{"supports1m":true}]', 'needs a "name"'),
    ("banner", '["text"]', "must be a JSON object"),
    ("inferenceCustomHeaders", '{"X Org":"1"}', "is not a valid header name"),
    ("inferenceCustomHeaders", '[1]', '"Name: Value" strings'),
    ("inferenceGatewayBaseUrl", "http://gw.example.com", "is plain http"),
    ("inferenceGatewayBaseUrl", "https://user:pw@gw.example.com", "user name or password"),
    ("inferenceCredentialHelper", "bin/credhelper", "not an absolute macOS or Linux path"),
])
def test_a_wrong_value_is_an_error(base_env, tmp_path, key, value, phrase):
    p, out, _ = lint(tmp_path, "bad.mobileconfig", profile({**VALID, key: value}), base_env)
    assert p.returncode == 2 and f"{key}: " in out and phrase in out, out


def test_native_plist_values(base_env, tmp_path):
    """JSON-typed keys: a native array or dictionary is read by current releases on macOS
    only (a warning); any other key must be a string (an error)."""
    values = {**STATIC, "disabledBuiltinTools": ["WebSearch"], "banner": {"enabled": True}}
    p, out, _ = lint(tmp_path, "native.mobileconfig", profile(values), base_env)
    assert p.returncode == 0 and len(lines(out, "warning")) == 2, out
    assert "disabledBuiltinTools: a native plist array/dictionary" in out
    values = {**STATIC, "disableAutoUpdates": True, "inferenceTokenWindowHours": 24}
    p, out, _ = lint(tmp_path, "native2.mobileconfig", profile(values), base_env)
    assert p.returncode == 2, out
    assert "disableAutoUpdates: must be a string, not bool" in out
    assert "inferenceTokenWindowHours: must be a string, not int" in out


@pytest.mark.parametrize("values,phrase", [
    ({"inferenceCredentialHelper": "/opt/h", "inferenceGatewayApiKey": "k"},
     "the helper always wins"),
    ({"inferenceCredentialHelper": "/opt/h", "inferenceGatewayAuthScheme": "sso"},
     "sso signs users in itself"),
    ({"inferenceCredentialHelper": "/opt/h", "inferenceCredentialKind": "interactive"},
     "inferenceCredentialKind = interactive uses that source only"),
    ({"inferenceCredentialKind": "helper-script"}, "helper-script needs inferenceCredentialHelper"),
    ({}, "the gateway has no credential"),
])
def test_conflicting_keys_are_errors(base_env, tmp_path, values, phrase):
    base = {"inferenceProvider": "gateway", "inferenceGatewayBaseUrl": "https://gw.example.com"}
    p, out, _ = lint(tmp_path, "conflict.reg", reg({**base, **values}), base_env)
    assert p.returncode == 2 and phrase in out, out


def test_the_rollout_page_prints_the_table():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "rollout.md").read_text()
    rows = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(
        r"^\| `(\w+)` \| ([\w\[\]]+) \| .*? \| ([\w.]+) \|", page, re.M)}
    assert rows == {k.name: (k.type, k.since) for k in mdm.APP_KEYS}
