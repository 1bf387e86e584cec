"""Hardening with real processes and real probes (issue 9).

Hostile names of real processes in the real UI (tmux) and in `ktop snapshot`;
bad command lines leave no probe attached; faults (compile error, missing
tracepoint) are sentences on screen; a tiny ring buffer and a tiny in-flight
map count their losses; every exit path of the real UI detaches and restores
the terminal. Needs root, BCC, tmux and gcc (each checked, with the reason).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from realutil import (
    KTOP,
    TIME_SCALE,
    loaded_prog_ids,
    probe_events,
    prog_ids_of,
    require_spawn,
    wait_until,
)

from ktop.probes import features
from ktop.probes.base import ProbeOptions
from ktop.snapshot import FAILED, LIVE, UNSUPPORTED

pytestmark = pytest.mark.real

HERE = Path(__file__).resolve().parent
ESC_PIC = "\u241b"  # what ktop shows for ESC

# The hostile payloads (bytes: argv elements; the kernel passes them through untouched).
CSI = b"\x1b[31mREDX"
OSC0 = b"\x1b]0;pwned\x07"
OSC52 = b"\x1b]52;c;cHduZWQ=\x07"
BEL = b"bell\x07bell"
C1 = b"c1\xc2\x9b31mC1X"  # U+009B CSI, UTF-8 encoded
C1_RAW = b"raw\x9b31mRAWX"  # the lone byte: invalid UTF-8
DEL = b"del\x7fdel"
BIDI = "bidi\u202eIDIB".encode()
BAD_UTF8 = b"bad\xff\xfeutf8"
LONG = b"L" * 4096
MARKUP = [b"[@click=app.quit]x", b"[bold]", b"[/", b"trail\\"]
ARGV_PAYLOADS = [CSI, OSC0, OSC52, BEL, C1, C1_RAW, DEL, BIDI, BAD_UTF8, LONG, *MARKUP]
ARGV0 = [OSC0 + b"0", CSI + b"1", b"[@click=app.quit]x", BIDI + b"[bold]3\\"]
COMMS = [b"\x1b]0;pwned\x07", b"\x1b[31mred\x7f", b"[@click=app.q", "\u202ebidi".encode()]


# -- helpers -----------------------------------------------------------------------
def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="module")
def hostile_bin(tmp_path_factory) -> Path:
    _require_tool("gcc")
    out = tmp_path_factory.mktemp("hostile") / "hostile"
    subprocess.run(["gcc", "-O2", "-o", str(out), str(HERE / "hostile.c")], check=True)
    return out


class Hostile:
    """Real processes with hostile comms and argv, children of this test process."""

    def __init__(self, binary: Path, marker: str):
        self.binary = binary
        self.marker = marker.encode()
        self.procs: list[subprocess.Popen] = []

    def start(self) -> Hostile:
        env = dict(os.environ)
        for i, comm in enumerate(COMMS):
            env_b = {k.encode(): v.encode() for k, v in env.items()}
            env_b[b"KT_COMM"] = comm
            # argv[0] hostile too: the COMMAND column shows the start of the command line
            argv = [ARGV0[i], b"hold", self.marker + str(i).encode(), *ARGV_PAYLOADS]
            self.procs.append(subprocess.Popen(argv, executable=bytes(self.binary), env=env_b,
                                               stdin=subprocess.DEVNULL))
        env_b = {k.encode(): v.encode() for k, v in env.items()}
        env_b[b"KT_COMM"] = b"\x1b[2Jempty\x07"
        self.procs.append(subprocess.Popen([bytes(self.binary), b"empty"], env=env_b, stdin=subprocess.DEVNULL))
        assert wait_until(lambda: all(self._comm(p.pid) for p in self.procs), 5)
        return self

    @staticmethod
    def _comm(pid: int) -> bytes:
        try:
            c = Path(f"/proc/{pid}/comm").read_bytes()
        except OSError:
            return b""
        return c if not c.startswith(b"hostile") else b""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


@pytest.fixture
def hostile(hostile_bin):
    h = Hostile(hostile_bin, f"KTMARK{os.getpid()}x").start()
    yield h
    h.stop()


class Tmux:
    """The real `ktop` UI in a private tmux server (never the user's)."""

    def __init__(self, cmd: str, size=(160, 48)):
        _require_tool("tmux")
        self.sock = f"ktop-hardening-{os.getpid()}-{time.monotonic_ns()}"
        # (pytest's environment may carry COLUMNS/LINES, which Textual prefers to the terminal's size)
        shell = f"unset COLUMNS LINES; {cmd}; echo KTOP_EXITED $?; sleep 600"
        self.run("new-session", "-d", "-s", "k", "-x", str(size[0]), "-y", str(size[1]), shell)
        self.pane_pid = int(self.run("display", "-p", "-t", "k", "#{pane_pid}").strip())
        self.socket_path = self.run("display", "-p", "-t", "k", "#{socket_path}").strip()

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, check=True,
                              timeout=20).stdout.decode("utf-8", "surrogateescape")

    def capture(self, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "k")

    def display(self, fmt: str) -> str:
        return self.run("display", "-p", "-t", "k", fmt).strip()

    def ktop_pid(self, timeout: float = 20) -> int:
        found: list[int] = []

        def look() -> bool:  # the pane's shell, or a shell it runs (an interactive one), runs ktop
            todo = [self.pane_pid]
            while todo:
                for t in Path(f"/proc/{todo.pop()}/task").iterdir():
                    try:
                        kids = [int(x) for x in (t / "children").read_text().split()]
                    except OSError:
                        continue
                    for c in kids:
                        try:
                            cmd = Path(f"/proc/{c}/cmdline").read_bytes()
                        except OSError:
                            continue
                        if b"ktop" in cmd and not cmd.startswith((b"sleep", b"bash")):
                            found.append(c)
                            return True
                        todo.append(c)
            return False

        assert wait_until(look, timeout * TIME_SCALE, 0.05), self.capture()
        return found[0]

    def wait_text(self, text: str, timeout: float = 30) -> str:
        assert wait_until(lambda: text in self.capture(), timeout * TIME_SCALE, 0.1), \
            f"{text!r} never appeared:\n{self.capture()}"
        return self.capture()

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-session", "-t", "k"], capture_output=True)
        if self.socket_path and f"ktop-hardening-{os.getpid()}-" in self.socket_path:
            Path(self.socket_path).unlink(missing_ok=True)  # the server ended with its only session


