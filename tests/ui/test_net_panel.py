"""The Network panel: on the dashboard only when the net probe is selected; its tables and
hostile names."""

from __future__ import annotations

import threading
from dataclasses import replace

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.snapshot import LIVE, NetConn, NetOpen, ProbeStatus, ProcessDetail
from ktop.ui.widgets.net import NetPanel
from ktop.ui.widgets.table import KTable
from tests.ui import fakes, net_fakes

SIZE = (160, 60)


def plain_rows(table: KTable) -> list[list[str]]:
    return [[c.plain.strip() for c in table.get_row(r.key)] for r in table.ordered_rows]


def _net_app() -> KtopApp:
    """The dashboard with the net probe selected (its panel shown)."""
    source = fakes.FakeSource()
    source.probe_names = ["spawn", "net"]
    return KtopApp(source, autostart=False)


def _snap(sample, t=fakes.T0):
    return replace(fakes.snapshot(t=t), net=sample, probes=(ProbeStatus("spawn", LIVE), ProbeStatus("net", LIVE)))


async def test_not_selected_no_panel():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=SIZE):
        assert not app.query(NetPanel)


async def test_selected_it_shows_processes_and_closed_connections():
    app = _net_app()
    async with app.run_test(size=SIZE) as pilot:
        hostile = NetConn(time=fakes.T0, pid=9, comm="\x1b[31mevil[/b]", family=4, saddr="127.0.0.1", sport=1,
                          daddr="127.0.0.1", dport=2, duration_ns=1)
        s = replace(net_fakes.sample(), conns=net_fakes.conns() + (hostile,))
        app.show_model(build_model(None, _snap(s)))
        await pilot.pause()
        procs = plain_rows(app.query_one("#net-procs", KTable))
        assert procs[0][:3] == ["100", "curl", "tcp"]  # most rx/s first
        conns = plain_rows(app.query_one("#net-conns", KTable))
        assert len(conns) == 4
        assert ["100", "curl", "out", "127.0.0.1:41000", "127.0.0.1:80"] == conns[3][1:6]
        assert any(r[4] == "[::1]:80" and r[3] == "in" for r in conns)
        evil = next(r for r in conns if r[1] == "9")
        assert "\x1b" not in evil[2] and "[/b]" in evil[2]  # shown as text, never markup
        status = str(app.query_one("#net-status").render())
        assert "net: live" in status


async def test_open_connections_have_their_own_table_most_bytes_first():
    app = _net_app()
    async with app.run_test(size=SIZE) as pilot:
        big = NetOpen(pid=100, comm="curl", family=4, saddr="10.0.0.1", sport=41000, daddr="10.0.0.2", dport=443,
                      state="ESTABLISHED", age_ns=2_500_000_000, connect_ns=30_000, tx_bytes=5_000_000,
                      rx_bytes=100, retransmits=3)
        evil = NetOpen(pid=0, comm="\x1b[31mevil[/b]", family=6, saddr="::1", sport=80, daddr="::1", dport=41001,
                       state="SYN_RECV", age_ns=1_000_000, active=False)
        app.show_model(build_model(None, _snap(replace(net_fakes.sample(), open=(evil, big), open_total=2))))
        await pilot.pause()
        rows = plain_rows(app.query_one("#net-open", KTable))
        assert rows[0] == ["100", "curl", "out", "10.0.0.1:41000", "10.0.0.2:443", "ESTABLISHED", "2.5",
                           rows[0][7], rows[0][8], "3"]
        assert rows[1][:6] == ["?", rows[1][1], "in", "[::1]:80", "[::1]:41001", "SYN_RECV"]
        assert "\x1b" not in rows[1][1] and "[/b]" in rows[1][1]  # text, never markup
        assert "open 2" in str(app.query_one("#net-rate").render())


async def test_the_pid_screen_shows_the_pids_connections_and_bandwidth_from_the_focus_model():
    """Enter on PID 100: the Network panel of its screen draws model.focus (the probe filtered to it in the
    kernel), its rows and connections only, and the bandwidth line of its ticks."""
    app = _net_app()
    async with app.run_test(size=SIZE) as pilot:
        model = None
        for i in range(5):
            full = net_fakes.sample()
            mine = replace(full, procs=tuple(replace(p, rx_bytes=p.rx_bytes * (i + 1)) for p in full.procs
                                             if p.pid == 100),
                           conns=tuple(c for c in full.conns if c.pid == 100))
            snap = _snap(full, t=fakes.T0 + i)
            detail = ProcessDetail(pid=100, exists=True)  # the same PID each tick: the focus model goes on
            model = build_model(model, replace(snap, focus=replace(snap, net=mine), focus_detail=detail))
            app.show_model(model)
        app.drill(100)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert screen.__class__.__name__ == "PidScreen"
        procs = plain_rows(screen.query_one("#pid-net #net-procs", KTable))
        assert [r[:3] for r in procs] == [["100", "curl", "tcp"]]
        assert procs[0][3] == "19.5K"  # 5 x 4000 bytes in its last second
        conns = plain_rows(screen.query_one("#pid-net #net-conns", KTable))
        assert {r[1] for r in conns} == {"100"} and len(conns) == 10  # two a tick
        spark = str(screen.query_one("#pid-net #net-spark").render())
        assert spark.startswith("rx ") and "▆█  19.5K/s  tx " in spark and "120/s" in spark, spark
        # the dashboard's panel keeps every process
        assert len(plain_rows(app.query_one("#net-procs", KTable))) == 3


