from conftest import CANARY, run, assert_failure


def test_store_then_get(keyring_env):
    p = run(["credhelper-keyring", "store"], keyring_env, input=CANARY + "\n")
    assert p.returncode == 0, p.stderr
    assert CANARY not in p.stderr
    p = run("credhelper-keyring", keyring_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == (CANARY + "\n").encode()


def test_missing_entry_exits_5(keyring_env):
    p = run("credhelper-keyring", keyring_env)
    assert_failure(p, 5, "credhelper-keyring store")
