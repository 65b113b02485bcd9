"""A stand-in for IAM Identity Center, for the sign-in tests: moto (5.2) implements neither
SSO OIDC (RegisterClient, StartDeviceAuthorization, CreateToken) nor the SSO portal's
GetRoleCredentials, so this is the smallest faithful server for those four calls, in
their REST-JSON shapes from botocore's own service models (paths, field names, errors
as ``x-amzn-ErrorType`` plus the OAuth ``error`` body, role credentials' expiration in
epoch milliseconds). It is not AWS: the person's step is its own small verification
page (GET /device?user_code=..., POST /device with decision=approve or deny), played by
the tests over HTTP, and the role credentials it hands out are a real moto IAM user's
access key, so STS (the real moto server) recognises who signed in.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from urllib.parse import parse_qs, urlsplit

from services import quiet_server

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class IdentityCenter:
    def __init__(self, role_credentials: dict, account: str, role: str):
        self.role_credentials = role_credentials  # accessKeyId, secretAccessKey, sessionToken
        self.account, self.role = account, role
        self.token_ttl = 3600  # expiresIn of an access token
        self.code_ttl = 600  # expiresIn of a device authorization
        self.interval = 1
        self.calls: list[str] = []  # "RegisterClient", "CreateToken:refresh_token", ...
        self.slow_down: dict[str, int] = {}  # call -> how many times to answer SlowDown first
        self.clients: dict[str, dict] = {}
        self.devices: dict[str, dict] = {}  # device code -> {user_code, state, client, expires}
        self.tokens: dict[str, float] = {}  # access token -> expiry
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> client id
        self.lock = threading.Lock()
        self.server, self.url = quiet_server(self._handle)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> IdentityCenter:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, call: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c == call)

    # -------------------------------------------------------- the person's page

    def person(self, user_code: str, decision: str = "approve") -> int:
        """Play the person at the verification page, over HTTP; returns the HTTP status."""
        import urllib.request

        page = urllib.request.urlopen(f"{self.url}/device?user_code={user_code}", timeout=10)
        assert user_code in page.read().decode()
        form = f"user_code={user_code}&decision={decision}".encode()
        done = urllib.request.urlopen(urllib.request.Request(f"{self.url}/device", data=form),
                                      timeout=10)
        return done.status

    # -------------------------------------------------------- HTTP

    def _handle(self, handler, body: bytes) -> None:
        path = urlsplit(handler.path).path
        query = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
        try:
            if path == "/device":
                return self._device_page(handler, body, query)
            if path == "/federation/credentials" and handler.command == "GET":
                return self._role_credentials(handler, query)
            doc = json.loads(body or b"{}")
            if path == "/client/register":
                return self._register(handler, doc)
            if path == "/device_authorization":
                return self._authorize(handler, doc)
            if path == "/token":
                return self._token(handler, doc)
            self._send(handler, 404, {"message": "no such operation here"})
        except (KeyError, ValueError) as exc:
            self._error(handler, 400, "InvalidRequestException", "invalid_request", repr(exc))

    def _send(self, handler, status: int, doc: dict, headers: dict | None = None) -> None:
        data = json.dumps(doc).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler, status: int, kind: str, error: str, text: str = "") -> None:
        self._send(handler, status, {"error": error, "error_description": text or kind},
                   {"x-amzn-ErrorType": f"{kind}:"})

    def _slowed(self, handler, call: str) -> bool:
        """Answer SlowDownException (SSO OIDC's throttling) when the test asked for it."""
        if self.slow_down.get(call, 0) <= 0:
            return False
        self.slow_down[call] -= 1
        self._error(handler, 400, "SlowDownException", "slow_down")
        return True

    def _register(self, handler, doc: dict) -> None:
        assert doc["clientType"] == "public" and doc["clientName"]
        if self._slowed(handler, "RegisterClient"):
            with self.lock:
                self.calls.append("RegisterClient:slow_down")
            return
        now = int(time.time())
        client = {"clientId": "client-" + secrets.token_hex(8),
                  "clientSecret": "canary-SSO-CLIENT-SECRET-" + secrets.token_hex(8),
                  "clientIdIssuedAt": now, "clientSecretExpiresAt": now + 90 * 86400,
                  "scopes": doc.get("scopes") or []}
        with self.lock:
            self.calls.append("RegisterClient")
            self.clients[client["clientId"]] = client
        self._send(handler, 200, {k: v for k, v in client.items() if k != "scopes"})

    def _client_ok(self, doc: dict) -> dict | None:
        client = self.clients.get(doc.get("clientId", ""))
        return client if client and client["clientSecret"] == doc.get("clientSecret") else None

    def _authorize(self, handler, doc: dict) -> None:
        with self.lock:
            self.calls.append("StartDeviceAuthorization")
            if self._client_ok(doc) is None:
                return self._error(handler, 401, "InvalidClientException", "invalid_client")
            device = "canary-SSO-DEVICE-" + secrets.token_hex(8)
            code = "-".join(secrets.token_hex(2).upper() for _ in range(2)).replace("0", "Q")
            self.devices[device] = {"user_code": code, "state": "pending",
                                    "client": doc["clientId"], "start_url": doc["startUrl"],
                                    "expires": time.time() + self.code_ttl}
        self._send(handler, 200, {
            "deviceCode": device, "userCode": code,
            "verificationUri": f"{self.url}/device",
            "verificationUriComplete": f"{self.url}/device?user_code={code}",
            "expiresIn": self.code_ttl, "interval": self.interval})

    def _token(self, handler, doc: dict) -> None:
        grant = doc["grantType"]
        with self.lock:
            self.calls.append(f"CreateToken:{'device_code' if grant == DEVICE_GRANT else grant}")
            client = self._client_ok(doc)
            if client is None:
                return self._error(handler, 401, "InvalidClientException", "invalid_client")
            if grant == "refresh_token":
                owner = self.refresh_tokens.pop(doc.get("refreshToken", ""), None)
                if owner != client["clientId"]:
                    return self._error(handler, 400, "InvalidGrantException", "invalid_grant")
                return self._issue(handler, client)
            if grant != DEVICE_GRANT:
                return self._error(handler, 400, "UnsupportedGrantTypeException",
                                   "unsupported_grant_type")
            device = self.devices.get(doc.get("deviceCode", ""))
            if device is None or device["client"] != client["clientId"]:
                return self._error(handler, 400, "InvalidGrantException", "invalid_grant")
            if device["expires"] <= time.time():
                return self._error(handler, 400, "ExpiredTokenException", "expired_token")
            if device["state"] == "denied":
                del self.devices[doc["deviceCode"]]
                return self._error(handler, 400, "AccessDeniedException", "access_denied")
            if device["state"] == "pending":
                return self._error(handler, 400, "AuthorizationPendingException",
                                   "authorization_pending")
            del self.devices[doc["deviceCode"]]  # a device code is exchanged once
            return self._issue(handler, client)

    def _issue(self, handler, client: dict) -> None:
        access = "canary-SSO-ACCESS-" + secrets.token_hex(12)
        self.tokens[access] = time.time() + self.token_ttl
        answer = {"accessToken": access, "tokenType": "Bearer", "expiresIn": self.token_ttl}
        if "sso:account:access" in client["scopes"]:  # as AWS: refresh tokens only then
            refresh = "canary-SSO-REFRESH-" + secrets.token_hex(12)
            self.refresh_tokens[refresh] = client["clientId"]
            answer["refreshToken"] = refresh
        self._send(handler, 200, answer)

    def _role_credentials(self, handler, query: dict) -> None:
        token = handler.headers.get("x-amz-sso_bearer_token", "")
        with self.lock:
            self.calls.append("GetRoleCredentials")
            alive = self.tokens.get(token, 0) > time.time()
        if not alive:
            return self._send(handler, 401, {"message": "Session token not found or invalid"},
                              {"x-amzn-ErrorType": "UnauthorizedException:"})
        if (query.get("account_id"), query.get("role_name")) != (self.account, self.role):
            return self._send(handler, 403, {"message": "No access"},
                              {"x-amzn-ErrorType": "ForbiddenException:"})
        expiration = int((time.time() + 3600) * 1000)  # epoch milliseconds, as AWS sends it
        self._send(handler, 200, {"roleCredentials": {**self.role_credentials,
                                                      "expiration": expiration}})

    def _device_page(self, handler, body: bytes, query: dict) -> None:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        code = form.get("user_code") or query.get("user_code", "")
        with self.lock:
            found = [d for d in self.devices.values() if d["user_code"] == code]
            if handler.command == "POST" and found:
                found[0]["state"] = "approved" if form.get("decision") == "approve" else "denied"
        page = (f"<html><body><p>Authorize request {code}?</p><form method='post'>"
                f"<input name='user_code' value='{code}'/></form></body></html>").encode()
        handler.send_response(200 if found else 404)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(page)))
        handler.end_headers()
        handler.wfile.write(page)
