"""The advisory refresh window (``refresh_window``): a run that finds an entry in the
window before ``min_validity``, past this machine's moment in it, renews early; before that
moment it is a plain hit; an early renewal that fails serves the cached entry quietly and
never asks a person. Real helper processes of the counting test backend (its ``expiry``
setting gives every machine the same expiry), a clock moved with libfaketime, and a cache
directory per machine (each keeps its own random machine id)."""

import json
import os
import time
from pathlib import Path

import pytest
from conftest import CANARY, fetches, run, skewed_clock

from credhelper.cache import MACHINE_ID, Entry, spread_of
from credhelper.snapshot import _well_formed

MIN_VALIDITY = WINDOW = 300.0  # the defaults


def machine(env: dict, tmp_path: Path, name: str, expiry: float) -> dict:
    """``env`` for a machine of its own: its own cache directory and fetch count."""
    return {**env, "CREDHELPER_CACHE_DIR": str(tmp_path / name),
            "CREDHELPER_COUNTING_COUNT_FILE": str(tmp_path / f"{name}-fetches"),
            "CREDHELPER_COUNTING_EXPIRY": str(expiry)}


def at(env: dict, when: float) -> dict:
    """``env`` for a helper whose clock shows ``when`` (to the second)."""
    return skewed_clock(env, f"{round(when - time.time()):+d}")


def entry_file(env: dict) -> Path:
    [path] = Path(env["CREDHELPER_CACHE_DIR"]).glob("counting-*.v1.json")
    return path


def snapshot_spread(env: dict) -> float:
    path = Path(env["CREDHELPER_CACHE_DIR"]) / "snapshot-counting.json"
    return json.loads(path.read_bytes())["settings"]["spread"]


def moment(env: dict) -> float:
    """When this machine starts renewing its entry early, from its snapshot's spread."""
    entry = Entry.loads(entry_file(env).read_bytes())
    return entry.early_refresh_from(MIN_VALIDITY, WINDOW, snapshot_spread(env))


def restore(env: dict, data: bytes) -> None:
    """Put an entry back as it was (an early renewal replaces it)."""
    fd = os.open(entry_file(env), os.O_WRONLY | os.O_TRUNC)
    os.write(fd, data)
    os.close(fd)


def ok(proc, token: str = CANARY) -> None:
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{token}\n".encode()


@pytest.fixture
def expiry():
    """One expiry for every machine, an hour away (the window is not capped by the
    entry's mid-life, which is half an hour from now)."""
    return int(time.time()) + 3600


def key_of(env: dict) -> str:
    return entry_file(env).name.split("-", 1)[1].split(".")[0]


def id_with_spread(key: str, low: float, high: float) -> str:
    """A machine id whose place in the window for ``key`` is between low and high (ids
    are random in real life; tests pick theirs so that moments are far apart)."""
    return next(i for i in (f"{n:032x}" for n in range(1000)) if low < spread_of(i, key) < high)


def give_id(env: dict, ident: str) -> None:
    directory = Path(env["CREDHELPER_CACHE_DIR"])
    directory.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(directory / MACHINE_ID, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, ident.encode())
    os.close(fd)


@pytest.fixture
def one(counting_env, tmp_path, expiry):
    """A machine with a cached entry, and that entry's bytes. Its moment is in the middle
    part of the window, so that a run 20 s either side of it is still in the window."""
    env = machine(counting_env, tmp_path, "one", expiry)
    ok(run("counting", env))
    give_id(env, id_with_spread(key_of(env), 0.3, 0.7))
    (Path(env["CREDHELPER_CACHE_DIR"]) / "snapshot-counting.json").unlink()
    ok(run("counting", env))  # a hit on the full path, which writes the new place
    assert len(fetches(env)) == 1 and 0.3 < snapshot_spread(env) < 0.7
    return env, entry_file(env).read_bytes()


