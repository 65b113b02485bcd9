"""One backend is one module and one console-script line (credhelper/registry.py).

The done-when test: a toy backend distribution holding one module and one entry-point line,
``credhelper-toy = "credhelper.entry:main"``, installed by pip from a wheel made here (pip
writes its ``credhelper-toy`` script), prints its credential, is served as well by
``credhelper get --provider toy``, and doctor and the ``--provider`` help list it; its
cache hit loads neither the registry nor the toy's module. No network, about a second.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import assert_failure, installed_script, leaked

from credhelper import entry, registry

REPO = Path(__file__).resolve().parent.parent
TOKEN = "canary-toy-5b1e"  # a canary: the suite's leak checks watch for it

# All a third-party backend is: this module ...
TOY_MODULE = f'''\
"""A toy backend: a setting, and a fetch that counts itself."""
import time

from credhelper.provider import Credential, Provider, Setting


class ToyProvider(Provider):
    name = "toy"
    summary = "a toy backend"
    settings = (
        Setting("token", secret=True, default="{TOKEN}"),
        Setting("count_file", "path", credential=False),
    )

    def fetch(self, request):
        if self.config.get("count_file"):
            with open(self.config["count_file"], "a") as f:
                f.write("fetch\\n")
        return Credential(self.config["token"], time.time() + 7200)
'''
# ... and this line (in its pyproject.toml: [project.scripts] credhelper-toy = "...").
TOY_ENTRY_POINTS = "[console_scripts]\ncredhelper-toy = credhelper.entry:main\n"


def _wheel(folder: Path) -> Path:
    """The toy as the wheel any build backend would make of the module and the line."""
    info = "credhelper_toy-0.1.dist-info"
    files = {
        "credhelper_toy.py": TOY_MODULE,
        f"{info}/entry_points.txt": TOY_ENTRY_POINTS,
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: credhelper-toy\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    path = folder / "credhelper_toy-0.1-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            data = text.encode()
            wheel.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        wheel.writestr(f"{info}/RECORD", "\n".join(record + [f"{info}/RECORD,,"]) + "\n")
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy installed by pip into its own prefix: (its script, its site-packages)."""
    folder = tmp_path_factory.mktemp("toy")
    prefix = folder / "prefix"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-warn-script-location", "--prefix", str(prefix), str(_wheel(folder))],
                   check=True, timeout=120)
    scheme = sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})
    script = Path(scheme["scripts"]) / ("credhelper-toy" + (".exe" if os.name == "nt" else ""))
    assert script.exists(), "pip wrote no credhelper-toy script"
    return str(script), scheme["purelib"]


@pytest.fixture
def build():
    """pyinstaller/common.py, which reads the installed metadata (with `packaging`, which
    pytest needs too)."""
    sys.path.insert(0, str(REPO / "pyinstaller"))
    try:
        import common
    finally:
        sys.path.remove(str(REPO / "pyinstaller"))
    return common


