"""config.check_url, the one check of every backend and gateway URL: the host it checks is
the host the request connects to. Hypothesis builds URLs from the pieces parsers disagree
on; whatever check_url lets through (it splits with urlsplit), urllib3's parse_url (what
requests and botocore connect with) reads without error and with the same scheme, host
and port, with no user info, and plain http only to loopback. The real-listener test is
tests/vault/test_vault_url.py."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import pytest
from conftest import CANARY, assert_failure, run
from hypothesis import HealthCheck, given, settings, strategies as st
from urllib3.util import parse_url

from credhelper.config import check_url, is_loopback

PIECES = ["http://", "https://", "HTTP://", "127.0.0.1", "127.0.0.3", "localhost", "[::1]",
          "evil.example", "@", ":", "\\", "/", "?", "#", "%", "%40", "%2f", "%5c", "%00", "[",
          "]", ";", ".", "80", "8200", "65536", "a", "u:p", "\t", " ", "\u3002", "\uff20", "::",
          "[v1.x]", "[::ffff:127.0.0.1]", "127.1", "0x7f.1", "=", "&", "!", "$", "'", "~"]
urls = st.lists(st.sampled_from(PIECES), max_size=9).map("".join)


def _agree(url: str) -> None:
    a, b = parse_url(url), urlsplit(url)
    host = (a.host or "").removeprefix("[").removesuffix("]")
    assert a.auth is None and "@" not in b.netloc, url
    assert host.lower() == (b.hostname or "").lower(), (url, host, b.hostname)
    assert a.port == b.port and (a.scheme or "").lower() == b.scheme, url
    if b.scheme == "http":
        assert is_loopback(host), url


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(urls)
def test_what_passes_is_read_alike_by_every_parser(url):
    try:
        check_url(url)
    except ValueError as exc:
        assert "u:p" not in str(exc) or "@" not in url  # a URL with a password is never echoed
        return
    _agree(url)


# Free text over the characters that matter in an authority, for what the pieces miss.
free = st.text(alphabet="htps:/[]@\\?#%.1270:abcdefxX-_~!$&'()*+,;=", max_size=30).map(
    lambda t: ("http://" if len(t) % 2 else "https://") + t)


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(free)
def test_free_text_that_passes_is_read_alike(url):
    try:
        check_url(url)
    except ValueError:
        return
    _agree(url)


def test_the_check_imports_no_http_library():
    """A run that makes no request (a sign-in only a person can give, status) must not
    pay for importing urllib3 to read its URL settings."""
    import subprocess

    code = ("import sys; from credhelper.config import check_url; "
            "check_url('http://127.0.0.1:8200'); print('urllib3' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


@pytest.mark.parametrize("url, phrase", [
    ("http://127.0.0.3\\@127.0.0.1:8200", "backslash"),
    ("http://evil.example\\@127.0.0.1:8200", "backslash"),
    ("https://vault.example\\v1", "backslash"),
    ("http://user:pw@127.0.0.1:8200", "user name or password"),
    ("https://:@vault.example", "user name or password"),
    ("https://@vault.example", "user name or password"),
    ("http://127.0.0.1:8200\t", "control"),
    ("https://vault.example /", "space"),
    ("https://bücher.example", "non-ASCII"),
    ("http://127.0.0.1:8200#@evil.example", None),  # the fragment: host 127.0.0.1
    ("http://[::1]:8200/v1", None),
])
def test_cases(url, phrase):
    if phrase is None:
        assert check_url(url) == url
        _agree(url)
        return
    with pytest.raises(ValueError, match=phrase):
        check_url(url)


def test_a_password_in_a_url_is_never_echoed():
    for url in (f"https://gw:{CANARY}@vault.example", f"ftp://gw:{CANARY}@x",
                f"http://gw:{CANARY}@evil.example\\x"):
        with pytest.raises(ValueError) as info:
            check_url(url)
        assert CANARY not in str(info.value)


def test_the_gateway_check_uses_it_too(base_env):
    p = run(["credhelper", "test-gateway", "http://127.0.0.3\\@127.0.0.1:9", "-p", "keyring"],
            base_env)
    assert_failure(p, 2, "gateway URL", "backslash")
