"""MDM profiles for Claude Desktop and Claude Code: write them, and lint them.

``APP_KEYS`` is the one table of Claude Desktop's managed keys on third-party inference
(name, type, allowed values, the release that introduced, renamed or deprecated each),
built from the app's configuration reference and configuration changelog; docs/rollout.md
prints it. ``export`` writes, per app:

- Claude Desktop: ``claude-gateway.mobileconfig`` (domain ``com.anthropic.claudefordesktop``)
  and ``claude-gateway.reg`` (``HKLM\\SOFTWARE\\Policies\\Claude``), one string per key;
- Claude Code: ``managed-settings.json``, ``claude-code.mobileconfig`` (domain
  ``com.anthropic.claudecode``, top-level keys as in managed-settings.json) and
  ``claude-code.reg`` (``HKLM\\SOFTWARE\\Policies\\ClaudeCode``, one ``Settings`` value
  holding the JSON).

``lint`` recognises each of these by content (payload domain, registry key, JSON keys) and
checks it against the same tables. Unknown keys are warnings (a newer release may read
them); a value the app cannot read, or settings that contradict each other, are errors.
"""

from __future__ import annotations

import json
import ntpath
import os
import plistlib
import re
import shlex
import uuid
from dataclasses import dataclass, field

from credhelper import managed
from credhelper.config import check_url
from credhelper.errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

    from credhelper.config import ProviderConfig
    from credhelper.provider import Setting

APP_DOMAIN, APP_POLICY_KEY = managed.APP_DOMAIN, managed.APP_POLICY_KEY
CODE_DOMAIN = "com.anthropic.claudecode"  # Claude Code's managed preferences (macOS)
CODE_POLICY_KEY = r"SOFTWARE\Policies\ClaudeCode"  # ... and policy key (Windows)
CODE_POLICY_VALUE = "Settings"  # the one value Claude Code reads there: JSON text
MOBILECONFIG = "claude-gateway.mobileconfig"
REGFILE = "claude-gateway.reg"
CODE_JSON = "managed-settings.json"
CODE_MOBILECONFIG = "claude-code.mobileconfig"
CODE_REGFILE = "claude-code.reg"
PROFILE_ID = "com.credhelper.claude-gateway"
CODE_PROFILE_ID = "com.credhelper.claude-code"
APPS = ("desktop", "claude-code", "both")
# Fixed namespace: the same input always gives the same payload UUIDs, so a re-export
# is recognised by MDM as the same profile rather than a new one.
UUID_NAMESPACE = uuid.UUID("0f5c3a52-7d1e-5b8e-9c39-2b8f3f4e6a10")
# What export accepts for inferenceCredentialHelperTtlSec. The reference documents no
# range; this is the project's own bound, and lint only warns outside it.
TTL_RANGE = (60, 86400)
DEFAULT_TTL = 3600  # the app's own default when the key is absent
CODE_DEFAULT_TTL = 300  # Claude Code re-runs apiKeyHelper every 5 minutes by default

# Where the install layout (docs/binaries.md) puts each helper (used when --helper is not given).
MAC_HELPER = "/Library/Application Support/credhelper/credhelper-{0}/credhelper-{0}"
WINDOWS_HELPER = "C:\\Program Files\\credhelper\\credhelper-{0}\\credhelper-{0}.exe"

# The app's value types, as its reference names them. Every value is a string in the
# plist or registry; the JSON types hold JSON text.
STRING, BOOLEAN, INTEGER, NUMBER, ENUM = "string", "boolean", "integer", "number", "enum"
URL, PATH = "url", "path"  # strings: an https URL; an absolute path of an executable or file
STRINGS, ENUMS, OBJECT, OBJECTS = "string[]", "enum[]", "object", "object[]"
HEADERS = "headers"  # object: header name -> value (older forms accepted with a warning)
JSON_TYPES = (STRINGS, ENUMS, OBJECT, OBJECTS, HEADERS)
CUTOFF = "accepted until 2026-10-07"  # the changelog's end date for the 1.40609.0 deprecations


@dataclass(frozen=True)
class AppKey:
    name: str
    type: str
    since: str  # the release that first honours it ("baseline": the first documented set)
    values: tuple[str, ...] = ()  # enum / enum[]: the values the reference lists
    low: int | None = None  # integer: the documented range
    high: int | None = None
    items: tuple[str, ...] = ("object",)  # object[]: what an entry may be
    old_values: tuple[tuple[str, str], ...] = ()  # deprecated values -> what to use instead
    replaced_by: str = ""  # a renamed or deprecated key: what to use instead
    note: str = ""  # renamed/deprecated history, for the docs

    @property
    def deprecated(self) -> bool:
        return bool(self.replaced_by)


def _k(name: str, type_: str, since: str, *values: str, **kw: object) -> AppKey:
    return AppKey(name, type_, since, values, **kw)  # type: ignore[arg-type]


