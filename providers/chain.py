"""credhelper-chain: several backends tried in order; the first credential wins.

``[chain] providers = ["keyring", "oidc"]`` names backends that are each configured in
their own table as usual. A chain run is not a fetch: ``credhelper.helper`` hands it to
``get_text`` here, which runs every named backend through the core's own path for it
(``hotpath.hit``, then ``fullpath.get``: its own cache, lock, snapshot, stale-if-error),
all counted from the chain run's start, so the whole chain fits the app's one time budget.
The chain keeps nothing of its own: no cache entry (one could outlive the backend entry
it copied, after a logout or a cache clear), no state.

Contexts: every backend is first tried silently, as the background context would (an
interactive run passes its backends ``CLAUDE_HELPER_CONTEXT=background``). When none gave
a credential and the run is interactive, only the first backend that needed a person
(exit 3) is tried again, interactively. A failed chain prints one line per backend and
exits with the most actionable code of theirs (``PRECEDENCE``). docs/backends/chain.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from credhelper import errors
from credhelper.errors import ConfigError, CredhelperError
from credhelper.provider import Provider, Setting

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import TextIO

    from credhelper.log import Log

NAME = "chain"
# A failed chain's exit code: the first of these that some backend gave. A sign-in comes
# first: exit 3 is what makes the app run the helper in the interactive context, where
# the chain can start it. Then what only an administrator can fix (2), what may pass by
# itself (4), a refusal (5); a bug (1) only when every backend hit one.
PRECEDENCE = (errors.LOGIN_REQUIRED, errors.CONFIG, errors.UNAVAILABLE, errors.REFUSED,
              errors.INTERNAL)
# What the chain's own table may hold: a run's other settings are each backend's own.
OWN = ("providers", "log_file")


class Chain(Provider):
    name = NAME
    summary = "several backends tried in order, the first credential wins"
    settings = (
        Setting("providers", "list", required=True, credential=False,
                help="the backends to try, in order, each configured in its own table"),
    )

    def describe(self) -> str:
        return "chain of " + ", ".join(self.config["providers"])

    def fetch(self, request):
        # credhelper.helper runs a chain through get_text: nothing should fetch it.
        raise CredhelperError("the chain has no fetch of its own (a bug: it is run by "
                              "credhelper.helper)")

    def status(self, request) -> dict[str, Any]:
        return {"tries": ", then ".join(self.config["providers"]),
                "caches": "nothing of its own: see each backend's status"}

    def diagnose(self, request) -> list[tuple[str, str, str]]:
        try:
            names = backends(self.config)
        except ConfigError as exc:
            return [("fail", "providers", exc.message)]
        from credhelper import registry

        checks = [("ok", "providers", ", then ".join(names))]
        for name in names:
            try:
                registry.load(name)
            except ConfigError as exc:
                checks.append(("fail", name, exc.message))
            else:
                checks.append(("ok", name, f"checked in its own section: credhelper doctor "
                                           f"--provider {name}"))
        return checks


def backends(conf) -> list[str]:
    """The chain's backends, checked: ConfigError (exit 2) for a chain that names itself,
    an unknown backend or one twice, or that sets in its own table what belongs to each
    backend's."""
    from credhelper import registry

    for name, value in conf.values.items():
        if name not in OWN and value.source.startswith(("[chain] ", "CREDHELPER_CHAIN_")):
            raise ConfigError(
                f"{value.source}: the chain has no {name} of its own; each backend runs "
                "with its own settings",
                hint="set it in the backends' tables, or in [defaults] for all of them")
    names: list[str] = conf["providers"]
    where = conf.source("providers")
    if not names:
        raise ConfigError(f"{where}: the chain names no backend",
                          hint='list them in order, e.g. providers = ["keyring", "oidc"]')
    known = registry.names()
    for i, name in enumerate(names):
        if name == NAME:
            raise ConfigError(f"{where}: a chain cannot name itself",
                              hint="list the backends to try, in order")
        if name not in known:
            raise ConfigError(f"{where}: unknown backend {errors.shorten(repr(name), 60)}",
                              hint=f"choose from: {', '.join(n for n in known if n != NAME)}")
        if name in names[:i]:
            raise ConfigError(f"{where}: {name} is named twice")
    return names


