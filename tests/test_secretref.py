"""credhelper/secretref.py in-process: the one syntax of every secret-valued setting
(file:PATH, env:VARIABLE, keyring:SERVICE/USER, or the value in clear), its one validation
and its errors, driven with a made-up run environment and an in-memory keyring.

The property tests feed it any string: it resolves to one clean line, or fails with a
contract error (exit 2, or 4 for a keyring that cannot be reached), never with another
exception, and its messages show the reference (a path, a variable name, a keyring entry)
but never what the reference holds. The real services (OpenBao, the OpenID provider,
GNOME Keyring) are exercised through the backends in tests/vault and tests/oidc.
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from credhelper import secretref
from credhelper.config import ProviderConfig, Value
from credhelper.errors import BackendUnavailable, ConfigError, CredhelperError, LoginRequired
from credhelper.log import Log
from credhelper.provider import Request, Setting

MARK = "canary-Zq7mark"  # inside every secret the tests make: never in a message


class Lines:
    """A stderr that keeps what the log writes."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text
        return len(text)

    def flush(self):
        pass


def make_request(env: dict | None = None, out: Lines | None = None) -> Request:
    return Request(context="background", interactive=False, deadline=time.monotonic() + 30,
                   login_deadline=time.monotonic() + 30,
                   log=Log("test", out or Lines(), debug=out is not None), env=env or {})


def make_config(values: dict, env_names: dict | None = None) -> ProviderConfig:
    """A resolved configuration: name -> (value, source)."""
    out = {}
    for name, (value, source) in values.items():
        out[name] = Value(value, source, Setting(name, secret=True,
                                                 env=tuple((env_names or {}).get(name, ()))))
    return ProviderConfig("test", out)


def in_file(name: str) -> str:
    return f"[test] {name} in user config /home/ada/.config/credhelper/config.toml"


class MemoryKeyring:
    """A keyring backend in memory (the real Secret Service is in tests/vault, tests/oidc)."""

    def __init__(self, items=None, error: Exception | None = None):
        from keyring.backend import KeyringBackend

        outer = self

        class Backend(KeyringBackend):
            priority = 1

            def get_password(self, service, username):
                if outer.error is not None:
                    raise outer.error
                return outer.items.get((service, username))

            def set_password(self, service, username, password):
                outer.items[(service, username)] = password

            def delete_password(self, service, username):
                outer.items.pop((service, username), None)

        self.items, self.error, self.backend = dict(items or {}), error, Backend()


@pytest.fixture
def memory_keyring():
    import keyring

    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory.backend)
    yield memory
    keyring.set_keyring(previous)


# ---------------------------------------------------------------- the syntax


@pytest.mark.parametrize("value, kind, target", [
    ("file:/run/secrets/id", "file", "/run/secrets/id"),
    ("file:~/secret", "file", "~/secret"),
    ("file:C:\\secrets\\id", "file", "C:\\secrets\\id"),
    ("env:GATEWAY_SECRET", "env", "GATEWAY_SECRET"),
    ("keyring:svc/ada@example.com", "keyring", "svc/ada@example.com"),
    ("keyring:svc/a/b", "keyring", "svc/a/b"),  # the first slash ends the service
    ("s3cr3t", "literal", ""),
    ("File:/x", "literal", ""),  # prefixes are lower case
    ("vault:x", "literal", ""),
    ("", "literal", ""),
])
def test_parse(value, kind, target):
    assert secretref.parse(value) == secretref.Ref(kind, target)


@pytest.mark.parametrize("value, words", [
    ("file:", "file: needs a path"),
    ("file:   ", "file: needs a path"),
    ("env:", "env: needs the name of a variable"),
    ("env:A=B", "env: needs the name of a variable"),
    ("env: A", "env: needs the name of a variable"),
    ("keyring:svc", "keyring: needs a service and a user"),
    ("keyring:/user", "keyring: needs a service and a user"),
    ("keyring:svc/", "keyring: needs a service and a user"),
])
def test_a_malformed_reference_is_a_config_error_naming_the_setting(value, words):
    with pytest.raises(ConfigError) as caught:
        secretref.parse(value, in_file("secret"))
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith(in_file("secret")) and words in caught.value.message


# ---------------------------------------------------------------- each form


def test_file_with_home_from_the_runs_environment(tmp_path, monkeypatch):
    (tmp_path / "secret").write_text(f"  {MARK}-file \n")
    monkeypatch.setenv("HOME", "/nonexistent")  # the process's HOME is not the run's
    request = make_request({"HOME": str(tmp_path)})
    assert secretref.value_of(request, "file:~/secret", "test secret") == f"{MARK}-file"
    assert secretref.value_of(request, f"file:{tmp_path}/secret", "x") == f"{MARK}-file"


