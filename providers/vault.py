"""credhelper-vault: a gateway credential from HashiCorp Vault or OpenBao.

Three things can be printed: a field of a KV secret (``secret``), a field of any logical
read such as a dynamic secrets engine (``path``), or a Vault identity OIDC token
(``identity_token``). The Vault token used for the read comes from ``VAULT_TOKEN``, the
Vault CLI's ``token_helper`` or ``~/.vault-token`` (``auth = "token"``), or from a login
(approle, userpass, ldap, jwt, kubernetes, cert, and oidc: a person in a browser); a login
token is kept in the provider's private state and reused until it nears expiry, so most
cold runs cost one read and no login.

Every call goes through hvac's API (``client.secrets.kv.v2.read_secret_version``,
``client.auth.approle.login``, ``client.auth.token.renew_self``, ...) on an hvac adapter
that applies the one retry rule of ``credhelper.net`` and the run's deadline to each
request; ``Vault._error`` maps hvac's exceptions to the contract's exit codes, in one
place. Secret-valued settings (token, secret_id, password, jwt) are references read by
``credhelper.secretref``; the older ``*_file`` / ``*_env`` settings are deprecated aliases.

hvac (and requests under it) is imported inside methods only: a cache hit, ``--help``
and the other backends never pay for it.
"""

from __future__ import annotations

import math
import os
import secrets

from credhelper import net, secretref
from credhelper.durations import MAX_SECONDS
from credhelper.errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigError,
    CredhelperError,
    LoginRequired,
)
from credhelper.provider import Credential, Provider, Setting

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

AUTH_METHODS = ("token", "approle", "userpass", "ldap", "jwt", "kubernetes", "cert", "oidc")
KUBERNETES_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# A KV secret has no expiry of its own: without max_age it is read again after this.
DEFAULT_STATIC_AGE = 7200.0  # longer than the app's own default TTL (1h)
# A cached login token is reused only while it outlives the run by this much
# (on top of min_validity, because dynamic leases die with the token that made them).
TOKEN_MARGIN = 60.0

# How each setting that may hold a secret is read (credhelper.secretref): what it holds,
# whether a value in clear is fine, and the older settings that named a file or a variable
# (deprecated aliases, still read). Vault's rule stays: no secret in a file in clear.
SECRETS = {
    "token": secretref.Spec("token", "Vault token", secretref.ENVIRONMENT),
    "role_id": secretref.Spec("role_id", "approle role ID", secretref.OK,
                              {"file": "role_id_file"}),
    "secret_id": secretref.Spec("secret_id", "approle secret ID", secretref.ENVIRONMENT,
                                {"file": "secret_id_file", "env": "secret_id_env"}),
    "password": secretref.Spec("password", "password", secretref.ENVIRONMENT,
                               {"file": "password_file", "env": "password_env"},
                               missing_ok=True),
    "jwt": secretref.Spec("jwt", "JWT", secretref.ENVIRONMENT, {"file": "jwt_file"}),
}
# Which of them each auth method reads.
SECRETS_OF = {"token": ("token",), "approle": ("role_id", "secret_id"),
              "userpass": ("password",), "ldap": ("password",), "jwt": ("jwt",),
              "kubernetes": ("jwt",), "cert": (), "oidc": ()}
REF = "file:PATH, env:VARIABLE or keyring:SERVICE/USER"


