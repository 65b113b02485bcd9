"""Fuzz what backends answer (hypothesis): the Vault and OpenID provider responses a
broken, hostile or newer server could send, served by a local stub, read by the real
provider code through the real run (in-process, so hundreds of answers take seconds).

Whatever the answer: an exit code from the contract (never 1, "internal error"), nothing
on stdout unless one clean credential line, no traceback, and the secrets the run holds
(the Vault token, the client secret) never on stderr, even when the server echoes them.
"""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import leaked
from hypothesis import HealthCheck, given, settings, strategies as st
from services import JsonStub

# The secrets the run holds: they must stay off stderr even when the server echoes them.
VAULT_TOKEN = "canary-hvs-vault-token"
SECRET_ID = "canary-approle-secret-id"
CLIENT_SECRET = "canary-oidc-client-secret"
HELD = "{held-secret}"  # replaced, in what the stub serves, by the secret the run holds
CONTRACT_CODES = {0, 2, 3, 4, 5}

# Leaves that break naive code: wrong types, NaN and infinities (Python's json reads
# them), huge and negative numbers, empty and multi-line strings, the secrets themselves.
leaves = (st.none() | st.booleans() | st.integers(-2**63, 2**63)
          | st.floats(allow_nan=True, allow_infinity=True)
          | st.text(max_size=12) | st.sampled_from(["", "\n", "a\nb", HELD, "x" * 300]))
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=12)


def shaped(**fields):
    """A dict with these keys, each present or not, each value from its strategy."""
    return st.fixed_dictionaries({}, optional=fields)


any_or = lambda strategy: strategy | json_values  # noqa: E731

kv2 = shaped(data=any_or(shaped(data=any_or(shaped(token=json_values, value=json_values)),
                                metadata=json_values)),
             lease_duration=json_values, warnings=json_values, errors=json_values)
logical = shaped(data=any_or(shaped(token=json_values, value=json_values, ttl=json_values)),
                 lease_duration=json_values, lease_id=json_values, renewable=json_values,
                 errors=json_values)
identity = shaped(data=any_or(shaped(token=json_values, ttl=json_values, client_id=json_values)),
                  errors=json_values)
login = shaped(auth=any_or(shaped(client_token=json_values, accessor=json_values,
                                  lease_duration=json_values, renewable=json_values,
                                  policies=json_values)),
               data=any_or(shaped(data=any_or(shaped(token=json_values)))),
               errors=json_values)
token_answer = shaped(access_token=json_values, token_type=json_values, expires_in=json_values,
                      refresh_token=json_values, id_token=json_values, scope=json_values,
                      error=json_values, error_description=json_values)
