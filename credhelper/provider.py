"""The provider interface: what a backend declares and does. The core does the rest.

A provider declares its settings and fetches one credential within the run's deadline.
Configuration, cache, lock, context policy, output, exit codes and logging belong to the
core (``credhelper.fullpath``), so a new backend is one module in ``providers/`` and never
touches the contract. Provider modules import their backend library inside methods, so
that loading a provider to read its settings costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from credhelper.clock import CLOCK_SKEW_WARNING
from credhelper.durations import parse_retry_after
from credhelper.errors import BackendUnavailable, ConfigError, LoginRequired
from credhelper.log import Log

if TYPE_CHECKING:
    import click

    from credhelper.config import ProviderConfig

# Value kinds a setting can have; config.py parses and validates each.
KINDS = ("str", "int", "bool", "duration", "url", "path", "choice", "list", "table")


class Setting:
    """One setting a provider declares. (Plain classes for Setting and Credential: this
    module is on every cache miss, and a dataclass costs about half a millisecond to
    define.)"""

    __slots__ = ("name", "kind", "default", "required", "secret", "choices", "env",
                 "credential", "help")

    def __init__(self, name: str, kind: str = "str", default: Any = None,
                 required: bool = False, secret: bool = False, choices: tuple[str, ...] = (),
                 env: tuple[str, ...] = (), credential: bool = True, help: str = "") -> None:
        self.name = name
        self.kind = kind
        self.default = default
        self.required = required
        self.secret = secret  # masked in doctor and status; never logged
        self.choices = choices
        self.env = env  # the backend's own well-known variables, used as a fallback
        self.credential = credential  # changes the credential, so it is part of the cache key
        self.help = help


# Settings every provider understands (DESIGN §4). They shape how the credential is
# handed out, not which credential it is, so only max_age enters the cache key.
COMMON_SETTINGS = (
    Setting("timeout", "duration", 30.0, credential=False,
            help="deadline for the whole run: every network call and retry"),
    Setting("login_timeout", "duration", None, credential=False,
            help="deadline for an interactive sign-in (device code, browser); default: as "
                 "long as the app's time budget allows"),
    Setting("app_timeout", "duration", 60.0, credential=False,
            help="seconds the app lets a run take (its inferenceCredentialHelperTimeoutSec, "
                 "read from its managed preferences where set); every run ends 2s before"),
    Setting("refresh_grace", "duration", 10.0, credential=False,
            help="a forced refresh (mid-session-refresh, --force-refresh) serves an entry "
                 "fetched this recently instead of fetching again"),
    Setting("min_validity", "duration", 300.0, credential=False,
            help="hand out a credential only while it stays valid at least this long"),
    Setting("refresh_window", "duration", 300.0, credential=False,
            help="in this long before min_validity is reached, renew early at a moment "
                 "spread per machine, serving the cached credential if that fails; "
                 "0 turns it off"),
    Setting("max_age", "duration", None,
            help="expiry for credentials whose backend gives none"),
    Setting("cache", "choice", "file", choices=("file", "keyring", "none"), credential=False,
            help="where fetched credentials are kept"),
    Setting("output", "choice", "token",
            choices=("token", "json", "headers", "x-api-key-headers", "exec-credential"),
            credential=False,
            help="bare token; JSON {token, headers}; for other callers, a JSON object of "
                 "headers (Authorization: Bearer, or x-api-key) or a Kubernetes "
                 "ExecCredential"),
    Setting("headers", "table", {}, credential=False,
            help="extra headers for the gateway; printed in the JSON form"),
    Setting("log_file", "path", None, credential=False,
            help="append a log of every run to this file (never a secret)"),
    Setting("display_name", credential=False,
            help="the gateway's name in sign-in notifications and lines (who is asking); "
                 "default: the host of the app's inferenceGatewayBaseUrl, where managed"),
    Setting("browser_command", credential=False,
            help="the command that opens the browser for a sign-in (split like a shell "
                 "command line; the address is appended); default: the system's browser"),
)


class Credential:
    """What a provider's fetch returns."""

    __slots__ = ("token", "expires_at", "headers", "details", "expiry_origin")

    def __init__(self, token: str, expires_at: float | None = None,
                 headers: dict[str, str] | None = None,
                 details: dict[str, Any] | None = None,
                 expiry_origin: str = "the backend") -> None:
        self.token = token
        self.expires_at = expires_at  # Unix time; None when the backend gives none
        self.headers = headers if headers is not None else {}
        self.details = details if details is not None else {}  # for status; never a secret
        # Where expires_at comes from, for --debug: a provider that makes one up for a
        # secret without expiry (a KV secret's max_age default) says so.
        self.expiry_origin = expiry_origin


