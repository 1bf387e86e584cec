"""The profile collector's decoding and frame naming, without root: map bytes as the kernel lays them
out, kallsyms text, and real ELF files (a C program built here, this Python's libc) read through this
process's own /proc/self/maps."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import struct
import subprocess
import threading
import time

import pytest

from ktop.probes import profile as p
from ktop.probes.symbols import Symbolizer, parse_kallsyms, parse_maps, read_elf

KALLSYMS = """ffffffff81000000 T _stext
ffffffff81001000 T do_syscall_64
ffffffff81001200 t __do_sys_getppid
ffffffff81001300 T __x64_sys_getppid
ffffffff81002000 D some_data
0000000000000000 T hidden_by_kptr_restrict
ffffffffc0000000 t mod_func\t[nf_tables]
"""


def key(tgid, ustack, kstack, comm):
    return struct.pack("<Iii I16s".replace(" ", ""), tgid, ustack, kstack, 0, comm)


def test_counts_and_stacks_decode_from_kernel_bytes():
    keys = key(10, 3, -errno.EFAULT, b"spin\0junk") + key(2, -errno.EFAULT, 7, b"kworker/0:1")
    values = struct.pack("<QQ", 245, 5)
    assert p.decode_counts(keys, values, 2) == {(10, 3, -errno.EFAULT, b"spin"): 245,
                                                (2, -errno.EFAULT, 7, b"kworker/0:1"): 5}
    raw = struct.pack("<127Q", 0x401136, 0x401160, *([0] * 125))
    assert p.decode_stack(raw) == (0x401136, 0x401160)
    assert p.missing(-errno.EFAULT, False) == () and p.missing(-errno.EEXIST, False) == (p.MISSED_USER,)
    assert p.missing(-errno.ENOMEM, True) == (p.MISSED_KERNEL,)


def test_kallsyms_text_symbols_by_bisection(tmp_path):
    t = parse_kallsyms(KALLSYMS)
    assert len(t) == 5  # data and zeroed addresses left out
    assert t.find(0xffffffff81001234) == ("__do_sys_getppid", 0x34)
    assert t.find(0xffffffff81001300) == ("__x64_sys_getppid", 0)
    assert t.find(0xffffffffc0000010) == ("mod_func", 0x10)
    assert t.find(0x1000) is None
    f = tmp_path / "kallsyms"
    f.write_text(KALLSYMS)
    s = Symbolizer(kallsyms=str(f))
    # a caller's frame is a return address: looked up one byte before
    assert s.kernel_stack((0xffffffff81001310, 0xffffffff81001300)) == ("__x64_sys_getppid", "__do_sys_getppid")


def test_maps_keep_executable_mappings_only():
    text = ("55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234 /usr/bin/prog\n"
            "55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234 /usr/bin/prog\n"
            "7ffd1c5fe000-7ffd1c600000 r-xp 00000000 00:00 0 [vdso]\n"
            "7f0000000000-7f0000001000 rwxp 00000000 00:00 0 \n")
    maps = parse_maps(text)
    assert [(m.start, m.offset, m.inode, m.path) for m in maps] == [
        (0x55d0c0a01000, 0x1000, 1234, "/usr/bin/prog"), (0x7f0000000000, 0, 0, ""),
        (0x7ffd1c5fe000, 0, 0, "[vdso]")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (the test builds its program)")
    d = tmp_path_factory.mktemp("elf")
    src = d / "t.c"
    src.write_text("__attribute__((noinline)) int ktop_elf_probe_fn(int x) { return x * 3 + 1; }\n"
                   "int main(int c, char **v) { return ktop_elf_probe_fn(c); }\n")
    out = d / "t"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(src)], check=True, capture_output=True)
    return out


def test_an_elf_files_functions_match_nm(built):
    info = read_elf(built.read_bytes())
    nm = subprocess.run(["nm", str(built)], capture_output=True, text=True, check=True).stdout
    addr = next(int(line.split()[0], 16) for line in nm.splitlines() if line.endswith(" ktop_elf_probe_fn"))
    assert info.symbols.find(addr) == ("ktop_elf_probe_fn", 0)
    assert info.symbols.find(addr + 2)[0] == "ktop_elf_probe_fn"
    assert read_elf(b"not an elf") is None


def test_a_live_address_of_libc_is_named_through_this_process_maps():
    libc = ctypes.CDLL("libc.so.6")
    addr = ctypes.cast(libc.getppid, ctypes.c_void_p).value
    s = Symbolizer()
    pid = os.getpid()
    assert s.user_stack(pid, (addr,)) == ("getppid",)
    reads = s.elf_reads
    s.begin_tick()
    assert s.user_stack(pid, (addr + 1,)) == ("getppid",)
    assert s.elf_reads == reads  # the file's table is read once
    # no mapping at all: [unknown]; a mapping without a symbol: module+0xoffset
    assert s.user_stack(pid, (0x10,)) == ("[unknown]",)
    vdso = next(m for m in s.maps(pid) if m.path == "[vdso]")
    assert s.user(pid, vdso.start + 0x10, s.maps(pid)) == "[vdso]+0x10"


def test_stacks_are_built_root_first_with_missing_sides(tmp_path):
    f = tmp_path / "kallsyms"
    f.write_text(KALLSYMS)
    s = Symbolizer(kallsyms=str(f))
    libc = ctypes.CDLL("libc.so.6")
    getppid = ctypes.cast(libc.getppid, ctypes.c_void_p).value
    getpid = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    pid = os.getpid()
    deltas = {(pid, 1, 2, b"me"): 7, (2, -errno.EFAULT, 2, b"kthread"): 3, (pid, -errno.EEXIST, 9, b"me"): 2,
              (pid, 1, -errno.EFAULT, b"me"): 0}
    stacks = {1: (getppid, getpid + 1), 2: (0xffffffff81001300, 0xffffffff81001010)}
    rows, unread = p.build_stacks(deltas, stacks, s)
    assert [(r.pid, r.comm, r.count, r.user, r.kernel) for r in rows] == [
        (pid, "me", 7, ("getpid", "getppid"), ("do_syscall_64", "__x64_sys_getppid")),
        (2, "kthread", 3, (), ("do_syscall_64", "__x64_sys_getppid")),
        (pid, "me", 2, (p.MISSED_USER,), (p.MISSED_KERNEL,)),  # id 9 could not be read
    ]
    assert unread == 2


def _fake_process(proc, pid: int, built, load) -> int:
    """A /proc/PID of a process that maps ``built``'s segment ``load`` at 0x10000000; its stat's start time
    and name tell it apart. Returns where the segment's link-time address 0 would be."""
    d = proc / str(pid)
    d.mkdir(parents=True)
    (d / "stat").write_text(f"{pid} (t) S" + " 0" * 20 + " 12345 0 0\n")
    off, vaddr, size = load
    st = built.stat()
    (d / "maps").write_text(f"10000000-{0x10000000 + size:x} r-xp {off:08x} 08:01 {st.st_ino} {built}\n")
    (d / "root").symlink_to("/")
    return 0x10000000 - vaddr


