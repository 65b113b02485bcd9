"""credhelper-aws: a gateway credential from the caller's AWS identity.

Credentials come from the standard AWS chain (environment, ``~/.aws/config`` and
``credentials``, SSO, ``credential_process``, container and instance roles), narrowed by
``profile`` and then, optionally, one more ``role_arn`` hop. Three modes:

- ``presigned-identity``: a presigned STS GetCallerIdentity request whose signature covers
  the ``audience`` (format and checks in ``aws_verify``); the gateway replays it to STS.
- ``web-identity-token``: STS GetWebIdentityToken, a JWT signed by AWS for ``audience``.
- ``secretsmanager``: a Secrets Manager secret (or one ``field`` of a JSON secret).

botocore is imported inside methods only: a cache hit never loads it. Every AWS call is
bounded by the run's deadline (timeouts from ``request.remaining()``, our own retries), and
every answer by credhelper.net's size cap (botocore would read any answer whole).

No library asks a person anything: botocore's assume-role provider would read an MFA code
with getpass on stdin; ours (``_Aws.mfa_code``) asks only in the interactive context, and
the role sessions it gets are cached in ``~/.aws/cli/cache``, shared with the AWS CLI.

A profile that signs in through an ``sso_session`` (IAM Identity Center) whose token is
missing or spent is signed in here, in the interactive context, as ``aws sso login
--use-device-code`` does (``_SsoSignIn``): the token goes to ``~/.aws/sso/cache`` in the
AWS CLI's format, where botocore (and the AWS CLI) use and refresh it.
"""

from __future__ import annotations

import os
import re
import time

from credhelper import net, secretref
from credhelper.clock import skew_verdict
from credhelper.errors import AccessDenied, BackendUnavailable, ConfigError, LoginRequired
from credhelper.provider import Credential, Provider, Setting
from credhelper.providers import aws_verify

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# external_id may name where it is kept (credhelper.secretref); in clear it is fine: AWS
# calls an external ID an identifier, not a secret.
EXTERNAL_ID = secretref.Spec("external_id", "external ID", secretref.OK)

MODES = ("presigned-identity", "web-identity-token", "secretsmanager")
DEFAULT_REGION = "us-east-1"  # signing needs a region; STS answers in every one

# botocore error codes, by what they mean for the contract.
_REFUSED = {
    "AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch",
    "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException",
    "InvalidSignatureException",  # the JSON protocol's SignatureDoesNotMatch (Secrets Manager)
    "InvalidAccessKeyId", "RegionDisabledException", "ResourceNotFoundException",
    "DecryptionFailure", "InvalidRequestException", "OutboundWebIdentityFederationDisabled",
    "OutboundWebIdentityFederationDisabledException", "IDPRejectedClaim",
}
_INVALID = {"ValidationError", "InvalidParameterException", "InvalidParameterValue",
            "MalformedPolicyDocument", "PackedPolicyTooLarge"}
# Where the AWS CLI caches assumed-role sessions (awscli/customizations/assumerole.py):
# sharing it means one MFA code, typed here or to `aws`, serves both until the session ends.
ROLE_CACHE_DIR = ("~", ".aws", "cli", "cache")
# Seconds kept back from an MFA dialog's timeout for the AssumeRole call and the rest.
AFTER_MFA = 5

# Refusals of the request's timestamp (SigV4 allows a few minutes either way).
_CLOCK_CODES = {"RequestExpired", "RequestTimeTooSkewed", "RequestTimeTooSkewedException"}
_THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded",
              "TooManyRequestsException", "SlowDown", "RequestThrottled"}


class _CredentialsExpired(AccessDenied):
    """AWS said the signing credentials have expired (exit 5). ``refreshable`` tells
    whether the credentials used can be resolved again into new ones."""

    refreshable = False


class _SsoSignInNeeded(LoginRequired):
    """botocore found no usable IAM Identity Center token (missing, expired, refused)."""


