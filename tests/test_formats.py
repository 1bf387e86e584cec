"""``--format text|json|csv|openmetrics`` of ktop snapshot and ktop replay, from a recording."""

from __future__ import annotations

import csv
import io
import json

from factories import proc, snapshot
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from test_recording import run, ticks, write

from ktop.cli import formats
from ktop.model import build_model, snapshot_document
from ktop.snapshot import LIVE, ProbeStatus


def _doc(snaps):
    model = None
    for s in snaps:
        model = build_model(model, s)
    return snapshot_document(model, 4.0)


def test_csv_tables_of_the_document_and_no_formula_from_a_process_name():
    snaps = ticks(3)
    hostile = proc(66, 1, "=cmd|' /C calc'!A0", cmdline=["=HYPERLINK(\"http://x\")"])
    snaps[-1] = snapshot(time=snaps[-1].time, processes=[proc(1, 0, "init"), hostile], spawns=snaps[-1].spawns,
                         probes=(ProbeStatus("spawn", LIVE),))
    doc = _doc(snaps)
    out = io.StringIO()
    formats.write_csv(formats.table_rows(doc, "processes"), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["pid"] for r in rows] == ["1", "66"]
    assert rows[1]["comm"] == "'=cmd|' /C calc'!A0" and rows[1]["command"].startswith("'=HYPERLINK")
    assert list(rows[0]) == ["pid", "ppid", "user", "comm", "cpu_percent", "rss_bytes", "state", "threads",
                             "start_time_unix_s", "command"]
    spawns = formats.table_rows(doc, "spawns")
    assert len(spawns) == 9 and spawns[0]["argv"] == "job0 0" and spawns[0]["exit_code"] == 0
    assert formats.table_rows(doc, "bio") is None  # not selected


def test_replay_prints_each_format(tmp_path):
    path = tmp_path / "r.jsonl"
    write(path, ticks(5))
    r = run("replay", str(path), "--format", "csv", "--table", "spawns")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 15 and {r["comm"] for r in rows} == {"job0", "job1", "job2"}
    r = run("replay", str(path), "--format", "openmetrics")
    assert r.returncode == 0, r.stderr and r.stdout.endswith("# EOF\n")
    fams = {f.name: f for f in text_string_to_metric_families(r.stdout)}
    assert sum(s.value for s in fams["ktop_spawn_execs"].samples) == 15
    assert fams["ktop_ticks"].samples[0].value == 5
    r = run("replay", str(path), "--format", "json")
    assert json.loads(r.stdout)["spawns"]["totals"]["execs"] == 15
    r = run("replay", str(path), "--format", "text")
    assert "spawns: 15 execs" in r.stdout
    r = run("snapshot", "--from", str(path), "--format", "csv", "--table", "bio")
    assert r.returncode == 2 and "--table bio: that probe was not selected (--probes)" in r.stderr
