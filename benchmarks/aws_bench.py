"""credhelper-aws on a cache miss against the smallest boto3 script doing the same work.

Both sides run as fresh processes against one local moto server, interleaved in one run
so that machine noise hits them alike:

- ``credhelper-aws`` in presigned-identity mode with an empty cache directory each time
  (config, lock, fetch, cache write, print), with ``verify`` on (the default: one STS
  GetCallerIdentity, then offline signing) and off (signing only);
- a minimal boto3 script that does the same STS call and/or presigns the same
  GetCallerIdentity URL with the audience header, and prints it.

Prints a markdown table (median, spread as p10-p90, the median of the per-round ratios
with their p10-p90, peak RSS); ``--json`` also writes the figures for run_all.py.
Target: ratio <= 1.2.

    .venv/bin/python benchmarks/aws_bench.py [--runs 15] [--json FILE]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import benchlib  # noqa: E402
from motoserver import MotoServer  # noqa: E402

AUDIENCE = "https://gateway.bench.example"

BASELINE = r"""
import base64, sys
import boto3
sts = boto3.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1")
if sys.argv[2] == "verify":
    sts.get_caller_identity()
def add(request, **_):
    request.headers["x-credhelper-audience"] = sys.argv[3]
sts.meta.events.register("before-sign.sts.GetCallerIdentity", add)
url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=900, HttpMethod="GET")
b64 = lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")
print(f"credhelper-aws-v1.{b64(sys.argv[3])}.{b64(url)}")
"""


def helper_path() -> str:
    return benchlib.installed_script("credhelper-aws")


def timed(cmd, env) -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if p.returncode != 0 or not p.stdout.startswith(b"credhelper-aws-v1."):
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    return elapsed


def peak_rss_mib(cmd, env) -> float | None:
    """Peak RSS of one run, measured from a tiny parent (a child's ru_maxrss also counts
    the memory it was forked with, so the parent must not be this benchmark)."""
    import importlib.util

    if importlib.util.find_spec("resource") is None:  # POSIX only
        return None
    probe = ("import resource, subprocess, sys\n"
             "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], env=env, capture_output=True,
                         text=True, check=True).stdout
    return int(out) / (1024 * 1024 if sys.platform == "darwin" else 1024)


def spread(samples: list[float]) -> str:
    if len(samples) < 3:
        return "-"
    q = statistics.quantiles(samples, n=10)
    return f"{q[0] * 1000:.0f}-{q[-1] * 1000:.0f}"


def main() -> int:
    args = benchlib.arguments(__doc__, 15)
    helper = helper_path()
    if not helper:
        raise SystemExit("credhelper-aws is not installed")

    work = tempfile.mkdtemp(prefix="aws-bench-")
    moto = MotoServer(os.path.join(work, "moto.log")).start()
    try:
        import boto3

        iam = boto3.client("iam", endpoint_url=moto.url, region_name="us-east-1",
                           aws_access_key_id="AKIABENCHADMIN000000", aws_secret_access_key="x")
        iam.create_user(UserName="bench")
        key = iam.create_access_key(UserName="bench")["AccessKey"]
        home = os.path.join(work, "home")
        os.makedirs(home)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
            "XDG_CONFIG_HOME": os.path.join(home, ".config"),
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.path.join(home, "none"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "none"),
            "CREDHELPER_AWS_ENDPOINT_URL": moto.url, "CREDHELPER_AWS_AUDIENCE": AUDIENCE,
            "CLAUDE_HELPER_CONTEXT": "background",
        }
        baseline = os.path.join(work, "baseline.py")
        with open(baseline, "w") as f:
            f.write(BASELINE)

        load = benchlib.load_average()
        cases = {}
        for verify in ("verify", "sign-only"):
            cases[("credhelper-aws", verify)] = []
            cases[("boto3 script", verify)] = []
        for i in range(args.runs + 2):  # two warm-up rounds (page cache, moto's first calls)
            for verify in ("verify", "sign-only"):
                run_env = dict(env, CREDHELPER_CACHE_DIR=os.path.join(work, f"cache-{verify}-{i}"),
                               CREDHELPER_AWS_VERIFY="true" if verify == "verify" else "false")
                a = timed([helper], run_env)
                b = timed([sys.executable, baseline, moto.url, verify, AUDIENCE], env)
                if i >= 2:
                    cases[("credhelper-aws", verify)].append(a)
                    cases[("boto3 script", verify)].append(b)
        hit_env = dict(env, CREDHELPER_CACHE_DIR=os.path.join(work, "cache-hit"))
        timed([helper], hit_env)
        hits = [timed([helper], hit_env) for _ in range(args.runs)]
        rss = {}
        for verify in ("verify", "sign-only"):
            miss_env = dict(env, CREDHELPER_CACHE_DIR=os.path.join(work, f"cache-rss-{verify}"),
                            CREDHELPER_AWS_VERIFY="true" if verify == "verify" else "false")
            rss[f"credhelper-aws ({verify})"] = peak_rss_mib([helper], miss_env)
            rss[f"boto3 script ({verify})"] = peak_rss_mib(
                [sys.executable, baseline, moto.url, verify, AUDIENCE], env)
        rss["credhelper-aws (cache hit)"] = peak_rss_mib([helper], hit_env)
    finally:
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)

    import boto3

    print(f"`credhelper-aws` presigned identity, cache miss (empty cache directory each run), "
          f"against a local moto {moto_version()} server; boto3 {boto3.__version__}; "
          f"{args.runs} interleaved rounds after 2 warm-up rounds; load average before: {load}.\n")

    def mib(label: str) -> str:
        return "-" if rss.get(label) is None else f"{rss[label]:.0f}"

    figures = {}
    print("| case | what | median ms | p10-p90 ms | ratio to boto3 script (p10-p90 per round) "
          "| peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for verify, what in (("verify", "GetCallerIdentity + presign"), ("sign-only", "presign only")):
        reference = cases[("boto3 script", verify)]
        for name in ("credhelper-aws", "boto3 script"):
            samples = cases[(name, verify)]
            r = benchlib.ratio(samples, reference)
            shown = benchlib.ratio_text(r) if name == "credhelper-aws" else "1.00x"
            print(f"| {name} ({verify}) | {what} | {benchlib.median(samples) * 1000:.0f} | "
                  f"{spread(samples)} | {shown} | {mib(f'{name} ({verify})')} |")
            figures[f"{name} ({verify})"] = {**benchlib.ms(samples), "ratio": r,
                                             "rss_mib": rss.get(f"{name} ({verify})")}
    print(f"| credhelper-aws (cache hit) | cached token | {benchlib.median(hits) * 1000:.0f} | "
          f"{spread(hits)} | - | {mib('credhelper-aws (cache hit)')} |")
    figures["credhelper-aws (cache hit)"] = {**benchlib.ms(hits),
                                             "rss_mib": rss.get("credhelper-aws (cache hit)")}
    benchlib.write_json(args.json, {"runs": args.runs, "cases": figures, "target": 1.2,
                                    "server": f"moto {moto_version()}"})
    return 0


def moto_version() -> str:
    try:
        from importlib.metadata import version

        return version("moto")
    except Exception:  # noqa: BLE001 - only a label
        return "?"


if __name__ == "__main__":
    sys.exit(main())
