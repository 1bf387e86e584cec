"""Every registered probe has all its parts, named after it (docs/adding-a-probe.md)."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

from ktop import registry
from ktop.model import Model, snapshot_document, summary_lines
from ktop.model.section import Fold
from ktop.probes.base import ProbeWorker
from ktop.snapshot import LIVE, ProbeStatus, Snapshot

ROOT = Path(__file__).resolve().parent.parent
PROBES = list(registry.PROBES.values())


@pytest.mark.parametrize("p", PROBES, ids=lambda p: p.name)
def test_a_probe_is_four_files_named_after_it(p):
    assert (ROOT / p.program).is_file()
    assert (ROOT / "docs" / "probes" / f"{p.name}.md").is_file()
    assert p.probe.startswith(f"ktop.probes.{p.name}:")
    assert p.model == f"ktop.model.{p.name}"
    assert p.panel.startswith(f"ktop.ui.widgets.{p.name}:")


@pytest.mark.parametrize("p", PROBES, ids=lambda p: p.name)
def test_its_collector_is_a_probe_worker_of_that_name(p):
    cls = registry.probe_class(p.name)
    assert issubclass(cls, ProbeWorker) and cls.name == p.name
    assert Path(cls().source()).name == f"{p.name}.bpf.c"


@pytest.mark.parametrize("p", PROBES, ids=lambda p: p.name)
def test_its_sample_is_a_typed_snapshot_section_and_its_model_a_model_field(p):
    hints = typing.get_type_hints(Snapshot)
    (cls,) = [a for a in typing.get_args(hints[p.section]) if a is not type(None)]
    assert dataclasses.is_dataclass(cls)
    assert p.section in {f.name for f in dataclasses.fields(Model)}


@pytest.mark.parametrize("p", PROBES, ids=lambda p: p.name)
def test_its_model_section_follows_the_protocol(p):
    """ktop.model.section.Section: update, document, summary_lines, Metrics (observe, families)."""
    mod = registry.model_section(p.name)
    for fn, params in (("update", 4), ("document", 3), ("summary_lines", 1), ("table", 1)):
        f = getattr(mod, fn)
        assert len([a for a in inspect.signature(f).parameters.values()
                    if a.default is inspect.Parameter.empty]) == params, fn
    assert callable(mod.Metrics().observe) and callable(mod.Metrics().families)
    # a probe selected but without a sample yet: an empty section, and text that says so
    assert mod.update(None, None, None, Fold()) is None
    doc = mod.document(None, ProbeStatus(p.name, LIVE), 1.0)
    assert isinstance(doc, dict)
    assert all(isinstance(line, str) for line in mod.summary_lines(doc))
    assert mod.table(doc) == []


@pytest.mark.parametrize("p", PROBES, ids=lambda p: p.name)
def test_its_panel_is_a_panel(p):
    from ktop.ui.widgets.panel import Panel

    cls = registry.panel_class(p.name)
    assert issubclass(cls, Panel) and cls.panel_title
    assert p.column in ("left", "right")


def test_panel_order_names_every_probe_once():
    assert sorted(registry.PANEL_ORDER) == sorted(registry.PROBES)


def test_the_document_and_the_text_cover_every_selected_probe():
    from factories import snapshot

    snap = dataclasses.replace(snapshot(), probes=tuple(ProbeStatus(p.name, LIVE) for p in PROBES))
    from ktop.model import build_model

    doc = snapshot_document(build_model(None, snap), 1.0)
    assert all(isinstance(doc[p.section], dict) for p in PROBES)
    text = "\n".join(summary_lines(doc))
    for p in PROBES:
        assert f"\n{p.section}:" in f"\n{text}" or f"\n{p.name}:" in f"\n{text}", p.name
