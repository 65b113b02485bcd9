"""Fixtures for the administration tests: a real LiteLLM proxy on loopback (in its own
virtualenv, made once and reused) and a real OpenBao server with a TLS listener.

A fixture that cannot start its server fails the tests (pytest.fail), never skips them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from openbao import OpenBao, free_port
from services import log_tail, stop_process

HERE = Path(__file__).resolve().parent
LITELLM_SPEC = "litellm[proxy]"


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "credhelper-tests"


def litellm_python() -> str:
    """The LiteLLM virtualenv's interpreter, creating the virtualenv on first use (it is
    large, about 750 MB, and kept apart from the package's own environment)."""
    venv = _cache_root() / "litellm-venv"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # The folder appears only by a rename after a complete install, so its existence is
    # enough (importing LiteLLM to check would cost seconds on every run); a damaged one
    # makes the proxy fail to start, which fails loudly with its log.
    if python.exists():
        return str(python)
    import fasteners

    venv.parent.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(venv) + ".lock"):
        if python.exists():
            return str(python)
        staging = venv.with_name(venv.name + ".new")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(staging)], check=True)
        staged = staging / python.relative_to(venv)
        start = time.monotonic()
        p = subprocess.run([str(staged), "-m", "pip", "install", "-q", LITELLM_SPEC],
                           capture_output=True, text=True, timeout=1200)
        if p.returncode != 0:
            pytest.fail(f"cannot install {LITELLM_SPEC} into {staging}:\n{p.stderr[-3000:]}")
        print(f"installed {LITELLM_SPEC} in {time.monotonic() - start:.0f}s", file=sys.stderr)
        if venv.exists():
            import shutil

            shutil.rmtree(venv)
        staging.rename(venv)  # the proxy is started with `python -c`, so no script paths break
    return str(python)


CONFIG = """\
model_list:
  - model_name: test-model
    litellm_params:
      model: fake-stream/test-model
  - model_name: plain-model
    litellm_params:
      model: openai/plain-model
      mock_response: "a plain answer that never streams tool use"
litellm_settings:
  custom_provider_map:
    - provider: fake-stream
      custom_handler: litellm_plugin.streaming_model
general_settings:
  custom_auth: litellm_plugin.user_api_key_auth
"""


class Gateway:
    def __init__(self, workdir: Path, key: str):
        self.workdir, self.key = workdir, key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "litellm.log"
        self.process = None
        self.started_in = None

    def start(self, python: str, timeout: float = 120.0) -> Gateway:
        (self.workdir / "cfg.yaml").write_text(CONFIG)
        (self.workdir / "litellm_plugin.py").write_text((HERE / "litellm_plugin.py").read_text())
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "GATEWAY_TEST_KEY": self.key,
            # A strong master key is required to start; the custom_auth hook decides access.
            "LITELLM_MASTER_KEY": "sk-" + secrets.token_hex(24),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
        }
        args = [python, "-c", "import sys; from litellm import run_server; sys.exit(run_server())",
                "--config", "cfg.yaml", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(args, cwd=self.workdir, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        start = time.monotonic()
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"LiteLLM exited with {self.process.returncode}:\n{self.tail()}")
            try:
                urllib.request.urlopen(self.url + "/health/liveliness", timeout=1).read()
                self.started_in = time.monotonic() - start
                return self
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() - start > timeout:
                self.stop()
                pytest.fail(f"LiteLLM did not answer within {timeout}s:\n{self.tail()}")
            time.sleep(0.2)

    def tail(self) -> str:
        return log_tail(self.log, 40)

    def stop(self) -> None:
        stop_process(self.process, grace=15)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    """A real LiteLLM proxy on loopback that accepts exactly one key (conftest.CANARY)."""
    from conftest import CANARY

    python = litellm_python()
    gw = Gateway(tmp_path_factory.mktemp("litellm"), CANARY).start(python)
    print(f"LiteLLM answered after {gw.started_in:.1f}s", file=sys.stderr)
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def tls_bao(tmp_path_factory):
    """OpenBao in dev mode with an https listener whose certificate a test CA signed."""
    import trustme

    workdir = tmp_path_factory.mktemp("bao-tls")
    ca = trustme.CA(organization_name="credhelper test CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost", common_name="bao.test")
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    leaf.private_key_pem.write_to_path(str(workdir / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
    server = OpenBao(str(workdir / "server"), tls_cert=str(workdir / "cert.pem"),
                     tls_key=str(workdir / "key.pem"), audit=False)
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(f"OpenBao did not start: {exc}")
    server.ca_pem = str(workdir / "ca.pem")
    yield server
    server.stop()
