"""The man page and the bash, zsh and fish completions are what the parsers say now (scripts/gen-docs.py),
and each shell really completes with its file."""

from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from ktop.cli import COMMANDS, docs
from ktop.cli.docs import bash_completion, fish_completion, manpage, zsh_completion

ROOT = Path(__file__).resolve().parent.parent
COMPLETION = ROOT / "contrib" / "completion"


def test_committed_man_page_and_completions_match_the_parsers():
    assert (ROOT / "contrib" / "ktop.1").read_text() == manpage(), "run scripts/gen-docs.py"
    for name, make in (("ktop.bash", bash_completion), ("_ktop", zsh_completion), ("ktop.fish", fish_completion)):
        assert (COMPLETION / name).read_text() == make(), f"{name}: run scripts/gen-docs.py"


def test_zsh_and_fish_completions_name_every_option_under_its_command():
    zsh, fish = (COMPLETION / "_ktop").read_text(), (COMPLETION / "ktop.fish").read_text()
    for name, p in docs._parsers():
        func = zsh.split(f"\n_ktop{'_' + name if name else ''}() {{\n")[1].split("\n}\n")[0]
        cond = f"'__fish_seen_subcommand_from {name}'" if name else "'not __fish_seen_subcommand_from "
        lines = [ln for ln in fish.splitlines() if cond in ln]
        for a in docs._shown(p):
            for o in a.option_strings:
                assert f"{o}[" in func or f"{o}:" in func, (name, o)  # an _arguments spec: -o[help] (or -o:arg)
                flag = f" -l {o[2:]}" if o.startswith("--") else f" -s {o[1:]}"
                assert any(flag in ln for ln in lines), (name, o)
        assert not name or f"-a {name} -d " in fish, name


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