def test_two_machines_with_the_same_expiry_renew_at_different_stable_moments(
        counting_env, tmp_path, expiry):
    # The key is the same on every machine: learn it, then give the two machines ids
    # whose places in the window are far apart (the ids are random in real life).
    probe = machine(counting_env, tmp_path, "probe", expiry)
    ok(run("counting", probe))
    key = key_of(probe)
    machines = []
    for name, low, high in (("a", 0.15, 0.35), ("b", 0.65, 0.85)):
        env = machine(counting_env, tmp_path, name, expiry)
        give_id(env, id_with_spread(key, low, high))
        ok(run("counting", env))
        assert len(fetches(env)) == 1
        assert Entry.loads(entry_file(env).read_bytes()).expires_at == expiry
        machines.append((env, entry_file(env).read_bytes()))
    (a, a_entry), (b, b_entry) = machines
    later, earlier = sorted(machines, key=lambda m: moment(m[0]))[::-1]
    t_early, t_late = moment(earlier[0]), moment(later[0])
    assert expiry - MIN_VALIDITY - WINDOW < t_early < t_late - 60 < expiry - MIN_VALIDITY - 60

    def runs_at(when: float) -> list[int]:
        """Fetches each machine makes in one run at ``when``, from its cached entry."""
        made = []
        for env, data in machines:
            restore(env, data)
            before = len(fetches(env))
            ok(run("counting", at(env, when)))
            made.append(len(fetches(env)) - before)
        return made

    def by_moment(made: list[int]) -> tuple[int, int]:
        return (made[0], made[1]) if earlier is machines[0] else (made[1], made[0])

    assert runs_at(t_early - 20) == [0, 0]  # before both moments: plain hits
    assert by_moment(runs_at((t_early + t_late) / 2)) == (1, 0)  # only one has renewed
    assert runs_at(t_late + 20) == [1, 1]  # past both
    # The same machines again, through the full path (no snapshot): the same moments.
    spreads = [snapshot_spread(a), snapshot_spread(b)]
    for env, _ in machines:
        (Path(env["CREDHELPER_CACHE_DIR"]) / "snapshot-counting.json").unlink()
    assert by_moment(runs_at((t_early + t_late) / 2)) == (1, 0)
    assert [snapshot_spread(a), snapshot_spread(b)] == spreads
    assert runs_at(t_early - 20) == [0, 0]


@pytest.mark.parametrize("path", ["hot", "full"])
def test_before_its_moment_a_machine_serves_the_entry_and_fetches_nothing(one, path):
    env, data = one
    when = moment(env)
    if path == "full":
        (Path(env["CREDHELPER_CACHE_DIR"]) / "snapshot-counting.json").unlink()
    p = run(["counting", "--debug"], at(env, when - 15))
    ok(p)
    assert len(fetches(env)) == 1 and entry_file(env).read_bytes() == data
    assert "cache hit" in p.stderr
    p = run(["counting", "--debug"], at(env, when + 15))
    ok(p)
    assert len(fetches(env)) == 2 and "renewing it early" in p.stderr


@pytest.mark.parametrize("behaviour, code", [("unavailable", 4), ("refused", 5), ("login", 3)])
def test_an_early_renewal_that_fails_serves_the_cached_entry_quietly(one, behaviour, code):
    env, data = one
    failing = {**env, "CREDHELPER_COUNTING_BEHAVIOUR": behaviour}
    p = run("counting", at(failing, moment(env) + 20))
    ok(p)
    assert p.stderr == ""  # not a warning on every run: the renewal due later says it
    assert len(fetches(env)) == 2  # the backend was asked once
    assert entry_file(env).read_bytes() == data  # the entry is kept as it was
    p = run(["counting", "--debug"], at(failing, moment(env) + 20))
    ok(p)
    assert "early renewal failed" in p.stderr and len(fetches(env)) == 3
    # Once min_validity is reached the renewal is due: the same failure is what it always
    # was (exit 4 and 3 served stale with a warning, a refusal not).
    p = run("counting", at(failing, Entry.loads(data).expires_at - MIN_VALIDITY + 10))
    if code == 5:
        assert p.returncode == 5 and p.stdout == b""
    else:
        ok(p)
        assert "warning" in p.stderr


def test_an_early_renewal_never_asks_a_person(one, tmp_path):
    """Even in the interactive context: the counting backend's "login" behaviour signs a
    person in when the run may ask, and refuses (exit 3) when it may not."""
    env, data = one
    newer = tmp_path / "value"
    newer.write_text("canary-renewed-7f1d9c")
    person = {**env, "CLAUDE_HELPER_CONTEXT": "interactive",
              "CREDHELPER_COUNTING_BEHAVIOUR": "login",
              "CREDHELPER_COUNTING_VALUE_FILE": str(newer)}
    ok(run("counting", at(person, moment(env) + 20)))  # the cached credential
    assert fetches(env)[-1].endswith("interactive False")
    assert entry_file(env).read_bytes() == data
    # The renewal due at min_validity is an ordinary one: it may ask.
    due = Entry.loads(data).expires_at - MIN_VALIDITY + 10
    ok(run("counting", at(person, due)), "canary-renewed-7f1d9c")
    assert fetches(env)[-1].endswith("interactive True")


