"""Where credhelper keeps its files, without importing platformdirs on the hot path.

The cache directory is needed on every run, including a cache hit, where importing
platformdirs would cost more than the rest of the hit together. ``user_cache_dir`` below
follows platformdirs' rules for the three platforms we ship to; tests check that it agrees
with platformdirs. Should it ever disagree, a hit is only missed, never wrong: the slow
path looks everything up with platformdirs itself.
"""

from __future__ import annotations

import os
import sys

APP = "credhelper"


def user_cache_dir(env=os.environ) -> str:
    override = env.get("CREDHELPER_CACHE_DIR")
    if override:
        return os.path.abspath(os.path.expanduser(override))
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or os.path.expanduser(r"~\AppData\Local")
        return os.path.join(base, APP, "Cache")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~/Library/Caches"), APP)
    base = env.get("XDG_CACHE_HOME", "").strip() or os.path.expanduser("~/.cache")
    return os.path.join(base, APP)


def config_files(env=os.environ) -> list[tuple[str, str]]:
    """The TOML files to read, lowest precedence first, as (label, path) pairs.

    The system file, then the user file (or the file named by CREDHELPER_CONFIG instead).
    """
    import platformdirs  # slow path only

    system = os.path.join(
        platformdirs.site_config_dir(APP, appauthor=False), "config.toml"
    )
    explicit = env.get("CREDHELPER_CONFIG")
    if explicit:
        user = ("CREDHELPER_CONFIG", os.path.abspath(os.path.expanduser(explicit)))
    else:
        user = (
            "user config",
            os.path.join(platformdirs.user_config_dir(APP, appauthor=False), "config.toml"),
        )
    return [("system config", system), user]


# Environment variables that decide which files are read and where they live; a change
# in any of them invalidates the resolved-configuration snapshot.
LOCATION_VARIABLES = (
    "HOME",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
    "PROGRAMDATA",
    "XDG_CONFIG_HOME",
    "XDG_CONFIG_DIRS",
    "XDG_CACHE_HOME",
)