# zsh completes only inside its line editor: drive an interactive zsh -f through zpty, bind Tab to a widget
# that runs the completion system, and record what reaches compadd (matched against the word, as zsh
# would list it) and the display strings (-d: the descriptions) in files. Calls that only fill an array
# (-O, -A, -D: _describe's bookkeeping) pass through.
_ZSH_CAPTURE = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='' PS2=''; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits; builtin compadd -O __hits "$@"; print -rl -- $__hits >>'$2'
  local __i=${@[(i)-d]}; (( __i < $# )) && print -rl -- "${(@P)${@[__i+1]}}" >>'$2.d'
  builtin compadd "$@"
}'
zpty -w z '_capture() { _main_complete; print -r -- __DONE__ >>'$2'; }'
zpty -w z 'zle -C capture complete-word _capture; bindkey "^I" capture'
zpty -w -n z "$3"$'\t'
repeat 200; do [[ -e $2 ]] && grep -q __DONE__ $2 && break; sleep 0.05; done
zpty -d z
"""


def _zsh(line: str, tmp_path: Path, folder: Path = COMPLETION) -> tuple[list[str], str]:
    """zsh's candidates for ``line`` + Tab (in order, once each) and their descriptions."""
    out = tmp_path / "zsh-completion"
    for stale in (out, out.with_suffix(".d")):
        stale.unlink(missing_ok=True)
    r = subprocess.run(["zsh", "-f", "-c", _ZSH_CAPTURE, "zsh", str(folder), str(out), line],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "__DONE__" in out.read_text(), (line, r.stderr)
    words = [w for w in out.read_text().splitlines() if w and w != "__DONE__"]
    described = out.with_suffix(".d")
    return list(dict.fromkeys(words)), described.read_text() if described.exists() else ""


def _fish(line: str, script: Path = COMPLETION / "ktop.fish") -> list[str]:
    # --no-config: no fish_complete_path, so no installed ktop.fish is autoloaded next to this one
    r = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C {shlex.quote(line)}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return r.stdout.splitlines()  # each: candidate, a tab, its description


def _need(shell: str) -> None:
    if not shutil.which(shell):
        pytest.skip(f"{shell} is not installed (apt-get install {shell}; setup-host.sh test does)")


def test_zsh_file_parses_and_loads_with_compinit():
    _need("zsh")
    script = COMPLETION / "_ktop"
    r = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    # sourced after compinit it registers itself (compdef) instead of completing
    r = subprocess.run(["zsh", "-f", "-c", f"autoload -U compinit; compinit -u -D; source {script}; "
                        "print -r -- $_comps[ktop]"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "" and r.stdout.strip() == "_ktop", (r.stdout, r.stderr)


def test_zsh_completes_commands_options_and_values(tmp_path):
    _need("zsh")
    z = functools.partial(_zsh, tmp_path=tmp_path)
    assert z("ktop sn")[0] == ["snapshot"]
    assert z("ktop ")[0] == list(COMMANDS)
    words, described = z("ktop snapshot --du")
    assert words == ["--duration"] and "seconds to collect once the probes are live" in described
    assert z("ktop --sys")[0] == ["--syscalls-latency"]
    assert z("ktop --syscalls-latency o")[0] == ["on", "off"]
    assert z("ktop -s c")[0] == ["cpu", "command"]
    assert z("ktop --probes sy")[0] == ["syscalls"]
    assert z("ktop --probes spawn,b")[0] == ["bio"]  # the list goes on after a comma
    assert z("ktop snapshot --table s")[0] == ["spawns", "syscalls", "sched"]
    assert "--count" in z("ktop record --c")[0]
    assert "--count" not in z("ktop record -d 5 --c")[0]  # --duration and --count exclude each other
    assert z("ktop -u roo")[0] == ["root"]
    recording = tmp_path / "run.jsonl.gz"
    recording.touch()
    assert z(f"ktop replay {tmp_path}/run.j")[0] == ["run.jsonl.gz"]
    assert z(f"ktop record -o {tmp_path}/run.j")[0] == ["run.jsonl.gz"]
    assert z("ktop export --li")[1].startswith("--listen  -- HOST:PORT to serve on")  # the colon unescaped


def test_fish_completes_commands_options_and_values(tmp_path):
    _need("fish")
    names = lambda line: [c.split("\t")[0] for c in _fish(line)]  # noqa: E731
    assert _fish("ktop sn") == ["snapshot\tRun the collectors headless for a while and print what they saw"]
    assert sorted(names("ktop ")) == sorted(COMMANDS)
    assert names("ktop snapshot --du") == ["--duration"]
    # -d is snapshot's --duration but the dashboard's --delay: each command's own options
    assert "-d\tseconds to collect once the probes are live (default 1)" in _fish("ktop snapshot -")
    assert "-d\tdelay between refreshes" in "\n".join(_fish("ktop -"))
    assert names("ktop --sys") == ["--syscalls-latency"]
    assert sorted(names("ktop --syscalls-latency o")) == ["off", "on"]
    assert sorted(names("ktop -s c")) == ["command", "cpu"]
    assert names("ktop --probes sy") == ["syscalls"]
    assert names("ktop --probes spawn,b") == ["spawn,bio"]
    assert sorted(names("ktop replay --table s")) == ["sched", "spawns", "syscalls"]
    assert names("ktop -u roo") == ["root"]
    assert names("ktop replay --speed ") == []  # a number: no file names
    (tmp_path / "run.jsonl.gz").touch()
    assert names(f"ktop replay {tmp_path}/run.j") == [f"{tmp_path}/run.jsonl.gz"]
    assert names(f"ktop record -o {tmp_path}/run.j") == [f"{tmp_path}/run.jsonl.gz"]
    assert "--listen\tHOST:PORT to serve on" in "\n".join(_fish("ktop export --li"))


def test_help_text_with_shell_syntax_reaches_zsh_and_fish_intact(tmp_path, monkeypatch):
    """Brackets, colons, quotes, backslashes and $ in a help text: escaped for each shell, shown as written."""
    need = [s for s in ("zsh", "fish") if shutil.which(s)]
    if not need:
        pytest.skip("neither zsh nor fish is installed (apt-get install zsh fish)")
    help_text = "a [bracketed] value: 'quoted' \\ back $HOME `x` \"dq\""
    parsers = docs._parsers()
    parsers[0][1].add_argument("--weird", metavar="W:X", help=help_text)
    monkeypatch.setattr(docs, "_parsers", lambda: parsers)
    (tmp_path / "_ktop").write_text(zsh_completion())
    (tmp_path / "ktop.fish").write_text(fish_completion())
    if "zsh" in need:
        assert _zsh("ktop --wei", tmp_path, tmp_path)[1].strip() == f"--weird  -- {help_text}"
    if "fish" in need:
        assert _fish("ktop --wei", tmp_path / "ktop.fish") == [f"--weird\t{help_text}"]
