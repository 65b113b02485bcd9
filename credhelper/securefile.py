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
        make_dirs(path)
        check_private_dir(path)


def make_dirs(path: str) -> None:
    """``mkdir -p`` where every directory made here is 0700 whatever the umask (with
    umask 000 ``os.makedirs`` made ``~/.cache`` 0777; its ``mode`` is masked by the umask,
    so each new directory is chmod-ed). Directories that exist are left as they are."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # another process made it: its mode is its maker's business
        if POSIX:
            os.chmod(directory, 0o700)


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


TMP_PREFIX = ".tmp-"  # then the writer's process id, "-" and 12 hex digits
STALE_TMP = 60.0  # seconds: a temporary this old is no concurrent writer's
_swept: set[str] = set()  # directories swept by this process


def write_private(path: str, data: bytes) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``data``; the first write of
    a process to a directory also removes stale temporaries there."""
    directory = os.path.dirname(path)
    if directory not in _swept:
        _swept.add(directory)
        remove_temporaries(directory, STALE_TMP)
    tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}")
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


def _temporary(name: str) -> bool:
    """Is ``name`` one of write_private's temporary files?"""
    if not name.startswith(TMP_PREFIX):
        return False
    pid, _, suffix = name[len(TMP_PREFIX):].partition("-")
    return (pid.isdigit() and len(suffix) == 12
            and all(c in "0123456789abcdef" for c in suffix))


def remove_temporaries(directory: str, older_than: float = 0.0) -> int:
    """Remove write_private's temporaries in ``directory`` last written more than
    ``older_than`` seconds ago (a run killed between write and rename leaves its secret
    there); a younger one may be a concurrent writer's. How many were removed; a
    directory that cannot be listed has none to remove."""
    import time

    try:
        names = [n for n in os.listdir(directory) if _temporary(n)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        path = os.path.join(directory, name)
        try:
            # Either way: a clock set back makes an old temporary look young.
            if older_than <= 0 or abs(time.time() - os.lstat(path).st_mtime) > older_than:
                os.unlink(path)
                removed += 1
        except OSError:
            pass  # gone already, or not ours to remove: the next sweep sees it again
    return removed


def remove(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