class VaultProvider(Provider):
    name = "vault"
    summary = "HashiCorp Vault or OpenBao"
    address_setting = "address"
    ca_setting = "ca_cert"
    library = "hvac"
    can_login = True
    settings = (
        # -- the server
        Setting("address", "url", required=True, env=("VAULT_ADDR",),
                help="Vault address, https://... (http only on loopback)"),
        Setting("namespace", env=("VAULT_NAMESPACE",), help="Vault namespace"),
        Setting("ca_cert", "path", env=("VAULT_CACERT", "VAULT_CAPATH"),
                help="CA certificate file (PEM) or a directory of them; default: system CAs"),
        Setting("client_cert", "path", env=("VAULT_CLIENT_CERT",),
                help="client certificate (PEM) for TLS and cert auth"),
        Setting("client_key", "path", env=("VAULT_CLIENT_KEY",),
                help="private key of client_cert (PEM)"),
        # -- how to get a Vault token
        Setting("auth", "choice", "token", choices=AUTH_METHODS, help="auth method"),
        Setting("mount", help="mount path of the auth method; default: the method's name"),
        Setting("role", help="role (jwt, kubernetes, oidc) or certificate role name (cert); "
                "oidc: unset, the mount's default_role"),
        Setting("token", secret=True, env=("VAULT_TOKEN",),
                help=f"auth = token: the Vault token: {REF}; in clear only from the "
                     "environment (VAULT_TOKEN); unset: token_file"),
        Setting("token_file", "path", "~/.vault-token",
                help="auth = token: where `vault login` / `bao login` left the token, when "
                     "token is unset; unset, a token_helper in the Vault CLI's configuration "
                     "(~/.vault, VAULT_CONFIG_PATH) is asked first"),
        Setting("role_id", help=f"approle: role ID, or where it is kept: {REF}"),
        Setting("role_id_file", "path", help='deprecated: role_id = "file:PATH"'),
        Setting("secret_id", secret=True, help=f"approle: secret ID: {REF}"),
        Setting("secret_id_file", "path", help='deprecated: secret_id = "file:PATH"'),
        Setting("secret_id_env", help='deprecated: secret_id = "env:VARIABLE"'),
        Setting("username", help="userpass, ldap: user name"),
        Setting("password", secret=True,
                help=f"userpass, ldap: password: {REF}; unset: asked on a terminal"),
        Setting("password_file", "path", help='deprecated: password = "file:PATH"'),
        Setting("password_env", help='deprecated: password = "env:VARIABLE"'),
        Setting("jwt", secret=True,
                help=f"jwt, kubernetes: the JWT: {REF} (kubernetes: file:{KUBERNETES_TOKEN})"),
        Setting("jwt_file", "path", help='deprecated: jwt = "file:PATH"'),
        Setting("callback_host", default="localhost", credential=False,
                help="oidc: host of the browser's redirect, as the role's allowed_redirect_uris "
                     "and the identity provider name it: localhost, 127.0.0.1 or ::1"),
        Setting("callback_port", "int", 8250, credential=False,
                help="oidc: loopback port the browser's redirect comes back to "
                     "(http://localhost:8250/oidc/callback, as `vault login -method=oidc`)"),
        # -- what to print
        Setting("secret", help="KV secret as `kv get` takes it: mount/path, e.g. secret/gateway"),
        Setting("field", help="field of the secret or read to print"),
        Setting("kv_version", "int", help="1 or 2; unset: detected from the mount"),
        Setting("kv_mount", help="KV mount when kv_version is set and the mount has a slash"),
        Setting("version", "int", help="KV v2 version to read; default: the latest"),
        Setting("path", help="logical read of this path (dynamic secrets); lease = expiry"),
        Setting("identity_token", help="name of a Vault identity OIDC token role"),
    )

    # ------------------------------------------------------------ configuration

    def describe(self) -> str:
        c = self.config
        where = c.get("address", "?")
        if c.get("namespace"):
            where += f" namespace {c.get('namespace')}"
        if c.get("identity_token"):
            what = f"identity token role {c['identity_token']!r}"
        else:
            what = c.get("secret") or c.get("path") or "?"
            if c.get("field"):
                what += f" field {c['field']!r}"
        return f"vault {where} {what}"

    def _target(self) -> str:
        """Which of secret / path / identity_token is set; exactly one must be."""
        c = self.config
        chosen = [k for k in ("secret", "path", "identity_token") if c.get(k)]
        if len(chosen) != 1:
            raise ConfigError(
                "[vault] needs exactly one of secret, path, identity_token"
                + (f" (found {', '.join(chosen)})" if chosen else ""),
                hint='for example: secret = "secret/gateway" and field = "token"',
            )
        if chosen[0] == "secret" and c.get("kv_version") not in (None, 0, 1, 2):
            raise ConfigError(f"{c.source('kv_version')}: kv_version must be 1 or 2 (or unset "
                              "to detect it)")
        for name in ("secret", "path", "kv_mount"):
            if c.get(name) and not c[name].strip("/"):
                raise ConfigError(f"{c.source(name)}: empty path")
        return chosen[0]

    def identity_sources(self, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """Every secret setting's file or variable, and where a token of `vault login`
        comes from when ``token`` is unset: the token file, or the Vault CLI's
        configuration and the token helper it names. A helper's token is the output of a
        command, which no run may start just to compute a cache key: its path and content
        stand for it, so a new helper (or configuration) is a new identity, but a new
        token inside the same helper is not (docs/backends/vault.md says so)."""
        c = self.config
        files, variables = secretref.references(
            c, [(name, spec.aliases) for name, spec in SECRETS.items()], env)
        if c["auth"] == "token" and not c.get("token"):
            if c.source("token_file") != "default":
                files.append(secretref.expand_home(c["token_file"], env))
                return files, variables
            config_path = _vault_config_path(env)
            files.append(config_path)
            variables.append("VAULT_CONFIG_PATH")
            try:
                helper = _token_helper(config_path)
            except ConfigError:  # the run itself says what is wrong with it
                helper = None
            files.append(helper or secretref.expand_home(c["token_file"], env))
        return files, variables

    def _mount(self) -> str:
        return (self.config.get("mount") or self.config["auth"]).strip("/")

    def _state_name(self) -> str:
        """Login tokens are shared by every secret read with the same login settings. The
        name holds what older versions put there (role_id or role_id_file, jwt_file), so
        moving from a deprecated setting to its reference keeps the saved login."""
        c = self.config
        role_id, role_id_file = self._login_ref("role_id")
        jwt, jwt_file = self._login_ref("jwt")
        parts = [c.get("address"), c.get("namespace"), c.get("auth"), c.get("role"), role_id,
                 role_id_file, c.get("username"), jwt_file or jwt, c.get("client_cert")]
        parts.append(self._mount())
        return "login:" + "\0".join("" if p is None else str(p) for p in parts)

    def _login_ref(self, name: str) -> tuple[str | None, str | None]:
        """(value, path) standing for a login setting in the state name: the path of a
        file reference, else the reference; a JWT in clear only as a digest."""
        try:
            found = secretref.find(self.config, name, SECRETS[name].aliases)
            if found is None:
                return None, None
            ref = found.ref
        except ConfigError:  # the run itself reports it
            return None, None
        if ref.kind == secretref.FILE:
            return None, found.value.partition(":")[2] if found.alias else ref.target
        if ref.in_clear and name == "jwt":
            import hashlib

            return "sha256:" + hashlib.sha256(found.value.encode()).hexdigest()[:24], None
        return found.value, None

    def _secret(self, request, name: str, what: str | None = None,
                missing_ok: bool = False) -> str | None:
        """The secret setting ``name`` (or its deprecated alias) points at; None if unset."""
        spec = SECRETS[name]
        return secretref.resolve(request, self.config, name, what or spec.what,
                                 clear=spec.clear, aliases=spec.aliases,
                                 missing_ok=missing_ok or spec.missing_ok)

    # ------------------------------------------------------------ the run

    def fetch(self, request) -> Credential:
        target = self._target()
        vault = Vault(self.config, request)
        origin = self._use_token(vault, request)
        try:
            return self._read(vault, target, request)
        except _Refused as exc:
            if origin != "cached":
                raise exc.error from None
            # A cached login token can be revoked behind our back: sign in again, once.
            request.log.debug("the cached Vault token was refused; signing in again")
            request.state.delete(self._state_name())
            self._login(vault, request)
            try:
                return self._read(vault, target, request)
            except _Refused as again:
                raise again.error from None

    def _use_token(self, vault: Vault, request) -> str:
        """Give ``vault`` a token: "static" (token auth), "cached" or "login"."""
        if self.config["auth"] == "token":
            vault.set_token(self._static_token(request), None)
            return "static"
        state = request.state.load(self._state_name())
        now = request.now()
        if state and isinstance(state.get("token"), str) and state["token"]:
            request.log.secret(state["token"])
            expires_at = state.get("expires_at")
            margin = self.config["min_validity"] + TOKEN_MARGIN
            if expires_at is None or expires_at - now > margin:
                vault.set_token(state["token"], expires_at)
                request.log.debug("using the cached Vault login token")
                return "cached"
            if state.get("renewable") and expires_at > now + 1:
                renewed = self._renew(vault, request, state)
                if renewed and (renewed.get("expires_at") is None
                                or renewed["expires_at"] - now > margin):
                    vault.set_token(renewed["token"], renewed["expires_at"])
                    return "cached"
        self._login(vault, request)
        return "login"

    def _static_token(self, request) -> str:
        """``token`` (VAULT_TOKEN, or a reference), else a ``token_file`` set in a
        credhelper source, else what the Vault CLI would use: the token helper its
        configuration names, or the file `vault login` wrote."""
        token = self._secret(request, "token")
        if token is not None:
            return token
        c = self.config
        if c.source("token_file") == "default":
            config_path = _vault_config_path(request.env)
            helper = _token_helper(config_path)
            if helper is not None:
                return self._helper_token(request, helper, config_path)
        path = secretref.expand_home(c["token_file"], request.env)
        if not os.path.exists(path):
            raise LoginRequired(
                f"no Vault token: VAULT_TOKEN is unset and {path} does not exist",
                hint="sign in with `bao login` / `vault login`, set VAULT_TOKEN, "
                "or choose another [vault] auth method",
            )
        token = secretref.read_file(path, "Vault token", c.source("token_file")).strip()
        if not token:
            raise LoginRequired(f"the Vault token file {path} is empty",
                                hint="sign in with `bao login` / `vault login`")
        request.log.secret(token)
        return secretref.check(token, "Vault token", secretref.Ref(secretref.FILE, path),
                               c.source("token_file"))

    def _helper_token(self, request, helper: str, config_path: str) -> str:
        """`HELPER get`, as the Vault CLI runs its token helper: its standard output is
        the token. Bounded by the run's deadline (a sign-in's, when a person may be asked
        to unlock the store behind it); nothing is read from or shown to the person here."""
        import subprocess

        where = f"token_helper in {config_path}"
        hint = ("sign in with `vault login` / `bao login` (which stores the token through the "
                "helper), or set VAULT_TOKEN")
        if not os.path.isabs(helper):
            raise ConfigError(f"the Vault token helper {helper!r} is not an absolute path "
                              f"({where})", hint="the Vault CLI runs only an absolute path")
        if not os.path.isfile(helper):
            raise ConfigError(f"the Vault token helper {helper} does not exist ({where})")
        deadline = request.login_deadline if request.interactive else request.deadline
        seconds = max(0.1, deadline - request.monotonic())
        kwargs: dict = {}
        if os.name == "nt":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        request.log.debug(f"asking the Vault token helper {helper} ({where})")
        try:
            done = subprocess.run([helper, "get"], stdin=subprocess.DEVNULL, capture_output=True,
                                  env=dict(request.env), timeout=seconds, **kwargs)
        except subprocess.TimeoutExpired:
            raise BackendUnavailable(f"the Vault token helper {helper} did not answer within "
                                     f"{seconds:.0f}s ({where})") from None
        except OSError as exc:
            raise ConfigError(f"cannot run the Vault token helper {helper}: "
                              f"{exc.strerror or exc.__class__.__name__} ({where})") from None
        output = done.stdout.decode("utf-8", "replace")
        token = output.strip()
        request.log.secret(token)
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            reason = f": {request.log.redact(said[0])[:200]}" if said else ""
            raise LoginRequired(f"the Vault token helper {helper} failed (exit "
                                f"{done.returncode}){reason}", hint=hint)
        if not token:
            raise LoginRequired(f"the Vault token helper {helper} has no token", hint=hint)
        if len(output) > secretref.MAX_BYTES:
            raise ConfigError(f"the Vault token helper {helper} printed more than "
                              f"{secretref.MAX_BYTES // 1024} KiB: not a token ({where})")
        if any(ch in token for ch in "\r\n\0"):
            raise ConfigError(f"the Vault token helper {helper} printed several lines or a NUL "
                              f"character: not one token ({where})")
        return token

    def _renew(self, vault: Vault, request, state: dict) -> dict | None:
        vault.set_token(state["token"], state.get("expires_at"))
        try:
            body = vault.call("renew the Vault token", vault.client.auth.token.renew_self)
        except (_Refused, AccessDenied) as exc:
            request.log.debug(f"renewing the Vault token failed: {_message(exc)}")
            return None
        return self._save_login(request, _object(body.get("auth")), "renewed")

    def _login(self, vault: Vault, request) -> None:
        """Sign in with the configured method through hvac's login call for it; keep the
        token in the private state."""
        auth, mount = self.config["auth"], self._mount()
        if auth == "token":
            raise AccessDenied("the Vault token was refused",
                               hint="sign in again with `bao login` / `vault login`")
        if auth == "oidc":
            response = self._oidc_login(vault, request, mount)
        else:
            fn, kwargs = self._login_call(vault, auth, mount, request)
            vault.set_token(None, None)
            try:
                response = vault.call(f"{auth} login", fn, login=True, use_token=False, **kwargs)
            except _Refused as exc:
                raise exc.error from None
        login = self._save_login(request, _object(response.get("auth")), "login")
        if login is None:
            raise AccessDenied(f"the {auth} login at auth/{mount} returned no token")
        vault.set_token(login["token"], login["expires_at"])

    def _save_login(self, request, auth: dict, how: str) -> dict | None:
        token = auth.get("client_token")
        if not isinstance(token, str) or not token:
            return None
        request.log.secret(token)
        ttl = _seconds(auth.get("lease_duration"))
        doc = {
            "token": token,
            "accessor": _text(auth.get("accessor")),
            "policies": _texts(auth.get("policies")) or _texts(auth.get("token_policies")),
            "renewable": bool(auth.get("renewable")),
            "ttl": ttl,
            "expires_at": request.now() + ttl if ttl else None,
            "obtained_at": request.now(),
            "how": how,
            "auth": self.config["auth"],
        }
        request.state.save(self._state_name(), doc)
        request.log.debug(f"Vault {self.config['auth']} {how}: token accessor {doc['accessor']}, "
                          f"ttl {ttl}s, policies {', '.join(doc['policies'])}")
        return doc

    def _login_call(self, vault: Vault, auth: str, mount: str, request):
        """hvac's login method for ``auth`` and its arguments (the secrets read here)."""
        c, methods = self.config, vault.client.auth
        if auth == "approle":
            role_id = self._secret(request, "role_id")
            if not role_id:
                raise ConfigError("missing setting [vault] role_id for auth = approle",
                                  hint=f"the role ID, or where it is kept: {REF}")
            secret_id = self._secret(request, "secret_id")  # None: a role without one
            return methods.approle.login, dict(role_id=role_id, secret_id=secret_id,
                                               mount_point=mount)
        if auth in ("userpass", "ldap"):
            username = c.require("username")
            found = secretref.find(c, "password", SECRETS["password"].aliases)
            password = (secretref.read(request, found, f"{auth} password", missing_ok=True,
                                       clear=secretref.ENVIRONMENT) if found else None)
            if password is None:
                password = self._prompt_password(request, auth, username, found)
                # A person just typed it, maybe for longer than `timeout`: the login that
                # follows has the sign-in's deadline, as the prompt had.
                vault.request = vault.request.signing_in()
            if auth == "userpass":  # hvac puts the user name in the path as it is
                return methods.userpass.login, dict(username=_quote(username),
                                                    password=password, mount_point=mount)
            return methods.ldap.login, dict(username=username, password=password,
                                            mount_point=mount)
        if auth in ("jwt", "kubernetes"):
            token = self._secret(request, "jwt", f"{auth} JWT")
            if token is None and auth == "kubernetes":
                token = secretref.value_of(request, f"file:{KUBERNETES_TOKEN}", "kubernetes JWT",
                                           "the service account token, the default of [vault] jwt")
            if token is None:
                raise ConfigError("missing setting [vault] jwt for auth = jwt",
                                  hint='where the JWT is kept, e.g. jwt = '
                                  '"file:/run/secrets/ci.jwt" or "env:CI_JOB_JWT"')
            role = c.get("role")
            if auth == "kubernetes":
                if not role:
                    raise ConfigError("missing setting [vault] role for auth = kubernetes")
                return methods.kubernetes.login, dict(role=role, jwt=token, mount_point=mount)
            return methods.jwt.jwt_login, dict(role=role or "", jwt=token, path=mount)
        if auth == "cert":
            if not c.get("client_cert") or not c.get("client_key"):
                raise ConfigError("auth = cert needs [vault] client_cert and client_key",
                                  hint="or VAULT_CLIENT_CERT and VAULT_CLIENT_KEY")
            if not c["address"].lower().startswith("https://"):
                raise ConfigError("auth = cert needs an https:// address (a TLS client "
                                  "certificate)")
            for name in ("client_cert", "client_key"):  # hvac would raise FileNotFoundError
                if not os.path.isfile(c[name]):
                    raise ConfigError(f"TLS file not found: {c[name]} ({c.source(name)})")
            # The certificate is presented by the session's TLS context (credhelper.net);
            # hvac only checks that the files exist.
            return methods.cert.login, dict(name=c.get("role") or "", cert_pem=c["client_cert"],
                                            key_pem=c["client_key"], mount_point=mount)
        raise ConfigError(f"unknown auth method {auth!r}")

    def _oidc_login(self, vault: Vault, request, mount: str) -> dict:
        """What `vault login -method=oidc` does: ask Vault for the identity provider's
        authorization URL for our loopback redirect, open it in the browser, wait for the
        redirect to come back with state and code, and hand them to Vault's callback,
        which answers with the Vault token. Only an interactive run may ask, and all of
        it fits in the sign-in's deadline.

        Both calls go through hvac's adapter, not hvac's ``oidc_authorization_url_request``
        and ``oidc_callback``: those cannot send ``client_nonce``, with which Vault binds
        the callback to the process that asked for the URL, so that a code seen by anyone
        else on this machine (another program on the port, a browser extension) cannot be
        spent for our token. (The OpenID nonce is Vault's own business.)"""
        from urllib.parse import parse_qs, urlsplit

        from .device_flow import Presenter

        c = self.config
        role = c.get("role") or ""  # empty: Vault uses the mount's default_role
        where = f"Vault's oidc sign-in at {c['address']} (auth/{mount}"
        where += f", role {role})" if role else ")"
        host, port = _callback_address(c)
        request.require_interactive(
            f"{where} needs a person in a browser",
            "run `credhelper-vault login` (or the helper in a terminal) once; later runs "
            "reuse and renew the Vault token without asking")
        shown = Presenter.of(request, self)
        if not shown.can_open_browser() and not request.stderr_is_tty:
            raise LoginRequired(f"{where} needs a browser, and none can be opened here (nor is "
                                "there a terminal to show its address on)",
                                hint="set [vault] browser_command, or run `credhelper-vault "
                                "login` in a terminal")
        redirect_uri = f"http://{'[::1]' if host == '::1' else host}:{port}/oidc/callback"
        request = request.signing_in()  # a person is waiting: the sign-in's deadline
        vault.request = request
        vault.set_token(None, None)
        client_nonce = secrets.token_urlsafe(24)
        request.log.secret(client_nonce)
        with _Callback(host, port, c.source("callback_port"), request.login_deadline) as callback:
            try:
                body = vault.call("oidc sign-in (auth_url)", vault.client.adapter.post,
                                  f"/v1/auth/{_quote(mount)}/oidc/auth_url", login=True,
                                  json={"role": role, "redirect_uri": redirect_uri,
                                        "client_nonce": client_nonce})
            except _Refused as exc:
                raise exc.error from None
            auth_url = _text(_object(body.get("data")).get("auth_url"))
            if auth_url is None or urlsplit(auth_url).scheme not in ("https", "http"):
                raise AccessDenied(
                    f"Vault gave no sign-in URL for {where} with redirect_uri {redirect_uri}",
                    hint="the role's allowed_redirect_uris must hold this redirect (set [vault] "
                    "callback_host / callback_port to one it allows), and Vault must reach its "
                    "identity provider; the Vault server's log says which")
            state = (parse_qs(urlsplit(auth_url).query).get("state") or [""])[0]
            shown.browser(auth_url, f"Vault {urlsplit(c['address']).hostname}")
            answer = callback.wait(state)
            if answer is None:
                raise LoginRequired(
                    f"{where} was not completed in the browser in time",
                    hint="run `credhelper-vault login` in a terminal, or run the helper again: "
                    "it opens a new sign-in")
            request.log.secret(answer.get("code"))
            request.log.secret(answer.get("id_token"))
            try:
                response = self._oidc_callback(vault, request, mount, answer, client_nonce,
                                               where)
            except _Refused as exc:
                callback.finish(exc.error.message)
                raise exc.error from None
            except CredhelperError as exc:
                callback.finish(exc.message)
                raise
            callback.finish(None)
            return response

    def _oidc_callback(self, vault: Vault, request, mount: str, answer: dict,
                       client_nonce: str, where: str) -> dict:
        """Vault's side of the redirect: the code (or an implicit flow's id_token) for a
        Vault token. A form_post redirect is first posted to Vault as it came (which stores
        the ID token with the state), then completed with the same state and code, as the
        Vault CLI does."""
        from .device_flow import oauth_error

        if answer.get("error"):
            raise oauth_error(answer["error"], answer.get("error_description"), where,
                              "run the helper again (or `credhelper-vault login`)", "device")
        if not answer.get("code") and not answer.get("id_token"):
            raise AccessDenied(f"the browser came back from {where} without a code")
        fields = {"state": answer.get("state", ""), "code": answer.get("code", ""),
                  "client_nonce": client_nonce}
        path = f"/v1/auth/{_quote(mount)}/oidc/callback"
        if answer.get("posted"):
            try:  # the answer is a page meant for a browser: only the GET's counts
                vault._send("oidc sign-in (form_post)", vault.client.adapter.post, (path,),
                            {"json": {**fields, "id_token": answer.get("id_token", "")}},
                            login=True)
            except (AccessDenied, _Refused):  # Vault answers 400 to a redirect not its UI's
                pass
        else:
            fields["id_token"] = answer.get("id_token", "")
        return vault.call("oidc sign-in (callback)", vault.client.adapter.get, path, login=True,
                          params=fields)

    def _prompt_password(self, request, auth: str, username: str,
                         found: secretref.Found | None) -> str:
        hint = ("run `credhelper-vault login` in a terminal, or set [vault] password "
                f"({REF}) for unattended use")
        what = f"Vault {auth} login for {username!r} needs a password"
        if found is not None and found.ref.kind == secretref.ENV:
            what += f" ({found.ref.target} is not set)"
        request.require_interactive(what, hint)
        question = f"Vault {auth} password for {username}"
        if request.stdin_is_tty:
            import getpass  # prompts on the terminal (/dev/tty), never on stdout

            try:
                password: str | None = getpass.getpass(question + ": ")
            except (EOFError, OSError):
                raise LoginRequired("no password was entered", hint) from None
        else:  # run by the app: nobody reads stderr, so ask in a desktop dialog
            from .device_flow import Presenter
            from .prompt import ask

            password = ask(question, request.login_deadline - request.monotonic() - 2,
                           request.env, title=Presenter.of(request, self).asking)
            if password is None:
                raise LoginRequired(f"{what}, and there is no terminal or desktop dialog to "
                                    "ask on", hint)
        if not password:
            raise LoginRequired("no password was entered", hint)
        request.log.secret(password)
        return password

    def _read(self, vault: Vault, target: str, request) -> Credential:
        c = self.config
        now = request.now()
        details = {"source": self.describe(), "auth": c["auth"]}
        if vault.accessor_hint:
            details["token_accessor"] = vault.accessor_hint
        if target == "identity_token":
            name = c["identity_token"]
            body = vault.call(f"identity token role {name!r}",
                              vault.client.secrets.identity.generate_signed_id_token, name=name)
            token = _object(body.get("data")).get("token")
            if not isinstance(token, str) or not token:
                raise AccessDenied(f"Vault returned no identity token for role {name!r}")
            request.log.secret(token)
            # Relative lifetimes (ttl, exp - iat) are immune to a skewed laptop clock.
            expires_at = request.fresh_token_expiry(
                token, f"Vault at {vault.address}", sent_at=now,
                expires_in=_seconds(_object(body.get("data")).get("ttl")))
            return Credential(token, expires_at, details=details)

        data: object
        # A KV secret (or a read without a lease) has no expiry of its own.
        static_age = (f"max_age, set by {c.source('max_age')}" if c.get("max_age") else
                      f"the default max_age for a secret without expiry "
                      f"({DEFAULT_STATIC_AGE:.0f}s)")
        origin = "the backend"
        if target == "secret":
            data, where, extra = self._read_kv(vault, request)
            expires_at = now + (c.get("max_age") or DEFAULT_STATIC_AGE)
            origin = static_age
            details.update(extra)
        else:
            where = c["path"].strip("/")
            body = vault.call(where, vault.client.read, _quote(where), secret_data=("data",))
            data = body.get("data")
            lease = _seconds(body.get("lease_duration"))
            if lease:
                expires_at = now + lease
                details["lease_duration"] = f"{lease:.0f}s"
            else:
                expires_at = now + (c.get("max_age") or DEFAULT_STATIC_AGE)
                origin = static_age
            # A lease dies with the token that made it.
            if vault.token_expires_at is not None and vault.token_expires_at < expires_at:
                expires_at = vault.token_expires_at
                origin = "the Vault token's expiry"
        if not isinstance(data, dict):
            raise AccessDenied(f"Vault returned no data at {where}")
        token = _pick_field(data, c.get("field"), where, c.source("field"))
        request.log.secret(token)
        return Credential(token, expires_at, details=details, expiry_origin=origin)

    def _read_kv(self, vault: Vault, request) -> tuple[object, str, dict]:
        c = self.config
        secret = c["secret"].strip("/")
        version = c.get("kv_version") or 0
        if version:
            mount = (c.get("kv_mount") or secret.split("/", 1)[0]).strip("/")
            if not (secret + "/").startswith(mount + "/"):
                raise ConfigError(f"{c.source('kv_mount')}: secret {secret!r} is not under "
                                  f"kv_mount {mount!r}")
        else:
            mount, version = self._detect_kv(vault, secret)
        rest = secret[len(mount):].strip("/")
        if not rest:
            raise ConfigError(f"{c.source('secret')}: {secret!r} names the KV mount {mount!r}, "
                              "not a secret in it", hint='for example: secret = "secret/gateway"')
        kv = vault.client.secrets.kv
        if version == 2:
            body = vault.call(f"KV v2 secret {secret}", kv.v2.read_secret_version, path=rest,
                              secret_data=("data", "data"),
                              version=c.get("version") or None, mount_point=mount,
                              raise_on_deleted_version=True)
            outer = _object(body.get("data"))
            meta = _object(outer.get("metadata"))
            if meta.get("deletion_time") or meta.get("destroyed"):
                raise AccessDenied(f"KV v2 secret {secret} version {meta.get('version')} is "
                                   "deleted")
            return outer.get("data"), secret, {"kv_version": 2, "version": meta.get("version")}
        if c.get("version"):
            raise ConfigError(f"{c.source('version')}: KV v1 secrets have no versions")
        body = vault.call(f"KV v1 secret {secret}", kv.v1.read_secret, path=rest, mount_point=mount,
                          secret_data=("data",))
        return body.get("data"), secret, {"kv_version": 1}

    def _detect_kv(self, vault: Vault, secret: str) -> tuple[str, int]:
        """Mount and KV version of ``secret``, as the Vault CLI finds them (the one read
        hvac has no method for: it goes through hvac's adapter all the same)."""
        body = vault.call(f"the mount of {secret}", vault.client.adapter.get,
                          f"/v1/sys/internal/ui/mounts/{_quote(secret)}")
        data = _object(body.get("data"))
        mount = (_text(data.get("path")) or "").strip("/")
        if data.get("type") not in ("kv", "generic") or not mount:
            raise ConfigError(
                f"{self.config.source('secret')}: {secret!r} is not in a KV mount "
                f"(mount {mount or '?'!r} is {data.get('type') or 'unknown'})",
                hint="for other secrets engines use [vault] path instead of secret",
            )
        namespace = (self.config.get("namespace") or "").strip("/")
        if namespace and mount.startswith(namespace + "/"):
            mount = mount[len(namespace) + 1:]
        version = str(_object(data.get("options")).get("version") or "1")
        return mount, 2 if version == "2" else 1

    # ------------------------------------------------------------ login / logout / status / doctor

    def login(self, request) -> None:
        """Sign in to Vault now with the configured auth method (userpass and ldap ask for
        the password, oidc opens the browser; approle, jwt, kubernetes and cert use their
        settings) and keep the Vault token, renewed while it can be, for later runs. With
        auth = token, sign in with `bao login` / `vault login` instead."""
        if self.config["auth"] == "token":
            raise ConfigError(
                "auth = token has no sign-in of its own",
                hint="sign in with `bao login` / `vault login` (writes ~/.vault-token) or set "
                "VAULT_TOKEN",
            )
        vault = Vault(self.config, request)
        self._login(vault, request)

    def logout(self, request) -> None:
        name = self._state_name()
        state = request.state.load(name) if self.config["auth"] != "token" else None
        if state and state.get("token"):
            request.log.secret(state["token"])
            vault = Vault(self.config, request)
            vault.set_token(state["token"], state.get("expires_at"))
            try:
                vault.call("revoke the Vault token", vault.client.auth.token.revoke_self)
            except (_Refused, BackendUnavailable, AccessDenied) as exc:
                request.log.warning(f"could not revoke the Vault token: {_message(exc)}")
        request.state.delete(name)

    def _token_for_status(self, vault: Vault, request) -> str | None:
        if self.config["auth"] == "token":
            try:
                vault.set_token(self._static_token(request), None)
            except (LoginRequired, ConfigError, BackendUnavailable):
                return None
            found = secretref.find(self.config, "token")
            if found is None:
                if self.config.source("token_file") == "default":
                    try:
                        helper = _token_helper(_vault_config_path(request.env))
                    except ConfigError:
                        helper = None
                    if helper:
                        return f"token helper {helper}"
                return self.config["token_file"]
            return "VAULT_TOKEN" if found.backend_variable else found.where
        state = request.state.load(self._state_name())
        if not state or not state.get("token"):
            return None
        request.log.secret(state["token"])
        vault.set_token(state["token"], state.get("expires_at"))
        return f"cached {self.config['auth']} login"

    def _lookup(self, vault: Vault) -> dict:
        body = vault.call("look up the Vault token", vault.client.auth.token.lookup_self)
        return _object(body.get("data"))

    def status(self, request) -> dict:
        vault = Vault(self.config, request)
        origin = self._token_for_status(vault, request)
        if origin is None:
            return {"vault token": "none (the next run signs in)" if self.config["auth"] != "token"
                    else "none: set VAULT_TOKEN or run `bao login`"}
        facts = {"vault token": origin}
        try:
            data = self._lookup(vault)
        except (_Refused, AccessDenied, BackendUnavailable) as exc:
            facts["token problem"] = _message(exc)
            return facts
        facts.update(_token_facts(data))
        return facts

    def diagnose(self, request) -> list[tuple[str, str, str]]:
        checks: list[tuple[str, str, str]] = []
        try:
            self._target()
        except ConfigError as exc:
            checks.append(("fail", "vault target", exc.message))
        # Where each secret of this auth method comes from; deprecated settings.
        checks += secretref.checks(request, self.config,
                                   [SECRETS[n] for n in SECRETS_OF.get(self.config["auth"], ())])
        vault = Vault(self.config, request)
        try:  # reachability and TLS are doctor's generic checks; here: what Vault says
            health = vault.health()
        except BackendUnavailable as exc:
            return checks + [("fail", "vault reachable", exc.message)]
        if health.get("sealed"):
            checks.append(("fail", "vault seal",
                           "the server is sealed: an operator must unseal it"))
        elif not health.get("initialized", True):
            checks.append(("fail", "vault seal", "the server is not initialized"))
        else:
            checks.append(("ok", "vault reachable",
                           f"{health.get('version', '?')}, unsealed"
                           + (", standby" if health.get("standby") else "")))
        origin = self._token_for_status(vault, request)
        if origin is None:
            checks.append(("warn" if self.config["auth"] != "token" else "fail", "vault token",
                           "none yet: the next run signs in" if self.config["auth"] != "token"
                           else "no VAULT_TOKEN and no token file"))
            return checks
        try:
            data = self._lookup(vault)
        except (_Refused, AccessDenied, BackendUnavailable) as exc:
            checks.append(("fail", "vault token", f"{origin}: {_message(exc)}"))
            return checks
        facts = _token_facts(data)
        checks.append(("ok", "vault token",
                       f"{origin}: " + ", ".join(f"{k} {v}" for k, v in facts.items())))
        ttl = data.get("ttl") or 0
        if ttl and ttl < 3600 and self._target_or_none() == "path":
            checks.append(("warn", "vault token ttl",
                           f"{ttl}s: dynamic leases end with the token, so credentials live "
                           "at most that long"))
        return checks

    def _target_or_none(self) -> str | None:
        try:
            return self._target()
        except ConfigError:
            return None


# ---------------------------------------------------------------- talking to Vault


class _Refused(Exception):
    """A 403 on a read: maybe only the cached token is stale, so the caller may retry."""

    def __init__(self, error: AccessDenied):
        super().__init__(error.message)
        self.error = error


class Vault:
    """One hvac client for one run: TLS as configured, every request bounded by the
    deadline and retried by the one rule of ``credhelper.net`` (in the hvac adapter), every
    failure mapped to a contract error (``_error``)."""

    def __init__(self, config, request) -> None:
        import hvac

        self.config, self.request, self.log = config, request, request.log
        self.address = config["address"]
        self.token_expires_at: float | None = None
        self.accessor_hint: str | None = None
        # What the call under way is, for the adapter's retry rule and messages.
        self.what, self.idempotent = "", True
        # Plain http (loopback only) needs no TLS file, so a stale one is no error there.
        https = self.address.lower().startswith("https://")
        ca, cert, key = (config.get(k) if https else None
                         for k in ("ca_cert", "client_cert", "client_key"))
        session = request.session(ca, cert, key,
                                  source=config.source("ca_cert") if ca else "ca_cert")
        self.client = hvac.Client(
            url=self.address,
            token="",  # not None: hvac would read VAULT_TOKEN / ~/.vault-token on its own
            namespace=config.get("namespace"),
            session=session,
            timeout=max(0.1, request.deadline - request.monotonic()),
            adapter=_adapter_class(),
        )
        self.client.adapter.vault = self

    def set_token(self, token: str | None, expires_at: float | None) -> None:
        self.client.token = token
        self.token_expires_at = expires_at

    def health(self) -> dict:
        response = self._send("health check", self.client.sys.read_health_status, (), {
            "method": "GET", "standby_ok": True, "sealed_code": 200, "uninit_code": 200,
            "performance_standby_code": 200}, login=False)
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def call(self, what: str, fn, *args, login: bool = False, secret_data: tuple[str, ...] = (),
             **kwargs) -> dict:
        """The JSON body of hvac API call ``fn(*args, **kwargs)``; raises a contract error
        (or _Refused) otherwise. A login is the one POST that is not idempotent (a one-use
        secret ID). ``secret_data``: where in the body a read's secret values are (every
        one is masked in the log, see _register)."""
        response = self._send(what, fn, args, kwargs, login)
        if response is None:  # hvac's read() answers a 404 so
            raise AccessDenied(f"no such path in Vault: {what}",
                               hint="check [vault] secret / path / identity_token, and namespace")
        if response.status_code == 204:
            return {}
        try:
            body = response.json()
        except ValueError:
            raise BackendUnavailable(f"Vault answered {what} with something that is not JSON "
                                     f"(HTTP {response.status_code})") from None
        if not isinstance(body, dict):
            raise BackendUnavailable(f"Vault answered {what} with unexpected JSON")
        self._register(body, secret_data)
        self.accessor_hint = _text(_object(body.get("auth")).get("accessor")) or self.accessor_hint
        for warning in _texts(body.get("warnings")):
            self.log.debug(f"Vault warning on {what}: {warning}")
        return body

    def _register(self, body: dict, secret_data: tuple[str, ...]) -> None:
        """Mask every secret of an answer before anything from it is logged: a warning may
        quote one. A login's (or renewal's) token, a wrapped answer's token, a new secret
        ID, an identity token, and every value of the secret data read (``secret_data``
        is its path in the body). Accessors are no secrets: status shows them."""
        auth, data = _object(body.get("auth")), _object(body.get("data"))
        for value in (auth.get("client_token"), _object(body.get("wrap_info")).get("token"),
                      data.get("secret_id"), data.get("token")):
            self.log.secret(_text(value))
        if secret_data:
            found: object = body
            for key in secret_data:
                found = _object(found).get(key)
            for value in _leaves(found):
                self.log.secret(value)

    def _send(self, what: str, fn, args: tuple, kwargs: dict, login: bool):
        """Run one hvac call; hvac's exceptions and transport failures become contract
        errors here, and only here."""
        import hvac.exceptions

        self.what, self.idempotent = what, not login
        try:
            return fn(*args, **kwargs)
        except hvac.exceptions.VaultError as exc:
            raise self._error(exc, what, login) from None
        except CredhelperError:
            raise  # the deadline (request.remaining), or an unreadable TLS file
        except Exception as exc:
            error = net.failure(exc, self.address, name="Vault", what=what,
                                ca_setting="[vault] ca_cert (or VAULT_CACERT)",
                                address_setting="[vault] address (or VAULT_ADDR)")
            if error is None:
                raise
            raise error from None

    def _error(self, exc, what: str, login: bool):
        """The contract error for hvac's exception ``exc`` (the adapter hands it the
        answer and the retry state): 4 for a sealed or failing server, 5 for a refusal."""
        import hvac.exceptions as hx

        response, retry = getattr(exc, "response", None), getattr(exc, "retry", None)
        status = response.status_code if response is not None else 0
        if response is not None:
            errors, request_id = _errors_of(response)
        else:  # raised by hvac itself, before any request
            errors, request_id = [str(exc.args[0]) if exc.args else exc.__class__.__name__], None
        said = "; ".join(errors)[:300] or f"HTTP {status}"
        said += f" (request id {request_id})" if request_id else ""
        path = _path_of(exc.url or "", self.address)
        if isinstance(exc, hx.VaultDown) and _sealed(status, response):
            return BackendUnavailable(f"Vault at {self.address} is sealed",
                                      hint="an operator must unseal it; a cached credential is "
                                      "served meanwhile while it stays valid")
        if isinstance(exc, (hx.RateLimitExceeded, hx.InternalServerError, hx.VaultNotInitialized,
                            hx.BadGateway, hx.VaultDown)) or status >= 500:
            said = said if said.startswith("HTTP ") else f"HTTP {status}: {said}"
            message = f"Vault could not serve {what}: {said}"
            return retry.error(message) if retry is not None else BackendUnavailable(message)
        if login:
            return AccessDenied(
                f"Vault refused the {what} at {path.rsplit('/login', 1)[0]}: {said}",
                hint="check the role, credentials and mount of the [vault] auth method")
        if isinstance(exc, hx.Forbidden):
            return _Refused(AccessDenied(
                f"permission denied by Vault for {what} ({path}): {said}",
                hint="the token was revoked or its policies do not allow this read; "
                "`credhelper-vault status` shows the token's policies"))
        if isinstance(exc, hx.InvalidPath):
            return AccessDenied(f"no such path in Vault: {what} ({path}): {said}",
                                hint="check [vault] secret / path / identity_token, and namespace")
        return AccessDenied(f"Vault refused {what} ({path}): {said}")


def _adapter_class() -> type:
    """hvac's RawAdapter, made to keep the contract for every request it sends: the time
    left before the run's deadline as its timeout, answers the retry rule of
    ``credhelper.net`` retries sent again (a sealed server is not), and every other
    answer of 400 or more raised as hvac's exception for its status (with the answer and
    the retry state attached, for ``Vault._error``). Answers are returned raw (the
    caller reads their JSON), and login tokens are never taken from them by hvac."""
    from hvac.adapters import RawAdapter
    from hvac.exceptions import VaultError
    from hvac.utils import raise_for_error

    class Adapter(RawAdapter):
        vault: Vault | None = None

        def request(self, method, url, headers=None, raise_exception=True, **kwargs):
            vault = self.vault
            retry = net.Retry(vault.request, idempotent=vault.idempotent)
            while True:
                kwargs["timeout"] = vault.request.remaining()
                response = super().request(method, url, headers=dict(headers or {}),
                                           raise_exception=False, **kwargs)
                status = response.status_code
                if status < 400:
                    return response
                if not _sealed(status, response) and retry.again(
                        status, response.headers.get("Retry-After"),
                        f"Vault answered {vault.what} with HTTP {status}", method):
                    continue
                # hvac's exception for the status, from the errors read as _errors_of
                # reads them (hvac's own reading fails on answers of another shape).
                errors = _errors_of(response)[0]
                try:
                    raise_for_error(method, response.url or url, status,
                                    None if errors else f"HTTP {status}", errors=errors or None)
                except VaultError as exc:
                    exc.response, exc.retry = response, retry
                    raise

    return Adapter


# ---------------------------------------------------------------- the browser's redirect

CALLBACK_PATH = "/oidc/callback"  # where `vault login -method=oidc` listens
CALLBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_FORM = 64 * 1024  # a form_post redirect carries a code or an ID token, nothing larger
PAGE = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        "<body><p>{text}</p></body></html>")