def _with_remotes():
    return _snap(replace(net_fakes.sample(), conns=net_fakes.remote_conns()))


async def test_connect_latency_per_remote_percentiles_histogram_sort_and_filter():
    app = _net_app()
    async with app.run_test(size=SIZE) as pilot:
        app.show_model(build_model(None, _with_remotes()))
        await pilot.pause()
        table = app.query_one("#net-remotes", KTable)
        rows = plain_rows(table)
        assert [(r[6], r[0]) for r in rows] == [("10.0.0.1", "4"), ("10.0.0.2", "2"), ("::1", "1")]  # most first
        assert rows[0][4] == "1.5s" and rows[0][3] == "1.5s"  # p99 clamped to the largest seen
        assert rows[0][1] == "127µs" and rows[1][1:4] == ["31µs", "33µs", "33µs"]
        assert rows[2][1:5] == ["5µs"] * 4  # one connect: every percentile is it
        # each row's histogram over the same slots (4-7 µs .. 1M-2M µs), scaled to its own peak: they line up
        cells = {r.key.value: table.get_row(r.key)[5].plain for r in table.ordered_rows}
        assert cells == {"::1": "█" + " " * 19, "10.0.0.2": "  ██" + " " * 16,
                         "10.0.0.1": "    █▄" + " " * 12 + "▄ "}, cells
        # the bars: the busiest remote until the user picks one
        chart = app.query_one("#net-hist")
        assert "to 10.0.0.1" in str(chart.render())
        table.focus()
        await pilot.press("down")
        await pilot.pause()
        assert "to 10.0.0.2" in str(chart.render())
        # sortable: the slowest p50 first
        table.set_sort(1, reverse=True)
        await pilot.pause()
        assert [r[6] for r in plain_rows(table)] == ["10.0.0.1", "10.0.0.2", "::1"]
        table.set_sort(1, reverse=False)
        await pilot.pause()
        assert [r[6] for r in plain_rows(table)] == ["::1", "10.0.0.2", "10.0.0.1"]
        # filterable: `/` in this table filters this table, not the processes'
        await pilot.press("slash")
        for ch in "10.0.0.2":
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause()
        assert [r[6] for r in plain_rows(table)] == ["10.0.0.2"]
        assert len(plain_rows(app.query_one("#net-procs", KTable))) == 3


def test_net_panel_svg(snap_compare):
    from ktop.ui.widgets.net import NetPanel
    from tests.ui.panelapp import PanelApp

    source = fakes.FakeSource()
    source.probe_names = ["spawn", "net"]
    app = PanelApp(NetPanel, "net", source)

    async def run_before(pilot):
        model = None
        for i in range(8):
            s = replace(net_fakes.sample(), procs=tuple(replace(p, rx_bytes=p.rx_bytes * (1 + i % 4))
                                                        for p in net_fakes.sample().procs),
                        conns=net_fakes.remote_conns(fakes.T0 + i) if i == 7 else ())
            model = build_model(model, _snap(s, t=fakes.T0 + i))
        app.model = model
        app.query_one(NetPanel).update_from(model)
        await pilot.pause()
        app.query_one(NetPanel).update_from(model)  # the sparklines at the width laid out
        await pilot.pause()

    assert snap_compare(app, terminal_size=(130, 44), run_before=run_before)


async def test_n_shows_remote_names_looked_up_in_the_background_numbers_until_answered(monkeypatch):
    """n: remote addresses by name; the lookup never holds up a draw (the number until it answers, then a
    redraw with the name); the filter finds a row by either; n again: numbers."""
    gate = threading.Event()
    asked = []

    def resolve(addr):
        asked.append(addr)
        gate.wait(5)
        return {"10.0.0.1": "db.example", "10.0.0.2": "\x1b[31mevil[/b]"}.get(addr)

    monkeypatch.setattr(NetPanel, "resolve", staticmethod(resolve))
    app = _net_app()
    async with app.run_test(size=SIZE) as pilot:
        app.show_model(build_model(None, _with_remotes()))
        await pilot.pause()
        table = app.query_one("#net-remotes", KTable)
        table.focus()
        await pilot.press("n")
        await pilot.pause()
        assert sorted(r[6] for r in plain_rows(table)) == ["10.0.0.1", "10.0.0.2", "::1"]  # asked, not answered
        assert "names on (n)" in str(app.query_one("#net-rate").render())
        gate.set()
        for _ in range(100):
            await pilot.pause(0.02)
            if "db.example" in {r[6] for r in plain_rows(table)} and len(asked) == 3:
                break
        names = {r[0]: r[6] for r in plain_rows(table)}
        assert names["4"] == "db.example" and names["1"] == "::1"  # ::1 has no name here: the number stays
        assert "\x1b" not in names["2"] and "[/b]" in names["2"]  # a PTR record is untrusted text
        assert sorted(asked) == ["10.0.0.1", "10.0.0.2", "::1"]  # each once
        conns = plain_rows(app.query_one("#net-conns", KTable))
        assert "db.example:443" in {r[5] for r in conns}
        await pilot.press("slash")
        for ch in "10.0.0.1":  # the number still finds the named row
            await pilot.press(ch)
        await pilot.press("enter")
        await pilot.pause()
        assert [r[6] for r in plain_rows(table)] == ["db.example"]
        table.focus()
        await pilot.press("n")
        await pilot.pause()
        assert [r[6] for r in plain_rows(table)] == ["10.0.0.1"]
        assert "names" not in str(app.query_one("#net-rate").render())
