"""A credential is printed or cached only as a valid HTTP header value: visible ASCII,
nothing else. A value with a space, a control character, a line separator, an ANSI escape
or a lone surrogate exits 5 naming the kind and position of the character (never the
value), writes no cache entry, and the next run asks the backend again.

Real backends: GNOME Keyring here, OpenBao in tests/vault/test_vault_token_chars.py. The
counting test backend carries what no keyring can hold (a lone surrogate, from an
environment variable that is not UTF-8).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import CANARY, assert_failure, fetches, run
from hypothesis import given, strategies as st

from credhelper import output, registry
from credhelper.errors import AccessDenied
from credhelper.provider import Credential, Provider, Setting

# (value, what the error says): each a canary, so conftest.run() proves it never reaches
# stderr or the log.
BAD = [
    (f"{CANARY}-with space", "a space at position 26 of 31"),
    (f"{CANARY}\x0bvt", "a control character (U+000B) at position 21"),
    (f"{CANARY}\u2028ls", "(U+2028) at position 21"),
    (f"\x1b[31m{CANARY}", "an escape character"),
]
SURROGATE = (CANARY + "\udcff", "a lone surrogate")


def cache_entries(env) -> list[str]:
    return [n for n in os.listdir(env["CREDHELPER_CACHE_DIR"]) if n.endswith(".v1.json")] \
        if os.path.isdir(env["CREDHELPER_CACHE_DIR"]) else []


def refused(proc, phrase: str) -> None:
    assert_failure(proc, 5, "not a valid HTTP header value", phrase, "hint: check the value")


# ---------------------------------------------------------------- the check itself


@given(st.text(max_size=60))
def test_a_token_passes_exactly_when_it_is_visible_ascii(token):
    try:
        output.check_token(token, "backend")
    except AccessDenied:
        assert not token or any(not "!" <= c <= "~" for c in token)
        return
    assert token and all("!" <= c <= "~" for c in token)
    assert output.render(token, {}, "token") == token + "\n"


def test_real_token_shapes_pass():
    """JWTs, API keys and what credhelper-aws prints (base64url), and a presigned URL's
    own characters: every visible ASCII character is accepted."""
    for token in ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "sk-ant-api03-AbC_d-e.f~g+h/i=",
                  "aws-v1.aHR0cHM6Ly9n.aHR0cHM6Ly9zdHM_Zm9v", "x?a=1&b=%2F:c#d@e!$'()*,;[]{}|^`\"<>\\",
                  "".join(chr(c) for c in range(0x21, 0x7F))):
        assert output.check_token(token, "backend") == token


def test_backend_headers_are_checked_like_the_credential():
    assert output.check_backend_headers({"X-Team": "ml platform"}, "b") == {"X-Team": "ml platform"}
    for headers, phrase in [({"X-A": "v\x1b[0m"}, "an escape character"),
                            ({"X-A": "v\u2028"}, "U+2028"), ({"X-A": " v"}, "a space at position 1"),
                            ({"X-A": "a  b"}, "a space at position 3"), ({"X A": "v"}, "name"),
                            ({"X-A": 3}, "not text")]:
        with pytest.raises(AccessDenied, match=re.escape(phrase)):
            output.check_backend_headers(headers, "b")


# ---------------------------------------------------------------- the real run


class HeaderProbe(Provider):
    """Returns a good credential with the headers its setting holds (JSON)."""

    name = "headerprobe"
    settings = (Setting("headers_json", credential=False),)

    def describe(self):
        return "the header probe"

    def fetch(self, request):
        return Credential("good-token", time.time() + 3600,
                          headers=json.loads(self.config["headers_json"]))


def test_headers_from_a_backend_are_checked_before_caching(base_env):
    from credhelper.run import helper_main

    registry.register(HeaderProbe)
    env = {**base_env, "CREDHELPER_HEADERPROBE_HEADERS_JSON": json.dumps({"X-A": "\x1b[31mred"})}
    out, err = io.StringIO(), io.StringIO()
    assert helper_main("headerprobe", [], env=env, stdout=out, stderr=err) == 5
    assert out.getvalue() == "" and "header X-A" in err.getvalue()
    assert "\x1b" not in err.getvalue() and not cache_entries(env)
    env["CREDHELPER_HEADERPROBE_HEADERS_JSON"] = json.dumps({"X-A": "red"})
    out = io.StringIO()
    assert helper_main("headerprobe", [], env=env, stdout=out, stderr=io.StringIO()) == 0
    assert json.loads(out.getvalue()) == {"token": "good-token", "headers": {"X-A": "red"}}


@pytest.mark.parametrize("value, phrase", BAD + [SURROGATE],
                         ids=["space", "vt", "u2028", "ansi", "surrogate"])
def test_a_bad_value_is_refused_and_never_cached(counting_env, value, phrase):
    """Was: printed (space, VT, U+2028, ANSI), or cached and then exit 1 on every run
    without asking the backend again (a lone surrogate)."""
    counting_env["CREDHELPER_COUNTING_TOKEN"] = value  # the surrogate reaches it as byte 0xFF
    refused(run("counting", counting_env), phrase)
    assert not cache_entries(counting_env)
    refused(run("counting", counting_env), phrase)  # asked again, refused again
    assert len(fetches(counting_env)) == 2
    counting_env["CREDHELPER_COUNTING_TOKEN"] = CANARY
    p = run("counting", counting_env)
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode(), p.stderr
    assert len(fetches(counting_env)) == 3 and cache_entries(counting_env)


def test_a_line_break_is_named_as_such(counting_env):
    counting_env["CREDHELPER_COUNTING_BEHAVIOUR"] = "newline"
    refused(run("counting", counting_env), "a line break at position 21")


# ---------------------------------------------------------------- GNOME Keyring


def keyring_set(env, value: str) -> None:
    """Write the secret as any other keyring client would (not through `store`, which
    also drops the cached copy: here nothing may have been cached to drop)."""
    code = ("import keyring, sys\n"
            "keyring.set_password(sys.argv[1], 'gateway', sys.stdin.read())\n")
    subprocess.run([sys.executable, "-c", code, env["CREDHELPER_KEYRING_SERVICE"]], env=env,
                   input=value.encode(), check=True, timeout=30)


@pytest.mark.parametrize("value, phrase", BAD, ids=["space", "vt", "u2028", "ansi"])
def test_keyring_bad_value_exit_5_nothing_cached_then_fetched_again(keyring_env, value, phrase):
    keyring_env["CREDHELPER_KEYRING_MAX_AGE"] = "1h"  # a good value would be cached
    keyring_set(keyring_env, value)
    refused(run("credhelper-keyring", keyring_env), phrase)
    assert not cache_entries(keyring_env)
    keyring_set(keyring_env, CANARY)
    p = run("credhelper-keyring", keyring_env)
    assert p.returncode == 0 and p.stdout == f"{CANARY}\n".encode(), p.stderr
    assert cache_entries(keyring_env)


def test_keyring_store_cannot_carry_a_lone_surrogate(keyring_env):
    """The Secret Service holds UTF-8 bytes: a lone surrogate cannot get into the keyring
    (the keyring library's encode refuses it), so this backend never returns one."""
    code = "import keyring, sys; keyring.set_password(sys.argv[1], 'gateway', 'x\\udcff')"
    p = subprocess.run([sys.executable, "-c", code, keyring_env["CREDHELPER_KEYRING_SERVICE"]],
                       env=keyring_env, capture_output=True, timeout=30)
    assert p.returncode != 0 and b"surrogate" in p.stderr


def test_an_entry_cached_by_an_older_version_with_a_bad_value_is_refetched(counting_env, tmp_path):
    """Older versions cached such values (a hit then printed them, or failed with exit 1
    on every run until the entry expired): the entry is now a miss, and rewritten."""
    value_file = tmp_path / "value"
    value_file.write_text(CANARY)
    counting_env["CREDHELPER_COUNTING_VALUE_FILE"] = str(value_file)  # not in the cache key
    assert run("counting", counting_env).returncode == 0
    [name] = cache_entries(counting_env)
    path = os.path.join(counting_env["CREDHELPER_CACHE_DIR"], name)
    with open(path) as f:
        doc = json.load(f)
    doc["token"] = f"{CANARY}\x1b[31m\udcff"  # as an older version wrote it
    with open(path, "w") as f:
        json.dump(doc, f)
    value_file.write_text(f"{CANARY}-new")
    p = run("counting", counting_env)
    assert p.returncode == 0 and p.stdout == f"{CANARY}-new\n".encode(), p.stderr
    assert "ignoring cache entry" in p.stderr and len(fetches(counting_env)) == 2
    assert run("counting", counting_env).stdout == f"{CANARY}-new\n".encode()  # rewritten
    assert len(fetches(counting_env)) == 2
