#!/usr/bin/env python3
"""ktop benchmark: start-up time and UI cost against htop and btop.

Runs every tool in a real terminal (a private tmux server, 160x48), measures
it from /proc, and writes bench/results.json and bench/results.md.
See bench/README.md. Standard library only (psutil is not needed).

    python bench/run.py            # the full run (about 10 minutes)
    python bench/run.py --quick    # a smoke run: 1 repeat, 5 s windows
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import itertools
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import flags_bench  # noqa: E402  (the flag detector's cost per tick)
import plots_bench  # noqa: E402  (the plots' redraw cost)
import probe_bench  # noqa: E402  (probe cost, kernel-side cost, capacity, tick cost)

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# The goals the product set itself (see the task brief / README).
# Issue "ktop's own cost, part 1": peak RSS, idle CPU (absolute and against btop), start-up.
BUDGET_RSS_MB = 64.0
BUDGET_IDLE_CPU_PCT = 1.0
BUDGET_IDLE_VS_BTOP = 2.0
BUDGET_FIRST_FRAME_S = 0.5
BUDGET_PROBES_LIVE_S = 1.2

# The floors: Textual itself, static and with as many changed lines a second as ktop's idle
# dashboard (bench/floor_app.py); run in the idle scenario only.
FLOORS = ("textual-static", "textual-lines", "textual-table")
TOOLS = ("ktop", "htop", "btop") + FLOORS
SECTIONS = ("startup", "ui", "probes", "kernel", "capacity", "tick", "plots", "flags")
SCENARIOS = ("idle", "loaded")
SCENARIO_TITLES = {
    "idle": "machine as it is",
    "loaded": "+{sleepers} sleeping processes, exec churn {churn:g}/s",
}

# One tool's command line at a 1 s refresh. btop's interval comes from its
# config file (update_ms = 1000), written into a private XDG_CONFIG_HOME.
def tool_argv(tool: str, interval_s: float) -> list[str]:
    if tool == "ktop":
        return ["ktop", f"{interval_s:g}"]
    if tool == "htop":
        return ["htop", "-d", str(max(1, round(interval_s * 10)))]
    if tool == "btop":
        return ["btop"]
    if tool in FLOORS:
        return [sys.executable, os.path.join(HERE, "floor_app.py"), tool.split("-")[1], "--interval", f"{interval_s:g}"]
    raise ValueError(tool)


def tool_missing(tool: str) -> Optional[str]:
    if tool in FLOORS:
        try:
            import textual  # noqa: F401
        except ImportError:
            return "textual is not importable by the bench's Python"
        return None
    return None if shutil.which(tool) else f"{tool} not on PATH"


class Interrupted(BaseException):
    """SIGTERM/SIGHUP: unwinds like Ctrl-C so every ``finally`` runs."""


def _on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- /proc

def read_stat(pid: int) -> Optional[dict]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    # rest[0] is field 3 (state): field n is rest[n - 3].
    return {
        "state": rest[0],
        "ppid": int(rest[1]),
        "own": int(rest[11]) + int(rest[12]),       # utime + stime, all threads
        "reaped": int(rest[13]) + int(rest[14]),    # cutime + cstime (waited-for children)
        "start": int(rest[19]),
        "rss_kb": int(rest[21]) * PAGE_KB,
    }


def read_status_kb(pid: int, key: str) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    total = sum(vals[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - vals[3] - vals[4], total


def other_cpu_pct(c0: tuple[int, int], c1: tuple[int, int], measured_pct: float) -> float:
    """CPU the rest of the machine used meanwhile, in % of one core."""
    busy, total = c1[0] - c0[0], c1[1] - c0[1]
    if total <= 0:
        return 0.0
    ncpu = len(os.sched_getaffinity(0))
    return max(0.0, 100.0 * ncpu * busy / total - measured_pct)


def all_pids() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def process_count() -> int:
    return len(all_pids())


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (one scan of /proc)."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        st = read_stat(pid)
        if st:
            children.setdefault(st["ppid"], []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tree_snapshot(pids) -> dict:
    """{(pid, starttime): stat} for the processes still there, each with ``cpu_s``: its
    threads' time on a CPU so far in nanoseconds (schedstat; /proc/<pid>/stat's 10 ms clock
    ticks are 0.05 % steps over a 20 s window), plus its reaped children's (clock ticks)."""
    snap = {}
    for pid in pids:
        st = read_stat(pid)
        if st:
            ns = probe_bench.proc_cpu_ns(pid)
            st["cpu_s"] = (st["own"] / CLK_TCK if ns is None else ns / 1e9) + st["reaped"] / CLK_TCK
            snap[(pid, st["start"])] = st
    return snap


def cpu_s_between(s0: dict, s1: dict) -> float:
    """CPU seconds the tree used between two snapshots.

    A process in both counts its delta; a process born in between counts
    everything it has. A thread that ended in between, or a process that died
    without being reaped inside the tree, is lost (rare for these tools, whose
    threads live as long as they do and which do not fork while running).
    """
    return sum(b["cpu_s"] - (s0[key]["cpu_s"] if key in s0 else 0.0) for key, b in s1.items())


def pid_alive(pid: int, start: Optional[int] = None) -> bool:
    st = read_stat(pid)
    if st is None:
        return False
    return start is None or st["start"] == start


# --------------------------------------------------------------------------- tmux

_LIVE_TMUX: list[TmuxRun] = []
_counter = itertools.count(1)

TMUX_CONF = """\
set -g remain-on-exit on
set -g status off
set -g default-terminal "tmux-256color"
set -g history-limit 2000
"""


