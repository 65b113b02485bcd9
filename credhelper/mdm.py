"""MDM profiles: write the app's gateway keys and the helper's own settings, and lint them.

``APP_KEYS`` is the one table of the app's managed keys (names, types, which releases
read them). ``export`` writes ``claude-gateway.mobileconfig`` (macOS) and
``claude-gateway.reg`` (Windows) from it; ``lint`` checks an existing file against it.
Every value the app reads is a string; JSON-valued keys are one JSON string.
"""

from __future__ import annotations

import json
import ntpath
import os
import plistlib
import uuid
from dataclasses import dataclass

from credhelper import managed
from credhelper.config import check_url
from credhelper.errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

    from credhelper.config import ProviderConfig
    from credhelper.provider import Setting

APP_DOMAIN, APP_POLICY_KEY = managed.APP_DOMAIN, managed.APP_POLICY_KEY
MOBILECONFIG = "claude-gateway.mobileconfig"
REGFILE = "claude-gateway.reg"
PROFILE_ID = "com.credhelper.claude-gateway"
# Fixed namespace: the same input always gives the same payload UUIDs, so a re-export
# is recognised by MDM as the same profile rather than a new one.
UUID_NAMESPACE = uuid.UUID("0f5c3a52-7d1e-5b8e-9c39-2b8f3f4e6a10")
TTL_RANGE = (60, 86400)  # what lint accepts for inferenceCredentialHelperTtlSec
DEFAULT_TTL = 3600  # the app's own default when the key is absent

# Where the README's layout installs each helper (used when --helper is not given).
MAC_HELPER = "/Library/Application Support/credhelper/credhelper-{0}/credhelper-{0}"
WINDOWS_HELPER = "C:\\Program Files\\credhelper\\credhelper-{0}\\credhelper-{0}.exe"


@dataclass(frozen=True)
class AppKey:
    name: str
    type: str  # string | choice | url | path | seconds | json-headers | json-list
    releases: str  # which app releases read it
    notes: str
    choices: tuple[str, ...] = ()


APP_KEYS = (
    AppKey("inferenceProvider", "choice", "all releases with third-party inference",
           "`gateway` for an LLM gateway; other values pick a cloud provider",
           ("gateway", "bedrock", "vertex", "foundry")),
    AppKey("inferenceGatewayBaseUrl", "url", "all",
           "the gateway's base URL; https (http only to loopback)"),
    AppKey("inferenceGatewayAuthScheme", "choice", "all",
           "how the credential is sent: `Authorization: Bearer` or `x-api-key`",
           ("bearer", "x-api-key")),
    AppKey("inferenceCredentialHelper", "path", "all",
           "absolute path of the helper executable, run with no arguments"),
    AppKey("inferenceCredentialHelperTtlSec", "seconds", "all",
           f"how long the app keeps a printed credential (default {DEFAULT_TTL}); "
           "at most the credential's lifetime"),
    AppKey("inferenceGatewayHeaders", "json-headers", "older releases",
           'extra headers: a JSON object, or a JSON array of "Name: Value" strings'),
    AppKey("inferenceCustomHeaders", "json-headers", "newer releases (every provider)",
           "extra headers, as a JSON object; replaces inferenceGatewayHeaders"),
    AppKey("inferenceCredentialKind", "string", "newer releases",
           "what the helper prints; left unset by export (the app's default fits)"),
    AppKey("inferenceModels", "json-list", "all",
           "models offered in the picker: a JSON array of model ids"),
)
KEYS = {k.name: k for k in APP_KEYS}


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, json.dumps(parts, sort_keys=True))).upper()


# ---------------------------------------------------------------- checking values


