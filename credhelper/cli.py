"""The click CLIs: the umbrella ``credhelper`` and each backend's own commands.

Reached only for commands (``status``, ``doctor``, ``--help``, ...): the no-argument run
never imports click (see ``run.py``). Commands raise ``CredhelperError``; ``_invoke`` maps
it, like everything else, through ``run.guarded`` to the contract's exit codes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO, TypeVar

import click

from credhelper import __version__, errors, registry, report, securefile
from credhelper.errors import ConfigError
from credhelper.fullpath import Run, cache_dir
from credhelper.guard import guarded
from credhelper.helper import get_and_print
from credhelper.log import Log

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """What every command needs: streams, environment, clock, logging."""

    def __init__(self, prog: str, env: Mapping[str, str] | None, stdout: TextIO | None,
                 stderr: TextIO | None, clock: Callable[[], float], debug: bool) -> None:
        self.prog = prog
        self.env = os.environ if env is None else env
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.clock = clock
        self.debug = debug
        self.log = Log(prog, self.stderr, debug)

    def prepare(self, provider: str) -> Run:
        return Run.prepare(provider, self.env, None, self.stderr, self.log, by_hand=True,
                           clock=self.clock)

    def echo(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def get(self, provider: str, force: bool = False) -> int:
        stdout = None if self.stdout is sys.stdout else self.stdout
        return get_and_print(self.prog, provider, self.debug, self.env, None, stdout,
                             self.stderr, self.clock, force=force)


def version_text(prog: str, provider: str | None = None) -> str:
    from importlib import metadata

    parts = [f"{prog} {__version__}"]
    library = registry.load(provider).library if provider else None
    if library:
        try:
            parts.append(f"{library} {metadata.version(library)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{library} not installed")
    parts.append(f"Python {sys.version.split()[0]}")
    try:  # written into binaries by scripts/build-binaries
        import credhelper_buildinfo as build

        parts.append(f"commit {build.COMMIT}, {build.LAYOUT} binary")
    except ImportError:
        pass
    return parts[0] + " (" + ", ".join(parts[1:]) + ")"


def _version_option(provider: str | None) -> Callable[[F], F]:
    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value and not ctx.resilient_parsing:
            ctx.obj.echo(version_text(ctx.obj.prog, provider))
            ctx.exit(0)

    return click.option("--version", is_flag=True, expose_value=False, is_eager=True,
                        callback=callback, help="Show the version and exit.")


_debug_option = click.option("--debug", is_flag=True, expose_value=False,
                             help="Verbose log on stderr (never a secret).")
_force_option = click.option(
    "--force-refresh", "force", is_flag=True,
    help="Fetch a new credential instead of the cached one (what the app's "
         "mid-session-refresh context does); an entry fetched within refresh_grace counts "
         "as new.")


# ---------------------------------------------------------------- shared commands


def _same(f: F) -> F:
    return f


def _status_command(fixed_provider: str | None) -> click.Command:
    @click.command("status")
    @click.option("--show-secret", is_flag=True, help="Also print the cached credential itself.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @(click.option("--provider", "-p", help="Only this provider.") if fixed_provider is None
      else _same)
    @click.pass_obj
    def status(app: App, show_secret: bool, as_json: bool, provider: str | None = None) -> None:
        """What is cached, where it came from, and when it expires."""
        chosen = fixed_provider or provider
        names = [chosen] if chosen else registry.names()
        entries = report.status(app, names, show_secret)
        app.echo(json.dumps(entries, indent=2) if as_json
                 else report.format_status(entries, app.clock()))

    return status


def _login_commands(provider: str) -> list[click.Command]:
    import inspect

    # The backend's own words for its sign-in (Vault's auth methods, the identity
    # provider's browser or device code), else the general ones.
    own = inspect.getdoc(registry.load(provider).login) or ""

    @click.command("login", help=own if "Sign in" in own else None)
    @click.pass_obj
    def login(app: App) -> None:
        """Sign in now (device code or browser); later runs use the sign-in silently."""
        import dataclasses

        run = app.prepare(provider)
        # Asked for by a person, so a sign-in may start.
        run.provider.login(dataclasses.replace(run.request, interactive=True))
        app.log.info("signed in")

    @click.command("logout")
    @click.pass_obj
    def logout(app: App) -> None:
        """Forget the sign-in and the cached credential."""
        run = app.prepare(provider)
        run.provider.logout(run.request)
        run.cache.delete(provider, run.key)
        app.log.info("signed out")

    return [login, logout]


def backend_commands(provider: str) -> list[click.Command]:
    cls = registry.load(provider)

    @click.command("get")
    @_force_option
    @click.pass_obj
    def get(app: App, force: bool) -> None:
        """Print the credential (what running with no arguments does)."""
        raise SystemExit(app.get(provider, force))

    commands = [get, _status_command(provider)]
    if cls.can_login:
        commands += _login_commands(provider)
    return commands


# ---------------------------------------------------------------- the backend CLI


def backend_main(provider: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 stdout: TextIO | None = None, stderr: TextIO | None = None,
                 clock: Callable[[], float] = time.time) -> int:
    app = App(f"credhelper-{provider}", env, stdout, stderr, clock, "--debug" in argv)
    return _invoke(lambda: _backend_group(provider, app), app, argv)


def _backend_group(provider: str, app: App) -> click.Group:
    cls = registry.load(provider)

    @click.group(app.prog, invoke_without_command=True,
                 help=f"Print a gateway credential from {cls.summary}.\n\n"
                 "With no command, print the credential on stdout and exit.")
    @_version_option(provider)
    @_debug_option
    @_force_option
    @click.pass_context
    def group(ctx: click.Context, force: bool) -> None:
        if ctx.invoked_subcommand is None:
            ctx.exit(app.get(provider, force))

    # No configuration is resolved for the command list: cli_commands must not read it.
    for command in backend_commands(provider) + cls(None).cli_commands():  # type: ignore[arg-type]
        group.add_command(command)
    return group


# ---------------------------------------------------------------- the umbrella CLI


def umbrella_main(argv: Sequence[str], env: Mapping[str, str] | None = None,
                  stdout: TextIO | None = None, stderr: TextIO | None = None,
                  clock: Callable[[], float] = time.time) -> int:
    app = App("credhelper", env, stdout, stderr, clock, "--debug" in argv)
    return _invoke(lambda: umbrella, app, argv)


@click.group("credhelper", help="Gateway credentials for Claude apps: diagnose, inspect, export.")
@_version_option(None)
@_debug_option
def umbrella() -> None:
    pass


@umbrella.command("get")
@click.option("--provider", "-p", required=True, help="Backend: " + ", ".join(registry.names()))
@_force_option
@click.pass_obj
def umbrella_get(app: App, provider: str, force: bool) -> None:
    """Print a credential from PROVIDER, exactly as credhelper-PROVIDER does."""
    raise SystemExit(app.get(provider, force))


umbrella.add_command(_status_command(None))


@umbrella.command("version")
@click.pass_obj
def version(app: App) -> None:
    """Show the version of credhelper and of each backend library."""
    app.echo(version_text("credhelper"))
    for name in registry.names():
        try:
            text = version_text(f"credhelper-{name}", name)
            app.echo("  " + text.split(" (", 1)[1].rstrip(")"))
        except ConfigError as exc:
            app.echo(f"  {name}: {exc.message}")


@umbrella.group("cache")
def cache_group() -> None:
    """List or clear cached credentials."""


@cache_group.command("list")
@click.option("--provider", "-p", help="Only this provider.")
@click.pass_obj
def cache_list(app: App, provider: str | None) -> None:
    """One line per cached credential (never the credential)."""
    for line in report.cache_lines(app, provider):
        app.echo(line)


@cache_group.command("clear")
@click.option("--provider", "-p", help="Only this provider.")
@click.pass_obj
def cache_clear(app: App, provider: str | None) -> None:
    """Delete cached credentials (the backends keep theirs)."""
    count = report.clear_cache(app, provider)
    app.log.info(f"removed {count} cached credential{'s' if count != 1 else ''}")
    # Temporaries of writes cut short between write and rename may hold a credential too.
    leftovers = securefile.remove_temporaries(cache_dir(app.env))
    if leftovers:
        app.log.info(f"removed {leftovers} temporary file{'s' if leftovers != 1 else ''} "
                     "left by interrupted writes")


@umbrella.command("doctor")
@click.option("--provider", "-p", multiple=True, help="Check this provider (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.pass_obj
def doctor(app: App, provider: tuple[str, ...], as_json: bool) -> None:
    """One report to paste into a ticket: sources, settings, cache, backend checks."""
    result = report.doctor(app, list(provider))
    app.echo(json.dumps(result, indent=2) if as_json else report.format_doctor(result))
    if any(check["status"] == "fail"
           for section in result["sections"] for check in section["checks"]):
        raise SystemExit(errors.CONFIG)


@umbrella.group("mdm")
def mdm_group() -> None:
    """Write and check MDM profiles for Claude Desktop, Claude Code and the helper."""


@mdm_group.command("export")
@click.option("--base-url", required=True, help="The gateway's base URL (https).")
@click.option("--app", "app_name", type=click.Choice(["desktop", "claude-code", "both"]),
              default="desktop", show_default=True, help="Which app's files to write.")
@click.option("--helper", help="Absolute path of the helper on macOS (or Windows).")
@click.option("--windows-helper", help="Absolute path of the helper on Windows.")
@click.option("--auth-scheme", type=click.Choice(["bearer", "x-api-key", "sso"]),
              default="bearer", show_default=True,
              help="inferenceGatewayAuthScheme; sso: the app signs users in (older releases).")
@click.option("--credential-kind", type=click.Choice(["helper-script", "interactive"]),
              help="inferenceCredentialKind (1.8555.0 on); interactive: the app signs users "
                   "in, no helper.")
@click.option("--ttl", type=int,
              help="Seconds an app keeps a credential (inferenceCredentialHelperTtlSec; "
                   "Claude Code: CLAUDE_CODE_API_KEY_HELPER_TTL_MS).")
@click.option("--timeout", type=int,
              help="inferenceCredentialHelperTimeoutSec: seconds the app waits for the helper "
                   "(1..600).")
@click.option("--header", "headers", multiple=True, metavar="NAME:VALUE",
              help="Extra header the app sends (repeatable).")
@click.option("--legacy-headers", is_flag=True,
              help="Also write the headers as inferenceGatewayHeaders (releases before "
                   "1.8089.0).")
@click.option("--model", "models", multiple=True, metavar="ID",
              help="Model for the picker (repeatable).")
@click.option("--provider", "-p", help="Include this provider's current settings (never a secret).")
@click.option("--set", "settings", multiple=True, metavar="TABLE.KEY=VALUE",
              help="A helper setting to manage (repeatable), e.g. vault.address=https://...")
@click.option("--code-settings", metavar="FILE",
              help="Claude Code: a JSON file of your other managed settings, merged in.")
@click.option("--out", "out_dir", default=".", show_default=True, help="Directory to write into.")
@click.pass_obj
def mdm_export(app: App, base_url: str, app_name: str, helper: str | None,
               windows_helper: str | None, auth_scheme: str, credential_kind: str | None,
               ttl: int | None, timeout: int | None, headers: tuple[str, ...],
               legacy_headers: bool, models: tuple[str, ...], provider: str | None,
               settings: tuple[str, ...], code_settings: str | None, out_dir: str) -> None:
    """Write the profiles: claude-gateway.mobileconfig and .reg (Claude Desktop);
    managed-settings.json, claude-code.mobileconfig and .reg (Claude Code)."""
    from credhelper import mdm

    parsed: dict[str, str] = {}
    for item in headers:
        name, sep, value = item.partition(":")
        if not sep:
            raise ConfigError(f"--header {item!r}: expected NAME:VALUE")
        parsed[name.strip()] = value.strip()
    options = mdm.Options(
        base_url, helper=helper, windows_helper=windows_helper, auth_scheme=auth_scheme,
        credential_kind=credential_kind, ttl=ttl, timeout=timeout, headers=parsed,
        models=list(models), provider=provider, settings=list(settings), app=app_name,
        code_settings=code_settings, legacy_headers=legacy_headers)
    export = mdm.build(options, app.env)
    for warning in export.warnings:
        app.log.warning(warning)
    for path in mdm.write(export, out_dir):
        app.echo(f"wrote {path}")


@mdm_group.command("lint")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.pass_obj
def mdm_lint(app: App, files: tuple[str, ...]) -> None:
    """Check a .mobileconfig, .reg or managed-settings.json against the keys Claude Desktop
    and Claude Code read. Exit 2 on an error; unknown keys are warnings."""
    from credhelper import mdm

    failed = False
    for path in files:
        findings = mdm.lint(path)
        for f in findings:
            app.echo(f"{path}: {f.level}: " + (f"{f.where}: " if f.where else "") + f.message)
        errors_found = sum(f.level == "error" for f in findings)
        warnings = len(findings) - errors_found
        failed |= bool(errors_found)
        counts = [f"{n} {word}{'s' if n != 1 else ''}"
                  for n, word in ((errors_found, "error"), (warnings, "warning")) if n]
        app.echo(f"{path}: " + (", ".join(counts) if errors_found else
                                "ok" + (f" ({counts[0]})" if counts else "")))
    if failed:
        raise SystemExit(errors.CONFIG)


@umbrella.command("test-gateway")
@click.argument("url")
@click.option("--auth-scheme", type=click.Choice(["bearer", "x-api-key"]), default="bearer",
              show_default=True, help="How to send the credential, as inferenceGatewayAuthScheme.")
@click.option("--provider", "-p", help="Which helper to run (default: the only configured one).")
@click.option("--model", help="Model for the test message (default: the first listed).")
@click.option("--sso", is_flag=True,
              help="Check the app's own sign-in (inferenceGatewayAuthScheme = sso, "
                   "inferenceCredentialKind = interactive): the gateway's OAuth metadata, "
                   "then a token from credhelper-oidc at the issuer it names.")
@click.option("--ca-cert", metavar="FILE",
              help="CA file (PEM) that verifies the gateway's certificate, instead of the "
                   "system's CAs and REQUESTS_CA_BUNDLE.")
@click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="A header sent on every gateway call, as the app's custom headers "
                   "(repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.pass_obj
def test_gateway(app: App, url: str, auth_scheme: str, provider: str | None, model: str | None,
                 sso: bool, ca_cert: str | None, headers: tuple[str, ...],
                 as_json: bool) -> None:
    """Run the helper as the app does, then call the gateway with its credential, through
    the proxy of HTTPS_PROXY / HTTP_PROXY or the system's settings (NO_PROXY honoured)."""
    from credhelper import gateway

    if sso and (provider or "oidc") != "oidc":
        raise ConfigError("--sso signs in with credhelper-oidc: leave out --provider")
    if sso and auth_scheme != "bearer":
        raise ConfigError("--sso sends the token as a bearer token: --auth-scheme x-api-key "
                          "does not apply")
    custom = gateway.parse_headers(headers)
    name = "oidc" if sso else provider or _only_configured_provider(app)
    result = gateway.test_gateway(url, auth_scheme, name, model, app.env, sso=sso,
                                  ca_cert=ca_cert, headers=custom)
    if as_json:
        app.echo(json.dumps({"checks": result.checks, "verdict": result.verdict,
                             "exit_code": result.exit_code}, indent=2))
    else:
        app.echo(gateway.format_report(result))
    if result.exit_code:
        raise SystemExit(result.exit_code)


