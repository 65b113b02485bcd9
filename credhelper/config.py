"""Configuration: four sources, one precedence, every value traced to where it came from.

Highest first (DESIGN §4):

1. managed preferences (macOS configuration profile / Windows policy key, ``managed.py``)
2. environment variables ``CREDHELPER_<TABLE>_<KEY>``
3. the file named by ``CREDHELPER_CONFIG``, or else the user config file
4. the system config file

Within one source, the provider's own table beats ``[defaults]``. A key no credhelper
source sets falls back to the backend's own well-known variable (``VAULT_ADDR``, ...),
then to the setting's default. Every error names the key and the source it came from.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from credhelper import managed, paths
from credhelper.durations import parse_duration
from credhelper.errors import ConfigError, shorten
from credhelper.output import check_headers
from credhelper.provider import COMMON_SETTINGS, Provider, Setting

DEFAULTS = "defaults"
# CREDHELPER_ variables that are not settings.
RESERVED_VARIABLES = {"CREDHELPER_CONFIG", "CREDHELPER_CACHE_DIR"}


# Plain classes rather than dataclasses: this module is on every cache miss, and a
# dataclass costs about half a millisecond to define.
class Source:
    __slots__ = ("label", "tables", "path", "env_style", "strings")

    def __init__(self, label: str, tables: dict[str, dict[str, Any]], path: str | None = None,
                 env_style: bool = False, strings: bool = False) -> None:
        self.label = label  # "user config /path/config.toml", "environment", "managed ..."
        self.tables = tables
        self.path = path
        self.env_style = env_style  # keys are variable names, values strings
        self.strings = strings  # values may be strings to parse as in the environment

    def where(self, table: str, key: str) -> str:
        if self.env_style:
            return f"{shorten(env_name(table, key))} (environment)"
        return f"[{shorten(table)}] {shorten(key)} in {self.label}"


class Value:
    __slots__ = ("value", "source", "setting")

    def __init__(self, value: Any, source: str, setting: Setting) -> None:
        self.value = value
        self.source = source  # where it came from, for doctor and error messages
        self.setting = setting


class Identities:
    """The identity of every configuration source as it was just before it was read: each
    file's (``snapshot.file_identity``) and the managed preferences'."""

    __slots__ = ("files", "managed")

    def __init__(self, files: list[list[object]] | None = None,
                 managed: object = None) -> None:
        self.files = files if files is not None else []
        self.managed = managed


class ProviderConfig:
    __slots__ = ("provider", "values", "files", "env_names", "identities")

    def __init__(self, provider: str, values: dict[str, Value],
                 files: list[tuple[str, str, bool]] | None = None,
                 env_names: tuple[str, ...] = (), identities: Identities | None = None) -> None:
        self.provider = provider
        self.values = values
        self.files = files if files is not None else []  # (label, path, read)
        self.env_names = env_names  # backend variables consulted
        # What the sources were when they were read, for the snapshot (credhelper.snapshot).
        self.identities = identities if identities is not None else Identities()

    def __getitem__(self, name: str) -> Any:
        return self.values[name].value

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None or value.value is None else value.value

    def source(self, name: str) -> str:
        return self.values[name].source

    def require(self, name: str) -> Any:
        value = self.get(name)
        if value in (None, "", [], {}):
            raise ConfigError(
                f"missing setting [{self.provider}] {name}",
                hint=f"set it in the config file or as {env_name(self.provider, name)}",
            )
        return value


def env_name(table: str, key: str) -> str:
    return f"CREDHELPER_{table}_{key}".upper()


# ---------------------------------------------------------------- reading the sources


def read_toml(label: str, path: str) -> Source | None:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(f"{label} {path} is a directory, not a TOML file") from None
    except PermissionError:
        raise ConfigError(f"cannot read {label} {path}: permission denied") from None
    # Imported only for a file that exists: most laptops have none, and it costs ms.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    with f:
        try:
            if os.name == "posix":
                st = os.fstat(f.fileno())
                if st.st_mode & 0o002:
                    raise ConfigError(
                        f"refusing {label} {path}: anyone on this machine can write it",
                        hint=f"chmod o-w {path}",
                    )
            data = tomllib.load(f)
        except IsADirectoryError:  # Windows opens a directory, then fails the read
            raise ConfigError(f"{label} {path} is a directory, not a TOML file") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{label} {path} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{label} {path} is not valid TOML: {exc}") from None
        except RecursionError:  # tomllib descends once per nested array or inline table
            raise ConfigError(f"{label} {path} is nested too deeply to be a configuration "
                              "file") from None
    for table, content in data.items():
        if not isinstance(content, dict):
            raise ConfigError(
                f"{label} {path}: top-level key {shorten(repr(table))} must be a table such as "
                "[defaults] or [vault]")
    return Source(f"{label} {path}", data, path=path)


def read_env(env: Mapping[str, str], known_tables: list[str]) -> Source:
    tables: dict[str, dict[str, str]] = {}
    ordered = sorted(known_tables, key=len, reverse=True)  # longest prefix first
    for name, value in env.items():
        if not name.startswith("CREDHELPER_") or name in RESERVED_VARIABLES:
            continue
        rest = name[len("CREDHELPER_") :]
        for table in ordered:
            prefix = table.upper() + "_"
            if rest.startswith(prefix) and len(rest) > len(prefix):
                tables.setdefault(table, {})[rest[len(prefix) :].lower()] = value
                break
        else:
            raise ConfigError(
                f"unknown environment variable {shorten(name)}",
                hint=f"variables are CREDHELPER_<TABLE>_<KEY> with TABLE one of "
                f"{', '.join(t.upper() for t in known_tables)}",
            )
    return Source("environment", tables, env_style=True)


def sources(env: Mapping[str, str], known_tables: list[str], identities: Identities | None = None
            ) -> tuple[list[Source], list[tuple[str, str, bool]]]:
    """All sources, highest precedence first, and the files considered; ``identities``
    collects each source's identity just before it is read."""
    from credhelper import snapshot

    found: list[Source] = []
    files: list[tuple[str, str, bool]] = []
    if identities is not None:
        identities.managed = managed.identity(env)
    m = managed.read(env)
    if m is not None:
        found.append(Source(m[0], m[1], strings=True))
    found.append(read_env(env, known_tables))
    for label, path in reversed(paths.config_files(env)):  # user, then system
        if identities is not None:
            identities.files.append(snapshot.file_identity(path))
        source = read_toml(label, path)
        files.append((label, path, source is not None))
        if source is not None:
            found.append(source)
    for source in found:
        for table in source.tables:
            if table not in known_tables:
                where = (
                    f"variable CREDHELPER_{shorten(table.upper())}_..."
                    if source.env_style
                    else f"[{shorten(table)}] in {source.label}"
                )
                raise ConfigError(
                    f"unknown table {where}", hint=f"tables are: {', '.join(known_tables)}"
                )
    return found, files


