"""Cache-hit cost of the installed helper, as ratios against references timed in the same run.

    scripts/keyring-session .venv/bin/python benchmarks/hot_path.py [--runs 40] [--json FILE]

Needs an OS keyring (the line above gives it a private one on Linux). Stores a JWT with
`credhelper-keyring store`, warms the cache, then times, interleaved round by round:
`python -c pass` (the interpreter alone), `python -c 'import re'` (what pip's console-script
wrapper imports before credhelper runs), the cache hit of `credhelper-keyring` with 1 entry
in the cache directory (just its own), with 100 and with 10 000 entries (the others are
copies under other keys), and `credhelper --version` (the click path). Prints a markdown
table: median, p10-p90, ratios (vs 1 entry: the median of the per-round ratios, with their
p10-p90); ``--json`` also writes the figures for run_all.py.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import benchlib

ENTRIES = (1, 100, 10_000)


def jwt(ttl: int) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'none'})}.{enc({'sub': 'bench', 'exp': int(time.time()) + ttl})}.sig"


def timed(cmd, env, expect: bytes | None = None) -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if p.returncode != 0 or (expect is not None and p.stdout != expect):
        sys.exit(f"benchmark command failed: {os.path.basename(cmd[0])} {cmd[1:]}: "
                 f"{p.stderr.decode(errors='replace')[:300]}")
    return elapsed


def hit_label(n: int) -> str:
    count = f"{n:,}".replace(",", " ")
    return f"cache hit, {count} entr{'y' if n == 1 else 'ies'}"


def main() -> int:
    args = benchlib.arguments(__doc__, 40)
    runs = args.runs
    bindir = os.path.dirname(sys.executable)
    helper = shutil.which("credhelper-keyring", path=bindir) or shutil.which("credhelper-keyring")
    umbrella = shutil.which("credhelper", path=bindir) or shutil.which("credhelper")
    if not helper or not umbrella:
        sys.exit("credhelper-keyring is not installed")
    work = tempfile.mkdtemp(prefix="credhelper-bench-")
    try:
        return measure(args, runs, helper, umbrella, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args, runs: int, helper: str, umbrella: str, work: str) -> int:
    env = dict(os.environ)
    env.update(CREDHELPER_KEYRING_SERVICE=f"credhelper-bench-{os.getpid()}",
               CREDHELPER_CONFIG=os.path.join(work, "none.toml"))
    env.pop("CLAUDE_HELPER_CONTEXT", None)
    token = jwt(7200)
    expect = f"{token}\n".encode()
    store_env = dict(env, CREDHELPER_CACHE_DIR=os.path.join(work, "cache-store"))
    subprocess.run([helper, "store"], input=token.encode(), env=store_env, check=True,
                   capture_output=True)

    crowded = {}
    for n in ENTRIES:
        e = dict(env, CREDHELPER_CACHE_DIR=os.path.join(work, f"cache-{n}"))
        out = subprocess.run([helper], env=e, capture_output=True, check=True).stdout
        assert out == expect, "the helper did not print the stored token"
        directory = e["CREDHELPER_CACHE_DIR"]
        name = next(f for f in os.listdir(directory) if f.startswith("keyring-"))
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        for i in range(n - 1):  # copies under other keys: same size, never read by the hit
            fd = os.open(os.path.join(directory, f"keyring-{i:032x}.v1.json"),
                         os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, data)
            os.close(fd)
        crowded[n] = e

    cases = {
        "python -c pass": ([sys.executable, "-c", "pass"], env, None),
        # pip's console-script wrapper imports re before any credhelper code runs
        "python -c 'import re'": ([sys.executable, "-c", "import re"], env, None),
        **{hit_label(n): ([helper], crowded[n], expect) for n in ENTRIES},
        "credhelper --version (click)": ([umbrella, "--version"], env, None),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for cmd, e, out in cases.values():
        timed(cmd, e, out)  # warm the page cache
    for _ in range(runs):
        for name, (cmd, e, out) in cases.items():
            samples[name].append(timed(cmd, e, out))

    base = samples["python -c pass"]
    one = samples[hit_label(1)]
    click_path = samples["credhelper --version (click)"]
    print(f"Cache hit of `credhelper-keyring` (file cache, JWT in a GNOME Keyring on a private "
          f"D-Bus): {runs} interleaved rounds; load average before: {benchlib.load_average()}.\n")
    print("| command | median ms | p10-p90 ms | vs python -c pass | vs 1 entry | vs click path |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in samples.items():
        vs_one = benchlib.ratio_text(benchlib.ratio(values, one)) if name.startswith("cache hit") else "-"
        print(f"| {name} | {benchlib.median(values) * 1000:.1f} | {benchlib.spread_text(values)} "
              f"| {benchlib.median(values) / benchlib.median(base):.2f}x | {vs_one} "
              f"| {benchlib.median(values) / benchlib.median(click_path):.2f}x |")
    rss = sorted(benchlib.peak_rss_kib([helper], crowded[1]) for _ in range(5))[2]
    wrapper = benchlib.median(samples["python -c 'import re'"])
    hit = benchlib.median(one)
    print(f"\nThe columns vs python -c pass and vs click path are ratios of medians; vs 1 entry "
          f"is the median of the per-round ratios, p10-p90 in brackets. A hit costs "
          f"{(hit - benchlib.median(base)) * 1000:.1f} ms beyond the bare interpreter, of which "
          f"{(wrapper - benchlib.median(base)) * 1000:.1f} ms is the console-script wrapper's "
          f"`import re`. Peak RSS of a hit (median of 5): {rss / 1024:.1f} MiB.")

    benchlib.write_json(args.json, {
        "runs": runs,
        "cases": {name: benchlib.ms(values) for name, values in samples.items()},
        "entries": {str(n): {**benchlib.ms(samples[hit_label(n)]),
                             "vs_1": benchlib.ratio(samples[hit_label(n)], one),
                             "vs_python": benchlib.ratio(samples[hit_label(n)], base)}
                    for n in ENTRIES},
        "rss_mib": rss / 1024,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
