"""The alert rules (contrib/ktop-alerts.yml): valid for promtool, firing as their unit tests say,
on metrics ktop exports, each with a panel in the Grafana dashboard."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "contrib" / "ktop-alerts.yml"
DASHBOARD = ROOT / "contrib" / "grafana-ktop.json"


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian: prometheus; make install brings it)")
    return tool


def test_promtool_checks_the_rules():
    r = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 9 rules found" in r.stdout


def test_promtool_unit_tests_of_the_rules():
    r = subprocess.run([_promtool(), "test", "rules", "ktop-alerts-test.yml"], cwd=ROOT / "tests" / "promtool",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def _rule_metrics() -> dict[str, set[str]]:
    out, alert = {}, None
    for line in RULES.read_text().splitlines():
        m = re.match(r"\s*- alert: (\w+)", line)
        if m:
            alert = m.group(1)
            out[alert] = set()
        elif alert and "summary" not in line and "description" not in line:
            out[alert] |= {re.sub(r"_(bucket|sum|count)$", "", x) for x in re.findall(r"\bktop_\w+", line)}
    return out


def test_every_alert_watches_exported_metrics_and_has_a_panel():
    exported = (ROOT / "docs" / "prometheus.md").read_text()
    exprs = " ".join(t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", ()))
    for alert, metrics in _rule_metrics().items():
        assert metrics, alert
        for m in metrics:
            assert f"`{m}`" in exported, (alert, m)  # documented as exported
            assert m in exprs, f"{alert}: no dashboard panel shows {m}"
