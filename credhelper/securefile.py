"""Private files: refuse what others could read or swap, write atomically.

Cache entries and the configuration snapshot hold credentials, so every read checks that
the directory and the file are ours alone, and every write goes to a private temporary
file that is renamed over the old one (a reader sees the old file or the new, never half).

POSIX checks (owner, mode, symlink) run where the platform has them. On Windows there are
no POSIX modes: the per-user profile folders' ACLs protect the files, and only the symlink
(reparse point) check applies.
"""

from __future__ import annotations

import os
import stat

from credhelper.errors import CacheError

POSIX = os.name == "posix"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted as an entry must not hang a run


def _euid() -> int | None:
    geteuid = getattr(os, "geteuid", None)
    return geteuid() if geteuid else None


def _check(path: str, st: os.stat_result, kind: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise CacheError(
            f"refusing {kind} {path}: it is a symbolic link",
            hint="remove the link; credhelper creates the real one itself",
        )
    if not POSIX:
        return
    uid = _euid()
    if uid is not None and st.st_uid != uid:
        raise CacheError(
            f"refusing {kind} {path}: owned by uid {st.st_uid}, not by you (uid {uid})",
            hint="remove it, or set CREDHELPER_CACHE_DIR to a directory of your own",
        )
    wanted = 0o700 if kind == "directory" else 0o600
    if st.st_mode & 0o077:
        raise CacheError(
            f"refusing {kind} {path}: mode {stat.S_IMODE(st.st_mode):04o} lets others in",
            hint=f"chmod {wanted:o} {path}",
        )


def check_private_dir(path: str) -> bool:
    """True when ``path`` is a private directory of ours; False when it does not exist."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        raise CacheError(f"refusing directory {path}: it is not a directory")
    _check(path, st, "directory")
    return True


def ensure_private_dir(path: str) -> None:
    """Create ``path`` as a 0700 directory if needed, then check it."""
    if not check_private_dir(path):
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass  # another process won the race; the check below still applies
        check_private_dir(path)


def read_private(path: str) -> bytes | None:
    """The bytes of a private file, or None when it does not exist."""
    if not POSIX:
        try:
            if os.path.islink(path):
                _check(path, os.lstat(path), "file")
        except FileNotFoundError:
            return None
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if os.path.islink(path):
            _check(path, os.lstat(path), "file")
        raise CacheError(f"cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CacheError(f"refusing file {path}: it is not a regular file")
        _check(path, st, "file")
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def write_private(path: str, data: bytes) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``data``."""
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
