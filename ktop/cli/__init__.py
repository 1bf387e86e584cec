"""Command line: ``ktop [options] [interval [count]]`` and its subcommands.

BCC's conventions: positional ``interval`` and ``count``, ``-p PID``,
examples in ``--help``, a hidden ``--ebpf`` that prints the programs. Each
command is a module of this package with ``parser()`` and ``run(args)``;
:data:`COMMANDS` is the whole dispatch.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional

from ktop.cli.common import UsageError, print_ebpf, probe_names

COMMANDS = {  # subcommand -> its module (ktop/cli/<module>.py)
    "snapshot": "snapshot",
    "doctor": "doctor",
    "record": "record",
    "replay": "replay",
    "export": "export",
    "profile": "profile",
}
SUBCOMMANDS = tuple(COMMANDS)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv[0] if argv and argv[0] in COMMANDS else None
    try:
        if not name and argv and argv[0][:1].isalpha() and not _number(argv[0]):  # a word, not an interval
            raise UsageError(f"unknown command {argv[0]!r} (commands: {', '.join(COMMANDS)}; "
                             "or ktop [options] [interval [count]])")
        command = importlib.import_module(f"ktop.cli.{COMMANDS[name] if name else 'ui'}")
        args = command.parser().parse_args(argv[1:] if name else argv)
        if getattr(args, "ebpf", False):
            return print_ebpf(probe_names(args), args.pids)
        return command.run(args)
    except UsageError as exc:
        print(f"ktop: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
