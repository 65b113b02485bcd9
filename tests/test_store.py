"""The secret stores of credhelper/store.py, one suite over the three of them (a private
file, the OS keyring: a real GNOME Keyring; none), then the credential cache and the
providers' state as layers over each, the names earlier versions wrote, and the one
keyring viability check."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from credhelper import store as store_mod
from credhelper.cache import Cache, Entry, StateStore, entry_name
from credhelper.errors import BackendUnavailable, CacheError
from credhelper.store import FileStore, KeyringStore, NoStore, keyring_usable, open_store

MODES = ["file", "keyring", "none"]
ODD_NAMES = ["a/b", "../escape", "..", ".hidden", "100%", "%41", "A", "sp ace", "tab\there",
             "ünïcødé", "日本", "x:y*?<>|\"\\", "CON", "new\nline", "a" * store_mod.MAX_NAME,
             "-leading-dash", "trailing.", "emoji-🙂"]


class Log:
    def __init__(self):
        self.warnings = []

    def warning(self, message):
        self.warnings.append(message)

    def debug(self, message):
        pass


@pytest.fixture
def secret_service(keyring_session, monkeypatch):
    """This process's keyring library on the real GNOME Keyring of the session."""
    import keyring
    import keyring.core
    from keyring.backends import SecretService

    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", keyring_session["DBUS_SESSION_BUS_ADDRESS"])
    monkeypatch.setenv("XDG_RUNTIME_DIR", keyring_session["XDG_RUNTIME_DIR"])
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    keyring.set_keyring(SecretService.Keyring())
    return keyring.get_keyring()


@pytest.fixture
def service():
    return f"credhelper-test-store-{os.urandom(4).hex()}"


@pytest.fixture(params=MODES)
def kind(request):
    return request.param


@pytest.fixture
def make(kind, tmp_path, request, service):
    """make(suffix="") -> a fresh store of this kind; the directory is tmp_path/"cache"."""
    directory = str(tmp_path / "cache")
    if kind == "keyring":
        request.getfixturevalue("secret_service")

    def make(suffix=""):
        made = open_store(kind, directory, suffix=suffix, service=service)
        if kind == "keyring":  # GNOME Keyring itself, not a stand-in
            assert type(made.backend()).__module__ == "keyring.backends.SecretService"
        return made

    return make


def plant(kind, store, name: str, raw: bytes | str):
    """Put ``raw`` where ``store`` keeps ``name``, behind the store's back."""
    if kind == "file":
        os.makedirs(store.directory, mode=0o700, exist_ok=True)
        path = store.where(name)
        with open(path, "wb") as f:
            f.write(raw if isinstance(raw, bytes) else raw.encode())
        os.chmod(path, 0o600)
    elif kind == "keyring":
        import keyring

        keyring.get_keyring().set_password(store.service, name, raw if isinstance(raw, str)
                                           else raw.decode("latin-1"))


def test_round_trip(kind, make):
    s = make()
    assert s.mode == kind and s.label
    assert s.load("one") is None and s.delete("one") is False
    s.save("one", b"first")
    s.save("one", b"second")  # replaces
    s.save("two", b"other")
    expected = {"file": b"second", "keyring": b"second", "none": None}[kind]
    assert s.load("one") == expected
    assert s.delete("one") is (kind != "none")
    assert s.load("one") is None and s.delete("one") is False
    assert s.load("two") == (None if kind == "none" else b"other")
    assert s.names() == {"file": ["two"], "keyring": None, "none": []}[kind]
    s.delete("two")


@pytest.mark.parametrize("data", [b"", b"\0\x01\xff\xfe binary", "ünï\ncødé".encode(),
                                  b"credhelper-base64:bm90IG1l", b'{"json": true}',
                                  bytes(range(256)) * 40])
def test_any_bytes_come_back_as_they_went_in(kind, make, data):
    s = make()
    s.save("data", data)
    assert s.load("data") == (None if kind == "none" else data)
    s.delete("data")


