"""What every backend with people shares: the presenter (``Presenter``: how a sign-in
is shown to a person, on the terminal or the desktop), the OAuth error codes mapped to
the contract's exits, and a device-code sign-in that outlives a run
(``PendingSignIn``). Their HTTP session, retries and network failures are
``credhelper.net``'s, as every backend's.

Showing a sign-in: on a terminal, lines on stderr. When the app runs the helper, stderr
is captured and nobody reads it, so the browser opens (at the verification page, or the
sign-in page) and a desktop notification or dialog says who is asking and what to do
(osascript on macOS, PowerShell on Windows, notify-send or zenity on Linux), each
started without waiting: the helper keeps polling or listening while the person signs in.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

from credhelper.errors import AccessDenied, BackendUnavailable, ConfigError, LoginRequired

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


def present(request, prompt: Prompt, provider=None) -> str:
    """Show a device code to the person; returns how ("terminal" or "desktop").
    The first interface, kept: the same as ``Presenter.of(request, provider).code(prompt)``."""
    return Presenter.of(request, provider).code(prompt)


class Presenter:
    """The one way every backend shows a sign-in to a person.

    Stable interface (the oidc, azure, aws and vault backends call it)::

        shown = Presenter.of(request, provider)  # provider: display_name, browser_command
        shown.asking                # who asks: "credhelper-oidc for Acme gateway"
        shown.can_open_browser()    # a browser can be opened here (else: paste mode);
                                    # ConfigError when browser_command cannot be started
        shown.code(prompt)          # a device code (Prompt)            -> "terminal" | "desktop"
        shown.browser(url, where)   # a browser sign-in at ``where``    -> "terminal" | "desktop"
        shown.browser(url, where, paste=True)  # no browser: the address to open elsewhere
        shown.notice(text)          # "approve the push on your phone"  -> "terminal" | "desktop"
        shown.ask(question)         # a short secret (an MFA code): str, "" if none given,
                                    # None when there is neither a terminal nor a dialog

    On a terminal (stderr is one) all of it is lines on stderr. Otherwise nobody reads
    stderr (the app keeps it for its log): the browser opens, a desktop notification says
    who is asking and what to do (osascript on macOS, a toast or balloon through
    PowerShell on Windows, notify-send or zenity on Linux), and one line on stderr says
    the same for the app's log. Only ``ask`` waits for the person; the rest starts the
    desktop tools and returns.
    """

    def __init__(self, request, gateway: str | None = None,
                 browser_command: str | None = None) -> None:
        self.request, self.env = request, request.env
        self.browser_command = browser_command
        prog = getattr(request.log, "prog", None) or "credhelper"
        self.asking = f"{prog} for {gateway}" if gateway else prog

    @classmethod
    def of(cls, request, provider=None) -> Presenter:
        config = provider.config if provider is not None else None
        return cls(request, gateway_name(config),
                   config.get("browser_command") if config is not None else None)

    def can_open_browser(self) -> bool:
        if self.browser_command:
            argv = split_command(self.browser_command)
            if _which(argv[0], self.env) is None:
                raise ConfigError(f"browser_command: {_short(argv[0])} was not found",
                                  hint="give the browser's full path, or unset browser_command")
            return True
        return has_browser(self.env)

    def code(self, prompt: Prompt) -> str:
        log = self.request.log
        log.info(f"{self.asking}: {prompt.text()}")
        if self.request.stderr_is_tty:
            if prompt.verification_uri_complete:
                log.info(f"(or open {prompt.verification_uri_complete})")
            log.info("waiting for the sign-in to complete...")
            return "terminal"
        opened = open_browser(prompt.verification_uri_complete or prompt.verification_uri,
                              self.env, self.browser_command)
        shown = notify(f"{prompt.text()}.", self.env, title=self.asking)
        log.debug(f"no terminal: browser {'opened with ' + opened if opened else 'not opened'}, "
                  f"code shown with {shown or 'nothing (no notifier found)'}")
        return "desktop"

    def browser(self, url: str, where: str, paste: bool = False) -> str:
        log = self.request.log
        if paste:
            log.info(f"{self.asking}: to sign in at {where}, open this address in a browser "
                     f"on any machine:\n\n{url}\n\nthen paste here the address the browser "
                     "ends on (its page may fail to load), or the code in it:")
            return "terminal"
        opened = open_browser(url, self.env, self.browser_command)
        if self.request.stderr_is_tty:
            log.info(f"{self.asking}: sign in at {where} in your browser"
                     + ("" if opened else " (no browser could be opened)")
                     + f"; if it did not open, visit:\n{url}")
            return "terminal"
        shown = notice(self.asking, f"Sign in at {where} in your browser"
                       + (" (a window has opened)." if opened else "."), self.env)
        log.info(f"{self.request.log.prog}: waiting for a sign-in at {where} in the browser "
                 f"({'opened with ' + opened if opened else 'not opened'}; notification: "
                 f"{shown or 'none shown'}); if it did not open, visit: {url}")
        return "desktop"

    def notice(self, text: str) -> str:
        if self.request.stderr_is_tty:
            self.request.log.info(f"{self.asking}: {text}")
            return "terminal"
        shown = notice(self.asking, text, self.env)
        self.request.log.info(f"{self.request.log.prog}: {text} "
                              f"(notification: {shown or 'none shown'})")
        return "desktop"

    def ask(self, question: str) -> str | None:
        if self.request.stdin_is_tty:
            import getpass  # prompts on the terminal (/dev/tty), never on stdout

            try:
                return getpass.getpass(f"{self.asking}: {question}: ")
            except (EOFError, OSError):
                return ""
        from .prompt import ask

        return ask(question, self.request.login_deadline - self.request.monotonic() - 2,
                   self.env, title=self.asking)


def gateway_name(config) -> str | None:
    """Who the person signs in for: ``display_name``, else the host of the gateway the app
    is managed to use (its inferenceGatewayBaseUrl on macOS and Windows), else None."""
    name = config.get("display_name") if config is not None else None
    if name:
        return _short(name)
    from credhelper import managed

    found = managed.app_values(("inferenceGatewayBaseUrl",)).get("inferenceGatewayBaseUrl")
    if found and isinstance(found[0], str):
        try:
            return urlsplit(found[0]).hostname or None
        except ValueError:
            return None
    return None


def _which(tool: str, env) -> str | None:
    """``tool``'s path on the run's PATH (a path is taken as it is), or None."""
    return shutil.which(tool, path=env.get("PATH"))


def _spawn(argv: list[str], env) -> bool:
    """Start a desktop helper (found on the run's PATH) without waiting for it and
    without a console of its own."""
    found = _which(argv[0], env)
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


def split_command(command: str) -> list[str]:
    """``browser_command`` as an argument list, split like a shell command line (on
    Windows, backslashes are kept and quotes only group)."""
    import shlex

    try:
        if os.name == "nt":
            argv = [a[1:-1] if len(a) > 1 and a[0] == a[-1] == '"' else a
                    for a in shlex.split(command, posix=False)]
        else:
            argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"browser_command: {exc}") from None
    if not argv:
        raise ConfigError("browser_command is empty", hint="unset it for the system's browser")
    return argv


PROC_VERSION = "/proc/version"  # a module attribute, so that tests can fake WSL


def is_wsl(env) -> bool:
    """Linux inside WSL: the browser to open is Windows'."""
    if not sys.platform.startswith("linux"):
        return False
    if env.get("WSL_DISTRO_NAME"):
        return True
    try:
        with open(PROC_VERSION, encoding="utf-8", errors="replace") as f:
            return "microsoft" in f.read().lower()
    except OSError:
        return False


def has_browser(env) -> bool:
    """Can the system's browser be opened for the person at this machine? (Not over SSH,
    nor on a Linux without a desktop.)"""
    if sys.platform == "darwin" or os.name == "nt":
        return "SSH_CONNECTION" not in env
    if is_wsl(env) and any(_which(t, env) for t in ("wslview", "cmd.exe")):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) and any(
        _which(t, env) for t in ("xdg-open", "gio"))