def _ktop_cmd(*args: str) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in (*KTOP, *args))


def _assert_no_hostile_sequences(screen_e: str) -> None:
    """The escaped capture holds tmux's own SGR only: none of the hostile payloads."""
    for payload in (CSI, OSC0, OSC52, C1, DEL, BIDI):
        assert payload.decode("utf-8", "surrogateescape") not in screen_e
    assert "\x1b]" not in screen_e  # no OSC at all (title, clipboard)
    assert "\x07" not in screen_e and "\x9b" not in screen_e and "\x7f" not in screen_e
    assert "\u202e" not in screen_e
    assert "\x1b[2J" not in screen_e
    assert "\x1b[31mRED" not in screen_e and "\x1b[31mred" not in screen_e


# -- 1. hostile names ------------------------------------------------------------
def test_hostile_processes_in_the_real_ui(hostile):
    """Real hostile processes, the real UI in tmux: placeholders shown, no sequence reaches the terminal."""
    require_spawn()
    tm = Tmux(_ktop_cmd("--probes", "spawn", "-p", str(os.getpid())))
    try:
        tm.ktop_pid()
        tm.wait_text("spawn: live", 60)
        # a hostile exec while the spawn probe is live: its argv goes through the Spawns panel
        h2 = Hostile(hostile.binary, hostile.marker.decode() + "late").start()
        try:
            time.sleep(2.5)
            screen = tm.capture()
            screen_e = tm.capture(escapes=True)
            title = tm.display("#{pane_title}")
            rc = subprocess.run(["kill", "-0", str(tm.ktop_pid())]).returncode
        finally:
            h2.stop()
        assert rc == 0, "ktop exited"
        assert "pwned" not in title
        _assert_no_hostile_sequences(screen_e)
        assert ESC_PIC in screen, screen  # ESC shown as its control picture
        assert ESC_PIC + "]0;pwned" in screen or ESC_PIC + "[31m" in screen, screen
        assert "[@click=app.quit]x" in screen, screen  # literal, not markup
        assert "bidi\ufffdIDIB[bold]3\\" in screen, screen
    finally:
        tm.close()


