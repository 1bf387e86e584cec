"""Kernel-function counts (`ktop -f`) through real kprobes, with exact counts.

This machine's kernel has no kprobes: these tests skip here and run inside
the second kernel of `make test-vm` (Debian's 6.1, see docs/testing-vm.md).
The workload is a static C program (tests/real/nreads.c) that makes exactly
N read(2) calls, each one vfs_read() call, under a unique name.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from realutil import KTOP, Snap, unique_name, wait_until

from ktop.probes import features

# kprobes are what the host kernel lacks: every test here also runs in make test-vm's kernel.
pytestmark = [pytest.mark.real, pytest.mark.vm]

NO_KPROBES = "this kernel has no kprobes (CONFIG_KPROBES is not set)"
N = 137
KPROBE_LIST = Path("/sys/kernel/debug/kprobes/list")


def funcs_unavailable_reason() -> str | None:
    """Why kernel-function targets cannot be tested here, or None."""
    if os.geteuid() != 0:
        return f"real-probe tests need root (uid {os.geteuid()})"
    if not features.kprobes_available():
        return NO_KPROBES
    if importlib.util.find_spec("ktop.probes.funcs") is None:
        return "the funcs probe (ktop/probes/funcs.py) is not there yet"
    if not features.bcc_available():
        return "BCC is not installed (python3-bpfcc)"
    if features.tracefs() is None:
        return "tracefs is not mounted"
    if features.bpf_syscall() != 0:
        return "bpf(2) does not work here: " + os.strerror(features.bpf_syscall())
    ok, detail = features.kernel_headers()
    if not ok:
        return f"no kernel headers for BCC ({detail})"
    return None


def require_kprobes() -> None:
    reason = funcs_unavailable_reason()
    if reason:
        pytest.skip(reason)


def _regex(pattern: str) -> str:
    return "^" + "".join(".*" if c == "*" else re.escape(c) for c in pattern) + "$"


def candidates(pattern: str) -> set[str]:
    """BCC's kprobe candidates for a '*' pattern (funccount's list: kallsyms less the kprobe blacklist)."""
    from bcc import BPF

    return {f.decode() for f in BPF.get_kprobe_functions(_regex(pattern).encode())}


def traceable(pattern: str) -> set[str]:
    """The candidates a kprobe can really attach to: the kernel refuses notrace functions
    ("Could not probe notrace function"), that is those missing from available_filter_functions."""
    found = candidates(pattern)
    t = features.tracefs()
    try:
        with open(t / "available_filter_functions") as f:
            ftrace = {line.split()[0] for line in f if line.strip()}
    except (OSError, TypeError):
        return found
    return found & ftrace


def kallsyms_text(pattern: str) -> set[str]:
    """Every text symbol of the kernel proper matching the pattern: traceable or not."""
    rx = re.compile(_regex(pattern))
    out = set()
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tTwW" and rx.match(parts[2]):
                out.add(parts[2])
    return out


def registered_kprobes() -> list[str]:
    """The functions of every kprobe registered in the kernel (debugfs), or [] when it cannot be read."""
    try:
        lines = KPROBE_LIST.read_text().splitlines()
    except OSError:
        return []
    out = []
    for ln in lines:
        parts = ln.split()
        if len(parts) >= 3:
            out.append(parts[2].split("+", 1)[0])
    return out


@pytest.fixture(scope="module")
def build_nreads(tmp_path_factory):
    """Builds the workload (static, under a name unique to this run) on first use, after the
    feature checks: a kernel without kprobes is the reason a test gives, not a missing compiler."""
    built: list[Path] = []

    def build() -> Path:
        if built:
            return built[0]
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            pytest.skip("no C compiler (apt-get install gcc libc6-dev)")
        exe = tmp_path_factory.mktemp("nreads") / unique_name("kr")
        src = Path(__file__).with_name("nreads.c")
        r = subprocess.run([cc, "-O2", "-static", "-o", str(exe), str(src)], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            pytest.skip(f"cannot build a static program (libc6-dev?): {r.stderr.strip()[-200:]}")
        built.append(exe)
        return exe

    return build


def run_reads(exe: Path, n: int = N) -> int:
    """Runs the workload (n reads of a file of its own); returns its PID."""
    data = exe.with_suffix(".dat")
    data.write_bytes(b"k")
    p = subprocess.Popen([str(exe), str(data), str(n)])
    assert p.wait(120) == 0
    return p.pid


def snapshot_with(args: list[str], exe: Path, duration: float = 4.0) -> tuple[dict, int, list[str]]:
    """Runs `ktop snapshot --probes funcs ARGS`, the workload once it collects; (doc, pid, kprobes seen)."""
    with Snap("--probes", "funcs", *args, duration=duration) as snap:
        snap.wait_collecting(60)
        during = registered_kprobes()
        pid = run_reads(exe)
        assert snap.proc.poll() is None, "ktop stopped before the workload finished: raise the duration"
        rc, doc = snap.finish(timeout=duration + 60)
    assert rc == 0, snap.stderr
    assert doc["probes"]["funcs"]["status"] == "live", doc["probes"]["funcs"]
    return doc, pid, during


def counts_for(doc: dict, pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in doc["funcs"]["counts"]:
        if c["pid"] == pid:
            out[c["function"]] = out.get(c["function"], 0) + c["count"]
    return out


def test_the_workload_makes_exactly_n_read_syscalls(build_nreads):
    """The workload itself, checked where kprobes are not needed: N sys_enter_read events for its PID."""
    reason = funcs_unavailable_reason()
    if reason and reason != NO_KPROBES:
        pytest.skip(reason)
    if not features.tracepoint_exists("syscalls", "sys_enter_read"):
        pytest.skip("this kernel lacks tracepoint syscalls:sys_enter_read")
    nreads = build_nreads()
    doc, pid, _ = snapshot_with(["-f", "t:syscalls:sys_enter_read"], nreads)
    assert counts_for(doc, pid) == {"syscalls:sys_enter_read": N}


@pytest.mark.parametrize("spec", ["vfs_read", "k:vfs_read"])
def test_n_reads_are_n_vfs_read_calls(spec, build_nreads):
    require_kprobes()
    nreads = build_nreads()
    before = registered_kprobes()
    doc, pid, during = snapshot_with(["-f", spec], nreads)
    (target,) = doc["funcs"]["targets"]
    assert target["spec"] == spec
    assert target["status"] == "live", target
    assert target["attached"] == 1 and target["matched"] == 1, target
    assert counts_for(doc, pid) == {"vfs_read": N}, [c for c in doc["funcs"]["counts"] if c["pid"] == pid]
    (row,) = [c for c in doc["funcs"]["counts"] if c["pid"] == pid]
    assert row["comm"] == nreads.name and row["target"] == spec
    if KPROBE_LIST.exists():
        assert during.count("vfs_read") == before.count("vfs_read") + 1, during
        assert wait_until(lambda: registered_kprobes() == before, 10), "ktop left a kprobe behind"


def test_wildcard_attaches_every_traceable_match(build_nreads):
    require_kprobes()
    nreads = build_nreads()
    expected = traceable("vfs_r*")
    assert "vfs_read" in expected
    untraceable = (kallsyms_text("vfs_r*") | candidates("vfs_r*")) - expected
    before = registered_kprobes()
    doc, pid, during = snapshot_with(["-f", "vfs_r*"], nreads)
    (target,) = doc["funcs"]["targets"]
    assert target["status"] == "live", target
    assert target["attached"] == len(expected), (target, sorted(expected))
    assert target["matched"] >= target["attached"]
    if untraceable:
        assert f"skipped {len(untraceable)}" in target["detail"], (target, sorted(untraceable))
    else:
        assert "skipped" not in target["detail"], target
    assert counts_for(doc, pid).get("vfs_read") == N, counts_for(doc, pid)
    assert {c["function"] for c in doc["funcs"]["counts"]} <= expected
    if KPROBE_LIST.exists():  # the kernel's own list: one new kprobe on each traceable match
        new = list(during)
        for f in before:
            new.remove(f)
        assert sorted(new) == sorted(expected)
        assert wait_until(lambda: registered_kprobes() == before, 10), "ktop left kprobes behind"


def _mixed_pattern() -> tuple[str, set[str], set[str]]:
    """A pattern with both traceable and untraceable matches on this kernel (and not too many)."""
    for pattern in ("vfs_r*", "vfs_*", "do_sys*", "security_*", "filemap_*"):
        ok = traceable(pattern)
        bad = (kallsyms_text(pattern) | candidates(pattern)) - ok
        if ok and bad and len(ok) <= 300:
            return pattern, ok, bad
    pytest.skip("no candidate pattern has untraceable matches on this kernel")


def test_wildcard_skips_untraceable_matches_with_a_warning(build_nreads):
    require_kprobes()
    nreads = build_nreads()
    pattern, ok, bad = _mixed_pattern()
    doc, pid, _ = snapshot_with(["-f", pattern, "--funcs-max", str(len(candidates(pattern)))], nreads)
    (target,) = doc["funcs"]["targets"]
    assert target["status"] == "live", target
    assert target["attached"] == len(ok), (target, len(ok))
    detail = target["detail"]
    assert f"skipped {len(bad)}" in detail, (detail, sorted(bad))
    assert "cannot be traced" in detail or "attach failed" in detail
    assert any(name in detail for name in bad), (detail, sorted(bad))
    if "vfs_read" in ok:
        assert counts_for(doc, pid).get("vfs_read") == N


def test_pattern_above_the_cap_is_refused_with_its_count():
    require_kprobes()
    # the count it would have attached: funccount's candidates, or those the kernel really takes
    would = {len(candidates("vfs_*")), len(traceable("vfs_*"))}
    cap = 5
    assert min(would) > cap
    before = registered_kprobes()
    r = subprocess.run([*KTOP, "snapshot", "--probes", "funcs", "-f", "vfs_*", "--funcs-max", str(cap),
                        "--duration", "1", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr)
    m = re.search(r"matches (\d+) kernel functions, more than the cap of (\d+)", r.stderr)
    assert m and int(m.group(1)) in would and int(m.group(2)) == cap, (r.stderr, would)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert registered_kprobes() == before


def test_doctor_says_kprobes_are_available():
    """`ktop doctor` on a kernel with kprobes: the check is ok and every probe starts (the guest of make test-vm)."""
    require_kprobes()
    r = subprocess.run([*KTOP, "doctor"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\s*\[ok  \] kprobes\s+available", r.stdout, re.M), r.stdout
    assert "Traceback" not in r.stderr
    statuses = dict(re.findall(r"^  (\w+)\s+(live|unsupported|failed|needs-root|disabled)\b",
                               r.stdout.split("probe status", 1)[-1], re.M))
    assert statuses, r.stdout
    assert all(s == "live" for s in statuses.values()), r.stdout
