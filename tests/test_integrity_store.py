"""Integrity of the store: a keyring that stops answering or is locked, an entry written
by a clock that has since been set back, temporaries left by a killed writer, directories
made under a permissive umask, ``cache = "keyring"`` without the keyring library.

Real services: a GNOME Keyring of its own per test (private D-Bus session), because these
tests freeze it (SIGSTOP) or lock it; the core's rules through the counting test backend,
whose fetches are counted across processes; libfaketime for a moved clock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CANARY, COUNTING, assert_failure, fetches, run, skewed_clock
from services import stop_process

MARGIN = 2.0  # seconds a run may take past its deadline: start-up, the full path's imports


# ---------------------------------------------------------------- a keyring of its own


@pytest.fixture
def own_keyring(tmp_path):
    """dbus-daemon + gnome-keyring-daemon for this test only (it may be frozen or locked).
    Yields the variables a helper needs, plus KEYRING_PID."""
    for tool in ("dbus-daemon", "gnome-keyring-daemon"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: apt-get install dbus gnome-keyring")
    home = tmp_path / "keyring-home"
    runtime = home / "run"
    runtime.mkdir(parents=True, mode=0o700)
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "PATH": os.environ["PATH"]}
    out = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--nopidfile", "--print-address=1",
         "--print-pid=1"], env=env, capture_output=True, text=True, timeout=20, check=True,
    ).stdout.split()
    address, dbus_pid = out[0], int(out[1])
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    daemon = subprocess.Popen(
        ["gnome-keyring-daemon", "--unlock", "--components=secrets", "--foreground"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    daemon.stdin.write(b"test-keyring-password")
    daemon.stdin.close()
    probe = [sys.executable, "-c", "import keyring; k = keyring.get_keyring(); "
             "k.set_password('probe', 'p', 'x'); print(type(k).__module__)"]
    deadline = time.monotonic() + 20
    while True:
        p = subprocess.run(probe, env=env, capture_output=True, text=True)
        if p.returncode == 0 and "SecretService" in p.stdout:
            break
        if time.monotonic() > deadline:
            daemon.kill()
            os.kill(dbus_pid, signal.SIGTERM)
            pytest.fail(f"gnome-keyring did not come up: {p.stdout} {p.stderr}")
        time.sleep(0.1)
    try:
        yield {"DBUS_SESSION_BUS_ADDRESS": address, "XDG_RUNTIME_DIR": str(runtime),
               "KEYRING_PID": daemon.pid}
    finally:
        os.kill(daemon.pid, signal.SIGCONT)  # a test that froze it and failed
        stop_process(daemon, grace=5)
        os.kill(dbus_pid, signal.SIGTERM)


def with_keyring(env, keyring):
    return {**env, "DBUS_SESSION_BUS_ADDRESS": keyring["DBUS_SESSION_BUS_ADDRESS"],
            "XDG_RUNTIME_DIR": keyring["XDG_RUNTIME_DIR"]}


class frozen:
    """The Secret Service daemon stopped (SIGSTOP): D-Bus takes the call, nobody answers."""

    def __init__(self, keyring):
        self.pid = keyring["KEYRING_PID"]

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)


def timed(args, env, **kw):
    """run(), and how long it took; a run still going after 30 s fails the test."""
    started = time.monotonic()
    try:
        proc = run(args, env, timeout=30, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} still running after 30s")
    return proc, time.monotonic() - started


def drop_snapshot(env):
    for path in Path(env["CREDHELPER_CACHE_DIR"]).glob("snapshot-*.json"):
        path.unlink()


def store_secret(env, secret):
    p = run(["credhelper-keyring", "store"], env, input=secret + "\n")
    assert p.returncode == 0, p.stderr


# ---------------------------------------------------------------- item 1: no deadline


def test_keyring_cache_with_a_frozen_daemon_ends_by_the_deadline(base_env, own_keyring):
    """credhelper-keyring, cache = "keyring", timeout 2s, background: the hot path's read
    and the full path's reads and the fetch all end by the deadline: exit 4."""
    env = {**with_keyring(base_env, own_keyring), "CREDHELPER_DEFAULTS_CACHE": "keyring",
           "CREDHELPER_DEFAULTS_TIMEOUT": "2", "CREDHELPER_KEYRING_MAX_AGE": "1h",
           "CLAUDE_HELPER_CONTEXT": "background"}
    store_secret(env, CANARY)
    assert run("credhelper-keyring", env).stdout == f"{CANARY}\n".encode()  # cached, snapshot
    with frozen(own_keyring):
        hot, took = timed("credhelper-keyring", env)  # the hot path reads the keyring first
        assert_failure(hot, 4, "did not answer within")
        assert took < 2 + MARGIN, took
        drop_snapshot(env)  # straight to the full path
        full, took = timed("credhelper-keyring", env)
        assert_failure(full, 4, "did not answer within")
        assert took < 2 + MARGIN, took
    p = run(["credhelper-keyring", "--debug"], env)  # thawed: the cached copy is served
    assert p.stdout == f"{CANARY}\n".encode() and "cache hit" in p.stderr, p.stderr