class AwsProvider(Provider):
    name = "aws"
    summary = "your AWS identity (STS, Secrets Manager)"
    address_setting = "endpoint_url"
    ca_setting = "ca_cert"
    library = "boto3"
    # The setting that fixes the credential's lifetime, per mode (mdm export checks the TTL)
    lifetime_setting = {"presigned-identity": "presign_lifetime",
                        "web-identity-token": "token_duration"}
    # The chain's raw inputs: a new key pair or token file means another caller.
    identity_env = ("AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONFIG_FILE",
                    "AWS_SHARED_CREDENTIALS_FILE")
    settings = (
        Setting("profile", env=("AWS_PROFILE",),
                help="AWS profile (~/.aws/config); default: the chain's"),
        Setting("region", env=("AWS_REGION", "AWS_DEFAULT_REGION"),
                help=f"AWS region; default: the profile's, else {DEFAULT_REGION}"),
        Setting("mode", "choice", "presigned-identity", choices=MODES,
                help="what to print: " + " | ".join(MODES)),
        Setting("role_arn", help="assume this role after the profile's credentials"),
        Setting("role_session_name", help="session name for role_arn; default credhelper-<user>"),
        Setting("external_id", secret=True,
                help="external id for role_arn, or where it is kept: file:PATH, env:VARIABLE or "
                     "keyring:SERVICE/USER"),
        Setting("role_duration", "duration", 3600.0, help="session length for role_arn (15m..12h)"),
        Setting("audience", "list",
                help="who the token is for (the gateway); presigned-identity takes one"),
        Setting("presign_lifetime", "duration", 900.0,
                help="presigned-identity: token lifetime (1m..15m; STS honours 15m at most)"),
        Setting("token_duration", "duration", 3600.0,
                help="web-identity-token: JWT lifetime (1m..1h)"),
        Setting("signing_algorithm", "choice", "RS256", choices=("RS256", "ES384"),
                help="web-identity-token: JWT signing algorithm"),
        Setting("secret_id", help="secretsmanager: secret name or ARN"),
        Setting("field", help="secretsmanager: key of a JSON secret to print"),
        Setting("version_stage", default="AWSCURRENT", help="secretsmanager: version stage"),
        Setting("endpoint_url", "url", env=("AWS_ENDPOINT_URL",),
                help="send every AWS call here (VPC endpoint, proxy, test server)"),
        Setting("ca_cert", "path",
                help="CA bundle (PEM) to trust for every AWS call, e.g. a company's TLS-"
                     "inspecting proxy; default: AWS_CA_BUNDLE or the profile's ca_bundle, "
                     "else botocore's own bundle"),
        Setting("verify", "bool", True,
                help="presigned-identity: check the credentials with STS before printing"),
    )

    # ------------------------------------------------------------ describing

    def describe(self) -> str:
        c = self.config
        where = f"profile {c.get('profile')!r}" if c.get("profile") else "the default AWS chain"
        if c.get("role_arn"):
            where += f" -> {c['role_arn']}"
        what = {"secretsmanager": f"secret {c.get('secret_id')!r}"}.get(c["mode"], c["mode"])
        return f"AWS {what} via {where}"

    def identity_sources(self, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """The shared config and credentials files, where profiles and keys live: another
        key pair written there is another caller."""
        files, variables = super().identity_sources(env)
        for variable, default in (("AWS_CONFIG_FILE", "~/.aws/config"),
                                  ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")):
            files.append(secretref.expand_home(env.get(variable) or default, env))
        return files, variables

    # ------------------------------------------------------------ the run

    def fetch(self, request) -> Credential:
        mode = self.config["mode"]
        self._check_settings(mode)
        try:
            return self._fetch(request, mode)
        except _CredentialsExpired as exc:
            # AWS says the credentials expired although the chain handed them out as
            # valid (a session ended early, or was replaced). When their source can mint
            # new ones (a role, SSO, credential_process), resolve the chain again, once,
            # within the same deadline; static keys would only be refused again.
            if not exc.refreshable:
                raise
            request.log.debug(f"{exc.message}: resolving the AWS credentials again, once")
            return self._fetch(request, mode, reuse_role_sessions=False)

    def _fetch(self, request, mode: str, reuse_role_sessions: bool = True) -> Credential:
        aws = _Aws(self.config, request, reuse_role_sessions)
        keys = aws.credentials()
        details = {"source": self.describe(), "mode": mode, "region": aws.region,
                   "credentials": keys.method}
        expires_at: float | None
        if mode == "presigned-identity":
            identity = aws.caller_identity(keys) if self.config["verify"] else None
            token, expires_at = aws.presign(keys, self.config["audience"][0],
                                            int(self.config["presign_lifetime"]))
        elif mode == "web-identity-token":
            identity = None
            token, expires_at = aws.web_identity_token(keys)
        else:
            identity = None
            token, expires_at = aws.secret(keys)
        request.log.secret(token)
        if identity:
            details.update(caller=identity["Arn"], account=identity["Account"])
        if keys.expires_at:
            details["credentials_expire"] = _iso(keys.expires_at)
        return Credential(token=token, expires_at=expires_at, details=details)

    def _check_settings(self, mode: str) -> None:
        c = self.config
        if mode in ("presigned-identity", "web-identity-token"):
            c.require("audience")
        if mode == "presigned-identity" and len(c["audience"]) != 1:
            raise ConfigError(
                f"{c.source('audience')}: presigned-identity takes exactly one audience")
        if mode == "secretsmanager":
            c.require("secret_id")
        _bounded(c, "presign_lifetime", 60, aws_verify.MAX_LIFETIME)
        _bounded(c, "token_duration", 60, 3600)
        _bounded(c, "role_duration", 900, 43200)
        name = c.get("role_session_name")
        if name is not None and not re.fullmatch(r"[\w+=,.@-]{2,64}", name, re.ASCII):
            raise ConfigError(f"{c.source('role_session_name')}: 2 to 64 characters of "
                              "letters, digits and +=,.@_- expected")

    # ------------------------------------------------------------ status and doctor

    def status(self, request) -> dict:
        if all(self.config.source(s.name) == "default" for s in self.settings):
            return {}  # AWS is not configured here: `credhelper status` must not probe it
        aws = _Aws(self.config, request)
        keys = aws.credentials()
        identity = aws.caller_identity(keys)
        facts = {"mode": self.config["mode"], "caller": identity["Arn"],
                 "account": identity["Account"], "credentials": keys.method}
        if keys.expires_at:
            facts["credentials_expire"] = _iso(keys.expires_at)
        return facts

    def diagnose(self, request) -> list:
        checks = []
        try:
            import botocore

            checks.append(("ok", "botocore", botocore.__version__))
        except ImportError:
            return [("fail", "botocore", "not installed: install credhelper[aws]")]
        checks += secretref.checks(request, self.config, [EXTERNAL_ID])
        try:
            self._check_settings(self.config["mode"])
            aws = _Aws(self.config, request)
            checks.append(("ok", "region", aws.region))
            checks.append(("ok", "endpoint", aws.endpoint_url or "AWS default"))
            keys = aws.credentials()
            checks.append(("ok", "credentials",
                           f"{keys.method}, access key {_key_id(keys.access_key)}"
                           + (f", expire {_iso(keys.expires_at)}" if keys.expires_at else "")))
            identity, skew = aws.caller_identity(keys, with_skew=True)
            checks.append(("ok", "caller", identity["Arn"]))
            if skew is not None:
                verdict = skew_verdict(skew)
                checks.append((verdict, "clock skew", f"{skew:+.0f}s against STS" + (
                    "" if verdict == "ok" else ": signed tokens may be refused; fix the clock")))
        except (ConfigError, AccessDenied, BackendUnavailable, LoginRequired) as exc:
            checks.append(("fail", "AWS", exc.message + (f" ({exc.hint})" if exc.hint else "")))
            return checks
        if self.config["mode"] == "secretsmanager":
            try:  # metadata only: doctor never reads the secret itself
                meta = aws.call(keys, "secretsmanager", "describe_secret",
                                SecretId=self.config["secret_id"])
                rotation = "rotation on" if meta.get("RotationEnabled") else "no rotation"
                checks.append(("ok", "secret", f"{meta.get('Name')} ({rotation})"))
            except (AccessDenied, BackendUnavailable, ConfigError) as exc:
                checks.append(("warn", "secret", f"cannot describe it: {exc.message}"))
        if self.config["mode"] == "presigned-identity":
            lifetime = int(self.config["presign_lifetime"])
            usable = int(lifetime - self.config["min_validity"])
            if usable <= 0:
                checks.append(("fail", "min_validity",
                               f"min_validity is not shorter than presign_lifetime ({lifetime}s): "
                               "no token is ever fresh enough to hand out from the cache"))
            else:
                checks.append(("warn", "app TTL",
                               f"tokens live {lifetime}s: set inferenceCredentialHelperTtlSec "
                               f"to at most {usable}"))
        return checks


def _bounded(config, name: str, low: float, high: float) -> None:
    value = config[name]
    if not low <= value <= high:
        raise ConfigError(f"{config.source(name)}: must be between {int(low)}s and {int(high)}s")


def _key_id(access_key: str) -> str:
    """An access key id as the AWS CLI shows it: enough to tell keys apart."""
    return f"{access_key[:4]}...{access_key[-4:]}" if len(access_key) > 12 else "..."


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _default_session_name() -> str:
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container
        user = "unknown"
    return ("credhelper-" + re.sub(r"[^\w+=,.@-]", "-", user, flags=re.ASCII))[:64]


class _Keys:
    """Resolved AWS credentials. Never logged: only the access key id is shown anywhere."""

    __slots__ = ("access_key", "secret_key", "token", "expires_at", "method", "refreshable")

    def __init__(self, access_key, secret_key, token, expires_at, method, refreshable=False):
        self.access_key, self.secret_key, self.token = access_key, secret_key, token
        self.expires_at, self.method = expires_at, method
        self.refreshable = refreshable  # resolving the chain again gives new credentials

    def client_args(self) -> dict:
        return {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key,
                "aws_session_token": self.token}


class _Aws:
    """One run's botocore session, clients and calls, all bounded by the deadline."""

    def __init__(self, config, request, reuse_role_sessions: bool = True):
        import logging

        import botocore.session

        # botocore's own debug log prints request headers and bodies (signatures, session
        # tokens); keep every library logger away from stderr.
        for name in ("botocore", "boto3", "urllib3"):
            logger = logging.getLogger(name)
            if not logger.handlers:
                logger.addHandler(logging.NullHandler())
            logger.propagate = False
        self.config, self.request, self.log = config, request, request.log
        # botocore takes its proxies from urllib's getproxies (HTTPS_PROXY, NO_PROXY, or
        # the system's settings on macOS and Windows), as requests does: no setting here,
        # only the credentials of a proxy URL kept out of every message.
        net.register_proxy_credentials()
        self.profile = config.get("profile")
        self.session = botocore.session.Session(profile=self.profile)
        if config.get("ca_cert"):  # for every client, those of credential providers too
            if not os.path.isfile(config["ca_cert"]):
                raise ConfigError(f"the CA bundle {config['ca_cert']} does not exist "
                                  f"({config.source('ca_cert')})")
            self.session.set_config_variable("ca_bundle", config["ca_cert"])
        self.session.register("creating-client-class", _cap_answers)
        try:
            region = config.get("region") or self.session.get_config_variable("region")
        except Exception as exc:
            raise self.translate(exc, "reading the AWS configuration") from None
        self.region = region or DEFAULT_REGION
        # botocore's own clients (AssumeRole of a profile, SSO) need a region too.
        self.session.set_config_variable("region", self.region)
        self.endpoint_url = config.get("endpoint_url")
        self.clients: dict = {}
        # False once AWS called a session from the cache expired: get a new one (and
        # write it back for the AWS CLI) instead of reading the dead one again.
        self.reuse_role_sessions = reuse_role_sessions

    # -------------------------------------------------------- clients and calls

    def client_config(self):
        from botocore.config import Config

        left = self.request.remaining()
        # Our loop retries (see call), so botocore's own retries are off: its back-off
        # knows nothing of the deadline.
        return Config(connect_timeout=max(0.1, min(left, 10.0)), read_timeout=max(0.1, left),
                      retries={"total_max_attempts": 1}, user_agent_extra="credhelper")

    def client(self, service: str, keys: _Keys):
        if service not in self.clients:
            self.clients[service] = self.session.create_client(
                service, region_name=self.region, endpoint_url=self.endpoint_url,
                config=self.client_config(), **keys.client_args())
        return self.clients[service]

    def call(self, keys: _Keys, service: str, operation: str, **params):
        """One AWS call, retried by the one rule of ``credhelper.net`` (throttling, 429
        and 5xx; AWS API calls are safe to repeat, as the AWS SDKs do), connection
        failures twice. Returns the parsed response or raises a contract error."""
        retry = net.Retry(self.request, idempotent=True)
        connection_failures = 0
        what = f"{service} {_camel(operation)}"
        while True:
            try:
                return getattr(self.client(service, keys), operation)(**params)
            except Exception as exc:
                error = self.translate(exc, what)
                if isinstance(error, _CredentialsExpired):
                    error.refreshable = keys.refreshable
                status = _retry_status(exc)
                said = f"{what}: {error.message}"
                if status is not None:
                    again = retry.again(status, _retry_after(exc), said, "POST")
                elif _connection_failure(exc) and connection_failures < 2:
                    connection_failures += 1
                    again = retry.again(None, None, said)
                else:
                    raise error from None
                if not again:
                    raise (retry.error(error.message, error.hint) if retry.why else error) from None
                self.clients.pop(service, None)  # a new client gets the shorter timeouts

    # -------------------------------------------------------- credentials

    def credentials(self, signed_in: bool = False) -> _Keys:
        """The chain's credentials, then the role_arn hop when one is configured. When
        they need an IAM Identity Center sign-in of an sso-session, it happens here (see
        ``_SsoSignIn``), and the chain is resolved again, once."""
        try:
            # Clients botocore makes for itself (AssumeRole in a profile, SSO) are bounded too.
            self.session.set_default_client_config(self.client_config())
            self._install_role_provider()
            creds = self.session.get_credentials()
            if creds is None:
                raise AccessDenied(
                    "no AWS credentials found"
                    + (f" for profile {self.profile!r}" if self.profile else " in the AWS chain"),
                    hint="configure a profile (aws configure, aws configure sso) and set "
                    "[aws] profile or AWS_PROFILE",
                )
            frozen = creds.get_frozen_credentials()
        except AccessDenied:
            raise
        except Exception as exc:
            error = self.translate(exc, "resolving AWS credentials")
            sso = _SsoSignIn.of(self) if isinstance(error, _SsoSignInNeeded) else None
            if sso is None or signed_in:
                raise error from None
            sso.run(error)
            return self.credentials(signed_in=True)
        from botocore.credentials import RefreshableCredentials

        # botocore has no public expiry of refreshable credentials (get_frozen_credentials
        # drops it; refresh_needed() only says yes or no), so its attribute is read, and
        # only when it is there and a datetime: without it the credentials are simply
        # treated as not expiring.
        expiry = getattr(creds, "_expiry_time", None)
        keys = _Keys(frozen.access_key, frozen.secret_key, frozen.token,
                     expiry.timestamp()
                     if expiry is not None and hasattr(expiry, "timestamp") else None,
                     getattr(creds, "method", None) or "unknown",
                     refreshable=isinstance(creds, RefreshableCredentials))
        self._register(keys)
        self.log.debug(
            f"AWS credentials from {keys.method} (access key {_key_id(keys.access_key)})")
        if self.config.get("role_arn"):
            keys = self.assume_role(keys)
        return keys

    def _install_role_provider(self) -> None:
        """Put our own assume-role provider into botocore's chain in place of its own, which
        asks for the MFA code of an ``mfa_serial`` profile with getpass on stdin (EOFError,
        or a wait for nobody, when the app runs the helper). Built only from botocore's
        public constructors and attributes: ``providers`` of the resolver and the
        provider's ``prompter`` and ``cache`` arguments."""
        import os

        from botocore.credentials import (
            AssumeRoleProvider,
            CanonicalNameCredentialSourcer,
            EnvProvider,
            ProfileProviderBuilder,
        )
        from botocore.utils import JSONFileCache

        resolver = self.session.get_component("credential_provider")
        theirs = [p for p in resolver.providers if p.METHOD == AssumeRoleProvider.METHOD]
        if not theirs:  # a botocore without it resolves no role profile, so asks for no code
            return
        cache = JSONFileCache(os.path.expanduser(os.path.join(*ROLE_CACHE_DIR)))
        # credential_source = Environment | EcsContainer | Ec2InstanceMetadata, as in
        # botocore's create_credential_resolver (which keeps Environment even with a profile).
        sources = [EnvProvider()] + [p for p in resolver.providers
                                     if p.METHOD in ("container-role", "iam-role")]
        ours = AssumeRoleProvider(
            load_config=lambda: self.session.full_config,
            client_creator=self._botocore_client,
            cache=cache if self.reuse_role_sessions else _WriteOnly(cache),
            profile_name=self.session.get_config_variable("profile") or "default",
            prompter=self.mfa_code,
            credential_sourcer=CanonicalNameCredentialSourcer(sources),
            # source_profile chains (SSO, credential_process, ...) resolve as botocore's do
            profile_provider_builder=ProfileProviderBuilder(self.session, cache={},
                                                            region_name=self.region),
        )
        resolver.providers[resolver.providers.index(theirs[0])] = ours

    def _botocore_client(self, service: str, **kwargs):
        """Clients of our assume-role provider. Made after the MFA code was typed, so their
        timeouts come from what is left of the deadline then."""
        return self.session.create_client(service, region_name=self.region,
                                          config=self.client_config(), **kwargs)

    def mfa_code(self, prompt: str) -> str:
        """The prompter of our assume-role provider: the MFA code for the ``mfa_serial``
        named in botocore's ``prompt``, asked of a person only in the interactive context,
        on the terminal when stdin is one, else in a desktop dialog. The code is neither
        logged nor registered as a secret (masking every 6 digits would garble account
        ids in the log); it is single-use and short-lived."""
        found = re.search(r"for (\S+?):? *$", prompt)
        serial = found.group(1) if found else "the profile's mfa_serial"
        profile = self.profile or "default"
        hint = (f"run credhelper-aws in a terminal and enter the code, or run `aws sts "
                f"get-caller-identity --profile {profile}`: the role session is then cached "
                "in ~/.aws/cli/cache and reused until it expires")
        request = self.request
        request.require_interactive(f"AWS profile {profile!r} needs an MFA code for {serial}", hint)
        self.request = request = request.signing_in()  # a person is waiting: the longer bound
        text: str | None
        if request.stdin_is_tty:
            self.log.debug(f"asking for the MFA code of {serial} on the terminal")
            text = _read_terminal(prompt)
        else:
            from credhelper.providers import prompt as dialog
            from credhelper.providers.device_flow import Presenter

            left = request.login_deadline - request.monotonic() - AFTER_MFA
            title = Presenter.of(request, self).asking  # who asks: helper and gateway
            text = (dialog.ask(f"Enter the MFA code for {serial}", left, request.env, title)
                    if left >= 5 else None)
            if text is None:
                raise LoginRequired(
                    f"AWS profile {profile!r} needs an MFA code for {serial}, and "
                    "no terminal or desktop dialog can ask for it in this run", hint)
            self.log.debug(f"asked for the MFA code of {serial} in a desktop dialog")
        code = "".join(text.split())
        if not code:
            raise LoginRequired(f"no MFA code was entered for {serial}", hint)
        if not re.fullmatch(r"[0-9]{6,8}", code):
            raise LoginRequired(f"the MFA code for {serial} must be 6 to 8 digits", hint)
        return code

    def _register(self, keys: _Keys) -> None:
        self.log.secret(keys.secret_key)
        self.log.secret(keys.token)

    def assume_role(self, keys: _Keys) -> _Keys:
        c = self.config
        params = {"RoleArn": c["role_arn"],
                  "RoleSessionName": c.get("role_session_name") or _default_session_name(),
                  "DurationSeconds": int(c["role_duration"])}
        external_id = secretref.resolve(self.request, c, EXTERNAL_ID.name, EXTERNAL_ID.what,
                                        clear=EXTERNAL_ID.clear)
        if external_id:
            params["ExternalId"] = external_id
        self.log.debug(f"assuming {c['role_arn']} as {params['RoleSessionName']}")
        answer = self.call(keys, "sts", "assume_role", **params)["Credentials"]
        assumed = _Keys(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"],
                        answer["Expiration"].timestamp(), f"{keys.method} -> assume-role",
                        refreshable=True)  # AssumeRole again gives a new session
        self._register(assumed)
        self.clients.clear()  # later clients must use the role's credentials
        return assumed

    def caller_identity(self, keys: _Keys, with_skew: bool = False):
        answer = self.call(keys, "sts", "get_caller_identity")
        self.log.debug(f"caller {answer.get('Arn')}")
        if not with_skew:
            return answer
        return answer, _date_skew(answer, self.request.now())

    # -------------------------------------------------------- the three modes

    def presign(self, keys: _Keys, audience: str, lifetime: int) -> tuple[str, float]:
        """A presigned GetCallerIdentity URL whose signature covers the audience header
        (the ``aws eks get-token`` technique), wrapped as an ``aws_verify`` token."""
        sts = self.client("sts", keys)
        header = aws_verify.AUDIENCE_HEADER

        def add_audience(request, **_):
            request.headers[header] = audience

        signed_at = self.request.now()
        sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_audience)
        try:
            url = sts.generate_presigned_url("get_caller_identity", Params={},
                                             ExpiresIn=lifetime, HttpMethod="GET")
        except Exception as exc:
            raise self.translate(exc, "signing the identity token") from None
        finally:
            sts.meta.events.unregister("before-sign.sts.GetCallerIdentity", add_audience)
        expires_at = signed_at + lifetime
        if keys.expires_at is not None:
            # STS refuses the token once the signing credentials have expired.
            expires_at = min(expires_at, keys.expires_at)
        return aws_verify.encode(audience, url), expires_at

    def web_identity_token(self, keys: _Keys) -> tuple[str, float]:
        c = self.config
        duration = int(c["token_duration"])
        if keys.expires_at is not None:
            # STS refuses a JWT that outlives the calling session
            # (SessionDurationEscalationException), so ask for no more than it has left.
            left = int(keys.expires_at - self.request.now()) - 5
            if left < duration:
                self.log.debug(f"token_duration capped to the session's remaining {left}s")
                duration = max(60, left)
        answer = self.call(keys, "sts", "get_web_identity_token", Audience=list(c["audience"]),
                           SigningAlgorithm=c["signing_algorithm"], DurationSeconds=duration)
        token = answer.get("WebIdentityToken")
        if not token or answer.get("Expiration") is None:
            raise AccessDenied("STS GetWebIdentityToken answered without a token or expiration")
        self.log.secret(token)
        return token, answer["Expiration"].timestamp()

    def secret(self, keys: _Keys) -> tuple[str, float | None]:
        c = self.config
        secret_id = c["secret_id"]
        answer = self.call(keys, "secretsmanager", "get_secret_value", SecretId=secret_id,
                           VersionStage=c["version_stage"])
        value = answer.get("SecretString")
        if value is None and answer.get("SecretBinary") is not None:
            try:
                value = bytes(answer["SecretBinary"]).decode("utf-8")
            except UnicodeDecodeError:
                raise AccessDenied(f"secret {secret_id!r} is binary, not text") from None
        if value is None:
            raise AccessDenied(f"secret {secret_id!r} has no value in stage {c['version_stage']}")
        self.log.secret(value)
        if c.get("field"):
            value = _field(value, c["field"], secret_id)
            self.log.secret(value)
        return value.strip(), self._rotation_expiry(keys, secret_id)

    def _rotation_expiry(self, keys: _Keys, secret_id: str) -> float | None:
        """Next scheduled rotation, capped by max_age; None lets the core apply max_age."""
        try:
            meta = self.call(keys, "secretsmanager", "describe_secret", SecretId=secret_id)
        except (AccessDenied, BackendUnavailable) as exc:
            # DescribeSecret is a separate permission; without it max_age still applies.
            self.log.debug(f"no rotation schedule: {exc.message}")
            return None
        if not meta.get("RotationEnabled"):
            return None
        now = self.request.now()
        when = meta.get("NextRotationDate")
        when = when.timestamp() if when is not None else None
        days = (meta.get("RotationRules") or {}).get("AutomaticallyAfterDays")
        if when is None and days and meta.get("LastRotatedDate") is not None:
            when = meta["LastRotatedDate"].timestamp() + days * 86400
        if when is None or when <= now:
            self.log.debug("rotation is on but its next date is unknown or past: using max_age")
            return None
        max_age = self.config.get("max_age")
        return min(when, now + max_age) if max_age else when

    # -------------------------------------------------------- errors

    def translate(self, exc: Exception, what: str):
        """A botocore exception as a contract error (exit 2, 3, 4 or 5)."""
        from botocore import exceptions as bx

        name = exc.__class__.__name__
        profile = self.profile or "default"
        if isinstance(exc, (ConfigError, AccessDenied, BackendUnavailable, LoginRequired)):
            return exc
        if isinstance(exc, net.ProxyFailure):  # a 407 answer (_CappedClient)
            return self._proxy_error(what, exc)
        from botocore.parsers import ResponseParserError

        if isinstance(exc, ResponseParserError):  # its text quotes the answer: not repeated
            return BackendUnavailable(f"{what}: the answer is not an AWS response (it could not "
                                      "be parsed)", hint="check [aws] endpoint_url and any "
                                      "proxy in between: something else may answer there")
        sso_errors = tuple(getattr(bx, n) for n in (
            "UnauthorizedSSOTokenError", "SSOTokenLoadError", "TokenRetrievalError",
            "SSOError") if hasattr(bx, n))
        if isinstance(exc, sso_errors):
            return _SsoSignInNeeded(
                f"the AWS SSO session for profile {profile!r} has expired or is missing"
                + ("" if self.request.interactive else
                   f", and this run may not ask ({self.request.context} context)"),
                hint=f"run: aws sso login --profile {profile}",
            )
        if isinstance(exc, bx.ProfileNotFound):
            return ConfigError(f"AWS profile {profile!r} is not in ~/.aws/config or credentials",
                               hint="check [aws] profile / AWS_PROFILE "
                                    "(aws configure list-profiles)")
        if isinstance(exc, bx.NoCredentialsError):
            return AccessDenied("no AWS credentials found",
                                hint="configure a profile (aws configure, aws configure sso) and "
                                "set [aws] profile or AWS_PROFILE")
        if isinstance(exc, bx.NoRegionError):
            return ConfigError("no AWS region configured", hint="set [aws] region or AWS_REGION")
        if isinstance(exc, bx.ParamValidationError):
            return ConfigError(f"{what}: invalid request: {_one_line(exc)}")
        if isinstance(exc, bx.ClientError):
            code, text = _error_fields(exc.response)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            message = f"{what} failed: {code}: {text}".rstrip(": ")
            if _clock_refused(code, text):
                # Exit 4, not 5: AWS rejected the request's timestamp before it judged the
                # credentials, so this is no verdict on them (a still-valid cached token may
                # be served), and the cause is this machine's clock, which NTP usually puts
                # right: a condition that passes, like an outage, not a refusal.
                return BackendUnavailable(
                    f"{what} failed: this machine's clock is off "
                    f"({_skew_of(exc.response, self.request.now())}), "
                    f"so AWS refused the request's time: {code}: {text}".rstrip(": "),
                    hint="fix the system clock (turn on NTP: timedatectl set-ntp true; macOS: "
                    "sudo sntp -sS time.apple.com; Windows: w32tm /resync), then run again")
            if code in _THROTTLED or status == 429:
                return BackendUnavailable(message, hint="AWS is throttling; try again later")
            if code in ("ExpiredToken", "ExpiredTokenException"):
                return _CredentialsExpired(message, hint=self._renew_hint())
            if code in _REFUSED or status in (401, 403, 404):
                return AccessDenied(message, hint=self._refused_hint(code))
            if code in _INVALID or status == 400:
                return ConfigError(message, hint="check the [aws] settings (credhelper doctor)")
            if status >= 500:
                return BackendUnavailable(message)
            return AccessDenied(message)
        if isinstance(exc, bx.CredentialRetrievalError):  # credential_process, containers
            return AccessDenied(f"the AWS credential source failed: {_one_line(exc)}",
                                hint=f"check profile {profile!r} in ~/.aws/config")
        if isinstance(exc, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
            return BackendUnavailable(f"{what}: no answer from AWS in time ({name})",
                                      hint="check the network or raise [aws] timeout")
        # classified as every backend's, by type (always a TlsFailure for a botocore
        # SSLError; were it None, the error would be a plain BotoCoreError, below)
        if isinstance(exc, bx.SSLError) and (tls := net.tls_failure(
                exc, "[aws] ca_cert, AWS_CA_BUNDLE or ca_bundle in ~/.aws/config")) is not None:
            endpoint = exc.kwargs.get("endpoint_url") or "AWS"
            return BackendUnavailable(f"{what}: TLS to {endpoint} failed: {tls.reason}",
                                      hint=tls.hint)
        if isinstance(exc, bx.ProxyConnectionError):  # its proxy_url has *** for credentials
            return self._proxy_error(what, net.proxy_failure(
                exc, exc.kwargs.get("proxy_url") or "", self.endpoint_url or "https://amazonaws.com"))
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError,
                            bx.HTTPClientError)):
            return BackendUnavailable(f"{what}: cannot reach AWS: {_one_line(exc)}",
                                      hint="check the network, proxies and [aws] endpoint_url")
        config_errors = tuple(getattr(bx, n) for n in (
            "InvalidConfigError", "PartialCredentialsError", "InvalidRegionError",
            "UnknownCredentialError", "ConfigParseError", "InvalidProxiesConfigError")
            if hasattr(bx, n))
        if isinstance(exc, config_errors):
            return ConfigError(f"invalid AWS configuration: {_one_line(exc)}",
                               hint="check ~/.aws/config, ~/.aws/credentials "
                                    "and the AWS_ variables")
        if isinstance(exc, bx.BotoCoreError):
            return BackendUnavailable(f"{what}: {name}: {_one_line(exc)}")
        # An answer past the size cap, or a transport failure while reading one through the
        # cap (outside botocore's own mapping): every backend's words (credhelper.net).
        where = self.endpoint_url or getattr(exc, "url", None)
        return net.failure(exc, where or "AWS", name="AWS" if where else None,
                           address_setting="[aws] endpoint_url (or AWS_ENDPOINT_URL)") or exc

    @staticmethod
    def _proxy_error(what: str, proxy: net.ProxyFailure) -> BackendUnavailable:
        return BackendUnavailable(f"{what}: cannot reach AWS through {proxy.named}: "
                                  f"{proxy.reason}", hint=proxy.hint)

    def _renew_hint(self) -> str:
        if self.profile:
            return (f"renew the credentials of profile {self.profile!r} "
                    f"(aws sso login --profile {self.profile}, or new keys)")
        return "the session token in the environment has expired: get new credentials"

    def _refused_hint(self, code: str) -> str:
        if code == "ResourceNotFoundException":
            return "check [aws] secret_id and version_stage"
        if code.startswith("OutboundWebIdentityFederationDisabled"):
            return ("an administrator of the account must enable it once: "
                    "aws iam enable-outbound-web-identity-federation")
        return "check the IAM policy of the caller (credhelper status shows who that is)"


