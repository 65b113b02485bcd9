"""One way to say where a secret-valued setting's value is kept, for every backend.

A setting marked ``Setting(..., secret=True)`` (a Vault token or AppRole secret ID, an
OAuth client secret, ...) holds one of:

- ``file:PATH``: the content of that file (``~`` is this run's home), whitespace around
  it dropped: a file delivered by Vault Agent, a CI runner, Kubernetes, ...;
- ``env:VARIABLE``: the value of that variable in this run's environment;
- ``keyring:SERVICE/USER``: the OS keyring's entry (through the keyring library);
- anything else: the value itself, "given in clear". Each setting says whether that is
  fine (a role ID), flagged by ``doctor`` (an OAuth client secret), or refused when it
  comes from a file rather than from the environment (a Vault token).

Every form is validated the same way (non-empty, one line: no CR, LF or NUL) and fails
the same way: a missing file or variable, an empty or multi-line value, a malformed
reference exit 2 (``ConfigError``); a keyring that cannot be reached exits 4
(``BackendUnavailable``), a locked one 3 (``LoginRequired``). Messages name the reference
(path, variable, keyring entry) and the setting's source, never the value. The value of
a ``secret=True`` setting is registered with ``request.log.secret`` as soon as it is read,
before anything is logged (an identifier read the same way, such as a role ID, is not).

Providers call ``resolve`` (or ``find`` then ``read``) with the run's ``Request``: the
environment and the home directory come from ``request.env``, never from the process.
Older settings that named a file or a variable (Vault's ``secret_id_file``,
``password_env``, ...) are read through ``find(..., aliases=...)`` as the same references,
and ``checks`` reports them as deprecated in ``doctor``.

Standard library only (keyring is imported when a ``keyring:`` reference is read): this
module is loaded on every cache miss of the backends that use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from credhelper.errors import (
    BackendUnavailable,
    ConfigError,
    CredhelperError,
    LoginRequired,
    shorten,
)

if TYPE_CHECKING:
    from credhelper.config import ProviderConfig
    from credhelper.provider import Request

FILE, ENV, KEYRING, LITERAL = "file", "env", "keyring", "literal"
PREFIXES = (FILE, ENV, KEYRING)
FORMS = "file:PATH, env:VARIABLE or keyring:SERVICE/USER"

# What a value given in clear means for a setting:
OK = "ok"  # a value in clear is normal (an identifier such as an AppRole role ID)
WARN = "warn"  # accepted; doctor says it is given in clear (an OAuth client secret)
ENVIRONMENT = "environment"  # accepted from the environment only; refused from a file
# (a token: "Secrets never go in the config file in clear")

# No secret is this long; a file that is (a log, a device, the wrong path) is not read on.
MAX_BYTES = 64 * 1024


# Plain classes rather than dataclasses: this module is imported on every cache miss of
# the backends that use it, and a dataclass costs about half a millisecond to define.


class Ref:
    """A parsed reference: its kind and its target (path, variable name, SERVICE/USER)."""

    __slots__ = ("kind", "target")

    def __init__(self, kind: str, target: str = "") -> None:
        self.kind = kind
        self.target = target  # "" for a literal: the value itself is never kept here

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and (self.kind, self.target) == (other.kind, other.target)

    def __hash__(self) -> int:
        return hash((self.kind, self.target))

    def __repr__(self) -> str:
        return f"Ref({self.kind!r}, {self.target!r})"

    def describe(self) -> str:
        """Where the value comes from, in words safe to print (never the value)."""
        if self.kind == FILE:
            return f"the file {shown(self.target)}"
        if self.kind == ENV:
            return f"the variable {shown(self.target)}"
        if self.kind == KEYRING:
            service, _, user = self.target.partition("/")
            return f"the keyring entry service {_quoted(service)}, user {_quoted(user)}"
        return "the value given in clear"

    @property
    def in_clear(self) -> bool:
        return self.kind == LITERAL


class Found:
    """A secret-valued setting as configured: the raw value, the setting that holds it
    (``alias`` when an older ``*_file`` / ``*_env`` setting does) and where it came from."""

    __slots__ = ("name", "value", "where", "alias", "from_environment", "backend_variable",
                 "secret")

    def __init__(self, name: str, value: str, where: str, alias: str | None = None,
                 from_environment: bool = False, backend_variable: bool = False,
                 secret: bool = True) -> None:
        self.name = name  # the canonical setting
        self.value = value  # the raw value: a reference, or the secret itself
        self.where = where  # the source, as config errors name it
        self.alias = alias  # the deprecated setting it was read from, if any
        self.from_environment = from_environment  # a variable set it (not a file, a profile)
        self.backend_variable = backend_variable  # the backend's own (VAULT_TOKEN): the value
        # Setting(..., secret=True): the value is registered as a secret. An identifier read
        # the same way (a role ID) is not: masking it would cut into the secrets around it.
        self.secret = secret

    def __repr__(self) -> str:  # never the value: it may be the secret itself
        return f"Found({self.name!r}, where={self.where!r}, alias={self.alias!r})"

    @property
    def ref(self) -> Ref:
        return Ref(LITERAL) if self.backend_variable else parse(self.value, self.where)

    @property
    def setting(self) -> str:
        """The setting to name in messages: the one actually written in the config."""
        return self.alias or self.name


def parse(value: object, where: str = "") -> Ref:
    """The reference ``value`` makes; ConfigError for a malformed one. Any string is
    accepted: one that starts with none of the prefixes is a literal."""
    if not isinstance(value, str):
        raise ConfigError(f"{_at(where)}expected a string ({FORMS}), got a "
                          f"{type(value).__name__}")
    kind, colon, rest = value.partition(":")
    if not colon or kind not in PREFIXES:
        return Ref(LITERAL)
    if kind == FILE:
        if not rest.strip():
            raise ConfigError(f"{_at(where)}file: needs a path, as in file:/run/secrets/name")
        return Ref(FILE, rest)
    if kind == ENV:
        if not rest or "=" in rest or "\0" in rest or rest != rest.strip():
            raise ConfigError(f"{_at(where)}env: needs the name of a variable, as in env:MY_SECRET")
        return Ref(ENV, rest)
    service, slash, user = rest.partition("/")
    if not slash or not service or not user:
        raise ConfigError(f"{_at(where)}keyring: needs a service and a user, as in "
                          "keyring:SERVICE/USER")
    return Ref(KEYRING, rest)


def find(config: ProviderConfig, name: str,
         aliases: dict[str, str] | None = None) -> Found | None:
    """The configured value of secret-valued setting ``name``, or of one of its deprecated
    ``aliases`` (``{"file": "secret_id_file", "env": "secret_id_env"}``: settings holding a
    path or a variable name, read as ``file:`` / ``env:`` references); None when none is
    set. Setting more than one of them is a ConfigError."""
    found = []
    value = config.get(name)
    if value not in (None, ""):
        found.append(_found(config, name, name, str(value)))
    for kind, alias in (aliases or {}).items():
        value = config.get(alias)
        if value not in (None, ""):
            found.append(_found(config, name, alias, f"{kind}:{value}"))
    if len(found) > 1:
        raise ConfigError(
            f"set only one of [{config.provider}] "
            + ", ".join(f.setting for f in found)
            + f" ({'; '.join(f.where for f in found)})",
            hint=f'{name} alone names where the value is kept: {name} = "file:PATH" (or '
            "env:VARIABLE, keyring:SERVICE/USER)")
    return found[0] if found else None


def _found(config: ProviderConfig, name: str, setting: str, value: str) -> Found:
    where = config.source(setting)
    from_environment = where.endswith("(environment)")
    backend = setting == name and from_environment and where.split(" ", 1)[0] in (
        config.values[setting].setting.env)
    canonical = config.values.get(name)
    return Found(name, value, where, None if setting == name else setting, from_environment,
                 backend, canonical is None or canonical.setting.secret)


def read(request: Request, found: Found, what: str, *, clear: str = WARN,
         missing_ok: bool = False) -> str | None:
    """The secret ``found`` refers to, validated and registered as a secret. ``what`` names
    it in messages ("approle secret ID"). With ``missing_ok``, an unset variable gives None
    (the caller may ask a person instead) rather than an error."""
    ref = found.ref
    if ref.in_clear and clear == ENVIRONMENT and not found.from_environment:
        raise ConfigError(
            f"{found.where}: the {what} does not belong in a configuration file in clear",
            hint=f'name where it is kept instead: {found.setting} = "file:PATH" (or '
            "env:VARIABLE, keyring:SERVICE/USER), or set it in the environment")
    value = _fetch(request, ref, found.value, what, found.where, missing_ok)
    if value is None:
        return None
    if found.secret:
        request.log.secret(value)
    value = check(value, what, ref, found.where)
    if found.secret:
        request.log.secret(value)
    if found.alias:
        request.log.debug(f"{found.alias} is deprecated: {found.name} = \"{ref.kind}:...\" "
                          "says the same")
    if ref.kind == FILE:  # the path that was read, ~ expanded
        ref = Ref(FILE, expand_home(ref.target, request.env))
    request.log.debug(f"{what}: from {ref.describe()}")
    return value


def resolve(request: Request, config: ProviderConfig, name: str, what: str, *,
            clear: str = WARN,
            aliases: dict[str, str] | None = None, missing_ok: bool = False) -> str | None:
    """``find`` then ``read``: the secret setting ``name`` points at; None when unset."""
    found = find(config, name, aliases)
    if found is None:
        return None
    return read(request, found, what, clear=clear, missing_ok=missing_ok)


def references(config: ProviderConfig, settings: list[tuple[str, dict[str, str] | None]],
               env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The files and variables the secret-valued ``settings`` (name, deprecated aliases)
    point at, as (paths with ~ expanded, variable names): where a changed value may mean
    another identity. Malformed references are left to the run, which reports them."""
    files: list[str] = []
    variables: list[str] = []
    for name, aliases in settings:
        try:
            found = find(config, name, aliases)
            ref = found.ref if found is not None else None
        except ConfigError:
            continue
        if ref is not None and ref.kind == FILE:
            files.append(expand_home(ref.target, env))
        elif ref is not None and ref.kind == ENV:
            variables.append(ref.target)
    return files, variables


