"""Flags where they are read: recorded ticks, ``ktop replay --flags``, ``ktop snapshot --from``,
the Prometheus export and the header's now line. Tick streams from tests/flagload.py."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from flagload import HOST, Steps, ticks

from ktop.cli import main
from ktop.cli.formats import Run, openmetrics
from ktop.model.flags import FlagDetector
from ktop.recording import Recording, RecordingWriter, header

STEPS = Steps(bio_slow=(100, 130), exec_storm=(150, 160))


def _record(path, stamped: bool, n: int = 200):
    d = FlagDetector()
    with RecordingWriter(str(path), header(HOST, 1.0, ["spawn", "bio", "syscalls"], started=1.8e9)) as w:
        for s in ticks(n, 1, STEPS):
            w.write(d.stamp(s) if stamped else s)
    return path


def test_recorded_ticks_carry_their_flags_and_read_back_equal(tmp_path):
    path = _record(tmp_path / "r.jsonl", stamped=True)
    rec = Recording(str(path))
    d = FlagDetector()
    for i, (got, made) in enumerate(zip(rec, ticks(200, 1, STEPS))):
        assert got.flags == d.update(made), i
    assert [f.subject for f in rec.snapshot(105).flags] == ["vda read"]
    line = json.loads(path.read_text().splitlines()[106])  # the header is line 0
    assert line["flags"][0]["kind"] == "bio-latency" and line["flags"][0]["pid"] == 200


@pytest.mark.parametrize("stamped", [True, False])
def test_replay_flags_prints_a_timeline(tmp_path, capsys, stamped):
    """From the recorded flags, or (a recording made before flags) from the detector: the same lines."""
    path = _record(tmp_path / "r.jsonl", stamped)
    assert main(["replay", str(path), "--flags"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4, lines
    assert " +  bio-latency " in lines[0] and "the usual p99 of reads on vda" in lines[0]
    assert " -  bio-latency " in lines[1] and "vda read: over after 3" in lines[1]
    assert " +  execs " in lines[2] and "new: exec rate of parent make" in lines[2]
    assert " -  execs " in lines[3]


def test_replay_flags_says_when_nothing_was_flagged_and_sensitivity_zero_is_off(tmp_path, capsys):
    path = _record(tmp_path / "r.jsonl", stamped=False)
    assert main(["replay", str(path), "--flags", "--flag-sensitivity", "0"]) == 0
    assert capsys.readouterr().out == "nothing flagged in 200 ticks\n"
    assert main(["replay", str(path), "--flags", "--json"]) == 2


def test_snapshot_from_a_recording_lists_active_and_ended_flags(tmp_path):
    from ktop.cli.formats import text_lines
    from ktop.cli.snapshot import recording_document

    path = _record(tmp_path / "r.jsonl", stamped=True, n=155)
    doc, _ = recording_document(Recording(str(path)))
    doc = json.loads(json.dumps(doc))
    (active,) = doc["flags"]["active"]
    (ended,) = doc["flags"]["ended"]
    assert active["subject"] == "parent make" and active["new"] and active["end_unix_s"] is None
    assert ended["subject"] == "vda read" and ended["end_unix_s"] - ended["start_unix_s"] >= 30
    text = "\n".join(text_lines(doc))
    assert "flag  new: exec rate of parent make" in text and "(over)" in text


def test_prometheus_flag_active_is_bounded_and_leaves_when_the_flag_ends():
    run = Run("openmetrics", 1000)
    stream = list(ticks(160, 1, STEPS))
    for s in stream[:105]:
        run.add(s)
    text = openmetrics(run.metrics).decode()
    assert 'ktop_flag_active{kind="bio-latency",subject="vda read"} 1.0' in text
    assert "ktop_flags_active 1.0" in text
    for s in stream[105:140]:
        run.add(s)
    text = openmetrics(run.metrics).decode()
    assert "ktop_flag_active{" not in text and "ktop_flags_active 0.0" in text
    # 100 flags at once: 20 series
    from ktop.snapshot import Flag
    many = tuple(Flag(kind="errors", subject=f"E{i} by x", text="", start=0.0, value=1.0, usual=0.0, peak=1.0,
                      unit="/s", score=1.0) for i in range(100))
    run.metrics.observe(replace(stream[0], flags=many))
    text = openmetrics(run.metrics).decode()
    assert text.count("ktop_flag_active{") == 20 and "ktop_flags_active 100.0" in text


async def test_the_header_now_line_shows_the_top_flags_and_stays():
    from ktop.app import KtopApp
    from ktop.model import build_model
    from ktop.ui.widgets.header import HostHeader
    from tests.ui import fakes

    app = KtopApp(fakes.FakeSource(), autostart=False)
    d = FlagDetector()
    async with app.run_test(size=(160, 44)) as pilot:
        model = None
        stream = list(ticks(140, 1, Steps(bio_slow=(100, 130))))
        for s in stream[:99]:
            model = build_model(model, d.stamp(s))
        app.show_model(model)
        await pilot.pause()
        header = app.query_one(HostHeader)
        assert " now " not in _plain(header)
        for s in stream[99:102]:
            model = build_model(model, d.stamp(s))
        app.show_model(model)
        await pilot.pause()
        text = _plain(header)
        assert " now    ⚑ x" in text and "the usual p99 of reads on vda" in text
        assert app.focused is None or not isinstance(app.focused, HostHeader)  # never steals focus
        for s in stream[102:140]:
            model = build_model(model, d.stamp(s))
        app.show_model(model)
        await pilot.pause()
        assert " now    nothing flagged (last: bio-latency vda read, ended " in _plain(header)


def _plain(widget) -> str:
    r = widget.render()
    return "\n".join(t.plain for t in getattr(r, "renderables", [r]))


def test_flags_fit_the_document_and_tick_schemas():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (the test extra has it)")
    from ktop import schema
    from ktop.cli.snapshot import recording_document
    from ktop.snapshot import to_jsonable

    d = FlagDetector()
    stream = [d.stamp(s) for s in ticks(155, 1, STEPS)]
    assert stream[105].flags and stream[154].flags
    class Rec(list):
        duration_s = 154.0

    for name, data in (("tick", to_jsonable(stream[105])), ("snapshot", recording_document(Rec(stream))[0])):
        jsonschema.Draft202012Validator(schema.load(name)).validate(json.loads(json.dumps(data)))


async def test_the_flags_screen_lists_active_and_ended_and_enter_opens_the_pid_screen():
    from ktop.app import KtopApp
    from ktop.model import build_model
    from ktop.ui.screens.flags import FlagsScreen
    from ktop.ui.screens.pid import PidScreen
    from ktop.ui.widgets.table import KTable
    from tests.ui import fakes

    app = KtopApp(fakes.FakeSource(), autostart=False)
    d = FlagDetector()
    async with app.run_test(size=(160, 44)) as pilot:
        model = None
        for s in ticks(170, 1, Steps(bio_slow=(100, 130), enoent=(150, 200))):
            model = build_model(model, d.stamp(s))
        app.show_model(model)
        await pilot.pause()
        assert not isinstance(app.screen, FlagsScreen)  # nothing opens by itself
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert isinstance(app.screen, FlagsScreen)
        table = app.screen.query_one(KTable)
        rows = [[c.plain.strip() for c in table.get_row(r.key)] for r in table.ordered_rows]
        assert [r[:3] for r in rows] == [["on", "errors", "ENOENT by python3"], ["over", "bio-latency", "vda read"]]
        assert rows[0][6] == "301" and rows[1][6] == "200" and rows[1][4]  # the ended one has its end
        assert "ms" in rows[1][5]  # peak p99
        await pilot.press("enter")  # the ENOENT flag: python3, pid 301
        await pilot.pause()
        assert isinstance(app.screen, PidScreen) and app.screen.pid == 301
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FlagsScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, FlagsScreen)


async def test_enter_on_a_flag_about_no_process_focuses_its_panel():
    from ktop.app import KtopApp
    from ktop.model import build_model
    from ktop.snapshot import Flag
    from ktop.ui.screens.flags import FlagsScreen
    from ktop.ui.widgets.panel import Panel
    from tests.ui import fakes

    flag = Flag(kind="bio-iops", subject="vda write", text="x9 the usual IOPS of writes on vda", start=fakes.T0,
                value=900.0, usual=100.0, peak=900.0, unit="/s", score=2.0, section="bio")
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=(160, 44)) as pilot:
        app.show_model(build_model(None, replace(fakes.snapshot(), flags=(flag,))))
        await pilot.pause()
        assert app.query_one("#proc-table").has_focus
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert isinstance(app.screen, FlagsScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, FlagsScreen)
        focused = [p.id for p in app.query(Panel) if p.table.has_focus]
        assert focused == ["bio"]


async def test_hostile_names_in_flags_reach_no_terminal_and_run_no_markup():
    from ktop.app import KtopApp
    from ktop.model import build_model
    from ktop.snapshot import Flag
    from ktop.ui.screens.flags import FlagsScreen
    from ktop.ui.widgets.header import HostHeader
    from ktop.ui.widgets.table import KTable
    from tests.ui import fakes

    evil = "\x1b]0;pwned\x07[@click=app.quit]x\x9b"
    flag = Flag(kind="errors", subject=f"ENOENT by {evil}", text=f"new: rate of ENOENT by {evil} at 500/s",
                start=fakes.T0, value=500.0, usual=0.0, peak=500.0, unit="/s", score=2.0, pid=0, new=True,
                section="syscalls")
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=(160, 44)) as pilot:
        app.show_model(build_model(None, replace(fakes.snapshot(), flags=(flag,))))
        await pilot.pause()
        text = _plain(app.query_one(HostHeader))
        assert "[@click=app.quit]x" in text
        assert not any(c in text for c in "\x1b\x07\x9b")
        await pilot.press("exclamation_mark")
        await pilot.pause()
        table = app.screen.query_one(KTable)
        cells = [c.plain for r in table.ordered_rows for c in table.get_row(r.key)]
        assert any("[@click=app.quit]x" in c for c in cells)
        assert not any(ch in c for c in cells for ch in "\x1b\x07\x9b")
        assert isinstance(app.screen, FlagsScreen) and app.is_running