def test_a_machine_renews_early_once_and_does_not_flap(one, tmp_path):
    env, data = one
    newer = tmp_path / "value"
    newer.write_text("canary-renewed-7f1d9c")
    renewing = {**env, "CREDHELPER_COUNTING_VALUE_FILE": str(newer)}
    when = moment(env) + 20
    ok(run("counting", at(renewing, when)), "canary-renewed-7f1d9c")
    assert len(fetches(env)) == 2
    # The backend gave the same expiry again: the new entry is past its mid-life, so no
    # later run renews it early again (each would fetch the same credential).
    for later in (when + 5, when + 60):
        ok(run("counting", at(renewing, later)), "canary-renewed-7f1d9c")
    assert len(fetches(env)) == 2


def test_refresh_window_0_turns_early_renewal_off(one):
    env, _ = one
    off = {**env, "CREDHELPER_DEFAULTS_REFRESH_WINDOW": "0"}
    when = moment(env) + 20  # past this machine's moment: it would renew early
    for _ in range(2):  # the full path, then the hot path from its snapshot
        ok(run("counting", at(off, when)))
    assert len(fetches(env)) == 1
    assert snapshot_spread(env) == 0.0


def test_the_machine_id_is_made_once_private_and_the_hot_path_does_not_read_it(one):
    env, _ = one
    path = Path(env["CREDHELPER_CACHE_DIR"]) / MACHINE_ID
    ident = path.read_bytes()
    assert len(ident) == 32 and int(ident, 16) >= 0
    assert path.stat().st_mode & 0o777 == 0o600
    spread = snapshot_spread(env)
    assert 0 <= spread < 1
    (Path(env["CREDHELPER_CACHE_DIR"]) / "snapshot-counting.json").unlink()
    ok(run("counting", env))  # the full path reads it again: the same place
    assert path.read_bytes() == ident and snapshot_spread(env) == spread
    path.unlink()
    ok(run("counting", env))  # a hit: the place comes from the snapshot
    assert not path.exists() and len(fetches(env)) == 1


def test_a_damaged_machine_id_is_replaced(one):
    env, _ = one
    path = Path(env["CREDHELPER_CACHE_DIR"]) / MACHINE_ID
    path.write_bytes(b"not an id")
    (Path(env["CREDHELPER_CACHE_DIR"]) / "snapshot-counting.json").unlink()
    ok(run("counting", env))
    assert len(path.read_bytes()) == 32 and path.stat().st_mode & 0o777 == 0o600


def test_a_snapshot_with_a_bad_window_or_spread_is_not_used():
    good = {"cache": "file", "key": "abc123", "min_validity": 300.0, "refresh_grace": 10.0,
            "refresh_window": 300.0, "spread": 0.5, "output": "token", "headers": {},
            "log_file": None, "timeout": 58.0}  # as the full path writes it
    assert _well_formed(good)
    for field, value in (("spread", 1.0), ("spread", -0.1), ("spread", "0.5"),
                         ("spread", None), ("refresh_window", float("nan")),
                         ("refresh_window", True)):
        assert not _well_formed({**good, field: value}), (field, value)
    assert not _well_formed({k: v for k, v in good.items() if k != "spread"})


def test_the_early_moment_is_inside_the_window_and_never_before_mid_life():
    entry = Entry("p", "k", "t", {}, expires_at=10_000.0, fetched_at=6_400.0, details={})
    end = 10_000.0 - MIN_VALIDITY
    assert entry.early_refresh_from(MIN_VALIDITY, WINDOW, 0.0) == end
    assert entry.early_refresh_from(MIN_VALIDITY, WINDOW, 0.999) == pytest.approx(
        end - 0.999 * WINDOW)
    # A 15-minute credential: the window shrinks to what is left after its mid-life.
    short = Entry("p", "k", "t", {}, expires_at=10_000.0, fetched_at=9_100.0, details={})
    assert short.early_refresh_from(MIN_VALIDITY, WINDOW, 0.999) >= 9_550.0
    # Shorter than twice min_validity: never early.
    tiny = Entry("p", "k", "t", {}, expires_at=10_000.0, fetched_at=9_500.0, details={})
    assert tiny.early_refresh_from(MIN_VALIDITY, WINDOW, 0.999) == end
