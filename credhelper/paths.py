"""Where credhelper keeps its files, without importing platformdirs on the hot path
(nor, on Linux, on the full path).

The cache directory is needed on every run, including a cache hit, where importing
platformdirs would cost more than the rest of the hit together. ``user_cache_dir`` below
follows platformdirs' rules for the three platforms we ship to; tests check that it agrees
with platformdirs. Should it ever disagree, a hit is only missed, never wrong: the slow
path looks everything up with platformdirs itself.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from collections.abc import Mapping

APP = "credhelper"


def user_cache_dir(env: Mapping[str, str] = os.environ) -> str:
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


def config_files(env: Mapping[str, str] = os.environ) -> list[tuple[str, str]]:
    """The TOML files to read, lowest precedence first, as (label, path) pairs.

    The system file, then the user file (or the file named by CREDHELPER_CONFIG instead).
    """
    system_dir, user_dir = _config_dirs(env)
    explicit = env.get("CREDHELPER_CONFIG")
    if explicit:
        user = ("CREDHELPER_CONFIG", os.path.abspath(os.path.expanduser(explicit)))
    else:
        user = ("user config", os.path.join(user_dir, "config.toml"))
    return [("system config", os.path.join(system_dir, "config.toml")), user]


def _config_dirs(env: Mapping[str, str]) -> tuple[str, str]:
    """(system, user) config folders: platformdirs' XDG rules written out on Linux and
    the BSDs, where they are two variables (its import costs a cache miss ~3 ms); on
    macOS and Windows, platformdirs itself. Tests check both agree."""
    if sys.platform in ("win32", "darwin"):
        import platformdirs

        return (platformdirs.site_config_dir(APP, appauthor=False),
                platformdirs.user_config_dir(APP, appauthor=False))
    dirs = env.get("XDG_CONFIG_DIRS", "").strip() or "/etc/xdg"
    home = env.get("XDG_CONFIG_HOME", "").strip() or os.path.expanduser("~/.config")
    return os.path.join(dirs.split(os.pathsep)[0], APP), os.path.join(home, APP)


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
