"""The one network layer of every backend: how an HTTP session is built, which answers are
tried again and how long to wait, how much of an answer is read, and what a network
failure means for the contract.

- ``session()`` builds the requests session of the Vault, OIDC and Azure backends: TLS
  verified against ``ca_cert`` alone when it is set (a PEM file or a directory of them),
  else against the system CAs plus REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE;
  an optional client certificate; proxies exactly as requests reads them (HTTPS_PROXY,
  HTTP_PROXY, ALL_PROXY, NO_PROXY in either case, else the system's settings on macOS and
  Windows, through ``urllib.request.getproxies``); no answer body longer than ``MAX_BODY``.
  ``capped()`` puts the same cap on the answers of a library that reads them itself (AWS's
  botocore).
- A proxy that fails a call (unreachable, 407, a refused tunnel) is a ``ProxyFailure``
  naming the proxy without its credentials; credentials in a proxy URL are registered as
  secrets before any request is made (``register_proxy_credentials``).
- ``Retry`` is the retry rule of every backend, AWS's botocore loop included: which answers
  are worth another try, the pause before it (the server's Retry-After when it fits the
  deadline, else a doubling backoff), and the words when there is no other try.
- ``failure()`` and ``tls_failure()`` turn a transport exception (requests, urllib3, ssl,
  socket, botocore) into a contract error by its type and OpenSSL's verify code, never
  by guessing from its text.

requests is imported inside functions only: loading a provider to read its settings, or a
cache hit, never pays for it.
"""

from __future__ import annotations

import os

from credhelper.durations import parse_retry_after
from credhelper.errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigError,
    CredhelperError,
    certificate_dates,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterator, Mapping
    from typing import Any

    import requests
    from requests.adapters import HTTPAdapter
    from requests.models import PreparedRequest, Response

    from credhelper.provider import Request

# ---------------------------------------------------------------- the retry rule

# Answers that mean "not now" rather than "no": overload, a broken gateway, a server
# restarting or failing over.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRIES = 4  # a server that keeps failing is down for this run: leave time for the cache
FIRST_PAUSE, MAX_PAUSE = 0.2, 2.0  # seconds: the backoff doubles from the first to the cap


def retryable(status: int, method: str = "GET", idempotent: bool = False) -> bool:
    """Is an answer with this HTTP status worth another try of the same request?

    A 500 to a POST may come after the server did the work (a refresh token spent and
    rotated, a one-use secret ID consumed), so it is retried only when the caller knows
    the request is idempotent; 429, 502, 503 and 504 say the request was not carried out."""
    if status not in RETRY_STATUS:
        return False
    return status != 500 or idempotent or str(method).upper() != "POST"


class Retry:
    """The retry state of one call, within the run's deadline (``request`` is the
    provider's ``credhelper.provider.Request``)::

        retry = Retry(request)
        while True:
            response = send()
            if response.status_code < 400:
                return response
            said = f"... answered HTTP {response.status_code}"
            if not retry.again(response.status_code, response.headers.get("Retry-After"),
                               said, method):
                raise retry.error(said)   # or the backend's own error for a final answer

    ``idempotent`` vouches that repeating a POST is harmless (see ``retryable``)."""

    def __init__(self, request: Request, idempotent: bool = False) -> None:
        self.request, self.idempotent = request, idempotent
        self.attempt = 0
        self.why = ""  # why a retryable answer was not retried, for the final message

    def again(self, status: int | None, retry_after: str | None, said: str,
              method: str = "GET") -> bool:
        """After a failed answer: pause and return True when the call should be made
        again; return False at once when the answer is final. ``status`` None is a
        failure the caller judged worth another try (a dropped connection)."""
        self.why = ""
        if status is not None and not retryable(status, method, self.idempotent):
            return False
        self.attempt += 1
        if self.attempt > MAX_RETRIES:
            self.why = f"gave up after {MAX_RETRIES} retries"
            return False
        if self.request.pause_before_retry(self.attempt, said, FIRST_PAUSE, MAX_PAUSE,
                                           retry_after):
            return True
        asked = parse_retry_after(retry_after) if retry_after is not None else None
        if asked:
            left = max(0.0, self.request.deadline - self.request.monotonic())
            self.why = (f"it asks to retry after {asked:.0f}s, past this run's deadline "
                        f"({left:.0f}s left): gave up at once")
        else:
            self.why = "gave up at the deadline"
        return False

    def after(self, exc: Overloaded, said: str, hint: str | None = None) -> None:
        """For callers whose session raises Overloaded: pause, or raise exit 4."""
        if not self.again(exc.status, exc.retry_after, said, exc.method):
            raise self.error(said, hint) from None

    def error(self, message: str, hint: str | None = None) -> BackendUnavailable:
        """Exit 4 for a retryable answer that was not retried (or no more)."""
        return BackendUnavailable(message + (f" ({self.why})" if self.why else ""), hint=hint)


