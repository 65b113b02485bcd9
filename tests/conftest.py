"""Shared fixtures: a clean environment per test, the installed helpers as subprocesses,
and a real GNOME Keyring on a private D-Bus session.

The tests run against the *installed* console scripts (the README's test command installs
the package), so they prove the wiring as well as the logic.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from services import MINTED_SECRETS, stop_process

# In-process imports take the installed package, as the console scripts do. Still needed
# for a regular install (scripts/test, CI): `python -m pytest` puts the repository root on
# sys.path, whose credhelper/ would shadow the installed copy and lacks credhelper.providers
# (providers/ is mapped onto it at install time). Harmless under an editable install
# (`pip install -e`), where setuptools' finder maps both credhelper and credhelper.providers
# onto the checkout anyway: there the root on sys.path finds the same credhelper/, and
# credhelper.providers falls through to that finder.
REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO]

CANARY = "canary-S3CR3T-7f1d9c"  # a secret that must never appear outside stdout
# Every secret a test makes up starts with this, so one check catches them all; secrets
# a service mints (secret IDs, refresh tokens) are added to services.MINTED_SECRETS.
CANARY_PREFIX = "canary-"


def leaked(text: str) -> list[str]:
    """The secrets found in ``text``: any canary, or a secret a service minted."""
    found = [CANARY_PREFIX] if CANARY_PREFIX in text else []
    return found + [s for s in MINTED_SECRETS if s in text]


# Set to a dist/<layout> folder of scripts/build-binaries to run the same tests against
# the built binaries instead of the installed console scripts.
BINARIES = os.environ.get("CREDHELPER_TEST_BINARIES")
collect_ignore = [] if BINARIES else ["binaries"]


def script(name: str) -> str:
    """Path of the helper under test: a built binary in binary mode, else the installed
    console script (next to this interpreter, else on PATH)."""
    if BINARIES:
        for candidate in (Path(BINARIES) / name / name, Path(BINARIES) / name):
            if candidate.is_file():
                return str(candidate)
        if name != "credhelper":  # the umbrella may stay the installed one; backends may not
            pytest.fail(f"{name} is not built in {BINARIES}: run scripts/build-binaries")
    return installed_script(name)


def installed_script(name: str) -> str:
    """The installed console script, also in binary mode (for checks of Python imports)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run the README's test command")
    return found


def _assert_private_tree(directory: Path) -> None:
    """Every directory credhelper made is 0700 and every file it wrote 0600."""
    if os.name != "posix" or not directory.is_dir() or directory.is_symlink():
        return
    for root, _dirs, files in os.walk(directory):
        if files:  # a folder credhelper wrote into (its parents are mkdir -p's business)
            assert os.stat(root).st_mode & 0o777 == 0o700, f"{root} is not 0700"
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                assert os.lstat(path).st_mode & 0o777 == 0o600, f"{path} is not 0600"


