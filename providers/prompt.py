"""Asking a person for a short answer (an MFA code) when no terminal is at hand.

When the app runs the helper, stdin and stderr are pipes nobody types into or reads, so
the question goes to a desktop input dialog (osascript on macOS, PowerShell on Windows,
zenity on Linux) and the answer comes back on the dialog process's stdout. Unlike the
notices of ``device_flow``, the helper waits for the dialog, within a timeout. The
question and the title (who is asking) travel as arguments or variables, never inside
script text. ``device_flow.Presenter.ask`` picks the terminal or this dialog.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

TITLE = "Sign in for Claude"


def _command(question: str, seconds: int, env,
             title: str) -> tuple[list[str], dict | None] | None:
    """The dialog command and its environment, or None when there is no dialog tool."""
    if sys.platform == "darwin":
        if not shutil.which("osascript"):
            return None
        ask = (f'text returned of (display dialog (item 2 of argv) default answer "" '
               f'with hidden answer with title (item 1 of argv) giving up after {seconds})')
        return ["osascript", "-e", "on run argv", "-e", ask, "-e", "end run", title,
                question], None
    if os.name == "nt":
        command = ("Add-Type -AssemblyName Microsoft.VisualBasic; "
                   "[Microsoft.VisualBasic.Interaction]::InputBox("
                   "$env:CREDHELPER_PROMPT, $env:CREDHELPER_TITLE)")
        return (["powershell", "-NoProfile", "-NonInteractive", "-Command", command],
                {**env, "CREDHELPER_PROMPT": question, "CREDHELPER_TITLE": title})
    # zenity without a display fails the way a cancel does: call that "no dialog".
    zenity = shutil.which("zenity", path=env.get("PATH"))
    if zenity and (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return [zenity, "--entry", "--hide-text", f"--title={title}",
                f"--text={html.escape(question)}", f"--timeout={seconds}"], None  # Pango markup
    return None


def ask(question: str, seconds: float, env, title: str = TITLE) -> str | None:
    """What the person typed into a dialog ("" if they cancelled or did not answer within
    ``seconds``), or None when this desktop has no dialog tool. ``title`` says who is
    asking (``device_flow.Presenter.asking``)."""
    seconds = max(1, int(seconds))
    found = _command(question, seconds, env, title)
    if found is None:
        return None
    argv, child_env = found
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    try:
        # The tools' own timeouts close the dialog; ours is the backstop (PowerShell has none).
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=child_env or dict(env),
                              timeout=seconds + 2, **kwargs)
    except subprocess.TimeoutExpired:
        return ""
    except OSError:
        return None
    if done.returncode != 0:  # cancelled, timed out (zenity: 5), or closed
        return ""
    return done.stdout.decode("utf-8", "replace").strip()
