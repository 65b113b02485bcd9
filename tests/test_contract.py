"""The helper contract (DESIGN §2), end to end through real processes.

The counting test backend stands in for a backend here so that every failure mode can be
produced on demand; the keyring tests repeat the essentials against a real keyring.
"""

import json
import os
import pty
import subprocess
import sys

import pytest
from conftest import CANARY, COUNTING, assert_failure, fetches, run


def test_prints_exactly_the_token_and_a_newline(counting_env):
    p = run("counting", counting_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{CANARY}\n".encode()
    assert p.stderr == ""


def test_second_run_is_a_cache_hit(counting_env):
    assert run("counting", counting_env).returncode == 0
    p = run("counting", counting_env)
    assert p.stdout == f"{CANARY}\n".encode()
    assert len(fetches(counting_env)) == 1


def test_json_output_when_headers_are_configured(counting_env):
    counting_env["CREDHELPER_DEFAULTS_HEADERS"] = '{"X-Team": "ml", "X-Org": "acme"}'
    p = run("counting", counting_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith(b"}\n") and p.stdout.count(b"\n") == 1
    assert json.loads(p.stdout) == {"token": CANARY, "headers": {"X-Team": "ml", "X-Org": "acme"}}
    # the cache hit prints the same document
    assert run("counting", counting_env).stdout == p.stdout


def test_json_output_when_asked(counting_env):
    counting_env["CREDHELPER_COUNTING_OUTPUT"] = "json"
    p = run("counting", counting_env)
    assert json.loads(p.stdout) == {"token": CANARY, "headers": {}}


@pytest.mark.parametrize(
    "behaviour, code, phrase",
    [
        ("unavailable", 4, "backend down"),
        ("refused", 5, "permission denied"),
        ("login", 3, "may not ask"),
        ("bug", 1, "internal error"),
        ("newline", 5, "a line break at position"),
    ],
)
def test_failures_print_nothing_on_stdout(counting_env, behaviour, code, phrase):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = behaviour
    p = run("counting", counting_env)
    assert_failure(p, code, phrase)
    debug = run(["counting", "--debug"], counting_env)  # run() checks: never the secret
    assert debug.returncode == code and debug.stdout == b""
    if code == 1:  # a bug: --debug adds the (masked) traceback for the report
        assert "Traceback" in debug.stderr and "oops, the token was ***" in debug.stderr
    else:
        assert_failure(debug, code, phrase)


def test_a_hanging_backend_ends_by_the_deadline(counting_env):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "hang"
    counting_env["CREDHELPER_DEFAULTS_TIMEOUT"] = "1s"
    p = run("counting", counting_env, timeout=20)
    assert_failure(p, 4, "within the 1s deadline")


def test_library_chatter_never_reaches_stdout(counting_env):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "print"
    p = run("counting", counting_env)
    assert p.stdout == f"{CANARY}\n".encode()
    assert "library chatter ***" in p.stderr  # print() is redirected and masked
    assert "C-level chatter" in p.stderr  # a write to fd 1 is redirected too


@pytest.mark.parametrize("variable, value, phrase", [
    ("CREDHELPER_COUNTING_TTL", "soon", "CREDHELPER_COUNTING_TTL (environment)"),  # bad value
    ("CREDHELPER_COUNTING_TOKNE", "x", "unknown key CREDHELPER_COUNTING_TOKNE"),  # typo
    ("CREDHELPER_COUNTING_TOKEN", None, "missing setting [counting] token"),  # required
])
def test_configuration_errors_exit_2_naming_key_and_source(counting_env, variable, value, phrase):
    if value is None:
        del counting_env[variable]
    else:
        counting_env[variable] = value
    assert_failure(run("counting", counting_env), 2, phrase)


def test_usage_error_exit_2(counting_env):
    assert_failure(run(["counting", "--no-such-flag"], counting_env), 2, "--no-such-flag")


def test_umbrella_get_unknown_provider_exit_2(base_env):
    assert_failure(run(["credhelper", "get", "--provider", "nope"], base_env), 2, "unknown provider")


def test_version_and_help(base_env):
    p = run(["credhelper-keyring", "--version"], base_env)
    assert p.returncode == 0 and p.stdout.startswith(b"credhelper-keyring ")
    p = run(["credhelper", "--help"], base_env)
    assert p.returncode == 0 and b"doctor" in p.stdout


def test_debug_log_goes_to_stderr_without_the_secret(counting_env):
    p = run(["counting", "--debug"], counting_env)
    assert p.stdout == f"{CANARY}\n".encode()
    assert "debug: fetching from the counting test backend" in p.stderr
    p = run(["counting", "--debug"], counting_env)
    assert "debug: cache hit" in p.stderr


def test_log_file_is_private_and_secret_free(counting_env, tmp_path):
    log = tmp_path / "helper.log"
    counting_env["CREDHELPER_DEFAULTS_LOG_FILE"] = str(log)
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "bug"
    run("counting", counting_env)
    text = log.read_text()
    assert "internal error" in text and CANARY not in text
    assert (log.stat().st_mode & 0o777) == 0o600


# ---------------------------------------------------------------- contexts


@pytest.mark.parametrize("context", ["mid-session-refresh", "scheduled-task", "setup-test",
                                     "background", "some-future-context"])
def test_non_interactive_contexts_exit_3_at_once(counting_env, context):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "login"
    counting_env["CLAUDE_HELPER_CONTEXT"] = context
    assert_failure(run("counting", counting_env), 3, f"({context} context)")


def test_interactive_context_may_sign_in(counting_env):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "login"
    counting_env["CLAUDE_HELPER_CONTEXT"] = "interactive"
    p = run("counting", counting_env)
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode()
    assert fetches(counting_env)[0].endswith(" interactive True")


@pytest.mark.parametrize("manual_run, context", [("1", "setup-test"), (None, "no terminal")])
def test_legacy_variable_and_no_terminal_are_not_interactive(counting_env, manual_run, context):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "login"
    if manual_run:
        counting_env["CLAUDE_HELPER_MANUAL_RUN"] = manual_run  # older apps: setup-test
    assert_failure(run("counting", counting_env), 3, f"({context} context)")


def test_no_variable_with_a_terminal_is_interactive(counting_env):
    """stderr on a real pseudo-terminal: the run may ask; stdout stays a clean pipe."""
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "login"
    primary, secondary = pty.openpty()
    try:
        p = subprocess.run([sys.executable, COUNTING], env=counting_env, stdout=subprocess.PIPE,
                           stderr=secondary, stdin=subprocess.DEVNULL, timeout=60)
    finally:
        os.close(secondary)
        os.close(primary)
    assert p.returncode == 0
    assert p.stdout == f"{CANARY}\n".encode()
    assert fetches(counting_env)[0].endswith(" terminal True")


def test_pause_before_retry_backs_off_only_within_the_deadline():
    import io
    import time

    from credhelper.log import Log
    from credhelper.provider import Request

    err = io.StringIO()
    start = time.monotonic()
    request = Request("background", False, start + 0.6, start + 0.6, Log("t", err, debug=True))
    assert request.pause_before_retry(1, "HTTP 502", first=0.05)  # 0.05 s + 0.5 s fits
    assert time.monotonic() - start >= 0.05 and "HTTP 502; retrying in 0.05s" in err.getvalue()
    before = time.monotonic()
    assert not request.pause_before_retry(2, "HTTP 502", first=0.05)  # 0.1 s + 0.5 s does not
    assert time.monotonic() - before < 0.05  # and it did not sleep


@pytest.mark.parametrize("args", [["--"], ["--debug", "--debug"], ["get"]])
def test_the_command_line_path_keeps_the_exit_code(counting_env, args):
    """Arguments a plain run does not take go through click: its exit code must survive
    (click returns ctx.exit()'s code instead of raising it)."""
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "refused"
    assert_failure(run(["counting", *args], counting_env), 5, "permission denied")
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "ok"
    p = run(["counting", *args], counting_env)
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode()


def test_a_fifo_or_symlink_at_log_file_never_hangs_or_redirects_the_log(counting_env, tmp_path):
    """A FIFO planted at log_file used to block every run at open(); a symlink must not be
    followed; an existing log file open to others is made private."""
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    counting_env["CREDHELPER_DEFAULTS_LOG_FILE"] = str(fifo)
    p = run(["counting", "--debug"], counting_env, timeout=20)
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode()
    assert p.stderr.count("not logging to") == 1  # said once, then the run goes on

    target = tmp_path / "elsewhere.log"
    link = tmp_path / "link.log"
    link.symlink_to(target)
    counting_env["CREDHELPER_DEFAULTS_LOG_FILE"] = str(link)
    p = run("counting", counting_env)
    assert p.returncode == 0 and not target.exists() and "not logging to" in p.stderr

    shared = tmp_path / "shared.log"
    shared.write_text("")
    shared.chmod(0o644)
    counting_env["CREDHELPER_DEFAULTS_LOG_FILE"] = str(shared)
    assert run("counting", counting_env).returncode == 0
    assert shared.stat().st_mode & 0o777 == 0o600 and shared.read_text()
