"""The credential cache: one entry per (provider, credential-changing settings).

Entries are small JSON documents. With ``cache = "file"`` each is a private file in the
cache directory (``securefile`` does the checks and the atomic write); with
``cache = "keyring"`` the same document is kept in the OS keyring; ``"none"`` keeps
nothing. Either way a file lock in the cache directory makes concurrent cold runs fetch
once. Reading an entry is on the cache-hit path: keep this module's imports light.
"""

from __future__ import annotations

import json
import os
import time

from credhelper import securefile
from credhelper.errors import BackendUnavailable, CacheError

FORMAT = 1
SUFFIX = f".v{FORMAT}.json"  # a newer format gets a new name, so versions never clobber
LAST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
KEYRING_SERVICE = "credhelper-cache"


class Entry:
    __slots__ = ("provider", "key", "token", "headers", "expires_at", "fetched_at", "details")

    def __init__(self, provider, key, token, headers, expires_at, fetched_at, details):
        self.provider = provider
        self.key = key
        self.token = token
        self.headers = headers
        self.expires_at = expires_at
        self.fetched_at = fetched_at
        self.details = details

    def fresh(self, now: float, min_validity: float) -> bool:
        return self.expires_at is not None and self.expires_at - now >= min_validity

    def serves(self, now: float, min_validity: float, refresh_grace: float | None = None) -> bool:
        """May this entry be handed out now? With ``refresh_grace`` (a forced refresh) only
        when it was fetched that recently: another run has just refreshed it."""
        if not self.fresh(now, min_validity):
            return False
        return refresh_grace is None or 0 <= now - self.fetched_at < refresh_grace

    def valid(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at > now

    def dumps(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "provider": self.provider,
                "key": self.key,
                "token": self.token,
                "headers": self.headers,
                "expires_at": self.expires_at,
                "fetched_at": self.fetched_at,
                "details": self.details,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def loads(cls, data: bytes | str) -> "Entry":
        """Parse an entry; ValueError (never another exception) when it is not one."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise ValueError("not JSON (truncated or corrupt)") from None
        if not isinstance(doc, dict):
            raise ValueError("not a cache entry")
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
        token, expires_at, fetched_at = doc.get("token"), doc.get("expires_at"), doc.get("fetched_at")
        headers, details = doc.get("headers") or {}, doc.get("details") or {}
        if (
            not isinstance(token, str)
            or not token
            or any(c in token for c in "\r\n\0")
            or not _timestamp(expires_at)
            or not _timestamp(fetched_at)
            or not isinstance(headers, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
            or not isinstance(details, dict)
            or not isinstance(doc.get("provider"), str)
            or not isinstance(doc.get("key"), str)
        ):
            raise ValueError("missing or invalid fields")
        return cls(doc["provider"], doc["key"], token, headers, float(expires_at),
                   float(fetched_at), details)


def _timestamp(value) -> bool:
    """A Unix time a clock can show: a finite number from 1970 to the year 9999 (NaN or
    Infinity in a damaged file must not make an entry fresh forever)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value <= LAST_TIMESTAMP)


def entry_name(provider: str, key: str) -> str:
    return f"{provider}-{key}{SUFFIX}"


class FileCache:
    mode = "file"

    def __init__(self, directory: str, log):
        self.directory = directory
        self.log = log

    def path(self, provider: str, key: str) -> str:
        return os.path.join(self.directory, entry_name(provider, key))

    def load(self, provider: str, key: str) -> Entry | None:
        """The entry, or None when there is none or it is unreadable (with a warning)."""
        if not securefile.check_private_dir(self.directory):
            return None
        path = self.path(provider, key)
        return self._parse(securefile.read_private(path), provider, key, path)

    def _parse(self, data, provider: str, key: str, where: str) -> Entry | None:
        """A damaged or foreign entry is a miss with a warning, never an error."""
        if data is None:
            return None
        try:
            entry = Entry.loads(data)
        except ValueError as exc:
            self.log.warning(f"ignoring cache entry {where}: {exc}")
            return None
        if entry.key != key or entry.provider != provider:
            self.log.warning(f"ignoring cache entry {where}: it belongs to another key")
            return None
        return entry

    def store(self, entry: Entry) -> None:
        securefile.ensure_private_dir(self.directory)
        securefile.write_private(self.path(entry.provider, entry.key), entry.dumps())

    def delete(self, provider: str, key: str) -> bool:
        return securefile.remove(self.path(provider, key))

    def entries(self) -> list[tuple[str, Entry | None, str | None]]:
        """Every entry file as (path, entry or None, problem or None)."""
        if not securefile.check_private_dir(self.directory):
            return []
        found = []
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(SUFFIX) or name.startswith("."):
                continue
            path = os.path.join(self.directory, name)
            try:
                found.append((path, Entry.loads(securefile.read_private(path) or b""), None))
            except ValueError as exc:
                found.append((path, None, str(exc)))
            except CacheError as exc:
                found.append((path, None, exc.message))
        return found


class KeyringCache(FileCache):
    """Entries in the OS keyring; the lock and the snapshot still live in the directory."""

    mode = "keyring"

    def _keyring(self):
        import keyring
        from keyring.errors import KeyringError

        return keyring, KeyringError

    def path(self, provider: str, key: str) -> str:
        return f"keyring:{KEYRING_SERVICE}/{provider}-{key}"

    def load(self, provider: str, key: str) -> Entry | None:
        keyring, KeyringError = self._keyring()
        try:
            data = keyring.get_password(KEYRING_SERVICE, f"{provider}-{key}")
        except KeyringError as exc:
            self.log.warning(f"cannot read the keyring cache: {exc.__class__.__name__}")
            return None
        return self._parse(data, provider, key, self.path(provider, key))

    def store(self, entry: Entry) -> None:
        keyring, KeyringError = self._keyring()
        try:
            keyring.set_password(KEYRING_SERVICE, f"{entry.provider}-{entry.key}", entry.dumps().decode())
        except KeyringError as exc:
            self.log.warning(f"cannot write the keyring cache: {exc.__class__.__name__}")

    def delete(self, provider: str, key: str) -> bool:
        keyring, KeyringError = self._keyring()
        try:
            keyring.delete_password(KEYRING_SERVICE, f"{provider}-{key}")
            return True
        except KeyringError:
            return False

    def entries(self):
        return []  # a keyring cannot be listed portably; status shows the current entry


class NoCache(FileCache):
    mode = "none"

    def load(self, provider, key):
        return None

    def store(self, entry):
        pass

    def delete(self, provider, key):
        return False

    def entries(self):
        return []


def open_cache(mode: str, directory: str, log) -> FileCache:
    return {"file": FileCache, "keyring": KeyringCache, "none": NoCache}[mode](directory, log)


class Lock:
    """A cross-process lock per cache key, bounded by the run's deadline.

    A cache directory that cannot hold a lock file (read-only, full, broken) costs the
    guarantee of one fetch for many concurrent runs, never the run: it is said once and
    the run goes on unlocked."""

    def __init__(self, directory: str, provider: str, key: str, deadline: float, log=None):
        self.path = os.path.join(directory, f"{provider}-{key}.lock")
        self.deadline, self.log, self.held = deadline, log, False
        self.directory = directory
        self.lock, self.timed_out = None, False

    def __enter__(self):
        # fasteners (flock / msvcrt.locking): its import costs a miss ~2 ms, filelock's ~17.
        import threading

        import fasteners

        try:
            securefile.ensure_private_dir(self.directory)
            # Made here, private and never through a symlink; fasteners then opens it as is.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                             0o600))
            self.lock = fasteners.InterProcessLock(self.path)
            got = self.lock.acquire(timeout=max(0.0, self.deadline - time.monotonic()))
        except (OSError, threading.ThreadError) as exc:
            if self.log is not None:
                reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
                self.log.warning(f"cannot lock the cache ({reason}: {self.path}); "
                                 "going on without the lock")
            return self
        self.timed_out = not got
        self.held = got
        return self

    def check(self) -> None:
        """Raise (exit 4) if the deadline passed while another run held the lock: the
        caller then serves a still-valid cached credential, stale-if-error."""
        if self.timed_out:
            raise BackendUnavailable(
                "the deadline passed while another credhelper run held the cache lock",
                hint=f"if no other run is active, remove {self.path}",
            )

    def __exit__(self, *exc):
        if self.held:
            self.lock.release()
            self.held = False


class StateStore:
    """Long-lived provider state (a Vault login token, a refresh token, MSAL's cache),
    kept as well as the cache: a private file, or the OS keyring with ``cache = "keyring"``.

    Names are the provider's own ("token", "refresh"); the cache key they belong to is
    mixed in by the caller when the state depends on settings.
    """

    def __init__(self, mode: str, directory: str, provider: str, log):
        self.mode, self.directory, self.provider, self.log = mode, directory, provider, log

    def _name(self, name: str) -> str:
        import hashlib

        return f"{self.provider}-state-{hashlib.sha256(name.encode()).hexdigest()[:24]}"

    def load(self, name: str) -> dict | None:
        if self.mode == "keyring":
            import keyring

            try:
                data = keyring.get_password(KEYRING_SERVICE, self._name(name))
            except Exception as exc:
                self.log.warning(f"cannot read provider state from the keyring: {exc.__class__.__name__}")
                return None
        else:
            if not securefile.check_private_dir(self.directory):
                return None
            data = securefile.read_private(os.path.join(self.directory, self._name(name) + ".json"))
        if data is None:
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            self.log.warning(f"ignoring damaged {self.provider} state {name!r}")
            return None
        return doc if isinstance(doc, dict) else None

    def save(self, name: str, doc: dict) -> None:
        data = json.dumps(doc, sort_keys=True)
        try:
            if self.mode == "keyring":
                import keyring

                keyring.set_password(KEYRING_SERVICE, self._name(name), data)
            else:
                securefile.ensure_private_dir(self.directory)
                securefile.write_private(
                    os.path.join(self.directory, self._name(name) + ".json"), data.encode()
                )
        except Exception as exc:  # losing state costs a new sign-in, never the run
            self.log.warning(f"cannot save {self.provider} state: {getattr(exc, 'message', exc.__class__.__name__)}")

    def delete(self, name: str) -> None:
        if self.mode == "keyring":
            import keyring

            try:
                keyring.delete_password(KEYRING_SERVICE, self._name(name))
            except Exception:
                pass
        else:
            securefile.remove(os.path.join(self.directory, self._name(name) + ".json"))
