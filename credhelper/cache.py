"""The credential cache: one entry per (provider, credential-changing settings).

Entries are small JSON documents kept in a secret store (``credhelper.store``): with
``cache = "file"`` each is a private file in the cache directory, with ``cache =
"keyring"`` an item in the OS keyring, and ``"none"`` keeps nothing. Either way a file lock
in the cache directory makes concurrent cold runs fetch once. ``StateStore`` keeps
providers' long-lived state in the same kind of store. Reading an entry is on the
cache-hit path: keep this module's imports light.
"""

from __future__ import annotations

import json
import os
import time

from credhelper import output, securefile, store
from credhelper.errors import STALE_IF_ERROR, BackendUnavailable, CacheError, CredhelperError
from credhelper.store import KEYRING_SERVICE  # noqa: F401  (entries' service, as ever)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from typing import Any, TypeGuard

    from credhelper.log import Log

FORMAT = 1
SUFFIX = f".v{FORMAT}.json"  # a newer format gets a new name, so versions never clobber
LAST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
# An entry fetched more than this far in this clock's future was written while the clock
# ran ahead (it has since been set back): its expiry may have been counted from that
# wrong "now" (max_age, expires_in), so it could outlive the real credential. NTP keeps
# clocks within a second; a minute is a clock that moved.
FUTURE_TOLERANCE = 60.0


class Entry:
    __slots__ = ("provider", "key", "token", "headers", "expires_at", "fetched_at", "details")

    def __init__(self, provider: str, key: str, token: str, headers: dict[str, str],
                 expires_at: float, fetched_at: float, details: dict[str, Any]):
        self.provider = provider
        self.key = key
        self.token = token
        self.headers = headers
        self.expires_at = expires_at
        self.fetched_at = fetched_at
        self.details = details

    def fresh(self, now: float, min_validity: float) -> bool:
        return self.expires_at is not None and self.expires_at - now >= min_validity

    def early_refresh_from(self, min_validity: float, refresh_window: float,
                           spread: float) -> float:
        """When runs start renewing this entry early: a point inside the advisory window
        (the ``refresh_window`` before ``min_validity`` is reached), ``spread`` (0 to 1, a
        fraction fixed per machine and key) of the way back from that window's end, so
        that one machine renews at the same moment every time and a fleet does not renew
        in step. Never before the middle of the entry's life: a short-lived credential is
        not renewed right after it was fetched."""
        end = self.expires_at - min_validity
        middle = (self.fetched_at + self.expires_at) / 2
        return end - spread * max(0.0, min(refresh_window, end - middle))

    def valid(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at > now

    def from_the_future(self, now: float) -> bool:
        """Fetched later than ``now`` (beyond FUTURE_TOLERANCE): the clock was set back
        since, and the entry's lifetime cannot be trusted."""
        return self.fetched_at - now > FUTURE_TOLERANCE

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
    def loads(cls, data: bytes | str) -> Entry:
        """Parse an entry; ValueError (never another exception) when it is not one."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise ValueError("not JSON (truncated or corrupt)") from None
        if not isinstance(doc, dict):
            raise ValueError("not a cache entry")
        if doc.get("format") != FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
        token, expires_at = doc.get("token"), doc.get("expires_at")
        fetched_at = doc.get("fetched_at")
        headers, details = doc.get("headers") or {}, doc.get("details") or {}
        if (
            not isinstance(token, str)
            or not token
            or not output.is_header_value(token)  # as a run checks it before caching
            or not _timestamp(expires_at)
            or not _timestamp(fetched_at)
            or not isinstance(headers, dict)
            or not all(isinstance(k, str) and isinstance(v, str)
                       and output.is_header_value(v, spaces=True) for k, v in headers.items())
            or not isinstance(details, dict)
            or not isinstance(doc.get("provider"), str)
            or not isinstance(doc.get("key"), str)
        ):
            raise ValueError("missing or invalid fields")
        return cls(doc["provider"], doc["key"], token, headers, float(expires_at),
                   float(fetched_at), details)


# What a run does with the entry it found (``decide``).
SERVE = "serve"  # hand it out; the backend is not asked
EARLY = "early"  # renew it silently now; if that fails for any reason, hand it out anyway
RENEW = "renew"  # renew it; hand it out only stale-if-error, while it is still valid


def decide(entry: Entry | None, now: float, min_validity: float, refresh_window: float = 0.0,
           spread: float = 0.0, refresh_grace: float | None = None) -> str:
    """The one renewal decision: the hot path, the full path (before and under the lock)
    and benchmarks/fleet.py all call this. An entry with less than ``min_validity`` left
    is renewed (the mandatory window); one past its ``early_refresh_from`` point in the
    ``refresh_window`` before that is renewed early (the advisory window). A forced
    refresh (``refresh_grace`` given: mid-session-refresh, --force-refresh) is served only
    an entry fetched within ``refresh_grace``: another run has just renewed it."""
    if entry is None or not entry.fresh(now, min_validity):
        return RENEW
    if refresh_grace is not None:
        return SERVE if 0 <= now - entry.fetched_at < refresh_grace else RENEW
    if refresh_window > 0 and now > entry.early_refresh_from(min_validity, refresh_window,
                                                             spread):
        return EARLY
    return SERVE


MACHINE_ID = "machine-id"  # in the cache directory: random, made once, never a secret


def machine_spread(directory: str, key: str) -> float:
    """This machine's fraction (0 to 1) of the advisory window for cache key ``key``
    (``spread_of`` its id and the key). The full path computes it and puts it in the
    snapshot, so the hot path reads no extra file and imports no hashlib."""
    return spread_of(machine_id(directory), key)


def spread_of(machine: str, key: str) -> float:
    """A digest of a machine's random id and a cache key, as a fraction from 0 to 1:
    stable from run to run, different from machine to machine and from key to key."""
    import hashlib

    digest = hashlib.sha256(f"{machine}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def machine_id(directory: str) -> str:
    """The cache directory's random id, made (0600) by the first run that needs it. A
    damaged one is replaced; two first runs at once keep the first one's."""
    path = os.path.join(directory, MACHINE_ID)
    for _ in range(3):
        data = securefile.read_private(path)
        if data is not None and _machine_id_ok(data):
            return data.decode()
        if data == b"":  # another run has just made it and is writing: read it again
            time.sleep(0.02)
            continue
        new = os.urandom(16).hex()
        if data is not None:  # damaged: replaced as a whole
            securefile.write_private(path, new.encode())
            return new
        securefile.ensure_private_dir(directory)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0), 0o600)
        except FileExistsError:
            continue  # another run made it first: use theirs
        try:
            os.write(fd, new.encode())
        finally:
            os.close(fd)
        return new
    new = os.urandom(16).hex()
    securefile.write_private(path, new.encode())
    return new