class Overloaded(Exception):
    """Raised by the response hook of ``session(overload=True)`` for an answer the retry
    rule may retry, before authlib or MSAL reads it: they would turn it into an error
    without the status or Retry-After (and MSAL's ThrottledHttpClient would replay it to
    a retry within this process)."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response
        self.status = response.status_code
        self.retry_after = response.headers.get("Retry-After")
        self.method = getattr(response.request, "method", None) or "POST"


def flag_overload(response: requests.Response, *args: object,
                   **kwargs: object) -> requests.Response:
    if response.status_code in RETRY_STATUS:
        response.content  # noqa: B018 - read now (capped): the connection goes back to the pool
        raise Overloaded(response)
    return response


# ---------------------------------------------------------------- the session

# No credential answer (a token, a secret, a discovery document) comes near this; a
# server, proxy or captive portal that sends more is not answering the question, and a
# run must not spend its memory and deadline reading it.
MAX_BODY = 4 * 1024 * 1024


class ResponseTooLarge(Exception):
    """An answer body longer than the cap; raised while it is read."""

    def __init__(self, status: int, url: str, limit: int) -> None:
        super().__init__(f"HTTP {status} answer from {url} longer than {limit} bytes")
        self.status, self.url, self.limit = status, url, limit


def tls_context(ca_cert: str | None = None, client_cert: str | None = None,
                client_key: str | None = None, source: str = "ca_cert",
                env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The SSLContext of every connection: verification against ``ca_cert`` (a PEM file,
    or a directory of PEM files as VAULT_CAPATH reads it) alone when it is set; else the
    system CAs (certifi's where the system has none) and REQUESTS_CA_BUNDLE /
    CURL_CA_BUNDLE on top. ``source`` names where ca_cert came from, for the error."""
    import ssl

    env = os.environ if env is None else env
    loading = source  # what is being loaded, for the error
    try:
        if ca_cert and os.path.isdir(ca_cert):
            context = ssl.create_default_context(cadata=_pem_directory(ca_cert))
        elif ca_cert:
            context = ssl.create_default_context(cafile=ca_cert)
        else:
            context = ssl.create_default_context()
            # requests' own rule: the first of the two that is set.
            loading = next((v for v in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
                            if env.get(v)), "")
            system = ssl.get_default_verify_paths().cafile or ""
            if loading and os.path.realpath(env[loading]) != os.path.realpath(system):
                _load(context, env[loading])  # (often the system file itself: once)
            if not context.cert_store_stats()["x509_ca"]:
                # No system CAs (a frozen binary on macOS, a bare container): certifi's,
                # what requests trusts by default.
                loading = "certifi"
                _load_certifi(context)
        if client_cert:
            loading = "client_cert"
            context.load_cert_chain(client_cert, client_key)
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS file not found: {exc.filename or ca_cert} ({loading})") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = (getattr(exc, "strerror", None) or getattr(exc, "reason", None)
                  or exc.__class__.__name__)
        raise ConfigError(f"cannot load the TLS files ({loading}): {reason}") from None
    return context


