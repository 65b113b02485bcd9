"""Managed preferences: the administrator's settings, highest precedence of all (DESIGN §4).

macOS: a configuration profile with a payload for the domain ``com.credhelper`` lands as
``/Library/Managed Preferences/com.credhelper.plist`` (for the whole machine) and
``/Library/Managed Preferences/<user>/com.credhelper.plist`` (for one user; it wins).
Its top level holds one dictionary per table (``defaults``, ``vault``, ...).

Windows: a policy under ``HKLM\\SOFTWARE\\Policies\\credhelper`` (wins) and
``HKCU\\SOFTWARE\\Policies\\credhelper``, one subkey per table, string values.

Values are strings, parsed like environment variables (a JSON object for ``headers``,
"5m" for durations); native plist integers, booleans, arrays and dictionaries work too.
Both readers use the standard library only. ``PLIST_DIR``, ``platform`` and ``winreg``
are module attributes so that tests on other systems can drive both readers.

``identity`` is on the cache-hit path: it only stats files or asks the registry for
last-write times, and imports nothing.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

DOMAIN = "com.credhelper"  # the helper's own preference domain (macOS)
POLICY_KEY = r"SOFTWARE\Policies\credhelper"  # the helper's own policy key (Windows)
# The app's own managed settings (Claude Desktop / Cowork): flat string values.
APP_DOMAIN = "com.anthropic.claudefordesktop"
APP_POLICY_KEY = r"SOFTWARE\Policies\Claude"
PLIST_DIR = "/Library/Managed Preferences"

# Seams for tests: which platform's reader runs, and the winreg-like module it uses.
platform = sys.platform
winreg: Any = None  # the winreg module once needed, or a test's stand-in with its API


def read(env: Mapping[str, str]) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """``(label, tables)`` of the managed settings, or None when there are none."""
    if platform == "darwin":
        return _read_plists()
    if platform == "win32":
        return _read_registry()
    return None


def identity(env: Mapping[str, str]) -> list[object]:
    """Cheap facts that change whenever the managed settings change (for the snapshot)."""
    if platform == "darwin":
        facts: list[object] = [platform]
        for path in _plist_paths():
            try:
                st = os.stat(path)
                facts.append([path, st.st_mtime_ns, st.st_size, st.st_ino])
            except OSError:
                facts.append([path, None])
        return facts
    if platform == "win32":
        return [platform, *_registry_stamps()]
    return [platform]


def where() -> str:
    """Where this platform's managed settings would come from, for doctor."""
    if platform == "darwin":
        return " or ".join(_plist_paths())
    if platform == "win32":
        return f"HKLM or HKCU\\{POLICY_KEY}"
    return "no managed preferences on this platform"


# ---------------------------------------------------------------- macOS


def _user_name() -> str | None:
    try:
        import pwd  # not on Windows; this path runs on macOS only

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, AttributeError, OSError):
        return None


def _plist_paths(domain: str = DOMAIN) -> list[str]:
    """Machine-wide first, then the user's (which wins)."""
    paths = [os.path.join(PLIST_DIR, domain + ".plist")]
    user = _user_name()
    if user:
        paths.append(os.path.join(PLIST_DIR, user, domain + ".plist"))
    return paths


def _read_plists() -> tuple[str, dict[str, dict[str, Any]]] | None:
    import plistlib

    from credhelper.errors import ConfigError

    tables: dict[str, dict[str, Any]] = {}
    used: list[str] = []
    for path in _plist_paths():
        try:
            with open(path, "rb") as f:
                data = plistlib.load(f)
        except FileNotFoundError:
            continue
        except PermissionError:
            raise ConfigError(
                f"cannot read managed preferences {path}: permission denied") from None
        except (plistlib.InvalidFileException, ValueError, OSError) as exc:
            raise ConfigError(f"managed preferences {path} is not a valid plist: {exc}",
                              hint="reinstall the configuration profile") from None
        if not isinstance(data, dict):
            raise ConfigError(f"managed preferences {path}: the top level must be a dictionary")
        for table, content in data.items():
            if table.startswith("Payload"):
                continue  # profile bookkeeping some MDMs copy into the managed plist
            if not isinstance(content, dict):
                raise ConfigError(
                    f"managed preferences {path}: {table!r} must be a dictionary of settings "
                    "such as defaults or vault")
            tables.setdefault(table, {}).update(content)
        used.append(path)
    if not used:
        return None
    return "managed preferences " + ", ".join(used), tables


