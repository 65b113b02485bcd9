"""credhelper-chain with two test backends (``counting`` and ``second``, each counting its
fetches and failing on demand): order, the one time budget, the contexts, the exit code of
a failed chain, and that each backend runs through the core's own path (its cache, its
stale-if-error, its output) while the chain keeps nothing of its own.

On the real services: keyring + Vault in tests/vault/test_chain_vault.py, the OpenID
provider's device sign-in in tests/oidc/test_chain_oidc.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CANARY, COUNTING, assert_failure, fetches, leaked, run

SECOND = CANARY + "-second"
# A chain process that knows the two test backends, as counting_helper.py is one that
# knows the first: `second` is the counting backend under another name and table.
PROGRAM = f"""
import sys
sys.path.insert(0, {str(Path(COUNTING).parent)!r})
from counting_helper import CountingProvider
from credhelper import registry
from credhelper.run import helper_main

class Second(CountingProvider):
    name = "second"
    identity_env = ()

registry.register(Second)
sys.exit(helper_main("chain", sys.argv[1:]))
"""


@pytest.fixture
def chain_env(counting_env, tmp_path):
    env = dict(counting_env)
    env["CREDHELPER_SECOND_TOKEN"] = SECOND
    env["CREDHELPER_SECOND_COUNT_FILE"] = str(tmp_path / "second-fetches")
    env["CREDHELPER_CHAIN_PROVIDERS"] = "counting second"
    return env


def chain(env, *args, timeout=60):
    # (run from HOME: a checkout's credhelper/ in the working directory would shadow the
    # installed package, which alone has credhelper.providers)
    proc = subprocess.run([sys.executable, "-c", PROGRAM, *args], env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL, capture_output=True, cwd=env["HOME"])
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    assert not leaked(proc.stderr), "a secret reached stderr"
    return proc


def second_fetches(env) -> list[str]:
    return fetches({"CREDHELPER_COUNTING_COUNT_FILE": env["CREDHELPER_SECOND_COUNT_FILE"]})


def cache_files(env) -> list[str]:
    return sorted(os.listdir(env["CREDHELPER_CACHE_DIR"]))


def test_the_first_backend_serves_and_the_second_is_not_asked(chain_env):
    proc = chain(chain_env)
    assert proc.returncode == 0 and proc.stdout == f"{CANARY}\n".encode(), proc.stderr
    assert proc.stderr == ""
    assert len(fetches(chain_env)) == 1 and second_fetches(chain_env) == []
    # Its own cache entry: the next chain run is that backend's cache hit.
    again = chain(chain_env, "--debug")
    assert again.stdout == f"{CANARY}\n".encode() and "counting: debug: cache hit:" in again.stderr
    assert len(fetches(chain_env)) == 1


def test_the_next_backend_serves_when_the_first_fails_quietly(chain_env):
    env = {**chain_env, "CREDHELPER_COUNTING_BEHAVIOUR": "refused"}
    proc = chain(env)
    assert proc.returncode == 0 and proc.stdout == f"{SECOND}\n".encode(), proc.stderr
    assert proc.stderr == ""  # the first one's refusal is for --debug and the log file
    debug = chain(env, "--debug")
    assert "counting: permission denied (exit 5)" in debug.stderr
    assert "second gave the credential" in debug.stderr
    log = Path(env["CREDHELPER_DEFAULTS_LOG_FILE"]).read_text()
    assert "counting: permission denied (exit 5)" in log


def test_the_chain_keeps_nothing_of_its_own(chain_env):
    env = {**chain_env, "CREDHELPER_COUNTING_BEHAVIOUR": "refused"}
    assert chain(env).returncode == 0
    files = cache_files(env)
    assert [f for f in files if f.startswith("second-") and f.endswith(".v1.json")]
    assert not [f for f in files if "chain" in f], files  # no entry, no snapshot
    # The entry is the backend's own: logging it out (here: removing it) is final.
    for f in files:
        if f.startswith("second-") and f.endswith(".v1.json"):
            os.unlink(os.path.join(env["CREDHELPER_CACHE_DIR"], f))
    env["CREDHELPER_SECOND_BEHAVIOUR"] = "unavailable"
    assert_failure(chain(env), 4, "warning: second: backend down")


def test_output_is_the_chosen_backends(chain_env):
    env = {**chain_env, "CREDHELPER_COUNTING_BEHAVIOUR": "unavailable",
           "CREDHELPER_SECOND_OUTPUT": "headers", "CREDHELPER_COUNTING_OUTPUT": "json"}
    proc = chain(env)
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"Authorization": f"Bearer {SECOND}"}


# (first's behaviour, second's, the chain's exit code, the line each gives)
FAILURES = [
    ("refused", "unavailable", 4, ["permission denied (exit 5)", ") (exit 4)"]),
    ("unavailable", "refused", 4, ["backend down (it would", "permission denied (exit 5)"]),
    ("refused", "login", 3, ["(exit 5)", "a person must sign in, and this run may not ask"]),
    ("bug", "refused", 5, ["internal error (a bug): ValueError", "(exit 5)"]),
    ("bug", "bug", 1, ["internal error (a bug)", "internal error (a bug)"]),
]


@pytest.mark.parametrize("first, second, code, lines", FAILURES)
def test_a_failed_chain_exits_with_the_most_actionable_code(chain_env, first, second, code, lines):
    env = {**chain_env, "CREDHELPER_COUNTING_BEHAVIOUR": first,
           "CREDHELPER_SECOND_BEHAVIOUR": second}
    proc = chain(env)
    assert_failure(proc, code, "no backend of the chain gave a credential (counting, second)")
    tried = [line for line in proc.stderr.splitlines()
             if line.startswith("credhelper-chain: warning: ")]
    assert len(tried) == 2, proc.stderr
    assert tried[0].startswith("credhelper-chain: warning: counting: ") and lines[0] in tried[0]
    assert tried[1].startswith("credhelper-chain: warning: second: ") and lines[1] in tried[1]
    assert CANARY not in proc.stderr  # the bug's message held the token: redacted


def test_a_configuration_error_outranks_all_but_a_sign_in(chain_env):
    env = {**chain_env, "CREDHELPER_COUNTING_BEHAVIOUR": "unavailable",
           "CREDHELPER_SECOND_TTL": "soon"}  # not a duration: the second's config fails
    assert_failure(chain(env), 2, "CREDHELPER_SECOND_TTL", "(exit 2)", "counting: backend down")
    env["CREDHELPER_COUNTING_BEHAVIOUR"] = "login"
    proc = chain(env)
    assert_failure(proc, 3, "exit 3 from counting", "hint: counting: run credhelper-counting login")


@pytest.mark.parametrize("providers, phrase", [
    ("counting chain", "a chain cannot name itself"),
    ("counting nosuch", "unknown backend 'nosuch'"),
    ("counting counting", "counting is named twice"),
])
def test_a_chain_that_names_itself_or_an_unknown_backend_exits_2_at_once(chain_env, providers,
                                                                         phrase):
    proc = chain({**chain_env, "CREDHELPER_CHAIN_PROVIDERS": providers})
    assert_failure(proc, 2, "CREDHELPER_CHAIN_PROVIDERS (environment)", phrase)
    assert fetches(chain_env) == [] and second_fetches(chain_env) == []


def test_the_chains_own_table_holds_only_the_list(chain_env, tmp_path):
    assert_failure(chain({**chain_env, "CREDHELPER_CHAIN_OUTPUT": "json"}), 2,
                   "CREDHELPER_CHAIN_OUTPUT (environment): the chain has no output of its own")
    config = tmp_path / "config.toml"
    config.write_text('[chain]\nproviders = []\n')
    env = {k: v for k, v in chain_env.items() if k != "CREDHELPER_CHAIN_PROVIDERS"}
    assert_failure(chain({**env, "CREDHELPER_CONFIG": str(config)}), 2, "names no backend")
    config.write_text('[defaults]\noutput = "json"\n[chain]\nproviders = ["second"]\n')
    proc = chain({**env, "CREDHELPER_CONFIG": str(config)})  # [defaults] is every backend's
    assert proc.returncode == 0 and json.loads(proc.stdout)["token"] == SECOND
    assert fetches(chain_env) == []


def test_a_background_run_asks_nobody(chain_env):
    env = {**chain_env, "CREDHELPER_COUNTING_BEHAVIOUR": "login",
           "CREDHELPER_SECOND_BEHAVIOUR": "login", "CLAUDE_HELPER_CONTEXT": "background"}
    assert_failure(chain(env), 3, "counting: a person must sign in", "second: a person must")
    assert [line.split()[1:] for line in fetches(env)] == [["background", "False"]]
    assert [line.split()[1:] for line in second_fetches(env)] == [["background", "False"]]


def test_an_interactive_run_signs_in_to_the_first_that_needs_it_only(chain_env):
    env = {**chain_env, "CREDHELPER_COUNTING_BEHAVIOUR": "login",
           "CREDHELPER_SECOND_BEHAVIOUR": "login", "CLAUDE_HELPER_CONTEXT": "interactive"}
    proc = chain(env)
    assert proc.returncode == 0 and proc.stdout == f"{CANARY}\n".encode(), proc.stderr
    assert "signing in to counting" in proc.stderr
    # Both silently first, as the background context would; then only the first, asking.
    assert [line.split()[1:] for line in fetches(env)] == [["background", "False"],
                                                    ["interactive", "True"]]
    assert [line.split()[1:] for line in second_fetches(env)] == [["background", "False"]]


def test_an_interactive_run_asks_nobody_when_a_backend_serves_silently(chain_env):
    env = {**chain_env, "CREDHELPER_COUNTING_BEHAVIOUR": "login",
           "CLAUDE_HELPER_CONTEXT": "interactive"}
    proc = chain(env)
    assert proc.returncode == 0 and proc.stdout == f"{SECOND}\n".encode()
    assert [line.split()[2] for line in fetches(env)] == ["False"]  # never asked interactively


def test_a_backends_stale_if_error_is_its_own(chain_env):
    """The first backend is down but holds a still-valid entry: its own full path serves
    it with its warning (the chain does not skip to the next backend)."""
    env = {**chain_env, "CREDHELPER_COUNTING_TTL": "2m"}  # always due: min_validity is 5m
    assert chain(env).stdout == f"{CANARY}\n".encode()
    env["CREDHELPER_COUNTING_BEHAVIOUR"] = "unavailable"
    proc = chain(env)
    assert proc.returncode == 0 and proc.stdout == f"{CANARY}\n".encode()
    assert "credhelper-chain: counting: warning: backend down" in proc.stderr
    assert "serving the cached credential" in proc.stderr and second_fetches(env) == []


def test_the_whole_chain_fits_the_apps_budget(chain_env):
    """The first backend hangs: the chain is over within the app's budget (4s here, every
    run ending 2s before), counted from its own start, and the second backend's cached
    credential is still served."""
    env = {**chain_env, "CREDHELPER_DEFAULTS_APP_TIMEOUT": "4s"}
    assert chain({**env, "CREDHELPER_CHAIN_PROVIDERS": "second"}).returncode == 0  # cached
    env["CREDHELPER_COUNTING_BEHAVIOUR"] = "hang"
    start = time.monotonic()
    proc = chain(env)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0 and proc.stdout == f"{SECOND}\n".encode(), proc.stderr
    assert elapsed < 4.0, elapsed
    env["CREDHELPER_SECOND_BEHAVIOUR"] = "hang"
    env["CREDHELPER_SECOND_TTL"] = "2h"  # a new key: nothing cached for the second either
    start = time.monotonic()
    assert_failure(chain(env), 4, "within the app's time budget")
    assert time.monotonic() - start < 4.0


def test_the_umbrella_and_the_script_run_the_chain(chain_env, base_env):
    """`credhelper get --provider chain` is the same run (the umbrella dispatches through
    the same path); the installed console script exists and refuses a bad list."""
    program = PROGRAM.replace('helper_main("chain", sys.argv[1:])',
                              'umbrella_main(["get", "--provider", "chain"])').replace(
        "import helper_main", "import helper_main, umbrella_main")
    proc = subprocess.run([sys.executable, "-c", program], env=chain_env, capture_output=True,
                          cwd=chain_env["HOME"])
    assert proc.returncode == 0 and proc.stdout == f"{CANARY}\n".encode()
    env = {**base_env, "CREDHELPER_CHAIN_PROVIDERS": "keyring chain"}
    assert_failure(run("credhelper-chain", env), 2, "a chain cannot name itself")


def test_status_and_doctor_describe_the_chain(base_env):
    env = {**base_env, "CREDHELPER_CHAIN_PROVIDERS": "keyring vault"}
    status = run(["credhelper-chain", "status", "--json"], env)
    assert status.returncode == 0, status.stderr
    [entry] = json.loads(status.stdout)
    assert entry["backend"]["tries"] == "keyring, then vault"
    doctor = run(["credhelper", "doctor", "--provider", "chain"], env)
    assert "providers: keyring, then vault" in doctor.stdout.decode()
    assert "credhelper doctor --provider vault" in doctor.stdout.decode()
