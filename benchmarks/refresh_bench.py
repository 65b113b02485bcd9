"""Forced refresh against a cache miss, same backend (Vault): what the app's
mid-session refresh costs.

    .venv/bin/python benchmarks/refresh_bench.py [--runs 40] [--json FILE]

Starts an OpenBao dev server with a file audit device, writes ``secret/gateway`` (KV v2,
token auth; the KV version detected, as a default configuration does), then times fresh
processes of the installed ``credhelper-vault``, interleaved round by round (the order of
the two swapped every round) so that machine noise hits both alike:

- ``credhelper-vault --force-refresh`` with ``refresh_grace = 0s``, so that every run
  fetches again; its cache directory is warm (an entry and a configuration snapshot, as
  in a session the app has been running), so the run reads the snapshot and the entry on
  the hot path, finds the entry not fetched within refresh_grace, and takes the full
  path;
- the reference: ``credhelper-vault`` with its cache directory removed before each run
  (a cold miss: no snapshot, no entry, the directory made again).

Target: the forced refresh at most 1.2x the cold miss (median of the per-round ratios,
with their p10-p90). The audit log must show exactly one KV read per run of either kind:
a forced run that served its entry would time nothing worth timing, so the benchmark
exits 1 when the count is off. Prints a markdown table; ``--json`` also writes the figures
for run_all.py.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import benchlib
from vault_bench import VALUE, helper_path, seeded_env, server_version, timed

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from openbao import OpenBao, bao_binary  # noqa: E402

FORCED = "credhelper-vault --force-refresh (refresh_grace = 0s, warm cache)"
MISS = "credhelper-vault, cold cache miss (cache directory removed before each run)"
TARGET = 1.2
WARMUP = 2


def main() -> int:
    args = benchlib.arguments(__doc__, 40)
    runs = args.runs
    helper = helper_path()
    line = VALUE.encode() + b"\n"

    work = tempfile.mkdtemp(prefix="refresh-bench-")
    server = OpenBao(os.path.join(work, "bao"), audit=True).start()
    try:
        env = seeded_env(server, work)
        forced_env = dict(env, CREDHELPER_CACHE_DIR=os.path.join(work, "cache-forced"),
                          CREDHELPER_VAULT_REFRESH_GRACE="0s")
        miss_dir = os.path.join(work, "cache-miss")
        miss_env = dict(env, CREDHELPER_CACHE_DIR=miss_dir)
        timed([helper], forced_env, line)  # the warm cache: an entry and a snapshot

        def forced() -> float:
            return timed([helper, "--force-refresh"], forced_env, line)

        def miss() -> float:
            shutil.rmtree(miss_dir, ignore_errors=True)  # not timed
            return timed([helper], miss_env, line)

        reads_before = server.count_requests("secret/data/gateway", "read")
        load = benchlib.load_average()
        samples: dict[str, list[float]] = {FORCED: [], MISS: []}
        for i in range(runs + WARMUP):  # warm-up rounds: page cache, server's first requests
            order = ((FORCED, forced), (MISS, miss)) if i % 2 == 0 else ((MISS, miss), (FORCED, forced))
            for name, case in order:
                elapsed = case()
                if i >= WARMUP:
                    samples[name].append(elapsed)
        reads = server.count_requests("secret/data/gateway", "read") - reads_before
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    expected = 2 * (runs + WARMUP)
    r = benchlib.ratio(samples[FORCED], samples[MISS])
    version = server_version(bao_binary())
    print(f"`credhelper-vault` against a local OpenBao {version} dev server (http on loopback, "
          f"token auth, KV v2, KV version detected, file audit device): {runs} interleaved "
          f"rounds after {WARMUP} warm-up rounds, the order swapped every round; load average "
          f"before: {load}.\n")
    print("| case | median ms | p10-p90 ms | ratio (p10-p90 per round) | target |")
    print("|---|---:|---:|---:|---:|")
    print(f"| {MISS} | {benchlib.median(samples[MISS]) * 1000:.1f} | "
          f"{benchlib.spread_text(samples[MISS])} | - | - |")
    print(f"| {FORCED} | {benchlib.median(samples[FORCED]) * 1000:.1f} | "
          f"{benchlib.spread_text(samples[FORCED])} | {benchlib.ratio_text(r)} cold miss | "
          f"<= {TARGET:.1f}x {'met' if r['value'] <= TARGET else 'MISSED'} |")
    print(f"\nKV reads of secret/gateway in the audit log during the rounds: {reads} for "
          f"{expected} runs (exactly one per run: {'met' if reads == expected else 'MISSED'}).")

    benchlib.write_json(args.json, {
        "runs": runs,
        "server": f"OpenBao {version}",
        "cases": {name: benchlib.ms(values) for name, values in samples.items()},
        "ratio": {**r, "measured": FORCED, "reference": MISS, "target": TARGET},
        "reads": reads,
        "expected_reads": expected,
    })
    if reads != expected:
        print(f"refresh_bench: {reads} KV reads for {expected} runs: a forced run did not fetch "
              "(or a run fetched twice)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