def value_of(request: Request, value: str, what: str, where: str = "", *, clear: str = WARN,
             from_environment: bool = False, missing_ok: bool = False) -> str | None:
    """``read`` for a raw value that is no setting (a built-in default, a test)."""
    return read(request, Found(what, value, where or what, None, from_environment), what,
                clear=clear, missing_ok=missing_ok)


def check(value: str, what: str, ref: Ref, where: str = "") -> str:
    """The one validation of every secret: whitespace around it dropped, then non-empty and
    on one line (no CR, LF or NUL: it must fit in an HTTP header or a JSON field as is)."""
    value = value.strip()
    held = "given in clear" if ref.in_clear else f"in {ref.describe()}"
    if not value:
        raise ConfigError(f"the {what} {held} is empty{_paren(where)}")
    if any(c in value for c in "\r\n\0"):
        raise ConfigError(f"the {what} {held} spans several lines or holds a NUL "
                          f"character{_paren(where)}",
                          hint="a secret is one line of text; keep nothing else in its place")
    return value


def _fetch(request: Request, ref: Ref, raw: str, what: str, where: str,
           missing_ok: bool) -> str | None:
    if ref.kind == LITERAL:
        return raw
    if ref.kind == FILE:
        return read_file(expand_home(ref.target, request.env), what, where)
    if ref.kind == ENV:
        value = request.env.get(ref.target)
        if value is None or not value.strip():
            if missing_ok:
                return None
            state = "is not set" if value is None else "is empty"
            raise ConfigError(f"the {what} variable {shown(ref.target)} {state} ({where})",
                              hint=f"set {shown(ref.target)} in the environment the helper "
                              "runs in, or name where else the value is kept")
        return value
    service, _, user = ref.target.partition("/")
    return _read_keyring(service, user, what, where)


