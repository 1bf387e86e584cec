"""The man page and the shell completions, made from the argparse definitions so they never drift.

``scripts/gen-docs.py`` writes them to ``contrib/ktop.1`` and
``contrib/completion/`` (``ktop.bash``, ``_ktop`` for zsh, ``ktop.fish``);
``tests/test_docs.py`` fails when the committed files differ from what the
parsers say now.
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


def _help(a: argparse.Action) -> str:
    text = a.help or ""
    return text % {"default": a.default} if "%(" in text else text


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
            out += [".TP", names, _roff(_help(a))]
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
              ".TP", "\\fBKTOP_BPF_CACHE\\fR",
              _roff("where the build helpers keep their compiles (default /var/cache/ktop/bpf, a folder of "
                    "root's that no one else can write); off: none, every start compiles each probe"),
              ".TP", "\\fBKTOP_BUILD_TIMEOUT\\fR", _roff("seconds a probe's build may take (120)"),
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


def _shown(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.help != argparse.SUPPRESS]


_PROBE_WORDS = (*registry.PROBES, "all", "none")  # what --probes takes, as registry.parse_list


def _values(a: argparse.Action) -> tuple[str, tuple[str, ...]]:
    """What an argument's value completes to, from the sources the bash completion uses: ("words", list),
    ("probes", names for a comma-separated list), "users", "pids" (comma-separated), "files", or "" (free)."""
    from ktop.cli.ui import SORT_KEYS
    from ktop.probes.syscalls import MODES

    opts = set(a.option_strings)
    if "--probes" in opts:
        return "probes", _PROBE_WORDS
    if "--sort-key" in opts:
        return "words", SORT_KEYS
    if "--syscalls-latency" in opts:
        return "words", MODES
    if a.choices:  # --format, --table
        return "words", tuple(a.choices)
    if "--user" in opts:
        return "users", ()
    if "--pid" in opts:
        return "pids", ()
    if opts & {"--output", "--from"} or a.dest == "file":  # a.dest "file": replay's recording
        return "files", ()
    return "", ()


def _summary(p: argparse.ArgumentParser) -> str:
    """A command's description up to its first sentence's end, for the shells' command menus."""
    return (p.description or "").split(". ")[0].rstrip(".")