def test_another_backend_with_a_frozen_keyring_cache_fetches_by_the_deadline(
        counting_env, own_keyring):
    """The counting backend with cache = "keyring": the keyring read is given up on at the
    deadline, the backend is asked, its credential printed (not stored: the keyring does
    not answer) with a warning, well within the deadline plus a margin."""
    env = {**with_keyring(counting_env, own_keyring), "CREDHELPER_DEFAULTS_CACHE": "keyring",
           "CREDHELPER_DEFAULTS_TIMEOUT": "2", "CLAUDE_HELPER_CONTEXT": "background"}
    assert run("counting", env).stdout == f"{CANARY}\n".encode()
    assert run("counting", env).returncode == 0 and len(fetches(env)) == 1  # a keyring hit
    with frozen(own_keyring):
        for path in ("hot", "full"):
            if path == "full":
                drop_snapshot(env)
            p, took = timed("counting", env)
            assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode(), p.stderr
            assert "did not answer within" in p.stderr
            assert p.stderr.count("warning: cannot read the cache") == 1, p.stderr
            assert took < 2 + MARGIN, took
        assert len(fetches(env)) == 3
    p = run(["counting", "--debug"], env)  # thawed: the entry written before is still there
    assert p.returncode == 0 and "cache hit" in p.stderr and len(fetches(env)) == 3


def test_provider_state_in_a_frozen_keyring_is_bounded(own_keyring, monkeypatch, tmp_path):
    """StateStore load / save / delete (refresh tokens, Vault logins) with cache =
    "keyring" give up at the deadline: a warning each, never a hang."""
    import keyring.core
    from keyring.backends import SecretService

    from credhelper import store
    from credhelper.cache import StateStore
    from credhelper.log import Log

    for name in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"):
        monkeypatch.setenv(name, own_keyring[name])
    # keyring picks its backend once per process: this test's, whatever an earlier test saw.
    monkeypatch.setattr(keyring.core, "_keyring_backend", SecretService.Keyring())
    monkeypatch.setattr(store, "_stalled", None)  # this process's verdict ends with the test
    errors = []

    class Stream:
        def write(self, text):
            errors.append(text)

        def flush(self):
            pass

    log = Log("test", Stream())
    state = StateStore("keyring", str(tmp_path), f"test{os.getpid()}", log,
                       deadline=time.monotonic() + 60)
    state.save("refresh", {"token": CANARY})
    assert state.load("refresh") == {"token": CANARY}
    with frozen(own_keyring):
        state = StateStore("keyring", str(tmp_path), f"test{os.getpid()}", log,
                           deadline=time.monotonic() + 1)
        started = time.monotonic()
        assert state.load("refresh") is None
        state.save("refresh", {"token": CANARY + "-new"})
        state.delete("refresh")
        assert time.monotonic() - started < 1.5
    text = "".join(errors)
    assert text.count("did not answer within") == 3, text
    assert "cannot read test" in text and "cannot save test" in text
    assert "cannot delete test" in text


# ---------------------------------------------------------------- item 1: no unlock dialog


def lock_keyring(env):
    lock = ("import secretstorage; b = secretstorage.dbus_init(); "
            "c = secretstorage.get_default_collection(b); c.lock(); assert c.is_locked()")
    subprocess.run([sys.executable, "-c", lock], env=env, check=True, timeout=20)


