"""The entry points' dispatch: a plain run prints a credential, anything else is click.

``credhelper-<name>`` with no arguments (or only ``--debug`` / ``--force-refresh``) and
``credhelper get --provider NAME`` go straight to ``helper.get_and_print`` without
importing click; every other command line goes to ``cli``. Both take argv, environment,
streams and a clock as parameters, so the contract is testable in-process. Both start by
hardening the process (``guard.protect_process``): they are what a console script runs.
"""

from __future__ import annotations

import sys
import time

from credhelper.guard import not_dumpable, protect_process
from credhelper.helper import get_and_print

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import TextIO

FLAGS = ("--debug", "--force-refresh")  # what a plain run accepts; the rest is click


def helper_main(provider: str, argv: Sequence[str] | None = None,
                env: Mapping[str, str] | None = None, stdin: TextIO | None = None,
                stdout: TextIO | None = None, stderr: TextIO | None = None,
                clock: Callable[[], float] = time.time) -> int:
    """``credhelper-<provider>``: no arguments (or only --debug / --force-refresh) prints
    a credential."""
    started = time.monotonic()  # the app's clock started when it ran us: count from here
    protect_process()
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = f"credhelper-{provider}"
    if len(set(argv)) == len(argv) and all(arg in FLAGS for arg in argv):
        return get_and_print(prog, provider, "--debug" in argv, env, stdin, stdout, stderr,
                             clock, force="--force-refresh" in argv, started=started)
    not_dumpable()  # login, store, status: secrets pass through, and click costs far more
    from credhelper import cli

    return cli.backend_main(provider, argv, env=env, stdout=stdout, stderr=stderr, clock=clock)


def umbrella_main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
                  stdin: TextIO | None = None, stdout: TextIO | None = None,
                  stderr: TextIO | None = None, clock: Callable[[], float] = time.time) -> int:
    """``credhelper``: ``get --provider NAME`` takes the hot path too; the rest is click."""
    started = time.monotonic()
    protect_process()
    argv = sys.argv[1:] if argv is None else list(argv)
    parsed = _parse_get(argv)
    if parsed is not None:
        provider, flags = parsed
        return get_and_print("credhelper", provider, "--debug" in flags, env, stdin, stdout,
                             stderr, clock, force="--force-refresh" in flags, started=started)
    not_dumpable()
    from credhelper import cli

    return cli.umbrella_main(argv, env=env, stdout=stdout, stderr=stderr, clock=clock)


def _parse_get(argv: list[str]) -> tuple[str, set[str]] | None:
    """``get --provider NAME [--debug] [--force-refresh]`` in any order; anything else
    (None) goes to click."""
    if not argv or argv[0] != "get":
        return None
    rest = argv[1:]
    provider: str | None = None
    flags: set[str] = set()
    while rest:
        arg = rest.pop(0)
        if arg in FLAGS and arg not in flags:
            flags.add(arg)
        elif arg in ("--provider", "-p") and rest and provider is None:
            provider = rest.pop(0)
        elif arg.startswith("--provider=") and provider is None:
            provider = arg.split("=", 1)[1]
        else:
            return None
    if not provider or not provider.replace("-", "").replace("_", "").isalnum():
        return None
    return provider, flags
