"""The full path: resolve the configuration, look in the cache, on a miss take the lock,
look again, fetch within the deadline (under a watchdog), store, print. Also writes the
configuration snapshot that lets the next run take the hot path."""

from __future__ import annotations

import os
import sys
import time

from credhelper import errors, output, paths, snapshot
from credhelper.errors import CredhelperError
from credhelper.hotpath import why_not_served
from credhelper.log import Log

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Literal, TextIO

    from credhelper.budget import Budget, Deadlines
    from credhelper.cache import FileCache
    from credhelper.config import ProviderConfig
    from credhelper.provider import Credential, Provider, Request


def get(provider_name: str, env: Mapping[str, str], stdin: TextIO | None, stderr: TextIO | None,
        clock: Callable[[], float], log: Log, force: bool = False,
        started: float | None = None) -> str:
    from credhelper.cache import EARLY, SERVE, Entry, Lock, decide

    run = Run.prepare(provider_name, env, stdin, stderr, log, force=force, started=started,
                      clock=clock)
    conf, cache, key = run.config, run.cache, run.key
    grace = conf["refresh_grace"] if force else None
    run.place_in_window()

    def verdict(entry: Entry | None) -> str:
        return decide(entry, clock(), conf["min_validity"], conf["refresh_window"], run.spread,
                      grace)

    files = ", ".join(f"{path} ({'read' if read else 'absent'})" for _, path, read in conf.files)
    log.debug(f"configuration: {files}; cache {cache.mode} at {cache.path(provider_name, key)}")
    log.debug(f"time budget {run.budget.timeout:g}s from {run.budget.timeout_source}; "
              f"this run ends within {run.budget.usable:g}s")
    entry = cache.load(provider_name, key)
    first = verdict(entry)
    if entry is not None and first == SERVE:
        log.debug("cache hit (full path)" + (": refreshed within refresh_grace" if force else ""))
        return run.finish(entry.token, entry.headers, entry.expires_at)
    if force or first == EARLY:
        log.debug(why_not_served(entry, force, first))
    # An early renewal is one from start to end (the entry it falls back on is checked
    # below), and it waits for no other run: one holding the lock is renewing already.
    early = first == EARLY
    lock: Lock | _nothing = (Lock(run.directory, provider_name, key,
                                  time.monotonic() if early else run.request.deadline, log)
                             if cache.mode != "none" else _nothing())
    with lock:
        entry = cache.load(provider_name, key)
        if entry is not None and verdict(entry) == SERVE:
            log.debug("another run fetched while this one waited for the lock")
            return run.finish(entry.token, entry.headers, entry.expires_at)
        if early:
            run.never_ask()
        try:
            lock.check()
            log.debug(f"fetching from {run.provider.describe()} ({run.request.context} context, "
                      f"interactive={run.request.interactive}{', early' if early else ''})")
            cred = run.fetch()
            token = output.check_token(cred.token, run.provider.describe())
            output.check_backend_headers(cred.headers, run.provider.describe())
            log.secret(token)
            now = clock()
            expires_at = usable_expiry(cred.expires_at, run.provider.describe(), log)
            from_backend = expires_at is not None
            if expires_at is None and conf.get("max_age"):
                expires_at = now + conf["max_age"]
            if expires_at is not None and expires_at <= now:
                raise errors.AccessDenied(
                    f"{run.provider.describe()} returned a credential that expired "
                    f"{int(now - expires_at)}s ago"
                )
        except (*errors.STALE_IF_ERROR, errors.AccessDenied) as exc:
            if entry is None or not entry.valid(clock()):
                raise
            left = int(entry.expires_at - clock())
            if early:
                # Not due yet: without the window this run would have served it. A debug
                # line only; the renewal due at min_validity reports what is still wrong.
                log.debug(f"early renewal failed: {exc.message}; serving the cached "
                          f"credential, which stays valid for {left}s more")
                return run.finish(entry.token, entry.headers, entry.expires_at)
            # A refusal (5) is never papered over. A forced run that finds the sign-in gone
            # says so (exit 3): the app has given up on the cached credential, and only a
            # person can get a new one.
            if not isinstance(exc, errors.STALE_IF_ERROR) or (
                    force and isinstance(exc, errors.LoginRequired)):
                raise
            log.warning(f"{exc.message}; serving the cached credential, which stays valid "
                        f"for {left}s more")
            return run.finish(entry.token, entry.headers, entry.expires_at)

        if expires_at is not None and expires_at - now < conf["min_validity"]:
            log.warning(f"the new credential is valid for only {int(expires_at - now)}s, "
                        f"less than min_validity ({int(conf['min_validity'])}s)")
        if expires_at is None:
            log.debug("not cached: the backend gives no expiry and max_age is not set")
        else:
            origin = cred.expiry_origin if from_backend else "max_age"
            log.debug(f"new credential valid for {int(expires_at - now)}s (expiry from {origin})")
            try:
                cache.store(Entry(provider_name, key, token, cred.headers, expires_at, now,
                                  cred.details))
            except (OSError, CredhelperError) as exc:
                log.warning(f"could not write the cache: {getattr(exc, 'message', exc)}")
        return run.finish(token, cred.headers, expires_at)