class TmuxRun:
    """One program in its own tmux server (private socket), one session.

    remain-on-exit keeps a dead pane so its last words can be captured.
    ``stop()`` is idempotent and always leaves no server and no tool behind.
    """

    def __init__(self, workdir: str, label: str, cols: int, rows: int):
        n = next(_counter)
        self.socket = os.path.join(workdir, f"tmux-{n}-{label}.sock")
        self.session = f"ktopbench-{os.getpid()}-{n}-{label}"
        self.conf = os.path.join(workdir, "tmux.conf")
        if not os.path.exists(self.conf):
            with open(self.conf, "w") as f:
                f.write(TMUX_CONF)
        self.cols, self.rows = cols, rows
        self.pane_pid: Optional[int] = None
        self.pane_start: Optional[int] = None
        self.server_pid: Optional[int] = None
        self.tree_seen: dict[int, int] = {}  # pid -> starttime, every process seen in the pane
        self.started = False

    def tmux(self, *args: str, check: bool = True, timeout: float = 10) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        r = subprocess.run(["tmux", "-S", self.socket, "-f", self.conf, *args],
                           capture_output=True, text=True, timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def start(self, argv: list[str], env: dict[str, str]) -> None:
        args = ["new-session", "-d", "-s", self.session, "-x", str(self.cols), "-y", str(self.rows)]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        # One string run by sh -c; 'exec' makes the tool the pane's process.
        args.append("exec " + shlex.join(argv))
        _LIVE_TMUX.append(self)
        self.started = True
        self.tmux(*args)
        out = self.tmux("display-message", "-p", "-t", self.session, "#{pane_pid} #{pid}").split()
        self.pane_pid, self.server_pid = int(out[0]), int(out[1])
        st = read_stat(self.pane_pid)
        self.pane_start = st["start"] if st else None
        if st:
            self.tree_seen[self.pane_pid] = st["start"]

    def pane_dead(self) -> bool:
        """True once the pane's program has exited (judged from /proc, which cannot fail
        transiently like a tmux client call can)."""
        if self.pane_pid is not None and self.pane_start is not None:
            st = read_stat(self.pane_pid)
            return st is None or st["start"] != self.pane_start or st["state"] in ("Z", "X")
        try:
            out = self.tmux("display-message", "-p", "-t", self.session, "#{pane_dead}",
                            check=False, timeout=5).strip()
        except (subprocess.TimeoutExpired, OSError):
            return False
        return out == "1"

    def wait_dead_reported(self, timeout: float = 1.0) -> None:
        """Waits until tmux has noticed the exit (so exit status and screen are final)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                out = self.tmux("display-message", "-p", "-t", self.session, "#{pane_dead}",
                                check=False, timeout=5).strip()
            except (subprocess.TimeoutExpired, OSError):
                out = ""
            if out == "1":
                return
            time.sleep(0.05)

    def exit_text(self) -> str:
        """How the pane's program ended, e.g. 'exit status 1' or 'signal 6'."""
        self.wait_dead_reported()
        try:
            out = self.tmux("display-message", "-p", "-t", self.session,
                            "#{pane_dead_status}|#{pane_dead_signal}", check=False, timeout=5).strip()
        except (subprocess.TimeoutExpired, OSError):
            return "?"
        status, _, sig = out.partition("|")
        if sig:
            try:
                return f"killed by signal {sig} ({signal.Signals(int(sig)).name})"
            except ValueError:
                return f"killed by signal {sig}"
        return f"exit status {status}" if status else "?"

    def capture(self) -> str:
        try:
            return self.tmux("capture-pane", "-p", "-t", self.session, check=False, timeout=5)
        except (subprocess.TimeoutExpired, OSError):
            return ""

    def note_tree(self) -> list[int]:
        """Rescans the pane's process tree; returns its pids."""
        if self.pane_pid is None:
            return []
        pids = descendants(self.pane_pid)
        for p in pids:
            st = read_stat(p)
            if st:
                self.tree_seen.setdefault(p, st["start"])
        return pids

    def stop(self, quit_keys: str = "q", grace_s: float = 3.0) -> None:
        if not self.started:
            return
        self.started = False
        try:
            if self.pane_pid and not self.pane_dead():
                self.tmux("send-keys", "-t", self.session, quit_keys, check=False, timeout=5)
                end = time.monotonic() + grace_s
                while time.monotonic() < end and not self.pane_dead():
                    time.sleep(0.05)
        except Exception:
            pass
        finally:
            try:
                self.tmux("kill-server", check=False, timeout=5)
            except Exception:
                pass
            self._reap_leftovers()
            try:
                os.unlink(self.socket)
            except OSError:
                pass
            if self in _LIVE_TMUX:
                _LIVE_TMUX.remove(self)

    def _reap_leftovers(self) -> None:
        """SIGTERM, then SIGKILL, whatever this run started and is still alive."""
        mine = dict(self.tree_seen)
        if self.server_pid:
            st = read_stat(self.server_pid)
            if st:
                mine[self.server_pid] = st["start"]
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            alive = [p for p, s in mine.items() if pid_alive(p, s)]
            if not alive:
                return
            for p in alive:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
            end = time.monotonic() + wait
            while time.monotonic() < end and any(pid_alive(p, mine[p]) for p in alive):
                time.sleep(0.05)


def clean_stale_runs() -> None:
    """Ends what an earlier bench left behind when it was killed by SIGKILL.

    Only tmux servers started by this script (socket in a ``ktopbench-*``
    temp dir, session ``ktopbench-<bench pid>-...``) whose bench is gone,
    and the programs in their panes.
    """
    tmp = tempfile.gettempdir()
    for pid in all_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) != "tmux" or "-S" not in argv or "-s" not in argv:
            continue
        sock, sess = argv[argv.index("-S") + 1], argv[argv.index("-s") + 1]
        wdir = os.path.dirname(sock)
        if os.path.dirname(wdir) != tmp or not os.path.basename(wdir).startswith("ktopbench-"):
            continue
        parts = sess.split("-")
        if len(parts) < 3 or parts[0] != "ktopbench" or not parts[1].isdigit():
            continue
        if pid_alive(int(parts[1])):
            continue  # its bench is still running
        victims = {p: read_stat(p) for p in descendants(pid)}
        for p, st in victims.items():
            if st:
                try:
                    os.kill(p, signal.SIGTERM)
                except OSError:
                    pass
        time.sleep(1.0)
        for p, st in victims.items():
            if st and pid_alive(p, st["start"]):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(wdir, ignore_errors=True)
        log(f"cleaned up a killed bench's tmux server {pid} ({sess})")
    for d in os.listdir(tmp):  # ktopbench-<bench pid>-XXXX work dirs of dead benches
        parts = d.split("-")
        if len(parts) >= 3 and parts[0] == "ktopbench" and parts[1].isdigit() and not pid_alive(int(parts[1])):
            shutil.rmtree(os.path.join(tmp, d), ignore_errors=True)


def tail(text: str, lines: int = 15) -> str:
    rows = [r.rstrip() for r in text.splitlines() if r.strip()]
    return "\n".join(rows[-lines:])


# --------------------------------------------------------------------------- load

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: killed if the bench dies,
    # even by SIGKILL, so no helper outlives it.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


