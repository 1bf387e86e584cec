"""The profile model: samples per process, hottest functions (self and total), folded stacks, bounds,
the JSON section and its text summary."""

from __future__ import annotations

from dataclasses import replace

from ktop.model import build_model, snapshot_document, summary_lines
from ktop.model import profile as m
from ktop.snapshot import LIVE, ProbeStatus, ProfileSample, ProfileStack
from tests.ui import fakes, profile_fakes


def snap(sample, t=fakes.T0):
    return replace(fakes.snapshot(t=t), profile=sample,
                   probes=(ProbeStatus("spawn", LIVE), ProbeStatus("profile", LIVE)))


def test_self_and_total_samples_of_functions_and_processes():
    p = build_model(None, snap(profile_fakes.sample())).profile
    funcs = {f.name: f for f in p.hottest(100)}
    assert (funcs["spin_here"].self_samples, funcs["spin_here"].total_samples) == (45, 45)
    assert (funcs["main"].self_samples, funcs["main"].total_samples) == (4, 49 + 30)
    assert funcs["__x64_sys_getppid_[k]"].self_samples == 30 and funcs["__x64_sys_getppid_[k]"].kernel
    assert funcs["getppid"].total_samples == 30 and funcs["getppid"].self_samples == 0
    assert p.hottest(1)[0].name == "spin_here"
    assert [f.name for f in p.hottest(2, pid=100)] == ["spin_here", "main"]
    hog = next(r for r in p.procs if r.pid == 100)
    assert (hog.samples, hog.last_samples) == (49, 49) and abs(hog.cpu_percent - 100.0) < 1e-9
    assert abs(p.cpu_percent - 100.0 * 87 / 98) < 1e-9  # 87 samples of 2 CPUs x 49 Hz x 1 s


def test_recursion_counts_once_in_total():
    s = ProfileSample(interval_s=1.0, hz=49, samples=10,
                      stacks=(ProfileStack(pid=1, comm="r", count=10, user=("main", "f", "f", "f")),))
    f = {x.name: x for x in build_model(None, snap(s)).profile.hottest(10)}["f"]
    assert (f.self_samples, f.total_samples) == (10, 10)


def test_two_ticks_add_up_and_a_quiet_process_shows_no_cpu():
    a = build_model(None, snap(profile_fakes.sample()))
    quiet = ProfileSample(interval_s=2.0, hz=49, cpus=2, samples=4,
                          stacks=(ProfileStack(pid=200, comm="getppid", count=4, user=("main", "getppid")),))
    b = build_model(a, snap(quiet, t=fakes.T0 + 2)).profile
    hog = next(r for r in b.procs if r.pid == 100)
    assert (hog.samples, hog.last_samples, hog.cpu_percent) == (49, 0, 0.0)
    g = next(r for r in b.procs if r.pid == 200)
    assert g.samples == 34 and abs(g.cpu_percent - 100.0 * 4 / 98) < 1e-9
    assert b.totals.samples == 87 + 4 and b.totals.seconds == 3.0
    assert b.stacks[(200, "getppid", ("main", "getppid"))] == 4


def test_folded_lines_merge_by_command_and_make_hostile_names_harmless():
    p = build_model(None, snap(profile_fakes.sample())).profile
    lines = m.folded(p)
    assert lines[0] == "hog;_start;__libc_start_main;main;spin_here 45"
    assert ("getppid;main;getppid;entry_SYSCALL_64_after_hwframe_[k];do_syscall_64_[k];__x64_sys_getppid_[k] 30"
            in lines)
    assert "kworker/0:1;worker_thread_[k];process_one_work_[k] 5" in lines
    evil = next(x for x in lines if x.startswith("evil"))
    assert evil == "evil_[31m_x;[missed_user_stack] 3"  # no ESC, no extra field separator
    assert all(x.isprintable() for x in lines)
    assert m.folded(p, by_pid=True)[0].startswith("hog-100;")
    assert m.folded(None) == []


def test_bounds_count_what_did_not_fit(monkeypatch):
    monkeypatch.setattr(m, "MAX_STACKS", 2)
    monkeypatch.setattr(m, "MAX_FUNCS", 3)
    p = build_model(None, snap(profile_fakes.sample())).profile
    assert len(p.stacks) == 2 and p.totals.stacks_dropped == 30 + 5 + 3
    assert len(p.funcs) == 3 and p.totals.funcs_dropped > 0


def test_the_json_section_and_its_summary():
    model = build_model(None, snap(profile_fakes.sample()))
    doc = snapshot_document(model, 1.0)["profile"]
    assert (doc["hz"], doc["cpus"], doc["samples"], doc["idle_samples"]) == (49, 2, 87, 11)
    assert doc["processes"][0]["pid"] == 100 and doc["processes"][0]["samples"] == 49
    assert doc["processes"][0]["functions"][0]["function"] == "spin_here"
    assert abs(doc["processes"][0]["functions"][0]["self_percent"] - 100.0 * 45 / 49) < 1e-9
    top = doc["functions"][0]
    assert (top["function"], top["kernel"], top["self_samples"]) == ("spin_here", False, 45)
    k = next(f for f in doc["functions"] if f["function"] == "__x64_sys_getppid")
    assert k["kernel"] is True and abs(k["self_percent"] - 100.0 * 30 / 87) < 1e-9
    st = next(s for s in doc["stacks"] if s["pid"] == 200)
    assert st["kernel_frames"] == 3 and st["frames"][-1] == "__x64_sys_getppid" and st["samples"] == 30
    assert doc["counters"]["user_stack_lost"] == 3 and doc["lost"] == 0
    assert (doc["counters"]["user_stack_none"], doc["counters"]["kernel_stack_none"]) == (5, 49)
    text = "\n".join(summary_lines(snapshot_document(model, 1.0)))
    assert "profile: 87 samples at 49 Hz on 2 CPUs" in text and "spin_here" in text
    assert "\x1b" not in text


def test_metrics_count_samples_by_command():
    mt = m.Metrics()
    mt.observe(profile_fakes.sample(), snap(profile_fakes.sample()))
    from prometheus_client import core

    fams = {f.name: f for f in mt.families(core)}
    by_comm = {s.labels["comm"]: s.value for s in fams["ktop_profile_samples"].samples}
    assert by_comm["hog"] == 49 and by_comm["getppid"] == 30
    assert fams["ktop_profile_idle_samples"].samples[0].value == 11
