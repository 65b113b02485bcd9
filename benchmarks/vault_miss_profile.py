"""Where a credhelper-vault cache miss spends its time beyond a minimal hvac script.

    .venv/bin/python benchmarks/vault_miss_profile.py [--runs 20] [--json FILE]

On one local OpenBao dev server with a file audit device (token auth, KV v2,
``kv_version = 2`` so that both sides make the same single read):

1. HTTP requests: one miss, one miss with the KV version detected, the hvac script and
   ``bao kv get`` each run alone; the audit log says which requests each made.
2. Wall time, fresh processes interleaved round by round: ``python -c pass``; ``import
   hvac``; the hvac script; a process that only imports every module a miss loads, in the
   order the miss loads them; the miss itself. The miss's extra time over the script then
   splits into imports (import-only process minus ``import hvac``) and work (each side's
   run minus its own import-only process).
3. Imports: ``python -X importtime`` of the miss and of the script, medians over the runs
   of the self time of every module that only the miss loads, grouped by the top-level
   import that brings it in (``filelock`` brings ``decimal``, ``platform``, ...).
4. Work: one in-process miss after all its modules are imported, with the phases timed
   (configuration, lock, Vault client, HTTP, cache entry and snapshot writes, fsync);
   and the script's client and read the same way. Medians over the runs.

Prints markdown; ``--json`` also writes the figures for run_all.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

import benchlib
from vault_bench import HVAC_SCRIPT, VALUE, helper_path, seeded_env

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from openbao import OpenBao, bao_binary  # noqa: E402

# Run the helper in-process and list the modules it loaded, in load order.
LIST_MISS = r"""
import io, json, sys
from credhelper.run import helper_main
out = io.StringIO()
rc = helper_main("vault", [], stdout=out)
assert rc == 0 and out.getvalue() == sys.argv[1] + "\n", rc
sys.stderr.write("MODULES=" + json.dumps(list(sys.modules)) + "\n")
"""

LIST_SCRIPT = r"""
import json, runpy, sys
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
sys.stderr.write("MODULES=" + json.dumps(list(sys.modules)) + "\n")
"""

IMPORT_ONLY = r"""
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""

# One in-process miss with the phases timed; every module is imported first.
PHASES_MISS = r"""
import importlib, io, json, os, sys, time
for name in json.loads(os.environ["BENCH_MODULES"]):
    try:
        importlib.import_module(name)
    except Exception:
        pass
T = {}
def wrap(owner, attr, label):
    f = getattr(owner, attr, None)
    if f is None:
        return
    def timed(*a, **k):
        s = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            T[label] = T.get(label, 0.0) + time.perf_counter() - s
    setattr(owner, attr, timed)
import credhelper.cache as cache, credhelper.config as config, credhelper.fullpath as run
import credhelper.snapshot as snapshot, credhelper.providers.vault as vault
wrap(config, "load", "configuration (sources, parsing, checks)")
wrap(run, "cache_key", "cache key")
wrap(run.Run, "prepare", "prepare")
wrap(cache.Lock, "__init__", "lock")
wrap(cache.Lock, "__enter__", "lock")
wrap(cache.Lock, "__exit__", "lock")
wrap(cache.FileCache, "load", "cache lookups (2)")
wrap(run.Run, "fetch", "fetch")
wrap(vault.Vault, "__init__", "hvac client")
wrap(vault.Vault, "_send", "HTTP request and answer")
wrap(cache.FileCache, "store", "cache entry write")
wrap(snapshot, "write", "snapshot write")
wrap(os, "fsync", "fsync")
out = io.StringIO()
s = time.perf_counter()
from credhelper.run import helper_main
rc = helper_main("vault", [], stdout=out)
T["total"] = time.perf_counter() - s
assert rc == 0, rc
print(json.dumps(T))
"""

PHASES_SCRIPT = r"""
import json, sys, time
import hvac
T = {}
s = time.perf_counter()
client = hvac.Client(url=sys.argv[1], token=sys.argv[2])
T["hvac client"] = time.perf_counter() - s
r = time.perf_counter()
secret = client.secrets.kv.v2.read_secret_version(path="gateway", mount_point="secret",
                                                  raise_on_deleted_version=True)
T["HTTP request and answer"] = time.perf_counter() - r
T["total"] = time.perf_counter() - s
print(json.dumps(T))
"""

IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def run(cmd, env, expect: bytes | None = None) -> subprocess.CompletedProcess:
    # from the home directory: `python -c` puts the working directory first on sys.path,
    # where the source folder would shadow the installed package
    p = subprocess.run(cmd, env=env, capture_output=True, stdin=subprocess.DEVNULL, cwd=env["HOME"])
    if p.returncode != 0 or (expect is not None and p.stdout != expect):
        raise SystemExit(f"{os.path.basename(cmd[0])} failed ({p.returncode}): "
                         f"{p.stderr.decode(errors='replace')[-800:]}")
    return p


def timed(cmd, env, expect=None) -> float:
    start = time.perf_counter()
    run(cmd, env, expect)
    return time.perf_counter() - start


