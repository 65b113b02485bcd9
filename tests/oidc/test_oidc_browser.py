"""grant = "authorization_code": the browser sign-in with PKCE in the normal run, against
the real OpenID provider. The person's step goes through the provider's own pages (login
form, consent form) driven over HTTP by tests/oidc/browser.py, which the helper starts as
its ``browser_command`` (the happy path also in a real headless Chromium,
tests/oidc/chromium_browser.py); the provider's redirect then lands on the helper's loopback
listener. Client "cli-exact" registers exact redirect URIs (idp.exact_redirects), so a
port the provider does not know is refused as it would be by any such provider."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import assert_failure, presented, run, script
from services import MINTED_SECRETS

from credhelper import jwt

from .chromium_browser import log_tail
from .idpkit import free_port, sign_in

HERE = Path(__file__).resolve().parent
BROWSER = f"{sys.executable} {HERE / 'browser.py'}"
BACKGROUND = ["mid-session-refresh", "scheduled-task", "setup-test", "background"]


@pytest.fixture
def browser_env(oidc_env, idp, tmp_path):
    """A helper that signs in with the authorization code on client cli-exact's first
    registered port, with the scripted browser; run without a terminal (as the app does)."""
    return {**oidc_env, "CREDHELPER_OIDC_GRANT": "authorization_code",
            "CREDHELPER_OIDC_CLIENT_ID": "cli-exact",
            "CREDHELPER_OIDC_REDIRECT_PORTS": str(idp.exact_ports[0]),
            # oidc-provider grants offline_access only with prompt=consent (OIDC Core §11)
            "CREDHELPER_OIDC_PROMPT": "consent",
            "CREDHELPER_OIDC_BROWSER_COMMAND": BROWSER,
            "BROWSER_RECORD": str(tmp_path / "browser.jsonl"),
            "CLAUDE_HELPER_CONTEXT": "interactive"}


def browsed(env, wait: bool = False) -> list[dict]:
    """What the browser did, one entry per address opened. ``wait``: a browser runs on
    detached from the helper, and records once it has shown the helper's page and quit."""
    deadline = time.monotonic() + (15 if wait else 0)
    while wait and not os.path.exists(env["BROWSER_RECORD"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with open(env["BROWSER_RECORD"]) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def listening(port: int) -> socket.socket:
    """Another program's listener on ``port`` (SO_REUSEADDR: the port may be in TIME_WAIT
    after an earlier test's sign-in, which is no listener)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def token_of(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert out.endswith("\n") and out.count("\n") == 1, out
    return out[:-1]


@pytest.mark.parametrize("driver", ["http", "chromium"])
def test_pkce_on_a_fixed_port_through_the_providers_pages(browser_env, idp, driver, request):
    """The pages driven over HTTP (browser.py), and in a real headless Chromium."""
    env = {**browser_env, "CREDHELPER_OIDC_DISPLAY_NAME": "Test gateway", "BROWSER_USER": "erin"}
    if driver == "chromium":
        env["CREDHELPER_OIDC_BROWSER_COMMAND"] = request.getfixturevalue("chromium")
    start = time.monotonic()
    proc = run(["credhelper-oidc"], env)
    elapsed = time.monotonic() - start
    token = token_of(proc)
    assert jwt.decode(token)[1]["sub"] == "erin"
    [seen] = browsed(env, wait=True)
    assert "error" not in seen, (seen, log_tail(env))
    url = seen["url"]
    assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{idp.exact_ports[0]}%2Fcallback" in url
    assert "code_challenge_method=S256" in url and "code_challenge=" in url
    assert "prompt=consent" in url
    assert seen["last"].startswith(idp.exact_redirects[0] + "?code=")
    assert "You are signed in" in seen["text"]
    # No terminal: who is asking, in a notification and in one line for the app's log.
    assert "notify-send --app-name=credhelper credhelper-oidc for Test gateway Sign in at " \
           "127.0.0.1 in your browser (a window has opened)." in presented(env)
    assert "credhelper-oidc: waiting for a sign-in at 127.0.0.1 in the browser (opened with " \
           in proc.stderr
    assert "xdg-open" not in presented(env)  # browser_command, not the system's browser
    print(f"browser sign-in, end to end: {elapsed:.2f}s")
    # The refresh token was kept: a background run renews without anyone.
    before = idp.refreshes()
    bg = {**env, "CLAUDE_HELPER_CONTEXT": "background", "CREDHELPER_OIDC_MIN_VALIDITY": "2h"}
    assert token_of(run(["credhelper-oidc"], bg)) != token
    assert idp.refreshes() == before + 1
    assert len(browsed(env)) == 1


def test_no_forced_consent_by_default(browser_env, idp):
    env = {**browser_env}
    del env["CREDHELPER_OIDC_PROMPT"]
    proc = run(["credhelper-oidc"], env)
    token_of(proc)
    [seen] = browsed(env)
    assert "prompt=" not in seen["url"]
    # oidc-provider drops offline_access without consent: said, with what to set.
    assert 'the provider issued no refresh token' in proc.stderr
    assert 'set prompt = "consent"' in proc.stderr


def test_a_port_in_use_falls_through_to_the_next_listed_one(browser_env, idp):
    first, second = idp.exact_ports[:2]
    busy = listening(first)
    try:
        env = {**browser_env, "CREDHELPER_OIDC_REDIRECT_PORTS": f"{first} {second}"}
        token_of(run(["credhelper-oidc", "--debug"], env))
    finally:
        busy.close()
    [seen] = browsed(env)
    assert f"127.0.0.1%3A{second}%2Fcallback" in seen["url"]
    assert seen["last"].startswith(idp.exact_redirects[1] + "?code=")


def test_every_port_in_use_exits_4_naming_them(browser_env, idp):
    first = idp.exact_ports[0]
    busy = listening(first)
    try:
        proc = run(["credhelper-oidc"], browser_env)
    finally:
        busy.close()
    assert_failure(proc, 4, f"cannot listen on 127.0.0.1 for the sign-in's redirect: port {first}",
                   "redirect_ports")
    assert browsed(browser_env) == []


def test_localhost_as_registered(browser_env, idp):
    env = {**browser_env, "CREDHELPER_OIDC_REDIRECT_HOST": "localhost",
           "CREDHELPER_OIDC_REDIRECT_PORTS": str(idp.exact_ports[2])}
    token_of(run(["credhelper-oidc"], env))
    [seen] = browsed(env)
    assert seen["last"].startswith(idp.exact_redirects[2] + "?code=")


def test_a_wrong_redirect_uri_is_a_clear_configuration_error(browser_env, idp):
    unregistered = free_port()
    env = {**browser_env, "CREDHELPER_OIDC_REDIRECT_PORTS": f"{unregistered}"}
    start = time.monotonic()
    proc = run(["credhelper-oidc"], env)
    elapsed = time.monotonic() - start
    assert_failure(proc, 2, f"refused the redirect URI http://127.0.0.1:{unregistered}/callback",
                   "redirect_uri did not match any of the client's registered redirect_uris",
                   f"redirect_ports ({unregistered})", "redirect_host (127.0.0.1)")
    assert browsed(env) == [] and presented(env) == ""  # the person never saw a broken page
    assert elapsed < 10, elapsed
    print(f"wrong redirect URI refused in {elapsed:.2f}s")


def test_other_contexts_never_open_a_browser(browser_env, idp):
    for context in BACKGROUND:
        env = {**browser_env, "CLAUDE_HELPER_CONTEXT": context}
        start = time.monotonic()
        proc = run(["credhelper-oidc"], env)
        elapsed = time.monotonic() - start
        assert_failure(proc, 3, "nobody has signed in", f"({context} context)")
        assert elapsed < 3, (context, elapsed)
    assert browsed(browser_env) == [] and presented(browser_env) == ""


def test_a_sign_in_not_finished_in_the_budget_exits_3_and_says_it_cannot_carry_over(
        browser_env, idp):
    env = {**browser_env, "BROWSER_MODE": "ignore", "CREDHELPER_OIDC_LOGIN_TIMEOUT": "3s",
           "CREDHELPER_OIDC_TIMEOUT": "3s"}
    start = time.monotonic()
    proc = run(["credhelper-oidc"], env)
    elapsed = time.monotonic() - start
    assert_failure(proc, 3, "the browser sign-in at", "was not finished within",
                   "cannot be carried over to another run", "the next interactive run opens "
                   "the browser again")
    assert 2.5 < elapsed < 10, elapsed
    assert len(browsed(env)) == 1
    listening(idp.exact_ports[0]).close()  # the listener is gone with the run


def test_a_declined_sign_in_exits_5(browser_env):
    proc = run(["credhelper-oidc"], {**browser_env, "BROWSER_MODE": "deny"})
    assert_failure(proc, 5, "was declined")


def test_no_browser_and_no_terminal_exits_3_at_once(browser_env):
    env = {k: v for k, v in browser_env.items() if k != "CREDHELPER_OIDC_BROWSER_COMMAND"}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    proc = run(["credhelper-oidc"], env)
    assert_failure(proc, 3, "no browser can be opened here and there is no terminal")
    assert browsed(env) == []


def test_paste_mode_needs_a_terminal_to_show_the_address_on_too(browser_env):
    """Stdin a terminal but stderr a pipe: nobody would see the address to open."""
    import pty

    master, slave = pty.openpty()
    env = {**browser_env, "CREDHELPER_OIDC_PASTE": "true"}
    try:
        proc = subprocess.run([script("credhelper-oidc")], env=env, stdin=slave,
                              capture_output=True, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    proc.stderr = proc.stderr.decode()
    assert_failure(proc, 3, "no browser can be opened here and there is no terminal")


def test_a_browser_command_that_is_not_there_exits_2(browser_env):
    env = {**browser_env, "CREDHELPER_OIDC_BROWSER_COMMAND": "no-such-browser --new-window"}
    assert_failure(run(["credhelper-oidc"], env), 2,
                   "browser_command: no-such-browser was not found")


def test_bad_redirect_settings_exit_2(browser_env):
    for key, value, phrase in [("REDIRECT_PORTS", "80x", "is not a port number"),
                               ("REDIRECT_PORTS", "70000", "is not a port number"),
                               ("REDIRECT_HOST", "example.com", "is not one of"),
                               ("PROMPT", "consent always", "'always' is not one of")]:
        proc = run(["credhelper-oidc"], {**browser_env, f"CREDHELPER_OIDC_{key}": value})
        assert_failure(proc, 2, phrase)


def test_paste_mode_on_a_terminal(browser_env, idp):
    """No browser here: the address is printed, the person opens it elsewhere and pastes
    the address the browser ends on. Stdin and stderr are a pseudo-terminal."""
    import pty

    from .browser import drive

    env = {**browser_env, "CREDHELPER_OIDC_PASTE": "true"}
    del env["CLAUDE_HELPER_CONTEXT"]  # a terminal: interactive
    master, slave = pty.openpty()
    proc = subprocess.Popen([script("credhelper-oidc")], env=env, stdout=subprocess.PIPE,
                            stderr=slave, stdin=slave)
    os.close(slave)
    text, seen = "", {"pages": []}

    def read_until(phrase: str) -> str:
        nonlocal text
        deadline = time.monotonic() + 20
        while phrase not in text and time.monotonic() < deadline:
            try:
                chunk = os.read(master, 4096).decode(errors="replace")
            except OSError:
                break
            if not chunk:
                break
            text += chunk
        return text

    def person():
        import re

        found = re.search(r"(https://\S+/auth\?\S+)", read_until("or the code in it:"))
        assert found, text
        # the browser (on another machine) stops at the redirect to this one
        drive(found.group(1), "stop", "frank", seen, ca=idp.ca_pem)
        os.write(master, b"this is not it\n")
        read_until("that is not the address")
        MINTED_SECRETS.add(seen["last"].split("code=")[1].split("&")[0])
        os.write(master, seen["last"].encode() + b"\n")

    thread = threading.Thread(target=person, daemon=True)
    thread.start()
    out, _ = proc.communicate(timeout=40)
    thread.join(5)
    os.close(master)
    assert proc.returncode == 0, text
    assert jwt.decode(out.decode().strip())[1]["sub"] == "frank"
    assert "open this address in a browser on any machine" in text
    assert browsed(env) == [] and presented(env) == ""  # nothing opened here


def test_a_pending_device_sign_in_is_finished_before_a_browser_opens(oidc_env, idp):
    """The never-lose rule across grants: a device code a person is completing stays the
    one sign-in under way when the configuration moves to the authorization code."""
    env = {**oidc_env, "CLAUDE_HELPER_CONTEXT": "interactive",
           "CREDHELPER_OIDC_LOGIN_TIMEOUT": "2s", "CREDHELPER_OIDC_TIMEOUT": "2s"}
    proc = run(["credhelper-oidc"], env)
    assert_failure(proc, 3, "is not finished yet")
    from .idpkit import approve, user_code_from

    approve(idp, user_code_from(proc.stderr))
    moved = {**env, "CREDHELPER_OIDC_GRANT": "authorization_code",
             "CREDHELPER_OIDC_BROWSER_COMMAND": "no-such-browser"}
    token_of(run(["credhelper-oidc"], moved))  # no browser needed: the pending one finished


def test_the_device_code_notification_says_who_is_asking(oidc_env, idp):
    env = {**oidc_env, "CLAUDE_HELPER_CONTEXT": "interactive",
           "CREDHELPER_DEFAULTS_DISPLAY_NAME": "Acme gateway"}
    proc = sign_in(["credhelper-oidc"], env, idp)
    assert proc.returncode == 0, proc.stderr
    assert "notify-send --app-name=credhelper --urgency=critical credhelper-oidc for Acme " \
           "gateway To sign in, open" in presented(env)
    assert "credhelper-oidc for Acme gateway: To sign in, open" in proc.stderr
