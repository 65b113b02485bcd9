"""Outputs for callers other than the app: ``output = "headers"`` / ``"x-api-key-headers"``
(a headers helper: Claude Code's ``headersHelper`` for MCP servers) and ``output =
"exec-credential"`` (a Kubernetes client-go credential plugin), on the full path and on
the cache hit, through the real GNOME Keyring and the counting test backend."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CANARY, COUNTING, assert_failure, fetches, run

from credhelper import output
from credhelper.errors import ConfigError


def _jwt(exp: int, tail: str = CANARY) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'RS256', 'typ': 'JWT'})}.{enc({'sub': 'alice', 'exp': exp})}.{tail}"


def _rfc3339(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(when)))


def _entry(env) -> dict:
    [path] = Path(env["CREDHELPER_CACHE_DIR"]).glob("*-*.v1.json")
    return json.loads(path.read_text())


def _one_json_line(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text
    return json.loads(text)


# ---------------------------------------------------------------- the real keyring


def test_keyring_headers_for_a_headers_helper(keyring_env):
    token = _jwt(int(time.time()) + 3600)
    assert run(["credhelper-keyring", "store"], keyring_env, input=token + "\n").returncode == 0
    env = {**keyring_env, "CREDHELPER_KEYRING_OUTPUT": "headers",
           "CREDHELPER_DEFAULTS_HEADERS": '{"X-Team": "ml"}'}
    first = run("credhelper-keyring", env)  # full path
    again = run(["credhelper-keyring", "--debug"], env)  # the cache hit
    assert "cache hit:" in again.stderr
    for proc in (first, again):
        assert _one_json_line(proc) == {"Authorization": f"Bearer {token}", "X-Team": "ml"}
    api_key = run("credhelper-keyring", {**env, "CREDHELPER_KEYRING_OUTPUT": "x-api-key-headers"})
    assert _one_json_line(api_key) == {"x-api-key": token, "X-Team": "ml"}


def test_keyring_exec_credential_carries_the_jwt_expiry(keyring_env):
    exp = int(time.time()) + 3600
    token = _jwt(exp)
    assert run(["credhelper-keyring", "store"], keyring_env, input=token + "\n").returncode == 0
    env = {**keyring_env, "CREDHELPER_KEYRING_OUTPUT": "exec-credential"}
    first = run("credhelper-keyring", env)
    again = run(["credhelper-keyring", "--debug"], env)
    assert "cache hit:" in again.stderr
    expected = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                "status": {"token": token, "expirationTimestamp": _rfc3339(exp)}}
    assert _one_json_line(first) == expected and _one_json_line(again) == expected


def test_keyring_exec_credential_without_an_expiry_omits_it(keyring_env):
    """An opaque secret without max_age has no expiry (and is not cached): the
    ExecCredential leaves expirationTimestamp out, so client-go holds it until a 401."""
    assert run(["credhelper-keyring", "store"], keyring_env, input=CANARY + "\n").returncode == 0
    env = {**keyring_env, "CREDHELPER_KEYRING_OUTPUT": "exec-credential"}
    proc = run("credhelper-keyring", env)
    assert _one_json_line(proc)["status"] == {"token": CANARY}


# ---------------------------------------------------------------- the counting backend


@pytest.mark.parametrize("path", ["full", "hit"])
def test_exec_credential_expiry_is_the_cache_entrys(counting_env, path):
    env = {**counting_env, "CREDHELPER_COUNTING_OUTPUT": "exec-credential",
           "CREDHELPER_COUNTING_TTL": "2h"}
    proc = run("counting", env)
    if path == "hit":
        proc = run(["counting", "--debug"], env)
        assert "cache hit:" in proc.stderr
    assert len(fetches(env)) == 1
    status = _one_json_line(proc)["status"]
    assert status == {"token": CANARY,
                      "expirationTimestamp": _rfc3339(_entry(env)["expires_at"])}


@pytest.mark.parametrize("form, header, value", [
    ("headers", "Authorization", f"Bearer {CANARY}"),
    ("x-api-key-headers", "x-api-key", CANARY)])
def test_headers_forms_on_both_paths(counting_env, form, header, value):
    env = {**counting_env, "CREDHELPER_COUNTING_OUTPUT": form}
    for _ in range(2):  # the full path, then the hit
        assert _one_json_line(run("counting", env)) == {header: value}
    assert len(fetches(env)) == 1


@pytest.mark.parametrize("form, clash", [("headers", "authorization"),
                                         ("x-api-key-headers", "X-Api-Key")])
def test_a_configured_header_that_clashes_with_the_credentials_exits_2(counting_env, form, clash):
    env = {**counting_env, "CREDHELPER_COUNTING_OUTPUT": form,
           "CREDHELPER_COUNTING_HEADERS": json.dumps({clash: "something else"})}
    assert_failure(run("counting", env), 2, "sets it too", "hint: remove")


def test_exec_credential_with_headers_exits_2_on_both_paths(counting_env):
    env = {**counting_env, "CREDHELPER_COUNTING_OUTPUT": "exec-credential"}
    assert run("counting", env).returncode == 0  # cached, snapshot written
    env["CREDHELPER_COUNTING_HEADERS"] = '{"X-Team": "ml"}'
    assert_failure(run("counting", env), 2, "cannot carry the headers setting", "X-Team")
    assert len(fetches(env)) == 1  # the cached credential was found, just not printable
    with pytest.raises(ConfigError):  # what the hit path would do with such a snapshot
        output.render(CANARY, {"X-Team": "ml"}, "exec-credential", time.time())


def test_an_unknown_output_is_a_configuration_error(counting_env):
    assert_failure(run("counting", {**counting_env, "CREDHELPER_COUNTING_OUTPUT": "yaml"}), 2,
                   "CREDHELPER_COUNTING_OUTPUT", "exec-credential")


HOT_PROBE = """
import json, sys
sys.argv = [sys.argv[0]]
import counting_helper
from credhelper.run import helper_main
before = set(sys.modules)
code = helper_main("counting")
sys.stderr.write(json.dumps({"code": code, "new": sorted(set(sys.modules) - before)}) + "\\n")
"""


@pytest.mark.parametrize("form", ["headers", "exec-credential"])
def test_the_new_outputs_keep_the_hit_light(counting_env, form):
    from test_hot_path import HEAVY

    env = {**counting_env, "CREDHELPER_COUNTING_OUTPUT": form,
           "PYTHONPATH": str(Path(COUNTING).parent)}
    assert run("counting", env).returncode == 0
    p = subprocess.run([sys.executable, "-c", HOT_PROBE], env=env, capture_output=True, text=True)
    report = json.loads(p.stderr.splitlines()[-1])
    assert report["code"] == 0 and CANARY in p.stdout
    heavy = [m for m in report["new"] if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert not heavy and "datetime" not in report["new"], report["new"]


# ---------------------------------------------------------------- render itself


def test_render_forms():
    at = 1_800_000_000.9  # rounded down: never past the real end
    assert output.render("t", {}, "exec-credential", at) == (
        '{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", '
        '"status": {"token": "t", "expirationTimestamp": "2027-01-15T08:00:00Z"}}\n')
    assert output.render("t", {"X-A": "b"}, "headers") == (
        '{"Authorization": "Bearer t", "X-A": "b"}\n')
    assert output.render("t", None, "x-api-key-headers") == '{"x-api-key": "t"}\n'
    assert output.render("t", {}, "token", at) == "t\n"  # the app's forms are unchanged
    assert output.render("t", {"X-A": "b"}, "token") == '{"token": "t", "headers": {"X-A": "b"}}\n'
    assert output.rfc3339(253402300799) == "9999-12-31T23:59:59Z"  # the last cacheable expiry