class _SsoSignIn:
    """An IAM Identity Center sign-in for an ``sso-session`` of ~/.aws/config, made in the
    helper as ``aws sso login --use-device-code`` makes it: SSO OIDC RegisterClient (a
    public client, with the session's sso_registration_scopes), StartDeviceAuthorization,
    the verification URI and code shown by the shared presenter, CreateToken polled within
    the run's sign-in deadline. The token is written where and as the AWS CLI writes it,
    ``~/.aws/sso/cache/<sha1 of the session name>.json`` (accessToken, expiresAt,
    refreshToken, clientId, clientSecret, registrationExpiresAt, region, startUrl), so the
    AWS CLI and botocore's SSO token provider use it and refresh it from then on.

    A sign-in the person has not finished when the run ends is kept (device_flow's
    PendingSignIn, with the registration it needs to poll), and the next run in any
    context polls that same one: one code per sign-in. Its calls go where botocore sends
    its own SSO OIDC calls (AWS_ENDPOINT_URL_SSO_OIDC, the services section of the
    config), not to [aws] endpoint_url."""

    DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
    CACHE_DIR = ("~", ".aws", "sso", "cache")
    SLOW_DOWN = 5.0  # seconds added to the interval on SlowDownException (RFC 8628)

    def __init__(self, aws: _Aws, profile: str, name: str, session: dict):
        self.aws, self.profile, self.name = aws, profile, name
        self.start_url, self.region = session["sso_start_url"], session["sso_region"]
        self.scopes = [s.strip() for s in str(session.get("sso_registration_scopes") or "")
                       .split(",") if s.strip()]
        self.where = f"IAM Identity Center ({self.start_url})"
        self.hint = (f"run: aws sso login --profile {profile}, or run credhelper-aws in a "
                     "terminal: it signs in itself")

    @classmethod
    def of(cls, aws: _Aws) -> _SsoSignIn | None:
        """The sign-in for the profile in use, or the first profile of its source_profile
        chain, that names an sso_session; None when none does (a legacy SSO profile, with
        sso_start_url in the profile itself, is left to `aws sso login`)."""
        config = aws.session.full_config
        profiles, sessions = config.get("profiles", {}), config.get("sso_sessions", {})
        name = aws.session.get_config_variable("profile") or "default"
        seen: set[str] = set()
        while isinstance(profiles.get(name), dict) and name not in seen:
            seen.add(name)
            session_name = profiles[name].get("sso_session")
            if session_name:
                session = sessions.get(session_name)
                if not (isinstance(session, dict) and session.get("sso_start_url")
                        and session.get("sso_region")):
                    return None  # botocore says what is missing
                return cls(aws, name, session_name, session)
            name = profiles[name].get("source_profile")
        return None

    def run(self, needed: LoginRequired) -> None:
        """Sign in (or finish the sign-in an earlier run started) and write the token;
        LoginRequired (exit 3) when this run may not ask, or the person is not done yet."""
        from .device_flow import PendingSignIn, Presenter, state_lock

        aws = self.aws
        request = aws.request
        pending = PendingSignIn(request, f"aws-sso:{self.name}\0{self.start_url}\0{self.region}")
        with state_lock(request, "aws", "sso:" + self.name) as lock:
            lock.check()  # exit 4 at the deadline while another run starts this sign-in
            started = pending.load()
            if started is None:
                request.require_interactive(
                    f"the AWS SSO session for profile {self.profile!r} (sso-session "
                    f"{self.name!r}) has expired or is missing", self.hint)
            if request.interactive:  # a person is waiting: the longer bound
                aws.request = request = request.signing_in()
            shown = Presenter.of(request, aws)
            if started is None:
                aws.log.debug(f"{needed.message}: signing in to {self.where}")
                started = self._start(request)
                pending.save(started)
                shown.code(pending.prompt(started))
            elif request.interactive:
                aws.log.debug(f"resuming the sign-in started earlier ({started['user_code']})")
                shown.code(pending.prompt(started))
        for name in ("client_secret", "device_code"):
            request.log.secret(started.get(name))
        token = self._poll(request, pending, started)
        self._write(request, started, token)
        pending.clear()

    # -------------------------------------------------------- SSO OIDC

    def _client(self, request):
        from botocore import UNSIGNED
        from botocore.config import Config

        left = request.remaining()
        # SSO OIDC takes no signature (as botocore's own SSO token provider calls it).
        config = self.aws.client_config().merge(Config(signature_version=UNSIGNED,
                                                       read_timeout=max(0.1, min(left, 15.0))))
        return self.aws.session.create_client("sso-oidc", region_name=self.region,
                                              config=config)

    def _call(self, request, operation: str, *, flow_codes: tuple[str, ...] = (), **params):
        """One SSO OIDC call, retried by credhelper.net's rule; an error whose code is in
        ``flow_codes`` is returned (the device flow's answers), every other raised as a
        contract error."""
        retry = net.Retry(request)
        what = f"sso-oidc {_camel(operation)}"
        while True:
            try:
                return getattr(self._client(request), operation)(**params), None
            except Exception as exc:
                response = getattr(exc, "response", None)
                code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
                if code in flow_codes:
                    return None, code
                error = self.aws.translate(exc, what)
                status = _retry_status(exc)
                if code == "SlowDownException":  # SSO OIDC's word for throttling (a 400)
                    status = 429
                    error = BackendUnavailable(f"{what}: IAM Identity Center asks to slow down")
                if status is None or not retry.again(status, _retry_after(exc),
                                                     f"{what}: {error.message}", "POST"):
                    raise (retry.error(error.message, error.hint) if retry.why
                           else error) from None

    def _start(self, request) -> dict:
        """RegisterClient and StartDeviceAuthorization: what polling needs, to be saved."""
        from .device_flow import CODE_LIFETIME, bounded

        register: dict[str, Any] = {"clientName": f"credhelper-{self.name}"[:64],
                                    "clientType": "public"}
        if self.scopes:
            register["scopes"] = self.scopes
        client, _ = self._call(request, "register_client", **register)
        request.log.secret(client.get("clientSecret"))
        device, _ = self._call(request, "start_device_authorization",
                               clientId=client["clientId"], clientSecret=client["clientSecret"],
                               startUrl=self.start_url)
        request.log.secret(device.get("deviceCode"))
        if not all(isinstance(device.get(k), str) and device[k]
                   for k in ("deviceCode", "userCode", "verificationUri")):
            raise AccessDenied(f"{self.where} started no device sign-in (its answer lacks the "
                               "device code, user code or verification URI)")
        now = request.now()
        return {"device_code": device["deviceCode"], "user_code": device["userCode"],
                "verification_uri": device["verificationUri"],
                "verification_uri_complete": device.get("verificationUriComplete"),
                "expires_at": now + bounded(device.get("expiresIn"), 600.0, *CODE_LIFETIME),
                "interval": device.get("interval"),
                "client_id": client["clientId"], "client_secret": client["clientSecret"],
                "registration_expires_at": client.get("clientSecretExpiresAt")}

    def _poll(self, request, pending, started: dict) -> dict:
        """CreateToken until the person approves: within the sign-in deadline in the
        interactive context, once in any other."""
        from .device_flow import POLL_INTERVAL, bounded, oauth_error

        interval = bounded(started.get("interval"), 5.0, *POLL_INTERVAL)
        pending_codes = ("AuthorizationPendingException", "SlowDownException")
        while True:
            token, code = self._call(
                request, "create_token",
                flow_codes=("ExpiredTokenException", "AccessDeniedException",
                            "InvalidGrantException", *pending_codes),
                grantType=self.DEVICE_GRANT, clientId=started["client_id"],
                clientSecret=started["client_secret"], deviceCode=started["device_code"])
            if code is None:
                break
            if code in ("ExpiredTokenException", "InvalidGrantException"):
                pending.clear()  # spent: the next run starts a new sign-in
                raise oauth_error("expired_token", None, self.where, self.hint, "device")
            if code == "AccessDeniedException":
                pending.clear()
                raise oauth_error("access_denied", None, self.where, self.hint, "device")
            if code == "SlowDownException":
                interval = min(interval + self.SLOW_DOWN, POLL_INTERVAL[1])
            if (not request.interactive
                    or request.monotonic() + interval + 1.0 > request.login_deadline
                    or started["expires_at"] <= request.now()):
                if started["expires_at"] <= request.now():
                    pending.clear()
                    raise oauth_error("expired_token", None, self.where, self.hint, "device")
                raise pending.not_finished(started, self.where, self.hint)
            request.sleep(interval)
        if not isinstance(token.get("accessToken"), str) or not token["accessToken"]:
            raise AccessDenied(f"{self.where} answered CreateToken without an access token")
        for name in ("accessToken", "refreshToken"):
            request.log.secret(token.get(name))
        return token

    # -------------------------------------------------------- the AWS CLI's token cache

    def _write(self, request, started: dict, token: dict) -> None:
        import hashlib
        import os

        from botocore.utils import JSONFileCache

        now = request.now()
        lifetime = token.get("expiresIn")
        lifetime = lifetime if isinstance(lifetime, int) and lifetime > 0 else 3600
        registered = started.get("registration_expires_at")
        doc = {"startUrl": self.start_url, "region": self.region,
               "accessToken": token["accessToken"], "expiresAt": _iso(now + lifetime),
               "clientId": started["client_id"], "clientSecret": started["client_secret"]}
        if isinstance(registered, (int, float)) and not isinstance(registered, bool):
            doc["registrationExpiresAt"] = _iso(float(registered))
        if isinstance(token.get("refreshToken"), str):
            doc["refreshToken"] = token["refreshToken"]
        folder = os.path.expanduser(os.path.join(*self.CACHE_DIR))
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)  # (botocore's would be 0777-umask)
            # botocore's own writer: a private temporary file, renamed over the old one
            JSONFileCache(folder)[hashlib.sha1(self.name.encode()).hexdigest()] = doc
        except OSError as exc:
            raise BackendUnavailable(f"cannot write the IAM Identity Center token to {folder}: "
                                     f"{exc.strerror or exc}") from None
        request.log.debug(f"signed in to {self.where}: token saved in {folder}, "
                          f"valid until {doc['expiresAt']}")