def zsh_completion() -> str:
    """A zsh completion function (#compdef, _arguments): every option with its help as the description,
    the values ktop knows, and a function per command."""
    from ktop.cli import COMMANDS

    def q(text: str) -> str:  # one zsh word in single quotes
        return "'" + text.replace("'", "'\\''") + "'"

    def esc(text: str, chars: str) -> str:  # _arguments takes \\ \[ \] \: literally in its fields
        return "".join("\\" + c if c in "\\" + chars else c for c in " ".join(text.split()))

    def action(a: argparse.Action) -> str:
        kind, words = _values(a)
        return {"words": f"({' '.join(words)})", "probes": f"_values -s , probe {' '.join(words)}",
                "users": "_users", "pids": "_sequence _pids", "files": "_files"}.get(kind, "")

    def specs(p: argparse.ArgumentParser) -> list[str]:
        out, pos = [], 0
        excl = {a: {o for g in p._mutually_exclusive_groups if a in g._group_actions
                    for b in g._group_actions for o in b.option_strings} for a in p._actions}
        for a in _shown(p):
            arg = f":{esc(a.metavar or a.dest, ':')}:{action(a)}" if a.nargs != 0 else ""
            if not a.option_strings:  # a positional: its place, optional (::) when nargs is ?
                pos += 1
                out.append(q(f"{pos}:{':' if a.nargs == '?' else ''}{esc(a.metavar or a.dest, ':')}:{action(a)}"))
                continue
            if isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
                ex = "(- *)"  # nothing else after --help
            elif isinstance(a, argparse._AppendAction):
                ex = "*"  # repeatable
            else:
                ex = f"({' '.join(sorted(set(a.option_strings) | excl[a]))})"
            desc = f"[{esc(_help(a), '[]:')}]" if a.help else ""
            out += [q(f"{ex}{o}{desc}{arg}") for o in a.option_strings]
        return out

    def function(name: str, lines: list[str]) -> str:
        return f"{name}() {{\n    _arguments -s -S \\\n        " + " \\\n        ".join(lines) + "\n}\n"

    parsers = _parsers()
    top = specs(parsers[0][1])
    top[top.index(q("1::interval:"))] = q("1:: :_ktop_commands")  # the first word: a command (or an interval)
    cmds = " ".join(q(f"{n}:{esc(_summary(p), ':')}") for n, p in parsers[1:])
    return (f"""#compdef ktop
# zsh completion for ktop (made by scripts/gen-docs.py from ktop's argparse definitions)

_ktop_commands() {{
    local -a commands=({cmds})
    if (( CURRENT == 2 )); then
        _describe -t commands 'ktop command' commands
    else
        _message interval
    fi
}}

""" + "\n".join(function(f"_ktop_{n}", specs(p)) for n, p in parsers[1:]) + f"""
_ktop() {{
    # ktop COMMAND ...: that command's options, with the words shifted as if it were the command
    if (( CURRENT > 2 )) && [[ " {' '.join(COMMANDS)} " == *" $words[2] "* ]]; then
        local cmd=$words[2]
        shift words
        (( CURRENT-- ))
        curcontext="${{curcontext%:*:*}}:ktop-$cmd:"
        _ktop_$cmd
        return
    fi
    _arguments -s -S \\
        """ + " \\\n        ".join(top) + """
}

# autoloaded from $fpath: complete now; sourced: register the function
if [[ $funcstack[1] == _ktop ]]; then
    _ktop "$@"
else
    compdef _ktop ktop
fi
""")


def fish_completion() -> str:
    """complete -c ktop lines: the commands, then each command's options with their help and values."""
    from ktop.cli import COMMANDS

    def q(text: str) -> str:  # a fish single-quoted string: only \\ and \' are escapes in it
        return "'" + " ".join(text.split()).replace("\\", "\\\\").replace("'", "\\'") + "'"

    def value(a: argparse.Action) -> str:
        kind, words = _values(a)
        return {"words": f" -x -a {q(' '.join(words))}", "probes": " -x -a '(__fish_complete_list , __ktop_probes)'",
                "users": " -x -a '(__fish_complete_users)'",
                "pids": " -x -a '(__fish_complete_list , __fish_complete_pids)'", "files": " -r -F"}.get(kind, " -x")

    parsers = _parsers()
    lines = ["# fish completion for ktop (made by scripts/gen-docs.py from ktop's argparse definitions)",
             "complete -c ktop -f  # no file names but where an option takes a file",
             f"function __ktop_probes; printf '%s\\n' {' '.join(_PROBE_WORDS)}; end",
             "",
             "# the commands, as the first word"]
    lines += [f"complete -c ktop -n __fish_use_subcommand -a {n} -d {q(_summary(p))}" for n, p in parsers[1:]]
    for name, p in parsers:
        # the dashboard's options until a command is seen (its interval is not a command)
        cond = f"'{'' if name else 'not '}__fish_seen_subcommand_from {name or ' '.join(COMMANDS)}'"
        lines += ["", f"# {'ktop ' + name if name else 'ktop'}"]
        for a in _shown(p):
            if not a.option_strings:
                if _values(a)[0] == "files":
                    lines.append(f"complete -c ktop -n {cond} -F")
                continue
            names = "".join(f" -s {o[1:]}" if o[1] != "-" else f" -l {o[2:]}" for o in a.option_strings)
            lines.append(f"complete -c ktop -n {cond}{names}{value(a) if a.nargs != 0 else ''}"
                         + (f" -d {q(_help(a))}" if a.help else ""))
    return "\n".join(lines) + "\n"
