"""Check a built binary holds only its backend's libraries, runs, and record its size.

    python scripts/check-binary.py dist/onedir/credhelper-vault vault

What each binary may hold comes from pyinstaller/common.py (the installed metadata), so
run it with the build environment's Python, as scripts/build-binaries does.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pyinstaller"))
from common import libraries, own_libraries  # noqa: E402


def main() -> None:
    path, name = sys.argv[1], sys.argv[2]
    own = own_libraries(name)
    _, everything = libraries()
    if os.path.isdir(path):
        executable = os.path.join(path, os.path.basename(path))
        bundled = set()
        for _, dirs, _files in os.walk(path):
            bundled.update(d.split("-")[0].lower() for d in dirs)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
        # Pure-Python modules live in the PYZ archive: ask the archive viewer too.
        listing = subprocess.run([sys.executable, "-m", "PyInstaller.utils.cliutils.archive_viewer",
                                  "--recursive", "--brief", executable], capture_output=True, text=True)
        bundled.update(line.strip().split(".")[0] for line in listing.stdout.splitlines())
    else:
        executable, size = path, os.path.getsize(path)
        listing = subprocess.run([sys.executable, "-m", "PyInstaller.utils.cliutils.archive_viewer",
                                  "--recursive", "--brief", path], capture_output=True, text=True)
        bundled = {line.strip().split(".")[0] for line in listing.stdout.splitlines()}
    if "click" not in bundled:  # the listing itself failed: the check would prove nothing
        sys.exit(f"check-binary: cannot list the contents of {executable}: {listing.stderr[-300:]}")
    foreign = sorted(lib for lib in everything if lib not in own and lib in bundled)
    if foreign:
        sys.exit(f"check-binary: {path} bundles other backends' libraries: {', '.join(foreign)}")
    version = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=60)
    if version.returncode != 0:
        sys.exit(f"check-binary: {executable} --version failed: {version.stderr.strip()}")
    print(f"| {os.path.basename(path)} | {os.path.basename(os.path.dirname(path))} | "
          f"{size / 2**20:.1f} MiB | {version.stdout.strip()} |")


if __name__ == "__main__":
    main()
