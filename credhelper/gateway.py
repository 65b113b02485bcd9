"""``credhelper test-gateway``: get a credential the way the app does, then use it the way
the app does, and say in plain words what is wrong. The credential is never printed.
With ``--sso``, first what the app's own sign-in reads: the gateway's OAuth authorization
server metadata (RFC 8414), then a token from credhelper-oidc signed in at that issuer.

The gateway is called through the one network layer, ``credhelper.net``'s requests
session, as every backend is: the proxy of HTTPS_PROXY / HTTP_PROXY (or the system's
settings) unless NO_PROXY names the gateway, TLS verified against ``--ca-cert`` alone when
it is given, else the system's CAs and REQUESTS_CA_BUNDLE, and the app's custom headers
(``--header``) on every call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from credhelper.errors import AccessDenied, BackendUnavailable, ConfigError, CredhelperError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

    import requests

APP_TIMEOUT = 60.0  # the app kills a helper after this long (DESIGN §2)
HTTP_TIMEOUT = 30.0
ANTHROPIC_VERSION = "2023-06-01"
METADATA_PATH = "/.well-known/oauth-authorization-server"  # where the app's sign-in looks
METADATA_LIMIT = 1 << 20  # a metadata document is a few kB
TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"]},
}


@dataclass
class Report:
    checks: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = ""
    exit_code: int = 0

    def add(self, status: str, check: str, detail: str, **extra: object) -> None:
        self.checks.append({"status": status, "check": check, "detail": detail, **extra})


# ---------------------------------------------------------------- the helper, as the app runs it


def helper_command(provider: str) -> list[str]:
    """The executable the app would be configured with: credhelper-NAME next to this one."""
    directory = os.path.dirname(os.path.abspath(sys.argv[0] or sys.executable))
    for candidate in (os.path.join(directory, f"credhelper-{provider}"),
                      os.path.join(directory, f"credhelper-{provider}.exe")):
        if os.path.isfile(candidate):
            return [candidate]
    import shutil

    found = shutil.which(f"credhelper-{provider}")
    if found:
        return [found]
    # Not installed as a script (e.g. run with python -m): the same code, another door.
    return [sys.executable, "-m", "credhelper", "get", "--provider", provider]


def run_helper(command: list[str], env: Mapping[str, str],
               timeout: float = APP_TIMEOUT) -> tuple[str, dict[str, str], float]:
    """(credential, headers, seconds) from running the helper with the app's context and
    timeout."""
    child_env = dict(env)
    child_env["CLAUDE_HELPER_CONTEXT"] = "setup-test"
    child_env.pop("CLAUDE_HELPER_MANUAL_RUN", None)
    start = time.monotonic()
    try:
        proc = subprocess.run(command, env=child_env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BackendUnavailable(
            f"the helper did not finish within the app's {int(timeout)}s timeout",
            hint="run it by hand with --debug to see where it waits") from None
    except OSError as exc:
        raise ConfigError(f"cannot run the helper {command[0]}: {exc.strerror or exc}") from None
    elapsed = time.monotonic() - start
    err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0:
        message = next((line for line in err if ": error: " in line),
                       err[-1] if err else "no message")
        hint = next((line[len("hint: "):] for line in err if line.startswith("hint: ")), None)
        error = CredhelperError(f"the helper failed (exit {proc.returncode}): "
                                f"{message.split(': error: ', 1)[-1]}", hint)
        error.exit_code = proc.returncode if proc.returncode in (2, 3, 4, 5) else 1  # pass it on
        raise error
    out = proc.stdout.decode("utf-8", "replace")
    if not out.endswith("\n") or out.count("\n") != 1:
        raise ConfigError("the helper printed something other than one line on stdout",
                          hint="the app would send it as the credential; run it with --debug")
    text = out[:-1]
    headers: dict[str, str] = {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
            text, headers = data["token"], dict(data.get("headers") or {})
        except (ValueError, KeyError, TypeError):
            raise ConfigError("the helper printed JSON without a token") from None
    return text, headers, elapsed


# ---------------------------------------------------------------- HTTP


def parse_headers(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--header 'Name: Value'`` options as a dict: RFC 7230 token names, values of
    visible ASCII with single spaces (what an HTTP client sends unchanged); exit 2
    otherwise, naming the option, never echoing more of a value than its name."""
    from credhelper.output import is_header_name, is_header_value

    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not is_header_name(name):
            raise ConfigError(f"--header {item[:60]!r}: expected 'Name: Value' with a name "
                              "of letters, digits and !#$%&'*+-.^_`|~")
        if not value or not is_header_value(value, spaces=True):
            raise ConfigError(f"--header {name}: the value must be visible ASCII, spaces "
                              "inside allowed")
        headers[name] = value
    return headers


