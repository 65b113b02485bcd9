"""Console-script entry points: ``credhelper`` (the umbrella) and ``main``, which every
backend's script runs.

``credhelper-NAME = "credhelper.entry:main"`` is the whole of a backend's wiring: ``main``
reads NAME from the name the program was started by, and the same line registers the
backend (``credhelper/registry.py``). This module is on the cache-hit path: it imports
neither the registry nor any backend.
"""

from __future__ import annotations

import os
import sys

from credhelper.run import helper_main, umbrella_main

PREFIX = "credhelper-"


def credhelper() -> None:
    """``credhelper``: get, status, doctor, cache, mdm, test-gateway, version."""
    sys.exit(umbrella_main())


def main(provider: str | None = None) -> None:
    """``credhelper-NAME``: the backend NAME (a built binary passes its NAME)."""
    if provider is None:
        provider = program_provider(sys.argv[0])
    if provider is None:
        from credhelper.guard import protect_process
        from credhelper.log import Log

        protect_process()  # as helper_main would: stderr may have been left closed
        Log("credhelper", sys.stderr).error(
            f"cannot tell the backend from the program name {os.path.basename(sys.argv[0])!r}",
            hint="run it as credhelper-NAME (a link or copy may have another name), or "
                 "run `credhelper get --provider NAME`")
        sys.exit(2)
    sys.exit(helper_main(provider))


def program_provider(argv0: str) -> str | None:
    """NAME from the program ``credhelper-NAME`` (``.exe``, ``-script.py`` and similar
    endings dropped); a link or copy under another name is followed to its target."""
    for path in (argv0, os.path.realpath(argv0)):
        name = os.path.basename(path)
        if os.name == "nt":
            name = name.lower()
        for ending in ("-script.pyw", "-script.py", ".exe", ".pyw", ".py"):
            if name.endswith(ending):
                name = name[: -len(ending)]
                break
        provider = name[len(PREFIX):]
        if (name.startswith(PREFIX) and provider.isascii()
                and provider.replace("-", "").replace("_", "").isalnum()):
            return provider
    return None


if __name__ == "__main__":  # python -m credhelper.entry NAME [ARGS]: as credhelper-NAME
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.stderr.write("usage: python -m credhelper.entry NAME [ARGS]\n")
        sys.exit(2)
    main(sys.argv.pop(1))
