"""Fixtures for the Vault backend: one real OpenBao server for the session (http and
https listeners, file audit device), provisioned with every auth method and secret the
tests read; a throw-away server per test for sealing and stopping; a stub of the
Kubernetes TokenReview API.

A fixture that cannot start its server fails the tests (pytest.fail), never skips them.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from openbao import OpenBao
from services import MINTED_SECRETS, JsonStub

from .vaultkit import CANARY, OTHER_FIELD_VALUE, PASSWORD, now, sign_jwt

POLICY = """
path "secret/data/*" { capabilities = ["read"] }
path "kv1/*" { capabilities = ["read"] }
path "identity/oidc/token/gateway" { capabilities = ["read"] }
"""
SA_NAME, SA_NAMESPACE, SA_UID = "gateway", "default", "0b6a2b46-0000-4000-8000-000000000001"


@dataclass
class Lab:
    """The provisioned session server and everything a test needs to reach it."""

    server: OpenBao
    dir: str
    ca_pem: str = ""
    ca_dir: str = ""
    wrong_ca_pem: str = ""
    client_cert: str = ""
    client_key: str = ""
    role_id: str = ""
    secret_id_file: str = ""
    secret_id: str = ""
    jwt_file: str = ""
    jwt: str = ""
    k8s_jwt_file: str = ""
    k8s_jwt: str = ""
    values: dict = field(default_factory=dict)  # name -> the secret value stored

    def api(self, method: str, path: str, body: dict | None = None, *, as_token: str = "root",
            namespace: str | None = None, **fields) -> dict:
        """A call as root (or ``as_token``) that must succeed; fields form the JSON body."""
        body = {**(body or {}), **fields}
        client = self.server.client(as_token, namespace)
        response = client.adapter.request(method, f"/v1/{path}", json=body or None,
                                          raise_exception=False)
        assert response.status_code < 400, (path, response.status_code, response.text)
        return response.json() if response.status_code == 200 and response.text else {}


def _tokenreview_stub(expected_token: str):
    """A stand-in for the Kubernetes API: only POST .../tokenreviews, which accepts
    exactly one service-account JWT. Everything else about Kubernetes is absent."""

    class Handler(JsonStub, BaseHTTPRequestHandler):
        reviews = 0

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            review = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.endswith("/apis/authentication.k8s.io/v1/tokenreviews"):
                self.send_response(404)
                self.end_headers()
                return
            Handler.reviews += 1
            token = (review.get("spec") or {}).get("token")
            ok = token == expected_token
            status = {"authenticated": ok}
            if ok:
                status["user"] = {"username": f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}",
                                  "uid": SA_UID,
                                  "groups": ["system:serviceaccounts"]}
            else:
                status["error"] = "invalid bearer token"
            self.send_json(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                 "status": status})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, Handler


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    import trustme

    d = str(tmp_path_factory.mktemp("openbao"))
    p = lambda name: os.path.join(d, name)  # noqa: E731

    ca, wrong_ca, client_ca = trustme.CA(), trustme.CA(), trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    server_cert.cert_chain_pems[0].write_to_path(p("server.crt"))
    server_cert.private_key_pem.write_to_path(p("server.key"))
    ca.cert_pem.write_to_path(p("ca.pem"))
    wrong_ca.cert_pem.write_to_path(p("wrong-ca.pem"))
    os.mkdir(p("ca-dir"))
    wrong_ca.cert_pem.write_to_path(p("ca-dir/00-other.pem"))
    ca.cert_pem.write_to_path(p("ca-dir/10-vault.crt"))
    client = client_ca.issue_cert("gateway-client", common_name="gateway-client")
    client.cert_chain_pems[0].write_to_path(p("client.crt"))
    client.private_key_pem.write_to_path(p("client.key"))

    server = OpenBao(p("server"), tls_cert=p("server.crt"), tls_key=p("server.key"))
    try:
        server.start()
    except Exception as exc:  # a missing or broken binary must fail loudly in CI
        pytest.fail(f"cannot start OpenBao: {exc}")
    lab = Lab(server, d, ca_pem=p("ca.pem"), ca_dir=p("ca-dir"), wrong_ca_pem=p("wrong-ca.pem"),
              client_cert=p("client.crt"), client_key=p("client.key"))
    try:
        _provision(lab, client_ca, p)
        yield lab
    finally:
        server.stop()


def _provision(lab: Lab, client_ca, p) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    api = lab.api
    v = lab.values
    v["kv2"] = "kv2-" + CANARY
    v["kv2_v1"] = "kv2-old-" + CANARY
    v["kv1"] = "kv1-" + CANARY
    v["leased"] = "leased-" + CANARY
    v["ns"] = "ns-" + CANARY

    # Secrets: KV v2 at secret/ (the dev default, two versions), KV v1 at kv1/.
    api("POST", "secret/data/gateway", data={"token": v["kv2_v1"], "other": OTHER_FIELD_VALUE})
    api("POST", "secret/data/gateway", data={"token": v["kv2"], "other": OTHER_FIELD_VALUE})
    api("POST", "sys/mounts/kv1", type="kv", options={"version": "1"})
    api("POST", "kv1/gateway", {"token": v["kv1"], "other": OTHER_FIELD_VALUE})
    # KV v1 turns a "ttl" field into the read's lease_duration: a real leased read.
    api("POST", "kv1/leased", {"token": v["leased"], "ttl": "90m"})
    api("POST", "sys/policies/acl/gateway-read", policy=POLICY)

    # Identity tokens: a role signed by the default key.
    api("POST", "identity/oidc/key/default", allowed_client_ids="*", rotation_period="24h")
    api("POST", "identity/oidc/role/gateway", key="default", ttl="1h")

    # AppRole.
    api("POST", "sys/auth/approle", type="approle")
    api("POST", "auth/approle/role/gateway", token_policies="gateway-read", token_ttl="1h",
        token_max_ttl="4h")
    lab.role_id = api("GET", "auth/approle/role/gateway/role-id")["data"]["role_id"]
    lab.secret_id = api("POST", "auth/approle/role/gateway/secret-id")["data"]["secret_id"]
    MINTED_SECRETS.add(lab.secret_id)  # checked in every run's stderr and log file
    with open(p("secret-id"), "w") as f:
        f.write(lab.secret_id + "\n")
    lab.secret_id_file = p("secret-id")

    # Userpass, and a second userpass mount standing in for LDAP (same login API).
    for mount in ("userpass", "ldap-userpass"):
        api("POST", f"sys/auth/{mount}", type="userpass")
    api("POST", "auth/userpass/users/alice", password=PASSWORD, token_policies="gateway-read",
        token_ttl="1h")
    api("POST", "auth/ldap-userpass/users/bob", password=PASSWORD, token_policies="gateway-read")

    # JWT with a static validation key.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    api("POST", "sys/auth/jwt", type="jwt")
    api("POST", "auth/jwt/config", jwt_validation_pubkeys=[public_pem], bound_issuer="https://ci.example")
    api("POST", "auth/jwt/role/gateway", role_type="jwt", user_claim="sub",
        bound_audiences=["vault"], token_policies="gateway-read", token_ttl="1h")
    lab.jwt = sign_jwt(key, {"iss": "https://ci.example", "sub": "ci-job-42", "aud": "vault",
                             "iat": now(), "nbf": now() - 5, "exp": now() + 3600})
    with open(p("ci.jwt"), "w") as f:
        f.write(lab.jwt)
    lab.jwt_file = p("ci.jwt")
    lab.private_key = key

    # Cert auth: trust the client CA for role "gateway".
    api("POST", "sys/auth/cert", type="cert")
    api("POST", "auth/cert/certs/gateway", certificate=client_ca.cert_pem.bytes().decode(),
        token_policies="gateway-read", token_ttl="1h")

    # Kubernetes auth against the TokenReview stub.
    lab.k8s_jwt = sign_jwt(key, {"iss": "kubernetes/serviceaccount", "sub":
                                 f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}",
                                 "kubernetes.io/serviceaccount/namespace": SA_NAMESPACE,
                                 "kubernetes.io/serviceaccount/service-account.name": SA_NAME,
                                 "kubernetes.io/serviceaccount/service-account.uid": SA_UID,
                                 "iat": now() - 5, "nbf": now() - 5, "exp": now() + 3600})
    with open(p("sa.jwt"), "w") as f:
        f.write(lab.k8s_jwt)
    lab.k8s_jwt_file = p("sa.jwt")
    httpd, handler = _tokenreview_stub(lab.k8s_jwt)
    lab.k8s_stub, lab.k8s_handler = httpd, handler
    api("POST", "sys/auth/kubernetes", type="kubernetes")
    api("POST", "auth/kubernetes/config", kubernetes_host=f"http://127.0.0.1:{httpd.server_port}",
        disable_local_ca_jwt=True, kubernetes_ca_cert=client_ca.cert_pem.bytes().decode())
    api("POST", "auth/kubernetes/role/gateway", bound_service_account_names=[SA_NAME],
        bound_service_account_namespaces=[SA_NAMESPACE], token_policies="gateway-read",
        token_ttl="1h")

    # A namespace with its own KV v2 mount.
    api("POST", "sys/namespaces/team")
    api("POST", "sys/mounts/kv", namespace="team", type="kv", options={"version": "2"})
    api("POST", "kv/data/gateway", namespace="team", data={"token": v["ns"]})


@pytest.fixture
def fresh_server(tmp_path):
    """A throw-away server (http only) for tests that seal or stop it."""
    server = OpenBao(str(tmp_path / "bao"), audit=False)
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"cannot start OpenBao: {exc}")
    yield server
    server.stop()
