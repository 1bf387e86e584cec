"""The PID screen's charts: seeded from the kept history when it opens, a point per tick after,
following pause and time travel, redrawn only on new data; and an SVG snapshot at 160x48."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from ktop.app import KtopApp
from ktop.model.history import History
from ktop.snapshot import LIVE, NetProc, ProbeStatus, ProcessDetail
from ktop.ui.screens.pid import PidScreen
from tests.ui import bio_fakes, fakes, net_fakes, syscalls_fakes

PID = 300  # python3: CPU, reads, syscalls and two execs of children in every tick


def tick(i: int):
    procs = tuple(replace(p, cpu_percent=float(20 + (i * 7) % 60), rss=(500 + 10 * i) << 20) if p.pid == PID
                  else p for p in fakes.PROCESSES)
    s = fakes.snapshot(processes=procs, t=fakes.T0 + i,
                       spawn=fakes.spawn_sample(fakes.execs(fakes.T0 + i), fakes.exits(fakes.T0 + i)))
    row = next(p for p in procs if p.pid == PID)
    detail = ProcessDetail(pid=PID, exists=True, exe="/usr/bin/python3.12", cwd="/home/alice", cmdline=row.cmdline,
                           user=row.user, state="R", start_time=row.start_time, threads=8, open_files=12,
                           rss=row.rss, shared=30 << 20, swap=0, cpu_percent=row.cpu_percent, nice=0)
    full = replace(s, probes=s.probes + (ProbeStatus("bio", LIVE), ProbeStatus("syscalls", LIVE)),
                   bio=bio_fakes.tick_sample(i), syscalls=syscalls_fakes.sample(i % 3))
    mine = {PID, 1001, 1002}  # as the kernel filters the scoped probes: the PID and its children
    focus = replace(full, processes=(row,),
                    bio=replace(full.bio, procs=tuple(b for b in full.bio.procs if b.pid in mine)),
                    syscalls=replace(full.syscalls, counts=tuple(c for c in full.syscalls.counts if c.pid in mine)),
                    spawns=fakes.spawn_sample(fakes.execs(s.time)[:2], ()))
    return replace(full, focus=focus, focus_detail=detail)


def app_with_history(n: int) -> KtopApp:
    app = KtopApp(fakes.FakeSource(), autostart=False)
    app.time.history = History(seconds=600, interval=1.0)
    for i in range(n):
        app.show_model(app.time.history.append(tick(i)))
    return app


async def open_pid(app, pilot) -> PidScreen:
    app.drill(PID)
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    assert isinstance(app.screen, PidScreen)
    return app.screen


async def test_opening_seeds_every_chart_from_the_kept_history_then_a_point_per_tick():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=(160, 48)) as pilot:
        app.time.history = History(seconds=600, interval=1.0)
        for i in range(30):
            app.show_model(app.time.history.append(tick(i)))
        screen = await open_pid(app, pilot)
        assert [p.time for p in screen.shown] == [fakes.T0 + i for i in range(30)]
        last = screen.shown[-1]
        assert last.cpu == 20 + (29 * 7) % 60 and last.io_ops > 0 and last.syscalls > 0
        assert last.execs == 2.0  # ls and the failed exec, both children of 300; not sleep (of 400)
        for cid, words in (("pid-cpu", ("CPU %", "RSS MiB")), ("pid-io", ("ops/s", "MiB/s")),
                           ("pid-sys", ("calls/s", "errors/s")), ("pid-exec", ("execs/s",))):
            lines = screen._drawn[cid]
            assert len(lines) == len(words) and all(len(xs) == 30 and xs[-1] == 0.0 for _, xs, _, _ in lines)
            text = screen.query_one(f"#{cid}").render().plain
            assert all(w in text for w in words), cid
        assert screen.query_one("#pid-tree").size.height > 5  # the tree and scoped panels keep room
        drawn = dict(screen._drawn)
        app.show_model(app.model)  # the same tick again: nothing rebuilt
        assert all(screen._drawn[k] is drawn[k] for k in drawn)
        app.show_model(app.time.history.append(tick(30)))
        await pilot.pause()
        assert len(screen.shown) == 31 and screen._drawn["pid-cpu"] != drawn["pid-cpu"]


async def test_paused_and_stepping_back_the_charts_end_at_the_tick_shown():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=(160, 48)) as pilot:
        app.time.history = History(seconds=600, interval=1.0)
        for i in range(12):
            app.show_model(app.time.history.append(tick(i)))
        screen = await open_pid(app, pilot)
        await pilot.press("space", "left", "left")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.shown[-1].time == fakes.T0 + 9 and len(screen.shown) == 10
        assert screen._drawn["pid-cpu"][0][1][-1] == 0.0  # the time axis ends at the tick shown


async def test_seeding_is_bounded_by_ticks(monkeypatch):
    from ktop.ui.screens import pid

    monkeypatch.setattr(pid, "SEED_TICKS", 5)
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=(160, 48)) as pilot:
        app.time.history = History(seconds=600, interval=1.0)
        for i in range(20):
            app.show_model(app.time.history.append(tick(i)))
        screen = await open_pid(app, pilot)
        assert [p.time for p in screen.shown] == [fakes.T0 + i for i in range(15, 20)]


async def test_seeding_is_bounded_by_time(monkeypatch):
    from ktop.ui.screens import pid

    monkeypatch.setattr(pid, "SEED_BUDGET_S", 0.0)
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=(160, 48)) as pilot:
        app.time.history = History(seconds=600, interval=1.0)
        for i in range(20):
            app.show_model(app.time.history.append(tick(i)))
        screen = await open_pid(app, pilot)
        assert [p.time for p in screen.shown] == [fakes.T0 + 19]  # the tick shown; no time for the rest
        app.show_model(app.time.history.append(tick(20)))
        await pilot.pause()
        assert [p.time for p in screen.shown] == [fakes.T0 + 19, fakes.T0 + 20]


async def test_without_a_history_the_charts_start_with_the_visit():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=(160, 48)) as pilot:
        from tests.ui.test_app import show

        await show(app, pilot, tick(0))
        screen = await open_pid(app, pilot)
        assert [p.cpu for p in screen.shown] == [20.0] and screen._drawn["pid-io"] == ()
        assert "no data" in screen.query_one("#pid-io").render().plain


async def test_narrow_one_chart_at_a_time_c_shows_the_next_and_draws_it_then():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.time.history = History(seconds=600, interval=1.0)
        for i in range(5):
            app.show_model(app.time.history.append(tick(i)))
        screen = await open_pid(app, pilot)
        shown = [cid for cid in ("pid-cpu", "pid-io", "pid-sys", "pid-exec") if screen.query_one(f"#{cid}").display]
        assert shown == ["pid-cpu"] and set(screen._drawn) == {"pid-cpu"}  # hidden charts are not drawn
        await pilot.press("c")
        await pilot.pause()
        assert screen.query_one("#pid-io").display and not screen.query_one("#pid-cpu").display
        assert "ops/s" in screen.query_one("#pid-io").render().plain
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert all(screen.query_one(f"#{c}").display for c in ("pid-cpu", "pid-io", "pid-sys", "pid-exec"))
        assert set(screen._drawn) == {"pid-cpu", "pid-io", "pid-sys", "pid-exec"}


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    time.tzset()


def test_pid_screen_160x48(snap_compare, utc):
    app = KtopApp(fakes.FakeSource(), autostart=False)
    app.time.history = History(seconds=600, interval=1.0)

    async def run_before(pilot):
        for i in range(60):
            app.show_model(app.time.history.append(tick(i)))
        await open_pid(app, pilot)

    assert snap_compare(app, terminal_size=(160, 48), run_before=run_before)


async def test_an_all_zero_series_is_drawn_from_zero_up_not_around_it():
    """plotext centres a flat zero line in -1..1; a rate below zero would be a lie."""
    app = KtopApp(fakes.FakeSource(), autostart=False)
    async with app.run_test(size=(160, 48)) as pilot:
        app.time.history = History(seconds=600, interval=1.0)
        for i in range(10):
            t, none = tick(i), fakes.spawn_sample((), ())
            app.show_model(app.time.history.append(replace(t, spawns=none, focus=replace(t.focus, spawns=none))))
        screen = await open_pid(app, pilot)
        (_, _, ys, _), = screen._drawn["pid-exec"]
        assert ys == [0.0] * 10
        text = screen.query_one("#pid-exec").render().plain
        assert "-1" not in text and "execs/s" in text
        assert "-1" not in screen.query_one("#pid-cpu").render().plain  # a line with values keeps its own axis


# -- the network chart: only when the source shows the net probe (off by default) ----------------

FOUR = ("pid-cpu", "pid-io", "pid-sys", "pid-exec")


def net_tick(i: int):
    """tick(i) with the net probe live: PID 300 receives (i + 1) MiB over TCP and 500 bytes over UDP, and
    sends 1000 bytes a second; the focus (the probe filtered to it) has its rows only."""
    t = tick(i)
    full = replace(net_fakes.sample(), procs=net_fakes.sample().procs + (
        NetProc(pid=PID, comm="python3", proto="tcp", rx_bytes=(i + 1) << 20, rx_calls=4),))
    mine = replace(full, procs=tuple(p for p in full.procs if p.pid == PID), conns=())
    probes = t.probes + (ProbeStatus("net", LIVE),)
    return replace(t, net=full, probes=probes, focus=replace(t.focus, net=mine, probes=probes))


def net_app(selected: bool = True) -> KtopApp:
    source = fakes.FakeSource()
    if selected:
        source.probe_names = ["spawn", "bio", "syscalls", "net"]
    return KtopApp(source, autostart=False)


def keep_net_ticks(app: KtopApp, n: int) -> None:
    app.time.history = History(seconds=600, interval=1.0)
    for i in range(n):
        app.show_model(app.time.history.append(net_tick(i)))


async def test_with_the_net_probe_a_fifth_chart_has_the_pids_rx_and_tx_per_tick():
    app = net_app()
    async with app.run_test(size=(160, 48)) as pilot:
        keep_net_ticks(app, 30)
        screen = await open_pid(app, pilot)
        assert all(screen.query_one(f"#{c}").display for c in FOUR + ("pid-rxtx",))  # all five in the row
        assert [p.net_rx for p in screen.shown] == [float(((i + 1) << 20) + 500) for i in range(30)]
        assert {p.net_tx for p in screen.shown} == {1000.0}  # the UDP rows of 300 only, summed over protocols
        (rx_label, xs, rx, _), (tx_label, _, tx, _) = screen._drawn["pid-rxtx"]
        assert (rx_label, tx_label) == ("rx MiB/s", "tx MiB/s") and len(xs) == 30 and xs[-1] == 0.0
        assert rx[-1] == 30 + 500 / (1 << 20) and tx[-1] == 1000 / (1 << 20)
        plot = screen.query_one("#pid-rxtx")
        assert plot.border_title == "net MiB/s rx · tx"
        assert all(w in plot.render().plain for w in ("rx MiB/s", "tx MiB/s"))
        assert screen.query_one("#pid-net").__class__.__name__ == "NetPanel"  # the scoped panel is there too
        assert screen.query_one("#pid-tree").size.height > 5
        app.show_model(app.time.history.append(net_tick(30)))
        await pilot.pause()
        assert screen.shown[-1].net_rx == float((31 << 20) + 500) and len(screen._drawn["pid-rxtx"][0][1]) == 31


async def test_with_the_net_probe_narrow_c_cycles_five_charts():
    app = net_app()
    async with app.run_test(size=(80, 24)) as pilot:
        keep_net_ticks(app, 5)
        screen = await open_pid(app, pilot)
        seen = []
        for _ in range(6):
            seen += [c for c in FOUR + ("pid-rxtx",) if screen.query_one(f"#{c}").display]
            await pilot.press("c")
            await pilot.pause()
        assert seen == list(FOUR) + ["pid-rxtx", "pid-cpu"]
        assert "pid-rxtx" in screen._drawn and len(screen._drawn["pid-rxtx"]) == 2


async def test_without_the_net_probe_no_net_chart_and_c_cycles_the_other_four():
    app = net_app(selected=False)
    async with app.run_test(size=(80, 24)) as pilot:
        keep_net_ticks(app, 5)  # the ticks even carry a net section: the source does not show it
        screen = await open_pid(app, pilot)
        assert not screen.query("#pid-rxtx") and not screen.query("#pid-net")
        assert [c[0] for c in screen.charts] == list(FOUR) and "pid-rxtx" not in screen._drawn
        seen = []
        for _ in range(5):
            seen += [c for c in FOUR if screen.query_one(f"#{c}").display]
            await pilot.press("c")
            await pilot.pause()
        assert seen == list(FOUR) + ["pid-cpu"]
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert set(screen._drawn) == set(FOUR)
