"""The CGROUP/UNIT column of the process and spawn tables: hidden while every process sits at
the root cgroup (a hybrid host's usual state), shown with clean labels once one is not."""

from __future__ import annotations

from dataclasses import replace

from ktop.snapshot import CgroupInfo, ExecEvent, SpawnSample
from ktop.ui.widgets.table import KTable
from tests.ui import fakes
from tests.ui.test_app import make_app, plain_rows, show

SIZE = (260, 44)  # the column needs a table of 120 columns: its panel's share of 260
HEX = "ab" * 32


def _snap(with_groups: bool):
    cg = (CgroupInfo(1, "/", "/", "root"),
          CgroupInfo(50, "/system.slice/web.service", "web.service", "unit", "web.service"),
          CgroupInfo(60, f"/system.slice/docker-{HEX}.scope", "docker:abababababab", "container",
                     f"docker-{HEX}.scope", "abababababab", "docker"),
          CgroupInfo(70, "/evil", "ev\u241bil", "cgroup"))
    procs = (fakes.proc(1, 0, comm="init"), fakes.proc(200, 1, comm="web"), fakes.proc(300, 1, comm="ctr"),
             fakes.proc(400, 1, comm="odd"))
    ids = (1, 50, 60, 70) if with_groups else (1, 1, 1, 1)
    procs = tuple(replace(p, cgroup_id=i) for p, i in zip(procs, ids))
    ex = ExecEvent(time=fakes.T0, pid=300, ppid=1, uid=0, comm="ctr", filename="/bin/ctr", argv=("ctr",),
                   argv_truncated=False, retval=0, cgroup_id=ids[2])
    snap = fakes.snapshot(processes=procs, spawn=SpawnSample(interval_s=1.0, execs=(ex,), exec_count=1))
    return replace(snap, cgroups=cg if with_groups else cg[:1])


async def test_the_column_shows_each_processs_unit_container_or_cgroup():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, _snap(True))
        t = app.query_one("#proc-table", KTable)
        assert [c.key for c in t.columns_spec][-1] == "cgroup"
        rows = {r[0]: r for r in plain_rows(t)}
        assert (rows["1"][-1], rows["200"][-1], rows["300"][-1]) == ("/", "web.service", "docker:abababababab")
        assert "\x1b" not in rows["400"][-1]
        s = app.query_one("#spawn-table", KTable)
        assert [c.key for c in s.columns_spec][-1] == "cgroup"
        assert plain_rows(s)[0][-1] == "docker:abababababab"


async def test_the_column_gives_way_to_the_command_in_a_narrow_table():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await show(app, pilot, _snap(True))
        t = app.query_one("#proc-table", KTable)
        assert t.size.width < 120
        assert "cgroup" not in [c.key for c in t.columns_spec]


async def test_the_column_stays_hidden_when_everything_is_at_the_root():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, _snap(False))
        t = app.query_one("#proc-table", KTable)
        assert "cgroup" not in [c.key for c in t.columns_spec]
        assert all(len(r) == len(t.columns_spec) for r in plain_rows(t))
        assert "cgroup" not in [c.key for c in app.query_one("#spawn-table", KTable).columns_spec]


async def test_c_folds_the_table_into_one_row_per_cgroup_and_back():
    from dataclasses import replace

    snap = _snap(True)
    snap = replace(snap, processes=snap.processes + (replace(fakes.proc(500, 1, comm="web2", cpu=30.0, rss=3 << 20),
                                                             cgroup_id=50),))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, snap)
        t = app.query_one("#proc-table", KTable)
        before = [c.key for c in t.columns_spec]
        t.focus()
        await pilot.press("c")
        assert [c.key for c in t.columns_spec][:2] == ["cgroup", "procs"]
        rows = {r[0]: r for r in plain_rows(t)}
        web = rows["web.service"]
        assert web[1] == "2"  # two processes
        assert web[5].startswith("500 web2")  # the hottest
        assert rows["docker:abababababab"][1] == "1"
        assert {r.key: r.pid for r in t._shown}[50] == 500  # Enter drills into the hottest
        await pilot.press("c")
        assert [c.key for c in t.columns_spec] == before
        assert len(plain_rows(t)) == 5


def _with_probes(with_groups: bool):
    """_snap with the syscalls and bio probes live, their per-process rows of PIDs 200, 300, ..."""
    from ktop.snapshot import ProbeStatus
    from tests.ui import bio_fakes, syscalls_fakes

    snap = _snap(with_groups)
    return replace(snap, probes=snap.probes + (ProbeStatus("syscalls", "live"), ProbeStatus("bio", "live")),
                   syscalls=syscalls_fakes.sample(0), bio=bio_fakes.tick_sample(0))


async def test_the_syscalls_and_block_io_process_tables_show_each_pids_cgroup():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, _with_probes(True))
        for table_id in ("#syscalls-procs", "#bio-procs"):
            t = app.query_one(table_id, KTable)
            assert t.size.width >= 72
            assert [c.key for c in t.columns_spec][-1] == "cgroup", table_id
            rows = {r[0]: r for r in plain_rows(t)}
            assert (rows["200"][-1], rows["300"][-1]) == ("web.service", "docker:abababababab"), table_id
            t.set_filter("web.service")  # the filter finds a process by its unit
            assert [r[0] for r in plain_rows(t)] == ["200"], table_id
            t.set_filter("")
        # a process the table does not know has no label, and nothing breaks
        assert {r[0]: r for r in plain_rows(app.query_one("#syscalls-procs", KTable))}["1001"][-1] == ""


