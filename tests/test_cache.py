"""The cache (DESIGN §3): private files, atomic writes, keys, expiry, locks, stale-if-error."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import CANARY, COUNTING, assert_failure, fetches, run

from credhelper import securefile
from credhelper.cache import Entry
from credhelper.errors import CacheError


def entry_files(env) -> list[Path]:
    return sorted(Path(env["CREDHELPER_CACHE_DIR"]).glob("counting-*.v1.json"))


def test_files_are_private(counting_env):
    assert run("counting", counting_env).returncode == 0
    cache = Path(counting_env["CREDHELPER_CACHE_DIR"])
    assert cache.stat().st_mode & 0o777 == 0o700
    files = [p for p in cache.iterdir()]
    assert files
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, path


@pytest.mark.unsafe_cache
def test_cache_dir_open_to_others_is_refused(counting_env):
    cache = Path(counting_env["CREDHELPER_CACHE_DIR"])
    cache.mkdir(mode=0o755)
    cache.chmod(0o755)
    assert_failure(run("counting", counting_env), 2, "lets others in", "chmod 700")


def test_symlinked_cache_dir_is_refused(counting_env, tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    Path(counting_env["CREDHELPER_CACHE_DIR"]).symlink_to(real)
    assert_failure(run("counting", counting_env), 2, "symbolic link")


def test_symlinked_entry_is_refused(counting_env, tmp_path):
    assert run("counting", counting_env).returncode == 0
    [entry] = entry_files(counting_env)
    target = tmp_path / "target"
    target.write_bytes(entry.read_bytes())
    target.chmod(0o600)
    entry.unlink()
    entry.symlink_to(target)
    assert_failure(run("counting", counting_env), 2, "symbolic link")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_entry_owned_by_another_user_is_refused(counting_env):
    assert run("counting", counting_env).returncode == 0
    [entry] = entry_files(counting_env)
    os.chown(entry, 4321, -1)
    assert_failure(run("counting", counting_env), 2, "owned by uid 4321")


@pytest.mark.unsafe_cache
def test_group_readable_entry_is_refused(counting_env):
    assert run("counting", counting_env).returncode == 0
    [entry] = entry_files(counting_env)
    entry.chmod(0o640)
    assert_failure(run("counting", counting_env), 2, "chmod 600")


@pytest.mark.parametrize("damage", [
    lambda b: b[: len(b) // 2],  # truncated
    lambda b: b"\x00\xff garbage",  # corrupt
    lambda b: b.replace(b'"format": 1', b'"format": 99'),  # another format version
    lambda b: b.replace(b'"expires_at": ', b'"expires_at": "x", "was": '),  # wrong type
    lambda b: b.replace(b'"expires_at": ', b'"expires_at": Infinity, "was": '),  # fresh forever?
    lambda b: b.replace(b'"expires_at": ', b'"expires_at": NaN, "was": '),
    lambda b: b"",
], ids=["truncated", "corrupt", "newer-format", "wrong-type", "infinite-expiry", "nan-expiry",
        "empty"])
def test_damaged_entry_is_a_miss_with_a_warning(counting_env, damage):
    assert run("counting", counting_env).returncode == 0
    [entry] = entry_files(counting_env)
    entry.write_bytes(damage(entry.read_bytes()))
    p = run("counting", counting_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{CANARY}\n".encode()
    assert "warning: ignoring cache entry" in p.stderr
    assert len(fetches(counting_env)) == 2
    Entry.loads(entry.read_bytes())  # rewritten whole


def test_a_setting_change_changes_the_key(counting_env):
    assert run("counting", counting_env).returncode == 0
    counting_env["CREDHELPER_COUNTING_TOKEN"] = CANARY + "-rotated"
    p = run("counting", counting_env)
    assert p.stdout == f"{CANARY}-rotated\n".encode()
    assert len(entry_files(counting_env)) == 2 and len(fetches(counting_env)) == 2


def test_an_identity_variable_change_changes_the_key(counting_env):
    counting_env["COUNTING_IDENTITY"] = "alice"
    assert run("counting", counting_env).returncode == 0
    assert run("counting", counting_env).returncode == 0
    assert len(fetches(counting_env)) == 1
    counting_env["COUNTING_IDENTITY"] = "bob"  # same settings, another caller
    assert run("counting", counting_env).returncode == 0
    assert len(fetches(counting_env)) == 2 and len(entry_files(counting_env)) == 2


def test_a_config_file_change_is_noticed_by_the_hit_path(counting_env, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[counting]\nttl = "1h"\n')
    counting_env["CREDHELPER_CONFIG"] = str(config)
    assert run("counting", counting_env).returncode == 0
    assert run("counting", counting_env).returncode == 0
    assert len(fetches(counting_env)) == 1
    config.write_text('[counting]\nttl = "2h"\n')  # same size: the mtime/inode must tell
    os.utime(config, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert run("counting", counting_env).returncode == 0
    assert len(fetches(counting_env)) == 2


def test_a_non_credential_setting_keeps_the_entry(counting_env):
    assert run("counting", counting_env).returncode == 0
    counting_env["CREDHELPER_DEFAULTS_TIMEOUT"] = "10s"
    assert run("counting", counting_env).returncode == 0
    assert len(fetches(counting_env)) == 1


def test_min_validity_renews_early(counting_env):
    counting_env["CREDHELPER_COUNTING_TTL"] = "10m"
    assert run("counting", counting_env).returncode == 0
    assert run("counting", counting_env).returncode == 0
    assert len(fetches(counting_env)) == 1  # 10 minutes left > 5 minute default
    counting_env["CREDHELPER_DEFAULTS_MIN_VALIDITY"] = "11m"
    p = run("counting", counting_env)
    assert p.returncode == 0
    assert "less than min_validity" in p.stderr  # the backend cannot do better: say so
    assert len(fetches(counting_env)) == 2


def test_expired_entry_is_refetched(counting_env):
    assert run("counting", counting_env).returncode == 0
    [entry] = entry_files(counting_env)
    doc = json.loads(entry.read_bytes())
    doc["expires_at"] = time.time() - 1
    entry.write_text(json.dumps(doc))
    assert run("counting", counting_env).stdout == f"{CANARY}\n".encode()
    assert len(fetches(counting_env)) == 2


def test_no_expiry_and_no_max_age_is_not_cached(counting_env):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "no-expiry"
    assert run("counting", counting_env).returncode == 0
    assert run("counting", counting_env).returncode == 0
    assert entry_files(counting_env) == [] and len(fetches(counting_env)) == 2


def test_max_age_gives_an_expiry(counting_env):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "no-expiry"
    counting_env["CREDHELPER_DEFAULTS_MAX_AGE"] = "20m"
    assert run("counting", counting_env).returncode == 0
    assert run("counting", counting_env).returncode == 0
    assert len(fetches(counting_env)) == 1
    [entry] = entry_files(counting_env)
    left = json.loads(entry.read_bytes())["expires_at"] - time.time()
    assert 19 * 60 < left <= 20 * 60


def _age_entry(env, seconds_left):
    [entry] = entry_files(env)
    doc = json.loads(entry.read_bytes())
    doc["expires_at"] = time.time() + seconds_left
    securefile.write_private(str(entry), json.dumps(doc).encode())


@pytest.mark.parametrize("behaviour, code", [("unavailable", 4), ("login", 3)])
def test_stale_if_error_serves_a_still_valid_entry(counting_env, behaviour, code):
    assert run("counting", counting_env).returncode == 0
    _age_entry(counting_env, 120)  # valid, but inside min_validity: renewal is due
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = behaviour
    p = run("counting", counting_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{CANARY}\n".encode()
    assert "serving the cached credential" in p.stderr
    _age_entry(counting_env, -1)  # expired: nothing to fall back on
    assert_failure(run("counting", counting_env), code)


def test_a_refusal_is_not_papered_over(counting_env):
    assert run("counting", counting_env).returncode == 0
    _age_entry(counting_env, 120)
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "refused"
    assert_failure(run("counting", counting_env), 5, "permission denied")
    assert len(entry_files(counting_env)) == 1  # the entry is kept all the same


@pytest.fixture
def small_disk(counting_env):
    """The cache directory on its own 64 KiB tmpfs, as a real full or read-only disk.
    Mounting needs root, which scripts/test (and so CI) has; elsewhere this fails loudly."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.fail("the full- and read-only-disk tests mount a tmpfs: run them as root")
    path = counting_env["CREDHELPER_CACHE_DIR"]
    os.makedirs(path, mode=0o700, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", path], check=True)
    yield path
    subprocess.run(["umount", "-l", path], check=False)


def _fill(directory: str) -> None:
    """Write a private filler file until the disk says ENOSPC."""
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError as exc:
        assert exc.errno == 28, exc
    finally:
        os.close(fd)


def _renewal_due(env) -> dict:
    # min_validity is not part of the key: the same entry, but a renewal is due.
    return {**env, "CREDHELPER_DEFAULTS_MIN_VALIDITY": "100000"}


def test_a_full_disk_keeps_the_entry_and_still_prints_the_credential(counting_env, small_disk):
    assert run("counting", counting_env).returncode == 0
    [entry] = entry_files(counting_env)
    before = entry.read_bytes()
    _fill(small_disk)
    p = run("counting", _renewal_due(counting_env))
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{CANARY}\n".encode()
    assert "could not write the cache" in p.stderr and "No space left" in p.stderr
    assert len(fetches(counting_env)) == 2
    assert entry.read_bytes() == before  # the valid entry is whole, not truncated
    assert not list(Path(small_disk).glob(".tmp-*"))  # no half-written leftovers
    # Space again: the next run renews and stores as usual.
    os.remove(os.path.join(small_disk, "filler"))
    assert run("counting", _renewal_due(counting_env)).returncode == 0
    assert entry.read_bytes() != before


def test_a_read_only_cache_costs_the_lock_not_the_run(counting_env, small_disk):
    assert run("counting", counting_env).returncode == 0
    [entry] = entry_files(counting_env)
    before = entry.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", small_disk], check=True)
    hit = run("counting", counting_env)  # a hit only reads
    assert (hit.returncode, hit.stdout, hit.stderr) == (0, f"{CANARY}\n".encode(), "")
    p = run("counting", _renewal_due(counting_env))
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{CANARY}\n".encode()
    assert "cannot lock the cache (Read-only file system" in p.stderr
    assert "could not write the cache" in p.stderr
    assert "Traceback" not in p.stderr
    # The backend down as well: the still-valid entry is served from the read-only disk.
    down = run("counting", {**_renewal_due(counting_env), "CREDHELPER_COUNTING_BEHAVIOUR": "unavailable"})
    assert down.returncode == 0 and down.stdout == f"{CANARY}\n".encode(), down.stderr
    assert "serving the cached credential" in down.stderr
    assert entry.read_bytes() == before


def test_cache_none_fetches_every_time(counting_env):
    counting_env["CREDHELPER_DEFAULTS_CACHE"] = "none"
    for _ in range(2):
        assert run("counting", counting_env).stdout == f"{CANARY}\n".encode()
    assert len(fetches(counting_env)) == 2
    assert entry_files(counting_env) == []


def test_concurrent_cold_runs_fetch_once(counting_env):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "slow"  # widen the race window
    procs = [
        subprocess.Popen([sys.executable, COUNTING], env=counting_env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for _ in range(50)
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 50, [e for _, e in outputs]
    assert {out for out, _ in outputs} == {f"{CANARY}\n".encode()}
    assert len(fetches(counting_env)) == 1


def test_a_lock_held_past_the_deadline_serves_the_cache_or_exits_4(counting_env):
    """Another run (here: this test) holds the key's lock: the run waits until its
    deadline, then serves the still-valid cached credential (stale-if-error), or, with
    none, exits 4 naming the lock file; it fetches nothing."""
    import fasteners

    assert run("counting", counting_env).returncode == 0  # learns the key's file names
    [entry] = entry_files(counting_env)
    lock = fasteners.InterProcessLock(str(entry).replace(".v1.json", ".lock"))
    assert lock.acquire(timeout=5)
    try:
        env = {**counting_env, "CREDHELPER_DEFAULTS_MIN_VALIDITY": "100000",  # renewal due
               "CREDHELPER_DEFAULTS_TIMEOUT": "1"}
        started = time.monotonic()
        p = run("counting", env)
        assert 0.9 <= time.monotonic() - started < 6
        assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode(), p.stderr
        assert "held the lock on the cache; serving the cached credential" in p.stderr
        _age_entry(counting_env, -1)  # expired: nothing to fall back on
        assert_failure(run("counting", env), 4, "another credhelper run held the lock on the cache",
                       ".lock")
    finally:
        lock.release()
    assert len(fetches(counting_env)) == 1
    assert run("counting", {**counting_env, "CREDHELPER_DEFAULTS_MIN_VALIDITY": "100000"}).returncode == 0
    assert len(fetches(counting_env)) == 2  # released: the next run renews


# ---------------------------------------------------------------- in-process: securefile


def test_atomic_replace_readers_never_see_a_partial_file(tmp_path):
    directory = tmp_path / "d"
    securefile.ensure_private_dir(str(directory))
    path = str(directory / "entry")
    a, b = b"a" * 300_000, b"b" * 500_000
    securefile.write_private(path, a)
    stop, seen = threading.Event(), set()

    def writer():
        while not stop.is_set():
            securefile.write_private(path, b)
            securefile.write_private(path, a)

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(300):
            seen.add(securefile.read_private(path))
    finally:
        stop.set()
        t.join()
    assert seen <= {a, b}
    assert not [n for n in os.listdir(directory) if n.startswith(".tmp-")]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    directory = tmp_path / "d"
    securefile.ensure_private_dir(str(directory))
    path = str(directory / "entry")
    securefile.write_private(path, b"old")

    def full_disk(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError):
        securefile.write_private(path, b"new")
    monkeypatch.undo()
    assert securefile.read_private(path) == b"old"
    assert os.listdir(directory) == ["entry"]


def test_read_private_refuses_a_fifo_without_blocking(tmp_path):
    directory = tmp_path / "d"
    securefile.ensure_private_dir(str(directory))
    fifo = directory / "entry"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(CacheError, match="not a regular file"):
        securefile.read_private(str(fifo))


KILLED_BEFORE_RENAME = """
import os, signal, sys
import counting_helper
from credhelper.run import helper_main
os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)  # die between write and rename
sys.exit(helper_main("counting", []))
"""


def test_sigkill_between_write_and_rename_loses_nothing(counting_env):
    assert run("counting", counting_env).returncode == 0
    [entry] = entry_files(counting_env)
    before = entry.read_bytes()
    env = {**counting_env, "CREDHELPER_DEFAULTS_MIN_VALIDITY": "2h",  # force a renewal
           "PYTHONPATH": str(Path(COUNTING).parent)}
    p = subprocess.run([sys.executable, "-c", KILLED_BEFORE_RENAME], env=env,
                       capture_output=True, timeout=60)
    assert p.returncode == -9 and p.stdout == b""
    assert len(fetches(counting_env)) == 2  # it did fetch, then died before the rename
    assert entry.read_bytes() == before  # the old entry is whole and untouched
    p = run("counting", counting_env)
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode()
    assert len(fetches(counting_env)) == 2  # served from the surviving entry
