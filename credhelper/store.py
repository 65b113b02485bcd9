"""Secret stores: a few bytes kept under a name in private files, in the OS keyring, or
nowhere. The one storage layer under the credential cache (``credhelper.cache``: entries),
providers' long-lived state (``cache.StateStore``: login and refresh tokens, pending
sign-ins) and Azure's MSAL token cache.

Every store has the same shape (``SecretStore``):

- ``load(name) -> bytes | None`` (None: nothing stored under ``name``);
- ``save(name, data)``, replacing what was there;
- ``delete(name) -> bool`` (False: nothing was there);
- ``names() -> list[str] | None``, every name it holds, or None when it cannot list (a
  keyring cannot, portably);
- ``where(name)`` (the file, or ``keyring:SERVICE/NAME``), ``label`` and ``describe()``
  for status and doctor; ``mode``: "file", "keyring" or "none".

A store keeps bytes and judges nothing: a damaged value comes back as it was stored, and
the layer above (``Entry.loads``, JSON) says what to do with it. Failures are the
contract's: an unsafe file or directory raises ``CacheError`` (exit 2), a disk that cannot
take a write ``OSError``, a keyring that cannot be used or does not answer in time
``BackendUnavailable`` (4), a locked one ``LoginRequired`` (3), and ``cache = "keyring"``
without the keyring library ``ConfigError`` (2); each layer decides which of them cost
the run.

Every keyring call is bounded: it runs in a worker thread that the caller stops waiting
for at the store's ``deadline`` (a frozen Secret Service daemon accepts a D-Bus call and
never answers). A store that may not ask a person (``may_prompt`` False: every run but an
interactive one) first checks that the keyring would not show an unlock or create-keyring
dialog, and says "locked" (3) instead.

Which keyring counts as one: ``keyring_usable()``, the one check behind ``cache =
"keyring"``, the Azure token cache, ``credhelper-keyring`` and doctor.

On the cache-hit path with ``cache = "file"``: standard library only, and ``keyring`` is
imported only by a keyring store's first use.
"""

from __future__ import annotations

import os
import time

from credhelper import securefile
from credhelper.errors import BackendUnavailable, ConfigError, LoginRequired

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from keyring.backend import KeyringBackend

    T = TypeVar("T")

KEYRING_SERVICE = "credhelper-cache"  # every keyring entry and state since the first release
MAX_NAME = 200  # characters; a file name (escaped, with its suffix) must stay under 255 bytes
NO_KEYRING_HINT = ("on Linux run inside a desktop session with a Secret Service (GNOME "
                   "Keyring, KWallet) and DBUS_SESSION_BUS_ADDRESS set; see `credhelper doctor`")
LOCKED_HINT = "unlock your keyring (log in to the desktop session)"
STALLED_HINT = 'check the keyring daemon (gnome-keyring, kwalletd), or set cache = "file"'
# How long a keyring call that may not ask a person is waited for, at most, within the
# deadline: a healthy keyring answers in milliseconds, so a frozen one should cost a run
# this much, and leave the rest of its time to the backend.
KEYRING_PATIENCE = 5.0
# A call begun at (or after) the deadline still gets this long: storing a credential
# fetched at the last moment takes milliseconds, and a frozen keyring costs no more.
KEYRING_FLOOR = 0.25
_stalled: str | None = None  # why a keyring call was given up on: later ones fail at once