def test_names_with_odd_characters(kind, make, tmp_path):
    s = make(".v1.json")
    for i, name in enumerate(ODD_NAMES):
        s.save(name, f"value {i}".encode())
    for i, name in enumerate(ODD_NAMES):  # no two names share a place
        assert s.load(name) == (None if kind == "none" else f"value {i}".encode()), name
    if kind == "file":
        assert sorted(s.names()) == sorted(ODD_NAMES)
        files = os.listdir(s.directory)  # all in the store's directory, none hidden
        assert len(files) == len(ODD_NAMES) and not [f for f in files if f.startswith(".")]
        assert sorted(os.listdir(tmp_path)) == ["cache"]  # nothing escaped the directory
        assert os.path.basename(s.where("vault-0123abcd")) == "vault-0123abcd.v1.json"
    for name in ODD_NAMES:
        assert s.delete(name) is (kind != "none")
    assert s.names() == ([] if kind != "keyring" else None)


@pytest.mark.parametrize("name", ["", "nul\0byte", "a" * (store_mod.MAX_NAME + 1),
                                  "lone \udc80 surrogate", None])
def test_names_no_store_can_hold_are_refused(kind, make, name):
    s = make()
    for call in (lambda: s.load(name), lambda: s.save(name, b"x"), lambda: s.delete(name)):
        with pytest.raises(ValueError):
            call()


def test_damaged_data_is_a_miss_with_a_warning_in_the_layers_above(kind, make):
    log = Log()
    cache = Cache(make().directory if kind == "file" else "unused", log, kind)
    cache.secrets = make(".v1.json")
    state = StateStore(kind, cache.secrets.directory if kind == "file" else "unused", "prov", log)
    state.secrets = make(".json")
    not_json = (b"{trunc", b"\xff\xfe not utf-8", "credhelper-base64:!!not base64!!")
    for raw in not_json + (b"[1, 2]", json.dumps({"format": 1, "token": "t", "expires_at": 1e999})):
        plant(kind, cache.secrets, entry_name("prov", "key"), raw)
        assert cache.load("prov", "key") is None
    for raw in not_json + (b"[1, 2]",):
        plant(kind, state.secrets, state._name("refresh"), raw)
        assert state.load("refresh") is None
    if kind == "none":
        assert log.warnings == []
    else:
        assert len([w for w in log.warnings if "ignoring cache entry" in w]) == 5, log.warnings
        assert len([w for w in log.warnings if "damaged prov state" in w]) == 3, log.warnings
    # the store itself hands the damaged value up as it was stored
    if kind != "none":
        plant(kind, cache.secrets, "raw", "credhelper-base64:!!")
        assert cache.secrets.load("raw") == b"credhelper-base64:!!"
        cache.secrets.delete("raw")
        cache.delete("prov", "key")
        state.delete("refresh")


def test_the_cache_and_the_state_are_layers_over_the_store(kind, make, tmp_path):
    log = Log()
    directory = str(tmp_path / "cache")
    cache, state = Cache(directory, log, kind), StateStore(kind, directory, "prov", log)
    cache.secrets, state.secrets = make(".v1.json"), make(".json")
    entry = Entry("prov", "k1", "canary-token", {"X-A": "b"}, 2e9, 1.7e9, {"source": "t"})
    cache.store(entry)
    state.save("refresh", {"refresh_token": "canary-refresh"})
    if kind == "none":
        assert cache.load("prov", "k1") is None and state.load("refresh") is None
        assert cache.entries() == [] and not os.path.exists(directory)
        return
    assert cache.load("prov", "k1").dumps() == entry.dumps()
    assert cache.load("prov", "k2") is None
    assert state.load("refresh") == {"refresh_token": "canary-refresh"}
    assert cache.path("prov", "k1") == cache.secrets.where("prov-k1")
    listed = cache.entries()
    assert ([(w, e.token, p) for w, e, p in listed] ==
            ([(cache.path("prov", "k1"), "canary-token", None)] if kind == "file" else []))
    assert cache.delete("prov", "k1") and not cache.delete("prov", "k1")
    state.delete("refresh")
    assert cache.load("prov", "k1") is None and state.load("refresh") is None
    assert log.warnings == []


