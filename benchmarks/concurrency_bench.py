"""Fifty concurrent cold runs of credhelper-vault: how many backend fetches they make.

    .venv/bin/python benchmarks/concurrency_bench.py [--runs 50] [--binary PATH]... [--json FILE]

Starts an OpenBao dev server with a file audit device, enables AppRole (a role whose
policy reads ``secret/data/*``), writes a KV v2 secret, and starts ``--runs`` processes of
the installed ``credhelper-vault`` at once, all with the same configuration and an empty
shared cache directory: nothing cached, no saved login. Each must print the secret; the
audit log then says how many KV reads and AppRole logins reached the server. The target
is exactly 1 of each (one run takes the lock and fetches; the others wait and read its
cache entry). Each ``--binary`` gets the same test with its own secret and cache
directory. Prints a markdown table; exits 1 when a count is not 1 or a run failed.
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

from openbao import OpenBao  # noqa: E402

POLICY = 'path "secret/data/*" { capabilities = ["read"] }\n'


def helper_path() -> str:
    return benchlib.installed_script("credhelper-vault")


def api(server: OpenBao, method: str, path: str, **body) -> dict:
    response = server.client().adapter.request(method, f"/v1/{path}", json=body or None,
                                                raise_exception=False)
    if response.status_code >= 400:
        raise SystemExit(f"OpenBao refused {method} {path}: {response.status_code} {response.text}")
    return response.json() if response.status_code == 200 and response.text else {}


def burst(cmd: list[str], env: dict, count: int) -> tuple[list, float]:
    """Start ``count`` processes at once; (exit code, stdout, stderr) of each, wall time."""
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL) for _ in range(count)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        results.append((p.returncode, out, err))
    return results, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="concurrent processes (default 50)")
    parser.add_argument("--binary", action="append", default=[],
                        help="a built credhelper-vault binary to test too")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    helpers = {"credhelper-vault (source install)": helper_path()}
    for path in args.binary:
        version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
        layout = "one-file" if "onefile" in version else "one-folder"
        helpers[f"credhelper-vault (binary, {layout})"] = path

    work = tempfile.mkdtemp(prefix="concurrency-bench-")
    server = OpenBao(os.path.join(work, "bao"), audit=True).start()
    rows, failed = [], False
    try:
        api(server, "POST", "sys/policies/acl/gateway-read", policy=POLICY)
        api(server, "POST", "sys/auth/approle", type="approle")
        api(server, "POST", "auth/approle/role/gateway", token_policies="gateway-read",
            token_ttl="1h", token_max_ttl="4h")
        role_id = api(server, "GET", "auth/approle/role/gateway/role-id")["data"]["role_id"]
        secret_id = api(server, "POST", "auth/approle/role/gateway/secret-id")["data"]["secret_id"]
        secret_id_file = os.path.join(work, "secret-id")
        fd = os.open(secret_id_file, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, secret_id.encode() + b"\n")
        os.close(fd)
        home = os.path.join(work, "home")
        os.makedirs(home)
        load = benchlib.load_average()
        for n, (label, path) in enumerate(helpers.items()):
            name, value = f"gateway-{n}", f"concurrency-token-{n}-{os.urandom(8).hex()}"
            api(server, "POST", f"secret/data/{name}", data={"token": value})
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
                "XDG_CONFIG_HOME": os.path.join(home, ".config"),
                "CREDHELPER_CACHE_DIR": os.path.join(work, f"cache-{n}"),
                "CLAUDE_HELPER_CONTEXT": "background", "VAULT_ADDR": server.address,
                "CREDHELPER_VAULT_AUTH": "approle", "CREDHELPER_VAULT_ROLE_ID": role_id,
                "CREDHELPER_VAULT_SECRET_ID_FILE": secret_id_file,
                "CREDHELPER_VAULT_SECRET": f"secret/{name}", "CREDHELPER_VAULT_FIELD": "token",
                "CREDHELPER_DEFAULTS_TIMEOUT": "120",
            }
            logins_before = server.count_requests("auth/approle/login")
            results, wall = burst([path], env, args.runs)
            ok = sum(1 for code, out, _ in results if code == 0 and out == (value + "\n").encode())
            reads = server.count_requests(f"secret/data/{name}", "read")
            logins = server.count_requests("auth/approle/login") - logins_before
            problems = sorted({err.decode(errors="replace").strip().splitlines()[-1]
                               for code, _, err in results if code != 0 and err.strip()})
            row = {"label": label, "runs": args.runs, "ok": ok, "reads": reads, "logins": logins,
                   "wall_s": wall, "problems": problems[:3]}
            failed |= reads != 1 or logins != 1 or ok != args.runs
            rows.append(row)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{args.runs} concurrent cold runs (empty shared cache, no saved login, AppRole auth) "
          f"against a local OpenBao dev server with a file audit device; counts from its audit "
          f"log; load average before: {load}.\n")
    print("| helper | runs that printed the secret | KV reads (audit log) | AppRole logins "
          "(audit log) | target | all done in |")
    print("|---|---:|---:|---:|---|---:|")
    for row in rows:
        met = row["reads"] == 1 and row["logins"] == 1 and row["ok"] == row["runs"]
        print(f"| {row['label']} | {row['ok']} of {row['runs']} | {row['reads']} | {row['logins']} "
              f"| exactly 1 each: {'met' if met else 'MISSED'} | {row['wall_s']:.1f} s |")
    for row in rows:
        for problem in row["problems"]:
            print(f"\n{row['label']}: a run failed: {problem}", file=sys.stderr)
    benchlib.write_json(args.json, {"rows": rows})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