def check_app_value(key: AppKey, value: object, windows: bool) -> tuple[str, str] | None:
    """(level, message) for a value the app would not accept as intended, else None."""
    if not isinstance(value, str):
        return "error", f"must be a string, not {type(value).__name__} (the app reads strings only)"
    if key.type == "choice" and value not in key.choices:
        return "error", f"{value!r} is not one of: {', '.join(key.choices)}"
    if key.type == "url":
        try:
            check_url(value)
        except ValueError as exc:
            return "error", str(exc)
    if key.type == "path":
        absolute = _windows_absolute(value) if windows else value.startswith("/")
        if not absolute:
            return "error", f"{value!r} is not an absolute {'Windows' if windows else 'macOS'} path"
    if key.type == "seconds":
        if not value.strip().isdigit():
            return "error", f"{value!r} is not a whole number of seconds"
        low, high = TTL_RANGE
        if not low <= int(value) <= high:
            return "error", f"{value} is outside {low}..{high} seconds"
    if key.type in ("json-headers", "json-list"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return "error", "is not valid JSON (JSON-valued keys are one JSON string)"
        problem = _check_json(key, parsed)
        if problem:
            return "error", problem
    return None


def _windows_absolute(path: str) -> bool:
    drive, rest = ntpath.splitdrive(path)
    return bool(drive) and rest.startswith(("\\", "/"))


def _check_json(key: AppKey, parsed: object) -> str | None:
    from credhelper.output import is_header_name

    if key.type == "json-list":
        if not isinstance(parsed, list) or not parsed:
            return "must be a non-empty JSON array"
        return None
    if isinstance(parsed, list):
        if not all(isinstance(x, str) and ":" in x for x in parsed):
            return 'an array must hold "Name: Value" strings'
        parsed = {x.split(":", 1)[0].strip(): x.split(":", 1)[1].strip() for x in parsed}
    if not isinstance(parsed, dict):
        return "must be a JSON object of header names to values"
    for name, value in parsed.items():
        if not is_header_name(name):
            return f"{name!r} is not a valid header name"
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            return f"the value of {name} must be a string without CR, LF or NUL"
    return None


# ---------------------------------------------------------------- export


@dataclass
class Export:
    app: dict[str, str]  # app key -> string value
    mac_helper: str
    windows_helper: str
    helper_tables: dict[str, dict[str, str]]  # the helper's own settings, as strings
    warnings: list[str]


def build(base_url: str, helper: str | None, windows_helper: str | None, auth_scheme: str,
          ttl: int | None, headers: dict[str, str], models: list[str], provider: str | None,
          settings: list[str], env: Mapping[str, str]) -> Export:
    """Validate the options and gather everything both files hold."""
    warnings: list[str] = []
    if not helper and not windows_helper and not provider:
        raise ConfigError("say which helper the app runs: --helper PATH or --provider NAME",
                          hint="e.g. --provider vault uses the README's install location")
    name = provider or _helper_name(helper or windows_helper or "")  # one of them is set
    mac = helper or MAC_HELPER.format(name)
    win = windows_helper or (helper if helper and _windows_absolute(helper)
                             else WINDOWS_HELPER.format(name))
    if helper and _windows_absolute(helper):
        mac = MAC_HELPER.format(name)
    app = {
        "inferenceProvider": "gateway",
        "inferenceGatewayBaseUrl": base_url.rstrip("/"),
        "inferenceGatewayAuthScheme": auth_scheme,
        "inferenceCredentialHelper": mac,
    }
    if ttl is not None:
        app["inferenceCredentialHelperTtlSec"] = str(ttl)
    if headers:
        text = json.dumps(headers, separators=(",", ":"))
        # Older releases read inferenceGatewayHeaders, newer ones inferenceCustomHeaders;
        # each ignores the other's key, so writing both is harmless.
        app["inferenceGatewayHeaders"] = text
        app["inferenceCustomHeaders"] = text
    if models:
        app["inferenceModels"] = json.dumps(models, separators=(",", ":"))
    for key, value in app.items():
        problem = check_app_value(KEYS[key], value, windows=False)
        if problem:
            raise ConfigError(f"{key}: {problem[1]}", hint="fix the option and export again")
    problem = check_app_value(KEYS["inferenceCredentialHelper"], win, windows=True)
    if problem:
        raise ConfigError(f"Windows inferenceCredentialHelper: {problem[1]}",
                          hint="give --windows-helper C:\\...\\credhelper-NAME.exe")

    given: dict[str, dict[str, str]] = {}
    for item in settings:
        table, key, value = _parse_set(item)
        _check_helper_setting(table, key, value, f"--set {table}.{key}")
        given.setdefault(table, {})[key] = value
    tables: dict[str, dict[str, str]] = {}
    if provider:
        from credhelper.config import env_name

        # The --set values take part in resolving the provider (a required address given
        # only on the command line is enough), and are written in their own tables below.
        overlay = dict(env)
        overlay.update({env_name(t, k): v
                        for t, values in given.items() for k, v in values.items()})
        skip = set(given.get(provider, {})) | set(given.get("defaults", {}))
        tables, lifetime_warning = _current_settings(provider, overlay, ttl, skip)
        if lifetime_warning:
            warnings.append(lifetime_warning)
    for table, values in given.items():
        tables.setdefault(table, {}).update(values)
    if mac == MAC_HELPER.format(name) and not helper:
        warnings.append(f"macOS helper path: {mac} (the README's install location)")
    if win == WINDOWS_HELPER.format(name) and not windows_helper:
        warnings.append(f"Windows helper path: {win} (the README's install location)")
    return Export(app, mac, win, tables, warnings)


def _helper_name(path: str) -> str:
    base = ntpath.basename(path) if "\\" in path else os.path.basename(path)
    base = base[:-4] if base.lower().endswith(".exe") else base
    return base.removeprefix("credhelper-") or "helper"


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
    from credhelper.config import parse_value

    known = _settings_of(table)
    setting = known.get(key)
    if setting is None:
        raise ConfigError(f"{where}: unknown key [{table}] {key}",
                          hint=f"keys of [{table}]: {', '.join(sorted(known))}")
    if setting.secret:
        raise ConfigError(
            f"{where}: refusing to put the secret setting [{table}] {key} into a profile",
            hint="profiles are readable on every machine they reach; give each machine its "
                 "secret another way (keyring, a file only its user reads)")
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


def _current_settings(provider: str, env: Mapping[str, str], ttl: int | None,
                      skip: set[str]) -> tuple[dict[str, dict[str, str]], str | None]:
    """The provider's settings that the current configuration sets, as strings."""
    from credhelper import config as config_mod, registry

    conf = config_mod.load(registry.load(provider), env)
    table: dict[str, str] = {}
    for name, value in conf.values.items():
        if value.source == "default" or value.value is None or name in skip:
            continue
        if value.setting.secret:
            raise ConfigError(
                f"refusing to export the secret setting [{provider}] {name} "
                f"(from {value.source}) into a profile",
                hint="unset it for the export: profiles are readable on every machine they reach")
        table[name] = _as_string(value.value)
    return ({provider: table} if table else {}), _lifetime_warning(provider, env, conf, ttl)


def _lifetime_warning(provider: str, env: Mapping[str, str], conf: ProviderConfig,
                      ttl: int | None) -> str | None:
    """Compare the app's TTL with the lifetime of the credential cached for ``provider``."""
    from credhelper.cache import open_cache
    from credhelper.errors import CredhelperError
    from credhelper.fullpath import cache_dir, cache_key
    from credhelper.log import Log

    try:
        log = Log("credhelper")
        cache = open_cache(conf["cache"], cache_dir(env), log)
        entry = cache.load(provider, cache_key(provider, conf, env))
    except (CredhelperError, OSError):
        return None
    if entry is None:
        return None
    lifetime = int(entry.expires_at - entry.fetched_at)
    effective = ttl if ttl is not None else DEFAULT_TTL
    if lifetime >= effective:
        return None
    suggestion = max(60, lifetime - int(conf["min_validity"]))
    return (f"the {provider} credential lives {lifetime}s, shorter than the app's TTL "
            f"({effective}s): export with --ttl {suggestion}")


def mobileconfig(export: Export) -> bytes:
    app_payload = {
        "PayloadType": APP_DOMAIN,
        "PayloadIdentifier": f"{PROFILE_ID}.app",
        "PayloadUUID": _uuid("app", export.app),
        "PayloadVersion": 1,
        "PayloadDisplayName": "Claude: LLM gateway",
        **export.app,
    }
    content: list[dict[str, object]] = [app_payload]
    if export.helper_tables:
        content.append({
            "PayloadType": managed.DOMAIN,
            "PayloadIdentifier": f"{PROFILE_ID}.helper",
            "PayloadUUID": _uuid("helper", export.helper_tables),
            "PayloadVersion": 1,
            "PayloadDisplayName": "credhelper settings",
            **export.helper_tables,
        })
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": PROFILE_ID,
        "PayloadUUID": _uuid("profile", export.app, export.helper_tables),
        "PayloadDisplayName": "Claude gateway (credhelper)",
        "PayloadDescription": "Points Claude Desktop at the LLM gateway and its credential helper.",
        "PayloadScope": "System",
        "PayloadContent": content,
    }
    return plistlib.dumps(profile, sort_keys=True)