def usable_expiry(expires_at: float | None, source: str, log: Log) -> float | None:
    """The backend's expiry when a clock can show it: NaN, or a time past the year 9999
    (``exp`` of 1e999 is infinity), is no usable expiry, said once (the entry would be
    unreadable, and the backend asked on every run). A time in the past stays: the
    credential has expired."""
    from credhelper.cache import LAST_TIMESTAMP

    if expires_at is None or expires_at <= LAST_TIMESTAMP:  # NaN fails the test
        return expires_at
    log.warning(f"{source} gave an expiry that is no date ({expires_at!r:.24}): "
                "treated as none (max_age applies)")
    return None


class _nothing:
    """The lock of ``cache = "none"``: nothing to share, nothing to wait for."""

    def __enter__(self) -> _nothing:
        return self

    def check(self) -> None:
        pass

    def __exit__(self, *exc: object) -> Literal[False]:
        return False


class Run:
    """Everything the full path resolves once: config, provider, cache, key, request."""

    env: Mapping[str, str]
    log: Log
    config: ProviderConfig
    provider: Provider
    directory: str
    cache: FileCache
    key: str
    caller: Caller
    budget: Budget
    deadlines: Deadlines
    timeout: float
    request: Request
    spread: float = 0.0  # this machine's place in the advisory window (place_in_window)

    @classmethod
    def prepare(cls, provider_name: str, env: Mapping[str, str], stdin: TextIO | None,
                stderr: TextIO | None, log: Log, force: bool = False,
                started: float | None = None, by_hand: bool = False,
                clock: Callable[[], float] = time.time) -> Run:
        """``by_hand``: a command a person runs (login, status, doctor), which no app
        bounds; a credential run is bounded by the app's time budget."""
        from credhelper import budget as budget_mod, config as config_mod, context, registry
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
        self.caller = Caller.of(self.provider, env)
        self.key = cache_key(provider_name, conf, env, self.caller)
        name, interactive = context.resolve(env, stderr if stderr is not None else sys.stderr)
        start = time.monotonic() if started is None else started
        self.budget = budget_mod.read(conf)
        self.deadlines = (budget_mod.Deadlines.by_hand(start, conf) if by_hand
                          else budget_mod.Deadlines.compute(start, conf, self.budget))
        # Keyring calls (cache, state) end by the run's deadline; only a run a person
        # waits at may let the keyring show an unlock dialog.
        self.timeout = self.deadlines.network - start  # the hot path's bound, too
        keyring_deadline = self.deadlines.sign_in if interactive else self.deadlines.network
        self.cache = open_cache(conf["cache"], self.directory, log, keyring_deadline, interactive)
        stdin_tty = context.is_terminal(stdin if stdin is not None else sys.stdin)
        stderr_tty = context.is_terminal(stderr if stderr is not None else sys.stderr)
        self.request = Request(
            context=name,
            interactive=interactive,
            deadline=self.deadlines.network,
            login_deadline=self.deadlines.sign_in,
            log=log,
            stdin_is_tty=stdin_tty,
            stderr_is_tty=stderr_tty,
            force_refresh=force,
            env=env,
            clock=clock,
            state=StateStore("keyring" if conf["cache"] == "keyring" else "file",
                             self.directory, provider_name, log, keyring_deadline, interactive),
        )
        return self

    def place_in_window(self) -> None:
        """This machine's place in the advisory window for this key (cache.machine_spread),
        for the decision and the snapshot. A cache directory that cannot keep the machine's
        id only costs the window: such a machine renews when min_validity is reached."""
        from credhelper.cache import machine_spread

        if self.cache.mode == "none" or not self.config["refresh_window"]:
            return
        try:
            self.spread = machine_spread(self.directory, self.key)
        except (OSError, CredhelperError) as exc:
            self.log.debug(f"no early renewal: cannot keep this machine's id in the cache "
                           f"directory: {getattr(exc, 'message', None) or exc}")

    def never_ask(self) -> None:
        """An early renewal never asks a person, nor lets the keyring show an unlock
        dialog: it is only worth having if nobody notices it."""
        from dataclasses import replace

        from credhelper.cache import StateStore

        deadline = self.deadlines.network
        state = StateStore(self.request.state.mode, self.directory, self.config.provider,
                           self.log, deadline, may_prompt=False)
        self.request = replace(self.request, interactive=False, login_deadline=deadline,
                               state=state)

    def fetch(self) -> Credential:
        """provider.fetch under a watchdog: a library that ignores the deadline cannot
        hold the run past it (the worker thread is abandoned; the process exits)."""
        import threading

        result: dict[str, Credential] = {}
        failed: list[BaseException] = []

        def work() -> None:
            try:
                result["value"] = self.provider.fetch(self.request)
            except BaseException as exc:  # handed to the main thread below
                failed.append(exc)

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
        if failed:
            raise failed[0]
        return result["value"]

    def finish(self, token: str, headers: Mapping[str, str],
               expires_at: float | None = None) -> str:
        """Write the snapshot for the next hit and render the output (``expires_at``: the
        credential's expiry as cached, for the outputs that carry it)."""
        conf = self.config
        try:
            snapshot.write(
                self.directory,
                self.config.provider,
                conf.identities.files + self.caller.files,
                conf.identities.managed,
                [*conf.env_names, *self.caller.variables],
                self.env,
                {
                    "cache": conf["cache"],
                    "key": self.key,
                    "min_validity": conf["min_validity"],
                    "refresh_window": conf["refresh_window"],
                    "spread": self.spread,
                    "refresh_grace": conf["refresh_grace"],
                    "output": conf["output"],
                    "headers": conf["headers"],
                    "log_file": conf.get("log_file"),
                    "timeout": self.timeout,
                },
            )
        except (OSError, CredhelperError) as exc:
            self.log.debug("could not write the configuration snapshot: "
                           f"{getattr(exc, 'message', exc)}")
        return output.render(token, {**headers, **conf["headers"]}, conf["output"], expires_at)


