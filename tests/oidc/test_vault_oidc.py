"""credhelper-vault's `auth = "oidc"`, the Vault CLI's `vault login -method=oidc`, end to end.

Real: an OpenBao server whose oidc auth method is configured with the session's OpenID
provider (oidc-provider on Node, https; the confidential client "vault" of idp.mjs), and
the provider's own login and consent pages. The person's browser is a script the test puts
first on PATH as `xdg-open`, which the helper's browser opener runs with the sign-in URL:
it follows the URL with one cookie session, logs in, consents, and lets the final
redirect reach the helper's loopback listener, as a browser would (HTTP driving of the
same pages). The first sign-in's test also runs in a real headless Chromium
(tests/oidc/chromium_browser.py as browser_command).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import CANARY, assert_failure, run
from openbao import OpenBao, free_port

from .chromium_browser import log_tail
from .conftest import SVC_SECRET
from .idpkit import PASSWORD

SECRETS = {"gateway": "oidc-kv-" + CANARY, "other": "oidc-other-" + CANARY}
POLICY = 'path "secret/data/*" { capabilities = ["read"] }\n'

# The person's browser. Modes (BROWSER_MODE): approve; deny (refuses at consent); stale
# (first brings an old tab's redirect with another state, then signs in); ignore (nobody
# signs in); form_post (the provider answers with a form the browser posts to the redirect).
BROWSER = r'''#!{python}
import os, re, sys
from urllib.parse import urljoin, urlsplit
import requests

url = sys.argv[-1]
log = open(os.environ["BROWSER_LOG"], "a")
log.write("open " + url + "\n")
log.flush()
mode = os.environ.get("BROWSER_MODE", "approve")
if mode == "ignore":
    sys.exit(0)
s = requests.Session()
s.trust_env = False
s.verify = os.environ["BROWSER_CA"]
if mode == "stale":
    redirect = re.search(r"redirect_uri=([^&]+)", url).group(1)
    from urllib.parse import unquote
    old = s.get(unquote(redirect) + "?state=an-old-tab&code=old-code", timeout=10)
    log.write("stale %d %s\n" % (old.status_code, re.search(r"<title>(.*)</title>", old.text).group(1)))
page = s.get(url, timeout=20)
for _ in range(6):
    text = page.text
    login = re.search(r'action="([^"]+/login)"', text)
    consent = re.search(r'action="([^"]+/(?:confirm|abort))"', text)
    posted = re.search(r'<form method="post" action="(http://[^"]+)"', text)
    if login:
        page = s.post(urljoin(page.url, login.group(1)),
                      data={"login": "alice", "password": os.environ["BROWSER_PASSWORD"]}, timeout=20)
    elif consent:
        which = "abort" if mode == "deny" else "confirm"
        action = re.search(r'action="([^"]+/%s)"' % which, text).group(1)
        page = s.post(urljoin(page.url, action), timeout=30)
    elif posted:
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', text))
        page = s.post(posted.group(1), data=fields, timeout=30)
    else:
        break
body = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<title>.*</title>", "", page.text)).split())
log.write("final %d %s %s\n" % (page.status_code, urlsplit(page.url).path, body))
'''


@pytest.fixture(scope="module")
def bao(idp, tmp_path_factory):
    """OpenBao with oidc auth at `oidc` (role "gateway", redirect localhost:8250 as the
    Vault CLI's; code flow) and at `oidc-post` (an ID token in a form_post answer), both
    with the session's provider."""
    server = OpenBao(str(tmp_path_factory.mktemp("bao-oidc")))
    try:
        server.start()
    except Exception as exc:
        pytest.fail(f"cannot start OpenBao: {exc}")
    try:
        client = server.client()

        def api(method, path, **body):
            answer = client.adapter.request(method, f"/v1/{path}", json=body or None,
                                            raise_exception=False)
            assert answer.status_code < 400, (path, answer.status_code, answer.text)

        api("POST", "sys/policies/acl/gateway-read", policy=POLICY)
        for name, value in SECRETS.items():
            api("POST", f"secret/data/{name}", data={"token": value})
        with open(idp.ca_pem) as f:
            ca = f.read()
        for mount, mode, answer in (("oidc", "", "code"), ("oidc-post", "form_post", "id_token")):
            api("POST", f"sys/auth/{mount}", type="oidc")
            api("POST", f"auth/{mount}/config", oidc_discovery_url=idp.issuer,
                oidc_discovery_ca_pem=ca, oidc_client_id="vault", oidc_client_secret=SVC_SECRET,
                oidc_response_mode=mode, oidc_response_types=[answer], default_role="gateway")
            api("POST", f"auth/{mount}/role/gateway", role_type="oidc", user_claim="sub",
                allowed_redirect_uris=["http://localhost:8250/oidc/callback"],
                bound_audiences=["vault"], token_policies=["gateway-read"], token_ttl="1h",
                token_max_ttl="4h")
        yield server
    finally:
        server.stop()


@pytest.fixture
def vault_env(idp_env, idp, bao, tmp_path):
    """A person at a desktop (interactive context, no terminal), the browser script as
    `xdg-open`, and [vault] auth = "oidc" on a free callback port."""
    env = dict(idp_env)
    bin_dir = tmp_path / "browser-bin"
    bin_dir.mkdir()
    browser = bin_dir / "xdg-open"
    browser.write_text(BROWSER.replace("{python}", sys.executable))
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env.update({
        "BROWSER_LOG": str(tmp_path / "browser.log"), "BROWSER_CA": idp.ca_pem,
        "BROWSER_PASSWORD": PASSWORD, "CLAUDE_HELPER_CONTEXT": "interactive",
        "VAULT_ADDR": bao.address, "CREDHELPER_VAULT_AUTH": "oidc",
        "CREDHELPER_VAULT_ROLE": "gateway", "CREDHELPER_VAULT_SECRET": "secret/gateway",
        "CREDHELPER_VAULT_FIELD": "token", "CREDHELPER_VAULT_CALLBACK_PORT": str(free_port()),
        "DISPLAY": ":99",  # a desktop, where a browser can open
        "CREDHELPER_VAULT_DISPLAY_NAME": "Acme gateway",
    })
    return env


def browser_log(env) -> list[str]:
    try:
        with open(env["BROWSER_LOG"]) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_for_browser(env, lines: int = 2) -> list[str]:
    """The browser script runs detached from the helper: give it a moment to log."""
    deadline = time.monotonic() + 10
    while len(browser_log(env)) < lines and time.monotonic() < deadline:
        time.sleep(0.05)
    return browser_log(env)


def chromium_seen(record: str) -> dict:
    """What tests/oidc/chromium_browser.py recorded, once it has (it runs on detached from
    the helper, and records when it has shown the helper's page and quit)."""
    deadline = time.monotonic() + 15
    while not os.path.exists(record) and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(record) as f:
        [line] = f.readlines()
    return json.loads(line)


def counts(bao: OpenBao, mount: str = "oidc") -> tuple[int, int]:
    return (bao.count_requests(f"auth/{mount}/oidc/auth_url"),
            bao.count_requests(f"auth/{mount}/oidc/callback"))


def printed(proc) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout.decode().rstrip("\n")


@pytest.mark.parametrize("driver", ["http", "chromium"])
def test_a_browser_sign_in_then_silent_runs_reuse_the_vault_token(vault_env, bao, idp, driver,
                                                                    request):
    """The pages driven over HTTP (the xdg-open script), and in a real headless Chromium
    (browser_command)."""
    port = vault_env["CREDHELPER_VAULT_CALLBACK_PORT"]
    record = os.path.join(os.path.dirname(vault_env["BROWSER_LOG"]), "chromium.jsonl")
    if driver == "chromium":
        vault_env = {**vault_env, "BROWSER_RECORD": record,
                     "CREDHELPER_VAULT_BROWSER_COMMAND": request.getfixturevalue("chromium")}
    before = counts(bao)
    started = time.monotonic()
    proc = run(["credhelper-vault"], vault_env)
    elapsed = time.monotonic() - started
    assert printed(proc) == SECRETS["gateway"]
    if driver == "http":
        opened, final = wait_for_browser(vault_env)
        opened = opened.removeprefix("open ")
        assert final == "final 200 /oidc/callback You are signed in to Vault. You can close " \
                        "this tab."
    else:
        seen = chromium_seen(record)
        assert "error" not in seen, (seen, log_tail(vault_env))
        opened = seen["url"]
        assert urlsplit(seen["last"]).path == "/oidc/callback"
        assert seen["text"] == "You are signed in to Vault. You can close this tab."
    url = urlsplit(opened)
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{idp.issuer}/auth"
    assert query["redirect_uri"] == [f"http://localhost:{port}/oidc/callback"]
    assert query["client_id"] == ["vault"] and query["code_challenge_method"] == ["S256"]
    assert counts(bao) == (before[0] + 1, before[1] + 1)
    # No terminal: the shared presenter's notification says who asks and where.
    with open(vault_env["PRESENTER_RECORD"]) as f:
        assert "credhelper-vault for Acme gateway Sign in at Vault 127.0.0.1" in f.read()
    assert elapsed < 20, elapsed

    # The Vault token is alice's, and kept: the next runs ask nobody, in any context.
    status = run(["credhelper-vault", "status"], vault_env)
    assert "oidc-alice" in status.stderr + status.stdout.decode(), status.stderr
    background = {**vault_env, "CLAUDE_HELPER_CONTEXT": "background",
                  "CREDHELPER_VAULT_SECRET": "secret/other"}
    proc = run(["credhelper-vault", "--debug"], background)
    assert printed(proc) == SECRETS["other"]
    assert "using the cached Vault login token" in proc.stderr
    assert counts(bao) == (before[0] + 1, before[1] + 1)
    assert len(browser_log(vault_env)) == (2 if driver == "http" else 0)
    if driver == "chromium":
        with open(record) as f:
            assert len(f.readlines()) == 1
    hit = run(["credhelper-vault", "--debug"], background)
    assert printed(hit) == SECRETS["other"] and "cache hit" in hit.stderr


def test_background_runs_exit_3_at_once_and_open_nothing(vault_env, bao):
    env = {**vault_env, "CLAUDE_HELPER_CONTEXT": "background"}
    before = counts(bao)
    started = time.monotonic()
    proc = run(["credhelper-vault"], env)
    assert_failure(proc, 3, "needs a person in a browser", "background context",
                   "credhelper-vault login")
    assert time.monotonic() - started < 5
    time.sleep(0.3)  # a browser or notifier, had one been started, would have logged by now
    assert browser_log(env) == []
    assert not os.path.exists(env["PRESENTER_RECORD"])
    assert counts(bao) == before


def test_a_callback_port_in_use_is_a_clear_error_naming_the_setting(vault_env, bao):
    before = counts(bao)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(vault_env["CREDHELPER_VAULT_CALLBACK_PORT"])))
        taken.listen(1)
        proc = run(["credhelper-vault"], vault_env)
    assert_failure(proc, 4, f"port {vault_env['CREDHELPER_VAULT_CALLBACK_PORT']} on 127.0.0.1",
                   "is in use", "callback_port, CREDHELPER_VAULT_CALLBACK_PORT")
    assert browser_log(vault_env) == [] and counts(bao) == before