CHURN_CODE = r"""
import json, os, signal, sys, time
rate = float(sys.argv[1]); period = 1.0 / rate
stop = False
def _h(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, _h)
n = 0; t0 = time.monotonic(); nxt = t0
while not stop:
    pid = os.posix_spawn("/bin/true", ["/bin/true"], {})
    os.waitpid(pid, 0)
    n += 1
    nxt += period
    d = nxt - time.monotonic()
    if d > 0:
        time.sleep(d)
    else:
        nxt = time.monotonic()
print(json.dumps({"execs": n, "seconds": time.monotonic() - t0}), flush=True)
"""


class Load:
    """N ``sleep 3600`` processes plus a helper that execs /bin/true at a steady rate.

    Every child gets PR_SET_PDEATHSIG=SIGKILL, the sleeps share one process
    group, and ``stop()`` kills and reaps them all and checks none is left.
    """

    def __init__(self, sleepers: int, churn_rate: float):
        self.sleepers_n = sleepers
        self.churn_rate = churn_rate
        self.sleepers: list[subprocess.Popen] = []
        self.pgid: Optional[int] = None
        self.churn: Optional[subprocess.Popen] = None
        self.churn_result: Optional[dict] = None

    def helper_pids(self) -> list[int]:
        """The exec-churn helper (its /bin/true children are counted when it reaps them)."""
        return [self.churn.pid] if self.churn is not None else []

    def _sleeper_preexec(self):
        _die_with_parent()
        os.setpgid(0, self.pgid or 0)

    def start(self) -> None:
        t0 = time.monotonic()
        for _ in range(self.sleepers_n):
            p = subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 preexec_fn=self._sleeper_preexec, close_fds=True)
            if self.pgid is None:
                self.pgid = p.pid
            self.sleepers.append(p)
        if self.churn_rate > 0:
            self.churn = subprocess.Popen([sys.executable, "-c", CHURN_CODE, str(self.churn_rate)],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          text=True, preexec_fn=_die_with_parent)
        log(f"load: {len(self.sleepers)} sleeps (pgid {self.pgid}) and exec churn "
            f"{self.churn_rate:g}/s started in {time.monotonic() - t0:.1f} s")
        time.sleep(1.0)  # let the process count settle

    def stop(self) -> None:
        if self.churn is not None:
            try:
                self.churn.send_signal(signal.SIGTERM)
                out, _ = self.churn.communicate(timeout=5)
                if out.strip():
                    self.churn_result = json.loads(out.strip().splitlines()[-1])
            except Exception:
                self.churn.kill()
                self.churn.wait()
            self.churn = None
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except OSError:
                pass
        for p in self.sleepers:
            try:
                p.kill()
            except OSError:
                pass
        for p in self.sleepers:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        left = sum(1 for p in self.sleepers if p.poll() is None)
        n = len(self.sleepers)
        self.sleepers = []
        if left:
            log(f"load: WARNING {left} sleeps still alive after SIGKILL")
        elif n:
            log(f"load: {n} sleeps killed and reaped")

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------- measurements

def tool_env(workdir: str) -> dict[str, str]:
    """The same environment for every tool: UTF-8 locale, private config dir."""
    return {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "XDG_CONFIG_HOME": os.path.join(workdir, "config")}


def write_tool_configs(workdir: str, interval_s: float) -> None:
    cfg = os.path.join(workdir, "config")
    os.makedirs(os.path.join(cfg, "btop"), exist_ok=True)
    os.makedirs(os.path.join(cfg, "htop"), exist_ok=True)
    with open(os.path.join(cfg, "btop", "btop.conf"), "w") as f:
        f.write(f"update_ms = {int(round(interval_s * 1000))}\n")
    # htop: no htoprc, so its defaults (and -d) apply; it may write one on exit.
    htoprc = os.path.join(cfg, "htop", "htoprc")
    if os.path.exists(htoprc):
        os.unlink(htoprc)


def startup_run(args, workdir: str, i: int, cache: str) -> dict:
    """One start of the dashboard; ``cache``: the compile cache folder it uses (KTOP_BPF_CACHE)."""
    path = os.path.join(workdir, f"timings-{i}.jsonl")
    if os.path.exists(path):
        os.unlink(path)
    env = dict(tool_env(workdir), KTOP_TIMINGS=path, KTOP_BPF_CACHE=cache)
    run = TmuxRun(workdir, f"startup{i}", args.cols, args.rows)
    rec: dict = {"run": i, "ok": False, "loadavg_1m": os.getloadavg()[0]}
    c0 = cpu_jiffies()
    try:
        t_launch = time.monotonic()
        run.start(["ktop"], env)
        end = t_launch + args.startup_timeout
        start_ticks = run.pane_start
        events: dict[str, dict] = {}
        seen_at: dict[str, float] = {}  # when the bench saw the line, s since the process started
        dead = False
        while True:
            for ev in read_jsonl(path):
                name = ev.get("event")
                if name in ("first_frame", "probes_settled") and name not in events:
                    events[name] = ev
                    if start_ticks is not None and not dead:
                        seen_at[name] = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / CLK_TCK
            if ("first_frame" in events and "probes_settled" in events) or dead:
                break
            if time.monotonic() >= end:
                break
            dead = run.pane_dead()  # if so: one last read of the file, then stop
            if not dead:
                time.sleep(0.01)
        ff, ps = events.get("first_frame"), events.get("probes_settled")
        # each build's helper: when it started and ended (ktop/probes/loader.py), to find the last
        lines = read_jsonl(path)
        rec["builds"] = {ev["probe"]: [round(ev["since_start_s"], 3)] for ev in lines
                         if ev.get("event") == "helper_start" and ev.get("probe")}
        rec["kept"] = {}  # probe: loaded from the compile cache (no compile)
        for ev in lines:
            if ev.get("event") == "helper_done" and ev.get("probe") in rec["builds"]:
                rec["builds"][ev["probe"]].append(round(ev["since_start_s"], 3))
                rec["kept"][ev["probe"]] = bool(ev.get("cached"))
        if ff:
            rec["first_frame_s"] = float(ff["since_start_s"])
            rec["first_frame_bench_s"] = round_or_none(seen_at.get("first_frame"))
        if ps:
            statuses = ps.get("statuses") or {}
            rec["probes_settled_s"] = float(ps["since_start_s"])
            rec["probes_settled_bench_s"] = round_or_none(seen_at.get("probes_settled"))
            rec["statuses"] = statuses
            considered = {k: v for k, v in statuses.items() if v != "disabled"}
            rec["all_live"] = bool(considered) and all(v == "live" for v in considered.values())
            if rec["all_live"]:
                rec["all_probes_live_s"] = rec["probes_settled_s"]
                rec["all_probes_live_bench_s"] = rec["probes_settled_bench_s"]
        # what the rest of the machine used meanwhile, % of one core (ktop's own use subtracted, with
        # its build helpers' and their zygote's: alive at this moment, they are nobody's reaped time yet)
        elapsed = time.monotonic() - t_launch
        tree = [read_stat(p) for p in descendants(run.pane_pid)] if run.pane_pid else []
        jiffies = sum(st["own"] + st["reaped"] for st in tree if st)
        ktop_pct = 100.0 * jiffies / CLK_TCK / elapsed if elapsed > 0 else 0.0
        rec["other_cpu_pct"] = round(other_cpu_pct(c0, cpu_jiffies(), ktop_pct), 1)
        missing = [n for n in ("first_frame", "probes_settled") if n not in events]
        if not missing:
            rec["ok"] = True
        else:
            why = f"ktop exited, {run.exit_text()}" if dead else f"not written within {args.startup_timeout:g} s"
            # (exit_text waited for tmux to see the exit, so the screen below is the last one)
            rec["error"] = f"no {' / '.join(missing)} line in KTOP_TIMINGS ({why})"
            rec["screen"] = tail(run.capture())
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        run.stop()
    return rec


