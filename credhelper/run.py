"""The helper run: print one credential on stdout, or fail with a contract exit code.

Read ``get`` top to bottom for the story: resolve the configuration, look in the cache,
on a miss take the lock, look again, fetch within the deadline, store, print.
``hit`` is the hot path before it: with an unchanged configuration snapshot and a fresh
entry it prints without importing TOML, typing, click or any backend library.

Every entry point funnels through ``helper_main`` / ``umbrella_main``, which take argv,
environment, streams and a clock as parameters so the contract is testable in-process.
This is also the one place where errors become exit codes.
"""

from __future__ import annotations

import os
import sys
import time

from credhelper import errors, output, paths, securefile, snapshot
from credhelper.errors import CredhelperError
from credhelper.log import Log


FLAGS = ("--debug", "--force-refresh")  # what a plain run accepts; the rest is click


def helper_main(provider: str, argv=None, env=None, stdin=None, stdout=None, stderr=None,
                clock=time.time) -> int:
    """``credhelper-<provider>``: no arguments (or only --debug / --force-refresh) prints
    a credential."""
    started = time.monotonic()  # the app's clock started when it ran us: count from here
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = f"credhelper-{provider}"
    if len(set(argv)) == len(argv) and all(arg in FLAGS for arg in argv):
        return get_and_print(prog, provider, "--debug" in argv, env, stdin, stdout, stderr,
                             clock, force="--force-refresh" in argv, started=started)
    from credhelper import cli

    return cli.backend_main(provider, argv, env=env, stdout=stdout, stderr=stderr, clock=clock)


def umbrella_main(argv=None, env=None, stdin=None, stdout=None, stderr=None, clock=time.time) -> int:
    """``credhelper``: ``get --provider NAME`` takes the hot path too; the rest is click."""
    started = time.monotonic()
    argv = sys.argv[1:] if argv is None else list(argv)
    parsed = _parse_get(argv)
    if parsed is not None:
        provider, flags = parsed
        return get_and_print("credhelper", provider, "--debug" in flags, env, stdin, stdout,
                             stderr, clock, force="--force-refresh" in flags, started=started)
    from credhelper import cli

    return cli.umbrella_main(argv, env=env, stdout=stdout, stderr=stderr, clock=clock)


def _parse_get(argv: list[str]) -> tuple[str, set[str]] | None:
    """``get --provider NAME [--debug] [--force-refresh]`` in any order; anything else
    (None) goes to click."""
    if not argv or argv[0] != "get":
        return None
    rest, provider, flags = argv[1:], None, set()
    while rest:
        arg = rest.pop(0)
        if arg in FLAGS and arg not in flags:
            flags.add(arg)
        elif arg in ("--provider", "-p") and rest and provider is None:
            provider = rest.pop(0)
        elif arg.startswith("--provider=") and provider is None:
            provider = arg.split("=", 1)[1]
        else:
            return None
    valid = provider and provider.replace("-", "").replace("_", "").isalnum()
    return (provider, flags) if valid else None


def get_and_print(prog, provider, debug, env=None, stdin=None, stdout=None, stderr=None,
                  clock=time.time, force=False, started=None) -> int:
    env = os.environ if env is None else env
    stderr = sys.stderr if stderr is None else stderr
    started = time.monotonic() if started is None else started
    log = Log(prog, stderr, debug)
    force = force or forced_by_context(env)
    with StdoutGuard(stdout, _Redacting(stderr, log)) as out:
        return guarded(log, debug, lambda: out.write(
            _get_text(provider, env, stdin, stderr, clock, log, force, started)))


def forced_by_context(env) -> bool:
    """The app runs us in ``mid-session-refresh`` when the credential it holds has expired
    or was refused: serving the cached entry would hand the same one back."""
    return (env.get("CLAUDE_HELPER_CONTEXT") or "").strip() == "mid-session-refresh"


def _get_text(provider, env, stdin, stderr, clock, log, force, started) -> str:
    text = hit(provider, env, clock, log, force)
    return text if text is not None else get(provider, env, stdin, stderr, clock, log, force,
                                             started)


