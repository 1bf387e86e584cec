"""The man page and the shell completion, made from the argparse definitions so they never drift.

``scripts/gen-docs.py`` writes them to ``contrib/ktop.1`` and
``contrib/completion/ktop.bash``; ``tests/test_docs.py`` fails when the
committed files differ from what the parsers say now.
"""

from __future__ import annotations

import argparse
import importlib

from ktop import __version__, registry


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from ktop.cli import COMMANDS

    out = [("", importlib.import_module("ktop.cli.ui").parser())]
    for name, module in COMMANDS.items():
        out.append((name, importlib.import_module(f"ktop.cli.{module}").parser()))
    return out


def _roff(text: str) -> str:
    """Plain text as roff: backslashes and leading dots or quotes escaped."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + ln) if ln[:1] in (".", "'") else ln for ln in text.splitlines())


def _options(p: argparse.ArgumentParser) -> list[str]:
    out = []
    for group in p._action_groups:  # argparse keeps groups only here
        acts = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
        if not acts:
            continue
        title = group.title if group.title not in ("options", "optional arguments") else "options"
        out.append(f".SS {_roff(title)}")
        for a in acts:
            if a.option_strings:
                metavar = f" {a.metavar or a.dest.upper()}" if a.nargs != 0 else ""
                names = ", ".join(f"\\fB{_roff(o)}\\fR{_roff(metavar)}" for o in a.option_strings)
            else:
                names = f"\\fI{_roff(a.metavar or a.dest)}\\fR"
            help_text = (a.help or "") % {"default": a.default} if "%(" in (a.help or "") else (a.help or "")
            out += [".TP", names, _roff(help_text)]
    return out


def manpage() -> str:
    lines = [f'.TH KTOP 1 "" "ktop {__version__}" "User Commands"', ".SH NAME",
             "ktop \\- a top\\-like dashboard of what the kernel sees, fed by eBPF probes", ".SH SYNOPSIS"]
    lines.append(".nf")
    for name, p in _parsers():
        pos = [a.metavar or a.dest for a in p._actions if not a.option_strings]
        pos = [f"[{x}]" if a.nargs == "?" else x for x, a in zip(pos, [a for a in p._actions if not a.option_strings])]
        lines.append(_roff(" ".join(["ktop"] + ([name] if name else []) + ["[options]"] + pos)))
    lines.append(".fi")
    lines += [".SH DESCRIPTION", _roff(
        "ktop shows, live, what the kernel sees: every process spawned, block I/O latency per disk, "
        "function call counts, system calls with their errors and latency, and a process table. "
        "It needs root for its probes (BCC, built in helper processes); without root it shows the "
        "process table and says why each probe cannot run."), ".SH PROBES"]
    for info in registry.PROBES.values():
        lines += [".TP", f"\\fB{info.name}\\fR" + (" (default)" if info.default else ""), _roff(info.summary)]
    for name, p in _parsers():
        lines += [f".SH {'OPTIONS' if not name else 'KTOP ' + name.upper()}"]
        if name and p.description:
            lines += [_roff(p.description)]
        lines += _options(p)
        if p.epilog:
            lines += [".PP", ".nf", _roff(p.epilog.strip()), ".fi"]
    lines += [".SH ENVIRONMENT", ".TP", "\\fBKTOP_SYSCALLS_LATENCY\\fR",
              _roff("the default of --syscalls-latency (sampled, on, off)"),
              ".TP", "\\fBKTOP_SCREENSHOT_DIR\\fR", _roff("where F12 writes its SVG screenshots"),
              ".TP", "\\fBBCC_PROBE_LIMIT\\fR", _roff("the most kprobes and uprobes the funcs probe attaches (1000)"),
              ".SH EXIT STATUS", _roff("0 done; 1 ktop doctor found a default probe that cannot run; 2 bad usage "
                                       "(one line on stderr); 74 a recording's write failed; 128+N stopped by "
                                       "signal N."),
              ".SH SEE ALSO", "htop(1), top(1), execsnoop\\-bpfcc(8), biolatency\\-bpfcc(8), funccount\\-bpfcc(8), "
              "syscount\\-bpfcc(8), bpftrace(8)"]
    return "\n".join(lines) + "\n"


def bash_completion() -> str:
    """A bash completion function: each command's options, and the values ktop knows (--probes,
    -s, --syscalls-latency, --theme is left to the user)."""
    cases = []
    for name, p in _parsers():
        opts = sorted({o for a in p._actions if a.help != argparse.SUPPRESS for o in a.option_strings})
        cases.append(f'        {name or "ktop"}) opts="{" ".join(opts)}" ;;')
    from ktop.cli import COMMANDS
    from ktop.cli.ui import SORT_KEYS
    from ktop.probes.syscalls import MODES

    probes = ",".join(registry.PROBES)
    return f"""# bash completion for ktop (made by scripts/gen-docs.py from ktop's argparse definitions)
_ktop() {{
    local cur prev cmd opts
    cur=${{COMP_WORDS[COMP_CWORD]}}
    prev=${{COMP_WORDS[COMP_CWORD-1]}}
    cmd=ktop
    if [[ ${{COMP_CWORD}} -gt 1 && " {' '.join(COMMANDS)} " == *" ${{COMP_WORDS[1]}} "* ]]; then
        cmd=${{COMP_WORDS[1]}}
    fi
    case "$prev" in
        --probes) COMPREPLY=($(compgen -W "{' '.join(registry.PROBES)} all none {probes}" -- "$cur")); return ;;
        -s|--sort-key) COMPREPLY=($(compgen -W "{' '.join(SORT_KEYS)}" -- "$cur")); return ;;
        --syscalls-latency) COMPREPLY=($(compgen -W "{' '.join(MODES)}" -- "$cur")); return ;;
        -u|--user) COMPREPLY=($(compgen -u -- "$cur")); return ;;
        -p|--pid) COMPREPLY=($(compgen -W "$(ls /proc | grep -E '^[0-9]+$')" -- "$cur")); return ;;
        -o|--output|--from|replay) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    case "$cmd" in
{chr(10).join(cases)}
    esac
    if [[ ${{COMP_CWORD}} -eq 1 && "$cur" != -* ]]; then
        COMPREPLY=($(compgen -W "{' '.join(COMMANDS)}" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
}}
complete -F _ktop ktop
"""