# ---------------------------------------------------------------- the app's own keys


def app_values(names: tuple[str, ...]) -> dict[str, tuple[object, str]]:
    """Those of ``names`` that the app's managed settings set: name -> (value, where).

    Read leniently: these are the app's keys, not ours, so a file or key we cannot read
    leaves the value unset (the caller falls back to its own setting) instead of failing
    the run. The user's plist wins on macOS, HKLM on Windows, as for our own settings."""
    found: dict[str, tuple[object, str]] = {}
    if platform == "darwin":
        import plistlib

        for path in _plist_paths(APP_DOMAIN):
            try:
                with open(path, "rb") as f:
                    data = plistlib.load(f)
            except (OSError, ValueError, plistlib.InvalidFileException):
                continue
            if isinstance(data, dict):
                found.update({n: (data[n], path) for n in names if n in data})
    elif platform == "win32":
        reg = _winreg()
        for label, hive in reversed(_hives(reg)):  # HKCU first: HKLM overwrites it
            try:
                with reg.OpenKey(hive, APP_POLICY_KEY) as key:
                    for name in names:
                        try:
                            value = reg.QueryValueEx(key, name)[0]
                        except OSError:
                            continue
                        found[name] = (value, f"{label}\\{APP_POLICY_KEY}")
            except OSError:
                continue
    return found


# ---------------------------------------------------------------- Windows


def _winreg() -> Any:
    global winreg
    if winreg is None:
        import winreg as real  # Windows only; never reached elsewhere

        winreg = real
    return winreg


def _hives(reg: Any) -> list[tuple[str, object]]:
    return [("HKLM", reg.HKEY_LOCAL_MACHINE), ("HKCU", reg.HKEY_CURRENT_USER)]


def _read_registry() -> tuple[str, dict[str, dict[str, Any]]] | None:
    from credhelper.errors import ConfigError

    reg = _winreg()
    tables: dict[str, dict[str, Any]] = {}
    used: list[str] = []
    # HKLM wins over HKCU, as machine policy does everywhere on Windows: read HKCU first.
    for label, hive in reversed(_hives(reg)):
        where = f"{label}\\{POLICY_KEY}"
        try:
            root = reg.OpenKey(hive, POLICY_KEY)
        except OSError:
            continue
        with root:
            subkeys, values, _ = reg.QueryInfoKey(root)
            if values:
                name = reg.EnumValue(root, 0)[0]
                raise ConfigError(
                    f"managed policy {where}: value {name!r} is not inside a table subkey",
                    hint=f"put settings in a subkey per table, e.g. {where}\\defaults")
            for i in range(subkeys):
                table = reg.EnumKey(root, i)
                with reg.OpenKey(root, table) as key:
                    count = reg.QueryInfoKey(key)[1]
                    for j in range(count):
                        name, value, kind = reg.EnumValue(key, j)
                        tables.setdefault(table, {})[name] = _registry_value(
                            reg, value, kind, f"{where}\\{table} {name}")
        used.append(where)
    if not used:
        return None
    return "managed policy " + ", ".join(reversed(used)), tables


def _registry_value(reg: Any, value: Any, kind: int, where: str) -> Any:
    from credhelper.errors import ConfigError

    if kind in (reg.REG_SZ, reg.REG_EXPAND_SZ):
        return value
    if kind == reg.REG_DWORD:
        return str(value)  # parsed like any string: "3600", "1"
    if kind == reg.REG_MULTI_SZ:
        return list(value)
    raise ConfigError(f"managed policy {where}: unsupported registry type {kind}",
                      hint="use string values (REG_SZ)")


def _registry_stamps() -> list[list[object]]:
    """Last-write time of the policy key and of each table subkey, per hive (a value
    change only touches its own key's time)."""
    reg = _winreg()
    stamps: list[list[object]] = []
    for label, hive in _hives(reg):
        try:
            root = reg.OpenKey(hive, POLICY_KEY)
        except OSError:
            stamps.append([label, None])
            continue
        with root:
            subkeys, _, modified = reg.QueryInfoKey(root)
            entry: list[object] = [label, modified]
            for i in range(subkeys):
                try:
                    with reg.OpenKey(root, reg.EnumKey(root, i)) as key:
                        entry.append(reg.QueryInfoKey(key)[2])
                except OSError:
                    entry.append(None)
            stamps.append(entry)
    return stamps