def round_or_none(v: Optional[float], nd: int = 3) -> Optional[float]:
    return None if v is None else round(v, nd)


def read_jsonl(path: str) -> list[dict]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # a line still being written
        if isinstance(ev, dict):
            out.append(ev)
    return out


def ui_cost_run(args, workdir: str, tool: str, scenario: str, i: int, load: Optional[Load] = None) -> dict:
    run = TmuxRun(workdir, f"{tool}-{scenario}{i}", args.cols, args.rows)
    rec: dict = {"tool": tool, "scenario": scenario, "run": i, "ok": False,
                 "argv": tool_argv(tool, args.interval)}
    try:
        run.start(rec["argv"], tool_env(workdir))
        # warm-up: the tool must stay alive
        end = time.monotonic() + args.warmup
        while time.monotonic() < end:
            if run.pane_dead():
                raise ToolDied(run.exit_text(), run.capture())
            time.sleep(0.1)
        pids = run.note_tree()
        rec["processes_on_machine"] = process_count()
        s0 = tree_snapshot(pids)
        srv0 = tree_snapshot([run.server_pid])
        helpers = load.helper_pids() if load else []
        h0 = tree_snapshot(helpers)
        c0 = cpu_jiffies()
        t0 = time.monotonic()
        max_tree_rss = sum(s["rss_kb"] for s in s0.values())
        end = t0 + args.window
        next_rescan = t0 + 5
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(1.0, left))
            if run.pane_dead():
                raise ToolDied(run.exit_text(), run.capture())
            if time.monotonic() >= next_rescan:
                pids = run.note_tree()
                next_rescan += 5
            rss = sum(st["rss_kb"] for st in map(read_stat, pids) if st)
            max_tree_rss = max(max_tree_rss, rss)
        pids = sorted(set(run.note_tree()) | set(pids))
        s1 = tree_snapshot(pids)
        srv1 = tree_snapshot([run.server_pid])
        c1 = cpu_jiffies()
        h1 = tree_snapshot(helpers)
        t1 = time.monotonic()
        hwm = [read_status_kb(p, "VmHWM") for p in pids]
        elapsed = t1 - t0
        rec.update({
            "window_s": round(elapsed, 3),
            "cpu_pct": round(100.0 * cpu_s_between(s0, s1) / elapsed, 3),
            "tmux_server_cpu_pct": round(100.0 * cpu_s_between(srv0, srv1) / elapsed, 3),
            "tree_pids": len(s1),
            "loadavg_1m": os.getloadavg()[0],
            "vmhwm_kb": sum(h for h in hwm if h),
            "max_sampled_rss_kb": max_tree_rss,
        })
        rec["peak_rss_mb"] = round(max(rec["vmhwm_kb"], max_tree_rss) / 1024.0, 2)
        rec["load_helpers_cpu_pct"] = round(100.0 * cpu_s_between(h0, h1) / elapsed, 3)
        # everything else on the machine, % of one core
        rec["other_cpu_pct"] = round(other_cpu_pct(
            c0, c1, rec["cpu_pct"] + rec["tmux_server_cpu_pct"] + rec["load_helpers_cpu_pct"]), 2)
        rec["ok"] = True
    except ToolDied as exc:
        rec["error"] = f"{tool} exited during the run, {exc.how}"
        rec["screen"] = tail(exc.screen)
    except Exception as exc:
        rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["screen"] = tail(run.capture())
    finally:
        run.stop()
    return rec


class ToolDied(Exception):
    def __init__(self, how: str, screen: str):
        super().__init__(f"tool exited, {how}")
        self.how, self.screen = how, screen


# --------------------------------------------------------------------------- environment

def cmd_output(argv: list[str]) -> Optional[str]:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (r.stdout.strip() or r.stderr.strip()).splitlines()
    return out[0].strip() if out else None


def environment() -> dict:
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {
        "ktop": cmd_output(["ktop", "--version"]),
        "htop": cmd_output(["htop", "--version"]),
        "btop": cmd_output(["btop", "--version"]),
        "tmux": cmd_output(["tmux", "-V"]),
        "python": platform.python_version(),
        "bcc (python3-bpfcc)": cmd_output(["dpkg-query", "-W", "-f", "${Version}", "python3-bpfcc"]),
    }
    try:
        from importlib import metadata
        versions["textual"] = metadata.version("textual")
    except Exception:
        versions["textual"] = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "kernel": os.uname().release,
        "cpu_model": cpu,
        "nproc": len(os.sched_getaffinity(0)),
        "mem_total_kb": read_meminfo_kb("MemTotal"),
        "versions": versions,
    }


def read_meminfo_kb(key: str) -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- summary

def median_or_none(values) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 4) if vals else None