def modules_of(p: subprocess.CompletedProcess) -> list[str]:
    for line in p.stderr.decode(errors="replace").splitlines():
        if line.startswith("MODULES="):
            return json.loads(line[len("MODULES="):])
    raise SystemExit("no module list")


def import_tree(stderr: str) -> dict[str, tuple[int, str]]:
    """module -> (self microseconds, the top-level import that brought it in)."""
    found, pending = {}, []
    for line in stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if not m:
            continue
        self_us, depth, name = int(m[1]), len(m[3]) // 2, m[4]
        pending.append((name, self_us))
        if depth == 0:  # -X importtime prints children before their parent
            for child, us in pending:
                found[child] = (us, name)
            pending = []
    return found


def group_of(top: str) -> str:
    if top.startswith("credhelper"):
        return "credhelper's own modules (and dataclasses)"
    return top.split(".")[0]


def main() -> int:
    args = benchlib.arguments(__doc__, 20)
    runs = args.runs
    helper, bao = helper_path(), bao_binary()
    work = tempfile.mkdtemp(prefix="vault-miss-")
    server = OpenBao(os.path.join(work, "bao"), audit=True).start()
    try:
        return measure(args, runs, helper, bao, server, work)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def measure(args, runs, helper, bao, server, work) -> int:
    base = seeded_env(server, work)
    helper_env = dict(base, CREDHELPER_VAULT_KV_VERSION="2")
    counter = iter(range(10**9))

    def miss_env(**extra) -> dict:
        return dict(helper_env, CREDHELPER_CACHE_DIR=os.path.join(work, f"miss-{next(counter)}"),
                    **extra)

    script = os.path.join(work, "hvac_read.py")
    with open(script, "w") as f:
        f.write(HVAC_SCRIPT)
    line = VALUE.encode() + b"\n"
    script_cmd = [sys.executable, script, server.address, "root"]

    # 1. requests per run, from the audit log
    def requests_of(cmd, env, expect) -> Counter:
        before = Counter(_requests(server))
        run(cmd, env, expect)
        return Counter(_requests(server)) - before

    detected = dict(helper_env)
    detected.pop("CREDHELPER_VAULT_KV_VERSION")
    detected["CREDHELPER_CACHE_DIR"] = os.path.join(work, "detected")
    requests = {
        "credhelper-vault miss, kv_version = 2": requests_of([helper], miss_env(), line),
        "credhelper-vault miss, KV version detected": requests_of([helper], detected, line),
        "minimal hvac script": requests_of(script_cmd, base, line),
        "bao kv get -field=token": requests_of([bao, "kv", "get", "-field=token", "secret/gateway"],
                                               base, VALUE.encode()),
    }

    # 2. wall time of the stages
    miss_modules = modules_of(run([sys.executable, "-c", LIST_MISS, VALUE], miss_env()))
    script_modules = modules_of(run([sys.executable, "-c", LIST_SCRIPT, *script_cmd[1:]], base))
    only_miss = [m for m in miss_modules if m not in set(script_modules)]
    importable = [m for m in miss_modules if m not in ("__main__", "sys", "builtins")]
    stages = {
        "python -c pass": ([sys.executable, "-c", "pass"], lambda: base, None),
        "python -c 'import hvac'": ([sys.executable, "-c", "import hvac"], lambda: base, None),
        "minimal hvac script": (script_cmd, lambda: base, line),
        "import every module a miss loads, nothing else": (
            [sys.executable, "-c", IMPORT_ONLY, json.dumps(importable)], lambda: base, None),
        "credhelper-vault, cache miss": ([helper], miss_env, line),
    }
    load = benchlib.load_average()
    samples: dict[str, list[float]] = {name: [] for name in stages}
    for i in range(runs + 1):  # one warm-up round
        for name, (cmd, env_for, expect) in stages.items():
            elapsed = timed(cmd, env_for(), expect)
            if i:
                samples[name].append(elapsed)
    med = {name: benchlib.median(values) * 1000 for name, values in samples.items()}
    # per-round differences (the rounds are interleaved), then their medians
    rounds = list(zip(samples["credhelper-vault, cache miss"], samples["minimal hvac script"],
                      samples["import every module a miss loads, nothing else"],
                      samples["python -c 'import hvac'"], strict=True))
    extra = benchlib.median([m - s for m, s, _, _ in rounds]) * 1000
    extra_imports = benchlib.median([i - h for _, _, i, h in rounds]) * 1000
    extra_work = benchlib.median([(m - i) - (s - h) for m, s, i, h in rounds]) * 1000
    miss_work = benchlib.median([m - i for m, _, i, _ in rounds]) * 1000
    script_work = benchlib.median([s - h for _, s, _, h in rounds]) * 1000

    # 3. import self times of the modules only a miss loads
    per_module: dict[str, list[int]] = defaultdict(list)
    top_of: dict[str, str] = {}
    script_total, miss_total = [], []
    for _ in range(runs):
        p = run([sys.executable, "-X", "importtime", helper], miss_env(), line)
        tree = import_tree(p.stderr.decode(errors="replace"))
        miss_total.append(sum(us for us, _ in tree.values()))
        for name in only_miss:
            if name in tree:
                per_module[name].append(tree[name][0])
                top_of[name] = tree[name][1]
        p = run([sys.executable, "-X", "importtime", *script_cmd[1:]], base, line)
        script_total.append(sum(us for us, _ in import_tree(p.stderr.decode(errors="replace")).values()))
    groups: dict[str, float] = defaultdict(float)
    members: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for name, values in per_module.items():
        us = benchlib.median(values)
        groups[group_of(top_of[name])] += us
        members[group_of(top_of[name])].append((us, name))

    # 4. work phases in-process
    phases_env = dict(BENCH_MODULES=json.dumps(importable))
    miss_phases: dict[str, list[float]] = defaultdict(list)
    script_phases: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        p = run([sys.executable, "-c", PHASES_MISS], miss_env(**phases_env))
        for k, v in json.loads(p.stdout.decode().strip().splitlines()[-1]).items():
            miss_phases[k].append(v * 1000)
        p = run([sys.executable, "-c", PHASES_SCRIPT, server.address, "root"], base)
        for k, v in json.loads(p.stdout).items():
            script_phases[k].append(v * 1000)
    miss_ph = {k: benchlib.median(v) for k, v in miss_phases.items()}
    script_ph = {k: benchlib.median(v) for k, v in script_phases.items()}

    # ---- report
    print(f"A `credhelper-vault` cache miss (token auth, KV v2, `kv_version = 2`) against the "
          f"minimal hvac script, on a local OpenBao dev server with a file audit device; "
          f"{runs} interleaved rounds; load average before: {load}.\n")
    print("**HTTP requests per run** (OpenBao audit log):\n")
    print("| run | requests |")
    print("|---|---|")
    for label, counts in requests.items():
        shown = ", ".join(f"{n} x {op.upper()} {path}" for (op, path), n in sorted(counts.items()))
        print(f"| {label} | {shown or 'none'} |")
    print("\n**Wall time of fresh processes** (interleaved):\n")
    print("| process | median ms | p10-p90 ms |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        print(f"| {name} | {med[name]:.1f} | {benchlib.spread_text(values)} |")
    ratio = benchlib.ratio(samples["credhelper-vault, cache miss"], samples["minimal hvac script"])
    print(f"\nMedians of the per-round differences: the miss takes **{extra:.1f} ms** more than "
          f"the script ({benchlib.ratio_text(ratio)}); **{extra_imports:.1f} ms** of that is "
          f"imports (the import-only process minus `import hvac`: {len(only_miss)} modules the "
          f"script never loads) and **{extra_work:.1f} ms** is work (the miss takes "
          f"{miss_work:.1f} ms beyond its imports, the script {script_work:.1f} ms).\n")
    print(f"**Imports only a miss makes** (`-X importtime` self time, median of {runs}; all "
          f"imports: miss {benchlib.median(miss_total) / 1000:.1f} ms, script "
          f"{benchlib.median(script_total) / 1000:.1f} ms under importtime):\n")
    print("| brought in by | ms | largest modules |")
    print("|---|---:|---|")
    for group, us in sorted(groups.items(), key=lambda kv: -kv[1]):
        top = ", ".join(f"{n} {u / 1000:.1f}" for u, n in sorted(members[group], reverse=True)[:5])
        print(f"| {group} | {us / 1000:.1f} | {top} |")
    print(f"| **total** | **{sum(groups.values()) / 1000:.1f}** | |")
    print(f"\n**Work once everything is imported** (in-process, median of {runs}; phases nest: "
          f"`fetch` holds the client and the request, `prepare` the configuration and key):\n")
    print("| phase | miss ms | script ms |")
    print("|---|---:|---:|")
    order = ["prepare", "configuration (sources, parsing, checks)", "cache key",
             "cache lookups (2)", "lock", "fetch", "hvac client", "HTTP request and answer",
             "cache entry write", "snapshot write", "fsync", "total"]
    for k in order:
        if k in miss_ph or k in script_ph:
            a = f"{miss_ph[k]:.2f}" if k in miss_ph else "-"
            b = f"{script_ph[k]:.2f}" if k in script_ph else "-"
            print(f"| {k} | {a} | {b} |")

    benchlib.write_json(args.json, {
        "runs": runs,
        "requests": {k: {f"{op} {path}": n for (op, path), n in v.items()}
                     for k, v in requests.items()},
        "stages_ms": {k: benchlib.ms(v) for k, v in samples.items()},
        "extra_ms": extra, "extra_imports_ms": extra_imports,
        "extra_work_ms": extra_work, "ratio": ratio,
        "import_groups_ms": {k: v / 1000 for k, v in groups.items()},
        "miss_phases_ms": miss_ph, "script_phases_ms": script_ph,
    })
    return 0


def _requests(server: OpenBao):
    for e in server.audit_entries():
        if e.get("type") == "request":
            r = e.get("request") or {}
            yield (r.get("operation"), r.get("path"))


if __name__ == "__main__":
    sys.exit(main())