B = "baseline"
_SOLE = "inferenceCredentialKind"
APP_KEYS = (
    # ---- Connection
    _k("inferenceProvider", ENUM, B, "gateway", "anthropic", "bedrock", "mantle", "vertex",
       "foundry"),
    _k("inferenceCredentialKind", ENUM, "1.8555.0", "static", "helper-script", "interactive",
       "vendor-profile", "oauth", "workforce",
       old_values=(("oauth", "interactive (deprecated in 1.40609.0, " + CUTOFF + ")"),),
       note="`oauth` and `workforce` added later; `interactive` replaces "
            "`inferenceGatewayAuthScheme = sso` (1.40609.0)"),
    _k("inferenceCustomHeaders", HEADERS, "1.8089.0",
       note="renamed from `inferenceGatewayHeaders` in 1.8089.0; the array and "
            "`Name=value` string forms are deprecated in 1.40609.0"),
    _k("inferenceSessionLifetimeSec", INTEGER, "1.14271.0"),
    _k("inferenceCredentialHelper", PATH, B),
    _k("inferenceCredentialHelperTtlSec", INTEGER, B, note="default 3600; no range documented"),
    _k("inferenceCredentialHelperTimeoutSec", INTEGER, "1.8089.0", low=1, high=600,
       note="default 60"),
    _k("inferenceCredentialHelperSilentRefreshEnabled", BOOLEAN, "1.10628.0"),
    _k("userContentRendererUrl", URL, "1.24012.0"),
    _k("inferenceStreamIdleTimeoutSec", INTEGER, "1.44121.1", low=300, high=1800,
       note="range from the release notes"),
    # Anthropic, Bedrock, Foundry
    _k("inferenceAnthropicApiKey", STRING, "1.8089.0"),
    _k("inferenceBedrockRegion", STRING, B),
    _k("inferenceBedrockBaseUrl", STRING, B),
    _k("inferenceBedrockServiceTier", ENUM, "1.5186.0", "flex", "priority"),
    _k("inferenceBedrockBearerToken", STRING, B),
    _k("inferenceBedrockSsoStartUrl", STRING, "1.6259.0"),
    _k("inferenceBedrockSsoRegion", STRING, "1.6259.0"),
    _k("inferenceBedrockSsoAccountId", STRING, "1.6259.0"),
    _k("inferenceBedrockSsoRoleName", STRING, "1.6259.0"),
    _k("inferenceBedrockProfile", STRING, B),
    _k("inferenceBedrockAwsDir", STRING, B),
    _k("inferenceBedrockAwsCliPath", PATH, "1.13576.0"),
    _k("inferenceFoundryResource", STRING, B),
    _k("inferenceFoundryApiKey", STRING, B),
    _k("inferenceFoundryTenantId", STRING, "1.9255.0"),
    _k("inferenceFoundryClientId", STRING, "1.9255.0"),
    _k("inferenceFoundryAuthFlow", ENUM, "1.19367.0", "device-code", "browser", "broker"),
    # Gateway
    _k("inferenceGatewayBaseUrl", URL, B, note="must be https://"),
    _k("inferenceGatewayApiKey", STRING, B),
    _k("inferenceGatewayAuthScheme", ENUM, "1.3036.0", "bearer", "x-api-key", "sso", "auto",
       old_values=(("sso", "inferenceCredentialKind = interactive (sso is deprecated in "
                           "1.40609.0, " + CUTOFF + ")"),
                   ("auto", "bearer, or no value (deprecated in 1.40609.0, " + CUTOFF + ")")),
       note="`sso` and `auto` deprecated in 1.40609.0"),
    _k("inferenceGatewayOidcAuthFlow", ENUM, "1.25927.0", "browser", "broker"),
    _k("inferenceGatewayOidc", OBJECT, "1.6889.0"),
    # Models
    _k("modelDiscoveryEnabled", BOOLEAN, "1.8089.0"),
    _k("modelPrefer1mContext", BOOLEAN, "1.28929.0"),
    _k("inferenceModels", OBJECTS, B, items=("string", "object"),
       note="entries are model ids or objects"),
    _k("inferenceModelPricingEnabled", BOOLEAN, "1.37937.0"),
    _k("inferenceModelPricingMultiplier", NUMBER, "1.37937.0"),
    _k("inferenceModelPricing", OBJECTS, "1.37937.0"),
    # Vertex
    _k("inferenceVertexProjectId", STRING, B),
    _k("inferenceVertexRegion", STRING, B),
    _k("inferenceVertexBaseUrl", STRING, B),
    _k("inferenceVertexOAuthClientId", STRING, B),
    _k("inferenceVertexOAuthClientSecret", STRING, B),
    _k("inferenceVertexOAuthScopes", STRING, B),
    _k("inferenceVertexOAuthLoginHint", STRING, "1.12603.0"),
    _k("inferenceVertexWorkforceAudience", STRING, "1.10628.0"),
    _k("inferenceVertexWorkforceUserProject", STRING, "1.10628.0"),
    _k("inferenceVertexWorkforceAuthFlow", ENUM, "1.25927.0", "browser", "broker"),
    _k("inferenceVertexWorkforceOidc", OBJECT, "1.10628.0"),
    _k("inferenceVertexCredentialsFile", PATH, B),
    # ---- Workspace
    _k("disableDeploymentModeChooser", BOOLEAN, "1.3834.0"),
    _k("disableDeepLinkRegistration", BOOLEAN, "1.6889.0"),
    _k("chatTabEnabled", BOOLEAN, "1.13576.0"),
    _k("chatAdvancedFileAnalysisEnabled", BOOLEAN, "1.14271.0"),
    _k("isClaudeCodeForDesktopEnabled", BOOLEAN, B),
    _k("coworkTabEnabled", BOOLEAN, "1.9659.0"),
    _k("disabledBuiltinTools", STRINGS, B),
    _k("disableBundledSkills", BOOLEAN, "1.15962.0"),
    _k("skillCreationEnabled", BOOLEAN, "1.25927.0"),
    _k("builtinToolPolicy", OBJECT, "1.8089.0"),
    _k("autoModeEnabled", BOOLEAN, "1.10628.0"),
    _k("toolSearchEnabled", BOOLEAN, "1.21459.0"),
    _k("allowedWorkspaceFolders", OBJECTS, B, items=("string", "object")),
    _k("coworkEgressAllowedHosts", STRINGS, B),
    _k("skipWebFetchPreflight", BOOLEAN, "1.37937.0"),
    _k("organizationInstructions", STRING, "1.37937.0"),
    _k("disableBypassPermissionsMode", BOOLEAN, "1.46388.1"),
    _k("blockReadsOutsideWorkingDirectories", BOOLEAN, "1.46388.1"),
    _k("egressProxyUrl", STRING, "1.44121.1"),
    _k("egressProxyPacUrl", STRING, "1.44121.1"),
    _k("sshHostAllowlist", STRINGS, "1.40609.0", note="beta"),
    _k("sshClientPath", PATH, "1.46388.1", note="beta"),
    # ---- Connectors, MCP, plugins
    _k("claudeAiImport", OBJECT, "1.25927.0", note="from MDM since 1.25927.0"),
    _k("microsoftAuthBroker", ENUM, "1.19367.0", "auto", "disabled"),
    _k("isDesktopExtensionEnabled", BOOLEAN, B, note="renamed from `isDxtEnabled`"),
    _k("isDesktopExtensionSignatureRequired", BOOLEAN, B,
       note="renamed from `isDxtSignatureRequired`"),
    _k("managedMcpServers", OBJECTS, B),
    _k("mcpPersistentAlwaysAllowEnabled", BOOLEAN, "1.24012.9"),
    _k("mcpToolTimeoutSec", INTEGER, "1.37937.0"),
    _k("isLocalDevMcpEnabled", BOOLEAN, B),
    _k("orgPluginSettings", OBJECTS, "1.8089.0",
       note="the `{\"mcpServers\": ...}` record form is deprecated in 1.40609.0"),
    _k("allowedPluginMarketplaces", OBJECTS, "1.17377.1"),
    _k("userPluginMarketplacesEnabled", BOOLEAN, "1.37937.0"),
    _k("userPluginUploadsEnabled", BOOLEAN, "1.37937.0"),
    # ---- Telemetry & updates
    _k("deploymentOrganizationUuid", STRING, B),
    _k("disableEssentialTelemetry", BOOLEAN, B),
    _k("disableNonessentialTelemetry", BOOLEAN, B),
    _k("disableNonessentialServices", BOOLEAN, B),
    _k("disableAutoUpdates", BOOLEAN, B),
    _k("autoUpdaterEnforcementHours", INTEGER, B, low=1, high=72),
    _k("updateViaUpdatesHost", BOOLEAN, "1.26832.0"),
    _k("relaunchEnforcementHours", INTEGER, "1.40609.0",
       note="served configuration only until 1.46388.1, which reads it from MDM too"),
    _k("configRecheckIntervalMinutes", INTEGER, "1.46388.1", low=2, high=30,
       note="range from the release notes"),
    _k("otlpEndpoint", STRING, B),
    _k("otlpProtocol", ENUM, B, "http/protobuf", "http/json", "grpc"),
    _k("otlpHeaders", HEADERS, B),
    _k("otlpAuthMode", ENUM, "1.30096.1", "none", "inference-credential"),
    _k("otlpHeadersHelper", PATH, "1.30096.1"),
    _k("otlpResourceAttributes", OBJECT, "1.5354.0"),
    _k("otlpDesktopLogLevel", ENUM, "1.9255.0", "off", "error", "warn", "info", "debug"),
    _k("otlpContentCapture", ENUMS, "1.15962.0", "userPrompts", "assistantResponses",
       "toolDetails", "toolContent", "rawApiBodies"),
    _k("otlpTracesEnabled", BOOLEAN, "1.22209.0"),
    # ---- Limits, appearance
    _k("inferenceMaxTokensPerWindow", INTEGER, B),
    _k("inferenceTokenWindowHours", INTEGER, B, low=1, high=720),
    _k("endUserAttribution", BOOLEAN, "1.25927.0", note="renamed from `enduserAttribution`"),
    _k("deploymentDisplayName", STRING, "1.25927.0"),
    _k("deploymentDisplaySubtitle", STRING, "1.25927.0"),
    _k("banner", OBJECT, "1.7196.0"),
    _k("disableFeatureDiscovery", BOOLEAN, "1.21459.0"),
    _k("disableConfigDeprecationWarnings", BOOLEAN, "1.40609.0"),
    # ---- Bootstrap
    _k("bootstrapEnabled", BOOLEAN, "1.10628.0"),
    _k("bootstrapUrl", URL, "1.10628.0"),
    _k("bootstrapOidc", OBJECT, "1.10628.0"),
    _k("bootstrapHeaders", HEADERS, "1.32885.1"),
    _k("bootstrapHeadersHelper", PATH, "1.32885.1"),
    _k("trustBootstrapDelivery", BOOLEAN, "1.26832.0",
       note="renamed from `trustBootstrapLocalExec`"),
    # ---- Renamed or deprecated: still read for a while, each with its replacement
    _k("inferenceGatewayHeaders", HEADERS, B, replaced_by="inferenceCustomHeaders",
       note="renamed in 1.8089.0; deprecated in 1.40609.0, " + CUTOFF),
    _k("isDxtEnabled", BOOLEAN, B, replaced_by="isDesktopExtensionEnabled",
       note="deprecated in 1.40609.0, " + CUTOFF),
    _k("isDxtSignatureRequired", BOOLEAN, B, replaced_by="isDesktopExtensionSignatureRequired",
       note="deprecated in 1.40609.0, " + CUTOFF),
    _k("trustBootstrapLocalExec", BOOLEAN, "1.25927.0", replaced_by="trustBootstrapDelivery",
       note="renamed in 1.26832.0; deprecated in 1.40609.0, " + CUTOFF),
    _k("enduserAttribution", BOOLEAN, "1.24012.0", replaced_by="endUserAttribution",
       note="renamed in 1.25927.0; deprecated in 1.40609.0, " + CUTOFF),
    _k("organizationPluginsUrl", STRING, "1.10628.0", replaced_by="allowedPluginMarketplaces",
       note="deprecated in 1.25927.0 (still honoured)"),
    _k("requireCoworkFullVmSandbox", BOOLEAN, B, replaced_by="(no replacement)",
       note="deprecated at baseline"),
    _k("betaFeaturesEnabled", BOOLEAN, "1.14271.0", replaced_by="(no replacement)",
       note="added and deprecated in 1.14271.0"),
    _k("disableDefaultPlugins", BOOLEAN, "unknown", replaced_by="(no replacement)",
       note="removed in 1.18286.0: no effect"),
)
KEYS = {k.name: k for k in APP_KEYS}
# The gateway keys an export owns: the .reg clears those it does not set, so importing a
# smaller export removes what the previous one wrote (and no static API key lingers
# beside a helper), while the administrator's other Claude keys stay untouched.
EXPORT_OWNS = ("inferenceProvider", "inferenceGatewayBaseUrl", "inferenceGatewayAuthScheme",
               "inferenceCredentialKind", "inferenceGatewayApiKey", "inferenceCredentialHelper",
               "inferenceCredentialHelperTtlSec", "inferenceCredentialHelperTimeoutSec",
               "inferenceGatewayHeaders", "inferenceCustomHeaders", "inferenceModels")