def expand_home(path: str, env: Mapping[str, str]) -> str:
    """``~`` and ``~/...`` from this run's HOME (USERPROFILE on Windows), else the
    account's home directory; ``~user/...`` as the system knows it."""
    if path == "~" or path.startswith(("~/", "~" + os.sep)):
        home = env.get("HOME") or (env.get("USERPROFILE") if os.name == "nt" else None)
        if not home and os.name == "posix":
            import pwd

            try:
                home = pwd.getpwuid(os.getuid()).pw_dir
            except KeyError:
                home = None
        if not home:
            return path
        return home if path == "~" else home.rstrip("/\\") + path[1:]
    if path.startswith("~") and os.name == "posix":
        return os.path.expanduser(path)  # ~user: the password database, not the environment
    return path


def read_file(path: str, what: str, where: str) -> str:
    # Non-blocking: a FIFO nobody writes to, or a terminal, fails at once instead of
    # holding the run; at most MAX_BYTES are read (a device or a log is no secret).
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    named = shown(path)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ConfigError(f"the {what} file {named} does not exist ({where})",
                          hint="check the path, and that whatever writes the file has "
                          "run") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL or an unencodable character
        raise ConfigError(f"cannot read the {what} file {named}: {_reason(exc)} "
                          f"({where})") from None
    try:
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {named}: {_reason(exc)} "
                          f"({where})") from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise ConfigError(f"the {what} file {named} is longer than {MAX_BYTES // 1024} KiB: not "
                          f"a secret ({where})", hint="check the path")
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"the {what} file {named} is not UTF-8 text ({where})") from None