def _probe_fn(built) -> tuple[int, tuple[int, int, int]]:
    """The link-time address of ktop_elf_probe_fn in ``built`` and the load segment that holds it."""
    info = read_elf(built.read_bytes())
    nm = subprocess.run(["nm", str(built)], capture_output=True, text=True, check=True).stdout
    fn = next(int(line.split()[0], 16) for line in nm.splitlines() if line.endswith(" ktop_elf_probe_fn"))
    return fn, next(seg for seg in info.loads if seg[1] <= fn < seg[1] + seg[2])


def _named_after_it_exited(s: Symbolizer, proc, addr: int) -> None:
    """Once the priming thread read process 4242's maps and table, its frame at ``addr`` is named
    after the process is gone."""
    deadline = time.monotonic() + 10
    while s.elf_reads < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.primed == 1 and s.elf_reads == 1
    shutil.rmtree(proc / "4242")  # the process exited before the tick
    s.begin_tick()
    assert s.user_stack(4242, (addr + 2,)) == ("ktop_elf_probe_fn",)


class _Ring:
    """Stands in for a ring buffer: its fd (a pipe) is readable while records wait."""

    def __init__(self):
        self.r, self.w = os.pipe2(os.O_NONBLOCK)
        self.records: list[bytes] = []
        self.closed = False

    def put(self, pid: int) -> None:
        self.records.append(pid.to_bytes(4, "little"))
        os.write(self.w, b"!")

    def fileno(self) -> int:
        return self.r

    def consume(self) -> list[bytes]:
        try:
            os.read(self.r, 64)
        except BlockingIOError:
            pass
        out, self.records = self.records, []
        return out

    def close(self) -> None:
        self.closed = True
        os.close(self.r)
        os.close(self.w)