def open_browser(url: str, env, command: str | None = None) -> str | None:
    """Open ``url`` in a browser without waiting; the tool used, or None. ``command``
    (browser_command) gets the address as its last argument; in WSL, the Windows browser
    opens (wslview, else cmd.exe's start)."""
    if urlsplit(url).scheme not in ("https", "http"):  # never hand other schemes to the OS
        return None
    if command:
        argv = split_command(command)
        return argv[0] if _spawn([*argv, url], env) else None
    if is_wsl(env):
        if _spawn(["wslview", url], env):
            return "wslview"
        # cmd.exe parses its command line: & | < > ( ) ^ in the address are escaped.
        escaped = "".join("^" + c if c in "&|<>()^" else c for c in url)
        if _spawn(["cmd.exe", "/c", "start", escaped], env):
            return "cmd.exe"
    if sys.platform == "darwin":
        return "open" if _spawn(["open", url], env) else None
    if os.name == "nt":
        try:
            os.startfile(url)  # type: ignore[attr-defined]
            return "startfile"
        except OSError:
            return None
    for tool in (["xdg-open"], ["gio", "open"]):
        if _spawn(tool + [url], env):
            return tool[0]
    return None


def notify(message: str, env, title: str = TITLE) -> str | None:
    """Show ``message`` (a device code) in a dialog or lasting notification; the name of
    the tool used, or None.

    The message and title travel as arguments or variables, never inside script text, so
    a code, URL or name can never be read as a command."""
    if sys.platform == "darwin":
        script = ['-e', 'on run argv',
                  '-e', 'display dialog (item 2 of argv) with title (item 1 of argv) '
                        'buttons {"OK"} default button "OK" giving up after 300',
                  '-e', 'end run']
        return "osascript" if _spawn(["osascript", *script, title, message], env) else None
    if os.name == "nt":
        command = ("Add-Type -AssemblyName PresentationFramework; "
                   "[System.Windows.MessageBox]::Show("
                   "$env:CREDHELPER_PROMPT, $env:CREDHELPER_TITLE) | Out-Null")
        return "powershell" if _spawn(["powershell", "-NoProfile", "-NonInteractive",
                                       "-Command", command],
                                      {**env, "CREDHELPER_PROMPT": message,
                                       "CREDHELPER_TITLE": title}) else None
    if _spawn(["notify-send", "--app-name=credhelper", "--urgency=critical", title, message],
              env):
        return "notify-send"
    if _spawn(["zenity", "--info", f"--title={title}", f"--text={message}", "--no-markup"], env):
        return "zenity"
    return None


