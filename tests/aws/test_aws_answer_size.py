"""AWS answers past the size cap (credhelper.net.MAX_BODY, 4 MiB), on the real moto server
behind tests/faultproxy.py.

moto answers every request as AWS would; the proxy answers one of them with 300 MB
instead (``Fault.huge``: made while it is sent, never held in the test's memory), with a
Content-Length, or chunked without one. Before the cap, botocore read any answer whole
(a 300 MB answer took the helper to 900 MB) and then failed to parse it. Now a run stops
reading past 4 MiB and exits 4 (5 for a refusal) naming the cap; the helper's peak memory
stays that of a normal run. The memory is measured by a small parent process of the
helper (resource.getrusage(RUSAGE_CHILDREN): its one child is the helper).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import assert_failure, script
from faultproxy import Fault

from .helpers import assert_clean

HUGE = 300 * 1024 * 1024
STS_PREFIX = (b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
              b"<GetCallerIdentityResult><Arn>")
MEASURE = """
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      stdin=subprocess.DEVNULL, timeout=120)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux, bytes on macOS
print(json.dumps({"code": proc.returncode, "stdout": proc.stdout.decode("latin-1"),
                  "stderr": proc.stderr.decode("utf-8", "replace"),
                  "peak_mib": peak / (1024 * 1024 if sys.platform == "darwin" else 1024)}))
"""


class Measured:
    def __init__(self, doc: dict):
        self.returncode, self.stderr = doc["code"], doc["stderr"]
        self.stdout = doc["stdout"].encode("latin-1")
        self.peak_mib = doc["peak_mib"]


def measured(env: dict) -> Measured:
    out = subprocess.run([sys.executable, "-c", MEASURE, script("credhelper-aws")], env=env,
                         capture_output=True, timeout=180, check=True)
    return Measured(json.loads(out.stdout))


def via(env, proxy, **settings) -> dict:
    env = {**env, "CREDHELPER_AWS_ENDPOINT_URL": proxy.url, "CREDHELPER_AWS_TIMEOUT": "60s"}
    env.update({f"CREDHELPER_AWS_{k.upper()}": v for k, v in settings.items()})
    return env


def small(proc: Measured) -> None:
    assert proc.peak_mib < 200, f"the helper peaked at {proc.peak_mib:.0f} MiB"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_huge_sts_answer_exits_4_without_reading_it(aws_env, fault_proxy, chunked):
    env = via(aws_env, fault_proxy)
    fault_proxy.plan(Fault.huge(HUGE, chunked=chunked, prefix=STS_PREFIX))
    proc = measured(env)
    assert_failure(proc, 4, "sent an answer longer than 4 MiB", "HTTP 200")
    assert_clean(proc.stderr)
    small(proc)
    assert fault_proxy.paths("huge") == ["/"]  # STS GetCallerIdentity, not retried


def test_a_huge_secrets_manager_answer_exits_4(aws_env, fault_proxy, admin):
    admin("secretsmanager").create_secret(Name="gateway/huge", SecretString="small-value")
    env = via(aws_env, fault_proxy, mode="secretsmanager", secret_id="gateway/huge")
    fault_proxy.plan(Fault.huge(HUGE, chunked=True, prefix=b'{"SecretString": "',
                                content_type="application/x-amz-json-1.1"))
    proc = measured(env)
    assert_failure(proc, 4, "sent an answer longer than 4 MiB")
    small(proc)


def test_a_huge_refusal_exits_5(aws_env, fault_proxy):
    env = via(aws_env, fault_proxy)
    fault_proxy.plan(Fault.huge(HUGE, 403, chunked=True, prefix=b"<ErrorResponse><Error>"))
    proc = measured(env)
    assert_failure(proc, 5, "refused the request (HTTP 403) with an answer longer than 4 MiB")
    small(proc)


def test_a_huge_answer_to_the_role_hop_exits_4(aws_env, fault_proxy):
    # role_arn: the AssumeRole answer is read through the cap too (moto answers the
    # identity check, the proxy the AssumeRole call).
    env = via(aws_env, fault_proxy, role_arn="arn:aws:iam::123456789012:role/gateway-users",
              verify="false")
    fault_proxy.plan(Fault.huge(HUGE, prefix=b"<AssumeRoleResponse>"))
    proc = measured(env)
    assert_failure(proc, 4, "sent an answer longer than 4 MiB")
    small(proc)


def test_an_answer_under_the_cap_still_works(aws_env, fault_proxy):
    proc = measured(via(aws_env, fault_proxy))
    assert proc.returncode == 0, proc.stderr
    small(proc)
