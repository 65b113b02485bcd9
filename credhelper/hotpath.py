"""The cache hit: with an unchanged configuration snapshot and a fresh entry, print
without importing TOML, typing, click or any backend library (tests/test_hot_path.py)."""

from __future__ import annotations

from credhelper import output, paths, securefile, snapshot
from credhelper.log import Log

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from credhelper.cache import Entry


def hit(provider: str, env: Mapping[str, str], clock: Callable[[], float], log: Log,
        force: bool = False, started: float | None = None) -> str | None:
    """The credential text from a fresh cache entry, or None to take the full path.

    A forced refresh is served here only by an entry fetched within ``refresh_grace``:
    another run has just refreshed it, so fetching again would only load the backend.
    A keyring read is bounded by the run's deadline (``started``, time.monotonic(), plus
    the snapshot's ``timeout``) and never asks to unlock: a locked or frozen keyring is a
    miss here, and the full path decides."""
    directory = paths.user_cache_dir(env)
    if not securefile.check_private_dir(directory):
        return None
    snap = snapshot.read(directory, provider, env)
    if snap is None or snap.get("cache") == "none":
        log.debug("no current configuration snapshot: full run")
        return None
    log.log_file = snap.get("log_file")
    from credhelper.cache import SERVE, decide, open_cache

    # snapshot.read has checked every setting used here (types and ranges).
    grace = snap["refresh_grace"] if force else None
    deadline = None
    if snap["cache"] == "keyring":  # the run's bound, as the full path computed it
        import time

        deadline = (time.monotonic() if started is None else started) + snap["timeout"]
    cache = open_cache(snap["cache"], directory, log, deadline)
    entry = cache.load(provider, snap["key"], clock())
    now = clock()
    # This machine's place in the advisory window comes from the snapshot: no file to
    # read and no hashlib to import here.
    verdict = decide(entry, now, snap["min_validity"], snap["refresh_window"], snap["spread"],
                     grace)
    if entry is None or verdict != SERVE:
        log.debug(why_not_served(entry, force, verdict))
        return None
    log.debug(f"cache hit: {provider} credential valid for {int(entry.expires_at - now)}s more")
    return output.render(entry.token, {**entry.headers, **snap["headers"]}, snap["output"],
                         entry.expires_at)


# ---------------------------------------------------------------- the full path


def why_not_served(entry: Entry | None, force: bool, verdict: str) -> str:
    from credhelper.cache import EARLY

    if entry is None:
        return "cache miss"
    if force:
        return "forced refresh: the cached credential was not fetched within refresh_grace"
    if verdict == EARLY:
        return ("cached credential is in its refresh window, past this machine's moment: "
                "renewing it early (served if that fails)")
    return "cached credential is due for renewal"