def summarize(results: dict) -> dict:
    summary: dict = {}
    st = results.get("startup")
    if st is not None:
        runs = st["runs"]
        cold = st.get("cold") or {}
        summary["startup"] = {
            "cold_first_frame_s": cold.get("first_frame_s"),
            "cold_all_probes_live_s": cold.get("all_probes_live_s"),
            "runs": len(runs),
            "ok_runs": sum(1 for r in runs if r.get("ok")),
            "all_live_runs": sum(1 for r in runs if r.get("all_live")),
            "first_frame_s": median_or_none(r.get("first_frame_s") for r in runs),
            "probes_settled_s": median_or_none(r.get("probes_settled_s") for r in runs),
            "all_probes_live_s": median_or_none(r.get("all_probes_live_s") for r in runs),
            "first_frame_bench_s": median_or_none(r.get("first_frame_bench_s") for r in runs),
            "all_probes_live_bench_s": median_or_none(r.get("all_probes_live_bench_s") for r in runs),
        }
    ui = results.get("ui_cost")
    if ui is not None:
        out = {}
        for scenario, per_tool in ui["scenarios"].items():
            row: dict = {"processes_on_machine": None}
            procs = []
            for tool, runs in per_tool["runs"].items():
                ok = [r for r in runs if r.get("ok")]
                row[tool] = {
                    "runs": len(runs),
                    "ok_runs": len(ok),
                    "cpu_pct": median_or_none(r["cpu_pct"] for r in ok),
                    "peak_rss_mb": median_or_none(r["peak_rss_mb"] for r in ok),
                    "tmux_server_cpu_pct": median_or_none(r["tmux_server_cpu_pct"] for r in ok),
                }
                procs += [r["processes_on_machine"] for r in ok]
            row["processes_on_machine"] = int(statistics.median(procs)) if procs else None
            k = row.get("ktop", {}).get("cpu_pct")
            for other in ("htop", "btop"):
                o = row.get(other, {}).get("cpu_pct")
                row[f"ktop/{other}_cpu"] = round(k / o, 3) if k is not None and o else None
            out[scenario] = row
        summary["ui_cost"] = out
    for key in ("probe_cost", "kernel_cost", "capacity", "tick"):
        if key in results:
            summary[key] = {k: v.get("summary") for k, v in results[key].items()} \
                if key == "probe_cost" else results[key].get("summary")
    summary["budget"] = budget(summary) + probe_bench.budget_rows(results)
    if results.get("flags"):  # issue 24: at most 1 ms a tick with 1,000 series
        f = results["flags"]
        summary["budget"].append({"goal": "flag detector <= 1 ms a tick with 1,000 series",
                                  "measured": f"mean {f['mean_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms "
                                              f"({f['series']} series)",
                                  "status": "met" if f["mean_ms"] <= 1.0 else "not met"})
    return summary


def budget(summary: dict) -> list[dict]:
    rows = []
    ui = summary.get("ui_cost") or {}
    for scenario, row in ui.items():
        k = (row.get("ktop") or {}).get("cpu_pct")
        h = (row.get("htop") or {}).get("cpu_pct")
        if k is None or h is None:
            status, measured = "not measured", "-"
        else:
            status = "met" if k <= h else "not met"
            measured = f"ktop {k:.2f} % vs htop {h:.2f} %"
        rows.append({"goal": f"UI CPU <= htop's, same refresh and process count ({scenario})",
                     "measured": measured, "status": status})
        b = (row.get("btop") or {}).get("cpu_pct")
        if scenario == "idle" and k is not None:
            ok = k <= BUDGET_IDLE_CPU_PCT and (b is None or k <= BUDGET_IDLE_VS_BTOP * b)
            floors = "; ".join(f"{t} {c:.2f} %" for t in FLOORS
                               if (c := (row.get(t) or {}).get("cpu_pct")) is not None)
            rows.append({"goal": f"idle CPU <= {BUDGET_IDLE_CPU_PCT:g} % and <= {BUDGET_IDLE_VS_BTOP:g}x btop's",
                         "measured": f"ktop {k:.2f} % vs btop " + ("-" if b is None else f"{b:.2f} %")
                                     + (f" (floor: {floors})" if floors else ""),
                         "status": "met" if ok else "not met"})
    rss = [(row.get("ktop") or {}).get("peak_rss_mb") for row in ui.values()]
    rss = [r for r in rss if r is not None]
    if rss:
        m = max(rss)
        rows.append({"goal": f"peak RSS <= {BUDGET_RSS_MB:g} MB", "measured": f"{m:.1f} MB (worst scenario)",
                     "status": "met" if m <= BUDGET_RSS_MB else "not met"})
    elif ui:
        rows.append({"goal": f"peak RSS <= {BUDGET_RSS_MB:g} MB", "measured": "-", "status": "not measured"})
    st = summary.get("startup")
    if st is not None:
        ff = st["first_frame_s"]
        rows.append({"goal": f"first frame <= {BUDGET_FIRST_FRAME_S:g} s",
                     "measured": "-" if ff is None else f"{ff:.3f} s",
                     "status": "not measured" if ff is None else
                     ("met" if ff <= BUDGET_FIRST_FRAME_S else "not met")})
        live = st["all_probes_live_s"]
        if live is not None:
            status = "met" if live <= BUDGET_PROBES_LIVE_S and st["all_live_runs"] == st["runs"] else "not met"
            measured = f"{live:.3f} s ({st['all_live_runs']}/{st['runs']} runs all live)"
            if st.get("cold_all_probes_live_s") is not None:
                measured += f"; first start, nothing kept: {st['cold_all_probes_live_s']:.3f} s"
        elif st["probes_settled_s"] is not None:
            status, measured = "not met", f"settled at {st['probes_settled_s']:.3f} s but not all live"
        else:
            status, measured = "not measured", "-"
        rows.append({"goal": f"all default probes live <= {BUDGET_PROBES_LIVE_S:g} s",
                     "measured": measured, "status": status})
    return rows


def fmt(v, unit="", nd=2) -> str:
    return "-" if v is None else f"{v:.{nd}f}{unit}"


