"""Decoding the spawn probe's ring-buffer records (bpf/spawn.bpf.c) without a kernel.

Records are packed here field by field as the C structs lay them out; a
gcc-compiled copy of those structs checks that the layout is what we pack.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess

import pytest

from ktop.probes import spawn
from ktop.probes.spawn import (
    ARG_LEN,
    EV_EXEC,
    EV_EXIT,
    F_ARGS_TRUNCATED,
    F_NO_ARGV,
    MAX_ARGS,
    STAT_SLOTS,
    build_sample,
    decode_argv,
    decode_event,
    decode_exec,
    decode_exit,
    decode_wait_status,
)
from ktop.resources import bpf_dir
from ktop.snapshot import ExecEvent, ExitEvent

ARGS_BUF = MAX_ARGS * ARG_LEN
OFFSET = 1_700_000_000.0  # wall clock minus monotonic, for the tests


def pack_exec(*, pid=100, ppid=1, uid=0, retval=0, argv=(b"/bin/true",), flags=0, ts=5_000_000_000,
              comm=b"true", pcomm=b"bash", filename=b"/bin/true", args_size=None, argc=None,
              cgroup_id=0) -> bytes:
    """struct exec_event, exactly as the kernel program fills it (args zero-padded to ARGS_BUF)."""
    args = b"".join(a + b"\0" for a in argv)
    size = len(args) if args_size is None else args_size
    head = struct.pack("<IIIIiIIIQQ16s16s256s", EV_EXEC, pid, ppid, uid, retval,
                       len(argv) if argc is None else argc, size, flags, ts, cgroup_id, comm, pcomm, filename)
    return head + args.ljust(ARGS_BUF, b"\0")[:ARGS_BUF]


def pack_exit(*, pid=100, ppid=1, status=0, ts=6_000_000_000, lifetime_ns=1_000_000_000,
              comm=b"true") -> bytes:
    """struct exit_event."""
    return struct.pack("<IIIiQQ16s", EV_EXIT, pid, ppid, status, ts, lifetime_ns, comm)


# ---------------------------------------------------------------------------
# the C side


def _c_source() -> str:
    return (bpf_dir() / "spawn.bpf.c").read_text()


def _c_struct(src: str, name: str) -> str:
    m = re.search(rf"struct {name} \{{(.*?)\n\}};", src, re.S)
    assert m, f"struct {name} not found in spawn.bpf.c"
    return f"struct {name} {{{m.group(1)}\n}};"


def _c_fields(body: str) -> list[str]:
    return re.findall(r"^\s*(?:u32|s32|u64|char)\s+(\w+)", body, re.M)


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    """{struct: [(field, offset, size)], "sizeof": {...}} from gcc."""
    cc = shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler to check the struct layout (apt-get install gcc)")
    src = _c_source()
    structs = {n: _c_struct(src, n) for n in ("exec_event", "exit_event")}
    prog = ["#include <stdio.h>", "#include <stddef.h>", "#include <stdint.h>",
            "typedef uint32_t u32; typedef int32_t s32; typedef uint64_t u64;",
            "#define TASK_COMM_LEN 16", "#define PATH_LEN 256",
            f"#define ARGS_BUF ({MAX_ARGS} * {ARG_LEN})",
            *structs.values(), "int main(void) {"]
    for n, body in structs.items():
        for f in _c_fields(body):
            prog.append(f'printf("{n} {f} %zu %zu\\n", offsetof(struct {n}, {f}), '
                        f'sizeof(((struct {n} *)0)->{f}));')
        prog.append(f'printf("{n} sizeof %zu 0\\n", sizeof(struct {n}));')
    prog.append("return 0; }")
    d = tmp_path_factory.mktemp("layout")
    (d / "l.c").write_text("\n".join(prog))
    subprocess.run([cc, "-o", str(d / "l"), str(d / "l.c")], check=True, capture_output=True)
    out = subprocess.run([str(d / "l")], check=True, capture_output=True, text=True).stdout
    layout: dict[str, dict[str, tuple[int, int]]] = {}
    for line in out.splitlines():
        s, f, off, size = line.split()
        layout.setdefault(s, {})[f] = (int(off), int(size))
    return layout


def _py_offsets(fmt: str, names: list[str]) -> dict[str, tuple[int, int]]:
    codes = re.findall(r"\d*[a-zA-Z]", fmt.lstrip("<"))
    assert len(codes) == len(names)
    out, off = {}, 0
    for code, name in zip(codes, names):
        size = struct.calcsize("<" + code)
        out[name] = (off, size)
        off += size
    return out


def test_exec_event_layout_matches_c(c_layout):
    names = ["type", "pid", "ppid", "uid", "retval", "argc", "args_size", "flags", "ts", "cgroup_id", "comm", "pcomm",
             "filename"]
    py = _py_offsets(spawn._EXEC_HEAD.format, names)
    c = c_layout["exec_event"]
    assert {k: v for k, v in c.items() if k not in ("args", "sizeof")} == py
    assert c["args"] == (spawn._EXEC_HEAD.size, ARGS_BUF)
    assert c["sizeof"][0] == len(pack_exec())


def test_exit_event_layout_matches_c(c_layout):
    names = ["type", "pid", "ppid", "exit_code", "ts", "lifetime_ns", "comm"]
    py = _py_offsets(spawn._EXIT.format, names)
    c = c_layout["exit_event"]
    assert {k: v for k, v in c.items() if k != "sizeof"} == py
    assert c["sizeof"][0] == spawn._EXIT.size == len(pack_exit())


def test_constants_match_c():
    src = _c_source()
    header = (bpf_dir() / "ktop.h").read_text()
    def define(text, name):
        return int(re.search(rf"#define {name} (\d+)", text).group(1))

    assert define(header, "KTOP_EV_EXEC") == EV_EXEC
    assert define(header, "KTOP_EV_EXIT") == EV_EXIT
    assert define(header, "TASK_COMM_LEN") == 16
    assert define(src, "F_ARGS_TRUNCATED") == F_ARGS_TRUNCATED
    assert define(src, "F_NO_ARGV") == F_NO_ARGV
    assert define(src, "MAX_ARGS") == MAX_ARGS
    assert define(src, "ARG_LEN") == ARG_LEN
    slots = {"FORKS": "forks", "EXECS": "exec_count", "EXEC_FAILS": "exec_failures", "EXITS": "exit_count",
             "LOST": "lost", "PENDING_FULL": "pending_full", "TRACKED_FULL": "tracked_full",
             "ARGS_TRUNC": "args_truncated"}
    for c_name, py_name in slots.items():
        assert STAT_SLOTS[define(src, "ST_" + c_name)] == py_name
    assert define(src, "ST_NR") == len(STAT_SLOTS)


# ---------------------------------------------------------------------------
# exec records


def test_decode_exec_fields_and_argv():
    raw = pack_exec(pid=4242, ppid=77, uid=1000, argv=(b"ls", b"-l", b"/tmp"), comm=b"ls",
                    filename=b"/usr/bin/ls", ts=2_500_000_000, cgroup_id=0x1_0000_0123)
    ev = decode_event(raw, OFFSET)
    assert ev == ExecEvent(time=OFFSET + 2.5, pid=4242, ppid=77, uid=1000, comm="ls",
                           filename="/usr/bin/ls", argv=("ls", "-l", "/tmp"), argv_truncated=False,
                           retval=0, parent_comm="bash", cgroup_id=0x1_0000_0123)


def test_decode_exec_empty_and_spaced_arguments():
    ev = decode_exec(pack_exec(argv=(b"sh", b"", b"a b", b"")), 0.0)
    assert ev.argv == ("sh", "", "a b", "")


def test_decode_exec_truncation_flag():
    long_arg = b"x" * (ARG_LEN - 1)  # what bpf_probe_read_user_str leaves of a longer one
    ev = decode_exec(pack_exec(argv=(b"echo", long_arg), flags=F_ARGS_TRUNCATED), 0.0)
    assert ev.argv_truncated is True
    assert ev.argv == ("echo", "x" * (ARG_LEN - 1))
    assert decode_exec(pack_exec(flags=0), 0.0).argv_truncated is False


def test_decode_exec_max_args():
    argv = tuple(b"a%d" % i for i in range(MAX_ARGS))
    ev = decode_exec(pack_exec(argv=argv, flags=F_ARGS_TRUNCATED), 0.0)
    assert ev.argv == tuple(a.decode() for a in argv)
    assert ev.argv_truncated


def test_decode_exec_failed_exec():
    ev = decode_exec(pack_exec(retval=-2, argv=(b"/nonexistent/x", b"arg"), filename=b"/nonexistent/x",
                               comm=b"python3"), 0.0)
    assert ev.retval == -2
    assert ev.argv == ("/nonexistent/x", "arg")
    assert ev.comm == "python3"


def test_decode_exec_without_argv():
    ev = decode_exec(pack_exec(argv=(), flags=F_NO_ARGV, filename=b""), 0.0)
    assert ev.argv == ()
    assert ev.filename == ""


def test_decode_exec_invalid_utf8():
    ev = decode_exec(pack_exec(argv=(b"prog", b"caf\xe9", b"\xff\xfe"), comm=b"bad\xffname",
                               filename=b"/tmp/\xc3"), 0.0)
    # every byte kept (surrogateescape): JSON tells them from a literal backslash
    assert ev.argv == ("prog", "caf\udce9", "\udcff\udcfe")
    assert ev.comm == "bad\udcffname"
    assert ev.filename == "/tmp/\udcc3"
    assert ev.argv[2].encode("utf-8", "surrogateescape") == b"\xff\xfe"


def test_decode_exec_comm_full_16_bytes_and_garbage_after_nul():
    comm = b"abcdefghijklmno\0"
    assert decode_exec(pack_exec(comm=comm), 0.0).comm == "abcdefghijklmno"
    assert decode_exec(pack_exec(comm=b"sh\0junk"), 0.0).comm == "sh"


def test_decode_exec_args_size_larger_than_record_is_clipped():
    raw = pack_exec(argv=(b"a", b"b"))
    ev = decode_exec(raw[: spawn._EXEC_HEAD.size + 4], 0.0)  # a short record: "a\0b\0"
    assert ev.argv == ("a", "b")
    ev = decode_exec(pack_exec(argv=(b"a", b"b"), args_size=10_000), 0.0)
    assert ev.argv == ("a", "b")


def test_decode_argv_respects_argc_and_size():
    assert decode_argv(b"one\0two\0three\0", 2, 14) == ("one", "two")
    assert decode_argv(b"one\0two\0three\0", 3, 8) == ("one", "two", "")
    assert decode_argv(b"", 0, 0) == ()


# ---------------------------------------------------------------------------
# exit records and wait statuses


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0, (0, None)),
        (7 << 8, (7, None)),
        (255 << 8, (255, None)),
        (signal.SIGKILL, (-9, 9)),
        (signal.SIGTERM, (-15, 15)),
        (0x80 | signal.SIGSEGV, (-11, 11)),  # core dumped
        (-1, (None, None)),
    ],
)
def test_decode_wait_status(status, expected):
    assert decode_wait_status(status) == expected


def test_wait_status_agrees_with_os_helpers():
    for status in (0, 3 << 8, 9, 0x80 | 6, 15):
        code, sig = decode_wait_status(status)
        if os.WIFSIGNALED(status):
            assert (code, sig) == (-os.WTERMSIG(status), os.WTERMSIG(status))
        else:
            assert (code, sig) == (os.WEXITSTATUS(status), None)


def test_decode_exit_code():
    ev = decode_event(pack_exit(pid=9, ppid=3, status=7 << 8, ts=1_000_000_000, lifetime_ns=250_000_000,
                                comm=b"worker"), OFFSET)
    assert ev == ExitEvent(time=OFFSET + 1.0, pid=9, ppid=3, comm="worker", exit_code=7, exit_signal=None,
                           lifetime_ms=250.0)


def test_decode_exit_killed():
    ev = decode_exit(pack_exit(status=signal.SIGKILL), 0.0)
    assert (ev.exit_code, ev.exit_signal) == (-9, 9)


def test_decode_exit_unknown():
    ev = decode_exit(pack_exit(status=-1, lifetime_ns=0), 0.0)
    assert ev.exit_code is None and ev.exit_signal is None
    assert ev.lifetime_ms is None


# ---------------------------------------------------------------------------
# dispatch, counters, samples


def test_decode_event_rejects_unknown_and_short_records():
    assert decode_event(b"", 0.0) is None
    assert decode_event(b"\x01\x00", 0.0) is None
    assert decode_event(struct.pack("<I", 99) + b"\0" * 100, 0.0) is None
    assert decode_event(pack_exec()[: spawn._EXEC_HEAD.size - 1], 0.0) is None
    assert decode_event(pack_exit()[:-1], 0.0) is None
    assert isinstance(decode_event(pack_exec()[: spawn._EXEC_HEAD.size], 0.0), ExecEvent)


def test_slot_deltas():
    from ktop.probes.maps import slot_deltas

    prev = {"forks": 10, "exec_count": 5, "lost": 2}
    cur = {"forks": 15, "exec_count": 5, "lost": 1, "exit_count": 4}
    d = slot_deltas(cur, prev, STAT_SLOTS)
    assert set(d) == set(STAT_SLOTS)
    assert d["forks"] == 5
    assert d["exec_count"] == 0
    assert d["lost"] == 0  # a counter never goes backwards into negative rates
    assert d["exit_count"] == 4
    assert d["tracked_full"] == 0


def test_build_sample_adds_user_space_losses():
    deltas = dict.fromkeys(STAT_SLOTS, 0) | {"lost": 3, "exec_count": 2, "forks": 4, "exec_failures": 1}
    e = decode_exec(pack_exec(), 0.0)
    x = decode_exit(pack_exit(), 0.0)
    s = build_sample(1.5, [e], [x], deltas, user_lost=2)
    assert s.interval_s == 1.5
    assert s.execs == (e,) and s.exits == (x,)
    assert s.lost == 5
    assert (s.exec_count, s.forks, s.exec_failures) == (2, 4, 1)


def test_decode_argv_from_the_new_images_argument_area():
    from ktop.probes.spawn import F_ARGS_FROM_MM, decode_argv

    buf = b"echo\0hello\0forked world\0"
    assert decode_argv(buf, 0, len(buf), from_mm=True) == ("echo", "hello", "forked world")
    # cut in the middle of the last argument (flagged truncated by the kernel program)
    assert decode_argv(buf, 0, 13, from_mm=True) == ("echo", "hello", "fo")
    assert decode_argv(b"", 0, 0, from_mm=True) == ()
    raw = pack_exec(argv=(), flags=F_ARGS_FROM_MM, args_size=len(buf), argc=0)
    raw = raw[: len(raw) - len(raw[-2560:])] + buf.ljust(2560, b"\0")
    assert decode_event(raw, OFFSET).argv == ("echo", "hello", "forked world")