def _http_session(*args: Any, **kwargs: Any) -> Any:
    from credhelper import net  # requests is imported only by a backend that asks

    return net.session(*args, **kwargs)


@dataclass(frozen=True)
class Request:
    """Everything a provider may know about the run it serves, and the only way it reads
    the environment, the clocks or builds an HTTP session: the core hands these in, so a
    provider can be driven in-process with a fake clock and environment. (Backend
    libraries still read the process environment themselves: botocore's AWS_*, requests'
    proxies.)"""

    context: str  # the CLAUDE_HELPER_CONTEXT in effect ("interactive", "background", ...)
    interactive: bool  # may this run ask a person (device code, prompt, browser)?
    deadline: float  # monotonic() by which every network call must be done
    login_deadline: float  # the longer bound for an interactive sign-in
    log: Log
    stdin_is_tty: bool = False  # may a person be asked on the terminal (getpass)?
    stderr_is_tty: bool = False  # does a person read stderr (else: the desktop presenter)?
    state: Any = None  # credhelper.cache.StateStore: private storage for long-lived secrets
    # mid-session-refresh or --force-refresh: the caller gave up on the credential it holds,
    # so no token the provider keeps itself (MSAL's cache) may be handed back unrenewed.
    force_refresh: bool = False
    env: Mapping[str, str] = field(default_factory=dict)  # the run's environment
    clock: Callable[[], float] = time.time  # wall clock (expiry times, Unix seconds)
    monotonic: Callable[[], float] = time.monotonic  # for deadlines
    sleep: Callable[[float], None] = time.sleep
    http: Callable[..., Any] = _http_session  # credhelper.net.session

    def now(self) -> float:
        return self.clock()

    def session(self, *args: Any, **kwargs: Any) -> Any:
        """An HTTP session of the one network layer (credhelper.net.session), reading
        REQUESTS_CA_BUNDLE from this run's environment."""
        return self.http(*args, env=self.env, **kwargs)

    def signing_in(self) -> Request:
        """This request with the sign-in deadline for every call: a person is waiting."""
        return replace(self, deadline=self.login_deadline)

    def remaining(self) -> float:
        """Seconds left before the deadline; raises once it has passed."""
        left = self.deadline - self.monotonic()
        if left <= 0:
            raise BackendUnavailable("the deadline passed before the backend answered")
        return left

    def pause_before_retry(self, attempt: int, what: str, first: float = 0.25,
                           cap: float = 2.0, retry_after: str | None = None) -> bool:
        """Back off before retry number ``attempt`` (1, 2, ...) and return True, or return
        False, without sleeping, when the deadline leaves no room for the pause plus half
        a second of work.

        The pause is the server's ``Retry-After`` when it sent a readable one (a server
        that says when to come back is obeyed, not hammered), else ``first`` doubled per
        attempt, at most ``cap``."""
        delay = min(cap, first * 2 ** (attempt - 1))
        asked = parse_retry_after(retry_after) if retry_after is not None else None
        if asked is not None:
            delay = asked
        if self.deadline - self.monotonic() < delay + 0.5:
            if asked is not None:
                self.log.debug(f"{what}; the server asks to retry in {asked:.0f}s, "
                               "past this run's deadline")
            return False
        self.log.debug(f"{what}; retrying in {delay:.2f}s"
                       + (" (Retry-After)" if asked is not None else ""))
        self.sleep(delay)
        return True

    def fresh_token_expiry(self, token: str, issuer: str, sent_at: float | None = None,
                           expires_in: object = None) -> float | None:
        """The expiry, on this machine's clock, of a token the issuer has just minted.

        A JWT's ``exp`` is a time on the issuer's clock. When the token also carries
        ``iat``, its lifetime (exp - iat) is counted from ``sent_at`` (when the request
        left, the earliest the token can have been minted; default now) instead, and so
        is the answer's ``expires_in`` (or Vault's ``ttl``); the earlier end wins. A laptop
        whose clock is off neither serves a dead token nor throws away a good one, and a
        slow answer is not mistaken for a fresh one. The skew is reported."""
        import math

        from credhelper import jwt
        from credhelper.durations import MAX_SECONDS

        now = self.clock() if sent_at is None else sent_at
        claims = (jwt.decode(token) or ({}, {}))[1]
        exp, iat = jwt.number(claims.get("exp")), jwt.number(claims.get("iat"))
        expires = exp
        if exp is not None and iat is not None and iat <= exp:
            skew = iat - now
            if abs(skew) > CLOCK_SKEW_WARNING:
                self.log.warning(f"this machine's clock is {abs(skew):.0f}s "
                                 f"{'behind' if skew > 0 else 'ahead of'} {issuer}'s; the "
                                 "token's lifetime is counted from now (fix the clock: signed "
                                 "requests and other tools may fail)")
            expires = now + (exp - iat)
        lifetime = jwt.number(expires_in)
        if lifetime is not None and math.isfinite(lifetime) and lifetime > 0:
            from_answer = now + min(lifetime, MAX_SECONDS)
            expires = from_answer if expires is None else min(expires, from_answer)
        return expires

    def require_interactive(self, what: str, hint: str) -> None:
        """Raise LoginRequired (exit 3) unless this run may ask a person."""
        if not self.interactive:
            raise LoginRequired(f"{what}, and this run may not ask ({self.context} context)", hint)