def render_md(results: dict) -> str:
    env, cfg, summ = results["environment"], results["config"], results["summary"]
    L = []
    mode = "quick (smoke run)" if cfg["quick"] else "full"
    L.append("# ktop benchmark results\n")
    L.append(f"- date: {env['date']}; mode: **{mode}**")
    L.append(f"- machine: {env['cpu_model']}, {env['nproc']} CPUs, kernel {env['kernel']}")
    vers = "; ".join(v if v.lower().startswith(k) else f"{k} {v}"
                     for k, v in env["versions"].items() if v)
    L.append(f"- versions: {vers}")
    L.append(f"- terminal: tmux {cfg['cols']}x{cfg['rows']}; refresh {cfg['interval_s']:g} s for every tool "
             f"(`ktop {cfg['interval_s']:g}`, `htop -d {round(cfg['interval_s'] * 10)}`, btop `update_ms = "
             f"{round(cfg['interval_s'] * 1000)}`)")
    L.append(f"- UI cost: {cfg['repeats']} run(s) per tool and scenario, {cfg['window_s']:g} s window after a "
             f"{cfg['warmup_s']:g} s warm-up; start-up: {cfg['startup_runs']} run(s); figures are medians")
    L.append("- Absolute times and CPU percentages depend on the machine; the ratios and side-by-side pairs "
             "(same machine, same moment) are what to compare.\n")

    if "ui_cost" in summ:
        L.append("## UI cost at the same refresh\n")
        L.append("CPU is % of one core (process + threads + children); "
                 "RSS is peak resident memory (MB = 2^20 bytes).\n")
        L.append("| scenario | processes | ktop CPU | htop CPU | btop CPU | ktop/htop CPU | ktop/btop CPU "
                 "| ktop RSS | htop RSS | btop RSS |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for scen, row in summ["ui_cost"].items():
            def g(tool, key, row=row):
                return (row.get(tool) or {}).get(key)
            L.append(f"| {scenario_title(scen, cfg)} | {row['processes_on_machine'] or '-'} "
                     f"| {fmt(g('ktop', 'cpu_pct'), ' %')} | {fmt(g('htop', 'cpu_pct'), ' %')} "
                     f"| {fmt(g('btop', 'cpu_pct'), ' %')} | {fmt(row.get('ktop/htop_cpu'), '', 2)} "
                     f"| {fmt(row.get('ktop/btop_cpu'), '', 2)} | {fmt(g('ktop', 'peak_rss_mb'), ' MB', 1)} "
                     f"| {fmt(g('htop', 'peak_rss_mb'), ' MB', 1)} | {fmt(g('btop', 'peak_rss_mb'), ' MB', 1)} |")
        L.append("")
        L.append("Side by side (ktop vs the other tool):\n")
        L.append("| scenario | CPU ktop vs htop | CPU ktop vs btop | RSS ktop vs htop | RSS ktop vs btop |")
        L.append("|---|---|---|---|---|")
        for scen, row in summ["ui_cost"].items():
            def pair(other, key, unit, nd, row=row):
                return (f"{fmt((row.get('ktop') or {}).get(key), unit, nd)} vs "
                        f"{fmt((row.get(other) or {}).get(key), unit, nd)}")
            L.append(f"| {scenario_title(scen, cfg)} | {pair('htop', 'cpu_pct', ' %', 2)} "
                     f"| {pair('btop', 'cpu_pct', ' %', 2)} | {pair('htop', 'peak_rss_mb', ' MB', 1)} "
                     f"| {pair('btop', 'peak_rss_mb', ' MB', 1)} |")
        L.append("")
        L.append("Every run: CPU % / peak RSS MB [tmux server CPU %: the terminal taking in the tool's "
                 "output, not counted above] (others: CPU % of one core used by everything else on the "
                 "machine meanwhile; load: the exec-churn helper's CPU %):\n")
        L.append("| scenario | tool | runs |")
        L.append("|---|---|---|")
        for scen, per_tool in results["ui_cost"]["scenarios"].items():
            for tool, runs in per_tool["runs"].items():
                cells = []
                for r in runs:
                    if r.get("ok"):
                        cells.append(f"{r['cpu_pct']:.2f} / {r['peak_rss_mb']:.1f} [{r['tmux_server_cpu_pct']:.2f}]"
                                     f" (others {r['other_cpu_pct']:.0f}, load {r['load_helpers_cpu_pct']:.1f})")
                    else:
                        cells.append(f"FAILED ({r.get('error', '?')})")
                L.append(f"| {scen} | {tool} | {'; '.join(cells)} |")
        failed = [r for per_tool in results["ui_cost"]["scenarios"].values()
                  for runs in per_tool["runs"].values() for r in runs if not r.get("ok") and r.get("screen")]
        if failed:
            f0 = failed[0]
            L.append(f"\nLast screen of the first failed run ({f0['tool']}, {f0['scenario']}, run {f0['run']}):\n")
            L.append("```\n" + f0["screen"] + "\n```")
        for scen, per_tool in results["ui_cost"]["scenarios"].items():
            ch = per_tool.get("churn")
            if ch:
                L.append(f"\nLoad in '{scen}': {per_tool.get('sleepers', 0)} sleeps; exec churn measured "
                         f"{ch['execs'] / ch['seconds']:.1f} execs/s over {ch['seconds']:.0f} s.")
        L.append("")

    if "startup" in summ:
        st = summ["startup"]
        L.append("## Start-up (`ktop`, seconds since the process started)\n")
        L.append("The median and every run are what ktop wrote to KTOP_TIMINGS. 'Seen by the bench' is when "
                 "the bench found the line in the file (polled every 10 ms), measured from the process's "
                 "start time in /proc (10 ms ticks): an independent upper bound.\n")
        L.append("| figure | median | every run | seen by the bench (median) |")
        L.append("|---|---:|---|---:|")
        runs = results["startup"]["runs"]

        def each(key):
            return ", ".join("FAILED" if r.get(key) is None else f"{r[key]:.3f}" for r in runs)
        L.append(f"| time to first frame | {fmt(st['first_frame_s'], ' s', 3)} | {each('first_frame_s')} "
                 f"| {fmt(st['first_frame_bench_s'], ' s', 3)} |")
        L.append(f"| time to all probes live | {fmt(st['all_probes_live_s'], ' s', 3)} "
                 f"| {each('all_probes_live_s')} | {fmt(st['all_probes_live_bench_s'], ' s', 3)} |")
        cold = results["startup"].get("cold")
        if cold:
            L.append(f"| first start (empty compile cache): first frame, all live | "
                     f"{fmt(cold.get('first_frame_s'), ' s', 3)}, {fmt(cold.get('all_probes_live_s'), ' s', 3)} "
                     f"| one run | - |")
            L.append("\nThe runs above load the programs that the first start compiled and kept "
                     "(KTOP_BPF_CACHE, a folder of the bench's own). A start with nothing kept compiles each probe "
                     "(the last row): the first after a kernel or BCC update, or after an install that could not "
                     "compile them (`make install` compiles the default probes once, as root).")
        L.append(f"\n{st['ok_runs']}/{st['runs']} runs wrote both lines; {st['all_live_runs']}/{st['runs']} had "
                 "every default probe live.")
        builds = [r.get("builds") or {} for r in runs]
        if any(builds):
            L.append("\nBuild helpers, started and done (s since ktop started), each run: " + "; ".join(
                f"run {r['run']}: " + ", ".join(f"{p} {'-'.join(f'{t:.2f}' for t in ts)}"
                                                f"{'' if (r.get('kept') or {}).get(p) else ' (compiled)'}"
                                                for p, ts in sorted(b.items(), key=lambda kv: kv[1][-1]))
                for r, b in zip(runs, builds) if b) + " (the last one listed finished last; one marked "
                "'compiled' compiled, the others loaded a kept compile).")
            if cold and cold.get("builds"):
                L.append("\nThe first start's builds: " + ", ".join(
                    f"{p} {'-'.join(f'{t:.2f}' for t in ts)}"
                    f"{'' if (cold.get('kept') or {}).get(p) else ' (compiled)'}"
                    for p, ts in sorted(cold["builds"].items(), key=lambda kv: kv[1][-1])) + ".")
        errs = [r for r in runs if r.get("error")]
        if errs:
            L.append("\nFailures: " + "; ".join(f"run {r['run']}: {r['error']}" for r in errs))
            scr = next((r.get("screen") for r in errs if r.get("screen")), None)
            if scr:
                L.append("\nLast screen of the first failed run:\n\n```\n" + scr + "\n```")
        bad = [r for r in runs if r.get("statuses") and not r.get("all_live")]
        if bad:
            L.append(f"\nProbe statuses when not all live: {json.dumps(bad[0]['statuses'])}")
        L.append("")

    L.extend(probe_bench.render_md(results))
    if results.get("plots"):
        L.extend(plots_bench.render_md(results["plots"]))
    if results.get("flags"):
        L.extend(flags_bench.render_md(results["flags"]))
    noisy = noise_warnings(results)
    if noisy:
        L.append("## Noise\n")
        L.extend(f"- {w}" for w in noisy)
        L.append("")
    L.append("## Budget check (product goals)\n")
    L.append("| goal | measured | status |")
    L.append("|---|---|---|")
    for b in summ["budget"]:
        L.append(f"| {b['goal']} | {b['measured']} | **{b['status']}** |")
    L.append("")
    return "\n".join(L)


NOISE_OTHER_CPU_PCT = 25.0  # % of one core used by other work before a run counts as noisy


def noise_warnings(results: dict) -> list[str]:
    """Runs during which the machine was busy with other work."""
    out = []
    for scen, per_tool in (results.get("ui_cost") or {}).get("scenarios", {}).items():
        ok = [r for runs in per_tool["runs"].values() for r in runs if r.get("ok")]
        bad = [r for r in ok if r["other_cpu_pct"] > NOISE_OTHER_CPU_PCT]
        if bad:
            out.append(f"UI cost, {scen}: other work used > {NOISE_OTHER_CPU_PCT:g} % of a core during "
                       + ", ".join(f"{r['tool']} run {r['run']} ({r['other_cpu_pct']:.0f} %)" for r in bad)
                       + "; rerun on a quiet machine for trustworthy figures.")
    st = (results.get("startup") or {}).get("runs", [])
    bad = [r for r in st if r.get("other_cpu_pct", 0) > NOISE_OTHER_CPU_PCT]
    if bad:
        out.append("Start-up: other work used > {:g} % of a core during run(s) {}; ".format(
            NOISE_OTHER_CPU_PCT, ", ".join(f"{r['run']} ({r['other_cpu_pct']:.0f} %)" for r in bad))
            + "start-up times are then inflated.")
    return out


def scenario_title(scen: str, cfg: dict) -> str:
    return SCENARIO_TITLES[scen].format(sleepers=cfg["sleepers"], churn=cfg["churn_rate"])


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="ktop start-up time and UI cost against htop and btop (writes bench/results.*).")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 repeat, 5 s windows, 1 start-up run")
    p.add_argument("--startup-runs", type=int, default=None, help="ktop start-up runs (default 5)")
    p.add_argument("--startup-timeout", type=float, default=15.0,
                   help="seconds to wait for both KTOP_TIMINGS lines (default 15)")
    p.add_argument("--repeats", type=int, default=None, help="UI-cost runs per tool and scenario (default 3)")
    p.add_argument("--window", type=float, default=None, help="UI-cost measuring window, s (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before the window starts (default 3)")
    p.add_argument("--interval", type=float, default=1.0, help="every tool's refresh interval, s (default 1)")
    p.add_argument("--sleepers", type=int, default=2000, help="sleeping processes in 'loaded' (default 2000)")
    p.add_argument("--churn-rate", type=float, default=20.0, help="execs of /bin/true per s in 'loaded' (default 20)")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of ktop,htop,btop")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of idle,loaded")
    p.add_argument("--skip-startup", action="store_true", help="skip the start-up measurement")
    p.add_argument("--skip-ui", action="store_true", help="skip the UI-cost measurement")
    p.add_argument("--only", choices=SECTIONS, default=None,
                   help="run one section: " + ", ".join(SECTIONS))
    p.add_argument("--skip", default="", help="comma-separated sections to skip (e.g. probes,tick)")
    p.add_argument("--size", default="160x48", help="terminal size COLSxROWS (default 160x48)")
    p.add_argument("--out-dir", default=HERE, help="where results.json and results.md go (default bench/)")
    a = p.parse_args(argv)
    a.startup_runs = a.startup_runs if a.startup_runs is not None else (1 if a.quick else 5)
    a.repeats = a.repeats if a.repeats is not None else (1 if a.quick else 3)
    a.window = a.window if a.window is not None else (5.0 if a.quick else 20.0)
    a.cols, a.rows = (int(x) for x in a.size.lower().split("x"))
    a.tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    skip = {x.strip() for x in a.skip.split(",") if x.strip()}
    if skip - set(SECTIONS):
        p.error(f"unknown section(s) {sorted(skip - set(SECTIONS))}")
    if a.skip_startup:
        skip.add("startup")
    if a.skip_ui:
        skip.add("ui")
    a.sections = [a.only] if a.only else [x for x in SECTIONS if x not in skip]
    for t in a.tools:
        if t not in TOOLS:
            p.error(f"unknown tool {t!r}")
    for s in a.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    if min(a.startup_runs, a.repeats) < 1 or a.window <= 0 or a.warmup < 0:
        p.error("runs must be >= 1 and durations positive")
    return a


