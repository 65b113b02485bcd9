"""credhelper-azure: an access (or ID) token from Microsoft Entra ID (Azure AD) via MSAL.

Silent first: MSAL's token cache (accounts, refresh tokens) is persisted in a protected
store between runs: the Keychain on macOS, a DPAPI-encrypted file on Windows, the Secret
Service (GNOME Keyring, KWallet) on Linux. Where none exists, a private 0600 file is used
only when ``token_cache = "file"`` says so. A person signs in only in the interactive
context or with ``credhelper-azure login``, in the browser (MSAL's interactive sign-in:
its own loopback listener on http://localhost, the browser opened through Python's
webbrowser module, or the OS broker with ``broker = true``) where a browser can open, else
with the device code; every other context gets a token silently or exits 3 at once.

``authority`` may be any Entra authority (sovereign clouds, B2C, CIAM) or, on another
host, any OpenID Connect issuer (MSAL's ``oidc_authority``). msal, msal-extensions and
requests are imported inside methods only.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from urllib.parse import urlsplit

from credhelper import jwt, net
from credhelper.errors import AccessDenied, BackendUnavailable, ConfigError, LoginRequired
from credhelper.provider import Credential, Provider, Setting
from credhelper.store import FileStore, KeyringStore, SecretStore, keyring_usable

from .device_flow import (
    CODE_LIFETIME,
    PENDING,
    POLL_INTERVAL,
    PendingSignIn,
    Presenter,
    bounded,
    check_not_dead_on_arrival,
    oauth_error,
    present,
    remember_token_secrets,
    state_lock,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

LOGIN_HINT = "run `credhelper-azure login`"
# Hosts MSAL treats as Entra authorities; any other host is a generic OpenID issuer.
ENTRA_HOSTS = ("login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
               "login.partner.microsoftonline.cn", "login.microsoftonline.de", "login.windows.net",
               "login.microsoft.com", "login.sts.microsoft.com")
ENTRA_SUFFIXES = (".b2clogin.com", ".ciamlogin.com")
RESERVED_SCOPES = {"openid", "profile", "offline_access"}  # MSAL adds them itself
SIGN_IN_AGAIN = ("interaction_required", "invalid_grant", "login_required", "consent_required")
KEYRING_SERVICE = "credhelper-azure"
MAX_CALL = 15.0  # one HTTP call never takes the whole deadline: leave time to report
FLOWS = ("auto", "browser", "device_code")
PROMPTS = ("login", "consent", "select_account")  # MSAL's msal.Prompt values that ask
# Seconds of a browser sign-in's budget kept for redeeming the code once it arrives, and
# the least worth opening a browser for.
AFTER_BROWSER = 5.0
MIN_BROWSER = 10.0


class AzureProvider(Provider):
    name = "azure"
    summary = "Microsoft Entra ID (Azure AD)"
    address_setting = "authority"
    ca_setting = "ca_cert"
    library = "msal"
    can_login = True
    # When the last POST was sent (time.time()): the earliest the token in its answer can
    # have been minted. MSAL counts expires_in from when the answer arrived instead.
    _sent_at: float | None = None
    settings = (
        Setting("tenant_id", default="organizations",
                help="directory (tenant) ID or domain; "
                     "organizations, common or consumers also work"),
        Setting("client_id", required=True, help="application (client) ID of the app registration"),
        Setting("scopes", "list", None,
                help="scopes of the gateway API, e.g. api://gateway/.default (a list, or one "
                     "space-separated string)"),
        Setting("authority", "url",
                help="default https://login.microsoftonline.com/TENANT_ID; sovereign clouds, "
                     "B2C, or any OpenID issuer"),
        Setting("token", "choice", "access", choices=("access", "id"), help="which token to print"),
        Setting("username", help="which signed-in account to use when several are cached"),
        Setting("token_cache", "choice", "protected", choices=("protected", "file"),
                credential=False,
                help="where MSAL's token cache lives: the OS's protected store, or (only when "
                     "none exists) a 0600 file in the cache directory"),
        Setting("ca_cert", "path", credential=False,
                help="CA certificate (PEM), trusted alone; default: the system CAs and "
                     "REQUESTS_CA_BUNDLE"),
        Setting("flow", "choice", "auto", choices=FLOWS, credential=False,
                help="how a person signs in: browser (MSAL's interactive sign-in, redirect to "
                     "http://localhost), device_code, or auto: browser where one can open "
                     "(macOS, Windows, WSL, a Linux desktop; not over SSH), else device_code"),
        Setting("prompt", "choice", None, choices=PROMPTS, credential=False,
                help="browser sign-in: the OpenID prompt to send (default none: the provider "
                     "decides; consent is what a generic OpenID issuer needs before it hands "
                     "out a refresh token)"),
        Setting("broker", "bool", False, credential=False,
                help="browser sign-in through the OS broker where MSAL supports one (WAM on "
                     "Windows, Company Portal on Apple Silicon Macs); needs msal[broker]; "
                     "untested by this project"),
    )

    # ------------------------------------------------------------ configuration

    def authority(self) -> tuple[str, bool]:
        """(authority URL, is it an Entra authority?)"""
        authority = self.config.get("authority") or (
            f"https://login.microsoftonline.com/{self.config['tenant_id']}")
        host = (urlsplit(authority).hostname or "").lower()
        return authority, host in ENTRA_HOSTS or host.endswith(ENTRA_SUFFIXES)

    def describe(self) -> str:
        return f"Azure AD {self.authority()[0]} (client {self.config['client_id']})"

    def _scopes(self) -> list[str]:
        scopes = [s for s in (self.config.get("scopes") or []) if s not in RESERVED_SCOPES]
        if not scopes and self.config["token"] == "access":
            raise ConfigError("missing setting [azure] scopes (the gateway API's scope, "
                              "e.g. api://gateway/.default)",
                              hint="set it in the config file or as CREDHELPER_AZURE_SCOPES")
        return scopes

    def _digest(self) -> str:
        material = f"{self.authority()[0]}\0{self.config['client_id']}"
        return hashlib.sha256(material.encode()).hexdigest()[:24]

    # ------------------------------------------------------------ the token cache

    def store(self, request) -> _TokenCache:
        """Where MSAL's cache is persisted; BackendUnavailable when nowhere safe.

        One secret, in a store of ``credhelper.store``'s shape (the credential cache's):
        ``token_cache = "file"``: a FileStore in the cache directory (azure-msal-DIGEST.bin,
        0600). Else the platform's protected store, and never a file in its place:

        - Windows: msal-extensions' DPAPI-encrypted file. The keyring library's store there,
          Credential Manager, caps an item at 2560 bytes, less than an MSAL cache holding
          access, refresh and ID tokens; DPAPI ties the file to the user's logon secret.
        - macOS: msal-extensions' Keychain item (service credhelper-azure, account DIGEST),
          the very item the keyring library would address, through code msal-extensions
          already ships: keyring is not in the azure extra, so not in its binary.
        - Linux: libsecret through PyGObject when the machine has it (sign-ins saved there
          stay readable), else the Secret Service through the keyring library (a
          KeyringStore, service credhelper-azure, user DIGEST) when ``keyring_usable()``.
        """
        digest, directory = self._digest(), request.state.directory
        if self.config["token_cache"] == "file":
            files = FileStore(directory, suffix=".bin")
            name = f"azure-msal-{digest}"
            return _TokenCache(files, name, f"private file {files.where(name)}")

        def location(name: str) -> str:  # msal-extensions' file, or its change signal
            return os.path.join(directory, f"azure-msal-{name}.bin")

        if sys.platform.startswith("win"):
            from msal_extensions import FilePersistenceWithDataProtection

            return _TokenCache(_PlatformStore(
                lambda n: FilePersistenceWithDataProtection(location(n)),
                f"DPAPI-encrypted file {location(digest)}"), digest)
        if sys.platform == "darwin":
            from msal_extensions import KeychainPersistence

            return _TokenCache(_PlatformStore(
                lambda n: KeychainPersistence(location(n), KEYRING_SERVICE, n),
                "the macOS Keychain"), digest)
        try:  # libsecret through PyGObject, when the machine has it
            from msal_extensions import LibsecretPersistence

            libsecret = _PlatformStore(
                lambda n: LibsecretPersistence(location(n), schema_name="credhelper.azure",
                                               attributes={"cache": n}),
                "the Secret Service (libsecret)")
            libsecret.persistence(digest)  # raises here when PyGObject or libsecret is missing
            return _TokenCache(libsecret, digest)
        except (ImportError, ValueError):
            pass
        usable, why = keyring_usable()
        if not usable:
            raise BackendUnavailable(
                f"no protected store for the Azure token cache on this machine ({why})",
                hint='run inside a desktop session with GNOME Keyring or KWallet, or set '
                     '[azure] token_cache = "file" to keep it in a private 0600 file',
            )
        # Bounded by the run's deadline; an unlock dialog only where a person waits.
        return _TokenCache(KeyringStore(
            KEYRING_SERVICE, "the Secret Service (keyring)",
            request.login_deadline if request.interactive else request.deadline,
            request.interactive), digest)

    def _load(self, request):
        import msal

        store = self.store(request)
        cache = msal.SerializableTokenCache()
        data = store.load()
        if data:
            try:
                cache.deserialize(data)
            except ValueError:
                request.log.warning("ignoring a damaged MSAL token cache: sign in again")
        return cache, store

    def _save(self, request, cache, store) -> None:
        if cache.has_state_changed:
            store.save(cache.serialize())
            cache.has_state_changed = False
            request.log.debug(f"saved the MSAL token cache to {store.label}")

    def _save_sign_in(self, request, cache, store, before: str) -> None:
        """Save what a sign-in (made without the lock) changed in MSAL's cache onto the
        cache as it is now, under the lock: another run may have renewed, and so rotated,
        a refresh token meanwhile, and writing back the copy read before the sign-in
        would bring the spent one back."""
        import json

        if not cache.has_state_changed:
            return
        mine, old = json.loads(cache.serialize()), json.loads(before)
        with self._cache_lock(request):
            try:
                now = json.loads(store.load() or "{}")
            except ValueError:
                now = {}
            if not isinstance(now, dict):
                now = {}
            for kind, items in mine.items():
                for key, item in items.items():
                    if old.get(kind, {}).get(key) != item:
                        section = now.get(kind)
                        now[kind] = section = section if isinstance(section, dict) else {}
                        section[key] = item
            store.save(json.dumps(now, indent=4))
        cache.has_state_changed = False
        request.log.debug(f"saved the MSAL token cache to {store.label}")

    def _http(self, request):
        """MSAL's http_client. MSAL applies its own ``timeout`` only to a session it makes
        itself, so each request here is bounded by what is left of the run's deadline
        (read when it is sent: a device code sign-in runs to the login deadline), and the
        send time of the last POST is noted: a fresh token's lifetime counts from there."""
        http = request.session(self.config.get("ca_cert"), overload=True)
        send = http.request
        self._active = request  # the request whose deadline bounds MSAL's calls now

        def bounded(method, url, *args, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = min(self._active.remaining(), MAX_CALL)
            if str(method).upper() == "POST":
                self._sent_at = self._active.now()
            return send(method, url, *args, **kwargs)

        http.request = bounded
        return http

    def _app(self, request, cache):
        import msal

        authority, entra = self.authority()
        kwargs = {"token_cache": cache, "http_client": self._http(request)}
        if entra:
            kwargs["authority"] = authority
        else:
            kwargs["oidc_authority"] = authority
        if self.config["broker"]:
            # MSAL's documented opt-in; it applies each only on its own platform (and only
            # to Entra authorities), and falls back to the browser where the broker does
            # not start. Without pymsalruntime it raises ImportError on Windows and macOS.
            kwargs.update(enable_broker_on_windows=True, enable_broker_on_mac=True)
        # The constructor fetches the discovery document (and, for Entra, instance metadata).
        try:
            return self._msal(request, "discovery", msal.PublicClientApplication,
                              self.config["client_id"], config_error=True, **kwargs)
        except ImportError as exc:
            raise ConfigError(f"[azure] broker = true: {exc}"[:300],
                              hint="install msal[broker], or set broker = false") from None

    def _msal(self, request, what: str, fn, *args, config_error: bool = False,
              once: bool = False, **kwargs):
        """One MSAL call, retried by the one rule of ``credhelper.net`` (429 and 5xx within
        the deadline, after the server's Retry-After when it sends one; a POST that got 500
        never); network and TLS failures become exit 4. ``once``: never retried (a browser
        sign-in: the person would be sent through the pages again)."""
        authority = self.authority()[0]
        retry = net.Retry(request)
        while True:
            try:
                return fn(*args, **kwargs)
            except net.Overloaded as exc:
                path = urlsplit(exc.response.url or "").path
                said = f"{authority} answered HTTP {exc.status} to {exc.method} {path} ({what})"
                if once:
                    raise BackendUnavailable(said) from None
                retry.after(exc, said)
            except Exception as exc:
                error = net.failure(exc, authority,
                                    ca_setting="[azure] ca_cert (or REQUESTS_CA_BUNDLE)",
                                    address_setting="[azure] authority")
                if error is not None:
                    raise error from None
                if not isinstance(exc, (ValueError, OverflowError)):
                    raise
                # MSAL's word for a malformed answer or authority (OverflowError: a number
                # it reads with int(), such as a device code's interval, is infinite)
                if config_error:
                    raise ConfigError(f"[azure] authority {authority}: {exc}"[:300]) from None
                raise AccessDenied(f"{what} failed: {exc}"[:300]) from None

    # ------------------------------------------------------------ the run

    def _cache_lock(self, request):
        """The lock of MSAL's token cache, held from reading it to writing it back: every
        configuration of one authority and client shares that cache and its refresh
        token (token = access or id, any scopes), whatever its cache key."""
        return state_lock(request, self.name, "msal:" + self._digest())

    def fetch(self, request) -> Credential:
        import msal

        scopes = self._scopes()
        # A device sign-in an earlier run started (and the person may have finished since)
        # is completed first, in any context; see device_flow.PendingSignIn.
        pending = PendingSignIn(request, "azure:" + self._pending_name(scopes))
        with self._cache_lock(request) as lock:
            lock.check()  # exit 4 at the deadline; a still-valid cached token is served
            cache, store = self._load(request)
            started = pending.load()
            if started is None and not list(cache.search(
                    msal.TokenCache.CredentialType.ACCOUNT)):
                # No saved sign-in: a background run ends here, before any network call.
                request.require_interactive("nobody has signed in to Azure AD yet", LOGIN_HINT)
            try:
                app = self._app(request, cache)
                result = None if started is not None else self._silent(request, app, scopes)
                if result is None and started is None:
                    accounts = self._msal(request, "reading the token cache", app.get_accounts)
                    what = ("the saved Azure AD sign-in needs to be renewed" if accounts
                            else "nobody has signed in to Azure AD yet")
                    request.require_interactive(what, LOGIN_HINT)
            finally:
                self._save(request, cache, store)
        if result is None:  # a person signs in, without the lock: others must not wait
            # A person is waiting: the longer bound, for MSAL's calls too (see _http).
            request = self._active = request.signing_in()
            before = cache.serialize()
            try:
                result = self._sign_in(request, app, scopes, pending, started)
            finally:
                self._save_sign_in(request, cache, store, before)
        return self._credential(request, result)

    def _sign_in(self, request, app, scopes, pending: PendingSignIn,
                 started: dict | None) -> dict:
        """A person signs in: first a device sign-in an earlier run started (one code per
        sign-in, in any context), else the configured flow."""
        shown = Presenter.of(request, self)
        flow, why = self.flow(shown)
        if started is None and flow == "browser":
            request.log.debug(f"browser sign-in ({why})")
            return self._browser_flow(request, app, scopes, shown)
        if started is None:
            request.log.debug(f"device code sign-in ({why})")
        return self._device_flow(request, app, scopes, pending, started)

    def flow(self, shown: Presenter) -> tuple[str, str]:
        """("browser" or "device_code", why). auto: the browser where the presenter can
        open one (browser_command set; macOS and Windows but not over SSH; WSL; a Linux
        desktop session), else the device code."""
        chosen = self.config["flow"]
        if chosen != "auto":
            return chosen, f'flow = "{chosen}"'
        if shown.can_open_browser():
            return "browser", "flow = \"auto\" and a browser can open here"
        return "device_code", "flow = \"auto\" and no browser can open here"

    def _browser_flow(self, request, app, scopes, shown: Presenter) -> dict:
        """MSAL's interactive sign-in: it listens on http://localhost:<free port>, opens the
        authorization URL through Python's webbrowser module (here: the presenter, which
        honours browser_command, opens the Windows browser in WSL and tells a person
        without a terminal who is asking) or hands the sign-in to the broker, and redeems
        the code that arrives, all within this run's sign-in deadline. Unlike a device
        code, nothing of it can outlive the run (the answer comes to this process's
        listener), so a sign-in cut short by the budget exits 3 and the next interactive
        run opens the browser again."""
        import msal

        authority = self.authority()[0]
        left = request.login_deadline - request.monotonic() - AFTER_BROWSER
        hint = (f"{LOGIN_HINT} (no app time limit), or set [azure] flow = \"device_code\" "
                "to sign in from another device")
        if left < MIN_BROWSER:
            raise LoginRequired(f"too little of this run's time is left for a browser "
                                f"sign-in at {authority} ({max(0, int(left))}s)", hint)
        _open_with(shown, authority)

        def launching(ui: str = "browser", **_) -> None:
            request.log.debug(f"MSAL opens the {ui}; waiting up to {int(left)}s")
            if ui == "broker":  # the OS's own sign-in window: no address to show
                shown.notice(f"Sign in at {authority} in the window that opened")

        kwargs: dict[str, Any] = {
            "prompt": self.config.get("prompt"), "login_hint": self.config.get("username"),
            "timeout": int(left), "on_before_launching_ui": launching}
        if self.config["broker"]:
            # A console program has no window of its own to parent the broker's dialog.
            kwargs["parent_window_handle"] = app.CONSOLE_WINDOW_HANDLE
        try:
            result = self._msal(request, "the browser sign-in", app.acquire_token_interactive,
                                scopes, once=True, **kwargs)
        except msal.BrowserInteractionTimeoutError:
            raise LoginRequired(f"the browser sign-in at {authority} was not finished within "
                                f"this run's time ({int(left)}s)", hint) from None
        except OSError as exc:
            if exc.errno is None:  # not the socket of MSAL's listener
                raise
            raise BackendUnavailable(f"cannot listen on loopback for the browser sign-in: "
                                     f"{exc.strerror or exc}") from None
        self._register(request, result)
        if "error" in result:
            raise oauth_error(result.get("error"), result.get("error_description"),
                              authority, LOGIN_HINT, "device")
        if not result.get("refresh_token") and result.get("token_source") != "broker":
            request.log.warning(
                "the provider issued no refresh token: the next run after this token expires "
                "needs a new sign-in" + ("" if self.authority()[1] else
                                         ' (set [azure] prompt = "consent": a generic OpenID '
                                         "issuer grants offline_access only then)"))
        return result

    def _pending_name(self, scopes: list[str]) -> str:
        return f"{self._digest()}\0{' '.join(sorted(scopes))}"

    def _account(self, request, app):
        accounts = self._msal(request, "reading the token cache", app.get_accounts,
                              username=self.config.get("username"))
        if len(accounts) > 1:
            request.log.debug(f"{len(accounts)} accounts cached; using the first (set [azure] "
                              "username to choose)")
        return accounts[0] if accounts else None

    def _silent(self, request, app, scopes) -> dict | None:
        """A token without a person, or None when only a new sign-in can give one."""
        account = self._account(request, app)
        if account is None:
            request.log.debug("no account in the token cache")
            return None
        # A forced refresh (the app gave up on the token it holds) never takes MSAL's
        # cached access token: force_refresh spends the refresh token for a new one.
        result = self._silent_call(request, app, scopes, account, request.force_refresh)
        # Only a token from MSAL's cache is renewed for min_validity: MSAL itself renews one
        # with less than 5 minutes left, and a second renewal of a fresh token would spend
        # another refresh token on the same lifetime (one shorter than min_validity is
        # printed with the core's warning).
        if (result is not None and result.get("token_source") == "cache"
                and self._remaining(request, app, result, account) < self.config["min_validity"]):
            request.log.debug("the cached token is too close to expiry: renewing it")
            result = self._silent_call(request, app, scopes, account, True)
        if result is not None and self.config["token"] == "id":
            result = {**result, "id_token": self._id_token(app, result, account)}
        return result

    def _silent_call(self, request, app, scopes, account, force: bool) -> dict | None:
        result = self._msal(request, "silent sign-in", app.acquire_token_silent_with_error,
                            scopes, account=account, force_refresh=force)
        if result is None:
            return None
        self._register(request, result)
        if "error" in result:
            if result["error"] in SIGN_IN_AGAIN:
                request.log.debug(f"the refresh token was refused ({result['error']}): "
                                  "a new sign-in is needed")
                return None
            raise oauth_error(result.get("error"), result.get("error_description"),
                              self.authority()[0], LOGIN_HINT, "refresh")
        request.log.debug(f"token from {result.get('token_source', 'MSAL')}")
        return result

    def _id_token(self, app, result, account) -> str | None:
        """The ID token: in a fresh answer, else the cached one of the account."""
        if isinstance(result.get("id_token"), str):
            return result["id_token"]
        import msal

        found = app.token_cache.search(msal.TokenCache.CredentialType.ID_TOKEN,
                                       query={"home_account_id": account["home_account_id"]})
        for item in found:
            if isinstance(item.get("secret"), str):
                return item["secret"]
        return None

    def _remaining(self, request, app, result, account) -> float:
        if self.config["token"] == "id":
            token = self._id_token(app, result, account)
            exp = jwt.expiry(token) if token else None
            return (exp - request.now()) if exp else 0.0
        return float(result.get("expires_in") or 0)

    def _device_flow(self, request, app, scopes, pending: PendingSignIn,
                     started: dict | None = None) -> dict:
        """Sign a person in with the device code: a new flow, or ``started``, one an
        earlier run saved. An interactive run polls until its sign-in deadline, any other
        run asks once; an unfinished sign-in stays saved for the next run."""
        if started is None:
            flow = self._msal(request, "starting the device code sign-in",
                              app.initiate_device_flow, scopes=scopes)
            if "user_code" not in flow:
                raise oauth_error(flow.get("error"), flow.get("error_description"),
                                  self.authority()[0], LOGIN_HINT, "device")
            request.log.secret(flow.get("device_code"))
            started = {"device_code": flow.get("device_code"), "user_code": flow["user_code"],
                       "verification_uri": flow.get("verification_uri", ""),
                       "verification_uri_complete": flow.get("verification_uri_complete"),
                       "expires_at": request.now() + bounded(flow.get("expires_in"), 900.0,
                                                           *CODE_LIFETIME),
                       "msal_flow": flow}
            pending.save(started)
            present(request, pending.prompt(started), self)
        elif request.interactive:
            present(request, pending.prompt(started), self)
        flow = dict(started.get("msal_flow") or {})
        if flow.get("device_code") != started["device_code"]:
            pending.clear()
            raise LoginRequired("the saved Azure AD sign-in in progress is damaged",
                                hint=f"{LOGIN_HINT} to start a new one")
        # MSAL polls once, then until flow["expires_at"] (wall clock): an interactive run
        # until its sign-in deadline, any other run not at all beyond that one poll.
        # MSAL checks that time once a second between polls but not before the next poll,
        # which may come a second later: stop early enough for that poll to fit too.
        until = request.login_deadline - 1.5 if request.interactive else request.monotonic()
        flow["interval"] = int(bounded(flow.get("interval"), 5.0, *POLL_INTERVAL))
        flow["expires_at"] = min(started["expires_at"],
                                 # MSAL compares this with the real clock
                                 time.time() + max(0.0, until - request.monotonic()))
        result = self._msal(request, "the device code sign-in",
                            app.acquire_token_by_device_flow, flow)
        self._register(request, result)
        if "error" in result:
            if result["error"] in PENDING and started["expires_at"] > request.now():
                raise pending.not_finished(started, self.authority()[0], LOGIN_HINT)
            pending.clear()
            if result["error"] in PENDING:
                result = {**result, "error": "expired_token"}
            raise oauth_error(result.get("error"), result.get("error_description"),
                              self.authority()[0], LOGIN_HINT, "device")
        pending.clear()
        return result

    @staticmethod
    def _register(request, result: dict) -> None:
        remember_token_secrets(request, result)

    def _credential(self, request, result: dict) -> Credential:
        claims = result.get("id_token_claims") or {}
        token = result.get("id_token" if self.config["token"] == "id" else "access_token")
        if not token:
            raise AccessDenied(f"Azure AD returned no {self.config['token']} token")
        fresh = result.get("token_source", "identity_provider") == "identity_provider"
        expires = self._expiry(request, result, token, fresh)
        if fresh:  # (MSAL keeps a dead one, counted from its arrival, but never serves it)
            check_not_dead_on_arrival(self.authority()[0], self._sent_at, expires, request.now())
        details = {"source": self.describe(), "obtained by": result.get("token_source", "MSAL")}
        who = claims.get("preferred_username") or claims.get("email") or claims.get("sub")
        if who:
            details["account"] = who
        return Credential(token=token, expires_at=expires, details=details)

    def _expiry(self, request, result: dict, token: str, fresh: bool) -> float | None:
        """When ``token`` expires, on this machine's clock.

        A JWT's exp is on the issuer's clock, so it is never compared with ours directly.
        A fresh token's lifetime (exp - iat, and expires_in) counts from when its request
        was sent: a skewed clock neither serves a dead token nor discards a good one, and a
        slow answer is not taken for a fresh one. A token MSAL had cached: MSAL's own
        expires_in, which it keeps on this machine's clock."""
        lifetime = result.get("expires_in")
        has_lifetime = (isinstance(lifetime, (int, float)) and not isinstance(lifetime, bool)
                        and math.isfinite(lifetime))
        if not fresh:
            if (self.config["token"] == "access" and has_lifetime
                    and isinstance(lifetime, (int, float))):  # (narrows lifetime for mypy)
                return request.now() + float(lifetime)
            return jwt.expiry(token)
        return request.fresh_token_expiry(
            token, self.authority()[0], sent_at=self._sent_at,
            expires_in=lifetime if self.config["token"] == "access" else None)

    # ------------------------------------------------------------ login / logout / status / doctor

    def login(self, request) -> None:
        """Sign in to Microsoft Entra ID now (in the browser, or with a device code) and
        keep MSAL's token cache, so that later runs get new tokens silently."""
        scopes = self._scopes()
        request = self._active = request.signing_in()  # a person is waiting: the longer bound
        with self._cache_lock(request):
            cache, store = self._load(request)
        before = cache.serialize()
        pending = PendingSignIn(request, "azure:" + self._pending_name(scopes))
        try:
            app = self._app(request, cache)
            self._sign_in(request, app, scopes, pending, pending.load())
        finally:
            self._save_sign_in(request, cache, store, before)

    def logout(self, request) -> None:
        self.store(request).delete()

    def status(self, request) -> dict:
        import msal

        facts: dict[str, Any] = {"authority": self.authority()[0],
                                 "scopes": " ".join(self.config.get("scopes") or [])
                                 or "(none)"}
        try:
            cache, store = self._load(request)
        except BackendUnavailable as exc:
            return {**facts, "token cache": exc.message}
        facts["token cache"] = store.label
        T = msal.TokenCache.CredentialType
        accounts = list(cache.search(T.ACCOUNT))
        if not accounts:
            facts["account"] = "none: run `credhelper-azure login`"
            return facts
        account = accounts[0]
        facts["account"] = account.get("username") or account.get("local_account_id") or "?"
        facts["tenant"] = account.get("realm") or "?"
        tokens = [t for t in cache.search(T.ACCESS_TOKEN)
                  if t.get("home_account_id") == account.get("home_account_id")]
        for t in tokens:
            try:
                left = int(t.get("expires_on", 0)) - int(request.now())
            except (TypeError, ValueError):
                continue
            facts[f"access token ({t.get('target', '')})"] = (
                f"expires in {left}s" if left > 0 else f"expired {-left}s ago")
        ids = list(cache.search(T.ID_TOKEN,
                                query={"home_account_id": account.get("home_account_id")}))
        if ids and isinstance(ids[0].get("secret"), str):
            decoded = jwt.decode(ids[0]["secret"])
            if decoded:
                facts["id token claims"] = {
                    k: v for k, v in decoded[1].items()
                    if k in ("iss", "sub", "aud", "exp", "iat", "tid", "oid",
                             "name", "preferred_username", "email")}
        facts["refresh token"] = "present" if list(cache.search(T.REFRESH_TOKEN)) else "none"
        return facts

    def diagnose(self, request) -> list[tuple[str, str, str]]:
        import msal

        checks = []
        cache = msal.SerializableTokenCache()
        try:
            store = self.store(request)
            data = store.load()
            if data:
                cache.deserialize(data)
            if self.config["token_cache"] == "file":
                checks.append(("warn", "token cache", f"{store.label}: protected by file "
                               "permissions only (token_cache = \"file\")"))
            else:
                checks.append(("ok", "token cache", store.label))
            has = list(cache.search(msal.TokenCache.CredentialType.ACCOUNT))
            checks.append(("ok", "sign-in", "an account is saved") if has
                          else ("warn", "sign-in", "none yet: run `credhelper-azure login`"))
        except (BackendUnavailable, LoginRequired, ValueError) as exc:
            message = getattr(exc, "message", str(exc))
            hint = getattr(exc, "hint", None)
            checks.append(("fail", "token cache", message + (f"; {hint}" if hint else "")))
        try:
            self._scopes()
            self._app(request, cache)
            checks.append(("ok", "authority", f"{self.authority()[0]} answers"))
        except (ConfigError, BackendUnavailable, AccessDenied) as exc:
            checks.append(("fail", "authority", exc.message))
        try:
            flow, why = self.flow(Presenter.of(request, self))
            checks.append(("ok", "sign-in flow", f"{flow.replace('_', ' ')} ({why})" + (
                "; broker requested (untested by this project)" if self.config["broker"]
                else "")))
        except ConfigError as exc:
            checks.append(("fail", "sign-in flow", exc.message))
        return checks


def _open_with(shown: Presenter, where: str) -> None:
    """Make the presenter the browser that Python's webbrowser module opens first, which
    is how MSAL opens the sign-in page (MSAL names its own only to prefer Microsoft Edge
    on Linux). This process runs one sign-in, so the registration is never undone."""
    import webbrowser

    class Presented(webbrowser.BaseBrowser):
        def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
            shown.browser(url, where)  # on a terminal, the address is printed too
            return True

    webbrowser.register("credhelper", None, Presented("credhelper"), preferred=True)


# ---------------------------------------------------------------- the token cache's store


class _TokenCache:
    """MSAL's serialized cache: the one secret ``name`` in ``secrets`` (a
    ``credhelper.store`` store), its failures said as the Azure token cache's."""

    def __init__(self, secrets: SecretStore, name: str, label: str | None = None):
        self.secrets, self.name = secrets, name
        self.label = label or secrets.label

    def _call(self, fn, *args):
        try:
            return fn(self.name, *args)
        except LoginRequired as exc:
            raise LoginRequired("the keyring holding the Azure sign-in is locked",
                                hint=exc.hint) from None
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"the Azure token cache: {exc.message}",
                                     hint='unlock it, or set [azure] token_cache = "file" to '
                                          'keep it in a private 0600 file') from None

    def load(self) -> str | None:
        data = self._call(self.secrets.load)
        return data.decode("utf-8", "replace") if data else None

    def save(self, data: str) -> None:
        self._call(self.secrets.save, data.encode("utf-8"))

    def delete(self) -> None:
        self._call(self.secrets.delete)