def test_localhost_is_also_held_on_ipv6_so_no_other_program_takes_the_redirect(vault_env, bao):
    port = int(vault_env["CREDHELPER_VAULT_CALLBACK_PORT"])
    with socket.socket(socket.AF_INET6) as taken:  # another program, on the other address
        taken.bind(("::1", port))
        taken.listen(1)
        proc = run(["credhelper-vault"], vault_env)
    assert_failure(proc, 4, f"port {port} on ::1", "is in use", "callback_port")
    assert browser_log(vault_env) == []


def test_no_browser_and_no_terminal_exits_3_at_once(vault_env, bao):
    env = {k: v for k, v in vault_env.items() if k != "DISPLAY"}  # no desktop session
    before = counts(bao)
    started = time.monotonic()
    proc = run(["credhelper-vault"], env)
    assert_failure(proc, 3, "none can be opened here", "browser_command")
    assert time.monotonic() - started < 5 and counts(bao) == before


def test_a_redirect_the_role_does_not_allow_is_a_clear_error(vault_env, bao):
    env = {**vault_env, "CREDHELPER_VAULT_CALLBACK_HOST": "127.0.0.1"}  # the role: localhost
    proc = run(["credhelper-vault"], env)
    port = env["CREDHELPER_VAULT_CALLBACK_PORT"]
    assert_failure(proc, 5, "Vault gave no sign-in URL",
                   f"redirect_uri http://127.0.0.1:{port}/oidc/callback", "allowed_redirect_uris")
    assert browser_log(env) == []