def _load_certifi(context: ssl.SSLContext) -> None:
    try:
        import certifi
    except ImportError:  # requests brings it; without it, what the system has
        return
    context.load_verify_locations(cafile=certifi.where())


def _load(context: ssl.SSLContext, path: str) -> None:
    if os.path.isdir(path):
        context.load_verify_locations(capath=path)
    else:
        context.load_verify_locations(cafile=path)


def _pem_directory(directory: str) -> str:
    """Every PEM certificate in a directory, as Vault's VAULT_CAPATH reads it (no
    c_rehash links needed)."""
    found: list[str] = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="ascii", errors="ignore") as f:
                text = f.read()
        except OSError:
            continue
        if "-----BEGIN CERTIFICATE-----" in text:
            found.append(text)
    if not found:
        raise ConfigError(f"the CA directory {directory} holds no PEM certificate")
    return "\n".join(found)


def session(ca_cert: str | None = None, client_cert: str | None = None,
            client_key: str | None = None, *,
            base: Callable[..., requests.Session] | None = None, overload: bool = False,
            source: str = "ca_cert", limit: int = MAX_BODY, env: Mapping[str, str] | None = None,
            **kwargs: Any) -> requests.Session:
    """A requests session (or ``base``, a subclass such as authlib's OAuth2Session, made
    with ``kwargs``) whose TLS is exactly ``tls_context``'s, whatever REQUESTS_CA_BUNDLE or
    a ``verify``/``cert`` argument says, and whose answers are read through ``limit``.
    With ``overload``, answers the retry rule may retry raise ``Overloaded``."""
    import requests

    sess = (base or requests.Session)(**kwargs)
    register_proxy_credentials()
    # The context is built when the first https connection is made: loading the system
    # CAs costs ~15 ms, which a run that finds its answer over http (a loopback Vault)
    # or not at all never pays. Its errors (an unreadable ca_cert) surface then, exit 2.
    adapter = _adapter_class()(lambda: tls_context(ca_cert, client_cert, client_key, source, env),
                               limit)
    sess.mount("https://", adapter)
    sess.mount("http://", adapter)
    if overload:
        sess.hooks["response"].append(flag_overload)
    return sess