def check_name(name: str) -> str:
    """A name any store can hold: a non-empty string of at most MAX_NAME characters, no
    NUL, encodable as UTF-8. ValueError otherwise."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or "\0" in name:
        raise ValueError(f"not a store name: {name!r:.60}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"not a store name: {name!r:.60}") from None
    return name


class SecretStore:
    """The protocol (see the module docstring); the base keeps nothing."""

    mode = "none"
    label = "nowhere"

    def load(self, name: str) -> bytes | None:
        check_name(name)
        return None

    def save(self, name: str, data: bytes) -> None:
        check_name(name)

    def delete(self, name: str) -> bool:
        check_name(name)
        return False

    def names(self) -> list[str] | None:
        return []

    def where(self, name: str) -> str:
        return self.label

    def describe(self) -> str:
        return self.label


class NoStore(SecretStore):
    """``cache = "none"``: nothing is kept, nothing is found."""

    label = 'nowhere (cache = "none")'

    def where(self, name: str) -> str:
        check_name(name)
        return "nowhere"


# ---------------------------------------------------------------- private files

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_HEX = frozenset("0123456789ABCDEF")


def file_name(name: str) -> str:
    """``name`` as a file name: itself when it is made of letters, digits, ``-``, ``_``
    and ``.`` (every name credhelper has used: entries, state and MSAL caches keep their
    files on upgrade); any other byte, and a leading dot (temporary and hidden files),
    as %XX. One name, one file, in no other directory."""
    check_name(name)
    if not name.startswith(".") and all(c in _SAFE for c in name):
        return name
    out = []
    for i, c in enumerate(name):
        if c in _SAFE and not (i == 0 and c == "."):
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8"))
    return "".join(out)


def name_of_file(stem: str) -> str | None:
    """The name ``file_name`` made ``stem`` from, or None when no name makes it."""
    if "%" not in stem:
        return stem if stem and not stem.startswith(".") and all(c in _SAFE for c in stem) else None
    raw, i = bytearray(), 0
    while i < len(stem):
        if stem[i] == "%":
            pair = stem[i + 1:i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                return None
            raw.append(int(pair, 16))
            i += 3
        else:
            raw += stem[i].encode("utf-8")
            i += 1
    try:
        name = raw.decode("utf-8")
        return name if file_name(name) == stem else None  # one spelling per name
    except ValueError:
        return None


class FileStore(SecretStore):
    """One private file per name in ``directory``: the directory 0700, the files 0600,
    written atomically, never through a symbolic link, never one owned by someone else
    or open to others (``credhelper.securefile``). ``suffix`` ends every file name
    (".v1.json" for cache entries), which is how ``names()`` tells this store's files
    from the others in the same directory."""

    mode = "file"

    def __init__(self, directory: str, suffix: str = ""):
        self.directory, self.suffix = directory, suffix
        self.label = f"private files in {directory}"

    def where(self, name: str) -> str:
        path = os.path.join(self.directory, file_name(name) + self.suffix)
        if len(os.path.basename(path).encode()) > 255:
            raise ValueError(f"name too long for a file: {name!r:.60}")
        return path

    def load(self, name: str) -> bytes | None:
        path = self.where(name)
        if not securefile.check_private_dir(self.directory):
            return None
        return securefile.read_private(path)

    def save(self, name: str, data: bytes) -> None:
        path = self.where(name)
        securefile.ensure_private_dir(self.directory)
        securefile.write_private(path, bytes(data))

    def delete(self, name: str) -> bool:
        return securefile.remove(self.where(name))

    def names(self) -> list[str]:
        if not securefile.check_private_dir(self.directory):
            return []
        found = []
        for entry in sorted(os.listdir(self.directory)):
            if entry.endswith(self.suffix) and len(entry) > len(self.suffix):
                name = name_of_file(entry[:len(entry) - len(self.suffix)])
                if name is not None:
                    found.append(name)
        return found


# ---------------------------------------------------------------- the OS keyring

# Backends that keep secrets where any program running as the user, or anyone with a
# copy of the home directory, reads them: refused, as a 0600 file would be no worse and
# credhelper does not pretend they are a keyring. (module prefix, why)
_REFUSED = (
    ("keyring.backends.fail", "keyring found no backend"),
    ("keyring.backends.null", "the null backend keeps nothing"),
    ("keyrings.alt.file", "a file keyring: plain text, or a password asked on the terminal"),
    ("keyrings.alt.pyfs", "a file keyring: plain text, or a password asked on the terminal"),
    ("keyrings.cryptfile", "a file keyring with a password asked on the terminal"),
)


def _backend_name(kr: object) -> str:
    return f"{type(kr).__module__}.{type(kr).__name__}"


def _refused(kr: object) -> str | None:
    """Why ``kr`` is not a keyring credhelper keeps secrets in, or None when it is one."""
    name = _backend_name(kr)
    for prefix, why in _REFUSED:
        if name.startswith(prefix + "."):
            return f"{name}: {why}"
    if "plaintext" in type(kr).__name__.lower():
        return f"{name}: a plain-text keyring"
    return None


def find_keyring() -> tuple[KeyringBackend | None, str]:
    """(backend, description) for the keyring credhelper uses, or (None, why not).

    keyring's own choice, except: its fail and null backends, and plain-text or
    terminal-password file keyrings, are no keyring; its chainer is replaced by the
    first usable backend it chains (writes then never fall through to a lower one)."""
    try:
        import keyring
    except ImportError:
        return None, "the keyring library is not installed in this build"
    try:
        chosen = keyring.get_keyring()
    except Exception as exc:  # a broken keyringrc.cfg, PYTHON_KEYRING_BACKEND or plugin
        return None, f"cannot load a keyring backend: {exc.__class__.__name__}: {exc}"[:300]
    from keyring.backends.chainer import ChainerBackend

    if isinstance(chosen, ChainerBackend):
        chained = list(chosen.backends)
        if not chained:
            return None, f"{_backend_name(chosen)} chains no backends"
        refusals = []
        for kr in chained:
            why = _refused(kr)
            if why is None:
                return kr, (f"{_backend_name(kr)} (priority {getattr(kr, 'priority', '?')}, "
                            f"first usable of {_backend_name(chosen)})")
            refusals.append(why)
        return None, "; ".join(refusals)
    why = _refused(chosen)
    if why is not None:
        return None, why
    try:
        priority: object = chosen.priority
    except Exception:  # a backend named in the configuration but not viable here
        priority = "?"
    return chosen, f"{_backend_name(chosen)} (priority {priority})"


def keyring_usable() -> tuple[bool, str]:
    """(True, which backend) or (False, why not): is there a keyring to keep secrets in?"""
    backend, text = find_keyring()
    return backend is not None, text


def usable_keyring() -> KeyringBackend:
    """The keyring backend to use; BackendUnavailable (exit 4) saying why there is none,
    or that it stopped answering earlier in this run."""
    if _stalled is not None:
        raise BackendUnavailable(_stalled, hint=STALLED_HINT)
    backend, text = find_keyring()
    if backend is None:
        raise BackendUnavailable(f"no usable OS keyring on this machine ({text})",
                                 hint=NO_KEYRING_HINT)
    return backend


# Keyrings keep text. Valid UTF-8 without NUL is kept as that text (what every credhelper
# version wrote: entries, state and MSAL caches stay readable both ways); other bytes, and
# text that starts with the marker, as the marker and base64.
_MARKER = "credhelper-base64:"


def _to_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
        if "\0" not in text and not text.startswith(_MARKER):
            return text
    except UnicodeDecodeError:
        pass
    import binascii

    return _MARKER + binascii.b2a_base64(data, newline=False).decode("ascii")


def _from_text(text: str) -> bytes:
    if text.startswith(_MARKER):
        import binascii

        body = text[len(_MARKER):]
        try:
            data = binascii.a2b_base64(body.encode("ascii"))
            if binascii.b2a_base64(data, newline=False).decode("ascii") == body:
                return data
        except (ValueError, UnicodeEncodeError):
            pass  # damaged: handed up as stored, for the layer above to refuse
    return text.encode("utf-8", "surrogatepass")


class _NothingThere(Exception):
    """keyring's PasswordDeleteError: nothing stored under that name."""


