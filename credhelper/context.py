"""Who is calling: may this run ask a person to sign in? (DESIGN §2, contexts)"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

CONTEXTS = ("interactive", "mid-session-refresh", "scheduled-task", "setup-test", "background")


def resolve(env: Mapping[str, str], stderr: TextIO) -> tuple[str, bool]:
    """(context name, interactive?). Only ``interactive`` may start a sign-in.

    An unknown value is treated as non-interactive: a newer app may add contexts, and
    guessing wrong must never leave a background refresh waiting for a person.
    """
    value = (env.get("CLAUDE_HELPER_CONTEXT") or "").strip()
    if value:
        return value, value == "interactive"
    if (env.get("CLAUDE_HELPER_MANUAL_RUN") or "").strip() == "1":
        return "setup-test", False
    tty = is_terminal(stderr)
    return ("terminal" if tty else "no terminal"), tty


def is_terminal(stream: object) -> bool:
    """Is ``stream`` a terminal? False for anything that cannot say (closed, a stand-in)."""
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False
