"""The process a run lives in: a closed stderr never opens a way onto stdout, and a run
leaves no core dump (RLIMIT_CORE 0; on Linux, not dumpable once it leaves the cache hit).

tests/probe_helper.py is a backend that writes at the C level to fds 1 and 2, opens a
file, and returns a credential saying what it saw (the file's descriptor, the dumpable
flag, the core limit).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CANARY, COUNTING, fetches, run

PROBE = str(Path(__file__).with_name("probe_helper.py"))


def probe_env(base_env, tmp_path) -> dict:
    return {**base_env, "CREDHELPER_PROBE_SCRATCH": str(tmp_path / "scratch")}


def closed_stderr(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run with file descriptor 2 closed, as `2>&-` in a shell leaves it."""
    return subprocess.run(["sh", "-c", 'exec 2>&-; exec "$@"', "sh", *args], env=env,
                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60)


def core_limit_as_high_as_allowed() -> None:
    """preexec_fn: the soft core limit raised to the hard one, so that a run which does
    not lower it shows a non-zero limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def probed(stdout: bytes) -> dict[str, str]:
    """fd<N>-dumpable<D>-core<SOFT>.<HARD> as a dict."""
    text = stdout.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text
    fd, dumpable, core = text.strip().split("-")
    return {"fd": fd[2:], "dumpable": dumpable[8:], "core": core[4:]}


# ---------------------------------------------------------------- stderr closed


def test_with_stderr_closed_c_level_output_never_reaches_stdout(base_env, tmp_path):
    """Was: the guard's copy of stdout took the free descriptor 2, so a library's write
    to stderr went to stdout, and its redirect of fd 1 failed (C-level output on stdout)."""
    p = closed_stderr([sys.executable, PROBE], probe_env(base_env, tmp_path))
    assert p.returncode == 0
    assert b"chatter" not in p.stdout
    assert int(probed(p.stdout)["fd"]) > 2  # no file the run opens takes a standard number


@pytest.mark.parametrize("behaviour, code", [("refused", 5), ("unavailable", 4), ("bug", 1),
                                             ("print", 0)])
def test_with_stderr_closed_every_exit_code_is_kept(counting_env, behaviour, code):
    """Was: exit 1 for every failure (writing the error line to a missing stderr failed)."""
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = behaviour
    p = closed_stderr([sys.executable, COUNTING], counting_env)
    assert p.returncode == code
    assert p.stdout == (f"{CANARY}\n".encode() if code == 0 else b"")


def test_with_stderr_closed_a_cache_hit_prints_the_credential(counting_env):
    assert run("counting", counting_env).returncode == 0
    p = closed_stderr([sys.executable, COUNTING, "--debug"], counting_env)
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode()
    assert len(fetches(counting_env)) == 1


# ---------------------------------------------------------------- core dumps


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_fetching_run_is_not_dumpable_and_has_no_core_limit(base_env, tmp_path):
    p = subprocess.run([sys.executable, PROBE], env=probe_env(base_env, tmp_path),
                       capture_output=True, preexec_fn=core_limit_as_high_as_allowed,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    found = probed(p.stdout)
    assert found["dumpable"] == "0" and found["core"] == "0.0", found


def test_a_cache_hit_has_no_core_limit_either(counting_env):
    """The hit is caught while it writes its credential into a pipe that is already full,
    and its limits are read from /proc."""
    assert run("counting", counting_env).returncode == 0
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"x" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    helper = subprocess.Popen([sys.executable, COUNTING], env=counting_env, stdout=write_end,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              preexec_fn=core_limit_as_high_as_allowed)
    os.close(write_end)
    try:
        limit, deadline = None, time.monotonic() + 20
        while time.monotonic() < deadline and helper.poll() is None:
            with open(f"/proc/{helper.pid}/limits") as f:
                limit = next(line.split()[4:6] for line in f if line.startswith("Max core"))
            if limit == ["0", "0"]:
                break
            time.sleep(0.01)
        assert limit == ["0", "0"], limit
    finally:
        with os.fdopen(read_end, "rb") as pipe:
            out = pipe.read()  # drains the pipe: the hit finishes its write and exits
        helper.wait(20)
    assert helper.returncode == 0 and out.endswith(f"{CANARY}\n".encode())
    assert len(fetches(counting_env)) == 1  # it was the hit


HIT_IMPORTS = """
import json, sys
sys.argv = [sys.argv[0]]
import counting_helper
from credhelper.run import helper_main
before = set(sys.modules)
code = helper_main("counting")
sys.stderr.write(json.dumps({"code": code, "new": sorted(set(sys.modules) - before)}) + "\\n")
"""


def test_the_hardening_costs_a_cache_hit_no_ctypes(counting_env):
    """ctypes costs ~1.5 ms to import: only a run that leaves the hit path pays for it."""
    assert run("counting", counting_env).returncode == 0
    env = {**counting_env, "PYTHONPATH": str(Path(COUNTING).parent)}
    p = subprocess.run([sys.executable, "-c", HIT_IMPORTS], env=env, capture_output=True,
                       text=True, timeout=60)
    report = json.loads(p.stderr.splitlines()[-1])
    assert report["code"] == 0 and p.stdout == f"{CANARY}\n"
    assert "ctypes" not in report["new"] and "resource" in report["new"] + list(sys.modules)