class dbus_calls:
    """The Secret Service method calls made on the bus while the block runs."""

    def __init__(self, env):
        self.env = env

    def __enter__(self):
        self.monitor = subprocess.Popen(
            ["dbus-monitor", "--address", self.env["DBUS_SESSION_BUS_ADDRESS"],
             "type='method_call',destination='org.freedesktop.secrets'"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # It says NameAcquired once it listens.
        while "NameAcquired" not in self.monitor.stdout.readline():
            pass
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)  # the last calls reach the monitor
        self.monitor.terminate()
        out = self.monitor.communicate(timeout=10)[0]
        self.members = [line.split("member=")[1].split()[0] for line in out.splitlines()
                        if line.startswith("method call") and "member=" in line]


PROMPTING = {"Unlock", "Prompt", "CreateCollection"}


def test_a_locked_keyring_is_never_asked_to_unlock_outside_an_interactive_run(
        counting_env, own_keyring):
    env = {**with_keyring(counting_env, own_keyring), "CREDHELPER_DEFAULTS_CACHE": "keyring",
           "CLAUDE_HELPER_CONTEXT": "background"}
    assert run("counting", env).returncode == 0  # cached in the keyring, snapshot written
    keyring_env = {k: v for k, v in env.items() if not k.startswith("CREDHELPER_COUNTING_")}
    keyring_env.update(CREDHELPER_DEFAULTS_CACHE="file",
                       CREDHELPER_KEYRING_SERVICE="credhelper-locked-test")
    store_secret(keyring_env, CANARY)
    lock_keyring(env)
    with dbus_calls(env) as calls:
        # The cache in the keyring: a miss with a warning; the backend is asked.
        p = run("counting", env)
        assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode(), p.stderr
        assert "locked" in p.stderr and len(fetches(env)) == 2
        # credhelper-keyring's own secret: exit 3, "locked".
        assert_failure(run("credhelper-keyring", keyring_env), 3, "locked")
        # Both with the keyring as the cache.
        assert_failure(run("credhelper-keyring", {**keyring_env,
                                                  "CREDHELPER_DEFAULTS_CACHE": "keyring"}),
                       3, "locked")
    assert "Get" in calls.members  # the monitor saw the runs ask whether it is locked
    assert not PROMPTING & set(calls.members), calls.members


# ---------------------------------------------------------------- item 18


def test_keyring_cache_without_the_keyring_library_is_a_configuration_error(
        counting_env, tmp_path):
    """A build without the keyring extra: exit 2 naming the extra, on both paths."""
    blocker = tmp_path / "no-keyring"
    blocker.mkdir()
    (blocker / "keyring.py").write_text("raise ImportError('No module named keyring')\n")
    env = {**counting_env, "CREDHELPER_DEFAULTS_CACHE": "keyring"}
    without = {**env, "PYTHONPATH": os.pathsep.join(
        [str(blocker)] + ([env["PYTHONPATH"]] if "PYTHONPATH" in env else []))}
    p = run("counting", without)
    assert_failure(p, 2, 'cache = "keyring"', "pip install 'credhelper[keyring]'")
    assert fetches(env) == []  # refused before the backend is asked
    # The hot path: a snapshot written while the library was there (no keyring session
    # here: a miss with a warning, a fetch, nothing stored), then the library gone.
    assert run("counting", env).returncode == 0
    p = run(["counting", "--debug"], without)
    assert_failure(p, 2, "pip install 'credhelper[keyring]'")
    assert "no current configuration snapshot" not in p.stderr  # it was the hot path
    assert len(fetches(env)) == 1


# ---------------------------------------------------------------- item 7: clock set back


@pytest.mark.parametrize("path", ["hot", "full"])
def test_an_entry_fetched_in_the_future_is_not_served(counting_env, path):
    """Fetched while the clock ran 2 hours ahead (max_age 1h counted from then): with the
    clock set right, the entry is a miss with a warning and the backend is asked again."""
    ahead = skewed_clock(counting_env, "+2h")
    assert run("counting", ahead).stdout == f"{CANARY}\n".encode()
    assert len(fetches(counting_env)) == 1
    [entry] = Path(counting_env["CREDHELPER_CACHE_DIR"]).glob("*.v1.json")
    fetched_at = json.loads(entry.read_bytes())["fetched_at"]
    assert fetched_at > time.time() + 3600  # written by the clock that ran ahead
    if path == "full":
        drop_snapshot(counting_env)
    p = run(["counting"], counting_env)
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode(), p.stderr
    assert len(fetches(counting_env)) == 2
    assert p.stderr.count("was the clock set back?") == 1, p.stderr
    # The new entry is this clock's: the next run is a plain hit.
    p = run(["counting", "--debug"], counting_env)
    assert p.returncode == 0 and "cache hit" in p.stderr and len(fetches(counting_env)) == 2


def test_an_entry_a_few_seconds_ahead_is_still_served(counting_env):
    """Within the tolerance (clocks of two machines sharing a home, NTP steps): a hit."""
    ahead = skewed_clock(counting_env, "+20s")
    assert run("counting", ahead).returncode == 0
    p = run(["counting", "--debug"], counting_env)
    assert p.returncode == 0 and "cache hit" in p.stderr and len(fetches(counting_env)) == 1


# ---------------------------------------------------------------- item 16: temporaries


def plant_temporary(directory: Path, age: float) -> Path:
    """A temporary as securefile.write_private names them, holding a secret."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, json.dumps({"token": CANARY}).encode())
    os.close(fd)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_stale_temporaries_are_removed_by_the_next_run_that_writes(counting_env):
    cache = Path(counting_env["CREDHELPER_CACHE_DIR"])
    stale = plant_temporary(cache, age=300)
    fresh = plant_temporary(cache, age=0)  # a concurrent writer's, about to be renamed
    other = cache / ".tmp-not-ours"
    other.write_text("x")
    other.chmod(0o600)
    assert run("counting", counting_env).returncode == 0
    assert not stale.exists()
    assert fresh.exists() and other.exists()
    # `cache clear` removes every temporary of credhelper's, however young.
    p = run(["credhelper", "cache", "clear"], counting_env)
    assert p.returncode == 0, p.stderr
    assert "removed 1 temporary file" in p.stderr
    assert not fresh.exists() and other.exists()
    assert not list(cache.glob("*.v1.json"))


def test_cache_clear_removes_temporaries_when_no_entry_is_left(counting_env):
    cache = Path(counting_env["CREDHELPER_CACHE_DIR"])
    planted = [plant_temporary(cache, age=age) for age in (0, 5, 3600)]
    p = run(["credhelper", "cache", "clear"], counting_env)
    assert p.returncode == 0 and "removed 3 temporary files" in p.stderr, p.stderr
    assert not any(path.exists() for path in planted)


# ---------------------------------------------------------------- item 17: directories


def run_with_umask(args, env, umask):
    return subprocess.run([sys.executable, COUNTING] + args, env=env, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60,
                          preexec_fn=lambda: os.umask(umask))


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_every_directory_credhelper_makes_is_0700_whatever_the_umask(counting_env, umask):
    home = Path(counting_env["HOME"])
    home.chmod(0o751)
    # The platform's cache directory: ~/.cache (XDG_CACHE_HOME) does not exist yet.
    env = {k: v for k, v in counting_env.items() if k != "CREDHELPER_CACHE_DIR"}
    p = run_with_umask([], env, umask)
    assert p.returncode == 0, p.stderr
    for made in (home / ".cache", home / ".cache" / "credhelper"):
        assert made.stat().st_mode & 0o777 == 0o700, (made, oct(made.stat().st_mode))
    # CREDHELPER_CACHE_DIR four levels of directories that do not exist yet: each made.
    top = Path(counting_env["CREDHELPER_CACHE_DIR"])
    deep = top / "a" / "b" / "c"
    p = run_with_umask([], {**counting_env, "CREDHELPER_CACHE_DIR": str(deep)}, umask)
    assert p.returncode == 0, p.stderr
    for made in (top, top / "a", top / "a" / "b", deep):
        assert made.stat().st_mode & 0o777 == 0o700, (made, oct(made.stat().st_mode))
    # A directory that was there keeps its mode: credhelper chmods only what it made.
    assert home.stat().st_mode & 0o777 == 0o751
