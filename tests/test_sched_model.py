"""The sched model section over hand-made samples: percentiles, rates, totals, the document."""

from __future__ import annotations

from dataclasses import replace

from ktop.model import sched
from ktop.model.section import Fold
from tests.ui import fakes, sched_fakes


def _model(n: int = 1, make=sched_fakes.sample):
    m = None
    snap = fakes.snapshot()
    for _ in range(n):
        m = sched.update(m, make(), snap, Fold())
    return m


def test_window_rows_have_percentiles_rates_and_off_cpu_per_second():
    m = _model(2)
    rows = {p.pid: p for p in m.procs}
    w = rows[100]
    assert w.waits == 200 and w.waits_per_s == 100.0
    # 90 waits in [2048, 4096) us and 10 in [8192, 16384): the p50 lies in the first slot, the p99 in the second
    assert 2048 <= w.p50_us < 4096 and 8192 <= w.p99_us <= 12500 and w.max_us == 12500
    assert rows[200].off_s_ms_per_s == 1000.0 and rows[300].off_d_ms_per_s == 300.0
    assert m.procs[0].pid == 100  # most waits first


def test_the_document_totals_the_run_with_units():
    doc = sched.document(_model(3), None, 3.0)
    by = {p["pid"]: p for p in doc["by_process"]}
    assert by[200]["off_cpu_s_s"] == 3.0 and by[300]["off_cpu_d_s"] == 0.9
    assert by[100]["count"] == 300 and by[100]["waits_per_s"] == 100.0
    assert by[100]["avg_us"] == 3900.0  # from the kernel's exact sum
    assert sum(b["count"] for b in by[100]["histogram"]) == 300
    assert all(set(b) == {"low_us", "high_us", "count"} for b in by[100]["histogram"])
    assert [c["cpu"] for c in doc["cpus"]] == [0, 1]
    assert doc["runq"]["count"] == 3 * 111 and doc["counters"]["switches"] == 15000


def test_summary_and_table_never_pass_control_characters():
    doc = sched.document(_model(), None, 1.0)
    text = "\n".join(sched.summary_lines(doc))
    assert "\x1b" not in text and "waker" in text
    rows = sched.table(doc)
    assert {r["pid"] for r in rows} == {100, 200, 300}


def test_without_a_sample_the_section_stays_and_forgets_the_dead():
    m = _model()
    assert sched.update(m, None, fakes.snapshot(), Fold()) is m
    live = fakes.snapshot()
    m2 = sched.update(m, sched_fakes.sample(), live, Fold(forget_dead_s=5.0))
    alive = {p.pid for p in live.processes}
    assert set(m2.proc_totals) <= alive


def test_totals_are_bounded():
    totals, dropped = sched.add_totals({}, sched_fakes.sample().procs, limit=2)
    assert len(totals) == 2 and dropped == 1


def test_metrics_families():
    from prometheus_client import core

    met = sched.Metrics()
    met.observe(sched_fakes.sample(), fakes.snapshot())
    fams = {f.name: f for f in met.families(core)}
    assert set(fams) == {"ktop_sched_runqueue_latency_seconds", "ktop_sched_off_cpu_seconds"}
    off = {tuple(s.labels.values()): s.value for s in fams["ktop_sched_off_cpu_seconds"].samples}
    assert off[("sleeper", "?", "S")] == 1.0  # (comm, cgroup, state): the fake PID is in no process table


def test_an_old_recording_without_the_section_reads():
    from ktop.snapshot import snapshot_from_jsonable, to_jsonable

    data = to_jsonable(fakes.snapshot())
    data.pop("sched", None)
    assert snapshot_from_jsonable(data).sched is None
    s = replace(fakes.snapshot(), sched=sched_fakes.sample())
    assert snapshot_from_jsonable(to_jsonable(s)).sched == s.sched


