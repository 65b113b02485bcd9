"""What the azure and oidc backends share: showing a device code to a person, the OAuth
error codes mapped to the contract's exits, and a sign-in that outlives a run. Their HTTP
session, retries and network failures are ``credhelper.net``'s, as every backend's.

Showing the code: on a terminal the code and URL go to stderr. When the app runs the
helper, stderr is captured and nobody reads it, so the verification page is opened in the
default browser and the code is shown in a desktop notification or dialog (osascript on
macOS, PowerShell on Windows, notify-send or zenity on Linux), each started without
waiting: the helper keeps polling while the person signs in.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from credhelper.errors import AccessDenied, BackendUnavailable, LoginRequired

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

TITLE = "Sign in for Claude"


@dataclass
class Prompt:
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None = None
    expires_in: float | None = None

    def text(self) -> str:
        return f"To sign in, open {self.verification_uri} and enter the code {self.user_code}"


def remember_token_secrets(request, token: dict) -> dict:
    """Register every token of an OAuth answer as a secret (masked in every log line)."""
    for name in ("access_token", "id_token", "refresh_token"):
        if isinstance(token.get(name), str):
            request.log.secret(token[name])
    return token


def present(request, prompt: Prompt) -> str:
    """Show the code to the person; returns how ("terminal" or "desktop")."""
    request.log.info(prompt.text())
    if request.stderr_is_tty:
        if prompt.verification_uri_complete:
            request.log.info(f"(or open {prompt.verification_uri_complete})")
        request.log.info("waiting for the sign-in to complete...")
        return "terminal"
    opened = open_browser(prompt.verification_uri_complete or prompt.verification_uri,
                          request.env)
    shown = notify(f"{prompt.text()}.", request.env)
    request.log.debug(f"no terminal: browser {'opened' if opened else 'not opened'}, "
                      f"code shown with {shown or 'nothing (no notifier found)'}")
    return "desktop"


def _spawn(argv: list[str], env) -> bool:
    """Start a desktop helper (found on the run's PATH) without waiting for it and
    without a console of its own."""
    found = shutil.which(argv[0], path=env.get("PATH"))
    if found is None:
        return False
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    else:
        kwargs["start_new_session"] = True
    try:
        subprocess.Popen([found, *argv[1:]], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(env),
                         **kwargs)
        return True
    except OSError:
        return False


def open_browser(url: str, env) -> bool:
    if urlsplit(url).scheme not in ("https", "http"):  # never hand other schemes to the OS
        return False
    if sys.platform == "darwin":
        return _spawn(["open", url], env)
    if os.name == "nt":
        try:
            os.startfile(url)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False
    return any(_spawn(tool + [url], env) for tool in (["xdg-open"], ["gio", "open"]))


def notify(message: str, env) -> str | None:
    """Show ``message`` in a dialog or notification; the name of the tool used, or None.

    The message travels as an argument or variable, never inside script text, so a code
    or URL can never be read as a command."""
    if sys.platform == "darwin":
        script = ['-e', 'on run argv',
                  '-e', f'display dialog (item 1 of argv) with title "{TITLE}" '
                        'buttons {"OK"} default button "OK" giving up after 300',
                  '-e', 'end run']
        return "osascript" if _spawn(["osascript", *script, message], env) else None
    if os.name == "nt":
        command = ("Add-Type -AssemblyName PresentationFramework; "
                   "[System.Windows.MessageBox]::Show("
                   f"$env:CREDHELPER_PROMPT, '{TITLE}') | Out-Null")
        return "powershell" if _spawn(["powershell", "-NoProfile", "-NonInteractive",
                                       "-Command", command],
                                      {**env, "CREDHELPER_PROMPT": message}) else None
    if _spawn(["notify-send", "--app-name=credhelper", "--urgency=critical", TITLE, message], env):
        return "notify-send"
    if _spawn(["zenity", "--info", f"--title={TITLE}", f"--text={message}", "--no-markup"], env):
        return "zenity"
    return None


# ---------------------------------------------------------------- OAuth errors

PENDING = ("authorization_pending", "slow_down")


def oauth_error(error: str | None, description: str | None, where: str, hint: str,
                during: str = "token"):
    """The contract's exception for an OAuth error answer (RFC 6749 §5.2, RFC 8628 §3.5).

    ``during`` is "device" (waiting for a person), "refresh" (silent renewal) or "token".
    """
    detail = f" ({_short(description)})" if description else ""
    if error == "access_denied":
        return AccessDenied(f"the sign-in at {where} was declined{detail}",
                            hint=f"{hint}, and approve the request")
    if error == "expired_token":
        return LoginRequired(f"the sign-in code expired before anyone used it at {where}",
                             hint=f"{hint}, and enter the code within its lifetime")
    if error == "invalid_grant" and during == "refresh":
        return LoginRequired(f"the saved sign-in for {where} has expired or was revoked", hint=hint)
    if error in ("interaction_required", "login_required", "consent_required"):
        return LoginRequired(f"{where} asks for a new sign-in{detail}", hint=hint)
    if error == "invalid_client":
        return AccessDenied(f"{where} refused the client{detail}",
                            hint="check client_id and client_secret")
    if error in ("server_error", "temporarily_unavailable"):
        return BackendUnavailable(f"{where} is unavailable{detail}")
    return AccessDenied(f"{where} refused the request: {error or 'error'}{detail}", hint=hint)


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 160 else text[:157] + "..."


def check_not_dead_on_arrival(issuer: str, sent_at: float | None, expires: float | None,
                              now: float) -> None:
    """A token alive when minted but expired when its answer arrived (at ``now``): the
    answer was slow, not the credentials wrong. Exit 4, so a still-valid cached token is
    served."""
    if expires is not None and sent_at is not None and sent_at < expires <= now:
        raise BackendUnavailable(
            f"{issuer} took {now - sent_at:.1f}s to answer, longer than the token lives "
            f"({expires - sent_at:.0f}s): it arrived expired",
            hint="check the network path to the provider (proxy, VPN), or ask for a longer "
            "token lifetime")


# ---------------------------------------------------------------- a sign-in that outlives a run

POLL_INTERVAL = (1.0, 60.0)  # seconds: a provider's interval is clamped to this
CODE_LIFETIME = (10.0, 3600.0)  # seconds: and its code's expires_in to this


def bounded(value, default: float, low: float, high: float) -> float:
    """A provider-sent number of seconds, clamped to [low, high]; ``default`` when it is
    missing or not a finite number (a NaN interval must not poll in a tight loop)."""
    if isinstance(value, bool):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return min(max(number, low), high) if math.isfinite(number) else default


def state_lock(request, provider: str, name: str):
    """A cross-process lock for the provider state ``name`` (a refresh token, MSAL's token
    cache), bounded by the run's deadline: hold it from reading the state to saving what
    replaces it. The core's lock is per cache key, and configurations that differ only in
    what they print (``token = "access"`` or ``"id"``, other scopes of one MSAL cache)
    share one refresh token under different keys: two of them spending it at once is a
    reuse, which a rotating provider answers by revoking the whole sign-in."""
    import hashlib

    from credhelper.cache import Lock

    directory = getattr(request.state, "directory", None)
    if directory is None:  # a state kept in memory (in-process tests): one process
        return _NoLock()
    digest = hashlib.sha256(name.encode()).hexdigest()[:24]
    return Lock(directory, provider, f"state-{digest}", request.deadline, request.log)


class _NoLock:
    def __enter__(self) -> _NoLock:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def check(self) -> None:
        pass


class StillPending(Exception):
    """Polling ended at the run's deadline while the person had not yet approved."""


class PendingSignIn:
    """A device authorization that a person may still be completing, kept between runs.

    The app kills a helper after its time budget, but a person may take longer to sign
    in. Rather than lose that sign-in (and show a new code next time), the run that
    started it saves the pending authorization (0600, or the keyring with
    ``cache = "keyring"``), exits 3 saying so, and the next run in any context polls the
    same authorization: it finishes silently once the person has approved it. Only what
    polling needs is kept (the device code, which is useless after its minutes of life and
    without the person's approval), and it is deleted as soon as the flow ends."""

    FIELDS = ("device_code", "user_code", "verification_uri")

    def __init__(self, request, name: str):
        self.request, self.name = request, "pending:" + name

    def load(self) -> dict | None:
        """The saved authorization while it can still be completed, else None."""
        doc = self.request.state.load(self.name)
        if doc is None:
            return None
        expires_at = doc.get("expires_at")
        usable = (all(isinstance(doc.get(f), str) and doc[f] for f in self.FIELDS)
                  and isinstance(expires_at, (int, float)) and not isinstance(expires_at, bool)
                  and math.isfinite(expires_at))  # NaN would never expire, nor print
        if not usable or doc["expires_at"] <= self.request.now():
            self.request.log.debug("the saved pending sign-in has expired or is damaged: "
                                   "forgetting it")
            self.clear()
            return None
        self.request.log.secret(doc["device_code"])
        return doc

    def save(self, doc: dict) -> None:
        self.request.state.save(self.name, doc)

    def clear(self) -> None:
        self.request.state.delete(self.name)

    @staticmethod
    def prompt(doc: dict) -> Prompt:
        return Prompt(doc["user_code"], doc["verification_uri"],
                      doc.get("verification_uri_complete"), None)

    def not_finished(self, doc: dict, where: str, hint: str):
        """The exit-3 error of a run whose sign-in is still waiting for the person."""
        left = max(0, int(doc["expires_at"] - self.request.now()))
        return LoginRequired(
            f"the sign-in at {where} is not finished yet: {self.prompt(doc).text()} "
            f"(the code stays valid {left}s more)",
            hint=f"finish it in the browser, then retry: the next run completes this "
                 f"sign-in without a new code ({hint} starts over)")