def test_hostile_processes_in_snapshot_json_and_text(hostile):
    """JSON keeps them intact as data; the text summary prints no control character."""
    r = subprocess.run([*KTOP, "snapshot", "--probes", "none", "--duration", "0.3", "--json"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert b"\x1b" not in r.stdout and b"\x07" not in r.stdout  # JSON-escaped
    doc = json.loads(r.stdout)
    rows = {p["pid"]: p for p in doc["processes"] if p["pid"] in hostile.pids}
    assert set(rows) == set(hostile.pids)
    held = rows[hostile.pids[0]]
    assert held["comm"] == COMMS[0].decode()
    cmd = held["cmdline"]
    assert "\x1b[31mREDX" in cmd and "\x1b]52;c;cHduZWQ=\x07" in cmd and "[@click=app.quit]x" in cmd
    assert "L" * 4096 in cmd and "trail\\" in cmd
    assert rows[hostile.pids[1]]["comm"] == COMMS[1].decode()
    assert rows[hostile.pids[-1]]["cmdline"] in ([], [""])  # the empty argv

    # scoped to this test process: its few children (the hostile ones) are all in the top-10 table
    t = subprocess.run([*KTOP, "snapshot", "--probes", "none", "--duration", "0.3", "-p", str(os.getpid())],
                       capture_output=True, timeout=60)
    assert t.returncode == 0, t.stderr
    ctrl = [b for b in set(t.stdout) if (b < 0x20 and b not in (0x0A,)) or b == 0x7F]
    assert not ctrl, f"control bytes in the text summary: {ctrl}"
    text = t.stdout.decode("utf-8", "replace")
    assert "\x9b" not in text and "\u202e" not in text
    assert ESC_PIC + "]0;pwned" in text and "[@click=app.quit]x" in text, text


def test_hostile_execs_in_the_spawn_stream(hostile_bin):
    """The spawn probe's argv of hostile execs: intact in JSON, including an empty argv."""
    require_spawn()
    from realutil import Snap

    with Snap("--probes", "spawn", duration=3.0) as snap:
        snap.wait_collecting()
        h = Hostile(hostile_bin, f"KTEXEC{os.getpid()}x").start()
        time.sleep(0.5)
        h.stop()
        rc, doc = snap.finish()
    assert rc == 0, snap.stderr
    events = {e["pid"]: e for e in doc["spawns"]["events"] if e["pid"] in h.pids}
    assert set(h.pids) <= set(events), (h.pids, list(events))
    first = events[h.pids[0]]["argv"]
    assert first[0] == OSC0.decode() + "0" and first[1] == "hold"
    assert "\x1b[31mREDX" in first  # within the probe's argv limits: the early arguments are whole
    # every byte kept: the JSON holds \udcff for the byte 0xFF, never the text \xff (issue 18)
    assert BAD_UTF8.decode("utf-8", "surrogateescape") in first
    # the empty-argv exec: no arguments at all (or the kernel's single empty string)
    assert any(e["argv"] in ([], [""]) for e in doc["spawns"]["events"] if e["ppid"] == h.pids[-1]
               or e["pid"] == h.pids[-1])


def test_clicking_a_hostile_row_triggers_nothing(hostile):
    """Pilot + the real LiveSource (no probes): click the `[@click=app.quit]` row; the app keeps running."""
    from ktop import registry
    from ktop.app import KtopApp
    from ktop.sources.live import LiveSource
    from ktop.ui.widgets.table import KTable

    source = LiveSource([], ProbeOptions(pid=os.getpid()), registry.PROBES)
    app = KtopApp(source, interval=0.3)
    target = hostile.pids[2]  # comm "[@click=app.q"

    async def go():
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(60):
                await pilot.pause(0.1)
                if app.model is not None and any(p.pid == target for p in app.model.processes):
                    break
            table = app.query_one("#proc-table", KTable)
            await pilot.pause(0.5)
            row = table.get_row_index(str(target))
            assert "[@click=app.quit]x" in table.get_row(str(target))[7].plain
            svg = app.export_screenshot()
            assert not any(c in svg for c in "\x1b\x07\x9b\x7f\u202e"), "a control character in the SVG"
            assert "pwned" in svg and "\u241b" in svg  # shown, as text with its placeholder
            for col in range(len(table.columns_spec)):
                await pilot.click(table, offset=(2 + col * 8, row + 1))
                await pilot.pause(0.05)
            await pilot.click(table, offset=(2, row + 1), times=2)
            await pilot.pause(0.3)
            assert app.is_running
            # the PID screen of a hostile process: placeholders, no raw control character
            for pid in hostile.pids:
                app.drill(pid)
                await pilot.pause(0.8)
                from rich.console import Console

                console = Console(width=160, record=True, file=open(os.devnull, "w"))
                for w in app.screen.query("Static"):
                    console.print(w.content)
                text = console.export_text()
                assert not any(c in text for c in "\x1b\x07\x9b\x7f\u202e"), repr(text)
                app.pop_screen()
                await pilot.pause(0.1)
            assert app.is_running
            return True

    try:
        assert asyncio.run(go())
    finally:
        source.stop()


# -- 2. bad command lines: nothing left attached ------------------------------------
@pytest.mark.parametrize("argv", [
    ["--probes", "spawn,nosuchprobe"],
    ["snapshot", "--probes", "nosuchprobe"],
    ["snapshot", "-f", "c:"],
    ["snapshot", "-f", ":::"],
    ["snapshot", "-f", "c:malloc", "-f", ""],
    ["snapshot", "0"],
    ["snapshot", "-1"],
    ["snapshot", "--duration", "-3"],
    ["record", "-o", "/nonexistent/dir/x.jsonl", "--count", "1"],
    ["record", "-o", "/proc/version", "--count", "1"],
    ["snapshot", "-p", "999999999"],
    ["-p", "0"],
])
def test_bad_cli_input_leaves_no_program(argv):
    require_spawn()
    before = loaded_prog_ids()
    r = subprocess.run([*KTOP, *argv], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    after = loaded_prog_ids()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1, r.stderr
    assert r.stdout == ""
    # programs another process loaded meanwhile may appear; none may be ktop's (it has exited)
    assert wait_until(lambda: not _ownerless(after - before), 5, 0.2)


def _prog_info(prog_id: int) -> str:
    return subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True,
                          text=True).stdout.strip()


def _held_prog_ids() -> set[int]:
    """Program ids that some live process holds open (bpftool here lists no owner pids)."""
    held: set[int] = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                held |= prog_ids_of(int(d.name))
            except OSError:
                pass
    return held


def _ownerless(ids: set[int]) -> set[int]:
    """Those of ``ids`` still loaded and held by no live process: leaks."""
    if not ids:
        return set()
    return (ids & loaded_prog_ids()) - _held_prog_ids()


# -- 3. faults: compile error, missing tracepoint --------------------------------------
def test_compile_error_and_missing_tracepoint_are_sentences(tmp_path, monkeypatch):
    """Two broken probes beside the live spawn probe: statuses say why; the panels show it; the app runs."""
    require_spawn()
    from ktop import registry
    from ktop.app import KtopApp
    from ktop.probes.spawn import SpawnProbe
    from ktop.sources.live import LiveSource

    bad_c = tmp_path / "broken.bpf.c"
    bad_c.write_text("this is not C at all;\nint f( { return }\n")

    class BrokenCompile(SpawnProbe):  # stands in for the bio probe
        name = "bio"

        def source(self) -> str:
            return str(bad_c)

    class MissingTracepoint(SpawnProbe):  # stands in for the syscalls probe
        name = "syscalls"
        tracepoints = ("sched:no_such_event",)

    classes = {"spawn": SpawnProbe, "bio": BrokenCompile, "syscalls": MissingTracepoint}
    import ktop.sources.live as live

    monkeypatch.setattr(live, "probe_class", lambda name: classes[name])
    source = LiveSource(["spawn", "bio", "syscalls"], ProbeOptions(), registry.PROBES)
    app = KtopApp(source, interval=0.5)

    def line(widget_id: str) -> str:
        panel = app.query_one(f"#{widget_id}")
        return " ".join(str(getattr(w.render(), "plain", w.render())) for w in panel.query(".status"))

    async def go():
        async with app.run_test(size=(160, 48)) as pilot:
            ok = False
            for _ in range(200):
                await pilot.pause(0.1)
                st = {s.name: s for s in source.statuses()}
                if source.settled() and app.model is not None and "live" in line("spawns") \
                        and "failed" in line("bio") and "unsupported" in line("syscalls"):
                    ok = True
                    break
            assert ok, (st, line("spawns"), line("bio"), line("syscalls"))
            assert st["spawn"].status == LIVE
            assert st["bio"].status == FAILED and "compile error" in st["bio"].detail
            assert st["syscalls"].status == UNSUPPORTED
            assert "lacks tracepoint sched:no_such_event" in st["syscalls"].detail
            assert "compile error" in line("bio")
            assert "lacks tracepoint sched:no_such_event" in line("syscalls")
            # the live probe still sees execs
            subprocess.run(["/bin/true"])
            await pilot.pause(1.5)
            assert app.is_running and source.workers["spawn"].status.status == "live"

    try:
        asyncio.run(go())
    finally:
        source.stop()


# -- 4. lost events, full maps ----------------------------------------------------------
def _exec_storm(n_each: int = 1000, loops: int = 2) -> None:
    procs = [subprocess.Popen(["sh", "-c", f"i=0; while [ $i -lt {n_each} ]; do /bin/true; i=$((i+1)); done"])
             for _ in range(loops)]
    for p in procs:
        p.wait(120)


def test_tiny_ring_buffer_counts_lost_events_on_screen():
    require_spawn()
    from ktop import registry
    from ktop.app import KtopApp
    from ktop.sources.live import LiveSource

    source = LiveSource(["spawn"], ProbeOptions(extra={"spawn_ringbuf_pages": 1}), registry.PROBES)
    app = KtopApp(source, interval=0.5)

    async def go():
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(300):
                await pilot.pause(0.1)
                if source.settled():
                    break
            assert source.workers["spawn"].status.status == LIVE, source.statuses()
            await asyncio.get_running_loop().run_in_executor(None, _exec_storm)
            lost = source.workers["spawn"].status.lost
            # within one refresh (0.5 s) plus a frame, the status line says so
            text = ""
            for _ in range(20):
                await pilot.pause(0.1)
                w = app.query_one("#spawn-status")
                text = str(getattr(w.render(), "plain", w.render()))
                if "lost" in text:
                    break
            return lost, text

    try:
        lost, text = asyncio.run(go())
    finally:
        source.stop()
    assert lost > 0
    assert "lost " in text, text


def _bio_unavailable() -> str | None:
    from ktop.probes.bio import BioProbe

    missing = features.missing_tracepoints(BioProbe.tracepoints)
    return f"this kernel lacks tracepoint {', '.join(missing)}" if missing else None


def test_tiny_inflight_map_counts_drops_and_drains(tmp_path):
    require_spawn()
    reason = _bio_unavailable()
    if reason:
        pytest.skip(reason)
    from ktop import registry
    from ktop.sources.live import LiveSource

    d = Path("/var/tmp") / f"ktop-hardening-{os.getpid()}"
    d.mkdir(exist_ok=True)
    files = []
    for i in range(8):
        f = d / f"f{i}"
        f.write_bytes(os.urandom(1 << 20))
        files.append(f)
    os.sync()
    source = LiveSource(["bio"], ProbeOptions(extra={"bio_max_inflight": 1}), registry.PROBES)
    try:
        source.start()
        assert source.wait_settled(60 * TIME_SCALE)
        assert source.workers["bio"].status.status == LIVE, source.statuses()
        source.tick()
        procs = [subprocess.Popen(["dd", f"if={f}", "of=/dev/null", "bs=4k", "iflag=direct"],
                                  stderr=subprocess.DEVNULL) for f in files for _ in range(2)]
        for p in procs:
            p.wait(60)
        time.sleep(0.3)
        burst = source.tick().bio
        assert burst is not None
        assert burst.inflight_full > 0, burst
        assert source.workers["bio"].status.lost > 0
        time.sleep(1.0)
        quiet = [source.tick().bio for _ in range(2)]
        assert quiet[-1].inflight_full == 0, quiet  # drained: no new drops once the burst is over
    finally:
        source.stop()
        shutil.rmtree(d, ignore_errors=True)


# -- 5. clean exits from the real UI -----------------------------------------------------
RAISE_ON_2ND_MODEL = textwrap.dedent("""
    import sys
    import ktop.app as a
    orig = a.KtopApp.show_model
    seen = [0]
    def show_model(self, model):
        if self.source.settled():  # the probes are attached: the exception must detach them
            seen[0] += 1
        if seen[0] == 2:
            raise RuntimeError("hardening test: boom")
        return orig(self, model)
    a.KtopApp.show_model = show_model
    from ktop.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _bpf_stats() -> str:
    try:
        return Path("/proc/sys/kernel/bpf_stats_enabled").read_text()
    except OSError:
        return ""


@pytest.mark.parametrize("how", ["q", "SIGTERM", "SIGHUP", "SIGINT", "exception"])
def test_clean_exit_of_the_real_ui(how, tmp_path):
    require_spawn()
    if not features.uprobes_available():
        pytest.skip("this kernel lacks uprobes")
    events_before = probe_events()
    stats_before = _bpf_stats()
    args = ("--probes", "spawn", "-f", "c:malloc", "--bpf-stats", "0.5")
    if how == "exception":
        script = tmp_path / "ktop_raise.py"
        script.write_text(RAISE_ON_2ND_MODEL)
        import shlex

        cmd = " ".join(shlex.quote(a) for a in (sys.executable, str(script), *args))
    else:
        cmd = _ktop_cmd(*args)
    tm = Tmux(cmd)
    try:
        pid = tm.ktop_pid()
        progs_before = loaded_prog_ids()
        assert wait_until(lambda: len(prog_ids_of(pid)) >= 2 or not os.path.exists(f"/proc/{pid}"),
                          30 * TIME_SCALE), "probes never attached"
        ids = prog_ids_of(pid) if os.path.exists(f"/proc/{pid}") else set()
        if how != "exception":
            tm.wait_text("spawn: live", 60)
            assert tm.display("#{alternate_on}") == "1"
            if how == "q":
                # the dashboard speaks no TLS: libcrypto (about 4 MB resident) stays out of it (ktop.cli.ui)
                maps = Path(f"/proc/{pid}/maps").read_text()
                assert "libcrypto" not in maps and "libssl" not in maps
                tm.run("send-keys", "-t", "k", "q")
            else:
                os.kill(pid, getattr(signal, how))
        screen = tm.wait_text("KTOP_EXITED", 30)
        assert tm.display("#{alternate_on}") == "0"
        code = int(screen.split("KTOP_EXITED", 1)[1].split()[0])
        expected = {"q": 0, "SIGTERM": 128 + 15, "SIGHUP": 128 + 1, "SIGINT": 128 + 2}
        if how in expected:
            assert code == expected[how], screen
        else:
            assert code != 0 and "boom" in screen, screen
        progs_after = loaded_prog_ids()
        assert not (ids & progs_after), "a BPF program of ktop is still loaded"
        # others' programs come and go (their owners exiting): only one that stays ownerless counts
        assert wait_until(lambda: not _ownerless(progs_after - progs_before), 5, 0.2), \
            "a program outlived ktop: " + "; ".join(_prog_info(i) for i in _ownerless(progs_after - progs_before))
        assert probe_events() == events_before or _only_foreign_events(events_before)
        assert _bpf_stats() == stats_before
    finally:
        tm.close()


def _only_foreign_events(before: dict) -> bool:
    now = probe_events()
    for name, lines in now.items():
        for line in lines - before.get(name, set()):
            if f"_{os.getpid()}_" in line:
                return False
            import re

            m = re.search(r"bcc_(\d+)", line)
            if not m or not os.path.exists(f"/proc/{m.group(1)}"):
                return False
    return True


def test_sigkill_with_a_uprobe_leaves_tracefs_clean():
    """SIGKILL cannot be caught: with the perf uprobe PMU nothing is written to tracefs, and the
    next start says nothing about leftovers that do not exist."""
    require_spawn()
    if not features.uprobes_available():
        pytest.skip("this kernel lacks uprobes")
    before = probe_events()
    tm = Tmux(_ktop_cmd("--probes", "funcs", "-f", "c:malloc", "0.5"))
    try:
        pid = tm.ktop_pid()
        tm.wait_text("funcs: live", 60)
        assert wait_until(lambda: prog_ids_of(pid), 30)
        os.kill(pid, signal.SIGKILL)
        tm.wait_text("KTOP_EXITED", 20)
    finally:
        tm.close()
    after = probe_events()
    assert after["uprobe_events"] - before["uprobe_events"] == set(), after
    r = subprocess.run([*KTOP, "snapshot", "--probes", "funcs", "-f", "c:malloc", "--duration", "0.5"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "removed" not in r.stderr.lower() and "left" not in r.stderr.lower(), r.stderr
    assert probe_events()["uprobe_events"] - before["uprobe_events"] == set()


# -- 6. vanishing things with real processes ----------------------------------------------
def test_pid_screen_of_a_process_that_exits():
    from ktop import registry
    from ktop.app import KtopApp
    from ktop.sources.live import LiveSource
    from ktop.ui.screens.pid import PidScreen

    child = subprocess.Popen(["sleep", "60"])
    source = LiveSource([], ProbeOptions(), registry.PROBES)
    app = KtopApp(source, interval=0.3)

    async def go():
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(50):
                await pilot.pause(0.1)
                if app.model is not None and any(p.pid == child.pid for p in app.model.processes):
                    break
            app.drill(child.pid)
            await pilot.pause(1.0)
            assert isinstance(app.screen, PidScreen)
            child.kill()
            child.wait()
            await pilot.pause(1.5)
            assert app.is_running and isinstance(app.screen, PidScreen)
            from rich.console import Console

            console = Console(width=160, record=True, file=open(os.devnull, "w"))
            for w in app.screen.query("Static"):
                console.print(w.content)
            return console.export_text()

    try:
        text = asyncio.run(go())
    finally:
        child.kill()
        source.stop()
    assert "exited" in text, text


def _terminal_restored(tm: Tmux) -> list[str]:
    """What is still wrong with the pane's terminal after ktop exited ([] when all is restored)."""
    wrong = []
    if tm.display("#{alternate_on}") != "0":
        wrong.append("alternate screen on")
    if tm.display("#{cursor_flag}") != "1":
        wrong.append("cursor hidden")
    if tm.display("#{mouse_any_flag}") not in ("0", ""):
        wrong.append("mouse reporting on")
    tty = tm.display("#{pane_tty}")
    modes = subprocess.run(["stty", "-a"], stdin=open(tty), capture_output=True, text=True, timeout=10).stdout
    for flag in ("echo", "icanon", "isig"):
        if f"-{flag} " in modes + " ":
            wrong.append(f"{flag} off")
    return wrong


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_stop_signal_at_any_moment_of_start_up_restores_the_terminal(sig):
    """A stop signal every 0.1 s through the first 2 s (SIGTERM; every 0.3 s for the others): ktop
    always exits with 128+N and leaves the terminal as it found it."""
    require_spawn()
    step = 0.1 if sig == "SIGTERM" else 0.3
    delays = [round(step * i, 2) for i in range(1, int(2.0 / step) + 1)]
    signum = getattr(signal, sig)
    for delay in delays:
        tm = Tmux(_ktop_cmd("--probes", "spawn", "1"))
        try:
            pid = tm.ktop_pid()
            start = time.monotonic()
            time.sleep(max(0.0, delay - (time.monotonic() - start)))
            os.kill(pid, signum)
            screen = tm.wait_text("KTOP_EXITED", 30)
            code = int(screen.split("KTOP_EXITED", 1)[1].split()[0])
            assert code == 128 + signum, (delay, screen)
            assert _terminal_restored(tm) == [], (sig, delay)
        finally:
            tm.close()


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _settled_threads(pid: int) -> int:
    """The thread count once start-up's short-lived threads (a probe build's reader, ...) are gone:
    the same for a whole second."""
    last, since = _threads(pid), time.monotonic()
    deadline = since + 20 * TIME_SCALE
    while time.monotonic() - since < 1.0 and time.monotonic() < deadline:
        time.sleep(0.1)
        n = _threads(pid)
        if n != last:
            last, since = n, time.monotonic()
    return last


def _raw_modes(tm: Tmux) -> list[str]:
    """What is not as ktop set it: the alternate screen, the cursor, echo and canonical mode off."""
    wrong = []
    if tm.display("#{alternate_on}") != "1":
        wrong.append("alternate screen off")
    if tm.display("#{cursor_flag}") != "0":
        wrong.append("cursor shown")
    modes = subprocess.run(["stty", "-a"], stdin=open(tm.display("#{pane_tty}")), capture_output=True, text=True,
                           timeout=10).stdout
    wrong += [f"{flag} on" for flag in ("echo", "icanon") if f" {flag} " in f" {modes} "]
    return wrong


def _typed_filter(tm: Tmux, text: str) -> None:
    """Types a filter one key at a time; every key must arrive, in order."""
    tm.run("send-keys", "-t", "k", "/")
    for c in text:
        time.sleep(0.05)
        tm.run("send-keys", "-t", "k", c)
    tm.wait_text(f"filter: {text}", 10)
    tm.run("send-keys", "-t", "k", "Escape")
    time.sleep(0.5)  # a key right after Escape would read as Alt+key


def test_stop_and_continue_from_outside_keeps_the_terminal_and_every_key():
    """SIGSTOP then SIGCONT (a debugger, `kill -STOP`): Textual's own handler started a second input
    thread on top of the first at each SIGCONT (4 threads, then 8, 12 ...), and the first key after
    went astray. Now the same threads, the terminal's modes as ktop set them, and every key read."""
    tm = Tmux(_ktop_cmd("--probes", "none", "1"))
    try:
        pid = tm.ktop_pid()
        tm.wait_text("Processes")
        before = _settled_threads(pid)
        for _ in range(3):
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.3)
            subprocess.run(["stty", "sane"], stdin=open(tm.display("#{pane_tty}")), timeout=10)  # as a shell would
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.5 * TIME_SCALE)
        assert _threads(pid) <= before  # the bug: +4 threads at each SIGCONT
        assert _raw_modes(tm) == []
        _typed_filter(tm, "abcdefghij")
        tm.run("send-keys", "-t", "k", "q")
        screen = tm.wait_text("KTOP_EXITED", 30)
        assert screen.split("KTOP_EXITED", 1)[1].split()[0] == "0"
    finally:
        tm.close()


def test_ctrl_z_suspends_to_the_shell_and_fg_comes_back():
    """htop's habit: Ctrl+Z gives the terminal back to the shell as it was, `fg` brings ktop back
    whole, with every key read after."""
    _require_tool("bash")
    tm = Tmux("bash --norc --noprofile -i")
    try:
        tm.run("send-keys", "-t", "k", _ktop_cmd("--probes", "none", "1"), "Enter")
        pid = tm.ktop_pid()
        tm.wait_text("Processes")
        before = _settled_threads(pid)
        tm.run("send-keys", "-t", "k", "C-z")
        tm.wait_text("Stopped", 10)
        assert tm.display("#{alternate_on}") == "0" and tm.display("#{cursor_flag}") == "1"
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
        tm.run("send-keys", "-t", "k", "fg", "Enter")
        assert wait_until(lambda: tm.display("#{alternate_on}") == "1", 10 * TIME_SCALE, 0.1)
        tm.wait_text("Processes")
        assert _threads(pid) <= before
        assert _raw_modes(tm) == []
        _typed_filter(tm, "klmnop")
        tm.run("send-keys", "-t", "k", "q")
        assert wait_until(lambda: not Path(f"/proc/{pid}").exists(), 30 * TIME_SCALE, 0.1)
        # (echo and icanon are readline's business at bash's prompt)
        assert [w for w in _terminal_restored(tm) if w not in ("echo off", "icanon off")] == []
    finally:
        tm.close()
