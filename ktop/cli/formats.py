"""``ktop snapshot`` / ``ktop replay`` output formats: text, json, csv (one table), openmetrics.

The text and JSON come from the snapshot document; CSV is one of its tables
(the process table, or a probe section's ``table(doc)``); OpenMetrics is
what ``ktop export`` would serve after the same ticks, in one shot.
"""

from __future__ import annotations

import csv
import json
import sys
from typing import Any, Optional, TextIO

from ktop import registry

FORMATS = ("text", "json", "csv", "openmetrics")
TABLES = ("processes",) + tuple(p.section for p in registry.PROBES.values())
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell that starts so


def _processes(doc: dict) -> list[dict]:
    from ktop.model.text import join_argv

    return [{"pid": p["pid"], "ppid": p["ppid"], "user": p["user"], "comm": p["comm"],
             "cpu_percent": p["cpu_percent"], "rss_bytes": p["rss_bytes"], "state": p["state"],
             "threads": p["threads"], "start_time_unix_s": p["start_time_unix_s"],
             "command": join_argv(p["cmdline"]) or f"[{p['comm']}]"}
            for p in doc["processes"]]


def table_rows(doc: dict, table: str) -> Optional[list[dict]]:
    """The rows of ``table``; None when its probe was not selected."""
    if table == "processes":
        return _processes(doc)
    info = next(p for p in registry.PROBES.values() if p.section == table)
    section = doc.get(table)
    return None if section is None else registry.model_section(info.name).table(section)


def _cell(v: Any) -> Any:
    """Untrusted text (a process names itself) never starts a spreadsheet formula (OWASP)."""
    if isinstance(v, str) and v.startswith(_FORMULA):
        return "'" + v
    return "" if v is None else v


def write_csv(rows: list[dict], out: TextIO, columns: Optional[list[str]] = None) -> None:
    w = csv.writer(out, lineterminator="\n")
    cols = columns or (list(rows[0]) if rows else [])
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])


def openmetrics(metrics) -> bytes:
    """What a scrape of ``metrics`` (a KtopMetrics) returns, as OpenMetrics text."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.openmetrics.exposition import generate_latest

    reg = CollectorRegistry(auto_describe=False)
    reg.register(metrics)
    return generate_latest(reg)


def emit(doc: dict, fmt: str, table: str = "processes", metrics=None, out: TextIO = sys.stdout) -> None:
    """Writes the run's document in ``fmt``.

    Raises:
        ValueError: a sentence (a table whose probe did not run).
    """
    if fmt == "json":
        json.dump(doc, out, indent=1)
        out.write("\n")
    elif fmt == "csv":
        rows = table_rows(doc, table)
        if rows is None:
            raise ValueError(f"--table {table}: that probe was not selected (--probes)")
        write_csv(rows, out)
    elif fmt == "openmetrics":
        out.write(openmetrics(metrics).decode())
    else:
        out.write("\n".join(text_lines(doc)) + "\n")
    out.flush()


def text_lines(doc: dict) -> list[str]:
    """The text summary: the host, the probes' statuses, the busiest processes, then each probe's section."""
    from ktop.model import summary_lines
    from ktop.model.format import human_bytes
    from ktop.model.text import clean, join_argv

    h = doc["host"]
    out = [f"{clean(h['hostname'])}  Linux {h['kernel']}  {h['cpu_count']} CPUs  ktop {h['ktop_version']}"]
    out += [f"probe {name:<10} {p['status']:<12} {clean(p['detail'])}" for name, p in doc["probes"].items()]
    flags = doc.get("flags") or {}
    out += [f"flag  {clean(f['text'])}" for f in flags.get("active", ())]
    out += [f"flag  {clean(f['text'])} (over)" for f in flags.get("ended", ())]
    out += ["", f"{'PID':>7} {'USER':<10} {'CPU%':>5} {'RSS':>7}  COMMAND"]
    for p in sorted(doc["processes"], key=lambda p: -p["cpu_percent"])[:10]:
        cmd = join_argv(p["cmdline"]) or f"[{p['comm']}]"
        out.append(f"{p['pid']:>7} {clean(p['user'], 10):<10} {p['cpu_percent']:>5.1f} "
                   f"{human_bytes(p['rss_bytes']):>7}  {clean(cmd, 100)}")
    return out + summary_lines(doc)


def add_arguments(p) -> None:
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="text (the default), json (the document: ktop/schemas/snapshot.schema.json), csv "
                        "(one table, --table), or openmetrics (what ktop export would serve after the same ticks)")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--table", choices=TABLES, default="processes",
                   help="--format csv: which table (default processes)")


def chosen(args) -> str:
    return "json" if args.json else (args.format or "text")


class Run:
    """What a command folds its ticks into: the model and, for openmetrics, the exporter's counters."""

    def __init__(self, fmt: str, max_events: int, flag_sensitivity: float = 1.0):
        from ktop.export import KtopMetrics
        from ktop.model.flags import FlagDetector

        self.detector = FlagDetector(flag_sensitivity)  # for recorded ticks without flags
        self.max_events = max_events
        self.model = None
        self.metrics = KtopMetrics() if fmt == "openmetrics" else None

    def add(self, snap) -> None:
        from ktop.model import build_model

        snap = self.detector.stamp(snap)
        self.model = build_model(self.model, snap, self.max_events)
        if self.metrics is not None:
            self.metrics.observe(snap, self.model)