# ---------------------------------------------------------------- parsing values


def parse_value(setting: Setting, raw: Any, where: str, from_env: bool) -> Any:
    try:
        return _parse(setting, raw, from_env)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _parse(s: Setting, raw: Any, from_env: bool) -> Any:
    kind = s.kind
    if kind == "duration":
        return parse_duration(raw)
    if kind == "int":
        if from_env and isinstance(raw, str):
            raw = int(raw.strip()) if raw.strip().lstrip("-").isdigit() else raw
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"expected an integer, got {_shown(raw, s)}")
        return raw
    if kind == "bool":
        if from_env and isinstance(raw, str):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {_shown(raw, s)}")
        return raw
    if kind == "list":
        if isinstance(raw, str):
            return raw.split()
        if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            return list(raw)
        raise ValueError("expected a list of strings, or one space-separated string")
    if kind == "ports":  # [8000, 18000], "8000 18000" (a variable), or one port
        items = raw.replace(",", " ").split() if isinstance(raw, str) else raw
        items = [items] if isinstance(items, int) and not isinstance(items, bool) else items
        if not isinstance(items, list) or not items:
            raise ValueError("expected a list of port numbers, such as [8000, 18000]")
        ports = [int(x) if isinstance(x, str) and x.isdigit() else x for x in items]
        for port in ports:
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                raise ValueError(f"{_shown(port, s)} is not a port number (0 to 65535; "
                                 "0: any free port)")
        return ports
    if kind == "table":
        if from_env and isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError("expected a JSON object such as {\"X-Team\": \"ml\"}") from None
            except RecursionError:  # json descends once per nested array or object
                raise ValueError("nested too deeply: expected a JSON object of name: "
                                 "\"value\"") from None
        if not isinstance(raw, dict):
            raise ValueError("expected a table of name = \"value\"")
        if s.name == "headers":
            try:
                check_headers(raw, "headers")
            except ConfigError as exc:
                raise ValueError(exc.message.removeprefix("headers: ")) from None
        return dict(raw)
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {_shown(raw, s)}")
    if kind == "choice":
        if raw not in s.choices:
            raise ValueError(f"{_shown(raw, s)} is not one of: {', '.join(s.choices)}")
        return raw
    if kind == "url":
        return check_url(raw)
    if kind == "path":
        if not raw.strip():
            raise ValueError("empty path")
        return os.path.expanduser(raw)
    if any(c in raw for c in "\r\n\0"):
        raise ValueError("must not contain CR, LF or NUL")
    return raw


def _shown(raw: Any, s: Setting) -> str:
    if s.secret:
        return f"a {type(raw).__name__} (value hidden)"
    return shorten(repr(raw), 60)


