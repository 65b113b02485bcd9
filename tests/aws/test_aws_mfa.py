"""Role profiles with ``mfa_serial``: botocore's own assume-role provider would read the
MFA code with getpass on stdin (EOFError, exit 1, when the app runs the helper). Ours asks
only in the interactive context: on the terminal when stdin is one (a real pseudo-terminal
here, made the helper's controlling terminal), else in a desktop dialog (a stand-in
``zenity`` on PATH: the one thing here that is not real). The AssumeRole calls go to the
real moto server, which accepts SerialNumber and TokenCode; the role session is cached in
~/.aws/cli/cache, as the AWS CLI does, and reused by later runs."""

import fcntl
import json
import os
import pty
import select
import stat
import subprocess
import termios
import time

import pytest
from conftest import assert_failure, script
from services import fake_zenity

from .conftest import ROLE, SERIAL
from .helpers import aws, token_of, write

CODE = "908172"  # not a part of the account id, so finding it anywhere means it leaked
HINT = "aws sts get-caller-identity --profile mfa"


def role_cache(env) -> list[str]:
    folder = os.path.join(env["HOME"], ".aws", "cli", "cache")
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)) if os.path.isdir(folder) else []


def on_terminal(env, typed: str | None) -> tuple[subprocess.CompletedProcess, str]:
    """Run the helper with a pseudo-terminal as stdin and controlling terminal (stdout and
    stderr stay pipes, as under the app); once the MFA prompt shows on the terminal, type
    ``typed`` and Enter. Returns the finished process and everything the terminal showed."""
    primary, secondary = pty.openpty()

    def take_terminal():  # setsid ran first (start_new_session): make the pty ours
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([script("credhelper-aws")], env=env, stdin=secondary,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=take_terminal)
    os.close(secondary)
    shown, deadline = b"", time.monotonic() + 30
    try:
        while typed is not None and b"Enter MFA code" not in shown:
            assert time.monotonic() < deadline, shown
            if select.select([primary], [], [], 0.2)[0]:
                shown += os.read(primary, 1024)
            assert proc.poll() is None, (shown, proc.stderr.read())
        if typed is not None:
            os.write(primary, typed.encode() + b"\n")
        out, err = proc.communicate(timeout=30)
        while select.select([primary], [], [], 0.2)[0]:
            try:
                chunk = os.read(primary, 1024)
            except OSError:  # EIO: the helper's side of the terminal is closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err.decode("utf-8", "replace"))
    return done, shown.decode("utf-8", "replace")


def assume_role_calls(sts_proxy) -> list[dict]:
    return [c for c in sts_proxy.calls if c["action"] == "AssumeRole"]


# ---------------------------------------------------------------- never asks in the background

def test_mfa_profile_in_background_exits_3_at_once(mfa_env, sts_proxy):
    start = time.monotonic()
    p = aws(mfa_env)
    took = time.monotonic() - start
    print(f"background run with mfa_serial: {took:.2f}s")
    assert_failure(p, 3, f"AWS profile 'mfa' needs an MFA code for {SERIAL}",
                   "may not ask (background context)", HINT)
    assert took < 2, took
    assert "EOFError" not in p.stderr and "internal error" not in p.stderr
    assert sts_proxy.calls == []  # nothing was asked of AWS
    assert role_cache(mfa_env) == []


def test_mfa_profile_without_context_or_terminal_exits_3(mfa_env, sts_proxy):
    del mfa_env["CLAUDE_HELPER_CONTEXT"]
    start = time.monotonic()
    p = aws(mfa_env)  # stdin /dev/null, stderr a pipe: nobody to ask
    took = time.monotonic() - start
    print(f"run without context or terminal, with mfa_serial: {took:.2f}s")
    assert_failure(p, 3, SERIAL, "may not ask (no terminal context)", HINT)
    assert took < 2, took
    assert sts_proxy.calls == []


def test_a_code_on_piped_stdin_is_never_read(mfa_env, sts_proxy):
    """Interactive, but stdin is a pipe (the app's) and this desktop has no dialog: the
    code waiting on stdin is not taken, the run says a person must sign in."""
    mfa_env["CLAUDE_HELPER_CONTEXT"] = "interactive"
    p = aws(mfa_env, input=CODE + "\n")
    assert_failure(p, 3, SERIAL, "no terminal or desktop dialog can ask", HINT)
    assert sts_proxy.calls == []


# ---------------------------------------------------------------- the terminal

