"""credhelper-keyring: a gateway credential kept in the OS keyring.

macOS Keychain, Windows Credential Manager or a Secret Service (GNOME Keyring, KWallet)
through the ``keyring`` library. ``store`` puts the secret there (from a no-echo prompt
or piped stdin, never from argv); a run reads it back. Expiry is the JWT ``exp`` when the
secret is a JWT, else ``max_age``, else none (then it is not cached at all).
"""

from __future__ import annotations

import sys

from credhelper import jwt
from credhelper.errors import AccessDenied, BackendUnavailable, ConfigError, LoginRequired
from credhelper.provider import Credential, Provider, Setting


class KeyringProvider(Provider):
    name = "keyring"
    summary = "a secret stored in the OS keyring"
    library = "keyring"
    lifetime_setting = "max_age"  # the stored secret has no expiry of its own: max_age is it
    settings = (
        Setting("service", default="credhelper", help="keyring service name of the secret"),
        Setting("username", default="gateway", help="keyring user name of the secret"),
    )

    def describe(self) -> str:
        return f"keyring service={self.config['service']!r} username={self.config['username']!r}"

    def backend(self):
        """The usable keyring backend, or BackendUnavailable saying why there is none:
        the one check of ``credhelper.store`` (the cache's and doctor's too)."""
        from credhelper.store import usable_keyring

        return usable_keyring()

    def _call(self, what: str, fn, *args):
        from keyring.errors import KeyringError, KeyringLocked

        try:
            return fn(*args)
        except KeyringLocked:
            raise LoginRequired(
                "the keyring is locked", hint="unlock your keyring (log in to the desktop session)"
            ) from None
        except KeyringError as exc:
            raise BackendUnavailable(
                f"keyring {what} failed: {exc.__class__.__name__}: {exc}") from None
        except Exception as exc:  # D-Bus and platform errors arrive as many types
            raise BackendUnavailable(f"keyring {what} failed: {exc.__class__.__name__}") from None

    def fetch(self, request) -> Credential:
        kr = self.backend()
        if not request.interactive:  # a locked keyring: exit 3, never an unlock dialog
            from credhelper.store import refuse_prompt

            refuse_prompt(kr)
        service, username = self.config["service"], self.config["username"]
        secret = self._call("read", kr.get_password, service, username)
        if secret is None:
            raise AccessDenied(
                f"nothing stored in the keyring for service {service!r}, username {username!r}",
                hint="store it with: credhelper-keyring store",
            )
        request.log.secret(secret)
        return Credential(
            token=secret,
            expires_at=jwt.expiry(secret),
            details={"source": self.describe(), "keyring": _backend_name(kr)},
        )

    def store(self, secret: str) -> None:
        self._call("write", self.backend().set_password, self.config["service"],
                   self.config["username"], secret)

    def delete(self) -> bool:
        from keyring.errors import PasswordDeleteError

        kr = self.backend()
        try:
            self._call("delete", kr.delete_password,
                       self.config["service"], self.config["username"])
        except BackendUnavailable:
            if self._call("read", kr.get_password,
                          self.config["service"], self.config["username"]) is None:
                return False
            raise
        except PasswordDeleteError:
            return False
        return True

    def diagnose(self, request):
        try:
            kr = self.backend()
        except BackendUnavailable as exc:
            return [("fail", "keyring backend", exc.message)]
        checks = [("ok", "keyring backend", _backend_name(kr))]
        try:
            present = self._call("read", kr.get_password,
                                 self.config["service"], self.config["username"])
        except (BackendUnavailable, LoginRequired) as exc:
            return checks + [("fail", "keyring read", exc.message)]
        checks.append(("ok", "stored secret", "present") if present is not None
                      else ("fail", "stored secret", "missing: run credhelper-keyring store"))
        return checks

    def cli_commands(self):
        return _commands()


def _backend_name(kr) -> str:
    return f"{type(kr).__module__}.{type(kr).__name__}"


def read_secret(stdin, stderr, prompt: str) -> str:
    """The secret from a no-echo prompt on a terminal, or from piped stdin. Never argv."""
    if stdin.isatty():
        import getpass

        secret = getpass.getpass(prompt, stream=stderr)
    else:
        secret = stdin.read()
        if secret.endswith("\n"):
            secret = secret[:-1]
        if secret.endswith("\r"):
            secret = secret[:-1]
    if not secret.strip():
        raise ConfigError("empty secret: nothing stored")
    if any(c in secret for c in "\r\n\0") or secret != secret.strip():
        raise ConfigError("the secret must be one line without surrounding whitespace")
    from credhelper.output import token_problem

    problem = token_problem(secret)  # what a run would refuse to print (exit 5) later
    if problem:
        raise ConfigError(f"the secret is not a valid HTTP header value: {problem}; nothing "
                          "stored", hint="a gateway credential is visible ASCII without spaces")
    return secret


def _commands() -> list:
    """``store`` and ``delete`` for the credhelper-keyring CLI (click only here)."""
    import click

    @click.command("store")
    @click.argument("refused", nargs=-1, metavar="")
    @click.pass_obj
    def store(app, refused):
        """Store the gateway secret: typed at a no-echo prompt, or piped on stdin."""
        if refused:  # never echo it back: it is most likely the secret itself
            raise ConfigError(
                "store takes no arguments: a secret on the command line ends up in shell history",
                hint="type it at the prompt, or pipe it: credhelper-keyring store < file",
            )
        run = app.prepare("keyring")
        provider = run.provider
        secret = read_secret(sys.stdin, app.stderr, f"Secret for {provider.describe()}: ")
        app.log.secret(secret)
        provider.store(secret)
        _forget_cached(run)
        app.log.info(f"stored in {provider.describe()}")

    @click.command("delete")
    @click.pass_obj
    def delete(app):
        """Delete the stored secret (and its cached copy)."""
        run = app.prepare("keyring")
        _forget_cached(run)
        if not run.provider.delete():
            raise AccessDenied(f"nothing stored in {run.provider.describe()}")
        app.log.info(f"deleted from {run.provider.describe()}")

    return [store, delete]


def _forget_cached(run) -> None:
    """A stored or deleted secret must not be shadowed by its old cached copy."""
    run.cache.delete("keyring", run.key)