def check_url(url: str) -> str:
    """https anywhere; plain http only to this machine (loopback): the one check of every
    backend and gateway URL.

    The host checked must be the host the request connects to, and URL parsers do not
    always agree on it: ``http://a\\@127.0.0.1`` is 127.0.0.1 to ``urlsplit`` and ``a`` to
    urllib3, which requests and botocore connect with. So what parsers read differently
    is refused rather than guessed at: a backslash, a user name or password (no secret
    belongs in an address that is logged and shown by doctor), whitespace, control and
    non-ASCII characters. On everything else ``urlsplit`` and urllib3's ``parse_url`` read
    the same scheme, host and port (tests/test_url_check.py), so the URL is split once,
    with ``urlsplit``: importing urllib3 here would cost a run that makes no request
    (a sign-in that only a person can give, status) tens of milliseconds."""
    shown = _url_shown(url)
    if not (url.isascii() and url.isprintable()) or " " in url:
        raise ValueError(f"{shown} holds a space, a control or a non-ASCII character (a "
                         "non-ASCII host name is written in its xn-- form)")
    if "\\" in url:
        raise ValueError(f"{shown} holds a backslash, which URL parsers read differently "
                         "(a path is written with /)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an out-of-range or non-numeric port, a broken [IPv6] address
        raise ValueError(f"{shown} is not a valid URL: invalid port or host") from None
    if "@" in parts.netloc:
        raise ValueError("the URL holds a user name or password (user:password@host), "
                         "which it must not: give credentials in their own settings")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{shown} is not an http(s) URL")
    # A host name or a bracketed IPv6 address, then an optional port: urlsplit lets more
    # through (%-escapes, [v1.x], text after "]"), which urllib3 refuses.
    if not (re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^\[\]:%]+)(:[0-9]*)?", parts.netloc)
            and ("[" not in parts.netloc or _is_ipv6(parts.hostname))):
        raise ValueError(f"{shown} is not a valid URL: invalid host")
    if port == 0:
        raise ValueError(f"{shown} has an invalid port")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            f"{shown} uses plain http to another machine; use https (http is allowed only "
            "on loopback)")
    return url.rstrip("/")


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _url_shown(url: str) -> str:
    """The URL as a message may echo it: never one with an @, which may carry a password."""
    return "the URL" if "@" in url else shorten(repr(url))


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- resolving


def load(provider_cls: type[Provider], env: Mapping[str, str] | None = None) -> ProviderConfig:
    """Resolve every setting of ``provider_cls`` from all sources."""
    from credhelper import registry

    env = os.environ if env is None else env
    name = provider_cls.name
    known_tables = [DEFAULTS] + sorted(set(registry.names()) | {name})
    identities = Identities()
    found, files = sources(env, known_tables, identities)
    provider_settings = {s.name: s for s in provider_cls.settings}
    common = {s.name: s for s in COMMON_SETTINGS}
    allowed = {name: {**common, **provider_settings}, DEFAULTS: common}
    for source in found:
        for table in (name, DEFAULTS):
            for key in source.tables.get(table, {}):
                if key not in allowed[table]:
                    raise ConfigError(
                        f"unknown key {source.where(table, key)}",
                        hint=_known_keys_hint(table, allowed[table]),
                    )

    values: dict[str, Value] = {}
    for setting in list(COMMON_SETTINGS) + list(provider_cls.settings):
        values[setting.name] = _resolve(setting, name, found, env)
    env_names = tuple(v for s in provider_cls.settings for v in s.env) + tuple(
        provider_cls.identity_env)
    return ProviderConfig(name, values, files, env_names, identities)


def _resolve(setting: Setting, provider: str, found: list[Source],
             env: Mapping[str, str]) -> Value:
    for source in found:
        for table in (provider, DEFAULTS):
            content = source.tables.get(table, {})
            if setting.name in content:
                where = source.where(table, setting.name)
                return Value(
                    parse_value(setting, content[setting.name], where,
                                source.env_style or source.strings),
                    where,
                    setting,
                )
    for variable in setting.env:
        if env.get(variable):
            where = f"{variable} (environment)"
            return Value(parse_value(setting, env[variable], where, True), where, setting)
    if setting.required:
        raise ConfigError(
            f"missing setting [{provider}] {setting.name}",
            hint=f"set it in the config file or as {env_name(provider, setting.name)}"
            + (f" or {setting.env[0]}" if setting.env else ""),
        )
    return Value(setting.default, "default", setting)


def _known_keys_hint(table: str, allowed: dict[str, Setting]) -> str:
    return f"keys of [{table}]: {', '.join(sorted(allowed))}"


def masked(value: Value) -> str:
    """A setting's value as doctor shows it: secrets never in clear."""
    if value.value is None:
        return "(not set)"
    if value.setting.secret:
        return "***"
    if isinstance(value.value, float) and value.setting.kind == "duration":
        from credhelper.durations import format_duration

        return format_duration(value.value)
    return json.dumps(value.value) if not isinstance(value.value, str) else value.value


def platform_label() -> str:
    return {"darwin": "macOS", "win32": "Windows"}.get(sys.platform, sys.platform)
