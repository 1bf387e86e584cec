"""v: the graphs screen (plotext): what it plots, that it redraws only on new data, and back."""

from __future__ import annotations

from dataclasses import replace

from ktop.app import KtopApp
from ktop.model import build_model
from ktop.ui.screens.graphs import GraphsScreen, series
from tests.ui import bio_fakes, fakes


def _models(n: int = 5):
    model = None
    out = []
    for i in range(n):
        snap = replace(fakes.snapshot(spawn=fakes.spawn_sample(), t=fakes.T0 + i, cpu=(10.0 * i, 50.0)),
                       bio=bio_fakes.tick_sample(i))
        model = build_model(model, snap)
        out.append(model)
    return out


def test_series_have_a_time_axis_and_every_plot():
    m = _models()[-1]
    s = series(m)
    assert set(s) == {"g-cpu", "g-mem", "g-exec", "g-bio"}
    label, xs, ys = s["g-cpu"][0]
    assert label == "cpu0" and xs == [-4.0, -3.0, -2.0, -1.0, 0.0] and ys == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert s["g-exec"][0][2][-1] == m.spawns.rates.execs_per_s
    assert s["g-bio"] and all(len(x) == len(y) for _, x, y in s["g-bio"])


async def test_v_opens_the_graphs_they_follow_the_model_and_v_closes():
    app = KtopApp(fakes.FakeSource(), autostart=False)
    models = _models()
    async with app.run_test(size=(120, 40)) as pilot:
        app.show_model(models[0])
        await pilot.press("v")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, GraphsScreen)
        assert screen._drawn["g-cpu"] == series(models[0])["g-cpu"]
        app.show_model(models[-1])
        await pilot.pause()
        assert screen._drawn["g-cpu"] == series(models[-1])["g-cpu"]
        drawn = dict(screen._drawn)
        app.show_model(models[-1])  # the same data: nothing is rebuilt
        assert all(screen._drawn[k] is drawn[k] for k in drawn)
        text = screen.query_one("#g-cpu").render().plain
        assert "cpu0" in text and "seconds ago" in text
        await pilot.press("v")
        await pilot.pause()
        assert not isinstance(app.screen, GraphsScreen)