def guarded(log: Log, debug: bool, action) -> int:
    """Run ``action``; map every outcome to an exit code and one clear stderr line."""
    try:
        action()
        return errors.OK
    except CredhelperError as exc:
        log.error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return errors.INTERNAL
    except BrokenPipeError:
        return errors.INTERNAL  # the caller stopped reading; nothing useful to say
    except Exception as exc:  # a bug: say so without a traceback, unless --debug
        text = log.redact(str(exc))[:300]
        log.error(
            f"internal error (a bug): {exc.__class__.__name__}: {text}",
            hint="run again with --debug and report the output",
        )
        if debug:
            import traceback

            log.info(log.redact("".join(traceback.format_exc())))
        return errors.INTERNAL


class _Redacting:
    """Where stray ``print`` output goes during a run: stderr, with secrets masked."""

    def __init__(self, stream, log: Log):
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.stream.write(self.log.redact(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


class StdoutGuard:
    """Route everything but the credential away from stdout while a run is in progress.

    Libraries sometimes print. For the real process stdout the file descriptor itself is
    pointed at stderr, so even C-level writes cannot reach the caller; the credential is
    written to a saved duplicate of the original descriptor.
    """

    def __init__(self, stdout, stderr):
        self.stdout, self.stderr = stdout, stderr
        self.saved_fd = None

    def __enter__(self):
        self.saved_sys_stdout = sys.stdout
        if self.stdout is None:
            try:
                sys.stdout.flush()
                self.saved_fd = os.dup(1)
                os.dup2(2, 1)
            except (OSError, ValueError, AttributeError):
                self.saved_fd = None
        sys.stdout = self.stderr
        return self

    def write(self, text: str) -> None:
        if self.saved_fd is not None:
            data = text.encode("utf-8")
            while data:
                data = data[os.write(self.saved_fd, data) :]
        else:
            out = self.stdout if self.stdout is not None else self.saved_sys_stdout
            out.write(text)
            out.flush()

    def __exit__(self, *exc):
        sys.stdout = self.saved_sys_stdout
        if self.saved_fd is not None:
            os.dup2(self.saved_fd, 1)
            os.close(self.saved_fd)
        return False


# ---------------------------------------------------------------- the hot path


def hit(provider: str, env, clock, log: Log, force: bool = False) -> str | None:
    """The credential text from a fresh cache entry, or None to take the full path.

    A forced refresh is served here only by an entry fetched within ``refresh_grace``:
    another run has just refreshed it, so fetching again would only load the backend."""
    directory = paths.user_cache_dir(env)
    if not securefile.check_private_dir(directory):
        return None
    snap = snapshot.read(directory, provider, env)
    if snap is None or snap.get("cache") == "none":
        log.debug("no current configuration snapshot: full run")
        return None
    log.log_file = snap.get("log_file")
    from credhelper.cache import open_cache

    grace = snap.get("refresh_grace") if force else None
    if force and not isinstance(grace, (int, float)):
        return None  # a snapshot from before refresh_grace existed: take the full path
    entry = open_cache(snap["cache"], directory, log).load(provider, snap["key"])
    now = clock()
    if entry is None or not entry.serves(now, snap["min_validity"], grace):
        log.debug(_why_not_served(entry, force))
        return None
    log.debug(f"cache hit: {provider} credential valid for {int(entry.expires_at - now)}s more")
    return output.render(entry.token, {**entry.headers, **snap["headers"]}, snap["output"])


# ---------------------------------------------------------------- the full path


def _why_not_served(entry, force: bool) -> str:
    if entry is None:
        return "cache miss"
    if force:
        return "forced refresh: the cached credential was not fetched within refresh_grace"
    return "cached credential is due for renewal"


def get(provider_name: str, env, stdin, stderr, clock, log: Log, force: bool = False,
        started: float | None = None) -> str:
    from credhelper.cache import Entry, Lock

    run = Run.prepare(provider_name, env, stdin, stderr, log, force=force, started=started)
    conf, cache, key = run.config, run.cache, run.key
    grace = conf["refresh_grace"] if force else None
    files = ", ".join(f"{path} ({'read' if read else 'absent'})" for _, path, read in conf.files)
    log.debug(f"configuration: {files}; cache {cache.mode} at {cache.path(provider_name, key)}")
    log.debug(f"time budget {run.budget.timeout:g}s from {run.budget.timeout_source}; "
              f"this run ends within {run.budget.usable:g}s")
    now = clock()
    entry = cache.load(provider_name, key)
    if entry is not None and entry.serves(now, conf["min_validity"], grace):
        log.debug("cache hit (full path)" + (": refreshed within refresh_grace" if force else ""))
        return run.finish(entry.token, entry.headers)
    if force:
        log.debug(_why_not_served(entry, force))

    lock = (Lock(run.directory, provider_name, key, run.request.deadline, log)
            if cache.mode != "none" else _nothing())
    with lock:
        entry = cache.load(provider_name, key)
        if entry is not None and entry.serves(clock(), conf["min_validity"], grace):
            log.debug("another run fetched while this one waited for the lock")
            return run.finish(entry.token, entry.headers)
        try:
            lock.check()
            log.debug(f"fetching from {run.provider.describe()} ({run.request.context} context, "
                      f"interactive={run.request.interactive})")
            cred = run.fetch()
        except errors.STALE_IF_ERROR as exc:
            # A forced run that finds the sign-in gone says so (exit 3): the app has given
            # up on the cached credential, and only a person can get a new one.
            if entry is None or not entry.valid(clock()) or (force and isinstance(
                    exc, errors.LoginRequired)):
                raise
            log.warning(f"{exc.message}; serving the cached credential, which stays valid "
                        f"for {int(entry.expires_at - clock())}s more")
            return run.finish(entry.token, entry.headers)

        token = output.check_token(cred.token, run.provider.describe())
        log.secret(token)
        now = clock()
        expires_at = cred.expires_at
        if expires_at is None and conf.get("max_age"):
            expires_at = now + conf["max_age"]
        if expires_at is not None and expires_at <= now:
            raise errors.AccessDenied(
                f"{run.provider.describe()} returned a credential that expired "
                f"{int(now - expires_at)}s ago"
            )
        if expires_at is not None and expires_at - now < conf["min_validity"]:
            log.warning(f"the new credential is valid for only {int(expires_at - now)}s, "
                        f"less than min_validity ({int(conf['min_validity'])}s)")
        if expires_at is None:
            log.debug("not cached: the backend gives no expiry and max_age is not set")
        else:
            origin = "max_age" if cred.expires_at is None else "the backend"
            log.debug(f"new credential valid for {int(expires_at - now)}s (expiry from {origin})")
            try:
                cache.store(Entry(provider_name, key, token, cred.headers, expires_at, now,
                                  cred.details))
            except (OSError, CredhelperError) as exc:
                log.warning(f"could not write the cache: {getattr(exc, 'message', exc)}")
        return run.finish(token, cred.headers)


class _nothing:
    """The lock of ``cache = "none"``: nothing to share, nothing to wait for."""

    def __enter__(self):
        return self

    def check(self) -> None:
        pass

    def __exit__(self, *exc):
        return False


class Run:
    """Everything the full path resolves once: config, provider, cache, key, request."""

    @classmethod
    def prepare(cls, provider_name, env, stdin, stderr, log: Log, force: bool = False,
                started: float | None = None, by_hand: bool = False):
        """``by_hand``: a command a person runs (login, status, doctor), which no app
        bounds; a credential run is bounded by the app's time budget."""
        from credhelper import budget as budget_mod
        from credhelper import config as config_mod
        from credhelper import context, registry
        from credhelper.cache import StateStore, open_cache
        from credhelper.provider import Request

        self = cls()
        self.env, self.log = env, log
        provider_cls = registry.load(provider_name)
        self.config = conf = config_mod.load(provider_cls, env)
        for value in conf.values.values():
            if value.setting.secret and isinstance(value.value, str):
                log.secret(value.value)
        if conf.get("log_file"):
            log.log_file = conf["log_file"]
        self.provider = provider_cls(conf)
        self.directory = cache_dir(env)
        self.cache = open_cache(conf["cache"], self.directory, log)
        self.key = cache_key(provider_name, conf, env)
        name, interactive = context.resolve(env, stderr if stderr is not None else sys.stderr)
        start = time.monotonic() if started is None else started
        self.budget = budget_mod.read(conf)
        self.deadlines = (budget_mod.Deadlines.by_hand(start, conf) if by_hand
                          else budget_mod.Deadlines.compute(start, conf, self.budget))
        stdin = stdin if stdin is not None else sys.stdin
        try:
            stdin_tty = stdin.isatty()
        except (AttributeError, ValueError, OSError):
            stdin_tty = False
        self.request = Request(
            context=name,
            interactive=interactive,
            deadline=self.deadlines.network,
            login_deadline=self.deadlines.sign_in,
            log=log,
            stdin_is_tty=stdin_tty,
            force_refresh=force,
            state=StateStore("keyring" if conf["cache"] == "keyring" else "file",
                             self.directory, provider_name, log),
        )
        return self

    def fetch(self):
        """provider.fetch under a watchdog: a library that ignores the deadline cannot
        hold the run past it (the worker thread is abandoned; the process exits)."""
        import threading

        result: dict = {}

        def work():
            try:
                result["value"] = self.provider.fetch(self.request)
            except BaseException as exc:  # handed to the main thread below
                result["error"] = exc

        from credhelper.budget import WATCHDOG_GRACE

        bound = self.request.login_deadline if self.request.interactive else self.request.deadline
        hard = min(bound + WATCHDOG_GRACE, self.deadlines.hard)
        worker = threading.Thread(target=work, name="fetch", daemon=True)
        worker.start()
        worker.join(max(0.0, hard - time.monotonic()))
        if worker.is_alive():
            if hard >= self.deadlines.hard:
                raise errors.BackendUnavailable(
                    f"no answer from {self.provider.describe()} within the app's time budget "
                    f"({self.budget.timeout:g}s, from {self.budget.timeout_source})",
                    hint="check that the backend is reachable")
            raise errors.BackendUnavailable(
                f"no answer from {self.provider.describe()} within the "
                f"{int(self.config['timeout'])}s deadline",
                hint="check that the backend is reachable, or raise timeout",
            )
        if "error" in result:
            raise result["error"]
        return result["value"]

    def finish(self, token: str, headers: dict) -> str:
        """Write the snapshot for the next hit and render the output."""
        conf = self.config
        try:
            snapshot.write(
                self.directory,
                self.config.provider,
                [path for _, path, _ in conf.files],
                conf.env_names,
                self.env,
                {
                    "cache": conf["cache"],
                    "key": self.key,
                    "min_validity": conf["min_validity"],
                    "refresh_grace": conf["refresh_grace"],
                    "output": conf["output"],
                    "headers": conf["headers"],
                    "log_file": conf.get("log_file"),
                },
            )
        except (OSError, CredhelperError) as exc:
            self.log.debug(f"could not write the configuration snapshot: {getattr(exc, 'message', exc)}")
        return output.render(token, {**headers, **conf["headers"]}, conf["output"])


def cache_dir(env) -> str:
    """The cache directory: CREDHELPER_CACHE_DIR, else platformdirs' user cache dir."""
    if env.get("CREDHELPER_CACHE_DIR"):
        return paths.user_cache_dir(env)
    import platformdirs

    return platformdirs.user_cache_dir(paths.APP, appauthor=False)


def cache_key(provider: str, conf, env) -> str:
    """A digest of every setting that changes the credential and of the provider's
    identity variables (secrets enter only as part of the digest)."""
    import hashlib
    import json

    from credhelper import registry

    material = {
        "provider": provider,
        "settings": {n: v.value for n, v in sorted(conf.values.items()) if v.setting.credential},
        "identity": {n: env.get(n) for n in registry.load(provider).identity_env},
    }
    data = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:32]
