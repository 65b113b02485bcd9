"""credhelper.net, the one network layer of every backend, in-process against real local
servers: the retry rule, the answer size cap (a server that would send 300 MB, lazily),
the TLS context (ca_cert against REQUESTS_CA_BUNDLE, a client certificate, proxies from
the environment) and the failure classifier (expired, not yet valid, unknown CA, wrong
host name, refused connection, timeout), by exception type."""

from __future__ import annotations

import datetime
import gzip
import http.server
import io
import socket
import ssl
import threading
import time

import pytest
import requests

from credhelper import net
from credhelper.errors import AccessDenied, BackendUnavailable, ConfigError
from credhelper.log import Log
from credhelper.provider import Request

MiB = 1024 * 1024


def make_request(seconds: float = 10.0) -> tuple[Request, io.StringIO]:
    err = io.StringIO()
    now = time.monotonic()
    return Request("background", False, now + seconds, now + seconds, Log("t", err, debug=True)), err


class Server:
    """A threaded HTTP(S) server on loopback whose handler is ``answer(handler)``."""

    def __init__(self, answer, context: ssl.SSLContext | None = None):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                answer(self)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *args: None  # failed handshakes are the point
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(handler, status: int = 200, body: bytes = b"{}", headers: dict | None = None):
    handler.send_response(status)
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def served():
    servers = []

    def start(answer, context=None) -> Server:
        servers.append(Server(answer, context))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


# ---------------------------------------------------------------- the retry rule


@pytest.mark.parametrize("status, method, idempotent, expected", [
    (429, "GET", False, True), (500, "GET", False, True), (502, "GET", False, True),
    (503, "GET", False, True), (504, "GET", False, True),
    (500, "POST", False, False),  # may have been carried out
    (500, "POST", True, True), (503, "POST", False, True), (429, "post", False, True),
    (501, "GET", True, False), (400, "GET", True, False), (403, "GET", True, False),
    (404, "GET", True, False), (200, "GET", True, False),
])
def test_one_rule_decides_which_answers_are_retried(status, method, idempotent, expected):
    assert net.retryable(status, method, idempotent) is expected


def test_retry_backs_off_then_gives_up_after_the_last_retry():
    request, err = make_request(30)
    retry = net.Retry(request)
    started = time.monotonic()
    for _attempt in range(net.MAX_RETRIES):
        assert retry.again(502, None, "HTTP 502")
    assert not retry.again(502, None, "HTTP 502")
    assert retry.why == f"gave up after {net.MAX_RETRIES} retries"
    # 0.2 + 0.4 + 0.8 + 1.6 seconds, the cap (2 s) not reached
    assert 2.9 <= time.monotonic() - started < 4
    assert "HTTP 502; retrying in 0.20s" in err.getvalue()
    error = retry.error("the server answered HTTP 502")
    assert isinstance(error, BackendUnavailable) and error.exit_code == 4
    assert error.message == "the server answered HTTP 502 (gave up after 4 retries)"


def test_retry_after_is_obeyed_when_it_fits_and_refused_at_once_when_not():
    request, err = make_request(3)
    retry = net.Retry(request)
    started = time.monotonic()
    assert retry.again(503, "1", "HTTP 503")
    assert 1.0 <= time.monotonic() - started < 1.5 and "(Retry-After)" in err.getvalue()
    started = time.monotonic()
    assert not retry.again(429, "120", "HTTP 429")
    assert time.monotonic() - started < 0.1  # no sleep towards a pause that cannot fit
    message = retry.error("HTTP 429").message
    assert "it asks to retry after 120s, past this run's deadline" in message
    assert "gave up at once" in message


def test_no_room_for_a_pause_gives_up_at_the_deadline():
    request, _ = make_request(0.6)  # the first pause (0.2 s) and half a second do not fit
    retry = net.Retry(request)
    assert not retry.again(502, None, "HTTP 502")
    assert retry.error("HTTP 502").message == "HTTP 502 (gave up at the deadline)"


def test_a_post_that_got_500_is_final_and_says_nothing_about_retrying():
    request, _ = make_request()
    retry = net.Retry(request)
    assert not retry.again(500, None, "HTTP 500", "POST")
    assert retry.why == "" and retry.error("HTTP 500").message == "HTTP 500"
    assert net.Retry(request, idempotent=True).again(500, "0", "HTTP 500", "POST")


