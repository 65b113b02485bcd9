"""credhelper-keyring against a real GNOME Keyring on a private D-Bus session."""

import base64
import json
import os
import time

from conftest import CANARY, assert_failure, run


def jwt(ttl: int, secret_tail: str = "signature") -> str:
    def enc(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'RS256', 'typ': 'JWT'})}.{enc({'sub': 'alice', 'exp': int(time.time()) + ttl})}.{secret_tail}"


def store(env, secret):
    p = run(["credhelper-keyring", "store"], env, input=secret + "\n")
    assert p.returncode == 0, p.stderr
    return p


def test_store_reads_stdin_and_never_echoes(keyring_env):
    p = store(keyring_env, CANARY)
    assert p.stdout == b"" and "stored in keyring" in p.stderr
    p = run("credhelper-keyring", keyring_env)
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode()


def test_store_refuses_the_secret_on_the_command_line(keyring_env):
    p = run(["credhelper-keyring", "store", CANARY], keyring_env, input="")
    assert_failure(p, 2, "shell history")  # and run() checks the canary is not echoed


def test_store_refuses_empty_and_multiline_secrets(keyring_env):
    assert_failure(run(["credhelper-keyring", "store"], keyring_env, input="\n"), 2, "empty secret")
    assert_failure(run(["credhelper-keyring", "store"], keyring_env, input="a\nb\n"), 2, "one line")


def test_missing_entry_exits_5_with_the_store_hint(keyring_env):
    assert_failure(run("credhelper-keyring", keyring_env), 5, "nothing stored", "credhelper-keyring store")


def test_no_usable_keyring_exits_4(base_env):
    # No D-Bus session: the keyring library falls back to its "fail" backend.
    assert_failure(run("credhelper-keyring", base_env), 4, "no usable OS keyring", "hint:")


def test_jwt_expiry_is_used_and_cached(keyring_env):
    token = jwt(3600, CANARY)
    store(keyring_env, token)
    assert run("credhelper-keyring", keyring_env).stdout == f"{token}\n".encode()
    p = run(["credhelper-keyring", "--debug"], keyring_env)
    assert p.stdout == f"{token}\n".encode() and "cache hit" in p.stderr
    status = run(["credhelper-keyring", "status", "--json"], keyring_env)
    [entry] = json.loads(status.stdout)
    assert entry["jwt_claims"]["sub"] == "alice" and 3500 < entry["expires_in_seconds"] <= 3600
    assert CANARY.encode() not in status.stdout  # the signature part is never shown
    shown = run(["credhelper-keyring", "status", "--show-secret"], keyring_env)
    assert token.encode() in shown.stdout


def test_an_expired_jwt_is_refused(keyring_env):
    store(keyring_env, jwt(-60))
    assert_failure(run("credhelper-keyring", keyring_env), 5, "expired")


def test_opaque_secret_without_max_age_is_read_every_time(keyring_env):
    store(keyring_env, CANARY)
    assert run("credhelper-keyring", keyring_env).returncode == 0
    assert not [n for n in os.listdir(keyring_env["CREDHELPER_CACHE_DIR"]) if n.endswith(".v1.json")]


def test_store_replaces_a_cached_copy(keyring_env):
    keyring_env["CREDHELPER_KEYRING_MAX_AGE"] = "1h"
    store(keyring_env, CANARY + "-old")
    assert run("credhelper-keyring", keyring_env).stdout == f"{CANARY}-old\n".encode()
    store(keyring_env, CANARY + "-new")
    assert run("credhelper-keyring", keyring_env).stdout == f"{CANARY}-new\n".encode()


def test_delete_removes_secret_and_cached_copy(keyring_env):
    keyring_env["CREDHELPER_KEYRING_MAX_AGE"] = "1h"
    store(keyring_env, CANARY)
    assert run("credhelper-keyring", keyring_env).returncode == 0
    p = run(["credhelper-keyring", "delete"], keyring_env)
    assert p.returncode == 0 and p.stdout == b""
    assert_failure(run("credhelper-keyring", keyring_env), 5, "nothing stored")
    assert_failure(run(["credhelper-keyring", "delete"], keyring_env), 5, "nothing stored")


def test_cache_in_the_keyring(keyring_env):
    keyring_env["CREDHELPER_DEFAULTS_CACHE"] = "keyring"
    token = jwt(3600)
    store(keyring_env, token)
    assert run("credhelper-keyring", keyring_env).stdout == f"{token}\n".encode()
    p = run(["credhelper-keyring", "--debug"], keyring_env)
    assert p.stdout == f"{token}\n".encode() and "cache hit" in p.stderr
    assert not [n for n in os.listdir(keyring_env["CREDHELPER_CACHE_DIR"]) if n.endswith(".v1.json")]


def test_umbrella_get_status_cache_and_doctor(keyring_env):
    token = jwt(1800)
    store(keyring_env, token)
    p = run(["credhelper", "get", "--provider", "keyring"], keyring_env)
    assert p.stdout == f"{token}\n".encode()
    listing = run(["credhelper", "cache", "list"], keyring_env)
    assert b"keyring" in listing.stdout and token.encode() not in listing.stdout
    doctor = run(["credhelper", "doctor", "--provider", "keyring"], keyring_env)
    assert doctor.returncode == 0, doctor.stdout
    text = doctor.stdout.decode()
    assert "stored secret: present" in text and "inferenceCredentialHelper" in text
    assert "shorter than the app keeps a credential (1h, the app's default)" in text  # a 30-minute JWT vs a 1-hour TTL
    assert token not in text
    report = json.loads(run(["credhelper", "doctor", "--json", "-p", "keyring"], keyring_env).stdout)
    assert {s["title"] for s in report["sections"]} >= {"context", "cache", "provider keyring"}
    cleared = run(["credhelper", "cache", "clear"], keyring_env)
    assert cleared.returncode == 0 and "removed 1 cached credential" in cleared.stderr