def tick_ui_run(args, workdir: str, sleepers: int, tool: str = "ktop") -> dict:
    """``tool`` in tmux for one UI-cost window (the tick section's UI figures)."""
    if (why := tool_missing(tool)):
        return {"tool": tool, "ok": False, "error": why}
    return ui_cost_run(args, workdir, tool, f"tick{sleepers}", 1)


def probe_sections(args, workdir: str, results: dict) -> int:
    """The sections in probe_bench.py; returns how many failed."""
    wanted = [s for s in ("probes", "kernel", "capacity", "tick", "plots") if s in args.sections]
    if not wanted:
        return 0
    if os.geteuid() != 0 or not shutil.which("gcc"):
        log("probe sections need root and gcc; skipped")
        return len(wanted)
    exe = probe_bench.build_workload(workdir)
    failures = 0
    t0, load0 = time.monotonic(), os.getloadavg()
    if "probes" in args.sections:
        log("probe cost ...")
        results["probe_cost"] = probe_bench.probe_cost_section(workdir, exe, args.quick)
        failures += sum(1 for v in results["probe_cost"].values() if (v.get("summary") or {}).get("error"))
    if "kernel" in args.sections:
        log("kernel-side cost (BPF statistics) ...")
        results["kernel_cost"] = probe_bench.kernel_cost_section(workdir, exe, 5.0 if args.quick else 10.0)
        failures += bool(results["kernel_cost"].get("error"))
    if "capacity" in args.sections:
        log("event capacity ...")
        results["capacity"] = probe_bench.capacity_section(exe, 5.0 if args.quick else 10.0)
        failures += bool(results["capacity"].get("error"))
    if "tick" in args.sections:
        log("tick cost ...")
        ui = None
        if shutil.which("ktop"):
            def ui(sleepers, tool):
                rec = tick_ui_run(args, workdir, sleepers, tool)
                log(f"tick UI {tool} +{sleepers} sleeps: " + (
                    f"CPU {rec['cpu_pct']:.2f} %, {rec['processes_on_machine']} processes" if rec["ok"]
                    else f"FAILED: {rec['error']}"))
                return rec
        results["tick"] = probe_bench.tick_section(ui, lambda n: Load(n, 0.0), ui_runs=args.repeats)
    if "plots" in args.sections:
        log("plot redraw cost ...")
        results["plots"] = plots_bench.measure()
    results["probe_sections"] = {"seconds": round(time.monotonic() - t0, 1), "loadavg_before": load0,
                                 "loadavg_after": os.getloadavg()}
    log(f"probe sections took {time.monotonic() - t0:.0f} s")
    return failures


