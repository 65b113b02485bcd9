"""A scripted browser for the browser sign-in tests, run as ``browser_command``: it gets
the sign-in address as its last argument and plays the person through the provider's own
pages with one cookie session, as a browser would: the login form, the consent form, and
then the redirect to the helper's loopback listener.

Configured by environment (the helper passes its own on):
  BROWSER_RECORD   file to append one JSON line to: the address, each page's status, the
                   last address and the text of the last page
  BROWSER_MODE     "approve" (default), "deny" (abort at consent), "ignore" (record the
                   address and do nothing: a person who never signs in), or "stop" (do
                   everything but follow the last redirect: a browser on another machine,
                   whose last address the person pastes)
  BROWSER_USER     who logs in (default "alice")
  REQUESTS_CA_BUNDLE  the provider's CA
"""

from __future__ import annotations

import json
import os
import re
import sys
from urllib.parse import urljoin

import requests

PASSWORD = "correct horse"


def main(url: str) -> None:
    mode = os.environ.get("BROWSER_MODE", "approve")
    seen: dict = {"url": url, "mode": mode, "pages": []}
    try:
        if mode != "ignore":
            drive(url, mode, os.environ.get("BROWSER_USER", "alice"), seen)
    except Exception as exc:  # recorded for the test to show
        seen["error"] = f"{exc.__class__.__name__}: {exc}"
    with open(os.environ["BROWSER_RECORD"], "a") as f:
        f.write(json.dumps(seen) + "\n")


def drive(url: str, mode: str, user: str, seen: dict, ca: str | None = None) -> None:
    s = requests.Session()
    s.trust_env = False
    s.verify = ca or os.environ["REQUESTS_CA_BUNDLE"]
    page = s.get(url, timeout=10, allow_redirects=False)
    for _ in range(12):  # follow redirects and forms by hand, as a browser would
        seen["pages"].append(page.status_code)
        where = page.url
        if page.is_redirect:
            target = urljoin(where, page.headers["Location"])
            seen["last"] = target
            if mode == "stop" and target.startswith("http://") and "/callback" in target:
                return
            page = s.get(target, timeout=10, allow_redirects=False)
            continue
        login = re.search(r'action="([^"]+/login)"', page.text)
        confirm = re.search(r'action="([^"]+/(confirm|abort))"', page.text)
        if login:
            page = s.post(urljoin(where, login.group(1)),
                          data={"login": user, "password": PASSWORD}, timeout=10,
                          allow_redirects=False)
        elif confirm:
            action = re.search(r'action="([^"]+/%s)"' % ("abort" if mode == "deny" else
                                                          "confirm"), page.text)
            page = s.post(urljoin(where, action.group(1)), timeout=10, allow_redirects=False)
        else:
            break
    seen["text"] = re.sub(r"<[^>]+>", " ", page.text)[:300]


if __name__ == "__main__":
    main(sys.argv[-1])
