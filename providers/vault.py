"""credhelper-vault: a gateway credential from HashiCorp Vault or OpenBao.

Three things can be printed: a field of a KV secret (``secret``), a field of any logical
read such as a dynamic secrets engine (``path``), or a Vault identity OIDC token
(``identity_token``). The Vault token used for the read comes from ``VAULT_TOKEN`` /
``~/.vault-token`` (``auth = "token"``) or from a login (approle, userpass, ldap, jwt,
kubernetes, cert); a login token is kept in the provider's private state and reused
until it nears expiry, so most cold runs cost one read and no login.

hvac (and requests under it) is imported inside methods only: a cache hit, ``--help``
and the other backends never pay for it.
"""

from __future__ import annotations

import math
import os

from credhelper import net
from credhelper.durations import MAX_SECONDS
from credhelper.errors import AccessDenied, BackendUnavailable, ConfigError, LoginRequired
from credhelper.provider import Credential, Provider, Setting

AUTH_METHODS = ("token", "approle", "userpass", "ldap", "jwt", "kubernetes", "cert")
KUBERNETES_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# A KV secret has no expiry of its own: without max_age it is read again after this.
DEFAULT_STATIC_AGE = 7200.0  # longer than the app's own default TTL (1h)
# A cached login token is reused only while it outlives the run by this much
# (on top of min_validity, because dynamic leases die with the token that made them).
TOKEN_MARGIN = 60.0


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
        Setting("role", help="role (jwt, kubernetes) or certificate role name (cert)"),
        Setting("token", secret=True, env=("VAULT_TOKEN",),
                help="auth = token: the Vault token (environment only); else token_file"),
        Setting("token_file", "path", "~/.vault-token",
                help="auth = token: file holding the token when VAULT_TOKEN is unset"),
        Setting("role_id", help="approle: role ID (or role_id_file)"),
        Setting("role_id_file", "path", help="approle: file holding the role ID"),
        Setting("secret_id_file", "path", help="approle: file holding the secret ID"),
        Setting("secret_id_env", help="approle: name of the variable holding the secret ID"),
        Setting("username", help="userpass, ldap: user name"),
        Setting("password_file", "path", help="userpass, ldap: file holding the password"),
        Setting("password_env", help="userpass, ldap: name of the variable holding the password"),
        Setting("jwt_file", "path",
                help=f"jwt, kubernetes: file holding the JWT (kubernetes: {KUBERNETES_TOKEN})"),
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
        where = c.get("address", "?") + (f" namespace {c.get('namespace')}" if c.get("namespace") else "")
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
            raise ConfigError(f"{c.source('kv_version')}: kv_version must be 1 or 2 (or unset to detect it)")
        for name in ("secret", "path", "kv_mount"):
            if c.get(name) and not c[name].strip("/"):
                raise ConfigError(f"{c.source(name)}: empty path")
        return chosen[0]

    def _mount(self) -> str:
        return (self.config.get("mount") or self.config["auth"]).strip("/")

    def _state_name(self) -> str:
        """Login tokens are shared by every secret read with the same login settings."""
        c = self.config
        parts = [c.get(k) for k in ("address", "namespace", "auth", "role", "role_id",
                                    "role_id_file", "username", "jwt_file", "client_cert")]
        return "login:" + "\0".join("" if p is None else str(p) for p in parts) + "\0" + self._mount()

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

    def _use_token(self, vault: "Vault", request) -> str:
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
        c = self.config
        token = c.get("token")
        if token:
            if "(environment)" not in c.source("token"):
                raise ConfigError(
                    f"{c.source('token')}: a Vault token does not belong in a configuration file",
                    hint="set VAULT_TOKEN, or let `bao login` / `vault login` write ~/.vault-token",
                )
            request.log.secret(token)
            return token.strip()
        path = os.path.expanduser(c["token_file"])
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except FileNotFoundError:
            raise LoginRequired(
                f"no Vault token: VAULT_TOKEN is unset and {path} does not exist",
                hint="sign in with `bao login` / `vault login`, set VAULT_TOKEN, "
                "or choose another [vault] auth method",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the Vault token file {path}: {_os_reason(exc)}") from None
        if not token:
            raise LoginRequired(f"the Vault token file {path} is empty",
                                hint="sign in with `bao login` / `vault login`")
        request.log.secret(token)
        return token

    def _renew(self, vault: "Vault", request, state: dict) -> dict | None:
        vault.set_token(state["token"], state.get("expires_at"))
        try:
            body = vault.call("POST", "auth/token/renew-self", "renew the Vault token", json={})
        except (_Refused, AccessDenied) as exc:
            request.log.debug(f"renewing the Vault token failed: {_message(exc)}")
            return None
        renewed = self._save_login(request, _object(body.get("auth")), "renewed")
        return renewed

    def _login(self, vault: "Vault", request) -> None:
        """Sign in with the configured method; keep the token in the private state."""
        auth, mount = self.config["auth"], self._mount()
        if auth == "token":
            raise AccessDenied("the Vault token was refused",
                               hint="sign in again with `bao login` / `vault login`")
        body = self._login_body(auth, request)
        vault.set_token(None, None)
        url = f"auth/{mount}/login"
        if auth in ("userpass", "ldap"):
            url += "/" + _quote(self.config["username"])
        try:
            response = vault.call("POST", url, f"{auth} login", json=body, login=True)
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

    def _login_body(self, auth: str, request) -> dict:
        c = self.config
        if auth == "approle":
            role_id = c.get("role_id") or (
                _read_file(c["role_id_file"], "approle role_id_file") if c.get("role_id_file") else None)
            if not role_id:
                raise ConfigError("missing setting [vault] role_id (or role_id_file) for auth = approle")
            body = {"role_id": role_id}
            secret_id = _secret_from(c, "secret_id", "approle secret ID", request)
            if secret_id is not None:
                body["secret_id"] = secret_id
            return body
        if auth in ("userpass", "ldap"):
            username = c.require("username")
            password = _secret_from(c, "password", f"{auth} password", request, unset_ok=True)
            if password is None:
                password = self._prompt_password(request, auth, username)
            return {"password": password}
        if auth in ("jwt", "kubernetes"):
            path = c.get("jwt_file") or (KUBERNETES_TOKEN if auth == "kubernetes" else None)
            if not path:
                raise ConfigError("missing setting [vault] jwt_file for auth = jwt",
                                  hint="the file holding the JWT, e.g. a CI job token")
            token = _read_file(path, f"{auth} jwt_file")
            request.log.secret(token)
            role = c.get("role")
            if auth == "kubernetes" and not role:
                raise ConfigError("missing setting [vault] role for auth = kubernetes")
            return {"jwt": token, **({"role": role} if role else {})}
        if auth == "cert":
            if not c.get("client_cert") or not c.get("client_key"):
                raise ConfigError("auth = cert needs [vault] client_cert and client_key",
                                  hint="or VAULT_CLIENT_CERT and VAULT_CLIENT_KEY")
            if not c["address"].startswith("https://"):
                raise ConfigError("auth = cert needs an https:// address (a TLS client certificate)")
            return {"name": c["role"]} if c.get("role") else {}
        raise ConfigError(f"unknown auth method {auth!r}")

    def _prompt_password(self, request, auth: str, username: str) -> str:
        hint = ("run `credhelper-vault login` in a terminal, or set [vault] password_env "
                "or password_file for unattended use")
        what = f"Vault {auth} login for {username!r} needs a password"
        if self.config.get("password_env"):
            what += f" ({self.config['password_env']} is not set)"
        request.require_interactive(what, hint)
        question = f"Vault {auth} password for {username}"
        if request.stdin_is_tty:
            import getpass  # prompts on the terminal (/dev/tty), never on stdout

            try:
                password = getpass.getpass(question + ": ")
            except (EOFError, OSError):
                raise LoginRequired("no password was entered", hint) from None
        else:  # run by the app: nobody reads stderr, so ask in a desktop dialog
            from .prompt import ask

            password = ask(question, request.login_deadline - request.monotonic() - 2,
                           request.env)
            if password is None:
                raise LoginRequired(f"{what}, and there is no terminal or desktop dialog to "
                                    "ask on", hint)
        if not password:
            raise LoginRequired("no password was entered", hint)
        request.log.secret(password)
        return password

    def _read(self, vault: "Vault", target: str, request) -> Credential:
        c = self.config
        now = request.now()
        details = {"source": self.describe(), "auth": c["auth"]}
        if vault.accessor_hint:
            details["token_accessor"] = vault.accessor_hint
        if target == "identity_token":
            name = c["identity_token"]
            body = vault.call("GET", f"identity/oidc/token/{_quote(name, safe='')}",
                              f"identity token role {name!r}")
            token = _object(body.get("data")).get("token")
            if not isinstance(token, str) or not token:
                raise AccessDenied(f"Vault returned no identity token for role {name!r}")
            request.log.secret(token)
            # Relative lifetimes (ttl, exp - iat) are immune to a skewed laptop clock.
            expires_at = request.fresh_token_expiry(
                token, f"Vault at {vault.address}", sent_at=now,
                expires_in=_seconds(_object(body.get("data")).get("ttl")))
            return Credential(token, expires_at, details=details)

        if target == "secret":
            data, where, extra = self._read_kv(vault, request)
            expires_at = now + (c.get("max_age") or DEFAULT_STATIC_AGE)
            details.update(extra)
        else:
            where = c["path"].strip("/")
            body = vault.call("GET", _quote(where), f"{where}")
            data = body.get("data")
            lease = _seconds(body.get("lease_duration"))
            if lease:
                expires_at = now + lease
                details["lease_duration"] = f"{lease:.0f}s"
            else:
                expires_at = now + (c.get("max_age") or DEFAULT_STATIC_AGE)
            # A lease dies with the token that made it.
            if vault.token_expires_at is not None and vault.token_expires_at < expires_at:
                expires_at = vault.token_expires_at
        if not isinstance(data, dict):
            raise AccessDenied(f"Vault returned no data at {where}")
        token = _pick_field(data, c.get("field"), where, c.source("field"))
        request.log.secret(token)
        return Credential(token, expires_at, details=details)

    def _read_kv(self, vault: "Vault", request) -> tuple[dict, str, dict]:
        c = self.config
        secret = c["secret"].strip("/")
        version = c.get("kv_version") or 0
        if version:
            mount = (c.get("kv_mount") or secret.split("/", 1)[0]).strip("/")
            if not (secret + "/").startswith(mount + "/"):
                raise ConfigError(f"{c.source('kv_mount')}: secret {secret!r} is not under kv_mount {mount!r}")
        else:
            mount, version = self._detect_kv(vault, secret)
        rest = secret[len(mount):].strip("/")
        if not rest:
            raise ConfigError(f"{c.source('secret')}: {secret!r} names the KV mount {mount!r}, "
                              "not a secret in it", hint='for example: secret = "secret/gateway"')
        if version == 2:
            where = f"{mount}/data/{rest}"
            params = {"version": c["version"]} if c.get("version") else None
            body = vault.call("GET", _quote(where), f"KV v2 secret {secret}", params=params)
            outer = _object(body.get("data"))
            meta = _object(outer.get("metadata"))
            if meta.get("deletion_time") or meta.get("destroyed"):
                raise AccessDenied(f"KV v2 secret {secret} version {meta.get('version')} is deleted")
            return outer.get("data"), secret, {"kv_version": 2, "version": meta.get("version")}
        if c.get("version"):
            raise ConfigError(f"{c.source('version')}: KV v1 secrets have no versions")
        body = vault.call("GET", _quote(f"{mount}/{rest}"), f"KV v1 secret {secret}")
        return body.get("data"), secret, {"kv_version": 1}

    def _detect_kv(self, vault: "Vault", secret: str) -> tuple[str, int]:
        """Mount and KV version of ``secret``, as the Vault CLI finds them."""
        body = vault.call("GET", f"sys/internal/ui/mounts/{_quote(secret)}", f"the mount of {secret}")
        data = _object(body.get("data"))
        mount = (_text(data.get("path")) or "").strip("/")
        if data.get("type") not in ("kv", "generic") or not mount:
            raise ConfigError(
                f"{self.config.source('secret')}: {secret!r} is not in a KV mount "
                f"(mount {mount or '?'!r} is {data.get('type') or 'unknown'})",
                hint="for other secrets engines use [vault] path instead of secret",
            )
        if self.config.get("namespace") and mount.startswith(self.config["namespace"].strip("/") + "/"):
            mount = mount[len(self.config["namespace"].strip("/")) + 1:]
        version = str(_object(data.get("options")).get("version") or "1")
        return mount, 2 if version == "2" else 1

    # ------------------------------------------------------------ login / logout / status / doctor

    def login(self, request) -> None:
        if self.config["auth"] == "token":
            raise ConfigError(
                "auth = token has no sign-in of its own",
                hint="sign in with `bao login` / `vault login` (writes ~/.vault-token) or set VAULT_TOKEN",
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
                vault.call("POST", "auth/token/revoke-self", "revoke the Vault token", json={})
            except (_Refused, BackendUnavailable, AccessDenied) as exc:
                request.log.warning(f"could not revoke the Vault token: {_message(exc)}")
        request.state.delete(name)

    def _token_for_status(self, vault: "Vault", request) -> str | None:
        if self.config["auth"] == "token":
            try:
                vault.set_token(self._static_token(request), None)
            except (LoginRequired, ConfigError):
                return None
            return "VAULT_TOKEN" if self.config.get("token") else self.config["token_file"]
        state = request.state.load(self._state_name())
        if not state or not state.get("token"):
            return None
        request.log.secret(state["token"])
        vault.set_token(state["token"], state.get("expires_at"))
        return f"cached {self.config['auth']} login"

    def status(self, request) -> dict:
        vault = Vault(self.config, request)
        origin = self._token_for_status(vault, request)
        if origin is None:
            return {"vault token": "none (the next run signs in)" if self.config["auth"] != "token"
                    else "none: set VAULT_TOKEN or run `bao login`"}
        facts = {"vault token": origin}
        try:
            data = vault.call("GET", "auth/token/lookup-self", "look up the Vault token").get("data") or {}
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
        vault = Vault(self.config, request)
        try:  # reachability and TLS are doctor's generic checks; here: what Vault says
            health = vault.health()
        except BackendUnavailable as exc:
            return checks + [("fail", "vault reachable", exc.message)]
        if health.get("sealed"):
            checks.append(("fail", "vault seal", "the server is sealed: an operator must unseal it"))
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
            data = vault.call("GET", "auth/token/lookup-self", "look up the Vault token").get("data") or {}
        except (_Refused, AccessDenied, BackendUnavailable) as exc:
            checks.append(("fail", "vault token", f"{origin}: {_message(exc)}"))
            return checks
        facts = _token_facts(data)
        checks.append(("ok", "vault token", f"{origin}: " + ", ".join(f"{k} {v}" for k, v in facts.items())))
        ttl = data.get("ttl") or 0
        if ttl and ttl < 3600 and self._target_or_none() == "path":
            checks.append(("warn", "vault token ttl",
                           f"{ttl}s: dynamic leases end with the token, so credentials live at most that long"))
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
    """One hvac client for one run: TLS as configured, every call bounded by the deadline
    and retried by the one rule of ``credhelper.net``, every failure mapped to a contract
    error."""

    def __init__(self, config, request):
        import hvac

        self.config, self.request, self.log = config, request, request.log
        self.address = config["address"]
        self.token_expires_at: float | None = None
        self.accessor_hint: str | None = None
        # Plain http (loopback only) needs no TLS file, so a stale one is no error there.
        https = self.address.startswith("https://")
        ca, cert, key = (config.get(k) if https else None
                         for k in ("ca_cert", "client_cert", "client_key"))
        session = request.session(ca, cert, key, source=config.source("ca_cert") if ca else "ca_cert")
        self.client = hvac.Client(
            url=self.address,
            token="",  # not None: hvac would read VAULT_TOKEN / ~/.vault-token on its own
            namespace=config.get("namespace"),
            session=session,
            timeout=max(0.1, request.deadline - request.monotonic()),
            adapter=hvac.adapters.RawAdapter,
        )

    def set_token(self, token: str | None, expires_at: float | None) -> None:
        self.client.token = token
        self.token_expires_at = expires_at

    def health(self) -> dict:
        response = self._send("GET", "sys/health", "health check", {
            "params": {"standbyok": "true", "sealedcode": "200", "uninitcode": "200",
                       "perfstandbyok": "true"}})
        try:
            return response.json()
        except ValueError:
            return {}

    def call(self, method: str, path: str, what: str, login: bool = False, **kwargs) -> dict:
        """JSON body of a successful call; raises a contract error (or _Refused) otherwise.
        A login is the one POST that is not idempotent (a one-use secret ID)."""
        response = self._send(method, path, what, kwargs, idempotent=not login)
        if response.status_code == 204:
            return {}
        try:
            body = response.json()
        except ValueError:
            raise BackendUnavailable(f"Vault answered {what} with something that is not JSON "
                                     f"(HTTP {response.status_code})") from None
        if not isinstance(body, dict):
            raise BackendUnavailable(f"Vault answered {what} with unexpected JSON")
        self.accessor_hint = _text(_object(body.get("auth")).get("accessor")) or self.accessor_hint
        for warning in _texts(body.get("warnings")):
            self.log.debug(f"Vault warning on {what}: {warning}")
        return body

    def _send(self, method: str, path: str, what: str, kwargs: dict, idempotent: bool = True):
        retry = net.Retry(self.request, idempotent=idempotent)
        while True:
            timeout = self.request.remaining()
            try:
                response = self.client.adapter.request(
                    method, f"/v1/{path}", raise_exception=False, timeout=timeout, **kwargs)
            except Exception as exc:
                error = net.failure(exc, self.address, name="Vault", what=what,
                                    ca_setting="[vault] ca_cert (or VAULT_CACERT)",
                                    address_setting="[vault] address (or VAULT_ADDR)")
                if error is None:
                    raise
                raise error from None
            status = response.status_code
            if status < 400:
                return response
            # A sealed Vault stays sealed until an operator acts: no use waiting for it.
            if not _sealed(status, response) and retry.again(
                    status, response.headers.get("Retry-After"),
                    f"Vault answered {what} with HTTP {status}", method):
                continue
            raise self._error(status, response, path, what, retry)

    def _error(self, status: int, response, path: str, what: str, retry: net.Retry):
        errors, request_id = _errors_of(response)
        said = "; ".join(errors)[:300] or f"HTTP {status}"
        said += f" (request id {request_id})" if request_id else ""
        login = path.startswith("auth/") and "/login" in path
        if _sealed(status, response):
            return BackendUnavailable(f"Vault at {self.address} is sealed",
                                      hint="an operator must unseal it; a cached credential is "
                                      "served meanwhile while it stays valid")
        if status >= 500 or status == 429:
            said = said if said.startswith("HTTP ") else f"HTTP {status}: {said}"
            return retry.error(f"Vault could not serve {what}: {said}")
        if login:
            return AccessDenied(f"Vault refused the {what} at {path.rsplit('/login', 1)[0]}: {said}",
                                hint="check the role, credentials and mount of the [vault] auth method")
        if status == 403:
            return _Refused(AccessDenied(
                f"permission denied by Vault for {what} ({path}): {said}",
                hint="the token was revoked or its policies do not allow this read; "
                "`credhelper-vault status` shows the token's policies"))
        if status == 404:
            return AccessDenied(f"no such path in Vault: {what} ({path}): {said}",
                                hint="check [vault] secret / path / identity_token, and namespace")
        return AccessDenied(f"Vault refused {what} ({path}): {said}")


def _sealed(status: int, response) -> bool:
    return status == 503 and any("sealed" in e.lower() for e in _errors_of(response)[0])


# ---------------------------------------------------------------- small helpers


def _secret_from(c, prefix: str, what: str, request, unset_ok: bool = False) -> str | None:
    """A login secret from ``<prefix>_file`` or the variable named by ``<prefix>_env``.

    None when neither is configured, or (with ``unset_ok``) when the variable is unset,
    so that the caller may ask a person instead."""
    if c.get(f"{prefix}_file"):
        value = _read_file(c[f"{prefix}_file"], f"{what} file")
    elif c.get(f"{prefix}_env"):
        variable = c[f"{prefix}_env"]
        value = (request.env.get(variable) or "").strip()
        if not value:
            if unset_ok:
                return None
            raise ConfigError(f"the {what} variable {variable} is not set ({c.source(prefix + '_env')})",
                              hint=f"set {variable}, or [vault] {prefix}_file")
    else:
        return None
    request.log.secret(value)
    return value


def _read_file(path: str, what: str) -> str:
    path = os.path.expanduser(path)
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except FileNotFoundError:
        raise ConfigError(f"the {what} {path} does not exist",
                          hint="check the path, and that whatever writes the file has run") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} {path}: {_os_reason(exc)}") from None
    if not value:
        raise ConfigError(f"the {what} {path} is empty")
    return value


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
        "policies": ", ".join(data.get("policies") or []) or "(none)",
        "ttl": f"{data.get('ttl')}s" if data.get("ttl") else "never expires",
        "renewable": "yes" if data.get("renewable") else "no",
    }
    if data.get("expire_time"):
        facts["token expires"] = data["expire_time"]
    if data.get("entity_id"):
        facts["entity"] = data["entity_id"]
    return {k: v for k, v in facts.items() if v is not None}


def _errors_of(response) -> tuple[list[str], str | None]:
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


# What Vault answers is read through these: a broken or newer server that sends another
# type than the documented one gets a clear error, never a traceback.

def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


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


def _os_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc.__class__.__name__
