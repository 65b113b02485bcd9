"""Reference verifier for ``credhelper-aws`` presigned-identity tokens, for gateway teams.

A token is a presigned STS ``GetCallerIdentity`` request (the pattern EKS uses) bound to
one gateway by a signed ``x-credhelper-audience`` header::

    credhelper-aws-v1.<base64url(audience)>.<base64url(presigned URL)>

(base64url without padding, both parts UTF-8). ``verify`` checks everything that can be
checked locally (format, STS host, action, signed headers, audience, age), then replays
the request to STS with the gateway's *own* expected audience as the header value. STS
checks the signature over that header, so a token minted for another audience fails
there even if its audience segment was edited; the local audience check gives an early,
clear rejection. STS answers with the caller's ARN, which is the identity to trust.

Standard library only, so a gateway can vendor this one file. Command line::

    python -m credhelper.providers.aws_verify --audience https://gw.example.com TOKEN
"""

from __future__ import annotations

import base64
import calendar
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from urllib.parse import parse_qsl, urlsplit

PREFIX = "credhelper-aws-v1"
AUDIENCE_HEADER = "x-credhelper-audience"
# STS accepts a presigned GetCallerIdentity for 15 minutes after X-Amz-Date whatever
# X-Amz-Expires says, so no token can be honestly valid for longer.
MAX_LIFETIME = 900
CLOCK_SKEW = 60  # seconds a token's date may lie in the future (clock drift)
STS_VERSION = "2011-06-15"
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
# Public STS endpoints: global, regional, FIPS, and the China partition.
_STS_HOST = re.compile(r"^sts(-fips)?(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
_ALLOWED_PARAMS = {
    "Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
    "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
}


class TokenRejected(Exception):
    """The token is not acceptable; the message says why (and never holds the token)."""


class STSUnavailable(Exception):
    """STS could not be asked (network, TLS, 5xx, throttling): retry later, not a no."""


@dataclass
class Identity:
    arn: str
    account: str
    user_id: str
    access_key_id: str
    region: str
    signed_at: int  # Unix time of X-Amz-Date
    expires_at: int  # when this verifier stops accepting the token


@dataclass
class Decoded:
    audience: str
    url: str
    params: dict
    signed_headers: list
    access_key_id: str
    region: str
    signed_at: int
    expires_at: int


def _b64decode(part: str, what: str) -> str:
    if not part or not re.fullmatch(r"[A-Za-z0-9_-]+", part):
        raise TokenRejected(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise TokenRejected(f"{what} is not base64url-encoded UTF-8") from None


def encode(audience: str, url: str) -> str:
    """The token for a presigned URL (what credhelper-aws prints)."""

    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")

    return f"{PREFIX}.{b64(audience)}.{b64(url)}"


def decode(token: str, now: float | None = None, max_age: int = MAX_LIFETIME,
           allowed_endpoints: Iterable[str] = ()) -> Decoded:
    """Parse and check a token without any network call.

    ``allowed_endpoints`` adds endpoints besides the public STS hosts (a VPC endpoint,
    or a test server), as ``scheme://host[:port]``.
    """
    now = time.time() if now is None else now
    if not isinstance(token, str):
        raise TokenRejected("the token is not text")
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenRejected(f"not a {PREFIX} token")
    audience = _b64decode(parts[1], "the audience part")
    url = _b64decode(parts[2], "the URL part")

    try:
        split = urlsplit(url)
        origin = f"{split.scheme}://{split.netloc}".lower()
        allowed = {e.rstrip("/").lower() for e in allowed_endpoints}
        if origin not in allowed:
            if (split.scheme != "https" or split.port is not None
                    or split.username or split.password):
                raise TokenRejected("the URL is not a plain https STS URL")
            if not _STS_HOST.fullmatch(split.hostname or ""):
                raise TokenRejected(f"the URL's host {split.hostname!r} is not an STS endpoint")
        if split.path not in ("", "/") or split.fragment:
            raise TokenRejected("the URL has a path or fragment; STS URLs have neither")
        pairs = (parse_qsl(split.query, keep_blank_values=True, strict_parsing=True)
                 if split.query else [])
    except ValueError:  # a malformed URL, port or query string
        raise TokenRejected("the URL part is not a well-formed URL") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise TokenRejected(f"the URL repeats the parameter {name}")
        if name not in _ALLOWED_PARAMS:
            raise TokenRejected(f"the URL has an unexpected parameter {name}")
        params[name] = value
    if params.get("Action") != "GetCallerIdentity" or params.get("Version") != STS_VERSION:
        raise TokenRejected("the URL is not an STS GetCallerIdentity request")
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise TokenRejected("the URL is not signed with AWS4-HMAC-SHA256")
    for name in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"):
        if not params.get(name):
            raise TokenRejected(f"the URL lacks {name}")

    scope = params["X-Amz-Credential"].split("/")
    if len(scope) != 5 or scope[3] != "sts" or scope[4] != "aws4_request":
        raise TokenRejected("the credential scope is not an STS signing scope")
    access_key_id, region = scope[0], scope[2]

    signed_headers = params["X-Amz-SignedHeaders"].split(";")
    if "host" not in signed_headers or AUDIENCE_HEADER not in signed_headers:
        raise TokenRejected(f"the signature does not cover the host and {AUDIENCE_HEADER} headers")
    if set(signed_headers) - {"host", AUDIENCE_HEADER}:
        raise TokenRejected("the signature covers headers this verifier cannot reproduce")

    try:
        signed_at = calendar.timegm(time.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise TokenRejected("X-Amz-Date is not a date such as 20250101T120000Z") from None
    if scope[1] != params["X-Amz-Date"][:8]:
        raise TokenRejected("X-Amz-Date does not match the credential scope's date")
    lifetime = min(max_age, MAX_LIFETIME)
    if params.get("X-Amz-Expires"):
        if not params["X-Amz-Expires"].isdigit():
            raise TokenRejected("X-Amz-Expires is not a number of seconds")
        lifetime = min(lifetime, int(params["X-Amz-Expires"]))
    if signed_at > now + CLOCK_SKEW:
        raise TokenRejected("the token is signed in the future (check the clocks)")
    if now >= signed_at + lifetime:
        raise TokenRejected(f"the token is too old: signed {int(now - signed_at)}s ago, "
                            f"accepted for {lifetime}s")
    return Decoded(audience, url, params, signed_headers, access_key_id, region, signed_at,
                   signed_at + lifetime)


def _default_send(url: str, headers: dict, timeout: float) -> tuple[int, bytes]:
    import urllib.error  # here, not at the top: credhelper-aws imports this module
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # a redirect could leave STS
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read(1 << 20)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(1 << 20)


def replay(decoded: Decoded, audience: str, timeout: float = 10.0,
           send: Callable[[str, dict, float], tuple[int, bytes]] | None = None) -> dict:
    """Send the presigned request to STS with *our* audience; the caller's identity."""
    headers = {AUDIENCE_HEADER: audience}
    try:
        status, body = (send or _default_send)(decoded.url, headers, timeout)
    except (OSError, ValueError) as exc:  # URLError, timeouts and TLS errors are OSError
        raise STSUnavailable(f"STS could not be reached: {exc.__class__.__name__}") from None
    if status >= 500 or status == 429:
        raise STSUnavailable(f"STS answered {status}")
    fields = _parse_response(body)
    if fields.get("Throttling"):  # STS throttles with 400, which is no verdict on the token
        raise STSUnavailable("STS throttled the request")
    if status != 200:
        code = fields.get("Code") or "an error"
        raise TokenRejected(f"STS refused the token ({status} {code})")
    if not fields.get("Arn") or not fields.get("Account"):
        raise TokenRejected("STS answered without a caller identity")
    return fields


def _parse_response(body: bytes) -> dict:
    """Arn/Account/UserId (or the error Code) from STS's XML or JSON answer."""
    text = body.strip()
    if text.startswith(b"{"):
        try:
            doc = json.loads(text)
            result = doc["GetCallerIdentityResponse"]["GetCallerIdentityResult"]
            return {k: result.get(k) for k in ("Arn", "Account", "UserId")}
        except (ValueError, KeyError, TypeError):
            return {}
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return {}
    found: dict[str, str | bool] = {}
    for element in root.iter():
        name = element.tag.replace(_STS_NS, "").split("}")[-1]
        if name in ("Arn", "Account", "UserId", "Code") and element.text:
            found.setdefault(name, element.text.strip())
    if found.get("Code") in ("Throttling", "ThrottlingException"):
        found["Throttling"] = True
    return found


def verify(token: str, audience: str, *, max_age: int = MAX_LIFETIME,
           allowed_endpoints: Iterable[str] = (), now: float | None = None,
           timeout: float = 10.0, send=None) -> Identity:
    """Check a token for this gateway's ``audience`` and return who presented it.

    Raises TokenRejected (answer 401) or STSUnavailable (answer 503; try again).
    ``send(url, headers, timeout) -> (status, body)`` replaces the HTTP call (tests).
    """
    if not audience:
        raise ValueError("the expected audience must not be empty")
    decoded = decode(token, now=now, max_age=max_age, allowed_endpoints=allowed_endpoints)
    if decoded.audience != audience:
        raise TokenRejected("the token was made for another audience")
    fields = replay(decoded, audience, timeout=timeout, send=send)
    return Identity(
        arn=fields["Arn"],
        account=fields["Account"],
        user_id=fields.get("UserId") or "",
        access_key_id=decoded.access_key_id,
        region=decoded.region,
        signed_at=decoded.signed_at,
        expires_at=decoded.expires_at,
    )


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m credhelper.providers.aws_verify",
        description="Verify a credhelper-aws presigned-identity token and print the caller.",
    )
    parser.add_argument("token", nargs="?", default="-", help="the token, or - to read stdin")
    parser.add_argument("--audience", required=True, help="this gateway's audience")
    parser.add_argument("--max-age", type=int, default=MAX_LIFETIME,
                        help=f"oldest token accepted, seconds (at most {MAX_LIFETIME})")
    parser.add_argument("--allow-endpoint", action="append", default=[],
                        help="accept this STS endpoint too (scheme://host[:port]); repeatable")
    parser.add_argument("--decode-only", action="store_true",
                        help="check the token locally and print what it says; no STS call")
    args = parser.parse_args(argv)
    token = sys.stdin.read() if args.token == "-" else args.token
    try:
        if args.decode_only:
            d = decode(token, max_age=args.max_age, allowed_endpoints=args.allow_endpoint)
            if d.audience != args.audience:
                raise TokenRejected("the token was made for another audience")
            result = {k: v for k, v in asdict(d).items() if k not in ("url", "params")}
        else:
            result = asdict(verify(token, args.audience, max_age=args.max_age,
                                   allowed_endpoints=args.allow_endpoint))
    except TokenRejected as exc:
        print(f"rejected: {exc}", file=sys.stderr)
        return 1
    except STSUnavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