_SIGN_IN = {"sso", "interactive"}
_HELPER_ONLY = ("inferenceCredentialHelperTtlSec", "inferenceCredentialHelperTimeoutSec",
                "inferenceCredentialHelperSilentRefreshEnabled")


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, json.dumps(parts, sort_keys=True))).upper()


# ---------------------------------------------------------------- checking values

Problem = tuple[str, str]  # (level, message): level is "error" or "warning"


def check_app_value(key: AppKey, value: object, source: str) -> list[Problem]:
    """What is wrong with ``value`` for ``key`` as read from ``source``: "plist" (macOS),
    "reg" (Windows: ``int`` is a REG_DWORD) or "json" (the Linux managed-settings file,
    where JSON-typed keys may be native JSON)."""
    native = isinstance(value, (list, dict))
    if native and key.type in JSON_TYPES:
        if source == "plist":  # the current reference reads these; older releases do not
            problems: list[Problem] = [(
                "warning", "a native plist array/dictionary: the portable form is one "
                "<string> of JSON text (older releases read only that)")]
            return problems + _check_parsed(key, value)
        if source == "json":
            return _check_parsed(key, value)
    if isinstance(value, int) and not isinstance(value, bool) and source == "reg" \
            and key.type in (BOOLEAN, INTEGER):
        return _check_text(key, str(value))  # REG_DWORD: read as its decimal value
    if isinstance(value, (bool, int, float)) and source == "json" \
            and key.type in (BOOLEAN, INTEGER, NUMBER):
        return [("warning", f"a JSON {type(value).__name__}: the reference writes every value "
                            "as a string")] + _check_text(key, json.dumps(value))
    if not isinstance(value, str):
        if source == "reg":
            return [("error", f"{_reg_type(value)}: the app reads REG_SZ only (and "
                              "REG_DWORD for booleans and integers)")]
        return [("error", f"must be a string, not {type(value).__name__} (the app reads "
                          "strings only)")]
    return _check_text(key, value, source)


def _reg_type(value: object) -> str:
    """The registry type of a value ``parse_reg`` read."""
    if isinstance(value, RegRaw):
        return value.type_name
    return "REG_DWORD" if isinstance(value, int) else "REG_SZ"


def _check_text(key: AppKey, value: str, source: str = "plist") -> list[Problem]:
    t = key.type
    if t == BOOLEAN and value not in ("true", "false", "1", "0"):
        return [("error", f"{value!r} is not a boolean: write \"true\" or \"false\" (or 1 / 0)")]
    if t == INTEGER:
        if not re.fullmatch(r"[0-9]+", value):
            return [("error", f"{value!r} is not an integer: write a decimal string such "
                              "as \"3600\"")]
        if key.low is not None and key.high is not None and \
                not key.low <= int(value) <= key.high:
            return [("error", f"{value} is outside the documented range "
                              f"{key.low}..{key.high}")]
        if key.name == "inferenceCredentialHelperTtlSec" and \
                not TTL_RANGE[0] <= int(value) <= TTL_RANGE[1]:
            return [("warning", f"{value} seconds is outside {TTL_RANGE[0]}..{TTL_RANGE[1]} "
                                "(the reference gives no range; a shorter TTL runs the "
                                "helper very often, a longer one outlives most credentials)")]
    if t == NUMBER and not re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        return [("error", f"{value!r} is not a decimal number")]
    if t == ENUM:
        if value not in key.values:
            return [("error", f"{value!r} is not one of: {', '.join(key.values)}")]
        advice = dict(key.old_values).get(value)
        if advice:
            return [("warning", f"{value!r} is deprecated: use {advice}")]
    if t == URL:
        return _check_https(value)
    if t == PATH:
        windows = source == "reg"
        absolute = _windows_absolute(value) if windows else value.startswith("/")
        if not absolute:
            return [("error", f"{value!r} is not an absolute "
                              f"{'Windows' if windows else 'macOS or Linux'} path")]
    if t in JSON_TYPES:
        if t == HEADERS and not value.lstrip().startswith(("{", "[")):
            return _check_header_string(value)
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return [("error", "is not valid JSON (JSON-typed keys hold one string of "
                              "JSON text)")]
        return _check_parsed(key, parsed)
    return []


def _check_https(value: str) -> list[Problem]:
    if value.lower().startswith("http://"):
        return [("error", f"{value!r} is plain http: the app requires https:// (the "
                          "reference documents no loopback exception)")]
    try:
        check_url(value)
    except ValueError as exc:
        return [("error", str(exc))]
    return []


def _windows_absolute(path: str) -> bool:
    drive, rest = ntpath.splitdrive(path)
    return bool(drive) and rest.startswith(("\\", "/"))


