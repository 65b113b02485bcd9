"""What goes to standard output: the bare token, or one JSON object. Nothing else, ever."""

from __future__ import annotations

import json

from credhelper.errors import AccessDenied, ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from collections.abc import Mapping

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_FORBIDDEN = ("\r", "\n", "\0")


def is_header_name(name: str) -> bool:
    """RFC 7230 token."""
    return bool(name) and all(c in _TCHAR for c in name)


def check_headers(headers: object, where: str) -> dict[str, str]:
    if not isinstance(headers, dict):
        raise ConfigError(f"{where}: headers must be a table of name = \"value\"")
    for name, value in headers.items():
        if not isinstance(name, str) or not is_header_name(name):
            raise ConfigError(f"{where}: header name {name!r} is not a valid HTTP token")
        if not isinstance(value, str) or any(c in value for c in _FORBIDDEN):
            raise ConfigError(
                f"{where}: header {name} must be a string without CR, LF or NUL"
            )
    return headers


def check_token(token: object, source: str) -> str:
    """A credential must be a non-empty single line; anything else would break the contract."""
    if not isinstance(token, str) or not token.strip():
        raise AccessDenied(f"{source} returned an empty credential")
    if any(c in token for c in _FORBIDDEN):
        raise AccessDenied(f"{source} returned a credential containing CR, LF or NUL")
    if token != token.strip():
        raise AccessDenied(f"{source} returned a credential with surrounding whitespace")
    return token


def render(token: str, headers: Mapping[str, str] | None, output: str) -> str:
    """The exact text for standard output, newline included."""
    if headers or output == "json":
        return json.dumps({"token": token, "headers": dict(headers or {})}) + "\n"
    return token + "\n"