def test_slow_waits_keep_the_slowest_of_the_window_and_of_the_run():
    from ktop.snapshot import SchedSlowWait

    def wait(ms: int, t: float) -> SchedSlowWait:
        return SchedSlowWait(time=t, pid=100, tgid=100, comm="waker", cpu=0, wait_ns=ms * 1_000_000,
                             prev_pid=400, prev_tgid=400, prev_comm="hog")

    m = None
    snap = fakes.snapshot()
    first = replace(sched_fakes.sample(), slow=(wait(90, 1.0),), slow_waits=1)
    m = sched.update(m, first, snap, Fold())
    for i in range(sched.WINDOW):  # the 90 ms wait leaves the window, not the run
        m = sched.update(m, replace(sched_fakes.sample(), slow=tuple(wait(11 + i, 2.0 + i + j / 10) for j in range(3)),
                                    slow_waits=5, slow_lost=1), snap, Fold())
    assert [w.wait_ns // 1_000_000 for w in m.recent_slow][:4] == [15, 15, 15, 14]
    assert len(m.recent_slow) == sched.SLOWEST and m.slowest[0].wait_ns == 90_000_000
    assert len(m.slowest) == sched.SLOWEST and m.recent_slow[0].time == 6.0  # ties: the earliest first
    doc = sched.document(m, None, 6.0)
    assert doc["slow_threshold_us"] == 10_000.0
    assert doc["slowest"][0] == {"time": 1.0, "pid": 100, "tgid": 100, "comm": "waker", "cpu": 0, "wait_us": 90_000.0,
                                 "prev_pid": 400, "prev_tgid": 400, "prev_comm": "hog"}
    assert doc["counters"]["slow_waits"] == 1 + 5 * sched.WINDOW and doc["counters"]["slow_lost"] == sched.WINDOW
    text = "\n".join(sched.summary_lines(doc))
    assert "slowest run-queue waits (>= 10000 us; 26 in all)" in text and "slow_lost 5" in text


def _off_model(n: int = 1):
    return _model(n, sched_fakes.offcpu_sample)


def test_offcpu_stacks_sum_over_the_run_per_process_and_machine_wide():
    doc = sched.document(_off_model(3), None, 3.0)
    off = doc["offcpu"]
    assert off["min_block_us"] == 1000.0 and off["stacks_kept"] == 3 and off["dropped_s"] == 0
    top = off["stacks"][0]
    assert (top["pid"], top["state"], top["off_cpu_s"], top["blocks"]) == (200, "S", 3.0, 3)
    assert top["frames"][-3:] == ["do_nanosleep", "schedule", "__schedule"]
    machine = off["machine"]
    assert [(s["state"], s["off_cpu_s"], s["blocks"]) for s in machine] == [("S", 3.3, 9), ("D", 0.9, 30)]
    assert "io_schedule" in machine[1]["frames"]
    assert doc["counters"]["off_blocks"] == 39
    text = "\n".join(sched.summary_lines(doc))
    assert "off-CPU stacks (blocks >= 1000 us; 39 blocks)" in text and "__schedule < schedule < do_nanosleep" in text
    assert "\x1b" not in text


def test_without_offcpu_stacks_the_document_says_null():
    assert sched.document(_model(1), None, 1.0)["offcpu"] is None
    assert sched.folded_offcpu(_model(1)) == []


def test_the_recent_window_and_the_run_are_bounded():
    m = _off_model(sched.WINDOW + 3)
    assert len(m.off_window) == sched.WINDOW
    assert m.recent_off[0].off_ns == sched.WINDOW * 1_000_000_000
    totals, dropped = sched.add_off(m.off_totals, sched_fakes.offcpu_sample().offcpu, limit=2)
    assert len(totals) == 2 and dropped == (sched.WINDOW + 4) * 100_000_000  # the waker's, the least


def test_offcpu_stacks_fold_with_the_state_as_leaf_in_microseconds():
    lines = sched.folded_offcpu(_off_model(2))
    assert lines[0] == ("sleeper;entry_SYSCALL_64_after_hwframe_[k];do_syscall_64_[k];__x64_sys_clock_nanosleep_[k];"
                        "hrtimer_nanosleep_[k];do_nanosleep_[k];schedule_[k];__schedule_[k];[S] 2000000")
    assert lines[1].startswith("reader_[31m;") and lines[1].endswith("[D] 600000")
    by_pid = sched.folded_offcpu(_off_model(1), by_pid=True)
    assert by_pid[0].startswith("sleeper-200;")