def _check_parsed(key: AppKey, parsed: object) -> list[Problem]:
    t = key.type
    if t == HEADERS:
        return _check_headers(key, parsed)
    if t == OBJECT:
        return [] if isinstance(parsed, dict) else [("error", "must be a JSON object")]
    if not isinstance(parsed, list):
        if key.name == "orgPluginSettings" and isinstance(parsed, dict) \
                and "mcpServers" in parsed:
            return [("warning", 'the {"mcpServers": ...} record form is deprecated in '
                                f"1.40609.0 ({CUTOFF}): use the array form")]
        return [("error", "must be a JSON array")]
    if t == STRINGS and not all(isinstance(x, str) for x in parsed):
        return [("error", "must be a JSON array of strings")]
    if t == ENUMS:
        wrong = [x for x in parsed if x not in key.values]
        if wrong:
            return [("error", f"{wrong[0]!r} is not one of: {', '.join(key.values)}")]
    if t == OBJECTS:
        allowed = {"object": dict, "string": str}
        kinds = tuple(allowed[i] for i in key.items)
        if not all(isinstance(x, kinds) for x in parsed):
            return [("error", f"must be a JSON array of {' or '.join(key.items)}s")]
        if key.name == "inferenceModels" and not all(
                isinstance(x, str) or isinstance(x.get("name"), str) for x in parsed):
            return [("error", 'each model object needs a "name"')]
    return []


def _check_headers(key: AppKey, parsed: object) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(parsed, list):
        if not all(isinstance(x, str) and ":" in x for x in parsed):
            return [("error", 'an array of headers must hold "Name: Value" strings')]
        problems.append(("warning", 'the ["Name: Value", ...] form is deprecated in 1.40609.0 '
                                    f'({CUTOFF}): write a JSON object {{"Name": "value"}}'))
        parsed = dict(_split_header(x, ":") for x in parsed)
    if not isinstance(parsed, dict):
        return [("error", "must be a JSON object of header names to values")]
    return problems + _check_header_names(parsed)


def _check_header_string(value: str) -> list[Problem]:
    """The oldest form, "Name=value,Name2=value2": still read, deprecated in 1.40609.0."""
    pairs = [p for p in value.split(",") if p.strip()]
    if not pairs or not all("=" in p for p in pairs):
        return [("error", 'is neither a JSON object of headers nor "Name=value,..." text')]
    problems: list[Problem] = [("warning", 'the "Name=value,..." form is deprecated in '
                                           f"1.40609.0 ({CUTOFF}): write a JSON object")]
    return problems + _check_header_names(dict(_split_header(p, "=") for p in pairs))


def _split_header(text: str, sep: str) -> tuple[str, str]:
    name, _, value = text.partition(sep)
    return name.strip(), value.strip()


def _check_header_names(headers: dict[object, object]) -> list[Problem]:
    from credhelper.output import is_header_name

    for name, value in headers.items():
        if not isinstance(name, str) or not is_header_name(name):
            return [("error", f"{name!r} is not a valid header name")]
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            return [("error", f"the value of {name} must be a string without CR, LF or NUL")]
    return []


def check_conflicts(values: Mapping[str, object]) -> list[Problem]:
    """Keys that contradict each other, or one that is inert without another."""
    found: list[Problem] = []
    helper = "inferenceCredentialHelper" in values
    kind = values.get(_SOLE)
    scheme = values.get("inferenceGatewayAuthScheme")
    if helper and "inferenceGatewayApiKey" in values:
        found.append(("error", "inferenceCredentialHelper and inferenceGatewayApiKey are both "
                               "set: the helper always wins, so the API key is a secret "
                               "distributed for nothing; remove inferenceGatewayApiKey"))
    if helper and scheme == "sso":
        found.append(("error", "inferenceGatewayAuthScheme = sso signs users in itself: remove "
                               "inferenceCredentialHelper, or the sso scheme"))
    if helper and isinstance(kind, str) and kind != "helper-script":
        found.append(("error", f"inferenceCredentialKind = {kind} uses that source only, so "
                               "inferenceCredentialHelper is never run: set it to "
                               "helper-script, or remove the helper"))
    if kind == "helper-script" and not helper:
        found.append(("error", "inferenceCredentialKind = helper-script needs "
                               "inferenceCredentialHelper"))
    if values.get("inferenceProvider") == "gateway":
        if "inferenceGatewayBaseUrl" not in values:
            found.append(("error", "inferenceProvider = gateway needs inferenceGatewayBaseUrl"))
        signs_in = scheme == "sso" or kind == "interactive" or "inferenceGatewayOidc" in values
        if not (helper or signs_in or "inferenceGatewayApiKey" in values or kind):
            found.append(("error", "the gateway has no credential: set "
                                   "inferenceCredentialHelper, inferenceGatewayApiKey or "
                                   "inferenceCredentialKind = interactive"))
    unused = [k for k in _HELPER_ONLY if k in values]
    if unused and not helper:
        found.append(("warning", f"{', '.join(unused)} without inferenceCredentialHelper: "
                                 "no effect"))
    old, new = values.get("inferenceGatewayHeaders"), values.get("inferenceCustomHeaders")
    if old is not None and new is not None and old != new:
        found.append(("warning", "inferenceGatewayHeaders and inferenceCustomHeaders differ: "
                                 "releases from 1.8089.0 read only inferenceCustomHeaders"))
    if "inferenceMaxTokensPerWindow" in values and "inferenceTokenWindowHours" not in values:
        found.append(("warning", "inferenceMaxTokensPerWindow without "
                                 "inferenceTokenWindowHours: the cap is inert"))
    return found


# ---------------------------------------------------------------- export


@dataclass
class Options:
    """What ``credhelper mdm export`` was asked for."""

    base_url: str
    helper: str | None = None
    windows_helper: str | None = None
    auth_scheme: str = "bearer"
    credential_kind: str | None = None
    ttl: int | None = None
    timeout: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    provider: str | None = None
    settings: list[str] = field(default_factory=list)
    app: str = "desktop"
    code_settings: str | None = None  # JSON file of the other Claude Code managed settings
    legacy_headers: bool = False  # also inferenceGatewayHeaders, for releases before 1.8089.0


@dataclass
class Export:
    app: dict[str, str]  # Claude Desktop key -> string value (macOS helper path)
    mac_helper: str | None
    windows_helper: str | None
    helper_tables: dict[str, dict[str, str]]  # the helper's own settings, as strings
    warnings: list[str]
    apps: tuple[str, ...] = ("desktop",)
    code: dict[str, object] = field(default_factory=dict)  # Claude Code settings (macOS)
    code_windows: dict[str, object] = field(default_factory=dict)  # ... with Windows paths


