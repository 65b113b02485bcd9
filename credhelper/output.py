"""What goes to standard output: the bare token, or one JSON object. Nothing else, ever."""

from __future__ import annotations

import json

from credhelper.errors import AccessDenied, ConfigError, shorten

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the cache hit
if TYPE_CHECKING:
    from collections.abc import Mapping

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_FORBIDDEN = ("\r", "\n", "\0")  # in a configured header value


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
    """A credential is printed and cached only as a valid HTTP header value: visible ASCII
    (0x21-0x7E) and nothing else, which every bearer token, JWT, API key and presigned
    token is (RFC 6750's b64token and more). A space, a control or a non-ASCII character
    would be refused by the app's HTTP client or mangled on the way, and a lone
    surrogate cannot even be printed: exit 5 naming the character's kind and position,
    never the value."""
    if not isinstance(token, str) or not token.strip():
        raise AccessDenied(f"{source} returned an empty credential")
    problem = _unsendable(token, spaces=False)
    if problem:
        raise AccessDenied(f"{source} returned a credential that is not a valid HTTP header "
                           f"value: {problem}", hint=_STORED_HINT)
    return token


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be sent as a credential (kind and position), or None."""
    return _unsendable(token, spaces=False)


def check_backend_headers(headers: object, source: str) -> dict[str, str]:
    """Headers a backend returns with its credential: HTTP token names, and values that are
    visible ASCII with single spaces inside (RFC 9110 field values, without tabs or the
    obsolete non-ASCII bytes); exit 5 otherwise, as for the credential itself."""
    if not isinstance(headers, dict):
        raise AccessDenied(f"{source} returned headers that are not a table of name: value")
    for name, value in headers.items():
        if not isinstance(name, str) or not is_header_name(name):
            raise AccessDenied(f"{source} returned a header whose name is not a valid HTTP "
                               "token")
        problem = (_unsendable(value, spaces=True) if isinstance(value, str)
                   else "it is not text")
        if problem:
            raise AccessDenied(f"{source} returned a header {shorten(name)} whose value is not "
                               f"a valid HTTP header value: {problem}", hint=_STORED_HINT)
    return headers


def is_header_value(value: str, spaces: bool = False) -> bool:
    """Would ``value`` pass check_token (or, with ``spaces``, check_backend_headers)?"""
    return _unsendable(value, spaces) is None


_STORED_HINT = ("check the value the backend holds: a stray space, line break or formatting "
                "pasted with it")


def _unsendable(value: str, spaces: bool) -> str | None:
    """Why ``value`` is no header value: the first offending character's kind and position
    (1-based), never the character itself; None when it is one. ``spaces`` allows single
    spaces between visible characters."""
    if value.isascii() and value.isprintable() and " " not in value:
        return None  # the common case, checked in C
    last = len(value) - 1
    for i, c in enumerate(value):
        if "!" <= c <= "~" or (spaces and c == " " and 0 < i < last and value[i - 1] != " "):
            continue
        return f"{_kind(c)} at position {i + 1} of {len(value)}"
    return None


def _kind(c: str) -> str:
    if c == " ":
        return "a space"
    if c in "\r\n":
        return "a line break"
    if c == "\0":
        return "a NUL character"
    if c == "\x1b":
        return "an escape character (a terminal colour or control sequence)"
    if c < " " or c == "\x7f":
        return f"a control character (U+{ord(c):04X})"
    if "\ud800" <= c <= "\udfff":
        return "a lone surrogate (bytes that are not UTF-8 text)"
    if c.isspace() or not c.isprintable():
        return f"an invisible or space-like character (U+{ord(c):04X})"
    return "a non-ASCII character"


# Outputs for callers other than the app (docs/configuration.md#output): a headers helper
# (Claude Code's headersHelper for MCP servers) takes one JSON object of header name ->
# value; kubectl and client-go take a Kubernetes ExecCredential.
HEADERS = {"headers": ("Authorization", "Bearer "), "x-api-key-headers": ("x-api-key", "")}
EXEC_CREDENTIAL = "exec-credential"
EXEC_API_VERSION = "client.authentication.k8s.io/v1"


def render(token: str, headers: Mapping[str, str] | None, output: str,
           expires_at: float | None = None) -> str:
    """The exact text for standard output, newline included. ``expires_at`` (Unix time,
    the cache entry's expiry; None when the credential has none) is printed only by the
    exec-credential form. A ConfigError (exit 2) when the output cannot carry ``headers``."""
    if output in HEADERS:
        name, prefix = HEADERS[output]
        extra = dict(headers or {})
        if any(other.lower() == name.lower() for other in extra):
            raise ConfigError(f"output = \"{output}\" sets the {name} header to the credential, "
                              "and the headers setting sets it too",
                              hint=f"remove {name} from headers")
        return json.dumps({name: prefix + token, **extra}) + "\n"
    if output == EXEC_CREDENTIAL:
        if headers:
            raise ConfigError("output = \"exec-credential\" cannot carry the headers setting "
                              f"({', '.join(sorted(headers))}): an ExecCredential holds only "
                              "the token", hint="remove headers for this backend")
        status: dict[str, str] = {"token": token}
        if expires_at is not None:
            status["expirationTimestamp"] = rfc3339(expires_at)
        return json.dumps({"apiVersion": EXEC_API_VERSION, "kind": "ExecCredential",
                           "status": status}) + "\n"
    if headers or output == "json":
        return json.dumps({"token": token, "headers": dict(headers or {})}) + "\n"
    return token + "\n"


def rfc3339(when: float) -> str:
    """A Unix time as RFC 3339 in UTC, whole seconds (``2026-05-01T12:00:00Z``): rounded
    down, so a caller never holds the credential past its real end."""
    import time  # built in, and loaded by credhelper.log already: nothing new on the hit

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(when)))
