"""Which backends exist, read from the installed distributions' metadata.

A backend is registered by one line, its console script (``[project.scripts]``)::

    credhelper-NAME = "credhelper.entry:main"

That line is the program the app runs and, in the distribution's ``entry_points.txt``,
the registration: every installed console script named ``credhelper-NAME`` that runs
``credhelper.entry:main`` is the backend NAME. Its provider is the ``Provider`` subclass
whose ``name`` is NAME in module ``credhelper.providers.NAME`` when the script is
credhelper's own (``providers/NAME.py``), else in the top-level module ``credhelper_NAME``
of the distribution that declares it (a dash in NAME is an underscore in the module).

The cache hit never comes here (``credhelper.entry`` reads NAME from the program's name).
A cache miss does, once per process: config needs every name, to tell the tables apart.
So the scan is cheap (about 1 ms for a hundred installed distributions) and imports
neither ``importlib.metadata`` nor any backend: it lists each ``sys.path`` folder and
reads the ``entry_points.txt`` of every ``*.dist-info`` / ``*.egg-info`` in it, the first
distribution of a name on ``sys.path`` winning, as ``importlib.metadata`` does.
Distributions inside zip files are not looked at (pip never installs one that way).
"""

from __future__ import annotations

import importlib
import os
import sys

from credhelper.errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import ModuleType

    from credhelper.provider import Provider

DISTRIBUTION = "credhelper"  # this one: its backends live in credhelper.providers
SCRIPT_PREFIX = "credhelper-"
ENTRY = "credhelper.entry:main"  # what every backend's console script runs


class Backend:
    """One registered backend: its name, the distribution declaring it, and where."""

    __slots__ = ("name", "distribution", "metadata")

    def __init__(self, name: str, distribution: str, metadata: str):
        self.name = name
        self.distribution = distribution  # normalized: lower case, "_" for "-" and "."
        self.metadata = metadata  # the *.dist-info / *.egg-info folder

    @property
    def module(self) -> str:
        """Where its provider class lives, by the naming rule above."""
        stem = self.name.replace("-", "_")
        if self.distribution == DISTRIBUTION:
            return f"credhelper.providers.{stem}"
        return f"credhelper_{stem}"

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, {self.distribution!r}, {self.metadata!r})"


_found: dict[str, Backend] | None = None  # the scan, once per process
_classes: dict[str, type[Provider]] = {}
_extra: dict[str, type[Provider]] = {}


def register(cls: type[Provider]) -> None:
    """Add a provider class at run time (the test suite's counting provider uses this)."""
    _extra[cls.name] = cls


def backends() -> dict[str, Backend]:
    """Every installed backend by name (scanned once per process)."""
    global _found
    if _found is None:
        _found = scan(sys.path)
    return _found


def names() -> list[str]:
    return sorted(set(backends()) | set(_extra))


def load(name: str) -> type[Provider]:
    """The provider class of backend ``name``; ConfigError (exit 2) when there is none."""
    if name in _extra:
        return _extra[name]
    if name in _classes:
        return _classes[name]
    backend = backends().get(name)
    if backend is None:
        raise ConfigError(
            f"unknown provider {name!r}",
            hint=f"choose one of: {', '.join(names())}" if names() else
            "no backend is registered: reinstall credhelper (its console scripts, written "
            "at install time, are the list of backends)",
        )
    try:
        module = importlib.import_module(backend.module)
    except ImportError as exc:
        raise ConfigError(
            f"the {name} provider is not available in this build: {exc}",
            hint=f"install credhelper with the {name} extra, or use the credhelper-{name} binary",
        ) from None
    _classes[name] = cls = provider_class(module, name)
    return cls


def provider_class(module: ModuleType, name: str) -> type[Provider]:
    """The ``Provider`` subclass named ``name`` in ``module`` (one defined there first)."""
    from credhelper.provider import Provider

    found = [value for value in vars(module).values()
             if isinstance(value, type) and issubclass(value, Provider)
             and getattr(value, "name", None) == name]
    own = [cls for cls in found if cls.__module__ == module.__name__]
    if len(own or found) != 1:
        raise ConfigError(
            f"module {module.__name__} defines {len(own or found) or 'no'} provider classes "
            f"with name = {name!r}",
            hint=f"the credhelper-{name} backend needs exactly one (see docs/contributing.md)",
        )
    return (own or found)[0]


# ---------------------------------------------------------------- the scan


def scan(path_entries: Iterable[str]) -> dict[str, Backend]:
    """The backends declared by the distributions found on ``path_entries``."""
    found: dict[str, Backend] = {}
    seen: set[str] = set()
    for entry in path_entries:
        folder = entry or os.curdir
        try:
            children = sorted(os.listdir(folder))
        except OSError:  # missing, not a folder, a zip file
            continue
        for child in children:
            stem, _, kind = child.rpartition(".")
            if kind not in ("dist-info", "egg-info"):
                continue
            distribution = normalize(stem.partition("-")[0])
            if distribution in seen:
                continue  # the first of a name on sys.path wins
            seen.add(distribution)
            metadata = f"{folder}{os.sep}{child}"
            try:
                with open(f"{metadata}{os.sep}entry_points.txt", encoding="utf-8") as f:
                    text = f.read()
            except OSError:  # most distributions have no entry points
                continue
            if ENTRY not in text:
                continue
            for name in backend_scripts(text):
                found.setdefault(name, Backend(name, distribution, metadata))
    return found


def backend_scripts(text: str) -> list[str]:
    """The NAMEs of ``credhelper-NAME = credhelper.entry:main`` in an entry_points.txt."""
    names: list[str] = []
    section: str | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section != "console_scripts" or "=" not in line:
            continue
        script, _, target = line.partition("=")
        script, target = script.strip(), "".join(target.partition("[")[0].split())
        name = script[len(SCRIPT_PREFIX):]
        if script.startswith(SCRIPT_PREFIX) and target == ENTRY and valid_name(name):
            names.append(name)
    return names


def valid_name(name: str) -> bool:
    """A backend name: letters, digits, ``-`` and ``_`` (it names files and tables)."""
    return bool(name) and name.replace("-", "").replace("_", "").isalnum() and name.isascii()


def normalize(distribution: str) -> str:
    """A distribution's name as its metadata folders spell it (lower case, "_")."""
    return distribution.lower().replace("-", "_").replace(".", "_")
