"""The wheel and the sdist: each built, installed into a fresh venv, run from outside the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from real.realutil import spawn_unavailable_reason

import ktop

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture(scope="module", params=["wheel", "sdist"])
def installed(request, tmp_path_factory):
    """(venv dir, work dir outside the tree) with the freshly built wheel or sdist installed."""
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is missing (the venv must see the system's bcc)")
    kind = request.param
    tmp = tmp_path_factory.mktemp(kind)
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "build", f"--{kind}", "--outdir", str(dist)], cwd=ROOT,
                   env=_env(), check=True, capture_output=True, timeout=300)
    (built,) = dist.glob("ktop-*.whl" if kind == "wheel" else "ktop-*.tar.gz")
    assert built.name.startswith(f"ktop-{ktop.__version__}")
    venv = tmp / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   env=_env(), timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(built)], check=True,
                   env=_env(), capture_output=True, timeout=600)
    work = tmp / "elsewhere"
    work.mkdir()
    return venv, work


def _run(installed, *args, timeout=60):
    venv, work = installed
    return subprocess.run([str(venv / "bin" / "ktop"), *args], cwd=work, env=_env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_imports_the_installed_copy(installed):
    venv, work = installed
    r = subprocess.run([str(venv / "bin" / "python"), "-c",
                        "import ktop, ktop.resources as r; print(ktop.__file__); print(r.bpf_dir()); "
                        "print(r.themes_dir())"],
                       cwd=work, env=_env(), capture_output=True, text=True, check=True)
    pkg, bpf, themes = r.stdout.split()
    assert pkg.startswith(str(venv)) and "/site-packages/ktop/" in pkg
    assert bpf.startswith(str(venv)) and bpf.endswith("site-packages/ktop/_data/bpf")
    assert themes.startswith(str(venv)) and themes.endswith("site-packages/ktop/_data/themes")
    assert str(ROOT) not in pkg


def test_version(installed):
    r = _run(installed, "--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"ktop {ktop.__version__}"


def test_ebpf_from_the_installed_package(installed):
    venv, _ = installed
    r = _run(installed, "--ebpf")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("// ===== probe spawn: ")
    path = Path(first.split(": ", 1)[1])
    assert str(path).startswith(str(venv))
    assert "site-packages/ktop/_data/bpf/spawn.bpf.c" in str(path)
    assert path.is_file()
    assert path.read_text() == (ROOT / "bpf" / "spawn.bpf.c").read_text()
    assert (path.parent / "ktop.h").is_file()  # the include the C source needs
    assert f"-I{path.parent}" in r.stdout.splitlines()[1]
    assert "TRACEPOINT_PROBE(sched, sched_process_exec)" in r.stdout


def test_snapshot_from_the_installed_package(installed):
    """As root the installed copy compiles its packaged C; otherwise it says it needs root."""
    r = _run(installed, "snapshot", "--duration", "0.5", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["processes"]
    reason = spawn_unavailable_reason()
    expected = "live" if reason is None else ("needs-root" if os.geteuid() else None)
    if expected:
        assert doc["probes"]["spawn"]["status"] == expected, doc["probes"]


def test_doctor_from_the_installed_package(installed):
    """`ktop doctor` runs from the installed copy and says what this machine can trace."""
    venv, _ = installed
    r = _run(installed, "doctor")
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stdout.startswith(f"ktop {ktop.__version__} doctor: kernel "), r.stdout
    assert f"{venv}/bin/python3 -m ktop.probes.helper compiles each probe" in r.stdout  # its own copy
    if os.geteuid() == 0:
        assert "[ok  ] bcc " in r.stdout and "[ok  ] build helpers" in r.stdout, r.stdout
    assert r.returncode in (0, 1), (r.returncode, r.stdout, r.stderr)


def test_sdist_carries_what_make_install_and_make_test_need(tmp_path):
    """The sdist is a tree a distribution can build from: the Makefile's targets, the set-up
    script, the man page, completions and unit, the C sources, the tests and their CI entry."""
    import tarfile

    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path)], cwd=ROOT, env=_env(),
                   check=True, capture_output=True, timeout=300)
    (sdist,) = tmp_path.glob("ktop-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "src")  # our own archive (Python 3.11.2 has no extraction filter)
    (top,) = (tmp_path / "src").iterdir()
    for name in ("Makefile", "scripts/setup-host.sh", "scripts/test-vm.sh", "contrib/ktop.1",
                 "contrib/completion/ktop.bash", "contrib/completion/_ktop", "contrib/completion/ktop.fish",
                 "contrib/ktop-export.service", "bpf/ktop.h", "ktop/schemas/snapshot.schema.json", "LICENSE",
                 "README.md", ".ci/run", "docs/testing-vm.md"):
        assert (top / name).is_file(), name
    for target in ("files", "install", "test"):
        r = subprocess.run(["make", "-n", "-C", str(top), target, "DESTDIR=" + str(tmp_path / "dest")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (target, r.stderr)