class Gateway:
    """The gateway's HTTP calls, made as the app makes them: through the proxy the
    environment or the system names (none for a host on NO_PROXY), TLS verified against
    ``ca_cert`` alone when it is given, the app's custom ``headers`` on every call, no
    redirect followed (the app's calls go to the base URL it is given)."""

    def __init__(self, base: str, ca_cert: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        try:
            import requests  # noqa: F401 - the umbrella's extras may leave it out
        except ImportError:
            raise ConfigError("test-gateway needs the requests library, which this "
                              "installation lacks",
                              hint="pip install requests (or credhelper[oidc])") from None
        from credhelper import net

        parts = urlsplit(base)
        self.base = base
        self.root = f"{parts.scheme}://{parts.netloc}{(parts.path or '').rstrip('/')}"
        self.headers = dict(headers or {})
        self.ca_cert = ca_cert
        if ca_cert:  # an unreadable file is said now (exit 2), whatever the URL's scheme
            net.tls_context(ca_cert, source="--ca-cert")
        self.session = net.session(ca_cert, source="--ca-cert")

    def send(self, method: str, suffix: str, headers: Mapping[str, str],
             body: bytes | None = None) -> requests.Response:
        """One call, its answer not read yet (read it with ``body``, ``lines``, or
        ``.content``); a transport failure becomes exit 4 (2 for an unreadable CA file)."""
        try:
            return self.session.request(method, self.root + suffix, data=body,
                                        headers={**self.headers, **headers},
                                        timeout=HTTP_TIMEOUT, stream=True,
                                        allow_redirects=False)
        except CredhelperError:
            raise
        except Exception as exc:
            raise self.failure(exc, f"{method} {suffix}") from None

    def failure(self, exc: Exception, what: str) -> CredhelperError:
        from credhelper import net

        error = net.failure(exc, self.base, name="the gateway", what=what,
                            ca_setting="--ca-cert" if self.ca_cert else
                            "--ca-cert (or REQUESTS_CA_BUNDLE)",
                            address_setting="the URL")
        if error is None:
            raise exc  # not a transport failure: a bug, surfaced as one
        return error

    def body(self, response: requests.Response, what: str, limit: int | None = None) -> bytes:
        """The answer's body (at most ``limit`` + 1 bytes when a limit is given)."""
        try:
            if limit is None:
                return response.content
            data = response.raw.read(limit + 1, decode_content=True)
            response.close()
            return bytes(data)
        except Exception as exc:
            raise self.failure(exc, what) from None

    def lines(self, response: requests.Response, what: str) -> Iterator[str]:
        """The answer's lines as they arrive: each read returns what the server has sent
        so far (``read1``), so an event stream is seen event by event, not when a buffer
        fills or the stream ends."""
        raw = response.raw
        pending = b""
        try:
            while True:
                chunk = raw.read1(65536, decode_content=True)
                if not chunk:
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", "replace").rstrip("\r")
        except CredhelperError:
            raise
        except Exception as exc:
            raise self.failure(exc, what) from None
        finally:
            response.close()
        if pending:
            yield pending.decode("utf-8", "replace").rstrip("\r")


def _headers(token: str, scheme: str,
             extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the app sends: the credential per the auth scheme, plus the helper's headers."""
    headers = {"anthropic-version": ANTHROPIC_VERSION, "user-agent": "credhelper-test-gateway"}
    if scheme == "x-api-key":
        headers["x-api-key"] = token
    else:
        headers["authorization"] = f"Bearer {token}"
    return {**headers, **(extra or {})}


def _describe_error_body(body: bytes) -> str:
    try:
        data = json.loads(body)
        error = data.get("error", data)
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or "")[:200]
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace").strip()


def check_models(gw: Gateway, token: str, scheme: str, extra: Mapping[str, str],
                 report: Report) -> list[str]:
    start = time.monotonic()
    what = "GET /v1/models"
    response = gw.send("GET", "/v1/models", _headers(token, scheme, extra))
    body = gw.body(response, what)
    latency = int((time.monotonic() - start) * 1000)
    _refused(response.status_code, body, what)
    if response.status_code == 404:
        report.add("warn", what, f"404 in {latency} ms: the gateway lists no models "
                   "(optional for gateways; pass --model)", status_code=404, latency_ms=latency)
        return []
    if response.status_code != 200:
        raise _protocol(f"{what} answered {response.status_code}: "
                        f"{_describe_error_body(body)}")
    try:
        data = json.loads(body)
        ids = [m["id"] for m in data["data"]]
    except (ValueError, KeyError, TypeError):
        raise _protocol("GET /v1/models did not answer with the Anthropic/OpenAI model list "
                        "({\"data\": [{\"id\": ...}]})") from None
    report.add("ok", what, f"200 in {latency} ms: {len(ids)} model(s): "
               + (", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "") if ids else "none"),
               status_code=200, latency_ms=latency, models=ids)
    return ids


def _refused(status: int, body: bytes, what: str) -> None:
    if status in (401, 403):
        raise AccessDenied(
            f"{what}: the gateway refused the credential ({status}: {_describe_error_body(body)})",
            hint="the helper worked but the gateway does not accept what it printed: check "
                 "--auth-scheme, the audience/role the backend issues, and the gateway's key setup")


def _protocol(message: str) -> CredhelperError:
    error = CredhelperError(message, hint="is this the gateway's base URL (without /v1), and does "
                                          "it speak the Anthropic Messages API?")
    error.exit_code = 4
    return error


def check_messages(gw: Gateway, token: str, scheme: str, extra: Mapping[str, str], model: str,
                   report: Report) -> None:
    what = "POST /v1/messages"
    body = json.dumps({
        "model": model, "max_tokens": 64, "stream": True, "tools": [TOOL],
        "messages": [{"role": "user", "content": "What is the weather in Paris? Use the tool."}],
    }).encode()
    start = time.monotonic()
    response = gw.send("POST", "/v1/messages", _headers(
        token, scheme, {**extra, "content-type": "application/json",
                        "accept": "text/event-stream"}), body)
    status = response.status_code
    if status != 200:
        raw = gw.body(response, what)
        _refused(status, raw, what)
        raise _protocol(f"{what} answered {status}: {_describe_error_body(raw)}")
    kind = response.headers.get("content-type", "")
    if "text/event-stream" not in kind:
        response.close()
        raise _protocol(f"{what} with stream=true answered {kind or 'no content type'}, "
                        "not an event stream: the app needs streaming")
    events, first = _read_sse(gw.lines(response, what), start)
    total = int((time.monotonic() - start) * 1000)
    problems, summary = check_event_sequence(events)
    if problems:
        raise _protocol("the message stream is not the Anthropic SSE sequence: "
                        + "; ".join(problems))
    report.add("ok", "POST /v1/messages (stream, tool)",
               f"200, first event after {first} ms, done in {total} ms: {summary}",
               status_code=200, latency_ms=total, first_event_ms=first,
               events=[e for e, _ in events])


def _read_sse(lines: Iterator[str],
              start: float) -> tuple[list[tuple[str, dict[str, Any]]], int | None]:
    events: list[tuple[str, dict[str, Any]]] = []
    name: str | None = None
    data: list[str] = []
    first: int | None = None

    def flush() -> None:
        try:
            payload = json.loads("\n".join(data)) if data else {}
        except ValueError:
            payload = {"_unparsable": True}
        if not isinstance(payload, dict):
            payload = {"_unparsable": True}
        events.append((name or payload.get("type") or "", payload))

    for line in lines:
        if time.monotonic() - start > 2 * HTTP_TIMEOUT:  # a stream that never ends
            raise _protocol(f"the message stream did not end within {int(2 * HTTP_TIMEOUT)}s")
        if first is None:
            first = int((time.monotonic() - start) * 1000)
        if not line:
            if name or data:
                flush()
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    if name or data:
        flush()
    return events, first


def check_event_sequence(events: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], str]:
    """Problems with an Anthropic Messages stream, and a one-line summary of it."""
    names = [e for e, _ in events if e != "ping"]
    problems: list[str] = []
    if any(p.get("_unparsable") for _, p in events):
        problems.append("an event's data is not JSON")
    if "error" in names:
        err = next(p for e, p in events if e == "error")
        said = _describe_error_body(json.dumps(err).encode())
        problems.append(f"the stream reported an error: {said}")
    if not names or names[0] != "message_start":
        problems.append(f"first event is {names[0] if names else 'missing'}, not message_start")
    if not names or names[-1] != "message_stop":
        problems.append(f"last event is {names[-1] if names else 'missing'}, not message_stop")
    if "message_delta" not in names:
        problems.append("no message_delta")
    open_blocks: set[object] = set()
    kinds: list[str | None] = []
    json_deltas = 0
    for name, payload in events:
        if name == "content_block_start":
            open_blocks.add(payload.get("index"))
            kinds.append((payload.get("content_block") or {}).get("type"))
        elif name == "content_block_delta":
            if payload.get("index") not in open_blocks:
                problems.append("a content_block_delta outside its block")
            if (payload.get("delta") or {}).get("type") == "input_json_delta":
                json_deltas += 1
        elif name == "content_block_stop":
            open_blocks.discard(payload.get("index"))
    if not kinds:
        problems.append("no content_block_start")
    if open_blocks:
        problems.append("a content block was never stopped")
    if "tool_use" not in kinds:
        problems.append("no tool_use block (the app relies on tool use)")
    elif not json_deltas:
        problems.append("the tool_use block carried no input_json_delta")
    stop = next((p.get("delta", {}).get("stop_reason") for e, p in events
                 if e == "message_delta"), None)
    summary = (f"{len(names)} events, blocks {', '.join(k or '?' for k in kinds)}, "
               f"{json_deltas} input_json_delta, stop_reason {stop}")
    return list(dict.fromkeys(problems)), summary


# ---------------------------------------------------------------- sso: the app's own sign-in


def check_metadata(gw: Gateway, report: Report) -> dict[str, Any]:
    """The gateway's RFC 8414 metadata, as the app's sign-in (inferenceGatewayAuthScheme =
    sso, inferenceCredentialKind = interactive) reads it. Missing or unusable metadata is a
    configuration problem (exit 2): no retry fixes it. A 5xx or no answer is exit 4."""
    url = gw.base + METADATA_PATH
    what = f"GET {METADATA_PATH}"
    start = time.monotonic()
    response = gw.send("GET", METADATA_PATH, {
        "accept": "application/json", "user-agent": "credhelper-test-gateway"})
    body = gw.body(response, what, METADATA_LIMIT)
    latency = int((time.monotonic() - start) * 1000)
    status = response.status_code
    if status >= 500:
        raise BackendUnavailable(f"{what} answered {status}: {_describe_error_body(body)}")
    if status != 200:
        raise ConfigError(
            f"{what} answered {status}: the gateway publishes no OAuth authorization "
            f"server metadata at {url}, which the app's sign-in (sso / interactive) reads",
            hint="publish the RFC 8414 metadata of the gateway's sign-in there, or give the "
                 "app a helper (inferenceCredentialHelper) instead of sso")
    try:
        doc = json.loads(body) if len(body) <= METADATA_LIMIT else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ConfigError(f"{what}: {url} is not a JSON object of OAuth metadata")
    missing = [k for k in ("issuer", "token_endpoint") if not isinstance(doc.get(k), str)]
    if missing:
        raise ConfigError(f"{what}: the metadata at {url} has no {' and no '.join(missing)}",
                          hint="RFC 8414 requires issuer and token_endpoint")
    report.add("ok", what, f"200 in {latency} ms: issuer {doc['issuer']}",
               status_code=200, latency_ms=latency, issuer=doc["issuer"])
    endpoints = {k: doc[k] for k in ("token_endpoint", "device_authorization_endpoint",
                                     "authorization_endpoint") if isinstance(doc.get(k), str)}
    report.add("ok", "endpoints", ", ".join(f"{k[:-len('_endpoint')]} {v}"
                                            for k, v in endpoints.items()), **endpoints)
    if "device_authorization_endpoint" not in doc:
        if "authorization_endpoint" not in doc:
            raise ConfigError(f"the metadata at {url} offers neither a device authorization "
                              "endpoint nor an authorization endpoint: nobody can sign in")
        # A warning, not a failure: the app signs in with a browser (authorization code),
        # which works without it; the device code is how a person signs in where no
        # browser can come back (SSH, the helper's own prompt, Claude Code on a server).
        report.add("warn", "device_authorization_endpoint",
                   "none: the app's browser sign-in can work, a device code sign-in cannot "
                   "(credhelper-oidc signs in only with `credhelper-oidc login` on a desktop)")
    return doc


def configured_issuer(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(issuer, where it is set) of the user's [oidc] configuration, or None."""
    from credhelper import config, registry

    found, _ = config.sources(env, [config.DEFAULTS] + registry.names())
    for source in found:  # highest precedence first
        value = source.tables.get("oidc", {}).get("issuer")
        if value is not None:
            return str(value).rstrip("/"), source.where("oidc", "issuer")
    return None


def sso_environment(issuer: str, env: Mapping[str, str], report: Report) -> dict[str, str]:
    """The environment to run credhelper-oidc in: signed in at the gateway's issuer, unless
    the user's configuration names one (then it is kept, and a difference is said)."""
    issuer = issuer.rstrip("/")
    child = dict(env)
    configured = configured_issuer(env)
    if configured is None:
        child["CREDHELPER_OIDC_ISSUER"] = issuer
        report.add("ok", "[oidc] issuer", f"{issuer}, from the gateway's metadata")
    elif configured[0] == issuer:
        report.add("ok", "[oidc] issuer", f"{configured[0]} ({configured[1]}) is the gateway's")
    else:
        report.add("warn", "[oidc] issuer",
                   f"{configured[0]} ({configured[1]}) is not the issuer the gateway names "
                   f"({issuer}): credhelper-oidc signs in there, the app at the gateway's; "
                   "testing with yours")
    return child


# ---------------------------------------------------------------- the whole check


def test_gateway(url: str, scheme: str, provider: str, model: str | None, env: Mapping[str, str],
                 command: list[str] | None = None, sso: bool = False,
                 ca_cert: str | None = None, headers: Mapping[str, str] | None = None) -> Report:
    """The whole check. With ``sso``: the gateway's OAuth metadata first, then
    credhelper-oidc (``provider`` is "oidc") signed in at the issuer it names. ``ca_cert``
    verifies the gateway's certificate (alone); ``headers`` go on every gateway call."""
    from credhelper.config import check_url

    try:
        base = check_url(url)
    except ValueError as exc:
        raise ConfigError(f"gateway URL: {exc}") from None
    if base.endswith("/v1"):
        base = base[:-3]
    gw = Gateway(base, ca_cert, headers)
    report = Report()
    if sso:
        try:
            metadata = check_metadata(gw, report)
        except CredhelperError as exc:
            report.add("fail", "sign-in metadata",
                       exc.message + (f" (hint: {exc.hint})" if exc.hint else ""))
            report.verdict = ("the gateway could not be reached"
                              if isinstance(exc, BackendUnavailable)
                              else "the gateway does not publish what the app's sign-in needs")
            report.exit_code = exc.exit_code
            return report
        env = sso_environment(metadata["issuer"], env, report)  # a bad config file: exit 2
    command = command or helper_command(provider)
    # With sso the app runs no helper: the command is how this check gets the token.
    report.add("ok", "token from" if sso else "inferenceCredentialHelper", " ".join(command))
    try:
        token, extra, seconds = run_helper(command, env)
    except CredhelperError as exc:
        report.add("fail", "helper", exc.message + (f" (hint: {exc.hint})" if exc.hint else ""))
        report.verdict = "the helper could not get a credential: the gateway was not called"
        report.exit_code = exc.exit_code
        return report
    from credhelper.log import Log

    Log("credhelper").secret(token)  # never printed, even inside an error message
    report.add("ok", "helper", f"printed a credential in {seconds:.2f}s "
               f"({len(token)} characters, context setup-test)"
               + (f", headers {', '.join(sorted(extra))}" if extra else ""))
    try:
        ids = check_models(gw, token, scheme, extra, report)
        chosen = model or (ids[0] if ids else None)
        if not chosen:
            report.add("warn", "POST /v1/messages", "skipped: no --model and no model listed")
        else:
            check_messages(gw, token, scheme, extra, chosen, report)
    except CredhelperError as exc:
        report.add("fail", "gateway", Log.redact(exc.message)
                   + (f" (hint: {exc.hint})" if exc.hint else ""))
        kind = ("wrong credential" if isinstance(exc, AccessDenied)
                else "gateway down" if isinstance(exc, BackendUnavailable)
                else "wrong protocol")
        report.verdict = {
            "wrong credential": "the gateway refused the credential the helper printed",
            "gateway down": "the gateway could not be reached",
            "wrong protocol": "the gateway answered, but not as the app needs",
        }[kind]
        report.exit_code = exc.exit_code
        return report
    report.verdict = ("the gateway accepts a token from its sign-in, as the app would use it"
                      if sso else "the gateway works with this helper, as the app would use it")
    return report


def format_report(report: Report) -> str:
    marks = {"ok": "  ok  ", "warn": " warn ", "fail": " FAIL "}
    lines = [f"[{marks[c['status']]}] {c['check']}: {c['detail']}" for c in report.checks]
    lines.append(("result: " if report.exit_code == 0 else "problem: ") + report.verdict)
    return "\n".join(lines)