def bounded(who: str, call: Callable[[], T], deadline: float | None,
            may_prompt: bool = False) -> T:
    """``call()``, given up on at ``deadline`` (time.monotonic()) with BackendUnavailable
    (exit 4) "``who`` did not answer within ...", and at most KEYRING_PATIENCE unless it
    may show a person a dialog.

    The worker thread of a call given up on is abandoned (it holds nothing the run needs;
    the process exits without it) and every later call in this process fails at once:
    the keyring that froze has not come back within this run's time."""
    global _stalled
    if _stalled is not None:
        raise BackendUnavailable(_stalled, hint=STALLED_HINT)
    left = (KEYRING_PATIENCE if deadline is None
            else max(deadline - time.monotonic(), KEYRING_FLOOR))
    wait = left if may_prompt else min(left, KEYRING_PATIENCE)
    import threading

    result: list[T] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # handed to the caller's thread below
            failed.append(exc)

    worker = threading.Thread(target=work, name="keyring", daemon=True)
    worker.start()
    worker.join(wait)
    if worker.is_alive():
        _stalled = f"{who} did not answer within {wait:.1f}s"
        raise BackendUnavailable(_stalled, hint=STALLED_HINT)
    if failed:
        raise failed[0]
    return result[0]


def refuse_prompt(kr: KeyringBackend) -> None:
    """LoginRequired (exit 3) when using ``kr`` now would show a dialog: an unlock
    prompt for a locked collection, or a create-keyring prompt where there is no default
    collection. For runs that may not ask a person.

    The Secret Service is the keyring whose calls prompt on their own (keyring's backend
    unlocks the collection before every call); the check asks for the collection without
    unlocking or creating it. Other backends are used as they are."""
    if not _backend_name(kr).startswith("keyring.backends.SecretService."):
        return
    from contextlib import closing

    import secretstorage
    from secretstorage.exceptions import ItemNotFoundException

    try:
        with closing(secretstorage.dbus_init()) as bus:
            try:
                path = getattr(kr, "preferred_collection", None)
                collection = (secretstorage.Collection(bus, path) if path
                              else secretstorage.Collection(bus))
            except ItemNotFoundException:
                raise LoginRequired("the keyring has no default collection, and creating "
                                    "one asks a person", hint=LOCKED_HINT) from None
            locked = collection.is_locked()
    except LoginRequired:
        raise
    except Exception as exc:  # D-Bus errors arrive as many types
        raise BackendUnavailable(f"cannot reach the keyring: {exc.__class__.__name__}",
                                 hint=NO_KEYRING_HINT) from None
    if locked:
        raise LoginRequired("the keyring is locked, and this run may not ask to unlock it",
                            hint=LOCKED_HINT)


