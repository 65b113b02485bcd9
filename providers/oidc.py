"""credhelper-oidc: an access (or ID) token from any OpenID Connect provider.

Endpoints come from the issuer's discovery document. ``grant = device_code`` signs a person
in with the device flow, ``grant = authorization_code`` in the browser with PKCE and a
loopback redirect on fixed ports (``loopback``), both in the interactive context only,
and keeps the refresh token in the provider's private state (a 0600 file, or the OS
keyring with ``cache = "keyring"``); later runs renew silently with it. Providers that
rotate refresh tokens hand out a new one on every renewal: it replaces the old one at
once, and a lock per refresh state (not the core's, which is per cache key) keeps two
runs from spending the same one, even runs of two configurations that share the sign-in
(``token = "access"`` and ``"id"``).
``client_credentials`` serves machines without a person; ``refresh_token`` renews a saved
or provisioned refresh token and never asks anyone.

authlib and requests are imported inside methods only.
"""

from __future__ import annotations

import hashlib
import time

from credhelper import jwt, net, secretref
from credhelper.config import check_url
from credhelper.durations import parse_retry_after
from credhelper.errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigError,
    CredhelperError,
    LoginRequired,
)
from credhelper.provider import Credential, Provider, Setting

from .device_flow import (
    CODE_LIFETIME,
    PENDING,
    POLL_INTERVAL,
    PendingSignIn,
    Presenter,
    StillPending,
    bounded,
    check_not_dead_on_arrival,
    oauth_error,
    remember_token_secrets,
    state_lock,
)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRANTS = ("device_code", "authorization_code", "client_credentials", "refresh_token")
PERSON_GRANTS = ("device_code", "authorization_code")  # a person may sign in again
PERSON_SCOPES = ["openid", "offline_access"]
MAX_CALL = 15.0  # one HTTP call never takes the whole deadline: leave time to report
SECRET = secretref.Spec("client_secret", "client secret", secretref.WARN)


# The metadata's endpoints this backend sends secrets, codes or tokens to.
ENDPOINTS = ("token_endpoint", "device_authorization_endpoint", "authorization_endpoint",
             "revocation_endpoint")