def _run(command: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run a program as the app would: from a folder that is not the checkout."""
    p = subprocess.run(command, env=env, capture_output=True, stdin=subprocess.DEVNULL,
                       cwd=env["HOME"], timeout=60)
    p.stderr = p.stderr.decode("utf-8", "replace")
    assert not leaked(p.stderr), "a secret reached stderr"
    return p


# Run a console script as its own process would, and report the modules it loaded.
PROBE = """
import atexit, json, runpy, sys
sys.argv = sys.argv[1:]
atexit.register(lambda: sys.stderr.write("MODULES=" + json.dumps(sorted(sys.modules))))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _fetches(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_toy_backend_is_one_module_and_one_line(toy, base_env, tmp_path):
    script, site = toy
    count = tmp_path / "fetches"
    env = {**base_env, "PYTHONPATH": site, "CREDHELPER_TOY_COUNT_FILE": str(count)}
    umbrella = installed_script("credhelper")

    p = _run([script], env)  # its own program: a miss, then the credential
    assert (p.returncode, p.stdout) == (0, f"{TOKEN}\n".encode()), p.stderr
    p = _run([umbrella, "get", "--provider", "toy"], env)  # the umbrella: a cache hit
    assert (p.returncode, p.stdout) == (0, f"{TOKEN}\n".encode()), p.stderr
    p = _run([script], env)
    assert p.stdout == f"{TOKEN}\n".encode() and _fetches(count) == 1

    # Its table is known like any other: a setting from the environment changes the
    # credential (and, being part of the cache key, is fetched anew).
    other = {**env, "CREDHELPER_TOY_TOKEN": "canary-toy-other"}
    assert _run([script], other).stdout == b"canary-toy-other\n" and _fetches(count) == 2


def test_doctor_status_and_help_list_the_toy(toy, base_env):
    script, site = toy
    env = {**base_env, "PYTHONPATH": site}
    umbrella = installed_script("credhelper")
    doctor = _run([umbrella, "doctor", "--json"], env)
    sections = [s.get("title") for s in json.loads(doctor.stdout)["sections"]]
    assert "provider toy" in sections, sections
    assert "== provider toy" in _run([umbrella, "doctor"], env).stdout.decode()
    assert "toy" in _run([umbrella, "get", "--help"], env).stdout.decode()
    p = _run([script, "--version"], env)
    assert p.returncode == 0 and p.stdout.decode().startswith("credhelper-toy "), p.stderr
    p = _run([script, "status"], env)
    assert p.returncode == 0, p.stderr


def test_the_toys_cache_hit_loads_neither_registry_nor_any_backend(toy, base_env, build):
    """The hit path is every backend's: none of any backend's libraries (read from the
    extras, so a new backend's are checked too), no registry, no provider module."""
    script, site = toy
    env = {**base_env, "PYTHONPATH": site}

    def imported() -> set[str]:
        """The modules a run of the toy's own script loaded (sys.modules at its exit:
        -X importtime does not show a module loaded by importlib.import_module)."""
        p = _run([sys.executable, "-c", PROBE, script], env)
        assert p.returncode == 0 and p.stdout == f"{TOKEN}\n".encode(), p.stderr
        return set(json.loads(p.stderr.split("MODULES=")[-1]))

    miss = imported()  # cold: the registry finds the toy, which fetches
    assert {"credhelper.registry", "credhelper_toy", "credhelper.provider"} <= miss
    hit = imported()
    assert "credhelper.entry" in hit and "credhelper.hotpath" in hit, hit
    _, libraries = build.libraries()
    reported = {registry.load(name).library for name in registry.backends()} - {None}
    heavy = set(libraries) | build._modules({build._canonical(d) for d in reported}) | {
        "credhelper.registry", "importlib.metadata", "credhelper_toy", "credhelper.provider",
        "credhelper.providers", "click"}
    loaded = {m for m in hit if m in heavy or m.split(".")[0] in heavy}
    assert not loaded, loaded


def test_without_its_distribution_the_toy_does_not_exist(toy, base_env):
    script, _ = toy
    assert_failure(_run([script], base_env), 2, "unknown provider 'toy'")
    p = _run([installed_script("credhelper"), "get", "--provider", "toy"], base_env)
    assert_failure(p, 2, "unknown provider 'toy'")


# ---------------------------------------------------------------- the registry itself


def test_the_scan_finds_what_importlib_metadata_finds():
    from importlib import metadata

    scripts = metadata.entry_points(group="console_scripts")
    expected = {ep.name[len("credhelper-"):] for ep in scripts
                if ep.name.startswith("credhelper-")
                and ep.value.replace(" ", "") == registry.ENTRY}
    assert expected and set(registry.scan(sys.path)) == expected


def test_every_backend_is_its_modules_provider_named_after_it():
    for name, backend in registry.backends().items():
        cls = registry.load(name)
        assert cls.name == name and cls.__module__ == backend.module, (name, cls)
        assert backend.module == f"credhelper.providers.{name}"  # credhelper's own


def test_every_backend_extra_is_in_all():
    """pip's extras are the one other place a backend appears: `all` must hold each."""
    from importlib import metadata

    extras = set(metadata.metadata("credhelper").get_all("Provides-Extra") or [])
    in_all = set()
    for text in metadata.requires("credhelper") or []:
        if 'extra == "all"' in text:
            in_all |= set(text.split("[", 1)[1].split("]", 1)[0].split(","))
    assert {name for name in registry.backends() if name in extras} <= in_all, in_all


def test_the_scan_rules(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, text in (
        (first / "alpha-1.0.dist-info",
         "[console_scripts]\ncredhelper-one = credhelper.entry:main\n"
         "credhelper-two=credhelper.entry : main [extra]\n"
         "# credhelper-comment = credhelper.entry:main\n"
         "credhelper-other = alpha.cli:main\nplain = credhelper.entry:main\n"
         "credhelper-bad/name = credhelper.entry:main\n"
         "[gui_scripts]\ncredhelper-gui = credhelper.entry:main\n"),
        (second / "Alpha-2.0.dist-info",  # the same distribution later on the path: ignored
         "[console_scripts]\ncredhelper-shadowed = credhelper.entry:main\n"),
        (second / "Beta.Thing-1.0-py3.11.egg-info",
         "[console_scripts]\ncredhelper-three = credhelper.entry:main\n"
         "credhelper-one = credhelper.entry:main\n"),  # taken by alpha already
        (second / "credhelper-9.dist-info",
         "[console_scripts]\ncredhelper-own = credhelper.entry:main\n"),
        (second / "quiet-1.0.dist-info", None),
    ):
        folder.mkdir(parents=True)
        if text is not None:
            (folder / "entry_points.txt").write_text(text)
    (tmp_path / "archive.zip").write_bytes(b"PK")
    found = registry.scan([str(tmp_path / "missing"), str(tmp_path / "archive.zip"),
                           str(first), str(second)])
    assert sorted(found) == ["one", "own", "three", "two"]
    assert found["one"].distribution == "alpha" and found["one"].module == "credhelper_one"
    assert found["three"].distribution == "beta_thing"
    assert found["own"].module == "credhelper.providers.own"


def test_a_module_without_its_provider_is_a_clear_error():
    import types

    from credhelper.errors import ConfigError
    from credhelper.provider import Provider

    module = types.ModuleType("credhelper_nothing")
    module.Provider = Provider  # the base class imported there is not a backend
    with pytest.raises(ConfigError, match="defines no provider classes with name = 'nothing'"):
        registry.provider_class(module, "nothing")


def test_the_miss_path_scan_imports_no_metadata_library(tmp_path):
    code = ("import sys; from credhelper import registry; n = registry.names(); "
            "registry.load(n[0]); print(sorted({'importlib.metadata', 'click', 'email'} "
            "& set(sys.modules)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    assert (p.returncode, p.stdout) == (0, "[]\n"), p.stderr


@pytest.mark.parametrize("argv0, name", [
    ("/usr/local/bin/credhelper-vault", "vault"),
    ("credhelper-aws", "aws"),
    (r"credhelper-azure.exe", "azure"),
    ("/opt/x/credhelper-oidc-script.py", "oidc"),
    ("credhelper-my_backend-2", "my_backend-2"),
    ("/usr/bin/credhelper", None),
    ("/usr/bin/credhelper-", None),
    ("/tmp/vault-helper", None),
    ("credhelper-../x", None),
])
def test_the_program_name_says_which_backend(argv0, name):
    assert entry.program_provider(argv0) == name


def test_a_link_under_another_name_runs_its_target(tmp_path, base_env):
    link = tmp_path / "gateway-token"
    link.symlink_to(installed_script("credhelper-keyring"))
    p = _run([str(link), "--version"], base_env)
    assert p.returncode == 0 and p.stdout.decode().startswith("credhelper-keyring "), p.stderr
    copy = tmp_path / "gateway-copy"
    copy.write_bytes(Path(installed_script("credhelper-keyring")).read_bytes())
    copy.chmod(0o755)
    assert_failure(_run([str(copy)], base_env), 2, "cannot tell the backend")


# ---------------------------------------------------------------- the binaries' contents


def test_each_binary_holds_what_pip_installs_for_its_backend(build):
    per_backend, everything = build.libraries()
    assert set(per_backend) == set(registry.backends())
    core = build._modules(build._closure("credhelper", build.CORE_EXTRAS))
    assert {"click", "keyring", "platformdirs", "fasteners"} <= core
    for name, libraries in per_backend.items():
        assert not set(libraries) & core, name  # every binary holds the core anyway
        library = registry.load(name).library  # the distribution --version reports
        wanted = build._closure("credhelper", (name,))
        if library is not None:
            assert build._canonical(library) in wanted, (name, library)
            assert build._modules({build._canonical(library)}) <= set(libraries) | core
    assert set(everything) == {lib for libs in per_backend.values() for lib in libs}
    assert build.own_libraries(build.UMBRELLA) == set(everything)