def cache_dir(env: Mapping[str, str]) -> str:
    """The cache directory: CREDHELPER_CACHE_DIR, else platformdirs' user cache dir."""
    if env.get("CREDHELPER_CACHE_DIR"):
        return paths.user_cache_dir(env)
    import platformdirs

    return platformdirs.user_cache_dir(paths.APP, appauthor=False)


def cache_key(provider: str, conf: ProviderConfig, env: Mapping[str, str],
              caller: Caller | None = None) -> str:
    """A digest of every setting that changes the credential and of who asks: the
    provider's identity variables and identity files (``Provider.identity_sources``);
    secrets and file contents enter only as part of the digest."""
    import hashlib
    import json

    from credhelper import registry

    provider_cls = registry.load(provider)
    if caller is None:
        caller = Caller.of(provider_cls(conf), env)
    material: dict[str, object] = {
        "provider": provider,
        "settings": {n: v.value for n, v in sorted(conf.values.items()) if v.setting.credential},
        "identity": {n: env.get(n) for n in provider_cls.identity_env},
    }
    if caller.variables or caller.digests:  # absent for most: their keys stay as they were
        material["caller"] = {"variables": {n: env.get(n) for n in caller.variables},
                              "files": caller.digests}
    data = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:32]


class Caller:
    """Who asks, beyond the settings: the variables and files the provider reads its
    identity from, each file's identity (for the snapshot, taken before it is read) and a
    digest of its content (for the cache key)."""

    MAX_BYTES = 1024 * 1024  # an identity file is small; a device or a log is not read on

    def __init__(self) -> None:
        self.variables: list[str] = []
        self.files: list[list[object]] = []
        self.digests: dict[str, str | None] = {}

    @classmethod
    def of(cls, provider: Provider, env: Mapping[str, str]) -> Caller:
        import hashlib

        self = cls()
        files, self.variables = provider.identity_sources(env)
        for path in dict.fromkeys(files):
            self.files.append(snapshot.file_identity(path))
            try:
                # Non-blocking: a FIFO planted there must not hold the run.
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
                try:
                    data = os.read(fd, cls.MAX_BYTES)
                finally:
                    os.close(fd)
                self.digests[path] = hashlib.sha256(data).hexdigest()
            except (OSError, ValueError):
                self.digests[path] = None  # absent or unreadable: the run says why
        return self
