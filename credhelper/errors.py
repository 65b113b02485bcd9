"""Exit codes of the helper contract and the one error hierarchy that maps onto them.

Domain code raises these; only ``credhelper.guard`` turns them into a process exit.
This module is on the cache-hit path: standard library only, nothing heavy.
"""

OK = 0
INTERNAL = 1  # unexpected internal error (a bug)
CONFIG = 2  # configuration or usage error
LOGIN_REQUIRED = 3  # a person must sign in, and this run may not ask
UNAVAILABLE = 4  # backend unreachable, TLS failure, or the deadline passed
REFUSED = 5  # backend refused the credentials

ECHO_LIMIT = 200  # characters of a bad value an error message may repeat


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` (a bad value, usually its repr) as an error message may echo it: at most
    ``limit`` characters, cut with an ellipsis. A pasted file or a runaway value must not
    flood the one stderr line, the log file or a desktop dialog."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CredhelperError(Exception):
    """A failure with a one-line message for a person and an optional hint line.

    Messages must never contain a secret: they are printed on stderr and logged.
    """

    exit_code = INTERNAL

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(CredhelperError):
    """A missing, unknown or invalid setting, a bad file, or a usage error."""

    exit_code = CONFIG


class LoginRequired(CredhelperError):
    """A person has to sign in (or unlock something) and this run may not ask."""

    exit_code = LOGIN_REQUIRED


class BackendUnavailable(CredhelperError):
    """The backend cannot be reached, TLS failed, or the run's deadline passed."""

    exit_code = UNAVAILABLE


class AccessDenied(CredhelperError):
    """The backend refused: bad credentials, permission denied, revoked, wrong path."""

    exit_code = REFUSED


class CacheError(CredhelperError):
    """The cache location is unsafe (symlink, foreign owner, open to others)."""

    exit_code = CONFIG


# Errors after which a still-valid cached credential may be served (stale-if-error):
# the backend could not be asked, or asking needs a person. A refusal (5) is not one of
# them: the backend said no, so the old credential may well be revoked.
STALE_IF_ERROR = (BackendUnavailable, LoginRequired)


# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code gives them.
CERT_NOT_YET_VALID, CERT_HAS_EXPIRED = 9, 10


def certificate_dates(verify_code: int | None) -> tuple[str, str] | None:
    """When a TLS failure is about the server certificate's validity dates (OpenSSL's
    verify code of the handshake's SSLCertVerificationError): (what happened, hint). The
    CA is trusted then, so no CA setting helps: every backend says so the same way."""
    if verify_code == CERT_HAS_EXPIRED:
        return ("the server's certificate has expired",
                "its operator must renew the certificate; if its dates look right, check "
                "this machine's clock")
    if verify_code == CERT_NOT_YET_VALID:
        return ("the server's certificate is not yet valid",
                "check this machine's clock; if it is right, the certificate's start date is "
                "in the future")
    return None