def test_follow_reads_the_ring_on_the_priming_thread_and_names_a_process_after_it_exited(tmp_path, built):
    # The profile probe's `fresh` ring is read by the symbolizer's own thread, not by a collector
    # that may be busy in a tick while a short-lived process runs and exits.
    fn, load = _probe_fn(built)
    proc = tmp_path / "proc"
    base = _fake_process(proc, 4242, built, load)
    ring = _Ring()
    s = Symbolizer(proc=str(proc))
    s.follow(ring, p._tgid_of)
    ring.put(4242)  # the first sample: told to user space at once
    _named_after_it_exited(s, proc, base + fn)
    s.close()
    assert ring.closed  # the thread that read it closed it


def test_a_process_told_of_while_files_wait_has_its_maps_read_before_them(tmp_path, built):
    # At start-up on a busy machine the primer has many files to open (each a wait for the GIL while
    # the parser reads a big table). A process told of meanwhile must not wait behind them all: it
    # may live for less than they take.
    fn, load = _probe_fn(built)
    proc = tmp_path / "proc"
    _fake_process(proc, 1, built, load)
    with open(proc / "1" / "maps", "a") as f:
        for i in range(40):
            f.write(f"{0x20000000 + i * 0x1000:x}-{0x20001000 + i * 0x1000:x} r-xp 00000000 08:02 {1000 + i}"
                    f" /lib/f{i}.so\n")
    _fake_process(proc, 4242, built, load)
    events: list[tuple[str, int]] = []
    third = threading.Event()  # the primer is in process 1's third file open
    told = threading.Event()  # ... and stays there until process 4242 is in the ring

    class Slow(Symbolizer):
        def _open(self, pid, m):
            events.append(("open", pid))
            if events.count(("open", 1)) == 3 and pid == 1:
                third.set()
                told.wait(10)
            return None

        def _read_maps(self, pid, key, got):
            events.append(("maps", pid))
            return super()._read_maps(pid, key, got)

    ring = _Ring()
    s = Slow(proc=str(proc))
    s.follow(ring, p._tgid_of)
    ring.put(1)
    assert third.wait(10)
    ring.put(4242)
    told.set()
    deadline = time.monotonic() + 10
    while events.count(("open", 1)) < 41 and time.monotonic() < deadline:
        time.sleep(0.001)
    s.close()
    # right after the open it was told during: its maps, then its file; process 1's 38 others after
    i = events.index(("maps", 4242))
    assert events[i - 1:i + 2] == [("open", 1), ("maps", 4242), ("open", 4242)], events
    assert events[:i].count(("open", 1)) == 3 and events.count(("open", 1)) == 41, events


def test_a_file_that_cannot_be_opened_is_not_remembered_as_symbol_less(tmp_path, built):
    info = read_elf(built.read_bytes())
    load = info.loads[-1]
    proc = tmp_path / "proc"
    base = _fake_process(proc, 7, built, load)
    (proc / "7" / "root").unlink()  # map_files and root both missing: the file cannot be opened
    s = Symbolizer(proc=str(proc))
    addr = base + load[1]
    assert s.user_stack(7, (addr,))[0].startswith(built.name + "+0x")
    (proc / "7" / "root").symlink_to("/")
    s.begin_tick()
    s.user_stack(7, (addr,))
    assert s.elf_reads == 1  # tried again once the file could be opened


def test_a_zombie_s_empty_maps_do_not_replace_the_maps_read_while_it_ran(tmp_path, built):
    # Between its exit and its parent's wait a process is a zombie: /proc/PID/stat is there, its
    # maps are empty. A read then (a tick, or a refresh for a junk frame) must keep the maps it had.
    fn, load = _probe_fn(built)
    proc = tmp_path / "proc"
    base = _fake_process(proc, 99, built, load)
    s = Symbolizer(proc=str(proc))
    assert s.user_stack(99, (base + fn,)) == ("ktop_elf_probe_fn",)
    (proc / "99" / "maps").write_text("")
    s.begin_tick()
    assert s.user_stack(99, (base + fn, 0x10)) == ("ktop_elf_probe_fn", "[unknown]")  # 0x10: a refresh
    assert s.user_stack(99, (base + fn + 1,)) == ("ktop_elf_probe_fn",)
