"""The app's time budget: how long a run may take before the app kills it.

Claude Desktop / Cowork kills a helper after ``inferenceCredentialHelperTimeoutSec``
seconds (60 by default, 600 at most) and keeps what it printed for
``inferenceCredentialHelperTtlSec`` (3600 by default). Both are read from the app's
managed preferences where an administrator set them (macOS profile, Windows policy);
elsewhere the helper's own ``app_timeout`` setting stands in for the first.

Every run ends ``MARGIN`` seconds before the app would kill it, a sign-in included:
a run the app kills has printed nothing and saved nothing, so ending early and saying
why (exit 3 or 4) is always better. The margin covers process start-up (a one-file
binary unpacks itself first) and the app's own bookkeeping.
"""

from __future__ import annotations

from credhelper import managed
from credhelper.errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from credhelper.config import ProviderConfig

TIMEOUT_KEY = "inferenceCredentialHelperTimeoutSec"
TTL_KEY = "inferenceCredentialHelperTtlSec"
APP_DEFAULT_TIMEOUT = 60.0
APP_MAX_TIMEOUT = 600.0
APP_DEFAULT_TTL = 3600.0
MARGIN = 2.0  # seconds before the app's kill by which every run has ended
BY_HAND_SIGN_IN = 300.0  # a sign-in a person started with `login`, outside any app
WATCHDOG_GRACE = 1.0  # how long a library may overrun its deadline before the run gives up


class Budget:
    """The app's limits as this run understood them, with where each came from. (Plain
    classes here: this module is on every cache miss, and a dataclass costs about half a
    millisecond to define.)"""

    __slots__ = ("timeout", "timeout_source", "ttl", "ttl_source")

    def __init__(self, timeout: float, timeout_source: str, ttl: float, ttl_source: str) -> None:
        self.timeout = timeout  # seconds the app allows a run
        self.timeout_source = timeout_source
        self.ttl = ttl  # seconds the app keeps a printed credential
        self.ttl_source = ttl_source

    @property
    def usable(self) -> float:
        """Seconds a run may take, the margin taken off (never below one second)."""
        return max(1.0, self.timeout - MARGIN)


def read(conf: ProviderConfig) -> Budget:
    """The budget for a run with configuration ``conf``."""
    found = managed.app_values((TIMEOUT_KEY, TTL_KEY))
    timeout = _seconds(found.get(TIMEOUT_KEY), 1.0, APP_MAX_TIMEOUT)
    if timeout is not None:
        timeout_source = f"{TIMEOUT_KEY} in {found[TIMEOUT_KEY][1]}"
    else:
        timeout = float(conf["app_timeout"])
        timeout_source = f"app_timeout ({conf.source('app_timeout')})"
        if not 1.0 <= timeout <= APP_MAX_TIMEOUT:
            raise ConfigError(
                f"app_timeout ({conf.source('app_timeout')}) must be from 1s to "
                f"{int(APP_MAX_TIMEOUT)}s: the app's {TIMEOUT_KEY} allows no more",
                hint="set it to the inferenceCredentialHelperTimeoutSec the app uses "
                     "(60s by default)")
    ttl = _seconds(found.get(TTL_KEY), 1.0, 366 * 86400.0)
    if ttl is not None:
        ttl_source = f"{TTL_KEY} in {found[TTL_KEY][1]}"
    else:
        ttl, ttl_source = APP_DEFAULT_TTL, "the app's default"
    return Budget(timeout, timeout_source, ttl, ttl_source)


def _seconds(found: tuple[Any, str] | None, low: float, high: float) -> float | None:
    """A whole number of seconds from a managed value (a string, or a plist/DWORD number,
    or whatever else a profile holds), or None when it is absent or not one the app would
    accept."""
    if found is None:
        return None
    value = found[0]
    if isinstance(value, bool):
        return None
    try:
        seconds = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return seconds if low <= seconds <= high else None


class Deadlines:
    """Monotonic-clock instants that bound one run."""

    __slots__ = ("network", "sign_in", "hard")

    def __init__(self, network: float, sign_in: float, hard: float) -> None:
        self.network = network  # every network call and retry outside a sign-in (``timeout``)
        self.sign_in = sign_in  # an interactive sign-in (``login_timeout``, within the budget)
        self.hard = hard  # the watchdog's last word: nothing runs past this

    @classmethod
    def compute(cls, started: float, conf: ProviderConfig, budget: Budget) -> Deadlines:
        """``started`` is when the process began its work (time.monotonic())."""
        app_end = started + budget.usable
        network = min(started + float(conf["timeout"]), app_end - WATCHDOG_GRACE)
        login = conf.get("login_timeout")
        sign_in = app_end - WATCHDOG_GRACE if login is None else min(started + float(login),
                                                                      app_end - WATCHDOG_GRACE)
        return cls(network=max(network, started), sign_in=max(sign_in, network, started),
                   hard=app_end)

    @classmethod
    def by_hand(cls, started: float, conf: ProviderConfig) -> Deadlines:
        """For commands a person runs (``login``, ``status``, ``doctor``): no app is
        waiting to kill them, so a sign-in may take ``login_timeout`` (default 5 min)."""
        network = started + float(conf["timeout"])
        login = conf.get("login_timeout")
        sign_in = max(network, started + (BY_HAND_SIGN_IN if login is None else float(login)))
        return cls(network=network, sign_in=sign_in, hard=sign_in + WATCHDOG_GRACE)