class OidcProvider(Provider):
    name = "oidc"
    summary = "an OpenID Connect provider (Okta, Auth0, Keycloak, Entra, Google, ...)"
    address_setting = "issuer"
    ca_setting = "ca_cert"
    library = "authlib"
    can_login = True
    # When the request whose answer is being read was sent (time.time()): the earliest a
    # token in it can have been minted, so its lifetime is counted from there, and a
    # slow answer is never taken for a fresh one. Set by _call and _poll.
    _sent_at: float | None = None
    settings = (
        Setting("issuer", "url", required=True,
                help="issuer URL; endpoints come from ISSUER/.well-known/openid-configuration, "
                     "else its RFC 8414 metadata (.well-known/oauth-authorization-server)"),
        Setting("client_id", required=True, help="OAuth client ID"),
        Setting("client_secret", secret=True,
                help=f"confidential clients: {secretref.FORMS} (a value in clear works, but "
                     "doctor warns)"),
        Setting("scopes", "list", None,
                help="scopes to request; default: openid offline_access for a person, "
                     "none for client_credentials"),
        Setting("audience", help="API the token is for, sent as audience (or resource)"),
        Setting("audience_param", "choice", "audience", choices=("audience", "resource"),
                help="how to send audience: Auth0/Okta style, or RFC 8707 resource"),
        Setting("grant", "choice", "device_code", choices=GRANTS, help="how to get tokens"),
        Setting("token", "choice", "access", choices=("access", "id"),
                help="which token to print"),
        Setting("refresh_token_file", "path",
                help="grant = refresh_token: file holding the first refresh token"),
        Setting("login_flow", "choice", "auto", choices=("auto", "browser", "device"),
                credential=False,
                help="how `login` signs in: a browser with a loopback redirect (authorization "
                     "code + PKCE), the device code, or auto (the browser with grant = "
                     "authorization_code or where a desktop is there)"),
        Setting("redirect_ports", "ports", [8000, 18000], credential=False,
                help="browser sign-in: loopback ports for the redirect, the first free one "
                     "used (0: any free port); each registered at the provider as "
                     "http://REDIRECT_HOST:PORT/callback"),
        Setting("redirect_host", "choice", "127.0.0.1", choices=("127.0.0.1", "localhost"),
                credential=False,
                help="browser sign-in: the redirect URI's host, as registered at the provider"),
        Setting("prompt", credential=False,
                help="browser sign-in: OpenID Connect prompt (login, consent, "
                     "select_account); default: none sent, so no forced consent"),
        Setting("paste", "bool", False, credential=False,
                help="browser sign-in: never open a browser; print the address and read the "
                     "one the browser ends on, pasted on the terminal (the default where no "
                     "browser can open)"),
        Setting("ca_cert", "path", credential=False,
                help="CA certificate (PEM) of the provider, trusted alone; default: the "
                     "system CAs and REQUESTS_CA_BUNDLE"),
    )

    # ------------------------------------------------------------ configuration

    def describe(self) -> str:
        return f"OpenID provider {self.config['issuer']} (client {self.config['client_id']})"

    def scopes(self) -> list[str]:
        scopes = self.config.get("scopes")
        if scopes is not None:
            return list(scopes)
        return [] if self.config["grant"] == "client_credentials" else list(PERSON_SCOPES)

    def extra_params(self) -> dict:
        audience = self.config.get("audience")
        return {self.config["audience_param"]: audience} if audience else {}

    def _state_name(self) -> str:
        c = self.config
        parts = [c["issuer"], c["client_id"], " ".join(self.scopes()), c.get("audience") or "",
                 c["audience_param"]]
        return "refresh:" + "\0".join(parts)

    def client_secret(self, request) -> str | None:
        """The secret ``client_secret`` names (credhelper.secretref: file:, env:, keyring:,
        or the value in clear, which doctor flags); registered as a secret."""
        return secretref.resolve(request, self.config, "client_secret", "client secret",
                                 clear=secretref.WARN)

    # ------------------------------------------------------------ HTTP

    def _session(self, request, secret: str | None):
        from authlib.integrations.requests_client import OAuth2Session

        sess = request.session(
            self.config.get("ca_cert"), base=OAuth2Session, overload=True,
            client_id=self.config["client_id"], client_secret=secret,
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
        )
        return sess

    def _timeout(self, request) -> float:
        return min(request.remaining(), MAX_CALL)

    def call(self, request, what: str, fn, *args, idempotent: bool = False, **kwargs):
        """Run one HTTP call, retried by the one rule of ``credhelper.net`` (429 and 5xx
        within the deadline, after the server's Retry-After when it sends one; a POST that
        got 500 only when ``idempotent``); network and TLS failures become exit 4."""
        import requests

        issuer = self.config["issuer"]
        retry = net.Retry(request, idempotent=idempotent)
        while True:
            try:
                timeout = self._timeout(request)
                self._sent_at = request.now()
                return fn(*args, timeout=timeout, **kwargs)
            except net.Overloaded as exc:
                retry.after(exc, f"{issuer} answered HTTP {exc.status} to {what}")
            except requests.exceptions.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                raise AccessDenied(f"{issuer} refused {what} (HTTP {status})") from None
            except NotAToken:
                raise
            except Exception as exc:
                raise self._network_error(exc) from None

    def _network_error(self, exc: Exception) -> Exception:
        """A transport failure as exit 4 (5 for an oversized refusal); ``exc`` itself when
        it is none, so that a bug surfaces as one."""
        return net.failure(exc, self.config["issuer"],
                           ca_setting="[oidc] ca_cert (or REQUESTS_CA_BUNDLE)",
                           address_setting="[oidc] issuer") or exc

    def discover(self, request, sess) -> dict:
        """The issuer's metadata: OpenID discovery, else RFC 8414 authorization server
        metadata (an OAuth server that is no OpenID provider). The next place is tried
        only when one answers 4xx: a 5xx or a network failure is the server's trouble,
        and a document that fails the checks is wrong, not missing."""
        issuer = self.config["issuer"]
        tried: list[str] = []
        for url in self.metadata_urls(issuer):
            response = self.call(request, "discovery", sess.get, url, idempotent=True,
                                  withhold_token=True)
            if response.status_code == 200:
                break
            tried.append(f"{url} (HTTP {response.status_code})")
            if not 400 <= response.status_code < 500:
                raise (BackendUnavailable if response.status_code >= 500 else ConfigError)(
                    f"discovery failed: {url} answered HTTP {response.status_code}",
                    hint="check [oidc] issuer")
        else:
            raise ConfigError("discovery failed: no metadata at " + ", ".join(tried),
                              hint="check [oidc] issuer")
        try:
            doc = response.json()
        except ValueError:
            raise ConfigError(f"discovery failed: {url} did not answer JSON",
                              hint="check [oidc] issuer") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("token_endpoint"), str):
            raise ConfigError(f"{url} is not OpenID or OAuth server metadata (no token_endpoint)")
        if str(doc.get("issuer", "")).rstrip("/") != issuer:
            raise ConfigError(f"the metadata at {url} names another issuer: "
                              f"{doc.get('issuer')!r}", hint="set [oidc] issuer to that value")
        for name in ENDPOINTS:  # where secrets and codes go: checked as the issuer is
            endpoint = doc.get(name)
            if endpoint is None:
                continue
            try:
                if not isinstance(endpoint, str):
                    raise ValueError("it is not a URL")
                check_url(endpoint)
            except ValueError as exc:
                raise ConfigError(f"the metadata at {url} names a {name} that cannot be used: "
                                  f"{exc}", hint="check [oidc] issuer, or the provider's "
                                  "configuration") from None
        if tried:
            request.log.debug(f"metadata from {url} (RFC 8414)")
        return doc

    @staticmethod
    def metadata_urls(issuer: str) -> list[str]:
        """Where an issuer's metadata may be, in the order tried: OpenID discovery
        (appended to the issuer), RFC 8414 (for an issuer with a path, inserted between
        the host and the path), and the appended RFC 8414 form many servers publish."""
        from urllib.parse import urlsplit

        parts = urlsplit(issuer)
        inserted = (f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server"
                    + parts.path.rstrip("/"))
        return list(dict.fromkeys([f"{issuer}/.well-known/openid-configuration", inserted,
                                   f"{issuer}/.well-known/oauth-authorization-server"]))

    def _token(self, request, sess, url: str, during: str, **params) -> dict:
        from authlib.integrations.base_client import OAuthError

        try:
            token = self.call(request, f"the {params.get('grant_type', 'token')} request",
                               sess.fetch_token, url, hooks=TOKEN_HOOKS, **params)
        except OAuthError as exc:
            raise oauth_error(exc.error, exc.description, self.config["issuer"],
                              self._login_hint(), during) from None
        except NotAToken:
            raise self._not_a_token(params.get("grant_type", "token")) from None
        return remember_token_secrets(request, dict(token))

    def _not_a_token(self, what: str) -> BackendUnavailable:
        """A token endpoint that answered something other than a JSON object (an HTML
        error page from a proxy, an empty body): the provider is not usable right now."""
        return BackendUnavailable(f"{self.config['issuer']} answered the {what} request with "
                                  "something that is not a token (not a JSON object)",
                                  hint="check the issuer and any proxy in between")

    def _login_hint(self) -> str:
        return "run `credhelper-oidc login`"

    # ------------------------------------------------------------ the run

    def fetch(self, request) -> Credential:
        secret = self.client_secret(request)
        if self.config["grant"] == "client_credentials" and not secret:
            raise ConfigError("grant = client_credentials needs [oidc] client_secret",
                              hint="client_secret = \"file:/path/to/secret\" "
                                   "(or env:NAME, keyring:SERVICE/USER)")
        if self.config["grant"] == "client_credentials":
            sess = self._session(request, secret)
            doc = self.discover(request, sess)
            params = {"grant_type": "client_credentials", **self.extra_params()}
            if self.scopes():
                params["scope"] = " ".join(self.scopes())
            return self._credential(request, self._token(request, sess, doc["token_endpoint"],
                                                         "token", **params), "client credentials")
        # Without a saved sign-in a background run ends here, before any network call,
        # unless a person has a sign-in under way: then any run may finish it.
        refresh = self._saved_refresh_token(request, request.state.load(self._state_name()))
        pending = PendingSignIn(request, self._state_name())
        started = None
        if not refresh:
            if self.config["grant"] == "refresh_token":
                raise LoginRequired(f"no refresh token for {self.config['issuer']}",
                                    hint="run `credhelper-oidc login`, "
                                         "or set [oidc] refresh_token_file")
            started = pending.load()
            if started is None:
                request.require_interactive(f"nobody has signed in to {self.config['issuer']} yet",
                                            self._login_hint())
        sess = self._session(request, secret)
        doc = self.discover(request, sess)
        if refresh:
            try:
                return self._refresh(request, sess, doc, refresh)
            except LoginRequired:
                if self.config["grant"] not in PERSON_GRANTS:
                    raise
                started = pending.load()
                if started is None:
                    request.require_interactive(f"the saved sign-in for {self.config['issuer']} "
                                                "has expired or was revoked", self._login_hint())
        if self.config["grant"] == "authorization_code" and started is None:
            # A device sign-in still pending (begun under grant = device_code) is finished
            # first: a person only ever has one sign-in under way.
            return self._credential(request, self._browser(request, sess, doc),
                                    "browser sign-in")
        token = self._device_flow(request, sess, doc, pending, started)
        return self._credential(request, token, "device code sign-in")

    def _browser(self, request, sess, doc: dict) -> dict:
        """Authorization code + PKCE in the browser; keeps the refresh token."""
        from .loopback import authorization_code_sign_in

        token = authorization_code_sign_in(self, request, sess, doc)
        with self._state_lock(request):
            self._save(request, token)
        if not token.get("refresh_token"):
            consent = "consent" in (self.config.get("prompt") or "").split()
            why = ("set prompt = \"consent\": some providers grant offline_access only then"
                   if "offline_access" in self.scopes() and not consent
                   else "add offline_access to scopes?")
            request.log.warning("the provider issued no refresh token: the next run after "
                                f"this token expires needs a new sign-in ({why})")
        return token

    def _saved_refresh_token(self, request, state: dict | None) -> str | None:
        """The refresh token to spend next: from ``state`` (this sign-in's saved state), or
        a new one provisioned in refresh_token_file."""
        state = state or {}
        seed_file = self.config.get("refresh_token_file")
        seed = None
        if seed_file and self.config["grant"] == "refresh_token":
            try:
                with open(seed_file, encoding="utf-8") as f:
                    seed = f.read().strip() or None
            except OSError as exc:
                raise ConfigError(f"cannot read refresh_token_file {seed_file}: "
                                  f"{exc.strerror or exc.__class__.__name__}") from None
            request.log.secret(seed)
        # A provisioned token wins over the saved chain only when it is a new one.
        if seed and state.get("seed") != _digest(seed):
            request.log.debug("using the refresh token from refresh_token_file")
            return seed
        token = state.get("refresh_token")
        if isinstance(token, str) and token:
            request.log.secret(token)
            return token
        return None

    def _save(self, request, token: dict, previous: str | None = None) -> None:
        """Keep the newest refresh token (rotation: the new one replaces the old at once),
        and the tokens of its answer: a run of another configuration that waited for this
        renewal prints those instead of spending the new refresh token (see _refresh).
        Callers hold the state's lock."""
        new = token.get("refresh_token") or previous
        if not new:
            return
        doc: dict = {"refresh_token": new, "saved_at": request.now()}
        if self._sent_at is not None:
            doc["sent_at"] = self._sent_at
            doc["tokens"] = {k: token[k] for k in ("access_token", "id_token", "expires_in")
                             if k in token}
        seed_file = self.config.get("refresh_token_file")
        if seed_file and self.config["grant"] == "refresh_token":
            old = request.state.load(self._state_name()) or {}
            doc["seed"] = old.get("seed")
            try:
                with open(seed_file, encoding="utf-8") as f:
                    doc["seed"] = _digest(f.read().strip())
            except OSError:
                pass
        if isinstance(token.get("id_token"), str):
            claims = (jwt.decode(token["id_token"]) or ({}, {}))[1]
            doc["subject"] = (claims.get("email") or claims.get("preferred_username")
                              or claims.get("sub"))
        request.state.save(self._state_name(), doc)

    def _state_lock(self, request):
        return state_lock(request, self.name, self._state_name())

    def _refresh(self, request, sess, doc: dict, seen: str) -> Credential:
        """Renew with the saved refresh token (``seen``, read before the lock). From
        reading the state to saving the new one this holds the state's lock: every
        configuration sharing the sign-in takes it, whatever its cache key."""
        name = self._state_name()
        with self._state_lock(request) as lock:
            lock.check()  # exit 4 at the deadline; a still-valid cached token is served
            state = request.state.load(name)
            refresh = self._saved_refresh_token(request, state)
            if refresh != seen:  # another run renewed (or lost) it while this one waited
                if refresh is None:
                    raise oauth_error("invalid_grant", None, self.config["issuer"],
                                      self._login_hint(), "refresh")
                renewed = self._renewed(request, state or {})
                if renewed is not None:
                    return renewed
            params = {"grant_type": "refresh_token", "refresh_token": refresh,
                      **self.extra_params()}
            try:
                token = self._token(request, sess, doc["token_endpoint"], "refresh", **params)
            except LoginRequired:
                # Forget the sign-in only while it still holds the refresh token refused: a
                # sign-in saved meanwhile (the device flow saves outside this wait) stays.
                if self._saved_refresh_token(request, request.state.load(name)) == refresh:
                    request.state.delete(name)
                raise
            self._save(request, token, previous=refresh)
        if token.get("refresh_token") and token["refresh_token"] != refresh:
            request.log.debug("the provider rotated the refresh token; saved the new one")
        return self._credential(request, token, "refresh token")

    def _renewed(self, request, state: dict) -> Credential | None:
        """The credential in the answer of the renewal another run has just made, while
        it stays valid for min_validity (then spending the new refresh token would buy
        nothing); None otherwise."""
        tokens, sent_at = state.get("tokens"), state.get("sent_at")
        if (not isinstance(tokens, dict) or isinstance(sent_at, bool)
                or not isinstance(sent_at, (int, float))):
            return None
        remember_token_secrets(request, tokens)
        self._sent_at = float(sent_at)
        try:
            credential = self._credential(request, tokens, "refresh token (by another run)")
        except CredhelperError:  # no such token in that answer, or it has expired
            return None
        if (credential.expires_at is None
                or credential.expires_at - request.now() < self.config["min_validity"]):
            return None
        request.log.debug("another run renewed the sign-in while this one waited: "
                          "using the tokens it got")
        return credential

    def _device_flow(self, request, sess, doc: dict, pending: PendingSignIn,
                     started: dict | None = None) -> dict:
        """Sign a person in with the device code: a new authorization, or ``started``, one
        an earlier run saved. Ends by the run's deadline; an unfinished sign-in stays
        saved for the next run (see PendingSignIn)."""
        if started is None:
            started = self._authorize_device(request, sess, doc)
            pending.save(started)
            Presenter.of(request, self).code(pending.prompt(started))
        else:
            request.log.debug(f"resuming the sign-in started earlier (code {started['user_code']})")
            if request.interactive:
                Presenter.of(request, self).code(pending.prompt(started))
        try:
            token = self._poll(request, sess, doc["token_endpoint"], started)
        except StillPending:
            raise pending.not_finished(started, self.config["issuer"], self._login_hint()) from None
        except (LoginRequired, AccessDenied):  # declined or expired: that sign-in is over
            pending.clear()
            raise
        pending.clear()
        return token

    def _authorize_device(self, request, sess, doc: dict) -> dict:
        """Ask for a new device authorization; what a later run needs to poll it."""
        endpoint = doc.get("device_authorization_endpoint")
        if not isinstance(endpoint, str):
            raise ConfigError(f"{self.config['issuer']} offers no device authorization endpoint",
                              hint="use grant = client_credentials, "
                                   "or a provider with the device flow")
        data = {"scope": " ".join(self.scopes()), **self.extra_params()}
        if not sess.client_secret:
            data["client_id"] = self.config["client_id"]
        auth = (self.config["client_id"], sess.client_secret) if sess.client_secret else None
        response = self.call(request, "the device authorization request", sess.post, endpoint,
                              data=data, auth=auth, withhold_token=True)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if (response.status_code != 200 or not isinstance(answer, dict)
                or not isinstance(answer.get("device_code"), str)):
            if response.status_code >= 500:
                raise BackendUnavailable(f"{self.config['issuer']} answered HTTP "
                                         f"{response.status_code} "
                                         "to the device authorization request")
            answer = answer if isinstance(answer, dict) else {}
            raise oauth_error(answer.get("error") or f"HTTP {response.status_code}",
                              answer.get("error_description"), self.config["issuer"],
                              self._login_hint(), "device")
        request.log.secret(answer["device_code"])
        uri = answer.get("verification_uri") or answer.get("verification_url")
        if not isinstance(answer.get("user_code"), str) or not isinstance(uri, str):
            raise AccessDenied(f"{self.config['issuer']} answered the device authorization "
                               "without a user code or verification URI")
        complete = answer.get("verification_uri_complete")
        return {"device_code": answer["device_code"], "user_code": answer["user_code"],
                "verification_uri": uri,
                "verification_uri_complete": complete if isinstance(complete, str) else None,
                "interval": bounded(answer.get("interval"), 5.0, *POLL_INTERVAL),
                "expires_at": request.now() + bounded(answer.get("expires_in"), 600.0,
                                                    *CODE_LIFETIME)}

    def _poll(self, request, sess, url: str, started: dict) -> dict:
        """Poll the token endpoint until the person is done. An interactive run polls
        until its sign-in deadline; any other run asks once (the person may have approved
        since the run that showed the code), never waiting for a person."""
        from authlib.integrations.base_client import OAuthError

        interval = bounded(started.get("interval"), 5.0, *POLL_INTERVAL)
        ends = request.login_deadline if request.interactive else request.monotonic()
        code_ends = request.monotonic() + (started["expires_at"] - request.now())
        while True:
            try:
                self._sent_at = request.now()
                token = sess.fetch_token(url, grant_type=DEVICE_GRANT,
                                         device_code=started["device_code"],
                                         hooks=TOKEN_HOOKS,
                                         timeout=min(max(0.5, request.login_deadline
                                                             - request.monotonic()),
                                                     MAX_CALL),
                                         **self.extra_params())
            except OAuthError as exc:
                if exc.error not in PENDING:
                    raise oauth_error(exc.error, exc.description, self.config["issuer"],
                                      self._login_hint(), "device") from None
                if exc.error == "slow_down":
                    interval = min(interval + 5, POLL_INTERVAL[1])  # RFC 8628 §3.5
            except net.Overloaded as exc:  # wait it out like slow_down, within the deadline
                wait = parse_retry_after(exc.retry_after or "")
                request.log.debug(f"{self.config['issuer']} answered HTTP {exc.status} "
                                  "while polling")
                interval = max(interval, min(wait or 0, POLL_INTERVAL[1]))
            except NotAToken:
                raise self._not_a_token("device code") from None
            except Exception as exc:
                raise self._network_error(exc) from None
            else:
                token = remember_token_secrets(request, dict(token))
                with self._state_lock(request):
                    self._save(request, token)
                if not token.get("refresh_token"):
                    request.log.warning("the provider issued no refresh token: "
                                        "the next run after this token expires "
                                        "needs a new sign-in (add offline_access to scopes?)")
                return token
            now = request.monotonic()
            if now >= code_ends:  # the provider would now answer expired_token
                raise oauth_error("expired_token", None, self.config["issuer"],
                                  self._login_hint(), "device")
            if now + interval > min(ends, code_ends):
                if code_ends <= ends:  # the code dies before this run ends: no run can use it
                    raise oauth_error("expired_token", None, self.config["issuer"],
                                      self._login_hint(), "device")
                raise StillPending()
            request.sleep(interval)

    def _credential(self, request, token: dict, how: str) -> Credential:
        want = "id_token" if self.config["token"] == "id" else "access_token"
        value = token.get(want)
        if not isinstance(value, str) or not value:
            raise AccessDenied(f"{self.config['issuer']} returned no {want.replace('_', ' ')}",
                               hint="for token = id, include openid in scopes")
        # Relative lifetimes (expires_in, exp - iat) are immune to a skewed laptop clock;
        # both count from when the request was sent, not from when the answer came.
        sent_at = self._sent_at if self._sent_at is not None else request.now()
        expires = request.fresh_token_expiry(
            value, self.config["issuer"], sent_at=sent_at,
            expires_in=token.get("expires_in") if want == "access_token" else None)
        check_not_dead_on_arrival(self.config["issuer"], sent_at, expires, request.now())
        details = {"source": self.describe(), "grant": self.config["grant"], "obtained by": how}
        return Credential(token=value, expires_at=expires, details=details)

    # ------------------------------------------------------------ login / logout / status / doctor

    def login(self, request) -> None:
        """Sign in at the identity provider now (in the browser, or with a device code)
        and keep the refresh token, so that later runs get new tokens silently."""
        if self.config["grant"] == "client_credentials":
            raise ConfigError("grant = client_credentials has no sign-in: "
                              "the client secret is the login")
        secret = self.client_secret(request)
        sess = self._session(request, secret)
        doc = self.discover(request, sess)
        request = request.signing_in()  # a person is waiting: the longer bound
        flow = self.config["login_flow"]
        if flow == "auto":
            desktop = Presenter.of(request, self).can_open_browser()
            flow = ("browser" if self.config["grant"] == "authorization_code"
                    or doc.get("authorization_endpoint") and desktop else "device")
        if flow == "browser":
            self._browser(request, sess, doc)
            return
        pending = PendingSignIn(request, self._state_name())
        self._device_flow(request, sess, doc, pending, pending.load())

    def logout(self, request) -> None:
        state = request.state.load(self._state_name()) or {}
        token = state.get("refresh_token")
        request.state.delete(self._state_name())
        if not token:
            return
        request.log.secret(token)
        try:  # revoke when the provider can: a copied state file then dies too
            secret = self.client_secret(request)
            sess = self._session(request, secret)
            endpoint = self.discover(request, sess).get("revocation_endpoint")
            if endpoint:
                data = {"token": token, "token_type_hint": "refresh_token"}
                if not secret:
                    data["client_id"] = self.config["client_id"]
                auth = (self.config["client_id"], secret) if secret else None
                self.call(request, "revocation", sess.post, endpoint, data=data, auth=auth,
                           withhold_token=True)
        except (BackendUnavailable, AccessDenied, ConfigError) as exc:
            request.log.warning("signed out locally; could not revoke the refresh token: "
                                f"{exc.message}")

    def status(self, request) -> dict:
        facts = {"issuer": self.config["issuer"], "grant": self.config["grant"],
                 "scopes": " ".join(self.scopes()) or "(none)"}
        if self.config["grant"] != "client_credentials":
            state = request.state.load(self._state_name()) or {}
            if state.get("refresh_token"):
                saved = state.get("saved_at")
                renewed = ""
                if isinstance(saved, (int, float)):
                    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(saved))
                    renewed = f", renewed {stamp}"
                facts["sign-in"] = (
                    f"saved refresh token for {state.get('subject') or 'unknown user'}" + renewed)
            else:
                facts["sign-in"] = "none: run `credhelper-oidc login`"
        return facts

    def diagnose(self, request) -> list[tuple[str, str, str]]:
        # Where the client secret comes from, whether it can be read, or that it is in clear.
        checks = secretref.checks(request, self.config, [SECRET])
        try:
            try:
                secret = self.client_secret(request)
            except (ConfigError, BackendUnavailable, LoginRequired):
                secret = None  # said above; discovery needs no secret
            sess = self._session(request, secret)
            doc = self.discover(request, sess)
            checks.append(("ok", "discovery", f"{self.config['issuer']}: token endpoint "
                           f"{doc['token_endpoint']}"))
            if self.config["grant"] == "device_code" and "device_authorization_endpoint" not in doc:
                checks.append(("fail", "device flow", "the provider offers no device flow"))
            if (self.config["grant"] == "authorization_code"
                    and "authorization_endpoint" not in doc):
                checks.append(("fail", "browser sign-in",
                               "the provider offers no authorization endpoint"))
        except (ConfigError, BackendUnavailable, AccessDenied) as exc:
            checks.append(("fail", "discovery", exc.message))
        if self.config["grant"] != "client_credentials":
            state = request.state.load(self._state_name()) or {}
            checks.append(("ok", "sign-in", "refresh token saved") if state.get("refresh_token")
                          else ("warn", "sign-in", "none yet: run `credhelper-oidc login`"))
        return checks


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


class NotAToken(Exception):
    """A token endpoint's answer that authlib would choke on (not a JSON object, or an
    ``expires_in`` that is no number): raised by a response hook before authlib reads it."""


def _check_token_answer(response, *args, **kwargs):
    """requests response hook of token requests: the answer must be a JSON object whose
    lifetime fields, when present, are numbers (authlib would raise ValueError or
    TypeError); a 4xx without one is a plain refusal."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        if 400 <= response.status_code < 500:
            response.raise_for_status()  # a refusal without an OAuth error body
        raise NotAToken()
    for name in ("expires_in", "expires_at"):
        value = doc.get(name)
        if value is not None and not (isinstance(value, (int, float))
                                      and not isinstance(value, bool)
                                      or isinstance(value, str) and value.isdigit()):
            raise NotAToken()
    return response


# Per-request hooks replace the session's: the retry rule's flag comes first, as there.
TOKEN_HOOKS = {"response": [net.flag_overload, _check_token_answer]}