class Provider:
    """Base class of every backend. Subclasses set ``name``, ``settings`` and ``fetch``."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    library: ClassVar[str | None] = None  # the distribution it needs, for --version/doctor
    settings: ClassVar[tuple[Setting, ...]] = ()
    can_login: ClassVar[bool] = False
    # Variables that say *who* asks without being settings (raw AWS keys, ...): their
    # values enter the cache key and the hot-path snapshot as digests, so switching
    # identity never serves a credential minted for the previous one.
    identity_env: ClassVar[tuple[str, ...]] = ()
    # What doctor probes for reachability, TLS and clock skew: the setting holding the
    # backend's base URL and the one holding its CA bundle (None: nothing to probe).
    address_setting: ClassVar[str | None] = None
    ca_setting: ClassVar[str | None] = None
    # The setting that says how long this backend's credentials live (a name, or one per
    # ``mode``), for doctor and mdm export to compare with the app's TTL before anything
    # is cached. None: the backend's answer says it.
    lifetime_setting: ClassVar[str | dict[str, str] | None] = None

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    def fetch(self, request: Request) -> Credential:
        raise NotImplementedError

    def login(self, request: Request) -> None:
        raise ConfigError(f"{self.name} has no sign-in: nothing to log in to")

    def logout(self, request: Request) -> None:
        raise ConfigError(f"{self.name} has no sign-in: nothing to log out of")

    def status(self, request: Request) -> dict[str, Any]:
        """Extra facts for ``status`` (token accessor, account, ...). Never a secret."""
        return {}

    def describe(self) -> str:
        """Where the credential comes from, in a few words, for status and logs."""
        return self.name

    def declared_lifetime(self) -> tuple[float, str] | None:
        """(seconds, where that comes from) from ``lifetime_setting``, or None."""
        setting = self.lifetime_setting
        if isinstance(setting, dict):
            setting = setting.get(self.config.get("mode"))
        if not setting or not self.config.get(setting):
            return None
        value = float(self.config[setting])
        return value, f"[{self.name}] {setting} = {value:g}s"

    def identity_sources(self, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """(files, variables) whose content says who is asking, besides ``identity_env``:
        by default the files and variables that secret-valued settings reference (a token
        in ``file:PATH``). Their content enters the cache key as a digest and the files'
        identity the hot-path snapshot, so an identity switched by rewriting a file is
        never served the previous identity's credential. Backends that read identity
        files of their own (``~/.vault-token``, ``~/.aws/credentials``) add them."""
        from credhelper import secretref

        return secretref.references(
            self.config, [(s.name, None) for s in self.settings if s.secret], env)

    def diagnose(self, request: Request) -> list[tuple[str, str, str]]:
        """Checks for doctor, as (status, check, detail) with status ok|warn|fail."""
        return []

    def cli_commands(self) -> list[click.Command]:
        """Extra click commands for this backend's entry point (``store``, ...)."""
        return []
