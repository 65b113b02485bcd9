"""Durations in settings: a number of seconds, or a string such as "30s", "5m", "1h30m"."""

from __future__ import annotations

import math

from credhelper.errors import shorten

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 366 * 86400  # a year: longer is a typo, not a credential lifetime


def parse_duration(value: object) -> float:
    """Seconds as a float; ValueError with a short reason otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        raise ValueError(f"expected a duration, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite number of seconds, zero or more")
    if seconds > MAX_SECONDS:
        raise ValueError("a duration must be at most 366 days")
    return seconds


def _parse_text(text: str) -> float:
    if not text:
        raise ValueError("empty duration")
    if _is_number(text):
        return float(text)
    total, i = 0.0, 0
    while i < len(text):
        j = i
        while j < len(text) and (text[j].isdigit() or text[j] == "."):
            j += 1
        k = j
        while k < len(text) and text[k].isalpha():
            k += 1
        number, unit = text[i:j], text[j:k].lower()
        if not _is_number(number) or unit not in _UNITS:
            raise ValueError(f"not a duration: {shorten(repr(text))} (use seconds, or units "
                             "ms, s, m, h, d as in 30s, 5m, 1h30m)")
        total += float(number) * _UNITS[unit]
        i = k
    return total


def _is_number(text: str) -> bool:
    if not text or text.count(".") > 1 or text == ".":
        return False
    return all(c.isdigit() and c.isascii() or c == "." for c in text)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds}s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{sign}{minutes}m{s:02d}s" if s else f"{sign}{minutes}m"
    hours, m = divmod(minutes, 60)
    if hours < 48:
        return f"{sign}{hours}h{m:02d}m" if m else f"{sign}{hours}h"
    days, h = divmod(hours, 24)
    return f"{sign}{days}d{h:02d}h" if h else f"{sign}{days}d"


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` value: delay-seconds ("120") or an
    HTTP-date (RFC 9110 section 10.2.3). None for anything else; never negative."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(text), MAX_SECONDS)
    import time
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is read as such
        import datetime

        when = when.replace(tzinfo=datetime.timezone.utc)
    try:
        seconds = when.timestamp() - (time.time() if now is None else now)
    except (OverflowError, ValueError, OSError):
        return None
    return min(max(0.0, seconds), MAX_SECONDS)
