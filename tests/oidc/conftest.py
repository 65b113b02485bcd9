"""Fixtures for the oidc and azure backends: one real OpenID provider (oidc-provider on
Node, https with a trustme CA) for the session, and a helper environment per test whose
desktop tools (xdg-open, notify-send) are recorders, so no browser ever opens unless a
test sets one: ``chromium`` (a real headless Chromium, tests/oidc/chromium_browser.py).

A fixture that cannot start the provider, or Chromium, fails the tests (pytest.fail), never
skips them.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile

import pytest
from conftest import CANARY, run

from .idpkit import IdP

SVC_SECRET = "svc-" + CANARY

RECORDER = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> "$PRESENTER_RECORD"
"""


@pytest.fixture(scope="session")
def idp(tmp_path_factory):
    server = IdP(tmp_path_factory.mktemp("idp"), SVC_SECRET, short_ttl=5)
    try:
        server.start()
    except Exception as exc:  # node, npm or the package missing must fail loudly in CI
        pytest.fail(f"cannot start the OpenID provider: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium(idp) -> str:
    """The ``browser_command`` that signs in with a real headless Chromium, once it has
    been seen to start here (scripts/test installs chromium, chromium-driver and
    libnss3-tools; selenium is in the test extra)."""
    from . import chromium_browser

    with tempfile.TemporaryDirectory(prefix="chromium-check-") as work:
        try:
            chromium_browser.start(work, idp.ca_pem, os.path.join(work, "driver.log")).quit()
        except Exception as exc:
            pytest.fail(f"cannot start headless Chromium: {exc.__class__.__name__}: {exc}")
    return f"{sys.executable} {chromium_browser.__file__}"


@pytest.fixture
def idp_env(base_env, idp, tmp_path):
    """base_env trusting the provider's CA, with recording desktop tools first on PATH."""
    return desktop_env(base_env, idp, tmp_path)


def desktop_env(base_env, idp, tmp_path) -> dict:
    """``base_env`` trusting ``idp``'s CA, with recording desktop tools first on PATH."""
    env = dict(base_env)
    bin_dir = tmp_path / "desktop-bin"
    bin_dir.mkdir()
    for tool in ("xdg-open", "notify-send", "zenity", "gio"):
        path = bin_dir / tool
        path.write_text(RECORDER)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["PRESENTER_RECORD"] = str(tmp_path / "presented.txt")
    env["REQUESTS_CA_BUNDLE"] = idp.ca_pem
    env.pop("SSL_CERT_FILE", None)
    return env


@pytest.fixture
def oidc_env(idp_env, idp):
    env = dict(idp_env)
    env["CREDHELPER_OIDC_ISSUER"] = idp.issuer
    env["CREDHELPER_OIDC_CLIENT_ID"] = "cli"
    return env


@pytest.fixture
def azure_env(idp_env, idp, keyring_session):
    env = dict(idp_env)
    env["DBUS_SESSION_BUS_ADDRESS"] = keyring_session["DBUS_SESSION_BUS_ADDRESS"]
    env["XDG_RUNTIME_DIR"] = keyring_session["XDG_RUNTIME_DIR"]
    env["CREDHELPER_AZURE_AUTHORITY"] = idp.issuer
    env["CREDHELPER_AZURE_CLIENT_ID"] = "cli"
    env["CREDHELPER_AZURE_SCOPES"] = "gateway"
    # The keyring outlives a test: start each one signed out, through the product's logout.
    for client in ("cli", "cli-short"):
        out = run(["credhelper-azure", "logout"], {**env, "CREDHELPER_AZURE_CLIENT_ID": client})
        assert out.returncode == 0, out.stderr
    return env