class _PlatformStore(SecretStore):
    """msal-extensions' persistence (DPAPI, Keychain, libsecret) in the store protocol:
    ``make(name)`` builds the persistence that keeps ``name``. It cannot delete an item,
    so delete empties it; it cannot list."""

    mode = "protected"

    def __init__(self, make, label: str):
        self.make, self.label = make, label
        self._made: dict[str, Any] = {}

    def persistence(self, name: str):
        if name not in self._made:
            self._made[name] = self.make(name)
        return self._made[name]

    def _fail(self, exc) -> BackendUnavailable:
        return BackendUnavailable(f"cannot use {self.label}: {exc.__class__.__name__}")

    def load(self, name: str) -> bytes | None:
        from msal_extensions.persistence import PersistenceNotFound

        try:
            data = self.persistence(name).load()
        except PersistenceNotFound:
            return None
        except Exception as exc:  # platform store errors come in many types
            raise self._fail(exc) from None
        return None if data is None else data.encode("utf-8")

    def save(self, name: str, data: bytes) -> None:
        try:
            self.persistence(name).save(bytes(data).decode("utf-8"))
        except Exception as exc:
            raise self._fail(exc) from None

    def delete(self, name: str) -> bool:
        self.save(name, b"{}")
        return True

    def names(self) -> None:
        return None
