"""A real browser for the browser sign-in tests, run as ``browser_command`` (the sign-in
address is its last argument): headless Chromium, driven with Selenium through the
system's chromedriver (Debian's ``chromium`` and ``chromium-driver``), plays the person
through the provider's own pages: the login form (typed in, then submitted), the consent
form, then whatever the provider answers with (a redirect, or a form_post page whose own
script posts to the helper), until the browser shows the helper's loopback page.

The helper starts a ``browser_command`` without waiting for it (a new session, no pipes)
and waits only for the redirect, so this script needs no daemonizing of its own: it runs
on after the helper has its code, records what it saw, and quits Chromium.

The provider's CA is trusted for real, not waved through: it is imported into an NSS
database under a temporary $HOME (``certutil``, Debian's ``libnss3-tools``), where
Chromium on Linux reads the person's own trust anchors, so the hostname and chain are
checked as for any site. No ``--ignore-certificate-errors``.

Selenium is given the driver's path (``Service``), so Selenium Manager never runs and
nothing is downloaded.

Configured by environment (the helper passes its own on):
  BROWSER_RECORD  file to append one JSON line to: the address, each page's address, the
                  last address, the last page's title and text, the seconds taken, and
                  "error" if the person's step could not be played
  BROWSER_MODE    "approve" (default) or "deny" (abort at consent)
  BROWSER_USER    who logs in (default "alice")
  BROWSER_CA      the provider's CA (default: REQUESTS_CA_BUNDLE)
  CHROMIUM_LOG    this script's log (default: BROWSER_RECORD + ".chromium.log"); the
                  chromedriver's own log goes next to it, with ".driver" added
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

PASSWORD = "correct horse"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DEADLINE = 60  # seconds for the whole person's step: the script never lingers
PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

log = logging.getLogger("chromium_browser")


def main(url: str) -> None:
    record = os.environ["BROWSER_RECORD"]
    logging.basicConfig(filename=log_path(),
                        level=logging.INFO, format="%(asctime)s %(message)s")
    mode = os.environ.get("BROWSER_MODE", "approve")
    seen: dict = {"url": url, "mode": mode, "pages": [], "driver": "chromium"}
    started = time.monotonic()
    # Selenium's connection to chromedriver is on loopback: never through a proxy.
    for name in PROXIES:
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    work = tempfile.mkdtemp(prefix="chromium-signin-")
    try:
        drive(url, mode, os.environ.get("BROWSER_USER", "alice"), seen, work)
    except Exception as exc:  # recorded for the test to show
        log.exception("the sign-in was not played to its end")
        seen["error"] = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seen["seconds"] = round(time.monotonic() - started, 2)
    log.info("done in %.2fs: %s", seen["seconds"], seen.get("error", "ok"))
    with open(record, "a") as f:
        f.write(json.dumps(seen) + "\n")


def log_path() -> str:
    return os.environ.get("CHROMIUM_LOG") or os.environ["BROWSER_RECORD"] + ".chromium.log"


def log_tail(env) -> str:
    """The end of this script's log under ``env``, for a failing test's message."""
    try:
        with open(env.get("CHROMIUM_LOG") or env["BROWSER_RECORD"] + ".chromium.log") as f:
            return f.read()[-3000:]
    except FileNotFoundError:
        return ""


def trusting_home(work: str, ca: str) -> str:
    """A $HOME whose NSS database (~/.pki/nssdb, where Chromium on Linux looks) trusts
    ``ca`` to issue server certificates."""
    home = os.path.join(work, "home")
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db)
    for args in (["-N", "--empty-password"], ["-A", "-n", "test CA", "-t", "C,,", "-i", ca]):
        subprocess.run(["certutil", "-d", f"sql:{db}", *args], check=True,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    return home


def start(work: str, ca: str, driver_log: str):
    """Headless Chromium with a fresh profile in ``work``, trusting ``ca``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    home = trusting_home(work, ca)
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXIES}
    env["HOME"] = home
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", f"--user-data-dir={os.path.join(work, 'profile')}",
                "--no-proxy-server", "--password-store=basic", "--no-first-run",
                "--disable-gpu", "--disable-extensions", "--disable-sync",
                "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--window-size=1000,800",
                # Loopback only: Debian's new tab page is a search engine's start page,
                # fetched from the internet and waited for by the first page load (seconds,
                # or a DNS timeout offline). Every other name fails at once, unresolved.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root otherwise
    service = Service(executable_path=CHROMEDRIVER, log_output=driver_log, env=env)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(20)
    return driver


def at_helper(address: str) -> bool:
    """The helper's loopback listener (http; the provider is https)."""
    parts = urlsplit(address)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def drive(url: str, mode: str, user: str, seen: dict, work: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as gone
    from selenium.webdriver.support.ui import WebDriverWait

    ca = os.environ.get("BROWSER_CA") or os.environ["REQUESTS_CA_BUNDLE"]
    t0 = time.monotonic()
    driver = start(work, ca, log_path() + ".driver")
    log.info("chromium started in %.2fs: %s", time.monotonic() - t0,
             driver.capabilities.get("browserVersion"))
    try:
        deadline = time.monotonic() + DEADLINE
        driver.get(url)
        while time.monotonic() < deadline:
            here = driver.current_url
            if not seen["pages"] or seen["pages"][-1] != here:
                seen["pages"].append(here)
                log.info("at %s", here)
            if at_helper(here) and ready(driver):
                break
            forms = {f.get_attribute("action").rsplit("/", 1)[-1]: f
                     for f in driver.find_elements(By.TAG_NAME, "form")}
            if "login" in forms:
                form = forms["login"]
                form.find_element(By.NAME, "login").send_keys(user)
                form.find_element(By.NAME, "password").send_keys(PASSWORD)
            elif "confirm" in forms:
                form = forms["abort" if mode == "deny" else "confirm"]
            else:  # a redirect or the provider's form_post page under way: wait for it
                shown = driver.find_element(By.TAG_NAME, "body").text
                failed = re.search(r"(NET::)?ERR_[A-Z_]+", shown)
                if failed:  # Chromium's own error page (TLS, connection): no use waiting
                    raise RuntimeError(f"Chromium's error page at {here}: {failed.group(0)}")
                time.sleep(0.1)
                continue
            log.info("submitting %s", form.get_attribute("action"))
            form.submit()
            WebDriverWait(driver, 20).until(gone.staleness_of(form))
        else:
            raise TimeoutError(f"not at the helper's page after {DEADLINE}s")
        seen["last"] = driver.current_url
        seen["title"] = driver.title
        seen["text"] = " ".join(driver.find_element(By.TAG_NAME, "body").text.split())[:300]
        log.info("landed on %s: %s", seen["last"], seen["text"])
    finally:
        driver.quit()


def ready(driver) -> bool:
    return bool(driver.execute_script("return document.readyState") == "complete")


if __name__ == "__main__":
    main(sys.argv[-1])
