"""The app's time budget: read from the app's own managed preferences (its macOS profile
domain and Windows policy key, driven through the same seams as test_managed.py), else
``app_timeout``; shown with its source by doctor and status, with a warning when
``timeout`` or ``login_timeout`` would outlast it."""

from __future__ import annotations

import json
import plistlib

import pytest
from conftest import assert_failure, run

from credhelper import budget, managed

from .test_managed import KEYRING, FakeWinreg, load, mac, win  # noqa: F401  (fixtures)


def write_app_plist(root, values: dict, user: bool = False) -> str:
    path = (root / "alice" if user else root) / f"{managed.APP_DOMAIN}.plist"
    path.write_bytes(plistlib.dumps(values))
    return str(path)


def test_the_apps_timeout_and_ttl_come_from_its_macos_profile(mac, base_env, tmp_path):
    root = tmp_path / "Managed Preferences"
    path = write_app_plist(root, {budget.TIMEOUT_KEY: "120", budget.TTL_KEY: "900"})
    b = budget.read(load({**base_env, "CREDHELPER_DEFAULTS_APP_TIMEOUT": "30s"}))
    assert (b.timeout, b.ttl, b.usable) == (120.0, 900.0, 118.0)
    assert path in b.timeout_source and budget.TIMEOUT_KEY in b.timeout_source
    write_app_plist(root, {budget.TIMEOUT_KEY: 45}, user=True)  # the user's profile wins
    assert budget.read(load(base_env)).timeout == 45.0


def test_a_value_the_app_would_refuse_falls_back_to_app_timeout(mac, base_env, tmp_path):
    write_app_plist(tmp_path / "Managed Preferences", {budget.TIMEOUT_KEY: "9000"})
    b = budget.read(load({**base_env, "CREDHELPER_DEFAULTS_APP_TIMEOUT": "30s"}))
    assert b.timeout == 30.0 and "app_timeout" in b.timeout_source


def test_the_apps_timeout_from_the_windows_policy_hklm_wins(win, base_env):
    win.set("HKCU", managed.APP_POLICY_KEY, budget.TIMEOUT_KEY, "200")
    assert budget.read(load(base_env)).timeout == 200.0
    win.set("HKLM", managed.APP_POLICY_KEY, budget.TIMEOUT_KEY, "90")
    b = budget.read(load(base_env))
    assert b.timeout == 90.0 and "HKLM" in b.timeout_source
    assert b.ttl == budget.APP_DEFAULT_TTL and b.ttl_source == "the app's default"


def test_without_managed_preferences_app_timeout_stands_in(base_env):
    b = budget.read(load(base_env))
    assert b.timeout == 60.0 and b.timeout_source == "app_timeout (default)"


@pytest.mark.parametrize("started", [0.0, 1000.0])
def test_deadlines_end_before_the_app_kills_the_run(base_env, started):
    conf = load({**base_env, "CREDHELPER_DEFAULTS_APP_TIMEOUT": "8s",
                 "CREDHELPER_DEFAULTS_TIMEOUT": "30s"})
    d = budget.Deadlines.compute(started, conf, budget.read(conf))
    assert d.hard == started + 6.0  # 2 s before the app's 8
    assert d.network == d.sign_in == started + 5.0  # the watchdog's second fits before it
    by_hand = budget.Deadlines.by_hand(started, conf)  # `login`: no app is waiting
    assert by_hand.sign_in == started + budget.BY_HAND_SIGN_IN


def test_doctor_shows_the_budget_and_warns_about_longer_timeouts(base_env, keyring_env):
    env = {**keyring_env, "CREDHELPER_DEFAULTS_APP_TIMEOUT": "20s",
           "CREDHELPER_KEYRING_LOGIN_TIMEOUT": "5m"}
    p = run(["credhelper", "doctor", "-p", "keyring", "--json"], env)
    [section] = [s for s in json.loads(p.stdout)["sections"] if s["title"] == "provider keyring"]
    found = {c["check"]: c for c in section["checks"]}
    assert found["time budget"]["status"] == "ok"
    assert "20s from app_timeout (CREDHELPER_DEFAULTS_APP_TIMEOUT" in found["time budget"]["detail"]
    assert found["timeout"]["status"] == "warn" and "at most 18s" in found["timeout"]["detail"]
    assert found["login_timeout"]["status"] == "warn"
    status = run(["credhelper-keyring", "status"], env).stdout.decode()
    assert "budget:    time budget: 20s from app_timeout" in status
    assert "timeout: 30s" in status and "(warning)" in status


def test_app_timeout_out_of_range_in_a_file_names_the_file(base_env, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[keyring]\nservice = "s"\nusername = "u"\napp_timeout = "0s"\n')
    p = run(["credhelper-keyring"], {**base_env, "CREDHELPER_CONFIG": str(cfg)})
    assert_failure(p, 2, "app_timeout", str(cfg))


def test_doctor_compares_the_deployed_ttl_with_the_declared_lifetime(mac, base_env, tmp_path):
    """Nothing cached yet: the lifetime the backend declares (a presigned AWS identity
    lives presign_lifetime, 15 min) against the TTL the app's profile deploys."""
    import io

    from credhelper import report
    from credhelper.cli import App

    write_app_plist(tmp_path / "Managed Preferences", {budget.TTL_KEY: "3600"})
    env = {**base_env, "CREDHELPER_AWS_AUDIENCE": "https://gateway.example"}
    app = App("credhelper", env, io.StringIO(), io.StringIO(), lambda: 1.9e9, False)
    section = report._doctor_provider(app, "aws")
    found = {c["check"]: c for c in section["checks"]}
    lifetime = found["credential lifetime"]
    assert lifetime["status"] == "warn", lifetime
    assert "15m ([aws] presign_lifetime = 900s)" in lifetime["detail"]
    assert "inferenceCredentialHelperTtlSec" in lifetime["detail"] and "at most 600" in lifetime["detail"]
    assert budget.TTL_KEY in lifetime["detail"] and "Managed Preferences" in lifetime["detail"]
    write_app_plist(tmp_path / "Managed Preferences", {budget.TTL_KEY: "600"})
    found = {c["check"]: c for c in report._doctor_provider(app, "aws")["checks"]}
    assert found["credential lifetime"]["status"] == "ok"
