"""Device authorization answers with an ``interval`` or ``expires_in`` no client should
take as it is, and ``slow_down``, on the real OpenID provider.

oidc-provider always answers sane numbers (idp.mjs sets interval 1) and never answers
slow_down, so the real answers are edited on their way back by the FaultProxy of
test_oidc_faults.py's rig (``Fault.edit``: NaN, a string, a negative number, 1e999, which
Python reads as infinity), and slow_down is injected on the token endpoint
(``Fault.status``). Nobody approves: an interactive run polls until its sign-in deadline
(2 s before the app's budget), then exits 3 keeping the sign-in for the next run.

The numbers are clamped (device_flow.bounded): an interval to 1..60 s (5 s when it is no
finite number), a code lifetime to 10 s..1 h (600 s when it is no finite number), and
slow_down adds 5 s (RFC 8628 section 3.5). Before, a NaN interval polled in a tight loop
(109 polls in 5 s), a string exited 1, a negative interval polled every 0.2 s.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import assert_failure
from faultproxy import Fault

from .conftest import desktop_env
from .test_azure_faults import azure_env
from .test_oidc_faults import TOKEN, proxy, rig, timed  # noqa: F401  (fixtures: this module's own rig)

DEVICE = "/device/auth"
# Numbers as they appear in the JSON text of the answer.
ODD = {"nan": "NaN", "string": '"abc"', "negative": "-5", "huge": "1e999"}


def person_env(base_env, rig, tmp_path, budget: str) -> dict:
    """An interactive run of the public client "cli" against the provider behind the proxy,
    whose app allows it ``budget``."""
    env = desktop_env(base_env, rig.server, tmp_path)
    env.update({"CREDHELPER_OIDC_ISSUER": rig.server.issuer, "CREDHELPER_OIDC_CLIENT_ID": "cli",
                "CLAUDE_HELPER_CONTEXT": "interactive",
                "CREDHELPER_DEFAULTS_APP_TIMEOUT": budget})
    return env


def answer_with(name: str, raw: str) -> Fault:
    """The provider's device authorization answer with ``name`` set to the JSON text ``raw``."""

    def change(doc: dict) -> bytes:
        assert "device_code" in doc, doc
        doc[name] = "@@"
        return json.dumps(doc).replace('"@@"', raw).encode()

    return Fault.edit(change)


def polls(proxy) -> list[float]:
    """When each token request (a poll) arrived."""
    return proxy.arrived(TOKEN)


@pytest.mark.parametrize("kind", ODD)
def test_an_odd_interval_polls_at_a_sane_pace_and_exits_3(base_env, rig, proxy, tmp_path, kind):
    # 8 s budget: the sign-in ends 2 s before it, so the polling lasts under 6 s.
    env = person_env(base_env, rig, tmp_path, "8s")
    proxy.plan(answer_with("interval", ODD[kind]), match=DEVICE)
    proc, elapsed = timed(["credhelper-oidc"], env)
    assert_failure(proc, 3, "is not finished yet", "the next run completes this sign-in")
    assert proxy.outcomes(DEVICE) == ["edited 200"]
    assert elapsed < 8, elapsed
    # A negative interval is the shortest allowed (1 s); NaN, a string or infinity mean
    # "not a number": the RFC's default of 5 s.
    interval = 1.0 if kind == "negative" else 5.0
    times = polls(proxy)
    assert 1 <= len(times) <= 6 / interval + 1, (kind, len(times))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap >= interval - 0.2 for gap in gaps), gaps


@pytest.mark.parametrize("kind", ["nan", "string", "huge"])
def test_an_expires_in_that_is_no_number_counts_as_the_default(base_env, rig, proxy, tmp_path,
                                                                kind):
    env = person_env(base_env, rig, tmp_path, "6s")
    proxy.plan(answer_with("expires_in", ODD[kind]), match=DEVICE)
    proc, elapsed = timed(["credhelper-oidc"], env)
    assert_failure(proc, 3, "is not finished yet")
    left = int(re.search(r"stays valid (\d+)s more", proc.stderr).group(1))
    assert 590 <= left <= 600, proc.stderr  # the default lifetime, 600 s
    assert 1 <= len(polls(proxy)) <= 5 and elapsed < 6


def test_a_negative_expires_in_is_the_shortest_code_lifetime(base_env, rig, proxy, tmp_path):
    # 10 s, the shortest lifetime allowed, ends before the 20 s budget: the code expires.
    env = person_env(base_env, rig, tmp_path, "20s")
    proxy.plan(answer_with("expires_in", ODD["negative"]), match=DEVICE)
    proc, elapsed = timed(["credhelper-oidc"], env)
    assert_failure(proc, 3, "the sign-in code expired before anyone used it")
    times = polls(proxy)
    assert 9 <= times[-1] - times[0] <= 11 and 8 <= len(times) <= 12, times
    assert elapsed < 16, elapsed


def test_slow_down_adds_five_seconds_to_the_interval(base_env, rig, proxy, tmp_path):
    # interval 1 s (idp.mjs); the first poll is told slow_down: 6 s from then on.
    env = person_env(base_env, rig, tmp_path, "16s")
    proxy.plan(Fault.status(400, body={"error": "slow_down"}), match=TOKEN)
    proc, _ = timed(["credhelper-oidc"], env)
    assert_failure(proc, 3, "is not finished yet")
    times = polls(proxy)
    assert proxy.outcomes(TOKEN)[0] == "injected 400"
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) >= 1 and all(5.9 <= gap <= 7.0 for gap in gaps), gaps


# ---------------------------------------------------------------- Azure (MSAL)


@pytest.fixture
def azure(base_env, rig, proxy, keyring_session, tmp_path):
    env = azure_env(base_env, rig.server, keyring_session, tmp_path)
    proxy.reset()  # forget the sign-outs
    return {**env, "CLAUDE_HELPER_CONTEXT": "interactive"}


def test_azure_negative_interval_polls_once_a_second(azure, proxy):
    env = {**azure, "CREDHELPER_DEFAULTS_APP_TIMEOUT": "8s"}
    proxy.plan(answer_with("interval", ODD["negative"]), match=DEVICE)
    proc, elapsed = timed(["credhelper-azure"], env)
    assert_failure(proc, 3, "is not finished yet")
    times = polls(proxy)
    assert 1 <= len(times) <= 7, times
    assert elapsed < 8, elapsed


@pytest.mark.parametrize("kind", ["nan", "string", "huge"])
def test_azure_interval_msal_cannot_read_exits_5_before_polling(azure, proxy, kind):
    # MSAL reads the answer itself (int(interval)) and refuses it: a clear exit 5, never a
    # traceback, and no poll.
    env = {**azure, "CREDHELPER_DEFAULTS_APP_TIMEOUT": "8s"}
    proxy.plan(answer_with("interval", ODD[kind]), match=DEVICE)
    proc, _ = timed(["credhelper-azure"], env)
    assert_failure(proc, 5, "starting the device code sign-in failed")
    assert polls(proxy) == []