def _callback_address(config) -> tuple[str, int]:
    """(host, port) of the redirect, checked: only loopback, where nobody else on the
    network can reach the listener (the Vault CLI can listen wider; this helper never)."""
    host = str(config["callback_host"]).strip().strip("[]").lower()
    if host not in CALLBACK_HOSTS:
        raise ConfigError(f"{config.source('callback_host')}: callback_host must be localhost, "
                          f"127.0.0.1 or ::1 (got {str(config['callback_host'])[:60]!r})",
                          hint="the browser's redirect comes back to this machine only")
    port = config["callback_port"]
    if not 1 <= port <= 65535:
        raise ConfigError(f"{config.source('callback_port')}: callback_port must be a port "
                          f"number from 1 to 65535 (got {port})")
    return host, port


def _in_use(exc: OSError, bind: str, port: int, source: str) -> BackendUnavailable:
    """Exit 4 for a callback port that cannot be listened on, naming the setting."""
    import errno

    if exc.errno == errno.EADDRINUSE or getattr(exc, "winerror", None) in (10013, 10048):
        return BackendUnavailable(
            f"port {port} on {bind}, where the browser's sign-in comes back, is in use by "
            f"another program (callback_port, {source})",
            hint="finish or close the other sign-in (another `vault login -method=oidc`?), "
            "or set [vault] callback_port to another port that the role's "
            "allowed_redirect_uris and the identity provider allow")
    return BackendUnavailable(f"cannot listen on {bind} port {port} for the browser's sign-in "
                              f"(callback_port, {source}): {exc.strerror or exc}")