def _reg_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def regfile(export: Export) -> bytes:
    app = dict(export.app, inferenceCredentialHelper=export.windows_helper)
    lines = ["Windows Registry Editor Version 5.00", "",
             f"[HKEY_LOCAL_MACHINE\\{APP_POLICY_KEY}]"]
    lines += [f"{_reg_string(k)}={_reg_string(v)}" for k, v in app.items()]
    lines.append("")
    if export.helper_tables:
        root = f"HKEY_LOCAL_MACHINE\\{managed.POLICY_KEY}"
        # The helper's policy key is ours alone: clear it so no old setting lingers.
        lines += [f"[-{root}]", "", f"[{root}]", ""]
        for table, values in sorted(export.helper_tables.items()):
            lines.append(f"[{root}\\{table}]")
            lines += [f"{_reg_string(k)}={_reg_string(v)}" for k, v in sorted(values.items())]
            lines.append("")
    # regedit expects UTF-16 LE with a byte-order mark and CRLF line ends.
    return "\r\n".join(lines + [""]).encode("utf-16")


def write(export: Export, directory: str) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    written: list[str] = []
    for name, data in ((MOBILECONFIG, mobileconfig(export)), (REGFILE, regfile(export))):
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
    level: str  # error | warn
    where: str
    message: str