def _only_configured_provider(app: App) -> str:
    from credhelper import config as config_mod

    found, _ = config_mod.sources(app.env, [config_mod.DEFAULTS] + registry.names())
    configured = sorted({t for s in found for t in s.tables if t != config_mod.DEFAULTS})
    if len(configured) != 1:
        raise ConfigError("say which helper to run: --provider NAME",
                          hint=f"providers: {', '.join(registry.names())}")
    return configured[0]


# ---------------------------------------------------------------- running click


def _invoke(make_group: Callable[[], click.Group], app: App, argv: Sequence[str]) -> int:
    argv = [a for a in argv if a != "--debug"]
    code = [errors.OK]

    def action() -> None:
        group = make_group()
        saved = sys.stdout
        sys.stdout = app.stdout  # click writes --help to sys.stdout
        try:
            # Without standalone mode, click returns ctx.exit()'s code instead of raising.
            returned = group.main(args=argv, prog_name=app.prog, standalone_mode=False, obj=app)
            if isinstance(returned, int) and not isinstance(returned, bool):
                code[0] = returned
        except click.exceptions.Exit as exc:
            code[0] = exc.exit_code
        except SystemExit as exc:
            code[0] = exc.code if isinstance(exc.code, int) else errors.INTERNAL
        except click.UsageError as exc:
            raise ConfigError(exc.format_message().strip(), hint=f"see {app.prog} --help") from None
        except click.Abort:
            raise errors.CredhelperError("aborted") from None
        finally:
            sys.stdout = saved

    result = guarded(app.log, app.debug, action)
    return result if result != errors.OK else code[0]
