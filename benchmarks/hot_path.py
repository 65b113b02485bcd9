"""Cache-hit cost of the installed helper, as ratios against references timed in the same run.

    scripts/keyring-session python benchmarks/hot_path.py [--runs 40]

Needs an OS keyring (the line above gives it a private one on Linux). Stores a JWT with
`credhelper-keyring store`, warms the cache, then times, interleaved round by round:
`python -c pass` (the interpreter alone), `python -c 'import re'` (what pip's console-script
wrapper imports before credhelper runs), the cache hit of `credhelper-keyring` (the hot
path), `credhelper --version` (the click path), and the hit with 100 and 10 000 other
entries in the cache directory. Prints a markdown table: median, p10-p90, ratios.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def jwt(ttl: int) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'none'})}.{enc({'sub': 'bench', 'exp': int(time.time()) + ttl})}.sig"


def timed(cmd, env) -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"benchmark command failed: {cmd[-1]}: {p.stderr.decode()[:300]}")
    return elapsed


def peak_rss_kib(cmd, env) -> int:
    probe = "import resource,subprocess,sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL);" \
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    return int(subprocess.run([sys.executable, "-c", probe, *cmd], env=env, capture_output=True,
                              text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    bindir = os.path.dirname(sys.executable)
    helper = shutil.which("credhelper-keyring", path=bindir) or shutil.which("credhelper-keyring")
    umbrella = shutil.which("credhelper", path=bindir) or shutil.which("credhelper")
    if not helper:
        sys.exit("credhelper-keyring is not installed")
    work = tempfile.mkdtemp(prefix="credhelper-bench-")
    env = dict(os.environ)
    env.update(CREDHELPER_CACHE_DIR=os.path.join(work, "cache"),
               CREDHELPER_KEYRING_SERVICE=f"credhelper-bench-{os.getpid()}",
               CREDHELPER_CONFIG=os.path.join(work, "none.toml"))
    token = jwt(7200)
    subprocess.run([helper, "store"], input=token.encode(), env=env, check=True, capture_output=True)
    out = subprocess.run([helper], env=env, capture_output=True, check=True).stdout
    assert out == f"{token}\n".encode(), "the helper did not print the stored token"

    crowded = {}
    for n in (100, 10_000):
        e = dict(env, CREDHELPER_CACHE_DIR=os.path.join(work, f"cache-{n}"))
        subprocess.run([helper], env=e, capture_output=True, check=True)  # real entry + snapshot
        name = next(f for f in os.listdir(e["CREDHELPER_CACHE_DIR"]) if f.startswith("keyring-"))
        data = open(os.path.join(e["CREDHELPER_CACHE_DIR"], name), "rb").read()
        for i in range(n - 1):
            path = os.path.join(e["CREDHELPER_CACHE_DIR"], f"keyring-{i:032x}.v1.json")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, data)
            os.close(fd)
        crowded[n] = e

    cases = {
        "python -c pass": ([sys.executable, "-c", "pass"], env),
        # pip's console-script wrapper imports re before any credhelper code runs
        "python -c 'import re'": ([sys.executable, "-c", "import re"], env),
        "credhelper-keyring (cache hit)": ([helper], env),
        "credhelper --version (click)": ([umbrella, "--version"], env),
        "cache hit, 100 entries": ([helper], crowded[100]),
        "cache hit, 10 000 entries": ([helper], crowded[10_000]),
    }
    samples = {name: [] for name in cases}
    for cmd, e in cases.values():
        timed(cmd, e)  # warm the page cache
    for _ in range(args.runs):
        for name, (cmd, e) in cases.items():
            samples[name].append(timed(cmd, e))

    def q(values, p):
        values = sorted(values)
        return values[min(len(values) - 1, int(p * len(values)))]

    base = statistics.median(samples["python -c pass"])
    hit = statistics.median(samples["credhelper-keyring (cache hit)"])
    click_path = statistics.median(samples["credhelper --version (click)"])
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.system()}; {args.runs} interleaved runs each.\n")
    print("| command | median ms | p10-p90 ms | vs python -c pass | vs click path |")
    print("|---|---:|---:|---:|---:|")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"| {name} | {med * 1000:.1f} | {q(values, .1) * 1000:.1f}-{q(values, .9) * 1000:.1f} "
              f"| {med / base:.2f}x | {med / click_path:.2f}x |")
    rss = peak_rss_kib([helper], env)
    wrapper = statistics.median(samples["python -c 'import re'"])
    print(f"\nCache hit beyond the bare interpreter: {(hit - base) * 1000:.1f} ms, of which "
          f"{(wrapper - base) * 1000:.1f} ms is the console-script wrapper's `import re`. "
          f"Peak RSS of a cache hit: {rss / 1024:.1f} MiB.")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
