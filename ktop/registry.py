"""The probes ktop knows, by their one short name: the single plug-in point.

A probe is four files and one :class:`ProbeInfo` here:

- ``bpf/<name>.bpf.c``: the program, built in a helper process;
- ``ktop/probes/<name>.py``: its collector (a ``ProbeWorker``), which hands
  over one frozen sample dataclass of ``ktop/snapshot.py`` per tick;
- ``ktop/model/<name>.py``: its model section, a module with ``update``,
  ``document``, ``summary_lines`` and ``observe`` (the protocol is
  :class:`ktop.model.section.Section`);
- ``ktop/ui/widgets/<name>.py``: its panel, shown on the dashboard and,
  scoped to one process, on the PID screen.

Everything that loops over probes (the dashboard's panels, the PID screen,
``build_model``, ``ktop snapshot``'s JSON and text, ``ktop export``, ``--help``)
reads this table; ``tests/test_registry.py`` fails when an entry lacks a
part. See docs/adding-a-probe.md. Nothing here imports a probe, a model or a
widget: entries name them, and :func:`load` imports one when it is needed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProbeInfo:
    name: str  # the one short name: --probes, the program, the modules, the status line
    default: bool  # runs without --probes
    summary: str  # one line for --help and ktop doctor
    section: str  # its field in Snapshot, in Model and in the JSON document
    probe: str  # "module:Class" of its collector
    model: str  # module of its model section
    panel: str  # "module:Class" of its panel
    column: str = "right"  # the dashboard column its panel sits in
    scoped: bool = True  # its panel also shows on the PID screen, scoped to that process

    @property
    def program(self) -> str:
        return f"bpf/{self.name}.bpf.c"


PROBES: dict[str, ProbeInfo] = {
    p.name: p
    for p in (
        ProbeInfo("spawn", True,
                  "every exec (argv, parent, return) and exit (code, lifetime); execsnoop + exitsnoop",
                  "spawns", "ktop.probes.spawn:SpawnProbe", "ktop.model.spawn", "ktop.ui.widgets.spawn:SpawnsPanel",
                  column="left", scoped=False),
        ProbeInfo("funcs", True,
                  "call counts of functions, tracepoints and USDT probes (-f SPEC, or a in the panel); funccount",
                  "funcs", "ktop.probes.funcs:FuncsProbe", "ktop.model.funcs", "ktop.ui.widgets.funcs:FuncsPanel"),
        ProbeInfo("bio", True,
                  "block I/O latency per disk and op (histograms, percentiles, heatmap) and per process; "
                  "biolatency + biotop", "bio", "ktop.probes.bio:BioProbe", "ktop.model.bio",
                  "ktop.ui.widgets.bio:BioPanel"),
        ProbeInfo("syscalls", True,
                  "every system call: counts per syscall and process, errors by errno, latency histograms; "
                  "syscount", "syscalls", "ktop.probes.syscalls:SyscallsProbe", "ktop.model.syscalls",
                  "ktop.ui.widgets.syscalls:SyscallsPanel"),
        # Off by default until its cost is measured (bench/): --probes net or all turns it on. Its
        # panel is on the dashboard only when it is selected.
        ProbeInfo("net", False,
                  "socket bytes and calls per process and protocol, closed TCP connections with their "
                  "connect latency, retransmits and resets (Linux 6.3+); tcptop + tcplife + tcpconnlat",
                  "net", "ktop.probes.net:NetProbe", "ktop.model.net", "ktop.ui.widgets.net:NetPanel"),
        ProbeInfo("sched", False,
                  "run-queue latency per CPU and process (histograms, percentiles) and off-CPU time by state "
                  "(R, S, D); runqlat + offcputime; off by default (--probes sched)",
                  "sched", "ktop.probes.sched:SchedProbe", "ktop.model.sched", "ktop.ui.widgets.sched:SchedPanel"),
        ProbeInfo("profile", False,
                  "on-CPU stack sampling at 49 Hz a CPU (--profile-hz): CPU % per process from samples, the "
                  "hottest functions (self and total), folded stacks (ktop profile --folded); profile; "
                  "off by default (--probes profile)",
                  "profile", "ktop.probes.profile:ProfileProbe", "ktop.model.profile",
                  "ktop.ui.widgets.profile:ProfilePanel"),
        ProbeInfo("http", False,
                  "HTTP/1.x requests per process from the socket syscalls' bytes: server and client side, "
                  "methods, status codes, path patterns, latency percentiles; TLS and HTTP/2 counted as "
                  "encrypted; off by default (--probes http)",
                  "http", "ktop.probes.http:HttpProbe", "ktop.model.http", "ktop.ui.widgets.http:HttpPanel"),
    )
}

# Where the panels sit on the dashboard, and in which order the number keys reach them.
PANEL_ORDER = ("spawn", "bio", "syscalls", "funcs", "net", "sched", "profile", "http")


def default_names() -> list[str]:
    return [n for n, p in PROBES.items() if p.default]


def parse_list(text: str) -> list[str]:
    """Parses ``--probes`` (comma-separated names, ``all``, ``none``).

    Raises:
        ValueError: naming the unknown probes and the known ones.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(PROBES)
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe {', '.join(unknown)!s} (known: {', '.join(PROBES)})")
    return list(dict.fromkeys(names))


def load(ref: str) -> Any:
    """``"module:Name"`` (or a bare module) imported."""
    module, _, name = ref.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, name) if name else mod


def probe_class(name: str):
    return load(PROBES[name].probe)


def model_section(name: str):
    return load(PROBES[name].model)


def panel_class(name: str):
    return load(PROBES[name].panel)


def in_panel_order() -> list[ProbeInfo]:
    return [PROBES[n] for n in PANEL_ORDER]