def _read_keyring(service: str, user: str, what: str, where: str) -> str:
    try:
        import keyring  # noqa: F401
        from keyring.errors import KeyringLocked
    except ImportError:
        raise ConfigError(f"a keyring: reference for the {what} needs the keyring library, "
                          f"which is not installed ({where})",
                          hint="pip install keyring (credhelper[keyring]), or use file: or "
                          "env:") from None
    from credhelper.store import NO_KEYRING_HINT, find_keyring

    entry = f"the {what} from the keyring (service {_quoted(service)}, user {_quoted(user)})"
    # The keyring the cache and every backend use (no fail, null or plain-text backend):
    # with none, keyring's stand-ins would answer "nothing stored" or fail vaguely.
    backend, why = find_keyring()
    if backend is None:
        raise BackendUnavailable(f"cannot read {entry}: no usable OS keyring ({why})",
                                 hint=NO_KEYRING_HINT)
    try:
        value = backend.get_password(service, user)
    except KeyringLocked:
        raise LoginRequired(f"the keyring holding the {what} is locked",
                            hint="unlock your keyring (log in to the desktop session)") from None
    except Exception as exc:  # D-Bus and platform errors come in many types
        # The class name only: a backend's message may quote what it was handed.
        raise BackendUnavailable(f"cannot read {entry}: {exc.__class__.__name__}",
                                 hint=NO_KEYRING_HINT) from None
    if value is None:
        raise ConfigError(f"no {what} in the keyring for service {_quoted(service)}, user "
                          f"{_quoted(user)} ({where})",
                          hint=f"store it: keyring set {shown(service)} {shown(user)}")
    if not isinstance(value, str):
        raise ConfigError(f"the keyring entry for service {_quoted(service)}, user "
                          f"{_quoted(user)} is not text ({where})")
    return value


# ---------------------------------------------------------------- doctor


class Spec:
    """How a provider reads one secret-valued setting: what it holds (for messages),
    whether a value in clear is fine (OK, WARN, ENVIRONMENT), its deprecated aliases, and
    whether an unset variable means "ask a person" (``missing_ok``)."""

    __slots__ = ("name", "what", "clear", "aliases", "missing_ok")

    def __init__(self, name: str, what: str, clear: str = WARN,
                 aliases: dict[str, str] | None = None, missing_ok: bool = False) -> None:
        self.name, self.what, self.clear = name, what, clear
        self.aliases, self.missing_ok = aliases, missing_ok


def checks(request: Request, config: ProviderConfig,
           specs: list[Spec]) -> list[tuple[str, str, str]]:
    """doctor's line for each secret-valued setting that is set, named by what it holds:
    where the value comes from, whether it can be read, a value given in clear, a
    deprecated ``*_file`` / ``*_env`` setting. Never the value."""
    lines: list[tuple[str, str, str]] = []
    for spec in specs:
        try:
            found = find(config, spec.name, spec.aliases)
            if found is None or found.backend_variable:
                continue  # unset, or the backend's own variable (VAULT_TOKEN): nothing to say
            ref = found.ref
        except ConfigError as exc:
            lines.append(("fail", spec.what, exc.message))
            continue
        status, notes = "ok", []
        if found.alias:
            kind = next(k for k, a in (spec.aliases or {}).items() if a == found.alias)
            status = "warn"
            notes.append(f"{found.alias} is deprecated: write {spec.name} = "
                         f"\"{kind}:{shown(found.value.partition(':')[2])}\" instead (the old "
                         "setting still works)")
        if ref.in_clear and spec.clear == ENVIRONMENT and not found.from_environment:
            status = "fail"
            notes.insert(0, f"{spec.name} given in clear ({found.where}): refused; write "
                         f"{spec.name} = \"file:PATH\" (or env:VARIABLE, keyring:SERVICE/USER)")
        elif ref.in_clear:
            if spec.clear == OK:
                continue  # an identifier: the settings listing shows it
            status = "warn"
            notes.insert(0, f"given in clear ({found.where}); prefer file:, env: or keyring:")
        else:
            try:
                value = read(request, found, spec.what, clear=spec.clear,
                             missing_ok=spec.missing_ok)
            except CredhelperError as exc:
                status = "fail"
                notes.insert(0, exc.message)
            else:
                notes.insert(0, f"{found.setting}: from {ref.describe()}" if value is not None
                             else f"{found.setting}: {ref.describe()} is not set, so a person "
                             "is asked")
        lines.append((status, spec.what, "; ".join(notes)))
    return lines


def shown(text: str) -> str:
    """A path or a variable name as a message may show it: on one line, as written, and
    no longer than ``errors.shorten`` lets a message echo."""
    return shorten(text if text.isprintable() else repr(text))


def _quoted(text: str) -> str:
    return shorten(repr(text))


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def _paren(where: str) -> str:
    return f" ({where})" if where else ""


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or exc.__class__.__name__
