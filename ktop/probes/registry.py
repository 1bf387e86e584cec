"""The probes ktop knows, by their one short name."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ProbeInfo:
    name: str
    module: str
    cls: str
    default: bool
    summary: str
    section: str  # the Snapshot field its samples go to
    # Its sample dataclass as "module:Class": how recordings are read back (ktop/codec.py).
    sample: Optional[str] = None


PROBES: dict[str, ProbeInfo] = {
    p.name: p
    for p in (
        ProbeInfo("spawn", "ktop.probes.spawn", "SpawnProbe", True,
                  "every exec (argv, parent, return) and exit (code, lifetime); execsnoop + exitsnoop",
                  "spawns", sample="ktop.snapshot:SpawnSample"),
        ProbeInfo("funcs", "ktop.probes.funcs", "FuncsProbe", True,
                  "call counts of functions, tracepoints and USDT probes (-f SPEC, or a in the panel); funccount",
                  "funcs", sample="ktop.snapshot:FuncsSample"),
        ProbeInfo("bio", "ktop.probes.bio", "BioProbe", True,
                  "block I/O latency per disk and op (histograms, percentiles, heatmap) and per process; "
                  "biolatency + biotop", "bio", sample="ktop.snapshot:BioSample"),
        ProbeInfo("syscalls", "ktop.probes.syscalls", "SyscallsProbe", True,
                  "every system call: counts per syscall and process, errors by errno, latency histograms; "
                  "syscount", "syscalls", sample="ktop.snapshot:SyscallsSample"),
    )
}


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


def probe_class(name: str):
    info = PROBES[name]
    return getattr(importlib.import_module(info.module), info.cls)


def sample_classes() -> dict[str, type]:
    """Snapshot section -> its sample dataclass, for every probe that names one."""
    out = {}
    for info in PROBES.values():
        if info.sample:
            module, _, name = info.sample.partition(":")
            out[info.section] = getattr(importlib.import_module(module), name)
    return out
