"""C: the Cgroups view. The tree nested and sorted among siblings, collapse and expand, the filter
keeping a match's ancestors, Enter filtering the process table to a subtree, the source asked for
the figures only while the view is open, and cgroup names that cannot reach the terminal raw."""

from __future__ import annotations

from dataclasses import replace

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.snapshot import CgroupInfo, CgroupStat
from ktop.ui.screens.cgroups import CgroupsScreen
from ktop.ui.widgets.table import KTable
from tests.ui import fakes
from tests.ui.test_app import plain_rows

SIZE = (200, 44)
GROUPS = (  # id, path, label, kind
    (1, "/", "/", "root"),
    (10, "/system.slice", "system.slice", "unit"),
    (11, "/system.slice/web.service", "web.service", "unit"),
    (12, "/system.slice/db.service", "db.service", "unit"),
    (20, "/user.slice", "user.slice", "unit"),
    (30, "/ev\x1bil", "ev\x1bil", "cgroup"),
)


class Source(fakes.FakeSource):
    def __init__(self):
        super().__init__()
        self.cgroup_view_calls: list[bool] = []

    def set_cgroup_view(self, on: bool) -> None:
        self.cgroup_view_calls.append(on)


def _snap(t: float, io: int = 0):
    stats = tuple(CgroupStat(i, p, lab, k, memory_bytes=None if i == 1 else 1 << 20, io_read_bytes=io * i,
                             io_write_bytes=0, psi_cpu_percent=1.5 if i == 11 else 0.0)
                  for i, p, lab, k in GROUPS)
    procs = (replace(fakes.proc(100, 1, comm="web"), cpu_percent=40.0, cgroup_id=11),
             replace(fakes.proc(101, 1, comm="db"), cpu_percent=60.0, cgroup_id=12),
             replace(fakes.proc(102, 1, comm="sh"), cpu_percent=5.0, cgroup_id=20),
             replace(fakes.proc(1, 0, comm="init"), cpu_percent=0.0, cgroup_id=1))
    snap = fakes.snapshot(processes=procs, t=t)
    return replace(snap, cgroup_stats=stats, cgroups=tuple(CgroupInfo(i, p, lab, k) for i, p, lab, k in GROUPS))


def _models():
    m1 = build_model(None, _snap(fakes.T0))
    return m1, build_model(m1, _snap(fakes.T0 + 1, io=100))


def _labels(t: KTable) -> list[str]:
    return [r[0] for r in plain_rows(t)]


async def _open(app, pilot, model):
    app.show_model(model)
    await pilot.press("C")
    await pilot.pause()
    assert isinstance(app.screen, CgroupsScreen)
    return app.screen.query_one("#cg-table", KTable)


async def test_c_shows_the_tree_nested_siblings_by_cpu_and_the_source_reads_only_while_open():
    src = Source()
    app = KtopApp(src, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        m1, m2 = _models()
        t = await _open(app, pilot, m1)
        assert src.cgroup_view_calls == [True]
        app.show_model(m2)
        await pilot.pause()
        rows = plain_rows(t)
        assert [r[0].strip("▾▸ ") for r in rows][:5] == ["/", "system.slice", "db.service", "web.service",
                                                          "user.slice"]
        by = {r[0].strip("▾▸ "): r for r in rows}
        assert by["system.slice"][1:3] == ["2", "100.0"]  # its subtree's processes and CPU %
        assert by["/"][1:4] == ["4", "105.0", "-"]  # no memory.current at the root
        assert by["web.service"][4] == "1.1K" and by["web.service"][8] == "1.50"  # 11 * 100 B in 1 s
        assert by["web.service"][6:8] == ["-", "-"]  # no net probe: no socket figures
        assert all("\x1b" not in c for r in rows for c in r)
        t.set_sort(2, False)  # CPU ascending: siblings flip, children stay under their parents
        await pilot.pause()
        assert [r.strip("▾▸ ") for r in _labels(t)] == ["/", "ev␛il", "user.slice", "system.slice", "web.service",
                                                        "db.service"]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CgroupsScreen)
        assert src.cgroup_view_calls == [True, False]


async def test_minus_collapses_a_node_and_plus_expands_it():
    app = KtopApp(Source(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        t = await _open(app, pilot, _models()[1])
        t.move_cursor(row=_labels(t).index(next(x for x in _labels(t) if "system.slice" in x)))
        await pilot.press("minus")
        await pilot.pause()
        assert not any("web.service" in x for x in _labels(t))
        assert any("▸ system.slice" in x for x in _labels(t))
        await pilot.press("plus")
        await pilot.pause()
        assert any("web.service" in x for x in _labels(t))


async def test_the_filter_keeps_the_ancestors_of_a_match():
    app = KtopApp(Source(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        t = await _open(app, pilot, _models()[1])
        await pilot.press("slash")
        await pilot.press(*"web")
        await pilot.pause()
        assert [x.strip("▾▸ ") for x in _labels(t)] == ["/", "system.slice", "web.service"]
        await pilot.press("escape")  # clears the filter; the view stays
        await pilot.pause()
        assert isinstance(app.screen, CgroupsScreen) and len(_labels(t)) == 6


async def test_enter_filters_the_process_table_to_the_subtree_and_enter_on_the_root_clears_it():
    app = KtopApp(Source(), autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        model = _models()[1]
        t = await _open(app, pilot, model)
        t.move_cursor(row=[x.strip("▾▸ ") for x in _labels(t)].index("system.slice"))
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, CgroupsScreen)
        procs = app.query_one("#proc-table", KTable)
        assert sorted(int(r.key.value) for r in procs.ordered_rows) == [100, 101]
        assert app.focused is procs
        t = await _open(app, pilot, model)
        t.move_cursor(row=0)
        await pilot.press("enter")
        await pilot.pause()
        assert len(app.query_one("#proc-table", KTable).ordered_rows) == 4


def test_cgroups_view_svg(snap_compare):
    app = KtopApp(Source(), autostart=False)

    async def run_before(pilot):
        app.show_model(_models()[1])
        await pilot.press("C")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(160, 20), run_before=run_before)
