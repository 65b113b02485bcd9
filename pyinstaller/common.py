"""Shared build definition of every credhelper binary (used by credhelper.spec), and what
each binary may hold (used by scripts/check-binary.py and scripts/build-binaries).

Nothing here lists the backends or their libraries: both are read from the metadata
installed in the build environment. The backends are credhelper/registry.py's (one
``credhelper-NAME`` console script each); a backend's libraries are the import names of
every distribution ``pip install credhelper[NAME]`` installs (the extra named after it, a
plugin distribution's own requirements), less the core's: the base dependencies and
keyring (every binary holds keyring, for ``cache = "keyring"``). Each binary bundles the
core and its own backend's libraries only: the other backends' are excluded explicitly,
and check-binary.py fails a binary that holds one. (A backend whose extra requires other
backends' extras, the chain's, holds those backends too: ``bundled_backends``.)

Startup matters (the app runs the helper on every refresh), so PyInstaller runtime hooks
that only serve features credhelper does not use are left out, each with the reason below.

    python pyinstaller/common.py names        # the backends, one a line
    python pyinstaller/common.py libraries    # each backend's libraries
"""

import functools
import os
import sys

UMBRELLA = "credhelper"
CORE_EXTRAS = ("keyring",)  # in every binary: the keyring cache needs it
NEVER = ["tkinter", "unittest", "pydoc", "test", "lib2to3", "pytest", "setuptools", "pip"]

# Runtime hooks run at every start. These patch features credhelper never uses:
UNUSED_RUNTIME_HOOKS = {
    "pyi_rth_inspect",  # inspect.getsource() of frozen code (imports inspect + zipfile at start)
    "pyi_rth_pkgutil",  # pkgutil.iter_modules() over the archive; entry points do not need it
    "pyi_rth_multiprocessing",  # credhelper never starts worker processes
    "pyi_rth_setuptools",  # no setuptools at run time
}


def backends():
    """name -> credhelper.registry.Backend, from the installed metadata."""
    from credhelper import registry

    found = registry.backends()
    if not found:
        sys.exit("pyinstaller/common.py: no backend is installed (pip install '.[all]' first)")
    return found


def _canonical(name):
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def _closure(distribution, extras=()):
    """Canonical names of ``distribution`` and of everything it requires with ``extras``,
    as pip would install them on this platform (requirements not installed are skipped)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    found, todo = set(), [(distribution, frozenset(extras))]
    seen = set()
    while todo:
        name, wanted = todo.pop()
        if (_canonical(name), wanted) in seen:
            continue
        seen.add((_canonical(name), wanted))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        found.add(_canonical(name))
        for text in requires:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": extra})
                                         for extra in (wanted or {""})):
                todo.append((req.name, frozenset(req.extras)))
    return found


@functools.cache
def _import_names():
    """Canonical distribution name -> its top-level import names."""
    from importlib import metadata

    names = {}
    for module, distributions in metadata.packages_distributions().items():
        for distribution in distributions:
            names.setdefault(_canonical(distribution), set()).add(module)
    return names


def _modules(distributions):
    return {module for d in distributions for module in _import_names().get(d, ())}


@functools.cache
def libraries():
    """(each backend's own libraries, all of them), as top-level import names."""
    own_distribution = _canonical("credhelper")
    core = _closure("credhelper", CORE_EXTRAS)
    per_backend = {}
    for name, backend in sorted(backends().items()):
        if _canonical(backend.distribution) == own_distribution:  # the extra NAME
            needs = _closure("credhelper", (name,))
        else:  # a plugin distribution: itself and what it requires
            needs = _closure(backend.distribution)
        per_backend[name] = sorted(_modules(needs - core) - _modules(core))
    return per_backend, sorted({lib for libs in per_backend.values() for lib in libs})


@functools.cache
def bundled_backends(name):
    """The backends whose provider modules the binary of backend NAME holds: NAME, and
    every backend whose extra NAME's own extra pulls in (the chain's, credhelper[chain],
    requires credhelper[keyring,vault,...]: its binary runs any of them)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    found = backends()
    if _canonical(found[name].distribution) != _canonical("credhelper"):
        return [name]  # a plugin distribution: its own backend
    wanted, todo = {name}, [name]
    while todo:
        extra = todo.pop()
        for text in metadata.requires("credhelper") or []:
            req = Requirement(text)
            if (_canonical(req.name) == _canonical("credhelper") and req.marker is not None
                    and req.marker.evaluate({"extra": extra})):
                todo += [e for e in req.extras if e not in wanted]
                wanted |= set(req.extras)
    return sorted(n for n in wanted if n in found)


def own_libraries(binary):
    """What the binary of backend NAME (or of the umbrella, ``credhelper``) may hold."""
    per_backend, everything = libraries()
    return set(everything) if binary == UMBRELLA else set(per_backend.get(binary, ()))


def build(spec_globals, provider):
    """Define the Analysis/EXE/COLLECT of one binary; provider None is the umbrella."""
    from PyInstaller.utils.hooks import copy_metadata

    from credhelper import registry

    Analysis, PYZ, EXE, COLLECT = (spec_globals[n] for n in ("Analysis", "PYZ", "EXE", "COLLECT"))
    workpath = spec_globals["workpath"]
    found = backends()
    if provider is not None and provider not in found:
        sys.exit(f"pyinstaller/common.py: no backend {provider!r}; installed: {', '.join(found)}")
    name = UMBRELLA if provider is None else f"credhelper-{provider}"
    layout = os.environ.get("CREDHELPER_LAYOUT", "onedir")

    os.makedirs(workpath, exist_ok=True)
    entry = os.path.join(workpath, f"{name.replace('-', '_')}_main.py")
    with open(entry, "w") as f:
        if provider is None:
            f.write("from credhelper.entry import credhelper\n\ncredhelper()\n")
        else:  # the binary knows its backend, whatever its file is renamed to
            f.write(f"from credhelper.entry import main\n\nmain({provider!r})\n")
    with open(os.path.join(workpath, "credhelper_buildinfo.py"), "w") as f:
        f.write(f"COMMIT = {os.environ.get('CREDHELPER_BUILD_COMMIT', 'unknown')!r}\n"
                f"LAYOUT = {layout!r}\n")

    providers = sorted(found) if provider is None else bundled_backends(provider)
    # The registry reads the backends from credhelper's entry_points.txt (and a plugin's),
    # and --version reads each backend library's version: bundle that metadata.
    metadata = {"credhelper"} | {found[p].distribution for p in providers}
    metadata |= {registry.load(p).library for p in providers if registry.load(p).library}
    _, everything = libraries()
    own = own_libraries(UMBRELLA if provider is None else provider)
    a = Analysis(
        [entry],
        pathex=[workpath],
        hiddenimports=["credhelper_buildinfo"] + [found[p].module for p in providers],
        excludes=NEVER + [lib for lib in everything if lib not in own],
        datas=[d for dist in sorted(metadata) for d in copy_metadata(dist)],
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


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "names"
    if what == "names":
        print("\n".join(sorted(backends())))
    elif what == "libraries":
        for backend, libs in libraries()[0].items():
            print(f"{backend}: {' '.join(libs) or '(the core only)'}")
    else:
        sys.exit("usage: python pyinstaller/common.py [names|libraries]")