class _Callback:
    """A one-shot HTTP listener on loopback for the browser's redirect.

    Only a redirect carrying the state of this sign-in ends the wait: a tab left over
    from an earlier attempt (the port is fixed, so it reaches us) gets a page saying so
    and changes nothing. The browser's page for the redirect is answered once Vault has
    answered, so it says whether the sign-in worked."""

    def __init__(self, host: str, port: int, source: str, deadline: float) -> None:
        import errno
        import socket
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from socketserver import TCPServer

        self.deadline, self.state = deadline, ""
        self.answer: dict | None = None
        self.arrived, self.done = threading.Event(), threading.Event()
        self.answered = threading.Event()  # the redirect's page is written
        self.lock = threading.Lock()
        self.outcome: str | None = "the sign-in was abandoned"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a connection that sends nothing cannot hold the listener

            def do_GET(self):  # noqa: N802 (http.server's naming)
                outer._handle(self, self.path.partition("?")[2], posted=False)

            def do_POST(self):  # noqa: N802 - a form_post redirect
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_FORM:
                    outer._page(self, 413, "Too large", "This is not a sign-in redirect.")
                    return
                body = self.rfile.read(length).decode("utf-8", "replace")
                outer._handle(self, body, posted=True)

            def log_message(self, *args):  # the query holds the code: never log it
                pass

        class Server(ThreadingHTTPServer):
            # A thread per connection: a browser's idle preconnection must not hold up
            # the redirect behind it.
            daemon_threads = True
            # On Windows SO_REUSEADDR lets a second program bind a port in use (and take
            # our redirect): ask for the port exclusively there instead.
            allow_reuse_address = os.name != "nt"

            def server_bind(self):
                if os.name == "nt" and hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
                    self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
                TCPServer.server_bind(self)  # not HTTPServer's: no reverse DNS lookup
                self.server_name, self.server_port = host, self.server_address[1]

        class Server6(Server):
            address_family = socket.AF_INET6

        # A browser may take localhost to either address: listen on both, so that no
        # other program can hold the one we left free and get the redirect first.
        binds = [("127.0.0.1", Server), ("::1", Server6)] if host == "localhost" else \
            [(host, Server6 if host == "::1" else Server)]
        no_ipv6 = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
        self.servers: list = []
        try:
            for bind, kind in binds:
                try:
                    self.servers.append(kind((bind, port), Handler))
                except OSError as exc:
                    if host == "localhost" and bind == "::1" and exc.errno in no_ipv6:
                        continue  # a machine without IPv6: 127.0.0.1 is all there is
                    raise _in_use(exc, bind, port, source) from None
        except BaseException:
            for server in self.servers:
                server.server_close()
            raise
        for server in self.servers:
            threading.Thread(target=server.serve_forever, name="vault-oidc",
                             daemon=True).start()

    def __enter__(self) -> _Callback:
        return self

    def __exit__(self, *exc: object) -> None:
        import time

        self.done.set()  # a redirect still waiting for its page gets the abandoned one
        if self.answer is not None:  # let its thread write the page before the run ends
            self.answered.wait(max(0.0, min(2.0, self.deadline + 1.0 - time.monotonic())))
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def _handle(self, handler, query: str, posted: bool) -> None:
        import time
        from urllib.parse import parse_qs

        if handler.path.partition("?")[0] != CALLBACK_PATH:
            self._page(handler, 404, "Not found", "This is not a sign-in redirect.")
            return
        try:
            fields = {k: v[0] for k, v in parse_qs(query, max_num_fields=20).items()}
        except ValueError:  # more fields than any redirect has
            fields = {}
        with self.lock:
            ours = self.answer is None and bool(self.state) and secrets.compare_digest(
                fields.get("state", "").encode(), self.state.encode())
            if ours:
                self.answer = {**fields, "posted": posted}
        if not ours:
            self._page(handler, 400, "Sign-in out of date",
                       "This page belongs to an earlier or another sign-in. Use the newest "
                       "sign-in tab, or start again.")
            return
        self.arrived.set()
        # The page waits for Vault's answer (never past the deadline) to say how it went.
        self.done.wait(max(0.0, self.deadline - time.monotonic()))
        try:
            if self.outcome is None:
                self._page(handler, 200, "Signed in",
                           "You are signed in to Vault. You can close this tab.")
            else:
                self._page(handler, 200, "Sign-in failed",
                           f"The sign-in failed: {self.outcome}")
        finally:
            self.answered.set()

    @staticmethod
    def _page(handler, status: int, title: str, text: str) -> None:
        import html

        from credhelper.providers.loopback import send_page

        send_page(handler, status, PAGE.format(title=html.escape(title), text=html.escape(text)))

    def wait(self, state: str) -> dict | None:
        """The redirect's fields for ``state`` once the browser brings them, or None when
        the deadline comes first."""
        import time

        with self.lock:
            self.state = state
        if not self.arrived.wait(max(0.0, self.deadline - time.monotonic())):
            return None
        return self.answer

    def finish(self, failure: str | None) -> None:
        """Give the browser its page: signed in (None), or why not."""
        self.outcome = failure
        self.done.set()


