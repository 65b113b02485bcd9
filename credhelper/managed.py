"""Managed preferences: the administrator's settings, highest precedence of all.

On macOS a configuration profile lands as a plist in /Library/Managed Preferences/; on
Windows a policy lands under HKLM (or HKCU)\\SOFTWARE\\Policies\\credhelper. Both are read
with the standard library. This is the seam the administration work fills in: ``read``
returns ``(label, tables)`` or None, ``identity`` returns what the configuration snapshot
must compare to notice a change. On Linux there is no managed source.
"""

from __future__ import annotations

import sys


def read(env) -> tuple[str, dict] | None:
    return None


def identity(env) -> list:
    """Cheap facts that change whenever the managed settings change (for the snapshot)."""
    return [sys.platform]
