"""Helpers of the real-probe tests: feature gates and a running `ktop snapshot`."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

from ktop.probes import features

BIN = Path(sys.executable).parent
KTOP = [str(BIN / "ktop")] if (BIN / "ktop").exists() else [sys.executable, "-m", "ktop"]
# A slower machine (the TCG guest of `make test-vm`) stretches ktop's run time and the waits.
TIME_SCALE = max(1.0, float(os.environ.get("KTOP_TEST_TIME_SCALE") or 1))
# ... and how much longer `ktop snapshot` collects (a cost in every test: kept apart from the waits).
DURATION_SCALE = max(1.0, float(os.environ.get("KTOP_TEST_DURATION_SCALE") or TIME_SCALE))


def probe_unavailable_reason(probe_cls: type) -> Optional[str]:
    """Why a probe cannot run here, or None: the probe's own feature checks (ProbeWorker.check)."""
    from ktop.probes.base import ProbeUnavailable

    if os.geteuid() != 0:
        return f"real-probe tests need root (uid {os.geteuid()})"
    try:
        probe_cls().check()
    except ProbeUnavailable as exc:
        return exc.detail
    return None


def spawn_unavailable_reason(need_btf: bool = False) -> Optional[str]:
    """Why the spawn probe cannot run here, or None. Features, not versions."""
    from ktop.probes.spawn import SpawnProbe

    reason = probe_unavailable_reason(SpawnProbe)
    if reason:
        return reason
    if features.bpf_syscall() != 0:
        return "bpf(2) does not work here: " + os.strerror(features.bpf_syscall())
    if need_btf and not features.btf_available():
        return "this kernel has no BTF: exit codes and lifetimes are unknown"
    return None


def require_spawn(need_btf: bool = False) -> None:
    reason = spawn_unavailable_reason(need_btf)
    if reason:
        pytest.skip(reason)


def unique_name(prefix: str = "kt") -> str:
    """A command name unique to this run, within TASK_COMM_LEN - 1 = 15 characters."""
    name = f"{prefix}{secrets.token_hex(5)}"
    assert len(name) <= 15
    return name


def unique_copy(src: str, dest_dir: Path, prefix: str = "kt") -> Path:
    """A copy of the program ``src`` under a unique name (the comm the kernel reports)."""
    dst = dest_dir / unique_name(prefix)
    shutil.copy2(shutil.which(src) or src, dst)
    dst.chmod(0o755)
    return dst


def prog_ids_of(pid: int) -> set[int]:
    """BPF program ids held open by process ``pid`` (from /proc/PID/fdinfo)."""
    ids = set()
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for f in fdinfo.iterdir():
        try:
            text = f.read_text()
        except OSError:
            continue
        m = re.search(r"^prog_id:\s*(\d+)", text, re.M)
        if m:
            ids.add(int(m.group(1)))
    return ids


def loaded_prog_ids() -> set[int]:
    """Every BPF program loaded in the kernel (bpftool)."""
    if not shutil.which("bpftool"):
        pytest.skip("bpftool is not installed")
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, check=True,
                         timeout=30).stdout
    return {p["id"] for p in json.loads(out or b"[]")}


def prog_names(ids: set[int]) -> list[str]:
    """The kernel's names of these BPF programs (bpftool)."""
    if not shutil.which("bpftool"):
        pytest.skip("bpftool is not installed")
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, check=True, timeout=30).stdout
    return [p.get("name", "") for p in json.loads(out or b"[]") if p["id"] in ids]


def probe_events() -> dict[str, set[str]]:
    """The lines of tracefs kprobe_events / uprobe_events (absent files count as empty)."""
    t = features.tracefs()
    out = {}
    for name in ("kprobe_events", "uprobe_events"):
        p = t / name if t else None
        try:
            out[name] = set(p.read_text().splitlines()) if p else set()
        except OSError:
            out[name] = set()
    return out


class Snap:
    """`ktop snapshot ... --json` running in the background."""

    COLLECTING = "ktop: collecting"

    def __init__(self, *args: str, duration: float = 5.0, env=None):
        self.argv = [*KTOP, "snapshot", "--duration", str(duration * DURATION_SCALE), "--json", *args]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.pid = self.proc.pid
        self.stderr_lines: list[str] = []
        self.collecting = threading.Event()
        self._stdout = b""
        self._t_err = threading.Thread(target=self._read_stderr, daemon=True)
        self._t_out = threading.Thread(target=self._read_stdout, daemon=True)
        self._t_err.start()
        self._t_out.start()

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.stderr_lines.append(line)
            if line.startswith(self.COLLECTING):
                self.collecting.set()

    def _read_stdout(self):
        self._stdout = self.proc.stdout.read()

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def wait_collecting(self, timeout: float = 30.0) -> None:
        if not self.collecting.wait(timeout * TIME_SCALE):
            self.kill()
            raise AssertionError(f"ktop never said it was collecting; stderr:\n{self.stderr}")

    def finish(self, timeout: float = 30.0) -> tuple[int, dict]:
        """Waits for the exit; returns (exit code, the JSON document)."""
        try:
            rc = self.proc.wait(timeout * TIME_SCALE)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._t_out.join(10)
        self._t_err.join(10)
        try:
            doc = json.loads(self._stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not JSON ({exc}); rc={rc}; stderr:\n{self.stderr}") from exc
        return rc, doc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def wait_until(pred, timeout: float, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