# ---------------------------------------------------------------- the Vault CLI's token helper

# `token_helper = "/path"` in the Vault CLI's HCL configuration (or "token_helper": "/path"
# in its JSON form). Only this one setting of the file matters here.
_TOKEN_HELPER_LINE = r'^\s*"?token_helper"?\s*[=:]\s*"((?:[^"\\]|\\.)*)"\s*,?\s*(?:(?:#|//).*)?$'


def _vault_config_path(env: Mapping[str, str]) -> str:
    """The Vault CLI's configuration file: VAULT_CONFIG_PATH, else ~/.vault."""
    return env.get("VAULT_CONFIG_PATH") or secretref.expand_home("~/.vault", env)


def _token_helper(config_path: str) -> str | None:
    """The token_helper the Vault CLI's configuration names, or None (no file, or no
    such line). A line that names one in a form not understood here is an error: running
    without the helper would silently take another token."""
    import re

    try:
        text = secretref.read_file(config_path, "Vault CLI configuration", "VAULT_CONFIG_PATH "
                                   "or ~/.vault")
    except ConfigError:
        if not os.path.exists(config_path):
            return None
        raise
    for line in text.splitlines():
        if "token_helper" not in line or line.lstrip().startswith(("#", "//")):
            continue
        found = re.match(_TOKEN_HELPER_LINE, line)
        if found is None:
            raise ConfigError(f"cannot read the token_helper line of {config_path}",
                              hint='write it as token_helper = "/absolute/path/to/helper"')
        return re.sub(r"\\(.)", r"\1", found.group(1)) or None
    return None


