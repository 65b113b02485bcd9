"""Small helpers shared by the benchmarks: the machine description, spreads and paired
ratios of interleaved samples, peak RSS of one child, and the JSON figures file that
``benchmarks/run_all.py`` combines into one report."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

# ru_maxrss of a parent that ran only the command: a child's own ru_maxrss would also
# count the memory it was forked with, so the parent must be this tiny process.
RSS_PROBE = r"""
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
if p.returncode:
    sys.stderr.write(p.stderr.decode(errors="replace")[-500:])
    sys.exit(p.returncode)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(rss // 1024 if sys.platform == "darwin" else rss)  # KiB
"""


def peak_rss_kib(cmd: list[str], env: dict) -> int:
    p = subprocess.run([sys.executable, "-c", RSS_PROBE, *cmd], env=env, capture_output=True,
                       text=True)
    if p.returncode:
        raise SystemExit(f"RSS probe of {os.path.basename(cmd[0])} failed: {p.stderr[-300:]}")
    return int(p.stdout.strip())


def median(samples) -> float:
    return statistics.median(samples)


def p10_p90(samples) -> tuple[float, float]:
    """The 10th and 90th percentiles (nearest rank; the extremes below 5 samples)."""
    values = sorted(samples)
    if len(values) < 5:
        return values[0], values[-1]
    q = statistics.quantiles(values, n=10)
    return q[0], q[-1]


def ms(samples) -> dict:
    """Median and p10-p90 of samples in seconds, as milliseconds."""
    lo, hi = p10_p90(samples)
    return {"median": median(samples) * 1000, "p10": lo * 1000, "p90": hi * 1000,
            "n": len(samples)}


def spread_text(samples) -> str:
    lo, hi = p10_p90(samples)
    return f"{lo * 1000:.1f}-{hi * 1000:.1f}"


def ratio(samples, reference) -> dict:
    """The ratio as the median of the per-round ratios, with their p10-p90: the samples are
    interleaved round by round, so sample i of both was timed under the same load, and a
    burst of load from elsewhere moves one round's pair rather than one side's median."""
    paired = [a / b for a, b in zip(samples, reference, strict=True)]
    lo, hi = p10_p90(paired)
    return {"value": median(paired), "p10": lo, "p90": hi,
            "of_medians": median(samples) / median(reference)}


def ratio_text(r: dict) -> str:
    return f"{r['value']:.2f}x ({r['p10']:.2f}-{r['p90']:.2f})"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() or platform.machine()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        pretty = fields.get("PRETTY_NAME", "").strip('"')
        if pretty:
            return f"{pretty}, {platform.system()} {platform.release().split('-')[0]}"
    except OSError:
        pass
    if sys.platform == "darwin":
        return f"macOS {platform.mac_ver()[0]}"
    return f"{platform.system()} {platform.release()}"


def machine() -> dict:
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "os": os_name(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line(m: dict | None = None) -> str:
    m = m or machine()
    return (f"{m['cpu']} ({m['arch']}), {m['cores']} cores; {m['os']}; "
            f"Python {m['python']}; {m['date']}")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "?"


def write_json(path: str | None, data: dict) -> None:
    """The figures for run_all.py; nothing when no path was given."""
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)


def installed_script(name: str) -> str:
    """The console script ``name`` of the interpreter running the benchmark (its venv), or
    the one on PATH."""
    import shutil

    candidate = os.path.join(os.path.dirname(sys.executable), name)
    found = candidate if os.path.exists(candidate) else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} is not installed (run scripts/bench, or pip install '.[all]')")
    return found


def arguments(doc: str, runs: int):
    """The options every benchmark takes: ``--runs`` (at least 5) and ``--json``."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    args.runs = max(5, args.runs)
    return args