statuses = st.sampled_from([200, 200, 200, 204, 301, 400, 401, 403, 404, 429, 500, 503])
retry_after = st.none() | st.sampled_from(["0", "1", "86400", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"])
bodies = lambda shape: (shape.map(lambda d: json.dumps(d, allow_nan=True).encode())  # noqa: E731
                        | st.binary(max_size=40) | st.just(b""))


class Stub:
    """One HTTP server for the whole module; each example sets what it answers."""

    def __init__(self):
        self.answer = (200, None, b"{}")
        self.held = ""  # the secret the run under test holds, for the server to echo
        self.discovery = None  # for the OpenID provider: the discovery document to serve
        stub = self

        class Handler(JsonStub, BaseHTTPRequestHandler):
            def do_GET(self):
                if stub.discovery is not None and self.path.endswith("/openid-configuration"):
                    doc = json.dumps(stub.discovery, allow_nan=True).replace(HELD, stub.held)
                    return self.send_json(200, json.loads(doc))
                status, wait, body = stub.answer
                body = body.replace(HELD.encode(), stub.held.encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if wait is not None:
                    self.send_header("Retry-After", wait)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

            do_PUT = do_LIST = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def stub():
    server = Stub()
    yield server
    server.server.shutdown()
    server.server.server_close()


def run_in_process(provider: str, env: dict):
    from credhelper import run as run_mod

    out, err = io.StringIO(), io.StringIO()
    code = run_mod.helper_main(provider, [], env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def check(code: int, out: str, err: str) -> None:
    assert code in CONTRACT_CODES, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert not leaked(err), err
    if code == 0:
        assert out.endswith("\n") and out.count("\n") == 1 and out.strip() == out[:-1], out
        assert out.strip() and not any(c.isspace() for c in out.strip()), out
    else:
        assert out == "", out


def _env(base_env, **variables) -> dict:
    env = dict(base_env)
    env["CREDHELPER_DEFAULTS_CACHE"] = "none"  # every example reaches the server
    env["CREDHELPER_DEFAULTS_TIMEOUT"] = "1"   # bounds what a retried 429/5xx costs
    env.update(variables)
    return env


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VAULT_MODES = {
    "kv": ({"CREDHELPER_VAULT_SECRET": "secret/gateway", "CREDHELPER_VAULT_KV_VERSION": "2"}, kv2),
    "kv-field": ({"CREDHELPER_VAULT_SECRET": "secret/gateway", "CREDHELPER_VAULT_KV_VERSION": "2",
                  "CREDHELPER_VAULT_FIELD": "token"}, kv2),
    "kv-detected": ({"CREDHELPER_VAULT_SECRET": "secret/gateway"}, kv2),
    "path": ({"CREDHELPER_VAULT_PATH": "database/creds/gateway", "CREDHELPER_VAULT_FIELD": "token"},
             logical),
    "identity": ({"CREDHELPER_VAULT_IDENTITY_TOKEN": "gateway"}, identity),
    "approle": ({"CREDHELPER_VAULT_AUTH": "approle", "CREDHELPER_VAULT_ROLE_ID": "role",
                 "CREDHELPER_VAULT_SECRET_ID_ENV": "SECRET_ID",
                 "CREDHELPER_VAULT_SECRET": "secret/gateway", "CREDHELPER_VAULT_KV_VERSION": "2"},
                login),
}


@pytest.mark.parametrize("mode", sorted(VAULT_MODES))
def test_any_vault_answer_gets_a_contract_exit(base_env, stub, mode):
    variables, shape = VAULT_MODES[mode]
    env = _env(base_env, VAULT_ADDR=stub.url, VAULT_TOKEN=VAULT_TOKEN,
               SECRET_ID=SECRET_ID, **variables)
    stub.held = SECRET_ID if mode == "approle" else VAULT_TOKEN

    @FUZZ
    @given(statuses, retry_after, bodies(shape))
    def one(status, wait, body):
        stub.answer = (status, wait, body)
        check(*run_in_process("vault", env))

    one()


@pytest.mark.parametrize("part", ["token", "discovery"])
def test_any_openid_provider_answer_gets_a_contract_exit(base_env, stub, part):
    env = _env(base_env, CREDHELPER_OIDC_ISSUER=stub.url, CREDHELPER_OIDC_CLIENT_ID="svc",
               CREDHELPER_OIDC_GRANT="client_credentials",
               CREDHELPER_OIDC_CLIENT_SECRET="env:CLIENT_SECRET", CLIENT_SECRET=CLIENT_SECRET)
    stub.held = CLIENT_SECRET
    good_discovery = {"issuer": stub.url, "token_endpoint": stub.url + "/token"}
    documents = any_or(shaped(issuer=st.just(stub.url) | json_values,
                              token_endpoint=st.just(stub.url + "/token") | json_values,
                              device_authorization_endpoint=json_values))

    @FUZZ
    @given(statuses, retry_after, bodies(token_answer), documents)
    def one(status, wait, body, document):
        stub.answer = (status, wait, body)
        stub.discovery = good_discovery if part == "token" else document
        check(*run_in_process("oidc", env))

    try:
        one()
    finally:
        stub.discovery = None
