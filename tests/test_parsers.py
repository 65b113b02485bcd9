"""Property tests for everything that parses untrusted bytes: JWTs, cache entries,
snapshots, header tables. Each either returns a well-formed value or rejects cleanly."""

import base64
import json
import os

from hypothesis import given, settings, strategies as st

from credhelper import jwt, output, snapshot
from credhelper.cache import Entry
from credhelper.errors import AccessDenied, ConfigError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@given(st.text(max_size=300))
def test_jwt_decode_never_raises(text):
    decoded = jwt.decode(text)
    assert decoded is None or (isinstance(decoded[0], dict) and isinstance(decoded[1], dict))
    exp = jwt.expiry(text)
    assert exp is None or isinstance(exp, float)


@given(json_values, json_values, st.text(max_size=20))
def test_jwt_segments_of_any_json(header, claims, signature):
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{signature}"
    decoded = jwt.decode(token)
    if isinstance(header, dict) and "alg" in header and isinstance(claims, dict):
        assert decoded == (header, claims)
    else:
        assert decoded is None


@given(st.integers(-10**12, 10**12))
def test_jwt_expiry_reads_exp(exp):
    header = b64(b'{"alg": "none"}')
    token = f"{header}.{b64(json.dumps({'exp': exp}).encode())}.sig"
    assert jwt.expiry(token) == float(exp)


@given(st.binary(max_size=400))
def test_entry_loads_rejects_garbage_with_value_error(data):
    try:
        entry = Entry.loads(data)
    except ValueError:
        return
    assert isinstance(entry.token, str) and isinstance(entry.expires_at, float)


@given(json_values)
def test_entry_loads_any_json_document(doc):
    try:
        Entry.loads(json.dumps(doc))
    except ValueError:
        pass


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=50),
       st.dictionaries(st.from_regex(r"[A-Za-z0-9-]{1,10}", fullmatch=True),
                       st.from_regex(r"([!-~]{1,5}( [!-~]{1,5}){0,2})?", fullmatch=True),
                       max_size=3),
       st.floats(0, 4e9))
def test_entry_round_trip(token, headers, expires_at):
    entry = Entry("p", "k", token, headers, expires_at, 1.0, {"source": "x"})
    again = Entry.loads(entry.dumps())
    assert (again.token, again.headers, again.expires_at) == (token, headers, expires_at)


@given(st.text(max_size=30), st.text(max_size=10))
def test_an_entry_holds_only_what_a_run_would_cache(token, header):
    """An entry written by an older version with a credential or header value a run now
    refuses (a space, a control or non-ASCII character) is no entry: a miss, refetched."""
    entry = Entry("p", "k", token, {"X-A": header}, 2e9, 1.0, {})
    try:
        again = Entry.loads(entry.dumps())
    except ValueError:
        assert not token or not output.is_header_value(token) \
            or not output.is_header_value(header, spaces=True)
        return
    assert output.check_token(again.token, "b") and output.check_backend_headers(again.headers, "b")


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.text(max_size=12), st.integers()), max_size=4))
def test_header_tables_are_checked(headers):
    try:
        output.check_headers(headers, "headers")
    except ConfigError as exc:
        assert exc.message.startswith("headers: ")
        return
    rendered = json.loads(output.render("t", headers, "json"))
    assert rendered["headers"] == headers


@given(st.text(max_size=60))
def test_tokens_are_single_clean_lines(token):
    try:
        output.check_token(token, "backend")
    except AccessDenied:
        return
    assert output.render(token, {}, "token") == token + "\n"
    assert "\n" not in token and "\r" not in token and token == token.strip()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_a_damaged_snapshot_is_ignored(tmp_path_factory, data):
    directory = str(tmp_path_factory.mktemp("snap"))
    os.chmod(directory, 0o700)
    path = os.path.join(directory, "snapshot-p.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, data)
    os.close(fd)
    assert snapshot.read(directory, "p", {}) is None


# ---------------------------------------------------------------- Retry-After, fresh expiry

@given(st.text(max_size=60))
def test_retry_after_of_any_text_is_a_bounded_wait_or_none(text):
    from credhelper.durations import MAX_SECONDS, parse_retry_after

    wait = parse_retry_after(text, now=1_800_000_000.0)
    assert wait is None or 0.0 <= wait <= MAX_SECONDS


@given(st.integers(0, 10**9))
def test_retry_after_seconds(seconds):
    from credhelper.durations import MAX_SECONDS, parse_retry_after

    assert parse_retry_after(f" {seconds} ") == min(seconds, MAX_SECONDS)


@given(st.integers(-86400, 86400))
def test_retry_after_http_date_is_counted_from_now(offset):
    from email.utils import formatdate

    from credhelper.durations import parse_retry_after

    now = 1_800_000_000.0
    wait = parse_retry_after(formatdate(now + offset, usegmt=True), now=now)
    assert wait == max(0.0, float(offset))


def unsigned_jwt(claims) -> str:
    header = b64(b'{"alg":"none"}')
    return f"{header}.{b64(json.dumps(claims).encode())}.sig"


def _request(stderr):
    import time

    from credhelper.log import Log
    from credhelper.provider import Request

    return Request("background", False, time.monotonic() + 10, time.monotonic() + 10,
                   Log("t", stderr=stderr))


@given(iat=st.integers(1_000_000_000, 3_000_000_000), lifetime=st.integers(1, 86400),
       sent_at=st.floats(1_000_000_000, 3_000_000_000))
def test_a_fresh_tokens_lifetime_is_counted_from_when_it_was_asked_for(iat, lifetime, sent_at):
    """Whatever the issuer's clock says (iat), a fresh token lives exp - iat from sent_at;
    a skew beyond a minute is reported, never the token."""
    import io

    token = unsigned_jwt({"iat": iat, "exp": iat + lifetime})
    err = io.StringIO()
    assert _request(err).fresh_token_expiry(token, "issuer", sent_at=sent_at) == sent_at + lifetime
    assert ("clock" in err.getvalue()) == (abs(iat - sent_at) > 60)
    assert token not in err.getvalue()


@given(json_values)
def test_fresh_expiry_of_any_claims_never_raises(claims):
    import io

    token = unsigned_jwt(claims)
    expires = _request(io.StringIO()).fresh_token_expiry(token, "issuer")
    assert expires is None or isinstance(expires, float)


# ---------------------------------------------------------------- status of any cache entry

finite_or_not = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2**70, 2**70)


@settings(max_examples=300)
@given(json_values, finite_or_not, finite_or_not, st.dictionaries(st.text(max_size=6), json_values, max_size=3))
def test_status_of_any_loadable_entry_never_raises_nor_shows_the_token(claims, expires, fetched, details):
    """A damaged or hostile entry is either refused by the loader or described without the
    token (a JWT's signature is the secret part: claims may show, the token never)."""
    from credhelper.report import describe_entry, format_status

    token = unsigned_jwt(claims)[:-3] + "canary-signature"
    doc = {"format": 1, "provider": "p", "key": "k", "token": token, "headers": {},
           "expires_at": expires, "fetched_at": fetched, "details": details}
    try:
        entry = Entry.loads(json.dumps(doc, allow_nan=True))
    except ValueError:
        return
    now = 1_800_000_000.0
    info = describe_entry(entry, "/cache/p-k.v1.json", now, 300.0, False, True)
    text = format_status([info], now) + json.dumps(info, allow_nan=True)
    assert "canary-signature" not in text
    assert entry.fresh(now, 300.0) == (entry.expires_at - now >= 300.0)