async def test_the_probe_tables_keep_their_columns_when_everything_is_at_the_root():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, _with_probes(False))
        for table_id in ("#syscalls-procs", "#bio-procs"):
            assert "cgroup" not in [c.key for c in app.query_one(table_id, KTable).columns_spec]


async def test_the_network_tables_show_the_cgroup_the_kernel_recorded_with_each_flow():
    """Net rows carry their own cgroup id (recorded at connect or first traffic): a connection of a
    process the table no longer has still shows its container; a row without one takes its PID's."""
    from ktop.app import KtopApp
    from ktop.snapshot import LIVE, NetOpen, ProbeStatus
    from tests.ui import net_fakes

    source = fakes.FakeSource()
    source.probe_names = ["spawn", "net"]
    app = KtopApp(source, autostart=False)
    snap = _snap(True)
    s = net_fakes.sample()
    gone = replace(s.conns[0], pid=4242, cgroup_id=60)  # exited since: only its record knows the container
    opened = NetOpen(pid=200, comm="web", family=4, saddr="127.0.0.1", sport=80, daddr="127.0.0.1", dport=5000,
                     state="ESTABLISHED", age_ns=10**9, cgroup_id=50)
    s = replace(s, procs=(replace(s.procs[0], pid=4242, cgroup_id=60), replace(s.procs[1], pid=200)),
                conns=(gone,) + s.conns[1:], open=(opened,), open_total=1)
    snap = replace(snap, net=s, probes=snap.probes + (ProbeStatus("net", LIVE),))
    async with app.run_test(size=(320, 80)) as pilot:
        await show(app, pilot, snap)
        procs = app.query_one("#net-procs", KTable)
        assert [c.key for c in procs.columns_spec][-1] == "cgroup"
        rows = {r[0]: r for r in plain_rows(procs)}
        assert (rows["4242"][-1], rows["200"][-1]) == ("docker:abababababab", "web.service")
        for table_id, want in (("#net-conns", {"4242": "docker:abababababab", "100": ""}),
                               ("#net-open", {"200": "web.service"})):
            t = app.query_one(table_id, KTable)
            assert t.size.width >= 120, (table_id, t.size.width)  # the addresses keep the room below
            assert [c.key for c in t.columns_spec][-1] == "cgroup", table_id
            pid_col = [c.key for c in t.columns_spec].index("pid")
            got = {r[pid_col]: r[-1] for r in plain_rows(t)}
            assert {k: got[k] for k in want} == want, (table_id, got)
        procs.set_filter("docker:abab")  # the filter finds a flow by its container
        assert [r[0] for r in plain_rows(procs)] == ["4242"]


async def test_c_folds_the_focused_probe_table_by_cgroup_and_back():
    """c on a probe's per-process table: one row per cgroup, counts and bytes summed, the top
    process's PID and name with how many more; c again: the rows as they were."""
    from ktop.app import KtopApp
    from ktop.snapshot import LIVE, NetProc, ProbeStatus
    from tests.ui import net_fakes

    source = fakes.FakeSource()
    source.probe_names = ["spawn", "net"]
    app = KtopApp(source, autostart=False)
    snap = _snap(True)
    s = replace(net_fakes.sample(), procs=(
        NetProc(pid=200, comm="web", proto="tcp", tx_bytes=1000, rx_bytes=4000, tx_calls=1, rx_calls=1),
        NetProc(pid=500, comm="web2", proto="tcp", tx_bytes=3000, rx_bytes=100, tx_calls=1, rx_calls=1,
                retransmits=2, cgroup_id=50),
        NetProc(pid=300, comm="ctr", proto="udp", tx_bytes=10, rx_bytes=20, tx_calls=1, rx_calls=1)))
    snap = replace(snap, net=s, probes=snap.probes + (ProbeStatus("net", LIVE),))
    async with app.run_test(size=(200, 60)) as pilot:
        await show(app, pilot, snap)
        t = app.query_one("#net-procs", KTable)
        before = plain_rows(t)
        t.focus()
        await pilot.press("c")
        assert t.folded
        cols = [c.key for c in t.columns_spec]
        assert cols[-1] == "cgroup"  # shown while folded, whatever the width
        rows = {r[-1]: dict(zip(cols, r)) for r in plain_rows(t)}
        assert set(rows) == {"web.service", "docker:abababababab"}
        web = rows["web.service"]
        assert (web["pid"], web["comm"], web["retr"]) == ("200", "web +1", "2")  # most rx/s first: PID 200
        assert (web["rxt"], web["txt"]) == ("4.0K", "3.9K")
        assert {r.pid for r in t._shown} == {200, 300}  # Enter drills into the top process
        await pilot.press("c")
        assert not t.folded and plain_rows(t) == before
        # the process table's c is its own (the focus is elsewhere)
        app.query_one("#proc-table", KTable).focus()
        await pilot.press("c")
        assert [c.key for c in app.query_one("#proc-table", KTable).columns_spec][:2] == ["cgroup", "procs"]


async def test_c_folds_the_syscalls_block_io_and_spawn_tables():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await show(app, pilot, _with_probes(True))
        for table_id in ("#syscalls-procs", "#bio-procs", "#spawn-table"):
            t = app.query_one(table_id, KTable)
            n = len(plain_rows(t))
            t.focus()
            await pilot.press("c")
            assert t.folded, table_id
            labels = [r[-1] for r in plain_rows(t)]
            assert len(labels) == len(set(labels)) <= n, (table_id, labels)
            await pilot.press("c")
            assert not t.folded and len(plain_rows(t)) == n, table_id