@pytest.fixture
def base_env(tmp_path, request):
    """A minimal environment: private HOME, cache and config dirs, no credhelper or app
    variables from the developer's shell, and no keyring session unless asked for.

    After the test, whatever the helper left in the cache directory must be private
    (tests that break the permissions on purpose are marked ``unsafe_cache``)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_DIRS": str(tmp_path / "etc-xdg"),
        "CREDHELPER_CACHE_DIR": str(tmp_path / "cache"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        # Every run of every test logs at debug level to this file, checked afterwards.
        "CREDHELPER_DEFAULTS_LOG_FILE": str(tmp_path / "credhelper.log"),
    }
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "PYTHONPATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    yield env
    if not request.node.get_closest_marker("unsafe_cache"):
        _assert_private_tree(Path(env["CREDHELPER_CACHE_DIR"]))
    _assert_clean_log(tmp_path / "credhelper.log")


def _assert_clean_log(path: Path) -> None:
    """The suite-wide debug log: private, and free of every secret the test used."""
    if not path.exists():
        return
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o600, f"{path} is not 0600"
    text = path.read_text("utf-8", "replace")
    assert not leaked(text), f"a secret reached the log file: {leaked(text)}"


COUNTING = str(Path(__file__).with_name("counting_helper.py"))


def run(args, env, input=None, timeout=60):
    """Run a helper; returns CompletedProcess with bytes stdout and str stderr.

    ``args[0]`` is a console script name, or "counting" for the test-only backend.
    Whatever the test, the canary secret must never reach stderr.
    """
    if isinstance(args, str):
        args = [args]
    if args[0] == "counting":
        args = [sys.executable, COUNTING] + list(args[1:])
    else:
        args = [script(args[0])] + list(args[1:])
    proc = subprocess.run(
        args,
        env=env,
        input=input.encode() if isinstance(input, str) else input,
        capture_output=True,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    assert not leaked(proc.stderr), "a secret reached stderr"
    return proc


def skewed_clock(env: dict, offset: str) -> dict:
    """``env`` for a helper whose wall clock is ``offset`` ("+10m", "-2h") away from the
    services' clocks: libfaketime (Debian package faketime) preloaded into the helper
    only. The monotonic clock stays real, so deadlines still mean what they say."""
    import glob

    libs = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    if not libs:
        pytest.fail("libfaketime is missing: scripts/test installs the faketime package")
    return {**env, "LD_PRELOAD": libs[0], "FAKETIME": offset,
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"}


@pytest.fixture
def counting_env(base_env, tmp_path):
    """base_env configured for the counting backend; ``count(env)`` reads its fetches."""
    env = dict(base_env)
    env["CREDHELPER_COUNTING_TOKEN"] = CANARY
    env["CREDHELPER_COUNTING_COUNT_FILE"] = str(tmp_path / "fetches")
    return env


def fetches(env) -> list[str]:
    try:
        with open(env["CREDHELPER_COUNTING_COUNT_FILE"]) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def presented(env) -> str:
    """What the recording desktop tools (xdg-open, notify-send, ...) of an environment made
    by ``tests/oidc/conftest.py desktop_env`` were asked to show, one line each."""
    try:
        with open(env["PRESENTER_RECORD"]) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def assert_failure(proc, code: int, *phrases: str):
    """A contract failure: the exit code, nothing on stdout, a clear line on stderr."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stdout == b"", proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines, "no error message on stderr"
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in lines if ": error: " in ln]
    assert len(errors) == 1, proc.stderr
    for phrase in phrases:
        assert phrase in proc.stderr, (phrase, proc.stderr)


@pytest.fixture(scope="session")
def keyring_session(tmp_path_factory):
    """A real Secret Service: dbus-daemon + gnome-keyring-daemon, private HOME.

    Yields the variables a helper needs to reach it. Fails (never skips) when the
    daemons are missing: CI must install them.
    """
    for tool in ("dbus-daemon", "gnome-keyring-daemon"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: apt-get install dbus gnome-keyring")
    home = tmp_path_factory.mktemp("keyring-home")
    runtime = home / "run"
    runtime.mkdir(mode=0o700)
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "PATH": os.environ["PATH"]}
    out = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--nopidfile", "--print-address=1", "--print-pid=1"],
        env=env, capture_output=True, text=True, timeout=20, check=True,
    ).stdout.split()
    address, dbus_pid = out[0], int(out[1])
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    keyring = subprocess.Popen(
        ["gnome-keyring-daemon", "--unlock", "--components=secrets", "--foreground"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    keyring.stdin.write(b"test-keyring-password")
    keyring.stdin.close()
    variables = {"DBUS_SESSION_BUS_ADDRESS": address, "XDG_RUNTIME_DIR": str(runtime)}
    probe = [sys.executable, "-c",
             "import keyring; k = keyring.get_keyring(); k.set_password('probe', 'p', 'x');"
             "print(type(k).__module__)"]
    deadline = time.monotonic() + 20
    while True:
        p = subprocess.run(probe, env={**env, **variables}, capture_output=True, text=True)
        if p.returncode == 0 and "SecretService" in p.stdout:
            break
        if time.monotonic() > deadline:
            keyring.kill()
            os.kill(dbus_pid, signal.SIGTERM)
            pytest.fail(f"gnome-keyring did not come up: {p.stdout} {p.stderr}")
        time.sleep(0.1)
    yield {**variables, "KEYRING_HOME": str(home), "KEYRING_PID": keyring.pid}
    stop_process(keyring, grace=5)
    os.kill(dbus_pid, signal.SIGTERM)


@pytest.fixture
def keyring_env(base_env, keyring_session):
    """base_env plus the real keyring session; a fresh service name per test."""
    env = dict(base_env)
    env["DBUS_SESSION_BUS_ADDRESS"] = keyring_session["DBUS_SESSION_BUS_ADDRESS"]
    env["XDG_RUNTIME_DIR"] = keyring_session["XDG_RUNTIME_DIR"]
    env["CREDHELPER_KEYRING_SERVICE"] = f"credhelper-test-{os.urandom(4).hex()}"
    return env
