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
                os.dup2(2, 1)
            except (OSError, ValueError, AttributeError):
                self.saved_fd = None
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