def test_declining_at_the_provider_exits_5_and_says_so_in_the_browser(vault_env, bao):
    proc = run(["credhelper-vault"], {**vault_env, "BROWSER_MODE": "deny"})
    assert_failure(proc, 5, "was declined")
    final = wait_for_browser(vault_env)[-1]
    assert final.startswith("final 200 /oidc/callback The sign-in failed:"), final


def test_a_stale_tab_on_the_fixed_port_does_not_end_the_sign_in(vault_env, bao):
    proc = run(["credhelper-vault"], {**vault_env, "BROWSER_MODE": "stale"})
    assert printed(proc) == SECRETS["gateway"]
    log = wait_for_browser(vault_env, 3)
    assert log[1] == "stale 400 Sign-in out of date", log
    assert log[2].startswith("final 200 /oidc/callback You are signed in"), log


def test_a_form_post_answer_is_posted_to_vault_as_the_vault_cli_does(vault_env, bao):
    before = counts(bao, "oidc-post")
    env = {**vault_env, "CREDHELPER_VAULT_MOUNT": "oidc-post"}
    assert printed(run(["credhelper-vault"], env)) == SECRETS["gateway"]
    assert wait_for_browser(env)[-1].startswith("final 200 /oidc/callback You are signed in")
    assert "response_mode=form_post" in browser_log(env)[0]
    assert "response_type=id_token" in browser_log(env)[0]
    after = counts(bao, "oidc-post")
    assert after == (before[0] + 1, before[1] + 2)  # the form's POST, then the GET


