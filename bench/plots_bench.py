"""The cost of ktop's plots (plotext, through textual-plotext): CPU time per redraw of the graphs
screen (v) and of the PID screen's chart, against the text sparklines the panels draw instead.

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

    def pid_chart() -> None:
        plt = Plot()
        plt.plotsize(2 * width, 9)
        xs = list(range(-119, 1))
        plt.plot(xs, [float(i % 50) for i in xs], label="CPU %", marker="braille")
        plt.plot(xs, [100.0 + i for i in xs], label="RSS MiB", marker="braille", yside="right")
        plt.build()

    def sparklines() -> None:
        for h in model.cpu_history:
            spark(h, 40, 100.0)

    return {"graphs_ms": round(_cpu_ms(graphs, rounds), 2), "pid_chart_ms": round(_cpu_ms(pid_chart, rounds), 2),
            "sparklines_ms": round(_cpu_ms(sparklines, rounds), 3), "rounds": rounds,
            "plot_size": f"{width}x{height}", "cpus_plotted": len(model.cpu_history)}


def render_md(rec: dict) -> list[str]:
    return ["## Plots (plotext)", "",
            f"CPU time per redraw, {rec['rounds']} rounds, each plot {rec['plot_size']}: the graphs screen "
            f"(4 plots, {rec['cpus_plotted']} cores, 120 samples) {rec['graphs_ms']:.1f} ms; the PID screen's "
            f"chart {rec['pid_chart_ms']:.1f} ms; the text sparklines of the CPU rows {rec['sparklines_ms']:.2f} ms "
            "(the floor). A plot redraws only while its screen is shown and its data changed: at a 1 s "
            f"refresh the open graphs screen costs about {rec['graphs_ms'] / 10:.1f} % of a core.", ""]


if __name__ == "__main__":
    r = measure()
    print("\n".join(render_md(r)))
