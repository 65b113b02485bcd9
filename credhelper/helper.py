"""One credential run, top to bottom: the hot path (``hotpath.hit``: a fresh cache entry
under an unchanged configuration snapshot), else the full path (``fullpath.get``:
configuration, cache, lock, fetch, store), printed through the stdout guard, with every
outcome mapped to an exit code by ``guard.guarded``."""

from __future__ import annotations

import os
import sys
import time

from credhelper.guard import Redacting, StdoutGuard, guarded, not_dumpable
from credhelper.hotpath import hit
from credhelper.log import Log

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import TextIO


def get_and_print(prog: str, provider: str, debug: bool, env: Mapping[str, str] | None = None,
                  stdin: TextIO | None = None, stdout: TextIO | None = None,
                  stderr: TextIO | None = None, clock: Callable[[], float] = time.time,
                  force: bool = False, started: float | None = None) -> int:
    env = os.environ if env is None else env
    stderr = sys.stderr if stderr is None else stderr
    started = time.monotonic() if started is None else started
    log = Log(prog, stderr, debug)
    force = force or forced_by_context(env)
    with StdoutGuard(stdout, Redacting(stderr, log)) as out:
        return guarded(log, debug, lambda: out.write(
            _get_text(provider, env, stdin, stderr, clock, log, force, started)))


def forced_by_context(env: Mapping[str, str]) -> bool:
    """The app runs us in ``mid-session-refresh`` when the credential it holds has expired
    or was refused: serving the cached entry would hand the same one back."""
    return (env.get("CLAUDE_HELPER_CONTEXT") or "").strip() == "mid-session-refresh"


def _get_text(provider: str, env: Mapping[str, str], stdin: TextIO | None, stderr: TextIO,
              clock: Callable[[], float], log: Log, force: bool, started: float) -> str:
    if provider == "chain":  # runs each of its backends through this same path, in order
        from credhelper.providers.chain import get_text

        chosen: str = get_text(env, stdin, stderr, clock, log, force, started)
        return chosen
    text = hit(provider, env, clock, log, force, started)
    if text is not None:
        return text
    not_dumpable()  # the full path handles backend secrets (guard.not_dumpable)
    from credhelper.fullpath import get

    return get(provider, env, stdin, stderr, clock, log, force, started)