def _sealed(status: int, response) -> bool:
    return status == 503 and any("sealed" in e.lower() for e in _errors_of(response)[0])


# ---------------------------------------------------------------- small helpers


def _pick_field(data: dict, field: str | None, where: str, source: str) -> str:
    names = ", ".join(sorted(str(k) for k in data)) or "(none)"
    if not field:
        if len(data) == 1:
            field = next(iter(data))
        else:
            raise ConfigError(f"[vault] field is not set and {where} has {len(data)} fields",
                              hint=f"set field to one of: {names}")
    if field not in data:
        raise ConfigError(f"field {field!r} is not in {where} ({source})",
                          hint=f"fields there: {names}")
    value = data[field]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(f"field {field!r} of {where} is not a string",
                          hint=f"fields there: {names}")
    return str(value)


def _token_facts(data: dict) -> dict:
    """What status and doctor may show about a Vault token: never the token itself."""
    facts = {
        "accessor": data.get("accessor"),
        "display name": data.get("display_name"),
        "policies": ", ".join(_texts(data.get("policies"))) or "(none)",
        "ttl": f"{data.get('ttl')}s" if data.get("ttl") else "never expires",
        "renewable": "yes" if data.get("renewable") else "no",
    }
    if data.get("expire_time"):
        facts["token expires"] = data["expire_time"]
    if data.get("entity_id"):
        facts["entity"] = data["entity_id"]
    return {k: v for k, v in facts.items() if v is not None}


