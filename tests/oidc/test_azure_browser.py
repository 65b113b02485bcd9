"""credhelper-azure's browser sign-in: MSAL's acquire_token_interactive against the real
OpenID provider (MSAL's oidc_authority, as in test_azure.py), the person's step played
through the provider's own pages.

MSAL opens the authorization URL with Python's webbrowser module; the helper makes the
shared presenter that module's first browser, so the page opens with ``browser_command``
where one is set, else the system's (xdg-open here, a recorder). The browser command
here is a small script that starts a driver doing by HTTP what a browser and the person
would do: GET the authorization URL, log in, consent, and submit the provider's form_post
page to MSAL's listener on http://localhost:<port>. The driver records what it was handed
and what the listener answered. The happy path also runs in a real headless Chromium
(tests/oidc/chromium_browser.py as browser_command).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import assert_failure, run, script

from credhelper import jwt

from .chromium_browser import log_tail
from .idpkit import PASSWORD, approve, user_code_from
from .test_azure import msal_files
from .test_oidc import drop_cached, interactive, token_of

DRIVER = r'''
import json, re, sys
from urllib.parse import urljoin

import requests

url, record, action, user, password, ca = sys.argv[1:7]
entry = {"url": url}
if "/auth?" not in url:  # a device code's verification page: only recorded
    action = "ignore"
try:
    if action != "ignore":
        s = requests.Session()
        s.trust_env = False  # no proxy; the provider's CA only
        page = s.get(url, verify=ca, timeout=10)
        for _ in range(4):
            login = re.search(r'action="([^"]+/login)"', page.text)
            consent = re.search(r'action="([^"]+/(confirm|abort))"', page.text)
            if login:
                page = s.post(urljoin(page.url, login.group(1)), verify=ca, timeout=10,
                              data={"login": user, "password": password})
            elif consent:
                which = "abort" if action == "deny" else "confirm"
                target = re.search(rf'action="([^"]+/{which})"', page.text).group(1)
                page = s.post(urljoin(page.url, target), verify=ca, timeout=10)
            else:
                break
        # The provider's form_post page: a form the browser's script submits to MSAL.
        form = re.search(r'<form method="post" action="([^"]+)"', page.text)
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                                 page.text))
        entry["form_action"] = form.group(1) if form else None
        entry["fields"] = sorted(fields)
        if form:
            answer = s.post(form.group(1), data=fields, timeout=10)
            entry["listener"] = [answer.status_code, answer.text[:200]]
        else:
            entry["page"] = page.text[:500]
except Exception as exc:
    entry["failed"] = repr(exc)
with open(record, "a") as f:
    f.write(json.dumps(entry) + "\n")
'''


@pytest.fixture
def browser_env(azure_env, idp, tmp_path):
    """azure_env for the client "msal" (redirect http://localhost), with browser_command
    set to the driver; ``opened(env)`` reads what it did. DRIVER_ACTION: approve, deny,
    ignore."""
    driver = tmp_path / "browser_driver.py"
    driver.write_text(DRIVER)
    record = tmp_path / "browser.jsonl"
    browser = tmp_path / "browser"
    browser.write_text(
        "#!/bin/sh\n"
        f'"{sys.executable}" "{driver}" "$1" "{record}" "${{DRIVER_ACTION:-approve}}" '
        f'"${{DRIVER_USER:-dave}}" "{PASSWORD}" "{idp.ca_pem}" >>"{tmp_path}/driver.log" 2>&1 &\n')
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    env = {**azure_env, "CREDHELPER_AZURE_BROWSER_COMMAND": str(browser),
           "BROWSER_RECORD": str(record), "DRIVER": str(driver),
           "CREDHELPER_AZURE_CLIENT_ID": "msal"}
    for client in ("msal", "msal-short"):
        out = run(["credhelper-azure", "logout"], {**env, "CREDHELPER_AZURE_CLIENT_ID": client})
        assert out.returncode == 0, out.stderr
    return env


def opened(env, wait: bool = False) -> list[dict]:
    """What the driver did, one entry per time MSAL's sign-in page was opened (the
    presenter opens a device code's verification page with browser_command too).
    ``wait``: the driver runs on detached from the helper; give it time to record."""
    deadline = time.monotonic() + (15 if wait else 0)
    while wait and not os.path.exists(env["BROWSER_RECORD"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with open(env["BROWSER_RECORD"]) as f:
            entries = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
    return [e for e in entries if "/auth?" in e["url"]]


@pytest.mark.parametrize("driver", ["http", "chromium"])
def test_browser_sign_in_then_silent_second_run(browser_env, idp, driver, request):
    """The pages driven over HTTP (DRIVER), and in a real headless Chromium, which runs
    the provider's form_post page's own script to post the answer to MSAL's listener."""
    env = {**browser_env, "CREDHELPER_AZURE_PROMPT": "consent"}
    if driver == "chromium":
        env.update(CREDHELPER_AZURE_BROWSER_COMMAND=request.getfixturevalue("chromium"),
                   BROWSER_USER="dave")
    stats = idp.stats()
    started = time.monotonic()
    first = run(["credhelper-azure"], interactive(env))
    took = time.monotonic() - started
    token = token_of(first)
    assert jwt.decode(token)[1]["sub"] == "dave"
    # No terminal: a line for the app's log, and a notification saying who is asking.
    assert f"waiting for a sign-in at {idp.issuer} in the browser" in first.stderr
    with open(env["PRESENTER_RECORD"]) as f:
        shown = f.read()
    assert f"notify-send --app-name=credhelper credhelper-azure Sign in at {idp.issuer}" in shown
    [entry] = opened(env, wait=True)
    # What MSAL sends: http://localhost and a free port, no path; PKCE; the answer posted.
    query = {k: v[0] for k, v in parse_qs(urlsplit(entry["url"]).query).items()}
    assert re.fullmatch(r"http://localhost:\d+", query["redirect_uri"]), query
    assert query["response_mode"] == "form_post" and query["code_challenge_method"] == "S256"
    assert query["prompt"] == "consent" and "offline_access" in query["scope"].split()
    if driver == "http":
        assert entry["form_action"] == query["redirect_uri"] and "code" in entry["fields"]
        assert entry["listener"][0] == 200 and "Authentication complete" in entry["listener"][1]
    else:  # the browser ends on MSAL's page, where the provider's page posted the answer
        assert "error" not in entry, (entry, log_tail(env))
        assert entry["last"].rstrip("/") == query["redirect_uri"]
        assert "Authentication complete" in entry["text"], entry
    after = idp.stats()
    assert after.get("authorization_code:200", 0) == stats.get("authorization_code:200", 0) + 1
    assert after.get("device_authorization", 0) == stats.get("device_authorization", 0)
    assert msal_files(env) == []  # MSAL's cache went to the keyring, as after a device code

    # A second run, in the background, the helper's own cache gone: MSAL's cache answers,
    # no browser, no request to the provider.
    drop_cached(env, "azure")
    again = run(["credhelper-azure", "--debug"], {**env, "CLAUDE_HELPER_CONTEXT": "background"})
    assert token_of(again) == token and "token from cache" in again.stderr
    assert len(opened(env)) == 1 and idp.stats() == after
    status = run(["credhelper-azure", "status"], env).stdout.decode()
    assert "account:   dave" in status and "refresh token: present" in status
    print(f"browser sign-in, whole run: {took:.2f}s")


def test_the_browser_sign_in_refresh_token_renews_silently(browser_env, idp):
    env = {**browser_env, "CREDHELPER_AZURE_CLIENT_ID": "msal-short",
           "CREDHELPER_AZURE_PROMPT": "consent", "CREDHELPER_AZURE_MIN_VALIDITY": "1s"}
    first = token_of(run(["credhelper-azure"], interactive(env)))
    time.sleep(max(0.0, jwt.expiry(first) - time.time()) + 0.5)
    before = idp.refreshes()
    second = run(["credhelper-azure"], {**env, "CLAUDE_HELPER_CONTEXT": "mid-session-refresh"})
    assert token_of(second) != first and idp.refreshes() == before + 1
    assert len(opened(env)) == 1


@pytest.mark.parametrize("context", ["background", "mid-session-refresh", "setup-test"])
def test_other_contexts_exit_3_without_a_browser(browser_env, idp, context):
    stats = idp.stats()
    started = time.monotonic()
    proc = run(["credhelper-azure"], {**browser_env, "CLAUDE_HELPER_CONTEXT": context})
    assert_failure(proc, 3, "nobody has signed in", f"({context} context)")
    assert time.monotonic() - started < 5
    assert opened(browser_env) == [] and idp.stats() == stats


def test_a_browser_sign_in_not_finished_in_time_exits_3(browser_env, idp):
    # (login_timeout is never shorter than timeout, the bound of every network call)
    env = interactive(browser_env, DRIVER_ACTION="ignore", CREDHELPER_AZURE_TIMEOUT="5s",
                      CREDHELPER_AZURE_LOGIN_TIMEOUT="17s")
    started = time.monotonic()
    proc = run(["credhelper-azure"], env)
    took = time.monotonic() - started
    assert_failure(proc, 3, "was not finished within this run's time", 'flow = "device_code"')
    assert len(opened(env)) == 1 and 10 < took < 17 + 1, took  # MSAL's own timeout, in time
    # Too little time left: no browser at all.
    short = run(["credhelper-azure"], {**env, "CREDHELPER_AZURE_LOGIN_TIMEOUT": "5s"})
    assert_failure(short, 3, "too little of this run's time is left")
    assert len(opened(env)) == 1
    print(f"unfinished browser sign-in ended after {took:.2f}s (login_timeout 17s)")


def test_declined_at_consent_by_login_exits_5(browser_env, idp):
    env = {**browser_env, "DRIVER_ACTION": "deny", "CREDHELPER_AZURE_PROMPT": "consent"}
    proc = run(["credhelper-azure", "login"], env)
    assert_failure(proc, 5, "was declined")
    assert len(opened(env)) == 1 and "listener" in opened(env)[0]
    ok = run(["credhelper-azure", "login"], {**env, "DRIVER_ACTION": "approve"})
    assert ok.returncode == 0 and ok.stdout == b"", ok.stderr
    assert token_of(run(["credhelper-azure"], {**env, "CLAUDE_HELPER_CONTEXT": "background"}))


def test_a_pending_device_sign_in_is_finished_before_any_browser(browser_env, idp):
    device = interactive(browser_env, CREDHELPER_AZURE_FLOW="device_code",
                         CREDHELPER_AZURE_TIMEOUT="3s", CREDHELPER_AZURE_LOGIN_TIMEOUT="3s")
    first = run(["credhelper-azure"], device)
    assert_failure(first, 3, "is not finished yet")
    code = user_code_from(first.stderr)
    approve(idp, code, user="erin")
    # Now browser sign-in is what this run would pick, but the pending sign-in comes first.
    second = run(["credhelper-azure"], interactive(browser_env))
    assert jwt.decode(token_of(second))[1]["sub"] == "erin"
    assert opened(browser_env) == []


def test_which_flow_and_doctor(browser_env, idp):
    doctor = run(["credhelper", "doctor", "-p", "azure"], browser_env).stdout.decode()
    assert 'sign-in flow: browser (flow = "auto" and a browser can open here)' in doctor
    # No browser_command, no display (a headless Linux): the device code, on the desktop.
    env = interactive({k: v for k, v in browser_env.items()
                       if k != "CREDHELPER_AZURE_BROWSER_COMMAND"},
                      CREDHELPER_AZURE_TIMEOUT="3s", CREDHELPER_AZURE_LOGIN_TIMEOUT="3s")
    doctor = run(["credhelper", "doctor", "-p", "azure"], env).stdout.decode()
    assert 'sign-in flow: device code (flow = "auto" and no browser can open here)' in doctor
    proc = run(["credhelper-azure"], env)
    assert_failure(proc, 3, "is not finished yet")
    assert opened(browser_env) == [] and user_code_from(proc.stderr)
    # flow = "device_code" chosen even where a browser can open.
    forced = interactive(browser_env, CREDHELPER_AZURE_FLOW="device_code",
                         CREDHELPER_AZURE_TIMEOUT="3s", CREDHELPER_AZURE_LOGIN_TIMEOUT="3s")
    assert_failure(run(["credhelper-azure"], forced), 3, "is not finished yet")
    assert opened(browser_env) == []


def test_the_system_browser_on_a_linux_desktop(browser_env, idp, tmp_path):
    """No browser_command: on a desktop (DISPLAY, xdg-open on PATH) the presenter opens
    MSAL's page with xdg-open (a recorder here); the test then plays browser and person."""
    env = interactive({k: v for k, v in browser_env.items()
                       if k != "CREDHELPER_AZURE_BROWSER_COMMAND"},
                      DISPLAY=":0", CREDHELPER_AZURE_PROMPT="consent")
    proc = subprocess.Popen([script("credhelper-azure")], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url, deadline = None, time.monotonic() + 30
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            with open(env["PRESENTER_RECORD"]) as f:
                found = re.search(r"^xdg-open (https://\S+/auth\?\S+)$", f.read(), re.M)
        except FileNotFoundError:
            found = None
        url = found and found.group(1)
    assert url, proc.communicate(timeout=5)
    subprocess.run([sys.executable, env["DRIVER"], url, env["BROWSER_RECORD"], "approve",
                    "frank", PASSWORD, idp.ca_pem], check=True, timeout=30)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert jwt.decode(out.decode().strip())[1]["sub"] == "frank"
    assert opened(browser_env)[0]["listener"][0] == 200
