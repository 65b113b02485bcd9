"""Every benchmark in one run, and one markdown report headed by the machine it ran on.

    .venv/bin/python benchmarks/run_all.py [--quick] [--binary PATH]... [--output FILE]

(``scripts/bench`` prepares the virtualenv and the Vault binary, then runs this.) Runs,
one after the other: ``hot_path.py`` inside ``scripts/keyring-session``, ``vault_bench.py``
(with every ``--binary``), ``vault_miss_profile.py``, ``refresh_bench.py``, ``aws_bench.py``,
``fleet.py`` (its plot to ``docs/fleet.png`` when matplotlib is installed) and
``concurrency_bench.py`` (with the one-folder binaries). Each writes its figures as JSON;
this script puts the headline figures in one table, each against its target, followed by
every benchmark's own tables. Prints the report and writes it to ``--output`` (default
``benchmarks/RESULTS.md``). Exits 1 when a benchmark failed or the concurrency count is
not exactly 1; a timing target that is missed is reported, not a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import benchlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# repetitions: default, --quick
RUNS = {"hot_path": (50, 10), "vault": (50, 8), "miss": (25, 6), "refresh": (40, 8),
        "aws": (25, 5)}


def rel(path: str) -> str:
    """A path as the report shows it: relative to the repository when inside it."""
    full = os.path.abspath(path)
    return os.path.relpath(full, REPO) if full.startswith(REPO + os.sep) else os.path.basename(full)


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "credhelper", "providers", "pyproject.toml"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (head or "unknown") + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("credhelper")
    except Exception:  # noqa: BLE001 - only a label
        return "?"


class Suite:
    def __init__(self, work: str):
        self.work = work
        self.sections: list[tuple[str, str, str, str]] = []  # title, command, body, how long
        self.figures: dict[str, dict] = {}
        self.failures: list[str] = []

    def run(self, key: str, title: str, argv: list[str], shown: str, wrapper=()) -> None:
        out = os.path.join(self.work, f"{key}.json")
        print(f"run_all: {title} ...", file=sys.stderr, flush=True)
        start, load = time.monotonic(), benchlib.load_average()
        p = subprocess.run([*wrapper, sys.executable, os.path.join(HERE, argv[0]), *argv[1:],
                            "--json", out], stdout=subprocess.PIPE, text=True, cwd=REPO)
        seconds = time.monotonic() - start
        body = p.stdout.strip()
        if p.returncode != 0:
            self.failures.append(f"{title}: exit {p.returncode}")
            body += f"\n\n**This benchmark exited with {p.returncode}.**"
        if os.path.exists(out):
            with open(out, encoding="utf-8") as f:
                self.figures[key] = json.load(f)
        self.sections.append((title, shown, body, f"{seconds:.0f} s; load average "
                              f"{load.split()[0]} before, {benchlib.load_average().split()[0]} after"))
        print(f"run_all: {title}: {seconds:.0f} s", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--binary", action="append", default=[],
                        help="a built credhelper-vault binary (repeatable)")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    pick = 1 if args.quick else 0
    runs = {name: value[pick] for name, value in RUNS.items()}
    machine = benchlib.machine()
    load = benchlib.load_average()
    started = time.monotonic()
    binaries = [os.path.abspath(b) for b in args.binary]
    onedir = [b for b in binaries if os.path.isdir(os.path.join(os.path.dirname(b), "_internal"))]
    binary_args = [a for b in binaries for a in ("--binary", b)]
    binary_shown = "".join(f" --binary {rel(b)}" for b in binaries)
    onedir_args = [a for b in onedir for a in ("--binary", b)]
    onedir_shown = "".join(f" --binary {rel(b)}" for b in onedir)

    work = tempfile.mkdtemp(prefix="credhelper-bench-all-")
    suite = Suite(work)
    try:
        suite.run("hot_path", "Cache hit: the hot path and the number of cached entries",
                  ["hot_path.py", "--runs", str(runs["hot_path"])],
                  f"scripts/keyring-session .venv/bin/python benchmarks/hot_path.py --runs {runs['hot_path']}",
                  wrapper=[os.path.join(REPO, "scripts", "keyring-session")])
        suite.run("vault", "Vault: cache hit, cache miss, binaries, peak RSS",
                  ["vault_bench.py", "--runs", str(runs["vault"]), *binary_args],
                  f".venv/bin/python benchmarks/vault_bench.py --runs {runs['vault']}{binary_shown}")
        suite.run("miss", "Vault: where a cache miss spends its time",
                  ["vault_miss_profile.py", "--runs", str(runs["miss"])],
                  f".venv/bin/python benchmarks/vault_miss_profile.py --runs {runs['miss']}")
        suite.run("refresh", "Vault: forced refresh vs cache miss, same backend",
                  ["refresh_bench.py", "--runs", str(runs["refresh"])],
                  f".venv/bin/python benchmarks/refresh_bench.py --runs {runs['refresh']}")
        suite.run("aws", "AWS: presigned-identity cache miss",
                  ["aws_bench.py", "--runs", str(runs["aws"])],
                  f".venv/bin/python benchmarks/aws_bench.py --runs {runs['aws']}")
        suite.run("fleet", "Fleet: 10 000 laptops over a working day, refresh_window off and on",
                  ["fleet.py", "--plot", os.path.join(HERE, "..", "docs", "fleet.png")],
                  ".venv/bin/python benchmarks/fleet.py --plot docs/fleet.png")
        suite.run("concurrency", "Concurrency: 50 cold runs at once",
                  ["concurrency_bench.py", "--runs", "50", *onedir_args],
                  f".venv/bin/python benchmarks/concurrency_bench.py --runs 50{onedir_shown}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = render(suite, machine, load, args.quick, time.monotonic() - started)
    print(report)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(report)
    print(f"run_all: wrote {rel(args.output)}", file=sys.stderr)
    concurrency = suite.figures.get("concurrency", {}).get("rows", [])
    if not concurrency or any(r["reads"] != 1 or r["logins"] != 1 or r["ok"] != r["runs"]
                              for r in concurrency):
        suite.failures.append("concurrency: backend fetches are not exactly 1")
    for failure in suite.failures:
        print(f"run_all: FAILED: {failure}", file=sys.stderr)
    return 1 if suite.failures else 0


def fmt_ms(case: dict | None) -> str:
    if not case:
        return "-"
    return f"{case['median']:.1f} ms ({case['p10']:.1f}-{case['p90']:.1f})"


def verdict(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return "-"
    return "met" if value <= target else "**missed**"


def headline(figures: dict) -> list[list[str]]:
    rows = []
    v = figures.get("vault")
    if v:
        cases, ratios = v["cases"], v["ratios"]
        bao = fmt_ms(cases.get("bao kv get -field=token (Go)"))
        hvac = fmt_ms(cases.get("minimal hvac script (miss reference)"))
        r = ratios["credhelper-vault, cache hit"]
        rows.append(["Vault cache hit, source install (console script)",
                     fmt_ms(cases["credhelper-vault, cache hit"]), f"`bao kv get -field=token`: {bao}",
                     benchlib.ratio_text(r), f"<= {r['target']:.2f}x", verdict(r["value"], r["target"])])
        for name, info in sorted(v.get("binaries", {}).items(),
                                 key=lambda kv: kv[1]["layout"] != "one-folder"):
            r = ratios[name]
            shipped = info["layout"] == "one-folder"
            label = ("Vault cache hit, shipped binary (one-folder)" if shipped
                     else "Vault cache hit, one-file binary (not shipped)")
            rows.append([label, fmt_ms(cases[name]), "`bao kv get`, as above",
                         benchlib.ratio_text(r), f"<= {r['target']:.2f}x" if shipped else "-",
                         verdict(r["value"], r["target"]) if shipped else "-"])
        for name, label in (("credhelper-vault, cache miss, kv_version = 2",
                             "Vault cache miss, KV v2 read (`kv_version = 2`: one request, as the script)"),
                            ("credhelper-vault, cache miss, KV version detected",
                             "Vault cache miss, KV version detected (two requests)")):
            r = ratios[name]
            rows.append([label, fmt_ms(cases[name]), f"minimal hvac script: {hvac}",
                         benchlib.ratio_text(r), f"<= {r['target']:.1f}x", verdict(r["value"], r["target"])])
    f = figures.get("refresh")
    if f:
        r = f["ratio"]
        rows.append(["Vault forced refresh (`--force-refresh`, `refresh_grace = 0s`, warm cache)",
                     fmt_ms(f["cases"][r["measured"]]),
                     f"cold cache miss, same backend: {fmt_ms(f['cases'][r['reference']])}",
                     benchlib.ratio_text(r), f"<= {r['target']:.1f}x", verdict(r["value"], r["target"])])
    a = figures.get("aws")
    if a:
        for mode, label in (("verify", "AWS cache miss, presigned identity (GetCallerIdentity + presign)"),
                            ("sign-only", "AWS cache miss, presigned identity (`verify = false`)")):
            mine, ref = a["cases"][f"credhelper-aws ({mode})"], a["cases"][f"boto3 script ({mode})"]
            rows.append([label, fmt_ms(mine), f"minimal boto3 script, same signing: {fmt_ms(ref)}",
                         benchlib.ratio_text(mine["ratio"]), f"<= {a['target']:.1f}x",
                         verdict(mine["ratio"]["value"], a["target"])])
    c = figures.get("concurrency")
    if c:
        for row in c["rows"]:
            ok = row["reads"] == 1 and row["logins"] == 1 and row["ok"] == row["runs"]
            who = row["label"].replace("credhelper-vault ", "")
            rows.append([f"{row['runs']} concurrent cold runs {who}: backend fetches",
                         f"{row['reads']} KV read, {row['logins']} AppRole login; "
                         f"{row['ok']} of {row['runs']} printed the secret",
                         "OpenBao audit log", f"{row['reads']} / {row['logins']}", "exactly 1",
                         "met" if ok else "**missed**"])
    fl = figures.get("fleet")
    if fl:
        on = [r for r in fl["results"] if r["window"]]
        worst = max(on, key=lambda r: r["figures"]["peak_over_mean"])
        f = worst["figures"]
        off = next(r["figures"] for r in fl["results"]
                   if r["backend"] == worst["backend"] and not r["window"])
        laptops = f"{fl['laptops']:,}".replace(",", " ")
        rows.append([f"Fleet: backend requests/s, peak over mean, refresh_window on "
                     f"({laptops} laptops; highest: {worst['backend']})",
                     f"peak {f['peak']:.2f}/s, mean {f['mean']:.2f}/s",
                     f"window off: {off['peak_over_mean']:.2f}x",
                     f"{f['peak_over_mean']:.2f}x", "<= 2x", verdict(f["peak_over_mean"], 2.0)])
    if v:
        rss = v["rss_mib"]
        hit = rss.get("credhelper-vault, cache hit")
        binary = [f"one-folder binary {rss[n]:.1f} MiB" for n, i in v.get("binaries", {}).items()
                  if i["layout"] == "one-folder" and n in rss]
        rows.append(["Peak RSS of a Vault cache hit (median of 5)",
                     f"{hit:.1f} MiB" + (f"; {binary[0]}" if binary else ""),
                     f"`bao kv get`: {rss.get('bao kv get -field=token (Go)', 0):.1f} MiB",
                     f"{hit / rss['bao kv get -field=token (Go)']:.2f}x",
                     "<= 30 MiB", verdict(hit, 30.0)])
    h = figures.get("hot_path")
    if h:
        for n in ("1", "100", "10000"):
            e = h["entries"][n]
            count = f"{int(n):,}".replace(",", " ")
            first = n == "1"
            rows.append([f"Cache hit with {count} entr{'y' if first else 'ies'} in the cache "
                         f"directory (`credhelper-keyring`)", fmt_ms(e),
                         f"`python -c pass`: {fmt_ms(h['cases']['python -c pass'])}" if first
                         else "the hit with 1 entry, above",
                         benchlib.ratio_text(e["vs_python"] if first else e["vs_1"]), "-", "-"])
    return rows


def render(suite: Suite, machine: dict, load: str, quick: bool, seconds: float) -> str:
    lines = ["# credhelper benchmarks", ""]
    lines.append(f"**Machine:** {benchlib.machine_line(machine)}; load average at the start: {load}.")
    lines.append("")
    servers = ", ".join(s for s in (suite.figures.get("vault", {}).get("server"),
                                    suite.figures.get("aws", {}).get("server")) if s)
    command = f"`scripts/bench{' --quick' if quick else ''}`"
    try:  # scripts/bench sets it: the whole command, with any .venv and binary build
        took = f"took {(time.time() - int(os.environ['BENCH_STARTED'])) / 60:.1f} min, " \
               f"of which the benchmarks {seconds / 60:.1f} min"
    except (KeyError, ValueError):
        took = f"ran the benchmarks in {seconds / 60:.1f} min"
    lines.append(f"credhelper {package_version()} (commit {git_commit()}), installed in `.venv`; "
                 f"servers on loopback: {servers or '-'}. {command} "
                 f"{took}. Every ratio is against a reference timed in the same "
                 f"run, interleaved round by round with it: the median of the per-round ratios, and in "
                 f"brackets their p10-p90.")
    lines.append("")
    lines.append("| figure | measured: median (p10-p90) | reference, same run | ratio | target | |")
    lines.append("|---|---|---|---:|---:|---|")
    for row in headline(suite.figures):
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if suite.failures:
        lines.append("**Failed:** " + "; ".join(suite.failures))
        lines.append("")
    for title, command, body, took in suite.sections:
        lines.append(f"## {title}")
        lines.append("")
        lines.append(f"`{command}` ({took})")
        lines.append("")
        lines.append(body)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
