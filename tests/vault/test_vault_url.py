"""A backend URL is checked on the host the request connects to: ``http://127.0.0.3\\@
127.0.0.1:PORT`` is 127.0.0.1 to urlsplit (which the loopback check used) and 127.0.0.3 to
urllib3 (which requests connects with). Against a real OpenBao on 127.0.0.1 and a
listener on 127.0.0.3: exit 2, and not one connection reaches 127.0.0.3 (where the Vault
token would have been sent)."""

from __future__ import annotations

import socket
import threading

import pytest

from .vaultkit import CANARY, failure, helper_env, run


class Listener:
    """Accepts on 127.0.0.3 and records every connection, then closes it."""

    def __init__(self, port: int = 0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.3", port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.connections.append(conn.recv(4096))
                except OSError:
                    self.connections.append(b"")

    def close(self):
        self.sock.close()


@pytest.fixture
def listener(request):
    try:
        server = Listener(request.param)
    except PermissionError:  # port 80 needs root, as the suite has in CI
        pytest.fail("cannot listen on 127.0.0.3:80: run the suite as root (scripts/test)")
    yield server
    server.close()


@pytest.mark.parametrize("listener", [80, 0], indirect=True, ids=["exact-url", "with-port"])
def test_a_backslash_before_the_at_is_refused_and_nothing_connects(base_env, lab, listener):
    own = "" if listener.port == 80 else f":{listener.port}"
    address = f"http://127.0.0.3{own}\\@127.0.0.1:{lab.server.port}"
    env = helper_env(base_env, address, secret="secret/gateway", field="token",
                     timeout="5s")
    env["VAULT_TOKEN"] = "root"
    failure(run("credhelper-vault", env), 2, "VAULT_ADDR (environment)", "backslash")
    for command in (["credhelper-vault", "status"], ["credhelper", "doctor", "-p", "vault"]):
        assert "backslash" in run(command, env).stdout.decode()  # said, and nothing probed
    assert listener.connections == []


def test_a_user_and_password_in_the_address_are_refused_unechoed(base_env, lab):
    address = f"http://gateway:{CANARY}@127.0.0.1:{lab.server.port}"
    env = helper_env(base_env, address, secret="secret/gateway", field="token")
    env["VAULT_TOKEN"] = "root"
    # conftest.run() asserts the canary (the password) is on no stderr line
    failure(run("credhelper-vault", env), 2, "user name or password")
    p = run(["credhelper", "doctor", "-p", "vault"], env)
    assert CANARY.encode() not in p.stdout and "user name or password" in p.stdout.decode()


def test_an_upper_case_https_address_is_tls_with_its_ca_and_client_certificate(base_env, lab):
    """URL schemes are case-insensitive: HTTPS:// gets the CA and the client certificate
    (it was taken for plain http, so cert auth refused it and no CA was loaded)."""
    from .vaultkit import expect_token

    address = "HTTPS://" + lab.server.tls_address.removeprefix("https://")
    env = helper_env(base_env, address, auth="cert", role="gateway", ca_cert=lab.ca_pem,
                     client_cert=lab.client_cert, client_key=lab.client_key,
                     secret="secret/gateway", field="token")
    expect_token(run(["credhelper-vault"], env), lab.values["kv2"])