class KeyringStore(SecretStore):
    """One keyring item per name: service ``service``, user name ``name``.

    ``deadline`` (time.monotonic()) bounds every call; ``may_prompt``: whether the
    keyring may show an unlock dialog (only a run a person is waiting at)."""

    mode = "keyring"

    def __init__(self, service: str = KEYRING_SERVICE, label: str | None = None,
                 deadline: float | None = None, may_prompt: bool = False):
        self.service = service
        self.label = label or f"the OS keyring (service {service})"
        self.deadline, self.may_prompt = deadline, may_prompt
        self._backend: KeyringBackend | None = None
        self._checked = False

    def where(self, name: str) -> str:
        return f"keyring:{self.service}/{check_name(name)}"

    def backend(self) -> KeyringBackend:
        if self._backend is None:
            self._backend = usable_keyring()
        return self._backend

    def _call(self, what: str, method: str, *args: str) -> str | None:
        check_name(args[0])
        try:
            from keyring.errors import KeyringLocked, PasswordDeleteError
        except ImportError:
            raise ConfigError('cache = "keyring" needs the keyring library, which is not '
                              "installed", hint="install it: pip install 'credhelper[keyring]'"
                              ', or set cache = "file"') from None

        def call() -> str | None:
            kr = self.backend()
            if not self.may_prompt and not self._checked:
                refuse_prompt(kr)
                self._checked = True
            result: str | None = getattr(kr, method)(self.service, *args)
            return result

        try:
            return bounded(self.label, call, self.deadline, self.may_prompt)
        except KeyringLocked:
            raise LoginRequired(f"{self.label} is locked", hint=LOCKED_HINT) from None
        except PasswordDeleteError:
            raise _NothingThere from None
        except (BackendUnavailable, LoginRequired):
            raise
        except Exception as exc:  # D-Bus and platform errors arrive as many types
            # The class name only: a backend's message may quote what it was handed.
            raise BackendUnavailable(
                f"cannot {what} {self.label}: {exc.__class__.__name__}") from None

    def load(self, name: str) -> bytes | None:
        text = self._call("read", "get_password", name)
        return None if text is None else _from_text(text)

    def save(self, name: str, data: bytes) -> None:
        self._call("write to", "set_password", name, _to_text(bytes(data)))

    def delete(self, name: str) -> bool:
        try:
            self._call("delete from", "delete_password", name)
        except _NothingThere:
            return False
        return True

    def names(self) -> None:
        return None  # no portable way to list a keyring's items

    def describe(self) -> str:
        ok, text = keyring_usable()
        return f"{self.label}: {text}" if ok else f"{self.label}: unusable: {text}"


def open_store(mode: str, directory: str, suffix: str = "",
               service: str = KEYRING_SERVICE, deadline: float | None = None,
               may_prompt: bool = False) -> SecretStore:
    """The store for a ``cache`` setting: "file", "keyring" or "none" (``deadline`` and
    ``may_prompt``: see KeyringStore)."""
    if mode == "file":
        return FileStore(directory, suffix)
    if mode == "keyring":
        return KeyringStore(service, deadline=deadline, may_prompt=may_prompt)
    if mode == "none":
        return NoStore()
    raise ValueError(f"unknown store {mode!r}")