def test_env_reads_the_runs_environment_not_the_process(monkeypatch):
    monkeypatch.setenv("SVC_SECRET", "from-the-process")
    request = make_request({"SVC_SECRET": f" {MARK}-env\n"})
    assert secretref.value_of(request, "env:SVC_SECRET", "x") == f"{MARK}-env"
    with pytest.raises(ConfigError, match="OTHER is not set"):
        secretref.value_of(make_request({}), "env:OTHER", "x")
    with pytest.raises(ConfigError, match="BLANK is empty"):
        secretref.value_of(make_request({"BLANK": "  "}), "env:BLANK", "x")
    assert secretref.value_of(make_request({}), "env:OTHER", "x", missing_ok=True) is None


def test_keyring_entry(memory_keyring):
    memory_keyring.items[("svc", "ada")] = MARK + "-keyring"
    assert secretref.value_of(make_request(), "keyring:svc/ada", "x") == MARK + "-keyring"
    with pytest.raises(ConfigError) as caught:
        secretref.value_of(make_request(), "keyring:svc/bob", "client secret", "src")
    assert "no client secret in the keyring for service 'svc', user 'bob' (src)" in (
        caught.value.message)
    assert caught.value.hint == "store it: keyring set svc bob"


def test_keyring_unreachable_exits_4_and_locked_exits_3(memory_keyring):
    from keyring.errors import KeyringLocked, NoKeyringError

    memory_keyring.error = NoKeyringError("no backend")
    with pytest.raises(BackendUnavailable, match="cannot read the x from the keyring"):
        secretref.value_of(make_request(), "keyring:svc/ada", "x")
    memory_keyring.error = KeyringLocked("locked")
    with pytest.raises(LoginRequired, match="is locked"):
        secretref.value_of(make_request(), "keyring:svc/ada", "x")
    memory_keyring.error = RuntimeError("D-Bus went away")  # any other failure: exit 4
    with pytest.raises(BackendUnavailable):
        secretref.value_of(make_request(), "keyring:svc/ada", "x")


def test_no_usable_keyring_exits_4_rather_than_nothing_stored(memory_keyring):
    import keyring
    from keyring.backends import chainer, fail

    for stand_in in (fail.Keyring(), chainer.ChainerBackend()):
        keyring.set_keyring(stand_in)
        if isinstance(stand_in, chainer.ChainerBackend) and stand_in.backends:
            continue  # this machine has a real backend: the empty chain cannot be made
        with pytest.raises(BackendUnavailable, match="no usable OS keyring"):
            secretref.value_of(make_request(), "keyring:svc/ada", "x")


def test_without_the_keyring_library_a_keyring_reference_is_a_config_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring -> ImportError
    with pytest.raises(ConfigError, match="needs the keyring library"):
        secretref.value_of(make_request(), "keyring:svc/ada", "x")


def test_the_literal(monkeypatch):
    assert secretref.value_of(make_request(), f" {MARK}-clear ", "x") == f"{MARK}-clear"


# ---------------------------------------------------------------- one validation


@pytest.mark.parametrize("content, words", [
    (b"", "is empty"),
    (b" \n\t\n", "is empty"),
    (b"line one\nline two\n", "spans several lines"),
    (b"a\rb", "spans several lines"),
    (b"a\0b", "holds a NUL"),
    (b"\xff\xfe\x00", "is not UTF-8 text"),
    (b"x" * (secretref.MAX_BYTES + 1), "longer than 64 KiB"),
])
def test_a_file_that_holds_no_single_line_secret(tmp_path, content, words):
    path = tmp_path / "secret"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        secretref.value_of(make_request(), f"file:{path}", "approle secret ID", "src")
    assert words in caught.value.message and str(path) in caught.value.message
    assert "(src)" in caught.value.message