def main(argv=None) -> int:
    args = parse_args(argv)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    if not shutil.which("tmux"):
        print("bench: tmux is not installed (apt-get install -y tmux)", file=sys.stderr)
        return 2
    clean_stale_runs()
    workdir = tempfile.mkdtemp(prefix=f"ktopbench-{os.getpid()}-")
    write_tool_configs(workdir, args.interval)
    results: dict = {
        "config": {
            "quick": args.quick, "startup_runs": args.startup_runs, "startup_timeout_s": args.startup_timeout,
            "repeats": args.repeats, "window_s": args.window, "warmup_s": args.warmup,
            "interval_s": args.interval, "sleepers": args.sleepers, "churn_rate": args.churn_rate,
            "tools": args.tools, "scenarios": args.scenarios, "cols": args.cols, "rows": args.rows,
            "clk_tck": CLK_TCK, "sections": args.sections,
        },
        "environment": environment(),
    }
    failures = 0
    try:
        if "flags" in args.sections:  # pure Python: no root, no probes
            log("flag detector cost ...")
            results["flags"] = flags_bench.measure()
        if "startup" in args.sections:
            runs = []
            if not shutil.which("ktop"):
                runs.append({"run": 1, "ok": False, "error": "ktop not on PATH (make install)"})
            else:
                cache = os.path.join(workdir, "bpf-cache")  # empty: the first start compiles and keeps
                os.makedirs(cache, mode=0o700, exist_ok=True)
                cold = startup_run(args, workdir, 0, cache)
                log(f"startup, first (compiles): first frame {cold.get('first_frame_s')}, "
                    f"all live {cold.get('all_probes_live_s')}")
                results["startup_cold"] = cold
                for i in range(1, args.startup_runs + 1):
                    rec = startup_run(args, workdir, i, cache)
                    log(f"startup {i}/{args.startup_runs}: " + (
                        f"first frame {rec['first_frame_s']:.3f} s, settled {rec['probes_settled_s']:.3f} s, "
                        f"statuses {rec.get('statuses')}" if rec["ok"] else f"FAILED: {rec['error']}"))
                    runs.append(rec)
            failures += sum(1 for r in runs if not r.get("ok"))
            results["startup"] = {"runs": runs, "cold": results.pop("startup_cold", None)}

        if "ui" in args.sections:
            results["ui_cost"] = {"scenarios": {}}
            for scenario in args.scenarios:
                per_tool: dict = {"runs": {t: [] for t in args.tools if scenario == "idle" or t not in FLOORS}}
                results["ui_cost"]["scenarios"][scenario] = per_tool
                load = Load(args.sleepers, args.churn_rate) if scenario == "loaded" else None
                try:
                    if load:
                        load.start()
                        per_tool["sleepers"] = args.sleepers
                    # Interleave the tools round by round so drift hits them alike.
                    for i in range(1, args.repeats + 1):
                        for tool in args.tools:
                            if tool in FLOORS and scenario != "idle":
                                continue
                            if (why := tool_missing(tool)):
                                rec = {"tool": tool, "run": i, "ok": False, "error": why}
                            else:
                                rec = ui_cost_run(args, workdir, tool, scenario, i, load)
                            per_tool["runs"][tool].append(rec)
                            log(f"{scenario} {tool} {i}/{args.repeats}: " + (
                                f"CPU {rec['cpu_pct']:.2f} %, peak RSS {rec['peak_rss_mb']:.1f} MB, "
                                f"{rec['processes_on_machine']} processes" if rec["ok"]
                                else f"FAILED: {rec['error']}"))
                            if not rec["ok"]:
                                failures += 1
                finally:
                    if load:
                        load.stop()
                        per_tool["churn"] = load.churn_result
        failures += probe_sections(args, workdir, results)
    except (KeyboardInterrupt, Interrupted) as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}); cleaning up, no results written")
        return 130
    finally:
        for run in list(_LIVE_TMUX):
            run.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    results["summary"] = summarize(results)
    os.makedirs(args.out_dir, exist_ok=True)
    jpath = os.path.join(args.out_dir, "results.json")
    mpath = os.path.join(args.out_dir, "results.md")
    with open(jpath, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    md = render_md(results)
    with open(mpath, "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {jpath} and {mpath}")
    if failures:
        log(f"{failures} run(s) failed; see the results for the reasons")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