def _machine_id_ok(data: bytes) -> bool:
    return len(data) == 32 and all(c in b"0123456789abcdef" for c in data)


def _timestamp(value: object) -> TypeGuard[int | float]:
    """A Unix time a clock can show: a finite number from 1970 to the year 9999 (NaN or
    Infinity in a damaged file must not make an entry fresh forever)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value <= LAST_TIMESTAMP)


def entry_name(provider: str, key: str) -> str:
    """The entry's name in its store (its file adds SUFFIX; its keyring item is this)."""
    return f"{provider}-{key}"


_said: set[str] = set()  # warnings given in this process: the hot path and the full path
# read the same entry up to three times, and one line says it


def _warn_once(log: Log, message: str, about: str | None = None) -> None:
    """``message``, unless this process said it (or another line ``about`` the same)."""
    about = message if about is None else about
    if about not in _said:
        _said.add(about)
        log.warning(message)


class Cache:
    """Entries over one secret store (``credhelper.store``): a private file each, the OS
    keyring, or nowhere. A damaged or foreign entry, or one fetched in this clock's
    future, is a miss with a warning; an unsafe cache directory is an error (exit 2); a
    keyring that cannot be read (or does not answer by ``deadline``) is a miss with a
    warning, and one that cannot be written fails ``store`` like a full disk (the caller
    warns and still prints). ``deadline`` and ``may_prompt``: see store.KeyringStore."""

    def __init__(self, directory: str, log: Log, mode: str = "file",
                 deadline: float | None = None, may_prompt: bool = False):
        self.directory, self.log, self.mode = directory, log, mode
        self.secrets = store.open_store(mode, directory, suffix=SUFFIX, deadline=deadline,
                                        may_prompt=may_prompt)

    def path(self, provider: str, key: str) -> str:
        return self.secrets.where(entry_name(provider, key))

    def load(self, provider: str, key: str, now: float | None = None) -> Entry | None:
        """The entry, or None when there is none or it is unreadable (with a warning).
        ``now``: this run's clock (time.time() by default)."""
        name = entry_name(provider, key)
        try:
            data = self.secrets.load(name)
        except STALE_IF_ERROR as exc:
            _warn_once(self.log, f"cannot read the cache: {exc.message}")
            return None
        if data is None:
            return None
        where = self.secrets.where(name)
        try:
            entry = Entry.loads(data)
        except ValueError as exc:
            self.log.warning(f"ignoring cache entry {where}: {exc}")
            return None
        if entry.key != key or entry.provider != provider:
            self.log.warning(f"ignoring cache entry {where}: it belongs to another key")
            return None
        now = time.time() if now is None else now
        if entry.from_the_future(now):
            _warn_once(self.log, f"ignoring cache entry {where}: fetched "
                       f"{int(entry.fetched_at - now)}s after this clock's now (was the "
                       "clock set back?); fetching a new credential", f"future {where}")
            return None
        return entry

    def store(self, entry: Entry) -> None:
        self.secrets.save(entry_name(entry.provider, entry.key), entry.dumps())

    def delete(self, provider: str, key: str) -> bool:
        try:
            return self.secrets.delete(entry_name(provider, key))
        except STALE_IF_ERROR as exc:
            self.log.warning(f"cannot delete from the cache: {exc.message}")
            return False

    def entries(self) -> list[tuple[str, Entry | None, str | None]]:
        """Every entry the store can list, as (where, entry or None, problem or None); a
        keyring cannot be listed (status shows the current configuration's entry)."""
        found: list[tuple[str, Entry | None, str | None]] = []
        for name in self.secrets.names() or []:
            where = self.secrets.where(name)
            try:
                found.append((where, Entry.loads(self.secrets.load(name) or b""), None))
            except ValueError as exc:
                found.append((where, None, str(exc)))
            except CacheError as exc:
                found.append((where, None, exc.message))
        return found