def _adapter_class() -> Callable[[Callable[[], ssl.SSLContext], int], HTTPAdapter]:
    from requests.adapters import HTTPAdapter

    class Adapter(HTTPAdapter):
        """Every connection (direct or through a proxy) uses one SSLContext; every answer
        body is read through the cap."""

        def __init__(self, make_context: Callable[[], ssl.SSLContext], limit: int) -> None:
            self.make_context, self.limit = make_context, limit
            self._context: ssl.SSLContext | None = None
            super().__init__()

        @property
        def context(self) -> ssl.SSLContext:
            if self._context is None:
                self._context = self.make_context()
            return self._context

        def build_connection_pool_key_attributes(
                self, request: PreparedRequest, verify: Any, cert: Any = None,
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            # requests' documented way to use one's own SSLContext (requests >= 2.32);
            # it covers connections through a proxy too.
            host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
            if host.get("scheme") == "https":
                pool["ssl_context"] = self.context
            return host, pool

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            if proxy.lower().startswith("https:"):  # TLS to the proxy itself
                kwargs["ssl_context"] = self.context
            return super().proxy_manager_for(proxy, **kwargs)

        def send(self, request: PreparedRequest, stream: bool = False, timeout: Any = None,
                 verify: Any = True, cert: Any = None,
                 proxies: dict[str, str] | None = None) -> Response:
            from requests.exceptions import InvalidProxyURL, ProxyError
            from requests.utils import select_proxy

            # requests' own choice of proxy for this URL (NO_PROXY already applied)
            proxy = select_proxy(request.url or "", proxies) if proxies else None
            try:
                # requests hands REQUESTS_CA_BUNDLE in as ``verify``, which would load
                # more CAs into our context: the context alone decides.
                response = super().send(request, stream=stream, timeout=timeout, verify=True,
                                        cert=None, proxies=proxies)
            except (ProxyError, InvalidProxyURL) as exc:
                if proxy is None:
                    raise
                raise proxy_failure(exc, proxy, request.url or "") from exc
            if response.status_code == 407:
                # A plain http request through a proxy that wants credentials: the
                # proxy's answer, never the backend's (one nobody configured, too).
                response.close()
                raise proxy_failure(None, proxy or "", request.url or "", 407,
                                    response.reason or "Proxy Authentication Required")
            return response

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            pass  # nothing to check or load: the context holds it all

        def build_response(self, req: PreparedRequest, resp: Any) -> Response:
            response = super().build_response(req, resp)
            response.raw = capped(response.raw, response.status_code, response.url or "",
                                  response.headers.get("Content-Length"), self.limit)
            return response

    return Adapter


def capped(raw: Any, status: int, url: str, content_length: str | None,
           limit: int = MAX_BODY) -> Any:
    """``raw``, an answer not read yet (urllib3's HTTPResponse), read through the cap from
    now on; ResponseTooLarge at once, the connection dropped unread, when its declared
    Content-Length is over it. For requests (the session's adapter) and for a library that
    reads answers itself (botocore)."""
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raw.close()  # never read it: the connection is dropped, not pooled
        raise ResponseTooLarge(status, url, limit)
    return _CappedBody(raw, limit, status, url)


class _CappedBody:
    """A response's ``raw`` (urllib3's HTTPResponse) that stops reading past ``limit``
    bytes of decoded content: a chunked answer without Content-Length, or a compressed
    one that inflates, ends the call instead of filling memory."""

    def __init__(self, raw: Any, limit: int, status: int, url: str) -> None:
        # raw: urllib3's HTTPResponse (requests' Response.raw, typed Any there too)
        self._raw, self._limit, self._status, self._url = raw, limit, status, url
        self._seen = 0

    def _count(self, chunk: bytes) -> bytes:
        self._seen += len(chunk)
        if self._seen > self._limit:
            self._raw.close()
            raise ResponseTooLarge(self._status, self._url, self._limit)
        return chunk

    def stream(self, amt: int = 2 ** 16, decode_content: bool | None = None) -> Iterator[bytes]:
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            yield self._count(chunk)

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        if amt is not None:
            return self._count(self._raw.read(amt, *args, **kwargs))
        parts: list[bytes] = []  # all of it, a piece at a time, never more than the cap
        while True:
            part = self._count(self._raw.read(2 ** 16, *args, **kwargs))
            if not part:
                return b"".join(parts)
            parts.append(part)

    def read1(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        """What has arrived, up to ``amt`` bytes, without waiting for more (an event
        stream read event by event). An older urllib3 without read1: a plain read."""
        read1 = getattr(self._raw, "read1", None)
        return self._count((read1 or self._raw.read)(amt, *args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


# ---------------------------------------------------------------- proxies


class ProxyFailure(ConnectionError):
    """The proxy in front of a backend failed the call: unreachable, asking for or refusing
    credentials, or refusing the tunnel. ``proxy`` is its address without credentials,
    ``source`` the setting that names it. (A ConnectionError, as requests' ProxyError is:
    a library between the session and the backend's code treats it as one.)"""

    def __init__(self, proxy: str, source: str, reason: str, hint: str) -> None:
        super().__init__(f"the proxy {proxy} failed: {reason}")
        self.proxy, self.source, self.reason, self.hint = proxy, source, reason, hint

    @property
    def named(self) -> str:
        """The proxy, for "cannot reach X through ..."."""
        if not self.proxy:  # a 407 from a proxy nobody configured (an intercepting one)
            return "a proxy on the way (none is configured here)"
        return f"the proxy {self.proxy} ({self.source})"


def proxy_address(proxy: str) -> str:
    """A proxy URL without its credentials (as requests reads it: http:// when it names
    no scheme), for messages."""
    from urllib.parse import urlsplit

    if not proxy:
        return ""
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def proxy_source(url: str, env: Mapping[str, str] | None = None) -> str:
    """Which setting names the proxy for ``url``, in the order urllib (so requests and
    botocore) reads them: the scheme's variable, lower case first, then ALL_PROXY; else
    the system's settings (macOS, Windows)."""
    env = os.environ if env is None else env
    scheme = url.partition(":")[0].lower() or "https"
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        if env.get(name):
            return name.upper()
    return "the system proxy settings"


def register_proxy_credentials() -> None:
    """Register the user and password of every configured proxy URL
    (``http://user:password@proxy:3128``) as secrets, so that no message, debug line or
    log can carry them, whatever a library puts in an exception."""
    import urllib.request
    from urllib.parse import unquote, urlsplit

    from credhelper.log import Log

    log = Log("credhelper")
    try:
        found = urllib.request.getproxies()
    except Exception:  # a broken system setting must not stop a run that needs no proxy
        return
    for scheme, proxy in found.items():
        if scheme == "no" or not isinstance(proxy, str):
            continue
        userinfo = urlsplit(proxy if "://" in proxy else "http://" + proxy).netloc.rpartition(
            "@")[0]
        if userinfo:
            password = userinfo.partition(":")[2]
            for value in (userinfo, unquote(userinfo), password, unquote(password)):
                log.secret(value)


def _tunnel_status(exc: BaseException | None) -> tuple[int, str] | None:
    """The status of a proxy's refusal of a CONNECT tunnel. http.client says it only in
    the text of an OSError ("Tunnel connection failed: 407 Proxy Authentication
    Required"), a fixed format of the standard library: read from there."""
    import re

    for e in _causes(exc) if exc is not None else ():
        if type(e) is OSError and e.args and isinstance(e.args[0], str):
            match = re.match(r"Tunnel connection failed: (\d{3})\s*(.*)", e.args[0])
            if match:
                return int(match.group(1)), match.group(2).strip()[:80]
    return None


def proxy_failure(exc: BaseException | None, proxy: str, url: str, status: int | None = None,
                  said: str = "") -> ProxyFailure:
    """The ProxyFailure for ``exc`` (requests', urllib3's or botocore's proxy error), or
    for a proxy's answer ``status`` to a plain http request."""
    from urllib.parse import urlsplit

    address, source = proxy_address(proxy), proxy_source(url)
    has_credentials = "@" in urlsplit(proxy if "://" in proxy else "http://" + proxy).netloc
    target = urlsplit(url).hostname or url
    bypass = f"or add {target} to NO_PROXY if it is reachable without the proxy"
    tunnel = _tunnel_status(exc) if status is None else (status, said)
    if tunnel is not None:
        status, said = tunnel
        answer = f"HTTP {status}" + (f" {said}" if said else "")
        # 401 too: some proxies (tinyproxy) answer a CONNECT with wrong credentials so
        if status in (401, 407):
            if not address:
                return ProxyFailure("", "", f"it asks for credentials ({answer})",
                                    "a proxy that is not configured here intercepts the "
                                    "connection: set HTTPS_PROXY / HTTP_PROXY to it, with its "
                                    "user and password, or ask the network's administrators")
            if has_credentials:
                return ProxyFailure(address, source, f"it refused the credentials in its URL "
                                    f"({answer})", "check the user and password in the proxy "
                                    f"URL ({source}), " + bypass)
            return ProxyFailure(address, source, f"it asks for credentials ({answer})",
                                f"put the proxy's user and password in its URL ({source}: "
                                f"http://USER:PASSWORD@host:port), " + bypass)
        if status == 403:
            return ProxyFailure(address, source, f"it refused to connect to {target} "
                                f"({answer})", "the proxy does not allow this destination: "
                                "ask its administrator, " + bypass)
        return ProxyFailure(address, source, f"it could not connect to {target} ({answer})",
                            f"check the backend's address, {bypass}")
    tls = tls_failure(exc, "ca_cert (or REQUESTS_CA_BUNDLE)") if exc is not None else None
    if tls is not None:  # an https:// proxy: the session's CAs verify it too
        return ProxyFailure(address, source, f"TLS to the proxy failed: {tls.reason}", tls.hint)
    causes = list(_causes(exc)) if exc is not None else []
    if any(isinstance(e, TimeoutError) for e in causes):
        reason = "it did not answer in time"
    else:
        why = next((e.strerror for e in causes if isinstance(e, OSError) and e.strerror),
                   None) or "the connection failed"
        reason = f"it cannot be reached ({why})"
    return ProxyFailure(address, source, reason, f"check the proxy ({source}) and that it is "
                        f"running, " + bypass)


# ---------------------------------------------------------------- what a failure means

# OpenSSL's X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code) for a
# certificate that names another host or address.
_NAME_MISMATCH = {62, 64}  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH


class TlsFailure:
    """A TLS failure in plain words. (A plain class: this module is imported on every
    cache miss, and a dataclass costs about half a millisecond to define.)"""

    __slots__ = ("kind", "reason", "hint", "detail")

    def __init__(self, kind: str, reason: str, hint: str, detail: str = "") -> None:
        self.kind = kind  # "dates", "name", "untrusted" or "handshake"
        self.reason = reason  # plain words for the message
        self.hint = hint
        self.detail = detail  # OpenSSL's own words (verify_message or reason)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps: raise-from chains, urllib3's ``reason``,
    requests' and urllib3's ``args``, botocore's ``kwargs``; each once, breadth first."""
    queue: list[BaseException] = [exc]
    seen: set[int] = set()
    while queue and len(seen) < 32:
        e = queue.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        nested = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args,
                  *(getattr(e, "kwargs", None) or {}).values()]
        queue += [n for n in nested if isinstance(n, BaseException)]


def tls_failure(exc: BaseException, ca_setting: str = "ca_cert") -> TlsFailure | None:
    """What went wrong in a TLS handshake, from the exception types and OpenSSL's verify
    code; None when ``exc`` is no TLS failure. ``ca_setting`` names where this backend
    takes its CA, for the hint of an untrusted certificate."""
    import ssl

    try:
        from urllib3.util.ssl_match_hostname import CertificateError

        name_error: type[BaseException] = CertificateError
    except ImportError:
        name_error = ssl.CertificateError
    causes = list(_causes(exc))
    for e in causes:
        if isinstance(e, ssl.SSLCertVerificationError):
            code, message = e.verify_code, (e.verify_message or e.reason or "").strip()
            dates = certificate_dates(code)
            if dates:
                return TlsFailure("dates", dates[0], dates[1], message)
            if code in _NAME_MISMATCH:
                return _name_mismatch(message)
            return TlsFailure(
                "untrusted", f"certificate verify failed: {message}",
                f"set {ca_setting} to the CA that signed the server's certificate (behind a "
                "TLS-inspecting proxy: the proxy's CA)", message)
        if isinstance(e, name_error) and not isinstance(e, ssl.SSLError):
            return _name_mismatch(str(e))
    for e in causes:
        if isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return TlsFailure("handshake", "the server closed the connection during the TLS "
                              "handshake", "check that the address speaks https on that "
                              "port, and any proxy in between", e.reason or "")
        if isinstance(e, ssl.SSLError):
            said = e.reason or e.__class__.__name__
            return TlsFailure("handshake", f"TLS handshake failed ({said})",
                              "check that the address speaks https on that port, and any "
                              "proxy in between", said)
    if any(isinstance(e, _library_types()[2]) for e in causes):  # a library's, bare
        return TlsFailure("handshake", "TLS handshake failed",
                          "check that the address speaks https on that port, and any "
                          "proxy in between")
    return None


def _name_mismatch(message: str) -> TlsFailure:
    return TlsFailure("name", f"the certificate does not name this host: {message}",
                      "use an address the server's certificate names (credhelper doctor "
                      "shows them), or ask its operator for one that names this address",
                      message)


def failure(exc: BaseException, url: str, *, name: str | None = None, what: str | None = None,
            ca_setting: str = "ca_cert",
            address_setting: str = "the address") -> CredhelperError | None:
    """The contract error for a transport failure of a call to ``url`` (``name`` is the
    backend's, as in "Vault at URL"; ``what`` the call, for a timeout): exit 4 for TLS,
    timeouts, unreachable servers and oversized answers, exit 5 for an oversized refusal.
    None when ``exc`` is no transport failure (a bug must surface as one)."""
    import http.client

    where = f"{name} at {url}" if name else url
    proxy = next((e for e in _causes(exc) if isinstance(e, ProxyFailure)), None)
    if proxy is not None:  # before TLS: a failed handshake with the proxy is the proxy's
        return BackendUnavailable(f"cannot reach {where} through {proxy.named}: "
                                  f"{proxy.reason}", hint=proxy.hint)
    tls = tls_failure(exc, ca_setting)
    if tls is not None:
        return BackendUnavailable(f"TLS to {url} failed: {tls.reason}", hint=tls.hint)
    causes = list(_causes(exc))
    big = next((e for e in causes if isinstance(e, ResponseTooLarge)), None)
    if big is not None:
        size = f"{big.limit // (1024 * 1024)} MiB"
        if 400 <= big.status < 500 and big.status not in (408, 429):
            return AccessDenied(f"{where} refused the request (HTTP {big.status}) with an "
                                f"answer longer than {size}")
        return BackendUnavailable(
            f"{where} sent an answer longer than {size} (HTTP {big.status}): not a "
            "credential answer, so it was not read",
            hint=f"check {address_setting}: something else (a proxy, a login page) may "
            "answer there")
    transport, timeouts, _ = _library_types()
    if not any(isinstance(e, transport) for e in causes):
        return None
    if any(isinstance(e, timeouts) for e in causes):
        return BackendUnavailable(f"no answer from {where} within the deadline"
                                  + (f" ({what})" if what else ""))
    reason = next((e.strerror for e in causes if isinstance(e, OSError) and e.strerror), None)
    if reason is None and any(isinstance(e, http.client.RemoteDisconnected) for e in causes):
        reason = "the server closed the connection without answering"
    return BackendUnavailable(
        f"cannot reach {where}: {reason or exc.__class__.__name__}",
        hint=f"check the network, the proxy (HTTPS_PROXY, NO_PROXY), {address_setting} "
             "and that the server is running")


def _library_types() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...],
                            tuple[type[BaseException], ...]]:
    """(transport errors, timeouts, TLS errors) of the standard library and of the HTTP
    libraries this process has loaded (an exception from one means it is loaded)."""
    import http.client
    import socket
    import ssl
    import sys

    # Not every OSError: a file that cannot be read is no network failure.
    transport: list[type[BaseException]] = [
        ConnectionError, TimeoutError, socket.gaierror, socket.herror, ssl.SSLError,
        http.client.HTTPException]
    timeouts: list[type[BaseException]] = [TimeoutError]  # socket.timeout included
    tls: list[type[BaseException]] = [ssl.SSLError]
    if "urllib3" in sys.modules:
        import urllib3.exceptions as u

        # (not urllib3's TimeoutError: its NewConnectionError, a refused connection, is one)
        transport.append(u.HTTPError)
        tls.append(u.SSLError)
    if "requests" in sys.modules:
        import requests.exceptions as r

        transport.append(r.RequestException)
        timeouts.append(r.Timeout)
        tls.append(r.SSLError)
    if "botocore" in sys.modules:
        import botocore.exceptions as b

        transport.append(b.HTTPClientError)
        timeouts += [b.ConnectTimeoutError, b.ReadTimeoutError]
        tls.append(b.SSLError)
    return tuple(transport), tuple(timeouts), tuple(tls)
