"""What stands between a run and the caller: only the credential reaches stdout, and every
outcome becomes one exit code of the contract with one clear line on stderr."""

from __future__ import annotations

import os
import sys

from credhelper import errors
from credhelper.errors import CredhelperError
from credhelper.log import Log

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal, TextIO


def guarded(log: Log, debug: bool, action: Callable[[], object]) -> int:
    """Run ``action``; map every outcome to an exit code and one clear stderr line."""
    try:
        action()
        return errors.OK
    except CredhelperError as exc:
        log.error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return errors.INTERNAL
    except BrokenPipeError:
        return errors.INTERNAL  # the caller stopped reading; nothing useful to say
    except Exception as exc:  # a bug: say so without a traceback, unless --debug
        text = log.redact(str(exc))[:300]
        log.error(
            f"internal error (a bug): {exc.__class__.__name__}: {text}",
            hint="run again with --debug and report the output",
        )
        if debug:
            import traceback

            log.info(log.redact("".join(traceback.format_exc())))
        return errors.INTERNAL


class Redacting:
    """Where stray ``print`` output goes during a run: stderr, with secrets masked."""

    def __init__(self, stream: TextIO, log: Log) -> None:
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.stream.write(self.log.redact(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


class StdoutGuard:
    """Route everything but the credential away from stdout while a run is in progress.

    Libraries sometimes print. For the real process stdout the file descriptor itself is
    pointed at stderr, so even C-level writes cannot reach the caller; the credential is
    written to a saved duplicate of the original descriptor.
    """

    def __init__(self, stdout: TextIO | None, stderr: TextIO | Redacting) -> None:
        self.stdout, self.stderr = stdout, stderr
        self.saved_fd: int | None = None

    def __enter__(self) -> StdoutGuard:
        self.saved_sys_stdout = sys.stdout
        if self.stdout is None:
            try:
                sys.stdout.flush()
                self.saved_fd = os.dup(1)
            except (OSError, ValueError, AttributeError):
                self.saved_fd = None  # no usable stdout: nothing to guard, nothing printed
            else:
                _point_away(1)
        sys.stdout = self.stderr  # a Redacting: print() needs only write and flush
        return self

    def write(self, text: str) -> None:
        if self.saved_fd is not None:
            data = text.encode("utf-8")
            while data:
                data = data[os.write(self.saved_fd, data) :]
        else:
            out = self.stdout if self.stdout is not None else self.saved_sys_stdout
            out.write(text)
            out.flush()

    def __exit__(self, *exc: object) -> Literal[False]:
        sys.stdout = self.saved_sys_stdout
        if self.saved_fd is not None:
            os.dup2(self.saved_fd, 1)
            os.close(self.saved_fd)
        return False


def _point_away(fd: int) -> None:
    """Point ``fd`` at stderr, or at the null device when stderr is closed or unusable:
    never leave it on the caller's stdout. (An error here ends the run before anything
    is printed.)"""
    try:
        os.dup2(2, fd)
    except OSError:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)


# ---------------------------------------------------------------- the process


def protect_process() -> None:
    """What every run does first, before it opens a file.

    A standard descriptor the caller left closed (``2>&-``) is filled with the null device
    (and its Python stream made usable): the next file the run opened would take its
    number, so that an error line, or the stdout guard's redirect, would land in a cache
    or log file. And no core file: a crash must not write the credential, or a backend
    secret, to disk (``resource`` is a small C module; Windows has none, and no core
    files)."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            null = os.open(os.devnull, os.O_RDONLY if mode == "r" else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if getattr(sys, name) is None:  # Python found the descriptor closed at start
                setattr(sys, name, open(fd, mode, encoding="utf-8", errors="backslashreplace",
                                        closefd=False))
        except OSError:
            pass  # no null device: the stdout guard still refuses to print anything else
    try:
        import resource
    except ImportError:
        return
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass


def not_dumpable() -> None:
    """Linux: the process becomes non-dumpable (PR_SET_DUMPABLE 0): no core dump whatever
    the limits or core_pattern say, and no other process of this user may ptrace it or
    read its memory and environment under /proc. Called where the run leaves the cache
    hit: importing ctypes costs ~1.5 ms, and a hit holds no more than the cache entry it
    read, which other processes of this user can read anyway."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))  # PR_SET_DUMPABLE, SUID_DUMP_DISABLE
    except (ImportError, OSError, AttributeError):
        pass  # hardening only: never a reason to fail the run