FileCache = Cache  # the cache directory's files, whatever the configured mode


def open_cache(mode: str, directory: str, log: Log, deadline: float | None = None,
               may_prompt: bool = False) -> Cache:
    return Cache(directory, log, mode, deadline, may_prompt)


class Lock:
    """A cross-process lock per cache key, bounded by the run's deadline.

    A cache directory that cannot hold a lock file (read-only, full, broken) costs the
    guarantee of one fetch for many concurrent runs, never the run: it is said once and
    the run goes on unlocked."""

    def __init__(self, directory: str, provider: str, key: str, deadline: float,
                 log: Log | None = None, what: str = "the cache"):
        self.path = os.path.join(directory, f"{provider}-{key}.lock")
        self.what = what  # what the lock guards, for messages
        self.deadline, self.log, self.held = deadline, log, False
        self.directory = directory
        self.lock: Any = None  # fasteners.InterProcessLock, once taken
        self.timed_out = False

    def __enter__(self) -> Lock:
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
                self.log.warning(f"cannot lock {self.what} ({reason}: {self.path}); "
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
                f"the deadline passed while another credhelper run held the lock on "
                f"{self.what}",
                hint=f"if no other run is active, remove {self.path}",
            )

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.lock.release()
            self.held = False


class StateStore:
    """Long-lived provider state (a Vault login token, a refresh token, a pending device
    sign-in), kept as well as the cache: a private file, or the OS keyring with ``cache =
    "keyring"``. Documents are dicts, saved as JSON under a name the provider picks
    ("token", "refresh", ...), hashed with the provider's name into the store's name; the
    cache key they belong to is mixed in by the caller when the state depends on settings.
    Losing state costs a new sign-in, never the run: read and write failures are warnings.
    """

    def __init__(self, mode: str, directory: str, provider: str, log: Log,
                 deadline: float | None = None, may_prompt: bool = False):
        self.mode, self.directory, self.provider, self.log = mode, directory, provider, log
        self.secrets = store.open_store(mode, directory, suffix=".json", deadline=deadline,
                                        may_prompt=may_prompt)

    def _name(self, name: str) -> str:
        import hashlib

        return f"{self.provider}-state-{hashlib.sha256(name.encode()).hexdigest()[:24]}"

    def load(self, name: str) -> dict[str, Any] | None:
        try:
            data = self.secrets.load(self._name(name))
        except STALE_IF_ERROR as exc:
            self.log.warning(f"cannot read {self.provider} state: {exc.message}")
            return None
        if data is None:
            return None
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            self.log.warning(f"ignoring damaged {self.provider} state {name!r}")
            return None
        return doc if isinstance(doc, dict) else None

    def save(self, name: str, doc: dict[str, Any]) -> None:
        try:
            self.secrets.save(self._name(name), json.dumps(doc, sort_keys=True).encode())
        except (OSError, CredhelperError) as exc:
            self.log.warning(f"cannot save {self.provider} state: "
                             f"{getattr(exc, 'message', None) or exc.__class__.__name__}")

    def delete(self, name: str) -> None:
        try:
            self.secrets.delete(self._name(name))
        except STALE_IF_ERROR as exc:
            self.log.warning(f"cannot delete {self.provider} state: {exc.message}")
