"""Shared build definition for every credhelper binary (used by the *.spec files).

Each binary bundles the core, click, keyring (for ``cache = "keyring"``) and its own
backend's library only: the other backends' libraries are excluded explicitly, and
``scripts/build-binaries`` checks the result. Startup matters (the app runs the helper on
every refresh), so PyInstaller runtime hooks that only serve features credhelper does not
use are left out, each with the reason below.
"""

import os

# What each backend needs beyond the core, and what every other binary must not hold.
BACKEND_LIBRARIES = {
    "keyring": [],
    "vault": ["hvac", "requests"],
    "aws": ["boto3", "botocore", "s3transfer"],
    "azure": ["msal", "msal_extensions", "requests", "jwt"],
    "oidc": ["authlib", "requests"],
}
# The distribution whose version --version reports (its metadata must be bundled).
DISTRIBUTION = {"keyring": "keyring", "vault": "hvac", "aws": "boto3", "azure": "msal",
                "oidc": "authlib"}
ALL_BACKEND_LIBRARIES = sorted({lib for libs in BACKEND_LIBRARIES.values() for lib in libs})
NEVER = ["tkinter", "unittest", "pydoc", "test", "lib2to3", "pytest", "setuptools", "pip"]

# Runtime hooks run at every start. These patch features credhelper never uses:
UNUSED_RUNTIME_HOOKS = {
    "pyi_rth_inspect",  # inspect.getsource() of frozen code (imports inspect + zipfile at start)
    "pyi_rth_pkgutil",  # pkgutil.iter_modules() over the archive; entry points do not need it
    "pyi_rth_multiprocessing",  # credhelper never starts worker processes
    "pyi_rth_setuptools",  # no setuptools at run time
}


def build(spec_globals, provider):
    """Define the Analysis/EXE/COLLECT of one binary; provider None is the umbrella."""
    from PyInstaller.utils.hooks import copy_metadata

    Analysis, PYZ, EXE, COLLECT = (spec_globals[n] for n in ("Analysis", "PYZ", "EXE", "COLLECT"))
    workpath = spec_globals["workpath"]
    name = "credhelper" if provider is None else f"credhelper-{provider}"
    function = "credhelper" if provider is None else provider
    layout = os.environ.get("CREDHELPER_LAYOUT", "onedir")

    os.makedirs(workpath, exist_ok=True)
    entry = os.path.join(workpath, f"{name.replace('-', '_')}_main.py")
    with open(entry, "w") as f:
        f.write(f"from credhelper.entry import {function}\n\n{function}()\n")
    with open(os.path.join(workpath, "credhelper_buildinfo.py"), "w") as f:
        f.write(f"COMMIT = {os.environ.get('CREDHELPER_BUILD_COMMIT', 'unknown')!r}\n"
                f"LAYOUT = {layout!r}\n")

    providers = list(BACKEND_LIBRARIES) if provider is None else [provider]
    own = {lib for p in providers for lib in BACKEND_LIBRARIES[p]}
    a = Analysis(
        [entry],
        pathex=[workpath],
        hiddenimports=["credhelper_buildinfo"] + [f"credhelper.providers.{p}" for p in providers],
        excludes=NEVER + [lib for lib in ALL_BACKEND_LIBRARIES if lib not in own],
        datas=[d for p in providers for d in copy_metadata(DISTRIBUTION[p])],
        noarchive=False,
    )
    a.scripts = [s for s in a.scripts if s[0] not in UNUSED_RUNTIME_HOOKS]
    pyz = PYZ(a.pure)
    if layout == "onefile":
        EXE(pyz, a.scripts, a.binaries, a.datas, [], name=name, console=True, strip=False,
            upx=False, runtime_tmpdir=None)
    else:
        exe = EXE(pyz, a.scripts, [], exclude_binaries=True, name=name, console=True,
                  strip=False, upx=False)
        COLLECT(exe, a.binaries, a.datas, name=name, strip=False, upx=False)