def test_file_store_is_private_on_disk(tmp_path):
    directory = tmp_path / "deep" / "cache"
    s = FileStore(str(directory), ".json")
    s.save("n", b"secret")
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(s.where("n")).st_mode) == 0o600
    assert os.listdir(directory) == ["n.json"]  # no temporary file left behind
    # what is not this store's is not listed: other suffixes, locks, temporary files
    for other in ("x.lock", ".tmp-1-ab", "snapshot-x.jsonl", ".json", "%zz.json", "%61.json"):
        (directory / other).write_bytes(b"")
        os.chmod(directory / other, 0o600)
    assert s.names() == ["n"]


def test_file_store_refuses_what_others_could_read_or_swap(tmp_path):
    s = FileStore(str(tmp_path / "cache"))
    s.save("n", b"secret")
    os.chmod(s.where("n"), 0o644)
    with pytest.raises(CacheError, match="lets others in"):
        s.load("n")
    os.unlink(s.where("n"))
    (tmp_path / "elsewhere").write_bytes(b"planted")
    os.symlink(tmp_path / "elsewhere", s.where("n"))
    with pytest.raises(CacheError):
        s.load("n")
    os.unlink(s.where("n"))
    os.chmod(s.directory, 0o755)
    with pytest.raises(CacheError, match="lets others in"):
        s.load("n")
    os.chmod(s.directory, 0o700)


def test_none_keeps_nothing_anywhere(tmp_path, secret_service, service):
    s = open_store("none", str(tmp_path / "cache"), service=service)
    assert isinstance(s, NoStore)
    s.save("n", b"secret")
    assert s.load("n") is None and s.names() == [] and not s.delete("n")
    assert not (tmp_path / "cache").exists()
    assert secret_service.get_password(service, "n") is None


# ---------------------------------------------------------------- what earlier versions wrote


def test_entries_and_state_written_by_earlier_versions_stay_readable(tmp_path, secret_service):
    """The names of 0.x: files <provider>-<key>.v1.json and <provider>-state-<hash>.json,
    keyring items credhelper-cache/<provider>-<key> and credhelper-cache/<provider>-state-<hash>."""
    import hashlib

    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    entry = Entry("vault", "abc123", "canary-old", {}, 2e9, 1.7e9, {}).dumps()
    state_name = f"vault-state-{hashlib.sha256(b'token').hexdigest()[:24]}"
    for path, data in ((directory / "vault-abc123.v1.json", entry),
                       (directory / f"{state_name}.json", b'{"token": "canary-t"}')):
        path.write_bytes(data)
        os.chmod(path, 0o600)
    log = Log()
    assert Cache(str(directory), log, "file").load("vault", "abc123").token == "canary-old"
    assert StateStore("file", str(directory), "vault", log).load("token") == {"token": "canary-t"}

    provider = f"vault{os.urandom(3).hex()}"  # the real service: keep this test's items apart
    entry = Entry(provider, "abc123", "canary-old-k", {}, 2e9, 1.7e9, {}).dumps()
    state_name = f"{provider}-state-{hashlib.sha256(b'token').hexdigest()[:24]}"
    secret_service.set_password("credhelper-cache", f"{provider}-abc123", entry.decode())
    secret_service.set_password("credhelper-cache", state_name, '{"token": "canary-k"}')
    try:
        cache = Cache(str(directory), log, "keyring")
        assert cache.path(provider, "abc123") == f"keyring:credhelper-cache/{provider}-abc123"
        assert cache.load(provider, "abc123").token == "canary-old-k"
        state = StateStore("keyring", str(directory), provider, log)
        assert state.load("token") == {"token": "canary-k"}
        state.save("token", {"token": "canary-k2"})  # and what this version writes, they read
        assert json.loads(secret_service.get_password("credhelper-cache", state_name)) == {
            "token": "canary-k2"}
    finally:
        assert cache.delete(provider, "abc123")
        state.delete("token")
    assert log.warnings == []


# ---------------------------------------------------------------- the one keyring check


