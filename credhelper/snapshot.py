"""A resolved-configuration snapshot, so that a cache hit needs no TOML and no typing.

After every full run the helper writes, per provider, what the hit path needs (cache mode,
entry key, min_validity, the advisory refresh window and this machine's place in it,
output, headers, log file) together with the identity of
everything the configuration and the caller's identity were resolved from: each config
file's and identity file's (mtime, ctime, size, inode) or its absence, the
managed-preferences identity, and a BLAKE2 digest of the relevant environment (names and
values, so a secret in a variable is never written in clear). Identities are taken when
the files are read, not when the snapshot is written: a file edited during a fetch makes
the next run take the full path. The hit path uses the snapshot only when all of that is
unchanged and it was written by this version with settings of the expected types;
otherwise it falls back to the full path, which applies every configuration rule and
writes a new snapshot.
"""

from __future__ import annotations

import json
import os

from credhelper import __version__, managed, paths, securefile

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


def file_identity(path: str) -> list[object]:
    """What changes when ``path`` is written, replaced or removed; taken *before* the file
    is read, so that a write racing the read shows up as a change on the next run."""
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    return [path, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino]


def _env_digest(env: Mapping[str, str], names: Iterable[str]) -> str:
    relevant = set(names) | set(paths.LOCATION_VARIABLES)
    relevant.update(name for name in env if name.startswith("CREDHELPER_"))
    h = blake2b(digest_size=16, person=b"credhelper-env")
    for name in sorted(relevant):
        value = env.get(name)
        text = f"{name}\0{'-' if value is None else '+' + value}\0"
        h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def write(directory: str, provider: str, files: list[list[object]], managed_identity: object,
          env_names: Iterable[str], env: Mapping[str, str], settings: dict[str, Any]) -> None:
    """``files`` and ``managed_identity``: as ``file_identity`` and ``managed.identity``
    gave them when the configuration was read."""
    doc = {
        "format": FORMAT,
        "version": __version__,
        "provider": provider,
        "files": files,
        "managed": managed_identity,
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
            or doc.get("version") != __version__  # another release may mean other rules
            or doc["provider"] != provider
            or doc["managed"] != managed.identity(env)
            or doc["env"] != _env_digest(env, doc["env_names"])
            or any(file_identity(f[0]) != f for f in doc["files"])
        ):
            return None
        settings = doc["settings"]
        return settings if _well_formed(settings) else None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
        return None  # stale or damaged: the full path rewrites it


def _number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value < 1e12)  # NaN fails both comparisons


def _well_formed(settings: object) -> bool:
    """Settings the hit path can use as they are: a damaged or hand-edited snapshot must
    send the run down the full path, never into a TypeError."""
    if not isinstance(settings, dict):
        return False
    headers, log_file = settings.get("headers"), settings.get("log_file")
    return (
        settings.get("cache") in ("file", "keyring", "none")
        and isinstance(settings.get("key"), str) and settings["key"].isalnum()
        and _number(settings.get("min_validity"))
        and _number(settings.get("refresh_grace"))
        and _number(settings.get("refresh_window"))
        and _number(settings.get("spread")) and settings["spread"] < 1
        and _number(settings.get("timeout")) and settings["timeout"] <= 600  # the app's most
        and isinstance(settings.get("output"), str)
        and isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        and (log_file is None or isinstance(log_file, str))
    )


def remove(directory: str, provider: str) -> None:
    securefile.remove(_path(directory, provider))