def test_overloaded_answers_raise_before_a_library_reads_them(served):
    answers = iter([(503, {"Retry-After": "0"}), (200, {})])

    def answer(h):
        status, headers = next(answers)
        reply(h, status, b'{"ok": true}', headers)

    server = served(answer)
    sess = net.session(overload=True)
    request, _ = make_request()
    retry = net.Retry(request)
    with pytest.raises(net.Overloaded) as caught:
        sess.get(server.url, timeout=5)
    assert (caught.value.status, caught.value.retry_after, caught.value.method) == (503, "0", "GET")
    retry.after(caught.value, "HTTP 503")  # pauses, does not raise
    assert sess.get(server.url, timeout=5).json() == {"ok": True}


# ---------------------------------------------------------------- the size cap


def lazy_300_mb(handler, status: int = 200, declare: bool = False):
    """300 MB made and sent a chunk at a time (never held in memory), until the client
    hangs up; with ``declare``, a Content-Length says so up front."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    if declare:
        handler.send_header("Content-Length", str(300 * MiB))
    else:
        handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"x" * (64 * 1024)
    sent = 0
    try:
        while sent < 300 * MiB:
            if declare:
                handler.wfile.write(chunk)
            else:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        if not declare:
            handler.wfile.write(b"0\r\n\r\n")
    except OSError:  # the client stopped reading: what the cap is for
        pass
    handler.close_connection = True
    handler.sent = sent


@pytest.mark.parametrize("declare", [False, True], ids=["chunked", "content-length"])
def test_an_answer_past_the_cap_ends_the_call_with_exit_4(served, declare):
    sent = []

    def answer(h):
        lazy_300_mb(h, declare=declare)
        sent.append(h.sent)

    server = served(answer)
    started = time.monotonic()
    with pytest.raises(net.ResponseTooLarge) as caught:
        net.session().get(server.url + "/v1/secret", timeout=10)
    assert time.monotonic() - started < 5
    error = net.failure(caught.value, server.url, name="Vault")
    assert isinstance(error, BackendUnavailable) and error.exit_code == 4
    assert error.message.startswith(f"Vault at {server.url} sent an answer longer than 4 MiB")
    assert "not read" in error.message and "proxy" in error.hint
    until = time.monotonic() + 5
    while not sent and time.monotonic() < until:
        time.sleep(0.05)
    # The server could send no more than the cap and what the socket buffers held: the
    # client hung up instead of reading 300 MB.
    assert sent and sent[0] < 64 * MiB, sent


def test_a_refusal_past_the_cap_exits_5(served):
    server = served(lambda h: lazy_300_mb(h, status=403))
    with pytest.raises(net.ResponseTooLarge) as caught:
        net.session().post(server.url + "/token", data={"a": "b"}, timeout=10)
    error = net.failure(caught.value, server.url)
    assert isinstance(error, AccessDenied) and error.exit_code == 5
    assert "refused the request (HTTP 403)" in error.message


def test_the_cap_counts_what_a_compressed_answer_inflates_to(served):
    bomb = gzip.compress(b"0" * (20 * MiB))  # 20 KiB on the wire

    server = served(lambda h: reply(h, 200, bomb, {"Content-Encoding": "gzip",
                                                  "Content-Type": "application/json"}))
    assert len(bomb) < MiB
    with pytest.raises(net.ResponseTooLarge):
        net.session().get(server.url, timeout=10)


def test_answers_under_the_cap_are_read_whole(served):
    body = b"y" * (net.MAX_BODY - 10)
    server = served(lambda h: reply(h, 200, body))
    assert net.session().get(server.url, timeout=10).content == body



def test_code_that_reads_raw_is_capped_too(served):
    def chunked(h):
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.write(b"bb8\r\n" + b"z" * 3000 + b"\r\n0\r\n\r\n")

    server = served(chunked)
    raw = net.session(limit=2000).get(server.url, stream=True).raw
    assert raw.read(100) == b"z" * 100
    with pytest.raises(net.ResponseTooLarge):
        raw.read()


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    import trustme

    directory = tmp_path_factory.mktemp("net-tls")
    ca, other = trustme.CA(), trustme.CA()
    ca_pem, other_pem = str(directory / "ca.pem"), str(directory / "other.pem")
    ca.cert_pem.write_to_path(ca_pem)
    other.cert_pem.write_to_path(other_pem)
    ca_dir = directory / "cas"
    ca_dir.mkdir()
    ca.cert_pem.write_to_path(str(ca_dir / "one.pem"))
    return {"ca": ca, "other": other, "ca_pem": ca_pem, "other_pem": other_pem,
            "ca_dir": str(ca_dir), "dir": directory}


def tls_server(served, leaf, require_client_ca=None) -> Server:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    if require_client_ca is not None:
        require_client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return served(lambda h: reply(h, 200, b'{"ok": true}'), context)


DAY = datetime.timedelta(days=1)


@pytest.mark.parametrize("dates, kind, reason, hint", [
    ({"not_before": -30, "not_after": -1}, "dates", "the server's certificate has expired",
     "its operator must renew the certificate"),
    ({"not_before": 1, "not_after": 30}, "dates", "the server's certificate is not yet valid",
     "check this machine's clock"),
], ids=["expired", "not-yet-valid"])
def test_certificate_dates_are_named_from_the_verify_code(served, pki, dates, kind, reason, hint):
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = pki["ca"].issue_cert("127.0.0.1", **{k: now + v * DAY for k, v in dates.items()})
    server = tls_server(served, leaf)
    with pytest.raises(requests.exceptions.SSLError) as caught:
        net.session(pki["ca_pem"]).get(server.url, timeout=5)
    tls = net.tls_failure(caught.value)
    assert (tls.kind, tls.reason, tls.hint.startswith(hint)) == (kind, reason, True)
    error = net.failure(caught.value, server.url, name="Vault")
    assert error.exit_code == 4 and error.message == f"TLS to {server.url} failed: {reason}"
    assert "ca_cert" not in error.hint  # the CA is right: do not send them after it


def test_an_unknown_ca_and_a_wrong_host_name(served, pki):
    server = tls_server(served, pki["other"].issue_cert("127.0.0.1"))
    with pytest.raises(requests.exceptions.SSLError) as caught:
        net.session(pki["ca_pem"]).get(server.url, timeout=5)
    error = net.failure(caught.value, server.url, ca_setting="[vault] ca_cert (or VAULT_CACERT)")
    assert error.message == (f"TLS to {server.url} failed: certificate verify failed: unable "
                             "to get local issuer certificate")
    assert error.hint.startswith("set [vault] ca_cert (or VAULT_CACERT) to the CA that signed")

    server = tls_server(served, pki["ca"].issue_cert("gateway.example.com"))
    for host in ("127.0.0.1", "localhost"):  # OpenSSL's IP and host name mismatch codes
        with pytest.raises(requests.exceptions.SSLError) as caught:
            net.session(pki["ca_pem"]).get(f"https://{host}:{server.port}/", timeout=5)
        tls = net.tls_failure(caught.value)
        assert tls.kind == "name" and "does not name this host" in tls.reason, tls
        assert "mismatch" in tls.detail


def test_https_to_a_plain_http_port_is_a_handshake_failure(served):
    server = served(lambda h: reply(h))
    with pytest.raises(requests.exceptions.SSLError) as caught:
        net.session().get(f"https://127.0.0.1:{server.port}/", timeout=5)
    tls = net.tls_failure(caught.value)
    assert tls.kind == "handshake" and "WRONG_VERSION_NUMBER" in tls.reason


def test_ca_cert_beats_requests_ca_bundle_and_verify(served, pki, monkeypatch):
    server = tls_server(served, pki["ca"].issue_cert("127.0.0.1"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["other_pem"])
    assert net.session(pki["ca_pem"]).get(server.url, timeout=5).json() == {"ok": True}
    assert net.session(pki["ca_dir"]).get(server.url, timeout=5).json() == {"ok": True}
    # The variable cannot widen a ca_cert either, and verify=False cannot switch it off.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["ca_pem"])
    with pytest.raises(requests.exceptions.SSLError):
        net.session(pki["other_pem"]).get(server.url, timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        net.session(pki["other_pem"]).get(server.url, timeout=5, verify=False)
    # Without ca_cert, REQUESTS_CA_BUNDLE is trusted (on top of the system CAs).
    assert net.session().get(server.url, timeout=5).json() == {"ok": True}
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        net.session().get(server.url, timeout=5)


def test_a_client_certificate_is_presented(served, pki):
    client = pki["ca"].issue_cert("credhelper-client")
    cert, key = str(pki["dir"] / "client.pem"), str(pki["dir"] / "client.key")
    client.cert_chain_pems[0].write_to_path(cert)
    client.private_key_pem.write_to_path(key)
    server = tls_server(served, pki["ca"].issue_cert("127.0.0.1"), require_client_ca=pki["ca"])
    assert net.session(pki["ca_pem"], cert, key).get(server.url, timeout=5).json() == {"ok": True}
    with pytest.raises(requests.exceptions.RequestException) as caught:
        net.session(pki["ca_pem"]).get(server.url, timeout=5)
    assert net.failure(caught.value, server.url).exit_code == 4


def test_unreadable_tls_files_are_configuration_errors(pki, tmp_path):
    with pytest.raises(ConfigError, match="TLS file not found"):
        net.tls_context(str(tmp_path / "missing.pem"), source="VAULT_CACERT (environment)")
    (tmp_path / "garbage.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"cannot load the TLS files \(ca_cert\)"):
        net.tls_context(str(tmp_path / "garbage.pem"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        net.tls_context(str(empty))


def test_proxies_come_from_the_environment(served, monkeypatch):
    seen = []

    def proxy(h):  # a forward proxy answers absolute-form requests itself
        seen.append(h.path)
        reply(h, 200, b'{"via": "proxy"}')

    server = served(proxy)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert net.session().get("http://vault.invalid:8200/v1/sys/health", timeout=5).json() == {
        "via": "proxy"}
    assert seen == ["http://vault.invalid:8200/v1/sys/health"]
    monkeypatch.setenv("NO_PROXY", "vault.invalid")
    with pytest.raises(requests.exceptions.ConnectionError):
        net.session().get("http://vault.invalid:8200/v1/sys/health", timeout=5)
    assert len(seen) == 1


# ---------------------------------------------------------------- other transport failures


def test_refused_connection_and_timeout_by_type():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        net.session().get(f"http://127.0.0.1:{port}/", timeout=5)
    error = net.failure(caught.value, f"http://127.0.0.1:{port}", name="Vault",
                        address_setting="[vault] address (or VAULT_ADDR)")
    assert error.exit_code == 4
    assert error.message == f"cannot reach Vault at http://127.0.0.1:{port}: Connection refused"
    assert "[vault] address (or VAULT_ADDR)" in error.hint and "HTTPS_PROXY" in error.hint

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(requests.exceptions.Timeout) as caught:
            net.session().get(url, timeout=0.5)
    error = net.failure(caught.value, url, what="discovery")
    assert error.message == f"no answer from {url} within the deadline (discovery)"


def test_anything_else_is_not_a_transport_failure():
    assert net.failure(ValueError("a bug"), "https://x") is None
    assert net.failure(KeyError("token"), "https://x") is None
    assert net.failure(FileNotFoundError(2, "No such file"), "https://x") is None
    assert net.tls_failure(RuntimeError("certificate has expired")) is None  # no text guessing


def test_botocore_tls_errors_are_classified_by_type(served, pki):
    import botocore.session
    from botocore.config import Config

    now = datetime.datetime.now(datetime.timezone.utc)
    server = tls_server(served, pki["ca"].issue_cert("127.0.0.1", not_before=now - 30 * DAY,
                                                     not_after=now - DAY))
    sts = botocore.session.get_session().create_client(
        "sts", region_name="us-east-1", endpoint_url=server.url, verify=pki["ca_pem"],
        aws_access_key_id="AKIANETTEST000000000", aws_secret_access_key="net-test",
        config=Config(retries={"total_max_attempts": 1}))
    from botocore.exceptions import SSLError

    with pytest.raises(SSLError) as caught:
        sts.get_caller_identity()
    tls = net.tls_failure(caught.value, "AWS_CA_BUNDLE")
    assert tls.reason == "the server's certificate has expired"


# ---------------------------------------------------------------- doctor's certificate view


def test_doctor_describes_a_certificate_it_cannot_verify_without_private_apis(
        served, pki, monkeypatch):
    import inspect

    from credhelper import report

    now = datetime.datetime.now(datetime.timezone.utc)
    expired = tls_server(served, pki["ca"].issue_cert("127.0.0.1", not_before=now - 30 * DAY,
                                                      not_after=now - DAY))
    [check] = report.probe_backend(expired.url, pki["ca_pem"], 5, time.time, "address")
    assert check["status"] == "fail" and check["check"] == "TLS"
    assert "the server's certificate has expired (subject O=trustme" in check["detail"]
    assert "names 127.0.0.1, expired " in check["detail"] and "renew" in check["detail"]

    untrusted = tls_server(served, pki["other"].issue_cert("127.0.0.1"))
    [check] = report.probe_backend(untrusted.url, pki["ca_pem"], 5, time.time, "address")
    assert "certificate not trusted: unable to get local issuer certificate" in check["detail"]
    assert f"set ca_cert to the CA that signed it (ca_cert is {pki['ca_pem']})" in check["detail"]

    # Without the cryptography package the report shows the failure alone.
    monkeypatch.setitem(__import__("sys").modules, "cryptography", None)
    [check] = report.probe_backend(untrusted.url, pki["ca_pem"], 5, time.time, "address")
    assert "certificate not trusted" in check["detail"] and "subject" not in check["detail"]
    assert "_test_decode_cert" not in inspect.getsource(report)

    ok = tls_server(served, pki["ca"].issue_cert("127.0.0.1"))
    checks = {c["check"]: c for c in report.probe_backend(ok.url, pki["ca_pem"], 5, time.time,
                                                          "address")}
    assert checks["TLS certificate"]["status"] == "ok"
    assert checks["TLS certificate"]["detail"].startswith("subject O=trustme")