def lint(path: str) -> list[Finding]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.lower().endswith(".reg") or data[:2] in (b"\xff\xfe", b"\xfe\xff") or \
            data.lstrip().startswith(b"Windows Registry"):
        return _lint_reg(path, data)
    return _lint_plist(path, data)


def _lint_app(values: Mapping[str, object], windows: bool, where: str) -> list[Finding]:
    found: list[Finding] = []
    for name, value in values.items():
        key = KEYS.get(name)
        if key is None:
            found.append(Finding("error", f"{where} {name}", "unknown key: the app ignores it "
                                 f"(known: {', '.join(KEYS)})"))
            continue
        problem = check_app_value(key, value, windows)
        if problem:
            found.append(Finding(problem[0], f"{where} {name}", problem[1]))
    if "inferenceCredentialHelper" in values and values.get("inferenceProvider") != "gateway":
        found.append(Finding("warn", where, "inferenceCredentialHelper is set but "
                             "inferenceProvider is not gateway"))
    if "inferenceGatewayHeaders" in values and "inferenceCustomHeaders" not in values:
        found.append(Finding("warn", where, "only inferenceGatewayHeaders is set: newer releases "
                             "read inferenceCustomHeaders"))
    return found


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
                          hint="lint takes a .mobileconfig (unsigned) or a .reg file") from None
    if not isinstance(profile, dict):
        raise ConfigError(f"{path}: the top level is not a dictionary")
    payloads = profile.get("PayloadContent")
    if not isinstance(payloads, list):
        # A bare managed-preferences plist of the app's domain.
        payloads = [dict(profile, PayloadType=APP_DOMAIN)]
    found: list[Finding] = []
    seen_app = False
    for i, payload in enumerate(payloads):
        if not isinstance(payload, dict):
            found.append(Finding("error", f"PayloadContent[{i}]", "is not a dictionary"))
            continue
        kind = payload.get("PayloadType")
        body = {k: v for k, v in payload.items() if not k.startswith("Payload")}
        if kind == APP_DOMAIN:
            seen_app = True
            found += _lint_app(body, False, APP_DOMAIN)
        elif kind == managed.DOMAIN:
            found += _lint_helper(body, managed.DOMAIN)
        elif kind == "com.apple.ManagedClient.preferences":
            found.append(Finding("warn", f"PayloadContent[{i}]",
                                 "legacy MCX payload: not checked"))
    if not seen_app:
        found.append(Finding("error", path, f"no payload for {APP_DOMAIN}"))
    return found


def parse_reg(text: str) -> dict[str, dict[str, object]]:
    """A .reg file as {key path: {value name: value}}; strings stay str, ``dword:`` becomes
    int, hex forms bytes. Deleted keys (``[-...]``) are left out."""
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
            current = None if name.startswith("-") else keys.setdefault(name, {})
            continue
        if current is None:
            raise ValueError(f"a value outside a key: {line[:40]!r}")
        name, rest = _reg_name(line)
        if rest.startswith('"'):
            current[name] = _reg_unquote(rest)
        elif rest.startswith("dword:"):
            current[name] = int(rest[6:], 16)
        elif rest.startswith("hex"):
            current[name] = bytes(int(b, 16) for b in rest.split(":", 1)[1].split(",") if b)
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
        found.append(Finding("warn", path,
                             "not UTF-16 LE with a byte-order mark, as regedit writes"))
    helper_root = managed.POLICY_KEY.lower()
    seen_app = False
    helper: dict[str, dict[str, object]] = {}
    for key, values in keys.items():
        hive, _, sub = key.partition("\\")
        if hive.upper() not in ("HKEY_LOCAL_MACHINE", "HKEY_CURRENT_USER", "HKLM", "HKCU"):
            continue
        if sub.lower() == APP_POLICY_KEY.lower():
            seen_app = True
            found += _lint_app(values, True, key)
        elif sub.lower() == helper_root:
            for name in values:
                found.append(Finding("error", f"{key} {name}",
                                     "settings go in a subkey per table, e.g. \\defaults"))
        elif sub.lower().startswith(helper_root + "\\"):
            helper[sub[len(helper_root) + 1 :].lower()] = values
    if helper:
        found += _lint_helper(helper, f"HKEY_LOCAL_MACHINE\\{managed.POLICY_KEY}")
    if not seen_app:
        found.append(Finding("error", path,
                             f"no values under HKEY_LOCAL_MACHINE\\{APP_POLICY_KEY}"))
    return found
