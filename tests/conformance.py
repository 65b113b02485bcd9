"""The contract every backend keeps, as one suite that each backend's tests run against
its real service (like jaraco/keyring's BackendBasicTests).

A backend's test folder subclasses ``ContractTests`` and gives it a ``backend`` fixture
returning a ``Harness``: how to make an environment in which a run succeeds, one in which
the backend refuses, one where it cannot be reached, one where it never answers, and one
where only a person could help. Everything else (the checks) is shared, so a new backend
gets the whole contract by writing those five environments.

A backend without one of the situations (the keyring has no network address) sets the
test that needs it to ``None`` in its subclass, and its own tests cover the case.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from conftest import assert_failure, leaked, run

VISIBLE_ASCII = {chr(c) for c in range(0x21, 0x7F)}


@dataclass
class Harness:
    script: str  # the console script, e.g. "credhelper-vault"
    ok: Callable[[], dict]  # an environment in which a run prints a credential
    refused: Callable[[], dict]  # ... in which the backend refuses (exit 5)
    address_env: Callable[[dict, str], dict] | None  # point an env at another base URL
    needs_person: Callable[[], dict] | None = None  # only a sign-in helps (exit 3)
    secrets: list[str] = field(default_factory=list)  # never on stderr, in logs or status


class Silent:
    """A TCP port that accepts connections and never answers: a hung backend."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def __exit__(self, *exc):
        self.stop.set()
        for conn in self.held:
            conn.close()
        self.sock.close()


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _token(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode("ascii")
    assert text.endswith("\n") and text.count("\n") == 1, text
    token = text[:-1]
    assert token and set(token) <= VISIBLE_ASCII, "not a valid header value"
    return token


def _clean(backend: Harness, proc, *more: str) -> None:
    stderr = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert not leaked(stderr)
    for secret in list(backend.secrets) + list(more):
        assert secret not in stderr, "a secret reached stderr"


def _entry(backend: Harness, env: dict) -> dict:
    p = run([backend.script, "status", "--json"], env)
    assert p.returncode == 0, p.stderr
    [current] = [e for e in json.loads(p.stdout) if e.get("current")]
    return current


def _run_against_a_hung_backend(backend: Harness, settings: dict) -> float:
    """Seconds a run took against a backend that accepts and never answers (exit 4)."""
    with Silent() as url:
        env = {**backend.address_env(backend.ok(), url), **settings}
        started = time.monotonic()
        p = run(backend.script, env)
        took = time.monotonic() - started
    assert_failure(p, 4)
    return took


class ContractTests:
    """Mixed into each backend's ``TestContract``; needs a ``backend`` fixture."""

    def test_prints_one_header_safe_line_and_nothing_else(self, backend):
        env = backend.ok()
        p = run(backend.script, env)
        token = _token(p)
        _clean(backend, p, token)

    def test_second_run_is_a_cache_hit_with_the_same_credential(self, backend):
        env = backend.ok()
        first = _token(run(backend.script, env))
        p = run([backend.script, "--debug"], env)
        assert _token(p) == first and "cache hit" in p.stderr
        _clean(backend, p, first)
        entry = _entry(backend, env)
        assert entry["expires_in_seconds"] > 0 and entry["state"] == "fresh"

    def test_json_form_when_headers_are_configured(self, backend):
        env = {**backend.ok(), "CREDHELPER_DEFAULTS_HEADERS": '{"X-Team": "ml"}'}
        p = run(backend.script, env)
        assert p.returncode == 0, p.stderr
        assert p.stdout.endswith(b"}\n") and p.stdout.count(b"\n") == 1
        doc = json.loads(p.stdout)
        assert set(doc) == {"token", "headers"} and doc["headers"]["X-Team"] == "ml"
        assert set(doc["token"]) <= VISIBLE_ASCII

    def test_debug_and_status_never_show_a_secret(self, backend):
        env = backend.ok()
        token = _token(run([backend.script, "--debug"], env))
        p = run([backend.script, "--debug"], env)
        _clean(backend, p, token)
        status = run([backend.script, "status"], env)
        assert status.returncode == 0 and token.encode() not in status.stdout
        assert not leaked(status.stdout.decode())

    def test_refusal_exits_5_with_nothing_on_stdout(self, backend):
        p = run(backend.script, backend.refused())
        assert_failure(p, 5)
        _clean(backend, p)

    def test_unreachable_backend_exits_4_at_once(self, backend):
        env = backend.address_env(backend.ok(), closed_port())
        started = time.monotonic()
        p = run(backend.script, {**env, "CREDHELPER_DEFAULTS_TIMEOUT": "10s"})
        assert_failure(p, 4)
        _clean(backend, p)
        assert time.monotonic() - started < 9  # a refused connection is not waited out

    def test_a_hung_backend_ends_at_the_deadline(self, backend):
        took = _run_against_a_hung_backend(backend, {"CREDHELPER_DEFAULTS_TIMEOUT": "2s"})
        assert took < 2 + 1 + 2, took  # the deadline, the watchdog's second, start-up

    def test_a_hung_backend_ends_before_the_app_kills_the_run(self, backend):
        took = _run_against_a_hung_backend(backend, {"CREDHELPER_DEFAULTS_APP_TIMEOUT": "5s"})
        assert took < 5 - 2 + 0.5, took

    def test_a_background_run_never_asks_a_person(self, backend):
        env = {**backend.needs_person(), "CLAUDE_HELPER_CONTEXT": "background"}
        started = time.monotonic()
        p = run(backend.script, env)
        assert_failure(p, 3, "background context")
        assert time.monotonic() - started < 5
        _clean(backend, p)

    def test_force_refresh_fetches_again(self, backend):
        env = {**backend.ok(), "CREDHELPER_DEFAULTS_REFRESH_GRACE": "0s"}
        _token(run(backend.script, env))
        first = _entry(backend, env)["fetched_at"]
        time.sleep(1.1)  # status shows whole seconds
        _token(run(backend.script, env))
        assert _entry(backend, env)["fetched_at"] == first  # a plain run: cache hit
        for args, extra in (([backend.script, "--force-refresh"], {}),
                            ([backend.script], {"CLAUDE_HELPER_CONTEXT": "mid-session-refresh"})):
            time.sleep(1.1)
            _token(run(args, {**env, **extra}))
            now = _entry(backend, env)["fetched_at"]
            assert now > first, (args, extra, now, first)
            first = now

    def test_a_credential_shorter_than_min_validity_is_renewed_every_run(self, backend):
        env = {**backend.ok(), "CREDHELPER_DEFAULTS_MIN_VALIDITY": "300d",
               "CREDHELPER_DEFAULTS_MAX_AGE": "1h"}
        p = run(backend.script, env)
        _token(p)
        assert "less than min_validity" in p.stderr
        first = _entry(backend, env)["fetched_at"]
        time.sleep(1.1)
        _token(run(backend.script, env))
        assert _entry(backend, env)["fetched_at"] > first

    def test_a_bad_setting_exits_2_naming_it(self, backend):
        p = run(backend.script, {**backend.ok(), "CREDHELPER_DEFAULTS_TIMEOUT": "soon"})
        assert_failure(p, 2, "CREDHELPER_DEFAULTS_TIMEOUT")
