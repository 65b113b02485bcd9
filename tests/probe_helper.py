"""A test-only backend that reports on the process it runs in: ``python probe_helper.py``.

Its fetch writes at the C level to file descriptors 1 and 2 (as a chatty library
would), opens a file, and returns a credential describing what it found:
``fd<N>-dumpable<D>-core<SOFT>.<HARD>``: the descriptor the file got, prctl's
PR_GET_DUMPABLE, and RLIMIT_CORE (``inf`` for unlimited). Used by
tests/test_process_guard.py.
"""

import os
import resource
import sys
import time

from credhelper import registry
from credhelper.provider import Credential, Provider, Setting
from credhelper.run import helper_main


def dumpable() -> int:
    import ctypes

    return ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE


class ProbeProvider(Provider):
    name = "probe"
    summary = "a test double that reports on its process"
    settings = (Setting("scratch", "path", required=True, credential=False),)

    def describe(self):
        return "the probe test backend"

    def fetch(self, request):
        for fd in (1, 2):
            try:
                os.write(fd, f"C-level chatter on fd {fd}\n".encode())
            except OSError:
                pass
        with open(self.config["scratch"], "w") as f:
            fd = f.fileno()
        soft, hard = (("inf" if v == resource.RLIM_INFINITY else str(v))
                      for v in resource.getrlimit(resource.RLIMIT_CORE))
        token = f"fd{fd}-dumpable{dumpable()}-core{soft}.{hard}"
        return Credential(token, time.time() + 3600)


registry.register(ProbeProvider)

if __name__ == "__main__":
    sys.exit(helper_main("probe"))
