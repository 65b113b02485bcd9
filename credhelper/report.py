"""What ``status``, ``cache`` and ``doctor`` report. Secrets appear only on request.

Each report is built as plain data (so ``--json`` is the same report) and formatted
separately for people.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from typing import TYPE_CHECKING, Any

from credhelper import (
    __version__,
    config as config_mod,
    context,
    jwt,
    managed as managed_mod,
    registry,
    securefile,
)
from credhelper.cache import SUFFIX, FileCache
from credhelper.clock import skew_verdict
from credhelper.durations import format_duration
from credhelper.errors import CredhelperError

if TYPE_CHECKING:
    from collections.abc import Callable

    from credhelper.cache import Entry
    from credhelper.cli import App
    from credhelper.fullpath import Run



def _when(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
    except (OverflowError, ValueError, OSError):  # a claim of 1e999, NaN, year 10000
        return "no date"


def describe_entry(entry: Entry, location: str, now: float, min_validity: float | None,
                   show_secret: bool, current: bool) -> dict[str, Any]:
    info: dict[str, Any] = {
        "provider": entry.provider,
        "current": current,
        "location": location,
        "source": entry.details.get("source"),
        "fetched_at": _when(entry.fetched_at),
        "expires_at": _when(entry.expires_at),
        "expires_in_seconds": int(entry.expires_at - now),
        "lifetime_seconds": int(entry.expires_at - entry.fetched_at),
        "state": (
            "expired" if entry.expires_at <= now
            else "renew due" if min_validity is not None and not entry.fresh(now, min_validity)
            else "fresh"
        ),
        "details": {k: v for k, v in entry.details.items() if k != "source"},
        "headers": sorted(entry.headers),
    }
    decoded = jwt.decode(entry.token)
    if decoded:
        info["token_kind"] = "JWT"
        info["jwt_header"], info["jwt_claims"] = decoded
    else:
        info["token_kind"] = f"opaque, {len(entry.token)} characters"
    if show_secret:
        info["token"] = entry.token
    return info


def budget_checks(run: Run) -> list[tuple[str, str, str]]:
    """The app's time budget and TTL as this configuration meets them, for doctor and
    status: (status, check, detail)."""
    b, conf = run.budget, run.config
    checks = [("ok", "time budget", f"{b.timeout:g}s from {b.timeout_source}; every run "
               f"ends within {b.usable:g}s, a sign-in included"),
              ("ok", "app TTL", f"{format_duration(b.ttl)} from {b.ttl_source}")]
    for name in ("timeout", "login_timeout"):
        value = conf.get(name)
        if value is not None and value > b.usable:
            checks.append(("warn", name, f"{format_duration(value)} ({conf.source(name)}) is "
                           f"longer than the app lets a run take: runs end at "
                           f"{b.usable:g}s; set {name} to at most {int(b.usable)}s, or raise "
                           "inferenceCredentialHelperTimeoutSec (at most 600)"))
    return checks


def status(app: App, names: list[str], show_secret: bool) -> list[dict[str, Any]]:
    now = app.clock()
    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name in names:
        try:
            run = app.prepare(name)
        except CredhelperError as exc:
            results.append({"provider": name, "problem": exc.message})
            continue
        entry = run.cache.load(name, run.key)
        if entry is None:
            why = "nothing cached"
            if run.config["cache"] == "none":
                why += ' (cache = "none")'
            elif not run.config.get("max_age"):
                why += (" (yet, or the backend gives this credential no expiry: then every "
                        "run reads it again, unless max_age is set)")
            results.append({"provider": name, "current": True, "source": run.provider.describe(),
                            "location": run.cache.path(name, run.key), "problem": why})
        else:
            results.append(describe_entry(entry, run.cache.path(name, run.key), now,
                                          run.config["min_validity"], show_secret, True))
        results[-1]["budget"] = [f"{check}: {detail}" + (" (warning)" if state != "ok" else "")
                                 for state, check, detail in budget_checks(run)]
        try:
            backend = run.provider.status(run.request)
        except CredhelperError as exc:
            backend = {"problem": exc.message}
        if backend:
            results[-1]["backend"] = backend
        seen.add(run.cache.path(name, run.key))
        for path, old, problem in FileCache(run.directory, app.log).entries():
            if path in seen or not os.path.basename(path).startswith(name + "-"):
                continue
            seen.add(path)
            if old is None:
                results.append({"provider": name, "location": path, "problem": problem})
            else:
                results.append(describe_entry(old, path, now, None, show_secret, False))
    return results


def format_status(entries: list[dict[str, Any]], now: float) -> str:
    if not entries:
        return "nothing cached"
    blocks = []
    for e in entries:
        title = e["provider"] + ("" if e.get("current", True) else "  (an earlier configuration)")
        lines = [title]
        if "problem" in e:
            for key, label in (("source", "source:"), ("location", "cached:")):
                if e.get(key):
                    lines.append(f"  {label:<10} {e[key]}")
            lines.append(f"  {'state:':<10} {e['problem']}")
            lines += [f"  {'budget:':<10} {line}" for line in e.get("budget", [])]
            for key, value in e.get("backend", {}).items():
                lines.append(f"  {key + ':':<10} {value}")
            blocks.append("\n".join(lines))
            continue
        left = e["expires_in_seconds"]
        when = f"in {format_duration(left)}" if left > 0 else f"{format_duration(-left)} ago"
        lines += [
            f"  {'source:':<10} {e['source']}",
            f"  {'cached:':<10} {e['location']}",
            f"  {'fetched:':<10} {e['fetched_at']}",
            f"  {'expires:':<10} {e['expires_at']} "
            f"({when}; "
            f"lifetime {format_duration(e['lifetime_seconds'])})",
            f"  {'state:':<10} {e['state']}",
            f"  {'token:':<10} {e['token_kind']}"
            + ("" if "token" in e else "  (--show-secret prints it)"),
        ]
        if e.get("headers"):
            lines.append(f"  {'headers:':<10} {', '.join(e['headers'])}")
        for key, value in e.get("details", {}).items():
            lines.append(f"  {key + ':':<10} {value}")
        if "jwt_claims" in e:
            import json

            lines.append(f"  {'jwt:':<10} {json.dumps(e['jwt_header'], sort_keys=True)}")
            for claim, value in sorted(e["jwt_claims"].items()):
                shown = json.dumps(value)
                if claim in ("exp", "iat", "nbf", "auth_time") and isinstance(value, (int, float)):
                    shown += f"  ({_when(value)})"
                lines.append(f"    {claim}: {shown}")
        lines += [f"  {'budget:':<10} {line}" for line in e.get("budget", [])]
        for key, value in e.get("backend", {}).items():
            lines.append(f"  {key + ':':<10} {value}")
        if "token" in e:
            lines.append(f"  {'secret:':<10} {e['token']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _cache_directory(app: App) -> str:
    from credhelper.fullpath import cache_dir

    return cache_dir(app.env)


def cache_lines(app: App, provider: str | None) -> list[str]:
    now = app.clock()
    lines = []
    for path, entry, problem in FileCache(_cache_directory(app), app.log).entries():
        name = os.path.basename(path)
        if provider and not name.startswith(provider + "-"):
            continue
        if entry is None:
            lines.append(f"{name}  unreadable: {problem}")
        else:
            left = entry.expires_at - now
            state = f"expires in {format_duration(left)}" if left > 0 else "expired"
            lines.append(f"{name}  {entry.provider}  {state}  {entry.details.get('source', '')}")
    return lines or ["nothing cached"]


def clear_cache(app: App, provider: str | None) -> int:
    directory = _cache_directory(app)
    if not securefile.check_private_dir(directory):
        return 0
    count = 0
    for name in os.listdir(directory):
        if provider and not name.startswith(provider + "-"):
            continue
        if name.endswith(SUFFIX) or (name.startswith("snapshot-") and name.endswith(".json")):
            count += name.endswith(SUFFIX)
            securefile.remove(os.path.join(directory, name))
    # Keyring-cached entries cannot be listed; remove the current configuration's.
    for name in [provider] if provider else registry.names():
        try:
            run = app.prepare(name)
        except CredhelperError:
            continue
        if run.cache.mode == "keyring" and run.cache.delete(name, run.key):
            count += 1
    return count


# ---------------------------------------------------------------- doctor


def _check(status: str, name: str, detail: str) -> dict[str, str]:
    return {"status": status, "check": name, "detail": detail}


def doctor(app: App, providers: list[str]) -> dict[str, Any]:
    env = app.env
    sections = []
    sections.append({"title": "credhelper", "checks": [
        _check("ok", "version", __version__),
        _check("ok", "python", f"{sys.version.split()[0]} ({sys.executable})"),
        _check("ok", "platform", f"{platform.platform()}"),
    ]})
    name, interactive = context.resolve(env, app.stderr)
    sections.append({"title": "context", "checks": [
        _check("ok", "CLAUDE_HELPER_CONTEXT", env.get("CLAUDE_HELPER_CONTEXT") or "(not set)"),
        _check("ok", "CLAUDE_HELPER_MANUAL_RUN",
               env.get("CLAUDE_HELPER_MANUAL_RUN") or "(not set)"),
        _check("ok", "this run",
               f"{name}: {'may' if interactive else 'may not'} ask a person to sign in"),
    ]})

    source_checks = []
    try:
        found, files = config_mod.sources(env, [config_mod.DEFAULTS] + registry.names())
        for label, path, read in files:
            shown = f"{path} ({'read' if read else 'not present'})"
            source_checks.append(_check("ok", label, shown))
        variables = sorted(k for k in env if k.startswith("CREDHELPER_"))
        source_checks.append(_check("ok", "environment",
                                    ", ".join(variables) or "no CREDHELPER_ variables"))
        managed = [s.label for s in found if s.label.startswith("managed")]
        source_checks.append(_check("ok", "managed preferences", managed[0] if managed
                                    else f"none ({managed_mod.where()})"))
        configured = sorted({t for s in found for t in s.tables if t != config_mod.DEFAULTS})
    except CredhelperError as exc:
        source_checks.append(_check("fail", "configuration", exc.message))
        configured = []
    sections.append({"title": "configuration sources", "checks": source_checks})

    for name in providers or registry.names():
        if name in configured or name in providers:
            sections.append(_doctor_provider(app, name))
        else:  # nobody set it up: nothing to check, nothing failed
            sections.append({"title": f"provider {name}", "checks": [_check(
                "skip", "not configured",
                f"no [{name}] table in the configuration files or the managed preferences "
                f"and no CREDHELPER_{name.upper()}_ variables; `credhelper doctor "
                f"--provider {name}` checks it anyway")]})

    directory = _cache_directory(app)
    cache_checks = [_check("ok", "directory", directory)]
    try:
        exists = securefile.check_private_dir(directory)
        entries = FileCache(directory, app.log).entries()
        bad = [p for p, e, _ in entries if e is None]
        cache_checks.append(_check("ok", "permissions", "private (0700, yours)" if exists
                                   else "not created yet (made 0700 on first use)"))
        cache_checks.append(_check("warn" if bad else "ok", "entries",
                                   f"{len(entries)} cached, {len(bad)} unreadable"))
    except CredhelperError as exc:
        cache_checks.append(_check("fail", "permissions", exc.message))
    cache_checks.append(_check(*keyring_backend()))
    sections.append({"title": "cache", "checks": cache_checks})
    return {"sections": sections}


def _doctor_provider(app: App, name: str) -> dict[str, Any]:
    checks = []
    title = f"provider {name}"
    try:
        run = app.prepare(name)
    except CredhelperError as exc:
        return {"title": title, "checks": [_check("fail", "configuration", exc.message)]}
    for setting, value in run.config.values.items():
        checks.append(_check("ok", setting, f"{config_mod.masked(value)}  ({value.source})"))
    checks.append(_check("ok", "cache key", run.key))
    checks += [_check(*c) for c in budget_checks(run)]
    try:
        checks += [_check(*c) for c in run.provider.diagnose(run.request)]
    except CredhelperError as exc:
        checks.append(_check("fail", "backend", exc.message))
    # What to probe is what the provider declares (its address and CA settings).
    address_setting = run.provider.address_setting
    if address_setting and run.config.get(address_setting):
        ca = run.config.get(run.provider.ca_setting) if run.provider.ca_setting else None
        ca_source = run.provider.ca_setting or "ca_cert"
        if not ca and app.env.get("REQUESTS_CA_BUNDLE"):
            # Without ca_cert the backends (requests) trust REQUESTS_CA_BUNDLE: so do we.
            ca, ca_source = app.env["REQUESTS_CA_BUNDLE"], "REQUESTS_CA_BUNDLE"
        checks += probe_backend(run.config[address_setting], ca, min(10.0, run.config["timeout"]),
                                app.clock, address_setting, ca_source)
    entry = None
    try:
        entry = run.cache.load(name, run.key)
    except CredhelperError as exc:
        checks.append(_check("fail", "cached credential", exc.message))
    # The credential's real lifetime: the cached one's, else what the backend declares.
    declared = run.provider.declared_lifetime()
    if entry is not None:
        lifetime, origin = entry.expires_at - entry.fetched_at, "the cached credential"
    elif declared is not None:
        lifetime, origin = declared
    else:
        lifetime = None
    if lifetime is not None:
        ttl = run.budget.ttl
        if lifetime < ttl:
            checks.append(_check(
                "warn", "credential lifetime",
                f"{format_duration(int(lifetime))} ({origin}) is shorter than the app keeps "
                f"a credential ({format_duration(ttl)}, {run.budget.ttl_source}): set "
                f"inferenceCredentialHelperTtlSec to at most "
                f"{max(60, int(lifetime) - int(run.config['min_validity']))}",
            ))
        else:
            checks.append(_check("ok", "credential lifetime",
                                 f"{format_duration(int(lifetime))} ({origin})"))
    helper = helper_path(name)
    exists = os.path.isfile(helper) and os.access(helper, os.X_OK)
    checks.append(_check("ok" if exists else "warn", "inferenceCredentialHelper",
                         helper if exists else f"{helper} (not found on this machine: "
                         "set the absolute path where it is installed)"))
    return {"title": title, "checks": checks}


def helper_path(name: str) -> str:
    """The absolute path to set as inferenceCredentialHelper for this installation."""
    here = os.path.dirname(os.path.abspath(sys.argv[0] or ""))
    for candidate in (f"credhelper-{name}", f"credhelper-{name}.exe"):
        if os.path.isfile(os.path.join(here, candidate)):
            return os.path.join(here, candidate)
    found = shutil.which(f"credhelper-{name}")
    return os.path.abspath(found) if found else os.path.join(here, f"credhelper-{name}")


def probe_backend(url: str, ca_file: str | None, timeout: float, clock: Callable[[], float],
                  setting: str,
                  ca_source: str = "ca_cert") -> list[dict[str, str]]:
    """Reachability, TLS certificate and clock skew of the backend at ``url``: one request,
    whatever it answers (any HTTP status proves the server is there)."""
    import http.client
    import ssl
    from email.utils import parsedate_to_datetime
    from urllib.parse import urlsplit

    from credhelper import net

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    checks: list[dict[str, str]] = []
    context = None
    if parts.scheme == "https":
        try:  # the backends' own TLS context: the same CAs decide
            context = net.tls_context(None if ca_source == "REQUESTS_CA_BUNDLE" else ca_file,
                                      source=ca_source)
        except CredhelperError as exc:
            return [_check("fail", "TLS", f"{url}: {exc.message}")]
    start = time.monotonic()
    try:
        conn: http.client.HTTPConnection
        if context is not None:
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("GET", parts.path or "/", headers={"user-agent": "credhelper-doctor"})
        sent = clock()
        # The verified certificate, decoded by the ssl module itself; read before the
        # answer, after which a server that closes the connection leaves no socket.
        cert = (conn.sock.getpeercert() if isinstance(conn.sock, ssl.SSLSocket)
                else None)
        response = conn.getresponse()
        received = clock()
        response.read()
        conn.close()
    except ssl.SSLError as exc:
        tls = net.tls_failure(exc, "ca_cert")
        if tls is None or tls.kind == "handshake":
            return [_check("fail", "TLS", f"{url}: TLS handshake failed: {exc.reason or exc}")]
        if tls.kind == "untrusted":
            detail = f"{url}: certificate not trusted: {tls.detail}"
            hint = "set ca_cert to the CA that signed it"
            hint += f" ({ca_source} is {ca_file})" if ca_file else ""
        else:  # expired, not yet valid, another host's: no CA setting helps
            detail, hint = f"{url}: {tls.reason}", tls.hint
        unverified = _unverified_certificate(host, port, timeout, clock())
        if unverified:
            detail += f" ({unverified})"
        return [_check("fail", "TLS", f"{detail}; {hint}")]
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
        return [_check("fail", "reachable", f"{url} ({setting}): {reason}")]
    latency = int((time.monotonic() - start) * 1000)
    checks.append(_check("ok", "reachable",
                         f"{url} ({setting}): HTTP {response.status} in {latency} ms"))
    if cert is not None:
        checks.append(_check(*_certificate_check(cert, clock())))
    elif parts.scheme == "http":
        checks.append(_check("ok", "TLS", "none: plain http on loopback"))
    date = response.getheader("Date")
    if not date:
        checks.append(_check("warn", "clock skew", "the backend sent no Date header"))
    else:
        try:
            server = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            checks.append(_check("warn", "clock skew", f"unreadable Date header {date[:40]!r}"))
        else:
            # The Date header has one-second resolution; compare with the middle of the exchange.
            skew = int(round(server - (sent + received) / 2))
            status = skew_verdict(skew)
            side = "behind" if skew > 0 else "ahead of"
            text = ("in step" if skew == 0
                    else f"this machine is {abs(skew)}s {side} the backend")
            if status != "ok":
                text += ": tokens may look expired or not yet valid; fix the system clock (NTP)"
            checks.append(_check(status, "clock skew", f"{text} (Date: {date})"))
    return checks


_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}


def _name(parts: Any) -> str:
    return ", ".join(f"{_SHORT.get(k, k)}={v}" for rdn in parts for k, v in rdn)


def _certificate_check(cert: dict[str, Any], now: float) -> tuple[str, str, str]:
    import ssl

    expires = ssl.cert_time_to_seconds(cert["notAfter"])
    left = expires - now
    detail = (f"subject {_name(cert.get('subject', ()))}; issuer {_name(cert.get('issuer', ()))}; "
              f"expires {_when(expires)} (in {format_duration(left)})" if left > 0 else
              f"subject {_name(cert.get('subject', ()))}; expired {_when(expires)}")
    status = "fail" if left <= 0 else "warn" if left < 14 * 86400 else "ok"
    return status, "TLS certificate", detail


def _unverified_certificate(host: str, port: int, timeout: float, now: float) -> str | None:
    """Subject, issuer and expiry of a certificate that failed verification, for the
    report. ``getpeercert()`` decodes only a verified certificate, so this one is read
    with the cryptography package where it is installed (msal needs it); without it the
    report shows the failure alone."""
    import socket
    import ssl

    try:
        from cryptography import x509
    except ImportError:
        return None
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection((host, port), timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
        if der is None:
            return None
        cert = x509.load_der_x509_certificate(der)
        shown = f"subject {_x509_name(cert.subject)}, issuer {_x509_name(cert.issuer)}"
    except Exception:  # best effort: the failure itself is already reported
        return None
    try:  # the names a client checks (a wrong host name is a failure of its own)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        shown += ", names " + ", ".join(str(n.value) for n in names)
    except (x509.ExtensionNotFound, ValueError):
        pass
    end = getattr(cert, "not_valid_after_utc", None)  # cryptography 42 and later
    if end is not None:
        shown += f", {'expires' if end.timestamp() > now else 'expired'} {_when(end.timestamp())}"
    return shown


def _x509_name(name: Any) -> str:
    """A cryptography Name as _name() shows getpeercert()'s: "CN=host, O=Example"."""
    return ", ".join(f"{a.rfc4514_attribute_name}={a.value}" for rdn in name.rdns for a in rdn)


def keyring_backend() -> tuple[str, str, str]:
    """The keyring credhelper would use (credhelper.store's one check). None is a warning,
    not a failure: only cache = "keyring", credhelper-keyring and the Azure token cache on
    Linux need one, and their own checks fail loudly."""
    from credhelper.store import keyring_usable

    usable, detail = keyring_usable()
    if usable:
        return "ok", "keyring backend", detail
    return "warn", "keyring backend", (
        f"no usable OS keyring: {detail} (needed only for cache = \"keyring\", "
        "credhelper-keyring and the Azure token cache on Linux)")


def format_doctor(result: dict[str, Any]) -> str:
    marks = {"ok": "  ok  ", "warn": " warn ", "fail": " FAIL ", "skip": "  --  "}
    lines = []
    for section in result["sections"]:
        lines.append(f"== {section['title']}")
        for c in section["checks"]:
            lines.append(f"[{marks[c['status']]}] {c['check']}: {c['detail']}")
        lines.append("")
    return "\n".join(lines).rstrip()