def _read_terminal(prompt: str) -> str:
    """getpass on the terminal: the prompt goes to /dev/tty (else stderr), never stdout,
    and the answer is not echoed. getpass has no timeout, so the run's watchdog may end
    the process while it waits; the terminal's echo is then put back at exit."""
    import atexit
    import functools
    import getpass
    import sys

    restore = None
    try:
        import termios

        fd = sys.stdin.fileno()
        restore = functools.partial(termios.tcsetattr, fd, termios.TCSANOW, termios.tcgetattr(fd))
        atexit.register(restore)
    except Exception:  # no termios (Windows: getpass reads the console), or no terminal
        restore = None
    try:
        return getpass.getpass(prompt)
    except EOFError:
        return ""
    finally:
        if restore is not None:
            atexit.unregister(restore)


def _cap_answers(class_attributes, base_classes, **_) -> None:
    """botocore's event as it builds a client class: every client of the run (ours, and
    those botocore makes for the credential chain: AssumeRole, SSO) reads its answers
    through credhelper.net's cap."""
    base_classes.insert(0, _CappedClient)


class _CappedClient:
    """Mixed into a botocore client: its HTTP session's answers arrive unread (botocore
    streams them, preload_content=False, but its send() reads each whole at once) and are
    read through ``net.capped``, which stops past net.MAX_BODY (at once when the
    Content-Length says so): net.ResponseTooLarge, which ``_Aws.translate`` makes exit 4
    (5 for a refusal)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        http = self._endpoint.http_session
        send = http.send

        def capped_send(request):
            streamed = request.stream_output
            request.stream_output = True  # else send() reads the whole answer itself
            try:
                response = send(request)
            finally:
                request.stream_output = streamed
            if response.status_code == 407:
                # Only a proxy answers so (to a plain http endpoint_url): said as the
                # proxy's, before botocore reads it as an AWS error (or fails to).
                from botocore.utils import get_environ_proxies

                response.raw.close()
                proxy = get_environ_proxies(request.url).get(request.url.partition(":")[0])
                raise net.proxy_failure(None, proxy or "", request.url, 407,
                                        "Proxy Authentication Required")
            response.raw = net.capped(response.raw, response.status_code, request.url,
                                      response.headers.get("content-length"))
            if not streamed:
                response.content  # noqa: B018  (read now, as send() would have)
            return response

        http.send = capped_send


class _WriteOnly:
    """A role-session cache that finds nothing and still writes what it is given: for
    resolving again after AWS called a cached session expired."""

    def __init__(self, cache):
        self.cache = cache

    def __contains__(self, key) -> bool:
        return False

    def __getitem__(self, key):
        raise KeyError(key)

    def __setitem__(self, key, value) -> None:
        self.cache[key] = value


def _field(value: str, field: str, secret_id: str) -> str:
    import json

    try:
        doc = json.loads(value)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise AccessDenied(f"secret {secret_id!r} is not a JSON object, "
                           f"so it has no field {field!r}",
                           hint="remove [aws] field to print the whole secret")
    if field not in doc:
        keys = ", ".join(sorted(str(k) for k in doc)[:20])
        raise AccessDenied(f"secret {secret_id!r} has no field {field!r}",
                           hint=f"its fields: {keys}")
    chosen = doc[field]
    if isinstance(chosen, bool) or not isinstance(chosen, (str, int, float)):
        raise AccessDenied(f"field {field!r} of secret {secret_id!r} is not a string")
    return str(chosen)


def _error_fields(response: dict) -> tuple[str, str]:
    """(code, message) of an AWS error. An XML or HTML body where botocore expected JSON
    (a proxy's error page, a test server) is read for its Code/Message, else summarised."""
    err = response.get("Error", {})
    code, text = str(err.get("Code") or "Unknown"), str(err.get("Message") or "")
    if text.lstrip().startswith("<"):
        found = {tag: re.search(f"<{tag}>([^<]*)</{tag}>", text) for tag in ("Code", "Message")}
        if found["Code"]:
            code = found["Code"].group(1)
            text = found["Message"].group(1) if found["Message"] else ""
        else:
            text = "the answer was a markup page, not an AWS response (a proxy in the way?)"
    return code, _one_line(text)


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _camel(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def _retry_status(exc) -> int | None:
    """The HTTP status of an AWS error answer, for the retry rule; a throttling answer
    counts as 429 whatever its status (STS says Throttling with a 400)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return 429 if code in _THROTTLED else status if isinstance(status, int) else None


def _retry_after(exc) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("retry-after")


def _clock_refused(code: str, text: str) -> bool:
    """Did AWS refuse the request because its time (X-Amz-Date) is too far from AWS's?
    Query-protocol services say SignatureDoesNotMatch, JSON ones InvalidSignatureException,
    with "Signature expired: ..." or "Signature not yet current: ..."."""
    if code in _CLOCK_CODES:
        return True
    return code in ("SignatureDoesNotMatch", "InvalidSignatureException") and text.startswith(
        ("Signature expired", "Signature not yet current"))


def _date_skew(response: dict, now: float) -> float | None:
    """Seconds this machine's clock is ahead of AWS's (negative: behind), from the Date
    header of an AWS answer or error; None without a readable one."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        return None
    from email.utils import parsedate_to_datetime

    try:
        return now - parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None


def _skew_of(response: dict, now: float) -> str:
    """How far this machine's clock is from AWS's, in words, for a refusal's message."""
    skew = _date_skew(response, now)
    if skew is not None and abs(skew) >= 60:  # less is jitter, not the cause
        return f"about {abs(skew):.0f}s {'ahead of' if skew > 0 else 'behind'} AWS"
    return "by more than AWS allows"


def _connection_failure(exc) -> bool:
    from botocore import exceptions as bx

    return isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError))
