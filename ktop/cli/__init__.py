"""Command line: ``ktop [options] [interval [count]]`` and its subcommands.

BCC's conventions: positional ``interval`` and ``count``, ``-p PID``,
examples in ``--help``, a hidden ``--ebpf`` that prints the programs. Each
command is a module of this package with ``parser()`` and ``run(args)``;
:data:`COMMANDS` is the whole dispatch.
"""

from __future__ import annotations

import gc
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

# The cyclic GC's first generation runs every 10,000 new container objects, not 700. A tick makes a
# few thousand (rows, tuples, strips) and holds the tables of thousands of processes young, which
# each young collection walks: at 700 the collector thread spent 0.47 ms a second in it, idle (one
# collection every 1.5 s, 0.6 ms each); at 10,000, 0.09 ms. ktop's data has few cycles to wait for.
GC_YOUNG = 10_000


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
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
