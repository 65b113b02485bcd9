"""The provider interface in-process: a frozen Request carrying the run's environment,
clocks and HTTP factory, so provider code is driven here with a fake clock and a made-up
environment, without a subprocess or libfaketime."""

from __future__ import annotations

import dataclasses

import pytest

from credhelper.errors import BackendUnavailable, ConfigError
from credhelper.log import Log
from credhelper.provider import Request
from credhelper.providers.device_flow import PendingSignIn


class FakeClock:
    def __init__(self, wall: float = 1_800_000_000.0):
        self.wall, self.mono, self.slept = wall, 100.0, []

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.wall += seconds
        self.mono += seconds


class MemoryState:
    def __init__(self):
        self.docs = {}

    def load(self, name):
        return self.docs.get(name)

    def save(self, name, doc):
        self.docs[name] = dict(doc)

    def delete(self, name):
        self.docs.pop(name, None)


class Quiet:
    def write(self, text):
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def request(clock: FakeClock, env=None, **more) -> Request:
    return Request(context="background", interactive=False, deadline=clock.mono + 30,
                   login_deadline=clock.mono + 58, log=Log("test", Quiet(), False),
                   env=env or {}, clock=clock.time, monotonic=clock.monotonic,
                   sleep=clock.sleep, state=MemoryState(), **more)


def test_a_request_cannot_be_changed_only_derived():
    clock = FakeClock()
    r = request(clock)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.deadline = 0  # type: ignore[misc]
    signing = r.signing_in()
    assert (signing.deadline, r.deadline) == (clock.mono + 58, clock.mono + 30)


def test_retry_pauses_on_the_injected_clock_and_stops_at_the_deadline():
    clock = FakeClock()
    r = request(clock)
    assert r.pause_before_retry(1, "busy", retry_after="20") and clock.slept == [20.0]
    assert not r.pause_before_retry(2, "busy", retry_after="20")  # 10 s left: no room
    assert clock.slept == [20.0]
    assert r.remaining() == pytest.approx(10.0)
    clock.mono += 10
    with pytest.raises(BackendUnavailable):
        r.remaining()


def test_fresh_token_lifetimes_count_on_the_injected_clock():
    import base64
    import json

    clock = FakeClock()
    def enc(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    token = f"{enc({'alg': 'none'})}.{enc({'iat': 5000, 'exp': 5600})}.x"  # issuer far behind
    assert request(clock).fresh_token_expiry(token, "issuer") == clock.wall + 600


def test_a_pending_sign_in_expires_on_the_injected_clock():
    clock = FakeClock()
    r = request(clock)
    pending = PendingSignIn(r, "issuer\0client")
    pending.save({"device_code": "dc", "user_code": "ABCD-EFGH",
                  "verification_uri": "https://idp/device", "expires_at": clock.wall + 300})
    assert pending.load()["user_code"] == "ABCD-EFGH"
    assert "valid 300s more" in pending.not_finished(pending.load(), "idp", "login").message
    clock.wall += 301
    assert pending.load() is None and r.state.docs == {}  # forgotten once expired


def test_secret_references_read_the_runs_environment_not_the_process(monkeypatch):
    from credhelper import config
    from credhelper.providers.oidc import OidcProvider

    monkeypatch.delenv("SVC_SECRET", raising=False)
    env = {"CREDHELPER_OIDC_ISSUER": "https://idp.example", "CREDHELPER_OIDC_CLIENT_ID": "c",
           "CREDHELPER_OIDC_CLIENT_SECRET": "env:SVC_SECRET", "HOME": "/nonexistent",
           "XDG_CONFIG_HOME": "/nonexistent", "XDG_CONFIG_DIRS": "/nonexistent"}
    provider = OidcProvider(config.load(OidcProvider, env))
    clock = FakeClock()
    assert provider.client_secret(request(clock, {"SVC_SECRET": "from-the-run"})) == "from-the-run"
    with pytest.raises(ConfigError, match="SVC_SECRET"):
        provider.client_secret(request(clock, {}))
