"""The README's test command on a stock Debian bookworm, whose nodejs is 18: the OpenID
provider of the OIDC tests needs Node 20, which scripts/ensure-node then installs from
the npm registry. A stand-in `node` reporting v18 plays the stock package."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ensure_node(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "scripts" / "ensure-node")], capture_output=True,
                          text=True, env={**os.environ, "PATH": path}, timeout=300)


def test_node_18_gets_node_20_from_npm(tmp_path):
    old = tmp_path / "bin"
    old.mkdir()
    real = shutil.which("node")  # npm itself runs on the stand-in: it must still work
    (old / "node").write_text(f'#!/bin/sh\n[ "$1" = --version ] && exec echo v18.19.0\n'
                              f'exec {real} "$@"\n')
    (old / "node").chmod(0o755)
    done = ensure_node(f"{old}{os.pathsep}{os.environ['PATH']}")
    assert done.returncode == 0, done.stderr
    folder = done.stdout.strip()
    assert folder.endswith("tests/oidc/.node/node_modules/.bin")
    version = subprocess.run([os.path.join(folder, "node"), "--version"], capture_output=True,
                             text=True, check=True).stdout
    assert int(version.lstrip("v").split(".")[0]) >= 20


def test_a_new_enough_node_is_left_alone(tmp_path):
    new = tmp_path / "bin"
    new.mkdir()
    (new / "node").write_text("#!/bin/sh\necho v22.3.0\n")
    (new / "node").chmod(0o755)
    done = ensure_node(f"{new}{os.pathsep}{os.environ['PATH']}")
    assert done.returncode == 0 and done.stdout == "", (done.stdout, done.stderr)