def test_a_sign_in_nobody_completes_ends_at_the_sign_in_deadline(vault_env, bao):
    env = {**vault_env, "BROWSER_MODE": "ignore", "CREDHELPER_VAULT_LOGIN_TIMEOUT": "3s",
           "CREDHELPER_VAULT_TIMEOUT": "2s"}
    started = time.monotonic()
    proc = run(["credhelper-vault"], env)
    elapsed = time.monotonic() - started
    assert_failure(proc, 3, "was not completed in the browser in time")
    assert 2.5 < elapsed < 8, elapsed


def test_login_signs_in_by_hand_and_logout_revokes_the_token(vault_env, bao):
    by_hand = {k: v for k, v in vault_env.items() if k != "CLAUDE_HELPER_CONTEXT"}
    proc = run(["credhelper-vault", "login"], by_hand)
    assert proc.returncode == 0 and proc.stdout == b"", proc.stderr
    background = {**vault_env, "CLAUDE_HELPER_CONTEXT": "background"}
    assert printed(run(["credhelper-vault"], background)) == SECRETS["gateway"]
    revoked = bao.count_requests("auth/token/revoke-self")
    assert run(["credhelper-vault", "logout"], by_hand).returncode == 0
    assert bao.count_requests("auth/token/revoke-self") == revoked + 1
    proc = run(["credhelper-vault"], {**background, "CREDHELPER_VAULT_SECRET": "secret/other"})
    assert_failure(proc, 3, "needs a person in a browser")
    assert len(browser_log(vault_env)) == 2  # only login's sign-in opened the browser
