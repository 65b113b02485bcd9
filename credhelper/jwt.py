"""Read a JWT's header and claims without verifying it: for expiry and for ``status``.

Nothing here trusts a token. The signature is never shown (it is the part that proves
the token; claims alone are not a credential).
"""

from __future__ import annotations

import base64
import json

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any


def _segment(part: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(header, claims) when ``token`` looks like a JWS compact JWT, else None."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return None
    header, claims = _segment(parts[0]), _segment(parts[1])
    if header is None or claims is None or "alg" not in header:
        return None
    return header, claims


def number(value: object) -> float | None:
    """A NumericDate claim as a float, or None (booleans, NaN and non-numbers are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


def expiry(token: str) -> float | None:
    """The ``exp`` claim as Unix time, or None when the token is no JWT or has none."""
    decoded = decode(token)
    return None if decoded is None else number(decoded[1].get("exp"))