def build(options: Options, env: Mapping[str, str]) -> Export:
    """Validate the options and gather everything the files hold."""
    o = options
    apps = ("desktop", "claude-code") if o.app == "both" else (o.app,)
    signs_in = o.auth_scheme == "sso" or o.credential_kind == "interactive"
    if signs_in:
        _check_sign_in(o, apps)
    elif not o.helper and not o.windows_helper and not o.provider:
        raise ConfigError("say which helper the app runs: --helper PATH or --provider NAME",
                          hint="e.g. --provider vault (the helper where the install layout puts "
                               "it), --helper '/Library/Application Support/.../credhelper-vault'; "
                               "or --credential-kind interactive for the app's own sign-in")
    if o.timeout is not None and not 1 <= o.timeout <= 600:
        raise ConfigError(f"--timeout {o.timeout}: inferenceCredentialHelperTimeoutSec is "
                          "1..600 seconds", hint="e.g. --timeout 120 for a browser sign-in")
    if o.ttl is not None and not TTL_RANGE[0] <= o.ttl <= TTL_RANGE[1]:
        raise ConfigError(f"--ttl {o.ttl} is outside {TTL_RANGE[0]}..{TTL_RANGE[1]} seconds",
                          hint="e.g. --ttl 1800")
    _check_https_option(o.base_url)
    warnings: list[str] = []
    mac = win = None
    if not signs_in:
        name = o.provider or _helper_name(o.helper or o.windows_helper or "")
        windows_only = bool(o.helper) and _windows_absolute(o.helper or "")
        mac = o.helper if o.helper and not windows_only else MAC_HELPER.format(name)
        win = o.windows_helper or (o.helper if windows_only else WINDOWS_HELPER.format(name))
        if mac != o.helper:
            warnings.append(f"macOS helper path: {mac} (the install layout's; --helper PATH "
                            "sets another)")
        if win != o.windows_helper and not windows_only:
            warnings.append(f"Windows helper path: {win} (the install layout's; "
                            "--windows-helper PATH sets another)")
    app = _desktop_values(o, mac) if "desktop" in apps else {}
    for key, value in app.items():
        problems = [p for p in check_app_value(KEYS[key], value, "plist") if p[0] == "error"]
        if problems:
            raise ConfigError(f"{key}: {problems[0][1]}", hint="fix the option and export again")
    conflicts = [p for p in check_conflicts(app) if p[0] == "error"] if app else []
    if conflicts:
        raise ConfigError(conflicts[0][1], hint="fix the options and export again")
    if win is not None:
        problems = check_app_value(KEYS["inferenceCredentialHelper"], win, "reg")
        if problems:
            raise ConfigError(f"Windows helper path: {problems[0][1]}",
                              hint="give --windows-helper C:\\...\\credhelper-NAME.exe")
    if o.auth_scheme == "sso":
        warnings.append("inferenceGatewayAuthScheme = sso is deprecated in 1.40609.0 and read "
                        "until 2026-10-07: from 1.8555.0 use --credential-kind interactive")
    if o.timeout is not None and "desktop" not in apps:
        warnings.append("--timeout sets a Claude Desktop key: Claude Code has none")

    tables, lifetime = _helper_tables(o, env)
    export = Export(app, mac, win, tables, warnings, apps)
    if "claude-code" in apps:
        assert mac is not None and win is not None  # a sign-in export was refused above
        base = _read_code_settings(o.code_settings)
        export.code = _code_settings(base, o, _posix_command(mac))
        export.code_windows = _code_settings(base, o, _windows_command(win))
    if lifetime is not None:
        warnings += _lifetime_warnings(o, apps, *lifetime)
    return export


def _check_sign_in(o: Options, apps: tuple[str, ...]) -> None:
    what = ("--auth-scheme sso" if o.auth_scheme == "sso" else "--credential-kind interactive")
    if "claude-code" in apps:
        raise ConfigError(f"{what}: Claude Code reads its credential only from apiKeyHelper",
                          hint="export --app desktop for the app's sign-in, and Claude Code on "
                               "its own with a helper (e.g. --provider oidc)")
    given = [flag for flag, value in (("--helper", o.helper), ("--windows-helper",
             o.windows_helper), ("--provider", o.provider), ("--set", o.settings),
             ("--ttl", o.ttl), ("--timeout", o.timeout)) if value]
    if given:
        raise ConfigError(f"{what} has the app sign users in itself: it takes no helper, but "
                          f"{', '.join(given)} configures one",
                          hint=f"drop {', '.join(given)}, or drop {what} to run the helper")


def _check_https_option(base_url: str) -> None:
    problems = _check_https(base_url)
    if problems:
        raise ConfigError(f"--base-url: {problems[0][1]}",
                          hint="e.g. --base-url https://llm-gateway.example.com")


def _desktop_values(o: Options, mac: str | None) -> dict[str, str]:
    app = {"inferenceProvider": "gateway", "inferenceGatewayBaseUrl": o.base_url.rstrip("/"),
           "inferenceGatewayAuthScheme": o.auth_scheme}
    if o.credential_kind:
        app["inferenceCredentialKind"] = o.credential_kind
    if mac is not None:
        app["inferenceCredentialHelper"] = mac
    if o.ttl is not None:
        app["inferenceCredentialHelperTtlSec"] = str(o.ttl)
    if o.timeout is not None:
        app["inferenceCredentialHelperTimeoutSec"] = str(o.timeout)
    if o.headers:
        text = json.dumps(o.headers, separators=(",", ":"))
        app["inferenceCustomHeaders"] = text
        # Releases before 1.8089.0 read only the old name; later ones warn every user
        # about it (1.40609.0), so it is written only when asked for.
        if o.legacy_headers:
            app["inferenceGatewayHeaders"] = text
    if o.models:
        app["inferenceModels"] = json.dumps(o.models, separators=(",", ":"))
    return app


def _helper_name(path: str) -> str:
    base = ntpath.basename(path) if "\\" in path else os.path.basename(path)
    base = base[:-4] if base.lower().endswith(".exe") else base
    return base.removeprefix("credhelper-") or "helper"


def _posix_command(path: str) -> str:
    # Claude Code runs apiKeyHelper through /bin/sh, and runs it again after a 401 with no
    # context set: --force-refresh keeps that run from handing back the refused credential
    # (docs/design.md, "Contexts and the cache").
    return f"{shlex.quote(path)} --force-refresh"


def _windows_command(path: str) -> str:
    # The reference says /bin/sh and says nothing of Windows: double quotes read the same
    # in sh and in cmd, as long as the path holds none of the characters either expands.
    bad = [c for c in '"%!$`' if c in path]
    if bad or path.endswith("\\"):
        raise ConfigError(f"Windows helper path {path!r}: {bad[0] if bad else 'a final backslash'}"
                          " cannot be quoted for Claude Code's apiKeyHelper",
                          hint="install the helper in a folder without it")
    return f'"{path}" --force-refresh'


