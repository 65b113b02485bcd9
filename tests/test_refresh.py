"""Refresh the way the app asks, through real processes with the counting backend:
``mid-session-refresh`` and ``--force-refresh`` take a new credential, a storm of them
costs one fetch, and every run ends inside the app's time budget.

The real backends repeat the essentials against their services (tests/vault,
tests/oidc, tests/aws, tests/test_keyring.py)."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from conftest import CANARY, assert_failure, fetches, run

NEW = CANARY + "-rotated"


def _mid_session(env: dict) -> dict:
    return {**env, "CLAUDE_HELPER_CONTEXT": "mid-session-refresh"}


@pytest.fixture
def rotating_env(counting_env, tmp_path):
    """The counting backend serving the value in a file, which a test rotates."""
    value = tmp_path / "backend-value"
    value.write_text(CANARY)
    counting_env["CREDHELPER_COUNTING_VALUE_FILE"] = str(value)
    counting_env["ROTATE"] = str(value)
    return counting_env


def rotate(env: dict) -> None:
    with open(env["ROTATE"], "w") as f:
        f.write(NEW)


def test_mid_session_refresh_fetches_a_new_credential(rotating_env):
    rotating_env["CREDHELPER_DEFAULTS_REFRESH_GRACE"] = "0s"
    assert run("counting", rotating_env).stdout == f"{CANARY}\n".encode()
    rotate(rotating_env)  # the backend rotated the secret
    # An ordinary run still serves the cached entry (it is fresh) ...
    assert run("counting", rotating_env).stdout == f"{CANARY}\n".encode()
    # ... a mid-session refresh does not: the app gave up on that one.
    p = run("counting", _mid_session(rotating_env))
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{NEW}\n".encode()
    assert [line.split()[1] for line in fetches(rotating_env)] == ["no", "mid-session-refresh"]
    # The new entry is cached for everyone else.
    assert run("counting", rotating_env).stdout == f"{NEW}\n".encode()
    assert len(fetches(rotating_env)) == 2


def test_force_refresh_flag_fetches_a_new_credential(rotating_env):
    rotating_env["CREDHELPER_DEFAULTS_REFRESH_GRACE"] = "0s"
    assert run("counting", rotating_env).returncode == 0
    rotate(rotating_env)
    p = run(["counting", "--force-refresh"], rotating_env)
    assert p.stdout == f"{NEW}\n".encode(), p.stderr
    p = run(["counting", "--debug", "--force-refresh"], rotating_env)
    assert p.returncode == 0 and len(fetches(rotating_env)) == 3
    assert "forced refresh" in p.stderr


def test_an_entry_fetched_within_refresh_grace_counts_as_refreshed(rotating_env):
    assert run("counting", rotating_env).returncode == 0  # default grace: 10s
    rotate(rotating_env)
    for _ in range(3):
        p = run("counting", _mid_session(rotating_env))
        assert p.stdout == f"{CANARY}\n".encode(), p.stderr
    assert len(fetches(rotating_env)) == 1


def test_refresh_grace_runs_out(rotating_env):
    rotating_env["CREDHELPER_DEFAULTS_REFRESH_GRACE"] = "1s"
    assert run("counting", rotating_env).returncode == 0
    rotate(rotating_env)
    assert run("counting", _mid_session(rotating_env)).stdout == f"{CANARY}\n".encode()
    time.sleep(1.2)
    assert run("counting", _mid_session(rotating_env)).stdout == f"{NEW}\n".encode()
    assert len(fetches(rotating_env)) == 2


def test_a_storm_of_mid_session_refreshes_costs_one_fetch(rotating_env):
    """10 sessions refresh at once after a rotation: one fetch, all print the new value."""
    rotating_env["CREDHELPER_DEFAULTS_REFRESH_GRACE"] = "5s"
    rotating_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "slow"  # 0.5 s: they really overlap
    assert run("counting", rotating_env).returncode == 0
    time.sleep(5.1)  # the first entry is now older than refresh_grace
    rotate(rotating_env)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: run("counting", _mid_session(rotating_env)), range(10)))
    assert [p.returncode for p in results] == [0] * 10, [p.stderr for p in results]
    assert {p.stdout for p in results} == {f"{NEW}\n".encode()}
    assert len(fetches(rotating_env)) == 2  # the first run's fetch, and one for the storm


def test_forced_refresh_never_signs_in(counting_env):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "login"
    p = run("counting", _mid_session(counting_env))
    assert_failure(p, 3, "mid-session-refresh context")


def test_forced_refresh_serves_the_valid_entry_when_the_backend_is_down(counting_env):
    counting_env["CREDHELPER_DEFAULTS_REFRESH_GRACE"] = "0s"
    assert run("counting", counting_env).returncode == 0
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "unavailable"
    p = run("counting", _mid_session(counting_env))
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode()
    assert "serving the cached credential" in p.stderr


def test_a_run_ends_two_seconds_before_the_app_would_kill_it(counting_env):
    """timeout is 30 s, but the app allows 5 s: the run gives up by 3 s, saying why."""
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "hang"
    counting_env["CREDHELPER_DEFAULTS_APP_TIMEOUT"] = "5s"
    started = time.monotonic()
    p = run("counting", counting_env)
    took = time.monotonic() - started
    assert_failure(p, 4, "time budget", "app_timeout")
    assert took < 5 - 2 + 0.5, took  # start-up included
    assert took > 2.5, took  # it used the budget it had


def test_timeout_still_bounds_a_run_inside_the_budget(counting_env):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "hang"
    counting_env["CREDHELPER_DEFAULTS_TIMEOUT"] = "1s"
    started = time.monotonic()
    p = run("counting", counting_env)
    assert_failure(p, 4, "1s deadline")
    assert time.monotonic() - started < 3.5


def test_app_timeout_out_of_the_apps_range_is_a_configuration_error(counting_env):
    counting_env["CREDHELPER_DEFAULTS_APP_TIMEOUT"] = "11m"
    p = run("counting", counting_env)
    assert_failure(p, 2, "app_timeout", "CREDHELPER_DEFAULTS_APP_TIMEOUT", "600s")


def test_forced_refresh_that_needs_a_person_exits_3_even_with_a_valid_entry(counting_env):
    """The app gave up on the cached credential: handing it back would hide that only a
    new sign-in helps (an unreachable backend still gets the stale entry, above)."""
    counting_env["CREDHELPER_DEFAULTS_REFRESH_GRACE"] = "0s"
    assert run("counting", counting_env).returncode == 0
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "login"
    assert run("counting", counting_env).returncode == 0  # an ordinary run: cache hit
    assert_failure(run("counting", _mid_session(counting_env)), 3, "a person must sign in")