# Windows: a toast through the WinRT API (no module to install), shown as PowerShell's;
# where that is unavailable (Windows Server, older builds), a balloon from a tray icon.
WINDOWS_NOTICE = (r"""
$t = $env:CREDHELPER_TITLE; $m = $env:CREDHELPER_PROMPT
try {
  $null = [Windows.UI.Notifications.ToastNotificationManager,"""
                  r""" Windows.UI.Notifications, ContentType = WindowsRuntime]
  $kind = [Windows.UI.Notifications.ToastTemplateType]::ToastText02
  $x = [Windows.UI.Notifications.ToastNotificationManager]::GetTemplateContent($kind)
  $n = $x.GetElementsByTagName('text')
  $null = $n.Item(0).AppendChild($x.CreateTextNode($t))
  $null = $n.Item(1).AppendChild($x.CreateTextNode($m))
  $app = '{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\WindowsPowerShell\v1.0\powershell.exe'
  $toast = [Windows.UI.Notifications.ToastNotification]::new($x)
  [Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier($app).Show($toast)
} catch {
  Add-Type -AssemblyName System.Windows.Forms, System.Drawing
  $i = New-Object System.Windows.Forms.NotifyIcon
  $i.Icon = [System.Drawing.SystemIcons]::Information
  $i.BalloonTipTitle = $t; $i.BalloonTipText = $m; $i.Visible = $true
  $i.ShowBalloonTip(20000); Start-Sleep -Seconds 20; $i.Dispose()
}
""")


def notice(title: str, message: str, env) -> str | None:
    """A passing desktop notification (a browser sign-in is under way, approve a push);
    the name of the tool used, or None. Text travels as arguments or variables only."""
    title, message = title[:63], message[:250]  # the Windows balloon's limits
    if sys.platform == "darwin":
        script = ['-e', 'on run argv',
                  '-e', 'display notification (item 2 of argv) with title (item 1 of argv)',
                  '-e', 'end run']
        return "osascript" if _spawn(["osascript", *script, title, message], env) else None
    if os.name == "nt":
        return "powershell" if _spawn(["powershell", "-NoProfile", "-NonInteractive",
                                       "-Command", WINDOWS_NOTICE],
                                      {**env, "CREDHELPER_PROMPT": message,
                                       "CREDHELPER_TITLE": title}) else None
    if _spawn(["notify-send", "--app-name=credhelper", title, message], env):
        return "notify-send"
    if _spawn(["zenity", "--notification", f"--text={title}: {message}"], env):
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
    return Lock(directory, provider, f"state-{digest}", request.deadline, request.log,
                what=f"the {provider} sign-in state")


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
