"""The cost of ktop's plots (plotext, through textual-plotext): CPU time per redraw of the graphs
screen (v) and of the PID screen's four charts, against the text sparklines the panels draw instead;
and the PID screen's seeding: its points from every tick of a 600-tick history of snapshots as the
dashboard keeps them with every probe live (110 processes, 45 execs and 1,350 process/syscall rows
a tick: ~3 ms to unpack, as the History's docstring measured on a real host).

The plots redraw only while their screen is shown and only when their data changed, so this is
what a tick costs with the graphs open. Run alone: python bench/plots_bench.py
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _models(n: int = 120):
    from ktop.model import build_model
    from tests.ui import bio_fakes, fakes

    model = None
    for i in range(n):
        cpu = tuple(float((i * 7 + c * 13) % 100) for c in range(8))
        snap = replace(fakes.snapshot(spawn=fakes.spawn_sample(), t=fakes.T0 + i, cpu=cpu),
                       bio=bio_fakes.tick_sample(i))
        model = build_model(model, snap)
    return model


def _history(n: int = 600, pid: int = 1000):
    """``n`` ticks with every probe live, as costly to unpack as the History's docstring measured."""
    from ktop.model.history import History
    from ktop.snapshot import BioProc, BioSample, ExecEvent, SpawnSample, SyscallCount, SyscallsSample
    from tests.ui import fakes

    h = History(seconds=n, interval=1.0)
    for i in range(n):
        t = fakes.T0 + i
        procs = tuple(fakes.proc(pid + k, pid if 0 < k < 4 else 1, comm=f"proc{k}", cmdline=[f"/usr/bin/proc{k}", "-x"],
                                 cpu=float((k * i) % 7) if k % 9 == 0 else 0.0, rss=(k + 1) << 20)
                      for k in range(110))
        execs = tuple(ExecEvent(time=t + j / 50, pid=5000 + 45 * i + j, ppid=pid + j % 20, uid=0, comm="sh",
                                filename="/bin/sh", argv=("sh", "-c", f"echo {j}"), argv_truncated=False, retval=0)
                      for j in range(45))
        calls = tuple(SyscallCount(pid + k, f"proc{k}", nr, f"sys{nr}", 10 + (i + nr) % 90, nr % 3)
                      for k in range(30) for nr in range(45))
        bio = tuple(BioProc(pid + k, f"proc{k}", "vda", i % 5 + k, k, 0, 4096 * k, 8192 * k, 1000 * k, 90 * k)
                    for k in range(20))
        snap = replace(fakes.snapshot(processes=procs, t=t, cpu=tuple(float((i + c) % 100) for c in range(8))),
                       spawns=SpawnSample(interval_s=1.0, execs=execs, exec_count=45, forks=45),
                       bio=BioSample(interval_s=1.0, procs=bio), syscalls=SyscallsSample(interval_s=1.0, counts=calls))
        h.append(snap, model=0)  # the history's own model building is not what is measured
    return h, pid


def _cpu_ms(fn, rounds: int) -> float:
    t0 = time.process_time()
    for _ in range(rounds):
        fn()
    return (time.process_time() - t0) * 1000.0 / rounds


def measure(rounds: int = 30, width: int = 78, height: int = 20) -> dict:
    from textual_plotext.plot import Plot

    from ktop.ui.screens.graphs import series
    from ktop.ui.widgets.sparkline import spark

    model = _models()

    def graphs() -> None:
        for lines in series(model).values():
            plt = Plot()
            plt.plotsize(width, height)
            for label, xs, ys in lines:
                plt.plot(xs, ys, label=label, marker="braille")
            plt.build()

    from ktop.model.pidseries import MAX_POINTS, chart_lines, pid_point
    from ktop.ui.screens.pid import SEED_BUDGET_S

    h, pid = _history()
    snaps = [h.get(i) for i in range(len(h))]
    points = [pid_point(s, pid) for s in snaps]
    lines = chart_lines(points, snaps[-1].time)

    def pid_charts() -> None:  # the PID screen's four, as at 160 columns, over 600 ticks (points kept)
        for chart in chart_lines(points, snaps[-1].time).values():
            plt = Plot()
            plt.plotsize(width // 2, 7)
            for label, xs, ys, right in chart:
                plt.plot(xs, ys, label=label, marker="braille", yside="right" if right else "left")
            plt.build()

    def seed() -> None:  # what the PID screen's worker does on opening: newest first, every kept tick
        h._snap_cache.clear()
        for i in range(len(h) - 1, -1, -1):
            pid_point(h.get(i), pid)

    h._snap_cache.clear()
    t0 = time.process_time()
    for i in range(len(h)):
        h.get(i)
    unpack_ms = (time.process_time() - t0) * 1000.0 / len(h)

    def sparklines() -> None:
        for h in model.cpu_history:
            spark(h, 40, 100.0)

    return {"graphs_ms": round(_cpu_ms(graphs, rounds), 2), "pid_charts_ms": round(_cpu_ms(pid_charts, rounds), 2),
            "pid_point_ms": round(_cpu_ms(lambda: pid_point(snaps[-1], pid), rounds), 3),
            "seed_ms": round(_cpu_ms(seed, 3), 1), "seed_ticks": len(h), "unpack_ms": round(unpack_ms, 2),
            "pid_lines": sum(len(v) for v in lines.values()), "pid_plot_size": f"{width // 2}x7",
            "pid_max_points": MAX_POINTS, "seed_budget_s": SEED_BUDGET_S,
            "sparklines_ms": round(_cpu_ms(sparklines, rounds), 3), "rounds": rounds,
            "plot_size": f"{width}x{height}", "cpus_plotted": len(model.cpu_history)}


def render_md(rec: dict) -> list[str]:
    r = rec
    return ["## Plots (plotext)", "",
            f"CPU time per redraw, {r['rounds']} rounds, each plot {r['plot_size']}: the graphs screen "
            f"(4 plots, {r['cpus_plotted']} cores, 120 samples) {r['graphs_ms']:.1f} ms; the PID screen's four "
            f"charts (each {r['pid_plot_size']}, {r['pid_lines']} lines over {r['seed_ticks']} ticks, thinned to "
            f"{r['pid_max_points']} points) {r['pid_charts_ms']:.1f} ms; the text sparklines of the CPU rows "
            f"{r['sparklines_ms']:.2f} ms (the floor). A plot redraws only while its screen is shown and its "
            f"data changed: at a 1 s refresh the open graphs screen costs about {r['graphs_ms'] / 10:.1f} % of "
            f"a core, the PID screen {r['pid_charts_ms'] / 10:.1f} %. Opening the PID screen seeds its charts from "
            f"the kept history in a thread: {r['seed_ms']:.0f} ms of CPU for {r['seed_ticks']} ticks with every "
            f"probe live ({r['unpack_ms']:.1f} ms a tick to unpack the snapshot; the screen stops after "
            f"{r['seed_budget_s']:g} s, newest ticks first); then {r['pid_point_ms']:.2f} ms a tick for its point.",
            ""]


if __name__ == "__main__":
    r = measure()
    print("\n".join(render_md(r)))