def _read_code_settings(path: str | None) -> dict[str, object]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except OSError as exc:
        raise ConfigError(f"--code-settings: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"--code-settings: {path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("env", {}), dict):
        raise ConfigError(f"--code-settings: {path} must be a JSON object (managed settings), "
                          "its env an object")
    return data


def _code_settings(base: dict[str, object], o: Options, command: str) -> dict[str, object]:
    """Claude Code's managed settings: the administrator's others, then ours."""
    env = dict(base.get("env", {}))  # type: ignore[call-overload]
    env["ANTHROPIC_BASE_URL"] = o.base_url.rstrip("/")
    if o.ttl is not None:
        env["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"] = str(o.ttl * 1000)
    if o.headers:  # Claude Code's form: one "Name: Value" per line
        env["ANTHROPIC_CUSTOM_HEADERS"] = "\n".join(f"{k}: {v}" for k, v in o.headers.items())
    return {**base, "apiKeyHelper": command, "env": env}


def _helper_tables(o: Options, env: Mapping[str, str]
                   ) -> tuple[dict[str, dict[str, str]], tuple[float, str] | None]:
    """The helper's settings to manage, and the credential lifetime the provider declares
    (seconds, and where that figure comes from)."""
    given: dict[str, dict[str, str]] = {}
    for item in o.settings:
        table, key, value = _parse_set(item)
        _check_helper_setting(table, key, value, f"--set {table}.{key}")
        given.setdefault(table, {})[key] = value
    tables: dict[str, dict[str, str]] = {}
    lifetime = None
    if o.provider:
        from credhelper.config import env_name

        # The --set values take part in resolving the provider (a required address given
        # only on the command line is enough), and are written in their own tables below.
        overlay = dict(env)
        overlay.update({env_name(t, k): v
                        for t, values in given.items() for k, v in values.items()})
        skip = set(given.get(o.provider, {})) | set(given.get("defaults", {}))
        tables, lifetime = _current_settings(o.provider, overlay, skip)
    for table, values in given.items():
        tables.setdefault(table, {}).update(values)
    return tables, lifetime


def _parse_set(item: str) -> tuple[str, str, str]:
    name, sep, value = item.partition("=")
    table, dot, key = name.partition(".")
    if not sep or not dot or not table or not key:
        raise ConfigError(f"--set {item.split('=')[0]!r}: expected TABLE.KEY=VALUE",
                          hint="e.g. --set vault.address=https://vault.example.com:8200")
    return table.strip().lower(), key.strip().lower(), value


def _settings_of(table: str) -> dict[str, Setting]:
    from credhelper import registry
    from credhelper.provider import COMMON_SETTINGS

    common = {s.name: s for s in COMMON_SETTINGS}
    if table == "defaults":
        return common
    if table not in registry.names():
        raise ConfigError(f"unknown table {table!r}",
                          hint=f"tables are: defaults, {', '.join(registry.names())}")
    return {**common, **{s.name: s for s in registry.load(table).settings}}


def _check_helper_setting(table: str, key: str, value: object, where: str) -> None:
    from credhelper import secretref
    from credhelper.config import parse_value

    known = _settings_of(table)
    setting = known.get(key)
    if setting is None:
        raise ConfigError(f"{where}: unknown key [{table}] {key}",
                          hint=f"keys of [{table}]: {', '.join(sorted(known))}")
    # A reference (file:, env:, keyring:) says where each machine keeps its secret and is
    # no secret itself; only a value in clear is refused.
    if setting.secret and secretref.parse(value, where).in_clear:
        raise ConfigError(
            f"{where}: refusing to put the secret setting [{table}] {key} into a profile",
            hint="profiles are readable on every machine they reach: give a reference to "
                 f"where each machine keeps it ({secretref.FORMS})")
    parse_value(setting, value, where, True)


def _as_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


def _current_settings(provider: str, env: Mapping[str, str], skip: set[str]
                      ) -> tuple[dict[str, dict[str, str]], tuple[float, str] | None]:
    """The provider's settings that the current configuration sets, as strings, and the
    lifetime of its credentials."""
    from credhelper import config as config_mod, registry, secretref

    cls = registry.load(provider)
    conf = config_mod.load(cls, env)
    table: dict[str, str] = {}
    for name, value in conf.values.items():
        if value.source == "default" or value.value is None or name in skip:
            continue
        if value.setting.secret:
            found = secretref.find(conf, name)
            if found is None or found.ref.in_clear:
                raise ConfigError(
                    f"refusing to export the secret setting [{provider}] {name} "
                    f"(from {value.source}) into a profile",
                    hint="unset it for the export, or give a reference to where each machine "
                         f"keeps it ({secretref.FORMS})")
        table[name] = _as_string(value.value)
    return ({provider: table} if table else {}), _lifetime(cls, provider, conf, env)


def _lifetime(cls: type, provider: str, conf: ProviderConfig, env: Mapping[str, str]
              ) -> tuple[float, str] | None:
    """How long the provider's credentials live: first from the setting the provider
    declares as their lifetime (``lifetime_setting``: a name, or one per ``mode``), else
    from the credential cached on this machine."""
    declared: tuple[float, str] | None = cls(conf).declared_lifetime()
    if declared is not None:
        return declared
    from credhelper.cache import open_cache
    from credhelper.errors import CredhelperError
    from credhelper.fullpath import cache_dir, cache_key
    from credhelper.log import Log

    try:
        cache = open_cache(conf["cache"], cache_dir(env), Log("credhelper"))
        entry = cache.load(provider, cache_key(provider, conf, env))
    except (CredhelperError, OSError):
        return None
    if entry is None:
        return None
    return entry.expires_at - entry.fetched_at, "the credential cached on this machine"


def _lifetime_warnings(o: Options, apps: tuple[str, ...], lifetime: float,
                       where: str) -> list[str]:
    # The helper hands out a credential only while it stays valid min_validity (default
    # 5 min) longer; the suggestion leaves that margin.
    suggestion = max(TTL_RANGE[0], int(lifetime) - 300)
    warnings = []
    for app, label, default, key in (
            ("desktop", "Claude Desktop", DEFAULT_TTL, "inferenceCredentialHelperTtlSec"),
            ("claude-code", "Claude Code", CODE_DEFAULT_TTL, "CLAUDE_CODE_API_KEY_HELPER_TTL_MS")):
        ttl = o.ttl if o.ttl is not None else default
        if app in apps and ttl > lifetime:
            said = f"{ttl}s" + ("" if o.ttl is not None else f", the default of {key}")
            warnings.append(f"the {o.provider} credential lives {int(lifetime)}s ({where}), less "
                            f"than {label} keeps it ({said}): export with --ttl {suggestion}")
    return warnings


# ---------------------------------------------------------------- writing the files


def _payload(domain: str, ident: str, name: str, body: Mapping[str, object]) -> dict[str, object]:
    return {"PayloadType": domain, "PayloadIdentifier": ident,
            "PayloadUUID": _uuid(ident, body), "PayloadVersion": 1,
            "PayloadDisplayName": name, **body}


def _profile(ident: str, name: str, description: str,
             content: list[dict[str, object]]) -> bytes:
    profile = {
        "PayloadType": "Configuration", "PayloadVersion": 1, "PayloadIdentifier": ident,
        "PayloadUUID": _uuid(ident, [p["PayloadUUID"] for p in content]),
        "PayloadDisplayName": name, "PayloadDescription": description,
        "PayloadScope": "System", "PayloadContent": content,
    }
    return plistlib.dumps(profile, sort_keys=True)


def _helper_payload(export: Export, profile: str) -> list[dict[str, object]]:
    if not export.helper_tables:
        return []
    return [_payload(managed.DOMAIN, f"{profile}.helper", "credhelper settings",
                     export.helper_tables)]


def mobileconfig(export: Export) -> bytes:
    app = _payload(APP_DOMAIN, f"{PROFILE_ID}.app", "Claude: LLM gateway", export.app)
    return _profile(PROFILE_ID, "Claude gateway (credhelper)",
                    "Points Claude Desktop at the LLM gateway and its credential helper.",
                    [app, *_helper_payload(export, PROFILE_ID)])


def code_mobileconfig(export: Export) -> bytes:
    # Claude Code reads the domain's top-level keys as managed-settings.json's: env is a
    # dictionary here, not JSON text.
    code = _payload(CODE_DOMAIN, f"{CODE_PROFILE_ID}.settings", "Claude Code: LLM gateway",
                    export.code)
    helper = _helper_payload(export, CODE_PROFILE_ID) if export.apps == ("claude-code",) else []
    return _profile(CODE_PROFILE_ID, "Claude Code gateway (credhelper)",
                    "Points Claude Code at the LLM gateway and its credential helper.",
                    [code, *helper])


def _reg_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reg_helper_tables(export: Export) -> list[str]:
    root = f"HKEY_LOCAL_MACHINE\\{managed.POLICY_KEY}"
    # The helper's policy key is ours alone: it is cleared first, so that a setting dropped
    # from the export does not linger.
    lines = [f"[-{root}]", "", f"[{root}]", ""]
    for table, values in sorted(export.helper_tables.items()):
        lines.append(f"[{root}\\{table}]")
        lines += [f"{_reg_string(k)}={_reg_string(v)}" for k, v in sorted(values.items())]
        lines.append("")
    return lines


def _reg_bytes(lines: list[str]) -> bytes:
    # regedit expects UTF-16 LE with a byte-order mark and CRLF line ends.
    return "\r\n".join(["Windows Registry Editor Version 5.00", "", *lines, ""]).encode("utf-16")


def regfile(export: Export) -> bytes:
    app = dict(export.app)
    if export.windows_helper is not None:
        app["inferenceCredentialHelper"] = export.windows_helper
    # The Claude key also holds the administrator's other policies (telemetry, MCP, ...),
    # so it is not deleted: the gateway values this export owns but does not set are.
    lines = [f"[HKEY_LOCAL_MACHINE\\{APP_POLICY_KEY}]"]
    lines += [f"{_reg_string(k)}=-" for k in EXPORT_OWNS if k not in app]
    lines += [f"{_reg_string(k)}={_reg_string(v)}" for k, v in app.items()]
    return _reg_bytes(lines + [""] + _reg_helper_tables(export))


def code_regfile(export: Export) -> bytes:
    root = f"HKEY_LOCAL_MACHINE\\{CODE_POLICY_KEY}"
    text = json.dumps(export.code_windows, separators=(",", ":"), sort_keys=True)
    # Claude Code reads one value there, the whole of its managed settings: the key is
    # replaced as a whole.
    lines = [f"[-{root}]", "", f"[{root}]", f"{_reg_string(CODE_POLICY_VALUE)}={_reg_string(text)}",
             ""]
    if export.apps == ("claude-code",):
        lines += _reg_helper_tables(export)
    return _reg_bytes(lines)


def files(export: Export) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    if "desktop" in export.apps:
        out += [(MOBILECONFIG, mobileconfig(export)), (REGFILE, regfile(export))]
    if "claude-code" in export.apps:
        text = json.dumps(export.code, indent=2, sort_keys=True) + "\n"
        out += [(CODE_JSON, text.encode()), (CODE_MOBILECONFIG, code_mobileconfig(export)),
                (CODE_REGFILE, code_regfile(export))]
    return out


def write(export: Export, directory: str) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    written: list[str] = []
    for name, data in files(export):
        path = os.path.join(directory, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        written.append(path)
    return written


# ---------------------------------------------------------------- lint


@dataclass
class Finding:
    level: str  # error | warning
    where: str  # the key or payload concerned; "" for the file as a whole
    message: str


def lint(path: str) -> list[Finding]:
    """Findings for one file: a .mobileconfig or managed-preferences plist, a .reg, or a
    managed-settings.json (Claude Code's, or Claude Desktop's on Linux)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    head = data.lstrip()
    if path.lower().endswith(".reg") or data[:2] in (b"\xff\xfe", b"\xfe\xff") or \
            head.startswith(b"Windows Registry"):
        return _lint_reg(path, data)
    if path.lower().endswith(".json") or head.startswith(b"{"):
        return _lint_json(path, data)
    return _lint_plist(path, data)


def _findings(problems: list[Problem], where: str) -> list[Finding]:
    return [Finding(level, where, message) for level, message in problems]


def _lint_app(values: Mapping[str, object], source: str, where: str) -> list[Finding]:
    found: list[Finding] = []
    for name, value in values.items():
        key = KEYS.get(name)
        at = f"{where} {name}".strip()
        if key is None:
            base = name.split(".", 1)[0]
            hint = (f"separate dotted keys are never read: write {base} as one JSON value"
                    if "." in name and base in KEYS else
                    "not in the configuration reference: the app ignores it, unless a newer "
                    "release reads it")
            found.append(Finding("warning", at, f"unknown key: {hint}"))
            continue
        if key.deprecated:
            found.append(Finding("warning", at, f"deprecated ({key.note}): use "
                                                f"{key.replaced_by}"))
        found += _findings(check_app_value(key, value, source), at)
    return found + _findings(check_conflicts(values), where)


def _lint_code(settings: object, source: str, where: str) -> list[Finding]:
    """Claude Code's managed settings: the keys this project writes (apiKeyHelper, env).
    The rest of Claude Code's settings are not checked here."""
    if not isinstance(settings, dict):
        return [Finding("error", where, "must be a JSON object of settings")]
    found: list[Finding] = []
    helper = settings.get("apiKeyHelper")
    if helper is not None:
        found += _findings(_check_key_helper(helper), f"{where} apiKeyHelper".strip())
    env = settings.get("env", {})
    if not isinstance(env, dict):
        return found + [Finding("error", f"{where} env".strip(), "must be an object of variables")]
    for name, value in env.items():
        if not isinstance(value, str):
            found.append(Finding("warning", f"{where} env.{name}".strip(),
                                 f"a {type(value).__name__}: environment values are strings"))
    url = env.get("ANTHROPIC_BASE_URL")
    if isinstance(url, str):
        try:
            check_url(url)
        except ValueError as exc:
            found.append(Finding("error", f"{where} env.ANTHROPIC_BASE_URL".strip(), str(exc)))
    ttl = env.get("CLAUDE_CODE_API_KEY_HELPER_TTL_MS")
    if isinstance(ttl, str) and not re.fullmatch(r"[0-9]+", ttl):
        found.append(Finding("error", f"{where} env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS".strip(),
                             f"{ttl!r} is not a whole number of milliseconds"))
    return found


def _check_key_helper(command: object) -> list[Problem]:
    if not isinstance(command, str) or not command.strip():
        return [("error", "must be a command line (a string)")]
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return [("error", f"/bin/sh cannot split it: {exc}")]
    program = words[0] if words else ""
    windows = _windows_absolute(program)
    absolute = windows or program.startswith("/")
    problems: list[Problem] = []
    if not absolute:
        problems.append(("warning", f"{program!r} is not an absolute path: it is looked up "
                                    "on each user's PATH"))
    name = (ntpath.basename(program) if windows else os.path.basename(program)).lower()
    if name.startswith("credhelper") and "--force-refresh" not in words[1:]:
        problems.append(("warning", "no --force-refresh: after a 401 Claude Code would get the "
                                    "cached, refused credential back (docs/design.md, "
                                    "\"Contexts and the cache\")"))
    return problems


def _lint_helper(tables: object, where: str) -> list[Finding]:
    found: list[Finding] = []
    if not isinstance(tables, dict):
        return [Finding("error", where, "must hold one dictionary per table")]
    for table, values in tables.items():
        if not isinstance(values, dict):
            found.append(Finding("error", f"{where} {table}", "must be a dictionary of settings"))
            continue
        for key, value in values.items():
            at = f"{where} [{table}] {key}"
            if not isinstance(value, str):
                found.append(Finding("error", at, f"must be a string, not {type(value).__name__}"))
                continue
            try:
                _check_helper_setting(table, key, value, at)
            except ConfigError as exc:
                found.append(Finding("error", at, exc.message.removeprefix(at + ": ")))
    return found


def _lint_plist(path: str, data: bytes) -> list[Finding]:
    try:
        profile = plistlib.loads(data)
    except Exception as exc:  # plistlib raises several types for damaged input
        raise ConfigError(f"{path} is not a property list: {exc}",
                          hint="lint takes a .mobileconfig (unsigned), a .reg or a "
                               "managed-settings.json") from None
    if not isinstance(profile, dict):
        raise ConfigError(f"{path}: the top level is not a dictionary")
    payloads = profile.get("PayloadContent")
    if not isinstance(payloads, list):
        # A bare managed-preferences plist: Claude Code's if it holds its keys.
        kind = CODE_DOMAIN if _looks_like_code(profile) else APP_DOMAIN
        payloads = [dict(profile, PayloadType=kind)]
    found: list[Finding] = []
    seen = False
    for i, payload in enumerate(payloads):
        if not isinstance(payload, dict):
            found.append(Finding("error", f"PayloadContent[{i}]", "is not a dictionary"))
            continue
        domain = payload.get("PayloadType")
        body = {k: v for k, v in payload.items() if not k.startswith("Payload")}
        if domain == APP_DOMAIN:
            seen = True
            found += _lint_app(body, "plist", APP_DOMAIN)
        elif domain == CODE_DOMAIN:
            seen = True
            found += _lint_code(body, "plist", CODE_DOMAIN)
        elif domain == managed.DOMAIN:
            found += _lint_helper(body, managed.DOMAIN)
        elif domain == "com.apple.ManagedClient.preferences":
            found.append(Finding("warning", f"PayloadContent[{i}]",
                                 "legacy MCX payload: not checked"))
    if not seen:
        found.append(Finding("error", "", f"no payload for {APP_DOMAIN} or {CODE_DOMAIN}"))
    return found


def _looks_like_code(values: Mapping[str, object]) -> bool:
    return not any(k in KEYS or k.startswith("inference") for k in values) and \
        any(k in values for k in ("apiKeyHelper", "env", "permissions"))


def _lint_json(path: str, data: bytes) -> list[Finding]:
    try:
        settings = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: the top level is not a JSON object")
    if _looks_like_code(settings):
        return _lint_code(settings, "json", "")
    # Claude Desktop on Linux: /etc/claude-desktop/managed-settings.json, keys at the top
    # level, native JSON for the JSON-typed keys.
    return _lint_app(settings, "json", "")


@dataclass(frozen=True)
class RegRaw:
    """A registry value written in hex: its type number and bytes."""

    kind: int
    data: bytes

    NAMES = {0: "REG_NONE", 2: "REG_EXPAND_SZ", 3: "REG_BINARY", 4: "REG_DWORD",
             7: "REG_MULTI_SZ", 11: "REG_QWORD"}

    @property
    def type_name(self) -> str:
        return self.NAMES.get(self.kind, f"registry type {self.kind}")

    def text(self) -> str | None:
        """A REG_EXPAND_SZ's string (UTF-16 LE, NUL-terminated), else None."""
        if self.kind != 2:
            return None
        return self.data.decode("utf-16-le", "replace").rstrip("\0")


def parse_reg(text: str) -> dict[str, dict[str, object]]:
    """A .reg file as {key path: {value name: value}}; strings stay str, ``dword:`` becomes
    int, hex forms ``RegRaw``. Deleted keys (``[-...]``) and values (``=-``) are left out."""
    keys: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip().lstrip("\ufeff") != "Windows Registry Editor Version 5.00":
        raise ValueError("the first line is not 'Windows Registry Editor Version 5.00'")
    i = 1
    while i < len(lines):
        line = lines[i].strip()
        while line.endswith("\\") and i + 1 < len(lines):  # continued hex data
            i += 1
            line = line[:-1] + lines[i].strip()
        i += 1
        if not line or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1]
            if name.startswith("-"):
                keys.pop(name[1:], None)
                current = None
            else:
                current = keys.setdefault(name, {})
            continue
        if current is None:
            raise ValueError(f"a value outside a key: {line[:40]!r}")
        name, rest = _reg_name(line)
        if rest.startswith('"'):
            current[name] = _reg_unquote(rest)
        elif rest.startswith("dword:"):
            current[name] = int(rest[6:], 16)
        elif rest.startswith("hex"):
            kind_text, _, body = rest.partition(":")
            kind = int(kind_text[4:-1], 16) if kind_text.startswith("hex(") else 3
            current[name] = RegRaw(kind, bytes(int(b, 16) for b in body.split(",") if b))
        elif rest == "-":
            current.pop(name, None)
        else:
            raise ValueError(f"cannot read the value of {name!r}")
    return keys


def _reg_name(line: str) -> tuple[str, str]:
    if line.startswith("@="):
        return "", line[2:]
    if not line.startswith('"'):
        raise ValueError(f"expected \"name\"=value: {line[:40]!r}")
    j = 1
    out: list[str] = []
    while j < len(line):
        c = line[j]
        if c == "\\" and j + 1 < len(line):
            out.append(line[j + 1])
            j += 2
            continue
        if c == '"':
            break
        out.append(c)
        j += 1
    rest = line[j + 1 :]
    if not rest.startswith("="):
        raise ValueError(f"expected = after {''.join(out)!r}")
    return "".join(out), rest[1:]


def _reg_unquote(text: str) -> str:
    if not (len(text) >= 2 and text.endswith('"')):
        raise ValueError(f"unterminated string {text[:40]!r}")
    out: list[str] = []
    j, body = 0, text[1:-1]
    while j < len(body):
        if body[j] == "\\" and j + 1 < len(body):
            out.append(body[j + 1])
            j += 2
        else:
            out.append(body[j])
            j += 1
    return "".join(out)


def _lint_reg(path: str, data: bytes) -> list[Finding]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is neither UTF-16 nor UTF-8 text") from None
    try:
        keys = parse_reg(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a registry file regedit accepts: {exc}") from None
    found: list[Finding] = []
    if data[:2] != b"\xff\xfe":
        found.append(Finding("warning", "",
                             "not UTF-16 LE with a byte-order mark, as regedit writes"))
    helper_root = managed.POLICY_KEY.lower()
    seen = False
    helper: dict[str, dict[str, object]] = {}
    for key, values in keys.items():
        hive, _, sub = key.partition("\\")
        if hive.upper() not in ("HKEY_LOCAL_MACHINE", "HKEY_CURRENT_USER", "HKLM", "HKCU"):
            continue
        low = sub.lower()
        if low == APP_POLICY_KEY.lower():
            seen = True
            found += _lint_app(values, "reg", key)
        elif low.startswith(APP_POLICY_KEY.lower() + "\\"):
            found.append(Finding("warning", key, "the app never reads subkeys: write its "
                                                 f"values directly under {APP_POLICY_KEY}"))
        elif low == CODE_POLICY_KEY.lower():
            seen = True
            found += _lint_code_reg(values, key)
        elif low == helper_root:
            for name in values:
                found.append(Finding("error", f"{key} {name}",
                                     "settings go in a subkey per table, e.g. \\defaults"))
        elif low.startswith(helper_root + "\\"):
            helper[sub[len(helper_root) + 1 :].lower()] = values
    if helper:
        found += _lint_helper(helper, f"HKEY_LOCAL_MACHINE\\{managed.POLICY_KEY}")
    if not seen:
        found.append(Finding("error", "", f"no values under HKEY_LOCAL_MACHINE\\{APP_POLICY_KEY} "
                                          f"or \\{CODE_POLICY_KEY}"))
    return found


def _lint_code_reg(values: Mapping[str, object], key: str) -> list[Finding]:
    found = [Finding("warning", f"{key} {name}", f"not read: Claude Code reads only the "
                                                 f"{CODE_POLICY_VALUE} value")
             for name in values if name != CODE_POLICY_VALUE]
    value = values.get(CODE_POLICY_VALUE)
    text = value.text() if isinstance(value, RegRaw) else value
    at = f"{key} {CODE_POLICY_VALUE}"
    if value is None:
        return found + [Finding("error", key, f"no {CODE_POLICY_VALUE} value")]
    if not isinstance(text, str):
        return found + [Finding("error", at, "must be REG_SZ (or REG_EXPAND_SZ) JSON text, "
                                             f"not {_reg_type(value)}")]
    try:
        settings = json.loads(text)
    except ValueError:
        return found + [Finding("error", at, "is not valid JSON")]
    return found + _lint_code(settings, "reg", at)