def test_code_typed_on_the_terminal_assumes_the_role_and_is_cached(mfa_env, sts_proxy):
    mfa_env["CLAUDE_HELPER_CONTEXT"] = "interactive"
    p, terminal = on_terminal(mfa_env, CODE)
    token = token_of(p)
    assert f"Enter MFA code for {SERIAL}: " in terminal  # the prompt is on the terminal,
    assert b"Enter MFA code" not in p.stdout and "Enter MFA code" not in p.stderr  # not piped
    assert CODE not in terminal  # not echoed
    (call,) = assume_role_calls(sts_proxy)
    assert call["params"]["SerialNumber"] == [SERIAL] and call["params"]["TokenCode"] == [CODE]
    assert call["params"]["RoleArn"] == [ROLE]
    assert sts_proxy.actions() == ["AssumeRole", "GetCallerIdentity"]
    # moto accepted the code: the token is signed with the role session's keys
    from credhelper.providers import aws_verify

    role_key = aws_verify.decode(token, allowed_endpoints=[sts_proxy.url]).access_key_id
    assert role_key.startswith("ASIA")
    # the session is in the AWS CLI's cache, private to the user
    (cached,) = role_cache(mfa_env)
    assert cached.endswith(".json")
    assert stat.S_IMODE(os.stat(cached).st_mode) == 0o600
    with open(cached) as f:
        assert role_key in f.read()
    with open(mfa_env["CREDHELPER_DEFAULTS_LOG_FILE"]) as f:
        assert CODE not in f.read()  # the code is in no log line
    assert CODE not in p.stderr

    # A second run, in the background and without our own token cache: the cached role
    # session is reused, so no code is asked for and AWS sees no AssumeRole.
    sts_proxy.clear()
    again = dict(mfa_env, CLAUDE_HELPER_CONTEXT="background",
                 CREDHELPER_CACHE_DIR=mfa_env["CREDHELPER_CACHE_DIR"] + "-cold")
    start = time.monotonic()
    second = token_of(aws(again))
    print(f"second run, from the cached role session: {time.monotonic() - start:.2f}s")
    assert sts_proxy.actions() == ["GetCallerIdentity"]
    assert aws_verify.decode(second, allowed_endpoints=[sts_proxy.url]).access_key_id == role_key
    assert role_cache(mfa_env) == [cached]


@pytest.mark.parametrize("typed, phrase", [("12345", "must be 6 to 8 digits"),
                                           ("12ab56", "must be 6 to 8 digits"),
                                           ("", "no MFA code was entered")])
def test_a_bad_or_empty_code_exits_3_without_calling_aws(mfa_env, sts_proxy, typed, phrase):
    mfa_env["CLAUDE_HELPER_CONTEXT"] = "interactive"
    p, _ = on_terminal(mfa_env, typed)
    assert_failure(p, 3, phrase, SERIAL, HINT)
    assert assume_role_calls(sts_proxy) == []
    assert role_cache(mfa_env) == []


def test_an_expired_cached_role_session_asks_again_in_the_background_as_exit_3(mfa_env, sts_proxy):
    """A role session in the cache that is about to end is not used (botocore renews 15
    minutes ahead): a background run must then ask for a code, so it exits 3."""
    mfa_env["CLAUDE_HELPER_CONTEXT"] = "interactive"
    token_of(on_terminal(mfa_env, CODE)[0])
    (cached,) = role_cache(mfa_env)
    with open(cached) as f:
        doc = json.load(f)
    # in botocore's own format (JSONFileCache writes datetimes with %Z)
    soon = time.strftime("%Y-%m-%dT%H:%M:%SUTC", time.gmtime(time.time() + 300))
    doc["Credentials"]["Expiration"] = soon
    written = json.dumps(doc)
    write(cached, written)
    sts_proxy.clear()
    p = aws(dict(mfa_env, CLAUDE_HELPER_CONTEXT="background",
                 CREDHELPER_CACHE_DIR=mfa_env["CREDHELPER_CACHE_DIR"] + "-cold"))
    assert_failure(p, 3, SERIAL, "may not ask (background context)")
    assert sts_proxy.calls == []
    with open(cached) as f:
        assert f.read() == written  # left as it was


# ---------------------------------------------------------------- the desktop dialog

def test_without_a_terminal_the_code_is_asked_in_a_desktop_dialog(mfa_env, sts_proxy, tmp_path):
    record = fake_zenity(mfa_env, tmp_path, CODE)
    token_of(aws(mfa_env))  # stdin /dev/null, stderr a pipe: as the app runs it
    args = open(record).read().splitlines()
    assert "--entry" in args and "--hide-text" in args
    assert f"--text=Enter the MFA code for {SERIAL}" in args
    assert "--title=credhelper-aws" in args  # who is asking, as every sign-in says
    (timeout,) = [int(a.split("=")[1]) for a in args if a.startswith("--timeout=")]
    assert 0 < timeout <= 60  # within the run's sign-in bound (app_timeout 60s)
    (call,) = assume_role_calls(sts_proxy)
    assert call["params"]["TokenCode"] == [CODE]
    assert len(role_cache(mfa_env)) == 1


def test_a_cancelled_dialog_exits_3(mfa_env, sts_proxy, tmp_path):
    fake_zenity(mfa_env, tmp_path, "", exit_code=1)
    assert_failure(aws(mfa_env), 3, f"no MFA code was entered for {SERIAL}", HINT)
    assert sts_proxy.calls == []