def _errors_of(response) -> tuple[list[str], str | None]:
    if response is None:
        return [], None
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip().splitlines()
        return ([text[0][:200]] if text else []), response.headers.get("X-Vault-Request-Id")
    if not isinstance(body, dict):
        return [], None
    errors = [e.replace("\n", " ") for e in _texts(body.get("errors"))]
    request_id = _text(body.get("request_id")) or response.headers.get("X-Vault-Request-Id")
    return errors, request_id


def _path_of(url: str, address: str) -> str:
    """The Vault path of a request URL (``secret/data/gateway``), for messages."""
    from urllib.parse import unquote, urlsplit

    path = urlsplit(url).path
    base = urlsplit(address).path.rstrip("/")
    if base and path.startswith(base):
        path = path[len(base):]
    return unquote(path.lstrip("/").removeprefix("v1/"))


# What Vault answers is read through these: a broken or newer server that sends another
# type than the documented one gets a clear error, never a traceback.

def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _leaves(value, depth: int = 0) -> list[str]:
    """Every string (and number, as text) inside a JSON value, to mask them all."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [str(value)]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [leaf for item in items for leaf in _leaves(item, depth + 1)] if depth < 20 else []


def _texts(value) -> list[str]:
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def _seconds(value) -> float:
    """A lifetime (lease_duration, ttl): a finite number of seconds, at most a year; 0
    for none, or for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.0
    return min(max(0.0, float(value)), MAX_SECONDS)


def _quote(path: str, safe: str = "/") -> str:
    from urllib.parse import quote

    return quote(path, safe=safe)


def _message(exc: Exception) -> str:
    if isinstance(exc, _Refused):
        return exc.error.message
    return getattr(exc, "message", None) or exc.__class__.__name__
