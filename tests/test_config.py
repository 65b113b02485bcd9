"""Configuration (DESIGN §4): sources, precedence, variables, errors naming key and source."""

import os

import counting_helper  # noqa: F401  (registers the counting backend)
import pytest
from counting_helper import CountingProvider
from hypothesis import HealthCheck, given, settings, strategies as st

from credhelper import config, managed
from credhelper.durations import parse_duration
from credhelper.errors import ConfigError
from credhelper.providers.keyring import KeyringProvider


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Point the user and system config files into tmp_path; returns a writer."""
    home = tmp_path / "home"
    etc = tmp_path / "etc"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(etc))
    paths = {"user": home / "credhelper" / "config.toml", "system": etc / "credhelper" / "config.toml"}

    def write(which, text):
        paths[which].parent.mkdir(parents=True, exist_ok=True)
        paths[which].write_text(text)
        return paths[which]

    write.paths = paths
    return write


def load(env, cls=KeyringProvider):
    """config.load with ``env``, plus the config locations the ``files`` fixture set."""
    where = {k: os.environ[k] for k in ("XDG_CONFIG_HOME", "XDG_CONFIG_DIRS") if k in os.environ}
    return config.load(cls, {**where, **env})


def test_defaults(files):
    c = load({})
    assert c["timeout"] == 30 and c["min_validity"] == 300 and c["cache"] == "file"
    assert c["service"] == "credhelper" and c.source("service") == "default"


def test_precedence_managed_env_user_system(files, monkeypatch):
    files("system", '[keyring]\nservice = "system"\nusername = "sys-user"\n[defaults]\ntimeout = 7\n')
    c = load({})
    assert (c["service"], c["timeout"]) == ("system", 7)
    assert c.source("service").startswith("[keyring] service in system config")
    files("user", '[keyring]\nservice = "user"\n')
    c = load({})
    assert (c["service"], c["username"]) == ("user", "sys-user")  # merged key by key
    c = load({"CREDHELPER_KEYRING_SERVICE": "env"})
    assert c["service"] == "env" and c.source("service") == "CREDHELPER_KEYRING_SERVICE (environment)"
    monkeypatch.setattr(managed, "read", lambda env: ("managed preferences (test)",
                                                      {"keyring": {"service": "managed"}}))
    c = load({"CREDHELPER_KEYRING_SERVICE": "env"})
    assert c["service"] == "managed" and "managed preferences (test)" in c.source("service")


def test_provider_table_beats_defaults_within_a_source(files):
    files("user", '[defaults]\ntimeout = "5s"\n[keyring]\ntimeout = "9s"\n')
    assert load({})["timeout"] == 9


def test_a_higher_source_defaults_beat_a_lower_provider_table(files):
    files("user", '[keyring]\ntimeout = "9s"\n')
    assert load({"CREDHELPER_DEFAULTS_TIMEOUT": "3s"})["timeout"] == 3


def test_credhelper_config_replaces_the_user_file(files, tmp_path):
    files("user", '[keyring]\nservice = "user"\n')
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('[keyring]\nusername = "explicit"\n')
    c = load({"CREDHELPER_CONFIG": str(explicit)})
    assert c["username"] == "explicit" and c["service"] == "credhelper"


def test_backend_variable_is_a_fallback(files):
    setting = config.Setting("address", "url", env=("VAULT_ADDR",))

    class P(CountingProvider):
        settings = CountingProvider.settings + (setting,)

    env = {"CREDHELPER_COUNTING_TOKEN": "t", "CREDHELPER_COUNTING_COUNT_FILE": "/x",
           "VAULT_ADDR": "https://vault.example.com"}
    c = config.load(P, env)
    assert c["address"] == "https://vault.example.com" and c.source("address") == "VAULT_ADDR (environment)"
    c = config.load(P, {**env, "CREDHELPER_COUNTING_ADDRESS": "https://other.example.com"})
    assert c["address"] == "https://other.example.com"
    with pytest.raises(ConfigError, match="VAULT_ADDR .environment.*plain http"):
        config.load(P, {**env, "VAULT_ADDR": "http://vault.example.com"})
    assert config.load(P, {**env, "VAULT_ADDR": "http://127.0.0.1:8200"})["address"].startswith("http://")


@pytest.mark.parametrize("text, phrase", [
    ('[keyring]\nservise = "x"\n', "unknown key [keyring] servise in user config"),
    ('[keyrnig]\nservice = "x"\n', "unknown table [keyrnig] in user config"),
    ('service = "x"\n', "top-level key 'service' must be a table"),
    ('[defaults]\ntimeout = "soon"\n', "[defaults] timeout in user config"),
    ('[defaults]\ntimeout = true\n', "[defaults] timeout in user config"),
    ('[defaults]\ncache = "disk"\n', "'disk' is not one of: file, keyring, none"),
    ('[defaults]\nheaders = { "Bad Name" = "v" }\n', "not a valid HTTP token"),
    ('[defaults]\nheaders = { "X-A" = "v\\r\\nInjected: 1" }\n', "CR, LF or NUL"),
    ('[keyring]\nservice = 3\n', "expected a string"),
    ('[keyring\n', "not valid TOML"),
])
def test_errors_name_the_key_and_the_source(files, text, phrase):
    path = files("user", text)
    with pytest.raises(ConfigError) as info:
        load({})
    assert phrase in info.value.message
    assert "valid TOML" in phrase or "top-level" in phrase or str(path) in info.value.message


def test_unknown_variable_is_an_error(files):
    with pytest.raises(ConfigError, match="CREDHELPER_NOPE_X"):
        load({"CREDHELPER_NOPE_X": "1"})
    with pytest.raises(ConfigError, match=r"unknown key CREDHELPER_KEYRING_SERVISE \(environment\)"):
        load({"CREDHELPER_KEYRING_SERVISE": "1"})


def test_secret_values_are_not_echoed_in_errors(files):
    files("user", '[counting]\ntoken = 12345678\ncount_file = "/x"\n')
    with pytest.raises(ConfigError) as info:
        load({}, CountingProvider)
    assert "12345678" not in info.value.message and "value hidden" in info.value.message


def test_world_writable_config_is_refused(files):
    path = files("user", '[keyring]\nservice = "x"\n')
    os.chmod(path, 0o666)
    with pytest.raises(ConfigError, match="anyone on this machine can write it"):
        load({})


def test_not_utf8_is_a_clear_error(files):
    files("user", "")
    files.paths["user"].write_bytes(b'[keyring]\nservice = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load({})


def test_env_types(files):
    c = load({"CREDHELPER_DEFAULTS_HEADERS": '{"X-A": "1"}', "CREDHELPER_DEFAULTS_TIMEOUT": "1m30s"})
    assert c["headers"] == {"X-A": "1"} and c["timeout"] == 90
    with pytest.raises(ConfigError, match="JSON object"):
        load({"CREDHELPER_DEFAULTS_HEADERS": "X-A: 1"})


def test_masked_never_shows_a_secret(files):
    c = config.load(CountingProvider, {"CREDHELPER_COUNTING_TOKEN": "hunter2-secret",
                                       "CREDHELPER_COUNTING_COUNT_FILE": "/x"})
    assert config.masked(c.values["token"]) == "***"


# ---------------------------------------------------------------- property tests


@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.booleans(), st.none()))
def test_durations_parse_or_raise_value_error(value):
    try:
        seconds = parse_duration(value)
    except ValueError:
        return
    assert 0 <= seconds <= 366 * 86400


@given(st.integers(0, 10**6), st.sampled_from(["s", "m", "h", "ms"]))
def test_durations_round_trip(n, unit):
    scale = {"s": 1, "m": 60, "h": 3600, "ms": 0.001}[unit]
    if n * scale > 366 * 86400:
        return
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * scale)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_config_text_loads_or_raises_config_error(tmp_path_factory, text):
    directory = tmp_path_factory.mktemp("fuzz")
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if "\ud800" not in text else None
    if not path.exists():
        return
    try:
        load({"CREDHELPER_CONFIG": str(path)})
    except ConfigError as exc:
        assert exc.message


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["CREDHELPER_DEFAULTS_TIMEOUT", "CREDHELPER_DEFAULTS_HEADERS",
                                        "CREDHELPER_KEYRING_SERVICE", "CREDHELPER_DEFAULTS_CACHE",
                                        "CREDHELPER_DEFAULTS_MAX_AGE", "CREDHELPER_X"]),
                       st.text(max_size=30)))
def test_any_environment_loads_or_raises_config_error(files, env):
    try:
        load(env)
    except ConfigError as exc:
        assert exc.message


def test_a_url_with_an_invalid_port_is_a_configuration_error(base_env):
    from credhelper.config import check_url

    for url in ("https://gateway.example:abc", "https://gateway.example:99999"):
        with pytest.raises(ValueError, match="invalid port"):
            check_url(url)
    from conftest import run

    p = run(["credhelper", "test-gateway", "https://gateway.example:abc", "-p", "keyring"],
            base_env)
    assert p.returncode == 2 and "invalid port" in p.stderr and "internal error" not in p.stderr


# ---------------------------------------------------------------- hostile sizes and depths


DEEP = 100_000


@pytest.mark.parametrize("text", [
    "[defaults]\ntimeout = " + "[" * DEEP + "]" * DEEP + "\n",
    "[defaults]\nheaders = " + "{a=" * DEEP + "1" + "}" * DEEP + "\n",
], ids=["arrays", "inline-tables"])
def test_a_deeply_nested_config_file_exits_2(base_env, tmp_path, text):
    """Was: exit 1 (tomllib's RecursionError was not caught)."""
    from conftest import assert_failure, run

    path = tmp_path / "deep.toml"
    path.write_text(text)
    p = run("credhelper-keyring", {**base_env, "CREDHELPER_CONFIG": str(path)})
    assert_failure(p, 2, "nested too deeply", str(path))


def test_deeply_nested_json_in_a_setting_exits_2(base_env):
    from conftest import assert_failure, run

    deep = 50_000  # one variable may hold 128 KiB
    env = {**base_env, "CREDHELPER_DEFAULTS_HEADERS": "[" * deep + "]" * deep}
    assert_failure(run("credhelper-keyring", env), 2, "CREDHELPER_DEFAULTS_HEADERS", "nested too deeply")


LONG = "Q" * 5000  # a bad value far longer than any message should repeat


def _echoes_little(message: str) -> None:
    assert "Q" * 201 not in message and len(message) < 600, message


@pytest.mark.parametrize("env", [
    {"CREDHELPER_DEFAULTS_TIMEOUT": "5x" + LONG},  # durations.py
    {"CREDHELPER_DEFAULTS_CACHE": LONG},  # a choice
    {"CREDHELPER_KEYRING_" + LONG: "1"},  # an unknown key
    {"CREDHELPER_" + LONG + "_X": "1"},  # an unknown table
], ids=["duration", "choice", "unknown-key", "unknown-table"])
def test_an_error_echoes_at_most_200_characters_of_a_bad_value(files, env):
    with pytest.raises(ConfigError) as info:
        load(env)
    _echoes_little(info.value.message)


def test_files_and_urls_echo_at_most_200_characters(files):
    files("user", f'[keyring]\n{LONG} = 1\n')
    with pytest.raises(ConfigError) as info:
        load({})
    _echoes_little(info.value.message)
    files("user", f'{LONG} = 1\n')
    with pytest.raises(ConfigError) as info:
        load({})
    _echoes_little(info.value.message)
    for url in (f"http://{LONG}.example", f"ftp://{LONG}", f"https://{LONG}:99999999"):
        with pytest.raises(ValueError) as err:
            config.check_url(url)
        _echoes_little(str(err.value))


def test_secret_references_echo_at_most_200_characters():
    from credhelper import secretref

    with pytest.raises(ConfigError) as info:
        secretref.read_file("/tmp/" + LONG, "token", "[vault] token")
    _echoes_little(info.value.message)
    _echoes_little(secretref.Ref(secretref.KEYRING, f"{LONG}/{LONG}").describe())
    _echoes_little(secretref.Ref(secretref.ENV, LONG).describe())


def test_the_shortened_echo_ends_with_an_ellipsis():
    from credhelper.errors import shorten

    assert shorten("abc") == "abc" and shorten("x" * 200) == "x" * 200
    assert shorten("x" * 201) == "x" * 197 + "..." and len(shorten(LONG)) == 200