class _Backend:
    """Keyring backends of chosen modules and names, for find_keyring's rules."""

    @staticmethod
    def make(module: str, name: str, priority: float = 1):
        # not a KeyringBackend subclass: those register themselves for keyring's detection
        cls = type(name, (), {
            "__module__": module, "priority": priority,
            "get_password": lambda self, s, u: None, "set_password": lambda self, s, u, p: None,
            "delete_password": lambda self, s, u: None})
        return cls()


@pytest.mark.parametrize("module, name, why", [
    ("keyring.backends.fail", "Keyring", "found no backend"),
    ("keyring.backends.null", "Keyring", "keeps nothing"),
    ("keyrings.alt.file", "PlaintextKeyring", "file keyring"),
    ("keyrings.alt.file", "EncryptedKeyring", "file keyring"),
    ("some.plugin", "PlaintextFileKeyring", "plain-text"),
    ("keyrings.cryptfile.cryptfile", "CryptFileKeyring", "terminal"),
])
def test_keyrings_that_are_no_keyring_are_refused(monkeypatch, module, name, why):
    import keyring

    monkeypatch.setattr(keyring, "get_keyring", lambda: _Backend.make(module, name))
    usable, text = keyring_usable()
    assert not usable and why in text and f"{module}.{name}" in text
    with pytest.raises(BackendUnavailable, match="no usable OS keyring") as caught:
        store_mod.usable_keyring()
    assert caught.value.hint and "DBUS_SESSION_BUS_ADDRESS" in caught.value.hint
    with pytest.raises(BackendUnavailable, match="no usable OS keyring"):
        KeyringStore("svc").load("n")


def test_the_chainer_is_replaced_by_its_first_usable_backend(monkeypatch):
    import keyring
    from keyring.backends.chainer import ChainerBackend

    plain = _Backend.make("keyrings.alt.file", "PlaintextKeyring", 9)
    secure = _Backend.make("keyring.backends.SecretService", "Keyring", 5)
    monkeypatch.setattr(keyring, "get_keyring", lambda: ChainerBackend())
    monkeypatch.setattr(ChainerBackend, "backends", [plain, secure])
    assert store_mod.usable_keyring() is secure  # writes never fall through to plain text
    usable, text = keyring_usable()
    assert usable and "chainer" in text
    assert text.startswith("keyring.backends.SecretService.Keyring")
    monkeypatch.setattr(ChainerBackend, "backends", [plain])
    assert keyring_usable() == (False, "keyrings.alt.file.PlaintextKeyring: a file keyring: "
                                       "plain text, or a password asked on the terminal")
    monkeypatch.setattr(ChainerBackend, "backends", [])
    usable, text = keyring_usable()
    assert not usable and "chains no backends" in text


def test_a_broken_keyring_configuration_is_no_keyring(monkeypatch):
    import keyring

    def broken():
        raise RuntimeError("bad keyringrc.cfg")

    monkeypatch.setattr(keyring, "get_keyring", broken)
    assert keyring_usable() == (
        False, "cannot load a keyring backend: RuntimeError: bad keyringrc.cfg")


CHECK = "from credhelper.store import keyring_usable; print(keyring_usable())"


def test_the_check_in_real_sessions(base_env, keyring_env, tmp_path):
    """keyring's own detection, in fresh processes: GNOME Keyring on D-Bus; no D-Bus; a
    plain-text backend named in PYTHON_KEYRING_BACKEND."""
    def check(env):
        p = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert check(keyring_env).startswith("(True, 'keyring.backends.SecretService.Keyring")
    assert check(base_env).startswith("(False, 'keyring.backends.fail.Keyring")
    (tmp_path / "plainkr.py").write_text(textwrap.dedent("""
        from keyring.backend import KeyringBackend
        class PlaintextKeyring(KeyringBackend):
            priority = 1
            def get_password(self, s, u): return None
            def set_password(self, s, u, p): pass
            def delete_password(self, s, u): pass
    """))
    env = {**keyring_env, "PYTHONPATH": str(tmp_path),
           "PYTHON_KEYRING_BACKEND": "plainkr.PlaintextKeyring"}
    assert "(False, 'plainkr.PlaintextKeyring: a plain-text keyring')" in check(env)
