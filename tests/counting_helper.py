"""A test-only backend, run as a real process: ``python counting_helper.py [ARGS]``.

It is the core's test double, not a product feature: every fetch appends one line to
``count_file`` (so tests can count backend calls across processes), and ``behaviour``
makes it fail the ways real backends fail. It is configured through the ordinary config
sources ([counting] table / CREDHELPER_COUNTING_*), so it exercises those too.
"""

import os
import sys
import time

from credhelper import registry
from credhelper.errors import AccessDenied, BackendUnavailable
from credhelper.provider import Credential, Provider, Setting
from credhelper.run import helper_main


class CountingProvider(Provider):
    name = "counting"
    summary = "a test double that counts fetches"
    identity_env = ("COUNTING_IDENTITY",)
    settings = (
        Setting("token", secret=True, required=True),
        Setting("ttl", "duration", 3600.0),
        Setting("count_file", "path", required=True, credential=False),
        # Where the backend keeps its current value, when a test rotates it: not part of
        # the cache key, as a secret stored in a real backend is not.
        Setting("value_file", "path", credential=False),
        # The expiry the backend gives, as a float's text ("inf", "1e300"), instead of ttl.
        Setting("expiry", credential=False),
        Setting("behaviour", "choice", "ok", credential=False,
                choices=("ok", "unavailable", "refused", "login", "hang", "bug", "print",
                         "slow", "no-expiry", "newline")),
    )

    def describe(self):
        return "the counting test backend"

    def fetch(self, request):
        with open(self.config["count_file"], "a") as f:
            f.write(f"{os.getpid()} {request.context} {request.interactive}\n")
        behaviour = self.config["behaviour"]
        token = self.config["token"]
        if self.config.get("value_file"):
            with open(self.config["value_file"]) as f:
                token = f.read().strip()
        if behaviour == "unavailable":
            raise BackendUnavailable(f"backend down (it would have said {token[:0]})")
        if behaviour == "refused":
            raise AccessDenied("permission denied")
        if behaviour == "login":
            request.require_interactive("a person must sign in", "run credhelper-counting login")
        if behaviour == "hang":
            time.sleep(3600)
        if behaviour == "slow":
            time.sleep(0.5)
        if behaviour == "bug":
            raise ValueError(f"oops, the token was {token}")
        if behaviour == "print":
            print(f"library chatter {token}")
            os.write(1, b"C-level chatter\n")
        if behaviour == "newline":
            token += "\nsecond line"
        expires = None if behaviour == "no-expiry" else time.time() + self.config["ttl"]
        if self.config.get("expiry"):
            expires = float(self.config["expiry"])
        return Credential(token, expires, details={"source": "counting"})


registry.register(CountingProvider)

if __name__ == "__main__":
    sys.exit(helper_main("counting"))
