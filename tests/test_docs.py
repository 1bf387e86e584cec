"""The man page and the bash completion are what the parsers say now (scripts/gen-docs.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ktop.cli.docs import bash_completion, manpage

ROOT = Path(__file__).resolve().parent.parent


def test_committed_man_page_and_completion_match_the_parsers():
    assert (ROOT / "contrib" / "ktop.1").read_text() == manpage(), "run scripts/gen-docs.py"
    assert (ROOT / "contrib" / "completion" / "ktop.bash").read_text() == bash_completion(), \
        "run scripts/gen-docs.py"


def test_man_page_renders_without_warnings_and_names_every_option():
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    r = subprocess.run(["groff", "-man", "-ww", "-Tutf8", str(ROOT / "contrib" / "ktop.1")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = re.sub(r".\x08", "", r.stdout)  # groff's overstrike (bold, underline), as col -b removes it
    for opt in ("--syscalls-latency", "--exec-failures", "--disk", "--func", "--readonly", "--sort-key",
                "--listen", "--speed", "--no-start", "KTOP_SYSCALLS_LATENCY"):
        assert opt in text, opt


def _complete(*words: str) -> list[str]:
    script = (f"source {ROOT / 'contrib' / 'completion' / 'ktop.bash'}; COMP_WORDS=({' '.join(words)}); "
              f"COMP_CWORD={len(words) - 1}; _ktop; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_bash_completes_commands_options_and_values():
    assert _complete("ktop", "sn") == ["snapshot"]
    assert "--duration" in _complete("ktop", "snapshot", "--du")
    assert _complete("ktop", "--sys") == ["--syscalls-latency"]
    assert _complete("ktop", "--syscalls-latency", "o") == ["on", "off"]
    assert _complete("ktop", "-s", "c") == ["cpu", "command"]
    assert "syscalls" in _complete("ktop", "--probes", "sy")