def get_text(env: Mapping[str, str], stdin: TextIO | None, stderr: TextIO,
             clock: Callable[[], float], log: Log, force: bool, started: float) -> str:
    """The first credential of the chain's backends, as that backend prints it (its own
    output and headers settings); else the most actionable failure, one line each."""
    from credhelper import config, context

    conf = config.load(Chain, env)
    if conf.get("log_file"):
        log.log_file = conf["log_file"]
    names = backends(conf)
    interactive = context.resolve(env, stderr)[1]
    silent = {**env, "CLAUDE_HELPER_CONTEXT": "background"} if interactive else env
    failed: list[tuple[str, CredhelperError]] = []
    for name in names:
        text, error = _attempt(name, silent, stdin, stderr, clock, log, force, started)
        if error is None:
            for other, exc in failed:  # the person needs none of this: it worked
                log.debug(_line(other, exc))
            log.debug(f"{name} gave the credential")
            return text
        failed.append((name, error))
    first = next((i for i, (_, exc) in enumerate(failed)
                  if exc.exit_code == errors.LOGIN_REQUIRED), None)
    if interactive and first is not None:
        name = failed[first][0]
        log.info(f"{log.prog}: no backend gave a credential without you; signing in to {name}")
        text, error = _attempt(name, env, stdin, stderr, clock, log, force, started)
        if error is None:
            return text
        failed[first] = (name, error)
    raise _failure(failed, log)


def _attempt(name: str, env: Mapping[str, str], stdin: TextIO | None, stderr: TextIO,
             clock: Callable[[], float], log: Log, force: bool, started: float
             ) -> tuple[str, CredhelperError | None]:
    """One backend through the core's path: (its stdout text, None) or ("", its error).
    Its warnings and sign-in prompts reach stderr as ``credhelper-chain: NAME: ...``."""
    from credhelper.guard import not_dumpable
    from credhelper.hotpath import hit
    from credhelper.log import Log

    own = Log(f"{log.prog}: {name}", log.stderr, log.debug_enabled, log.log_file)
    try:
        text = hit(name, env, clock, own, force, started)
        if text is None:
            not_dumpable()  # the full path handles backend secrets (as helper.py does)
            from credhelper.fullpath import get

            text = get(name, env, stdin, stderr, clock, own, force, started)
        return text, None
    except CredhelperError as exc:
        return "", exc
    except (KeyboardInterrupt, BrokenPipeError):
        raise  # the run is over, not just this backend: guard.guarded says so
    except Exception as exc:  # a bug in one backend must not hide the others' credentials
        return "", CredhelperError(f"internal error (a bug): {exc.__class__.__name__}: "
                                   f"{log.redact(str(exc))[:300]}",
                                   hint=f"run credhelper-{name} --debug and report the output")


def _line(name: str, exc: CredhelperError) -> str:
    return f"{name}: {exc.message} (exit {exc.exit_code})"


def _failure(failed: list[tuple[str, CredhelperError]], log: Log) -> CredhelperError:
    """One line per backend tried, and the chain's error: the most actionable code."""
    for name, exc in failed:
        log.warning(_line(name, exc))

    def rank(item: tuple[str, CredhelperError]) -> int:
        code = item[1].exit_code
        return PRECEDENCE.index(code) if code in PRECEDENCE else len(PRECEDENCE)

    name, chosen = min(failed, key=rank)  # min keeps the first of equal rank: chain order
    error = CredhelperError(
        f"no backend of the chain gave a credential ({', '.join(n for n, _ in failed)}); "
        f"exit {chosen.exit_code} from {name}",
        hint=f"{name}: {chosen.hint}" if chosen.hint else None)
    error.exit_code = chosen.exit_code if chosen.exit_code in PRECEDENCE else errors.INTERNAL
    return error