def test_store_prompts_without_echo_on_a_terminal(keyring_env):
    """A real pseudo-terminal as the controlling terminal: the typed secret is not echoed."""
    import pty
    import select

    from conftest import script

    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is stdin, stdout, stderr and the controlling terminal
        os.execve(script("credhelper-keyring"), ["credhelper-keyring", "store"], keyring_env)
    seen, typed = b"", False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break  # the child closed the terminal
            if not chunk:
                break
            seen += chunk
        if not typed and b"Secret for" in seen:
            os.write(fd, CANARY.encode() + b"\n")
            typed = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert typed, seen
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert CANARY.encode() not in seen  # echo was off while typing
    assert b"stored in keyring" in seen
    assert run("credhelper-keyring", keyring_env).stdout == f"{CANARY}\n".encode()


def test_a_keyring_that_stops_answering_ends_by_the_deadline(keyring_env, keyring_session):
    """The Secret Service daemon frozen (SIGSTOP: D-Bus accepts the call, nobody answers):
    the run ends at its deadline with exit 4, or serves a still-valid cached copy."""
    import signal

    env = {**keyring_env, "CREDHELPER_DEFAULTS_TIMEOUT": "2", "CREDHELPER_KEYRING_MAX_AGE": "1h"}
    store(env, CANARY)
    assert run("credhelper-keyring", env).stdout == f"{CANARY}\n".encode()  # now cached
    [entry] = [n for n in os.listdir(env["CREDHELPER_CACHE_DIR"]) if n.endswith(".v1.json")]
    with open(os.path.join(env["CREDHELPER_CACHE_DIR"], entry), "rb") as f:
        before = f.read()
    os.kill(keyring_session["KEYRING_PID"], signal.SIGSTOP)
    try:
        started = time.monotonic()
        due = run("credhelper-keyring", {**env, "CREDHELPER_DEFAULTS_MIN_VALIDITY": "2h"})
        assert time.monotonic() - started < 8
        assert due.returncode == 0 and due.stdout == f"{CANARY}\n".encode(), due.stderr
        assert "serving the cached credential" in due.stderr
        started = time.monotonic()
        cold_cache = env["CREDHELPER_CACHE_DIR"] + "-cold"
        cold = run("credhelper-keyring", {**env, "CREDHELPER_CACHE_DIR": cold_cache})
        assert 1.5 <= time.monotonic() - started < 8
        assert_failure(cold, 4, "deadline")
    finally:
        os.kill(keyring_session["KEYRING_PID"], signal.SIGCONT)
    with open(os.path.join(env["CREDHELPER_CACHE_DIR"], entry), "rb") as f:
        assert f.read() == before
    assert run("credhelper-keyring", env).stdout == f"{CANARY}\n".encode()  # thawed: fine again


def test_mid_session_refresh_reads_an_item_changed_behind_the_cache(keyring_env):
    """The keyring item is changed by another program (the keyring library directly, not
    `store`, which drops the cached copy): an ordinary run within max_age still prints the
    cached value; a mid-session refresh past refresh_grace reads the new one and caches it."""
    import subprocess
    import sys

    env = {**keyring_env, "CREDHELPER_KEYRING_MAX_AGE": "1h",
           "CREDHELPER_KEYRING_REFRESH_GRACE": "3s"}
    store(env, CANARY + "-old")
    assert run("credhelper-keyring", env).stdout == f"{CANARY}-old\n".encode()
    change = "import keyring, sys; keyring.set_password(sys.argv[1], 'gateway', sys.stdin.read())"
    p = subprocess.run([sys.executable, "-c", change, env["CREDHELPER_KEYRING_SERVICE"]],
                       env=env, input=(CANARY + "-new").encode(), capture_output=True,
                       timeout=30, check=False)
    assert p.returncode == 0, p.stderr
    p = run(["credhelper-keyring", "--debug"], env)
    assert p.stdout == f"{CANARY}-old\n".encode() and "cache hit" in p.stderr
    mid_session = {**env, "CLAUDE_HELPER_CONTEXT": "mid-session-refresh"}
    # Within refresh_grace of the fetch the cached copy counts as just refreshed ...
    assert run("credhelper-keyring", mid_session).stdout == f"{CANARY}-old\n".encode()
    time.sleep(3.2)
    # ... past it, the refresh reads the keyring again.
    p = run(["credhelper-keyring", "--debug"], mid_session)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{CANARY}-new\n".encode() and "forced refresh" in p.stderr
    assert run("credhelper-keyring", env).stdout == f"{CANARY}-new\n".encode()  # cached


def test_store_refuses_what_no_run_could_print(keyring_env):
    """Checked when stored, not first when the app asks: a space, a control character or
    bytes that are not UTF-8 exit 2 and store nothing (non-UTF-8 was exit 4)."""
    for secret in (b"canary-a b\n", b"canary-\x0bx\n", b"canary-\xff\xfe\n"):
        p = run(["credhelper-keyring", "store"], keyring_env, input=secret)
        assert_failure(p, 2, "not a valid HTTP header value")
        assert_failure(run("credhelper-keyring", keyring_env), 5, "nothing stored")
