"""A tiny logger for --debug and ``log_file``: stderr and/or a private file, never stdout.

Not the ``logging`` module: this sits on the cache-hit path and must cost nothing when
off. Messages are written by our own code and never carry a secret by construction; as a
second line of defence every value registered with ``secret()`` is masked before writing.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from typing import TextIO

_secrets: set[str] = set()


class Log:
    def __init__(self, prog: str, stderr: TextIO | None = None, debug: bool = False,
                 log_file: str | None = None) -> None:
        self.prog = prog
        self.stderr = stderr if stderr is not None else sys.stderr
        self.debug_enabled = debug
        self.log_file = log_file

    def secret(self, value: str | None) -> None:
        """Remember a value that must never be written (masked as ***)."""
        if value and len(value) >= 4:
            _secrets.add(value)

    @staticmethod
    def redact(text: str) -> str:
        # Longest first: a short secret inside a longer one must not break its masking.
        for value in sorted(_secrets, key=len, reverse=True):
            if value in text:
                text = text.replace(value, "***")
        return text

    def _file(self, level: str, message: str) -> None:
        if not self.log_file:
            return
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {self.prog} {level} {message}\n"
        path = os.path.expanduser(self.log_file)
        try:
            # Non-blocking: a FIFO planted at the path must not hang the run (without a
            # reader its open fails at once); never through a symlink.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                         | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o600)
            try:
                if not _own_regular_file(fd):
                    raise OSError(f"{path} is not a regular file of this user")
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError as exc:
            self.log_file = None  # a broken log file must not break the helper: said once
            self._write(f"{self.prog}: warning: not logging to {path}: "
                        f"{exc.strerror or exc}")

    def debug(self, message: str) -> None:
        if not (self.debug_enabled or self.log_file):
            return
        message = self.redact(message)
        if self.debug_enabled:
            self._write(f"{self.prog}: debug: {message}")
        self._file("debug", message)

    def warning(self, message: str) -> None:
        message = self.redact(message)
        self._write(f"{self.prog}: warning: {message}")
        self._file("warning", message)

    def error(self, message: str, hint: str | None = None) -> None:
        message = self.redact(message)
        self._write(f"{self.prog}: error: {message}")
        self._file("error", message)
        if hint:
            self._write(f"hint: {self.redact(hint)}")

    def info(self, message: str) -> None:
        """A line for the person at the terminal (prompts, progress): stderr only."""
        self._write(self.redact(message))

    def _write(self, line: str) -> None:
        try:
            self.stderr.write(line + "\n")
            self.stderr.flush()
        except (OSError, ValueError):
            pass


def _own_regular_file(fd: int) -> bool:
    """Is ``fd`` a regular file owned by this user (made private if it was not)?"""
    import stat

    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return False
    if os.name == "posix":
        if st.st_uid != os.geteuid():
            return False
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o600)  # an existing log file left open to others
    return True