def test_files_that_cannot_be_read(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        secretref.value_of(make_request(), f"file:{tmp_path}/absent", "x")
    with pytest.raises(ConfigError, match="cannot read"):
        secretref.value_of(make_request(), f"file:{tmp_path}", "x")  # a directory
    with pytest.raises(ConfigError, match="cannot read"):
        secretref.value_of(make_request(), "file:/x\0y", "x")  # a NUL in the path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_nobody_writes_does_not_hold_the_run(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(ConfigError):
        secretref.value_of(make_request(), f"file:{fifo}", "x")
    assert time.monotonic() - started < 2


def test_a_literal_with_a_line_break_is_refused_without_showing_it():
    with pytest.raises(ConfigError) as caught:
        secretref.value_of(make_request(), f"{MARK}\nmore", "client secret", "src")
    assert "the client secret given in clear spans several lines" in caught.value.message
    assert MARK not in caught.value.message + (caught.value.hint or "")


def test_the_value_is_registered_as_a_secret_before_anything_is_logged(tmp_path):
    out = Lines()
    (tmp_path / "s").write_text(MARK + "-logged\n")
    request = make_request({}, out)
    value = secretref.value_of(request, f"file:{tmp_path}/s", "approle secret ID")
    assert Log.redact(f"x {value} y") == "x *** y"
    assert "approle secret ID: from the file" in out.text and MARK not in out.text


def test_an_identifier_read_the_same_way_is_not_masked(tmp_path):
    """role_id is no secret: registering it would cut into secrets that contain it (a
    secret ID "canary-approle-..." masked as "canary-app***-..." is no longer masked)."""
    (tmp_path / "role").write_text("role-7f3a\n")
    config = ProviderConfig("test", {"role_id": Value(f"file:{tmp_path}/role", in_file("role_id"),
                                                      Setting("role_id"))})
    assert secretref.resolve(make_request(), config, "role_id", "role ID",
                             clear=secretref.OK) == "role-7f3a"
    assert Log.redact("x role-7f3a y") == "x role-7f3a y"


# ---------------------------------------------------------------- settings, aliases, policies


def test_deprecated_aliases_are_read_as_references(tmp_path):
    (tmp_path / "id").write_text("from-the-file\n")
    aliases = {"file": "secret_id_file", "env": "secret_id_env"}
    config = make_config({"secret_id_file": (str(tmp_path / "id"), in_file("secret_id_file"))})
    found = secretref.find(config, "secret_id", aliases)
    assert found.alias == "secret_id_file" and found.value == f"file:{tmp_path}/id"
    assert secretref.read(make_request(), found, "x") == "from-the-file"
    config = make_config({"secret_id_env": ("SID", "CREDHELPER_TEST_SECRET_ID_ENV (environment)")})
    assert secretref.resolve(make_request({"SID": "from-env"}), config, "secret_id", "x",
                             aliases=aliases) == "from-env"
    assert secretref.resolve(make_request(), make_config({}), "secret_id", "x",
                             aliases=aliases) is None


def test_a_setting_and_its_alias_together_are_refused():
    config = make_config({"secret_id": ("env:A", "CREDHELPER_TEST_SECRET_ID (environment)"),
                          "secret_id_file": ("/x", in_file("secret_id_file"))})
    with pytest.raises(ConfigError) as caught:
        secretref.find(config, "secret_id", {"file": "secret_id_file"})
    assert "set only one of [test] secret_id, secret_id_file" in caught.value.message
    assert in_file("secret_id_file") in caught.value.message


def test_in_clear_only_from_the_environment_where_the_setting_says_so(tmp_path):
    env_source = "CREDHELPER_TEST_TOKEN (environment)"
    config = make_config({"token": (MARK + "-token", in_file("token"))})
    with pytest.raises(ConfigError) as caught:
        secretref.resolve(make_request(), config, "token", "Vault token",
                          clear=secretref.ENVIRONMENT)
    assert "does not belong in a configuration file" in caught.value.message
    assert MARK not in caught.value.message + caught.value.hint
    # The same value from the environment, or a reference in the file: fine.
    config = make_config({"token": (MARK + "-token", env_source)})
    assert secretref.resolve(make_request(), config, "token", "t",
                             clear=secretref.ENVIRONMENT) == MARK + "-token"
    (tmp_path / "t").write_text("from-file")
    config = make_config({"token": (f"file:{tmp_path}/t", in_file("token"))})
    assert secretref.resolve(make_request(), config, "token", "t",
                             clear=secretref.ENVIRONMENT) == "from-file"


def test_the_backends_own_variable_is_always_the_value():
    config = make_config({"token": ("file:/not/a/reference", "VAULT_TOKEN (environment)")},
                         env_names={"token": ["VAULT_TOKEN"]})
    assert secretref.resolve(make_request(), config, "token", "t",
                             clear=secretref.ENVIRONMENT) == "file:/not/a/reference"


def test_doctor_lines_never_show_a_value(tmp_path, memory_keyring):
    specs = [secretref.Spec("client_secret", "client secret", secretref.WARN),
             secretref.Spec("token", "Vault token", secretref.ENVIRONMENT),
             secretref.Spec("secret_id", "approle secret ID", secretref.ENVIRONMENT,
                            {"file": "secret_id_file"}),
             secretref.Spec("password", "password", secretref.ENVIRONMENT,
                            {"env": "password_env"}, missing_ok=True),
             secretref.Spec("role_id", "approle role ID", secretref.OK),
             secretref.Spec("jwt", "JWT", secretref.ENVIRONMENT)]
    (tmp_path / "id").write_text(MARK + "-id")
    config = make_config({
        "client_secret": (MARK + "-clear", "CREDHELPER_TEST_CLIENT_SECRET (environment)"),
        "token": (MARK + "-token", in_file("token")),
        "secret_id_file": (str(tmp_path / "id"), in_file("secret_id_file")),
        "password_env": ("UNSET_PASSWORD", in_file("password_env")),
        "role_id": (MARK + "-role", in_file("role_id")),
        "jwt": ("env:MISSING_JWT", in_file("jwt")),
    })
    lines = {check: (status, detail) for status, check, detail in
             secretref.checks(make_request(), config, specs)}
    assert lines["client secret"][0] == "warn" and "given in clear" in lines["client secret"][1]
    assert lines["Vault token"][0] == "fail" and "refused" in lines["Vault token"][1]
    status, detail = lines["approle secret ID"]
    assert status == "warn" and "secret_id_file is deprecated: write secret_id = " \
        f'"file:{tmp_path}/id"' in detail and "from the file" in detail
    assert lines["password"] == ("warn", "password_env: the variable UNSET_PASSWORD is not set, "
                                 "so a person is asked; password_env is deprecated: write "
                                 'password = "env:UNSET_PASSWORD" instead (the old setting '
                                 "still works)")
    assert "approle role ID" not in lines  # an identifier in clear: nothing to say
    assert lines["JWT"][0] == "fail" and "MISSING_JWT is not set" in lines["JWT"][1]
    assert MARK not in repr(lines)


# ---------------------------------------------------------------- properties


PREFIXED = st.tuples(st.sampled_from(["file:", "env:", "keyring:", "file:~/", "env:HOLD",
                                      "keyring:svc/", "file:./", ""]),
                     st.text(max_size=40)).map("".join)
KNOWN = st.sampled_from(["file:~/ok", "file:~/two", "keyring:svc/ada", "env:HOLD", "env:EMPTY"])
ANY_VALUE = st.one_of(st.text(max_size=60), PREFIXED, KNOWN)
PROPERTY = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def sandbox(tmp_path, memory_keyring):
    """A working directory and HOME of their own, an environment and a keyring with a few
    entries, so that random references sometimes point at something."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "ok").write_text("good-secret\n")
    (home / "two").write_text("one\ntwo\n")
    memory_keyring.items.update({("svc", "ada"): "kept", ("svc", ""): "odd"})
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield make_request({"HOME": str(home), "HOLD": "held", "EMPTY": ""})
    finally:
        os.chdir(cwd)


@PROPERTY
@given(value=ANY_VALUE, keyring_down=st.booleans())
def test_any_string_resolves_to_one_line_or_fails_in_the_contract(sandbox, memory_keyring,
                                                                  value, keyring_down):
    from keyring.errors import NoKeyringError

    memory_keyring.error = NoKeyringError("no backend") if keyring_down else None
    try:
        result = secretref.value_of(sandbox, value, "test secret", "[test] secret in test")
    except CredhelperError as exc:
        assert type(exc) in (ConfigError, BackendUnavailable), exc
        assert exc.exit_code in (2, 4)
        assert "\n" not in exc.message and "\r" not in exc.message
        return
    assert isinstance(result, str) and result and result == result.strip()
    assert not any(c in result for c in "\r\n\0")


FORM = st.sampled_from(["literal", "file", "env", "keyring"])
CONTENT = st.tuples(st.text(max_size=20), st.text(max_size=20)).map(
    lambda parts: parts[0] + MARK + parts[1])


@PROPERTY
@given(form=FORM, content=CONTENT, raw=st.binary(max_size=8), binary=st.booleans())
def test_errors_show_the_reference_never_what_it_holds(sandbox, tmp_path, memory_keyring, form,
                                                      content, raw, binary):
    """Whatever the secret holds (line breaks, NUL, bytes that are not UTF-8), a failure's
    message and hint name at most the reference; a success registers the value."""
    if form == "literal":
        if content.partition(":")[0] in secretref.PREFIXES:
            return  # that is a reference, not a literal
        value = content
    elif form == "file":
        path = tmp_path / "held-secret"
        path.write_bytes((raw if binary else b"") + content.encode("utf-8", "surrogatepass"))
        value = f"file:{path}"
    elif form == "env":
        sandbox.env["HELD_SECRET"] = content
        value = "env:HELD_SECRET"
    else:
        memory_keyring.items[("held", "secret")] = content
        value = "keyring:held/secret"
    try:
        result = secretref.value_of(sandbox, value, "test secret", "[test] secret in test")
    except CredhelperError as exc:
        assert exc.exit_code in (2, 4)
        assert MARK not in exc.message and MARK not in (exc.hint or "")
        return
    assert MARK in result and MARK not in Log.redact(result)  # registered: masked in logs
