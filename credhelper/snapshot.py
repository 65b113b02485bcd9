"""A resolved-configuration snapshot, so that a cache hit needs no TOML and no typing.

After every full run the helper writes, per provider, what the hit path needs (cache mode,
entry key, min_validity, output, headers, log file) together with the identity of
everything the configuration was resolved from: each config file's (mtime, size, inode)
or its absence, the managed-preferences identity, and a BLAKE2 digest of the relevant
environment (names and values, so a secret in a variable is never written in clear).
The hit path uses the snapshot only when all of that is unchanged; otherwise it falls
back to the full path, which applies every configuration rule and writes a new snapshot.
"""

from __future__ import annotations

import json
import os

from credhelper import managed, paths, securefile

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

FORMAT = 1

try:  # the builtin module: hashlib would load OpenSSL, a few ms on every hit
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - other interpreters
    from hashlib import blake2b


def _path(directory: str, provider: str) -> str:
    return os.path.join(directory, f"snapshot-{provider}.json")


def _file_identity(path: str) -> list[object]:
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    return [path, st.st_mtime_ns, st.st_size, st.st_ino]


def _env_digest(env: Mapping[str, str], names: Iterable[str]) -> str:
    relevant = set(names) | set(paths.LOCATION_VARIABLES)
    relevant.update(name for name in env if name.startswith("CREDHELPER_"))
    h = blake2b(digest_size=16, person=b"credhelper-env")
    for name in sorted(relevant):
        value = env.get(name)
        text = f"{name}\0{'-' if value is None else '+' + value}\0"
        h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def write(directory: str, provider: str, files: list[str], env_names: Iterable[str],
          env: Mapping[str, str], settings: dict[str, Any]) -> None:
    doc = {
        "format": FORMAT,
        "provider": provider,
        "files": [_file_identity(p) for p in files],
        "managed": managed.identity(env),
        "env_names": sorted(env_names),
        "env": _env_digest(env, env_names),
        "settings": settings,
    }
    securefile.ensure_private_dir(directory)
    securefile.write_private(_path(directory, provider), json.dumps(doc).encode())


def read(directory: str, provider: str, env: Mapping[str, str]) -> dict[str, Any] | None:
    """The snapshot's settings when it still describes the configuration, else None."""
    data = securefile.read_private(_path(directory, provider))
    if data is None:
        return None
    try:
        doc = json.loads(data)
        if (
            doc["format"] != FORMAT
            or doc["provider"] != provider
            or doc["managed"] != managed.identity(env)
            or doc["env"] != _env_digest(env, doc["env_names"])
            or any(_file_identity(f[0]) != f for f in doc["files"])
        ):
            return None
        settings = doc["settings"]
        return settings if isinstance(settings, dict) else None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None  # stale or damaged: the full path rewrites it


def remove(directory: str, provider: str) -> None:
    securefile.remove(_path(directory, provider))
