"""What the running kernel offers: features checked, not versions.

Every check is a plain function returning data, used by the probe workers
(before they compile anything) and by ``ktop doctor``.
"""

from __future__ import annotations

import errno
import functools
import importlib.util
import mmap
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from ktop.probes import bpfsys

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


# Capability bits (linux/capability.h).
_CAP_SYS_ADMIN = 21
_CAP_PERFMON = 38
_CAP_BPF = 39


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    remedy: str = ""


def _may_see(test, path: Path) -> bool:
    """``path.is_dir()`` and friends, False where we may not look (tracefs is 0700: not root)."""
    try:
        return test(path)
    except OSError:
        return False


def tracefs() -> Path | None:
    """The mounted tracefs (that this process can read), or None."""
    for p in TRACEFS_CANDIDATES:
        if _may_see(Path.is_dir, p / "events"):
            return p
    return None


def tracepoint_exists(category: str, event: str) -> bool:
    t = tracefs()
    return bool(t and _may_see(Path.is_file, t / "events" / category / event / "format"))


def missing_tracepoints(names: tuple[str, ...]) -> list[str]:
    """Which of ``category:event`` names this kernel lacks."""
    return [n for n in names if not tracepoint_exists(*n.split(":", 1))]


def kprobes_available() -> bool:
    if Path("/sys/bus/event_source/devices/kprobe").exists():
        return True
    t = tracefs()
    return bool(t and _may_see(Path.exists, t / "kprobe_events"))


def untraceable_functions(names: tuple[str, ...]) -> list[str]:
    """Which kernel functions of ``names`` a kprobe cannot attach to: not in tracefs's
    available_filter_functions (inlined, notrace or absent); all of them when it is unreadable."""
    t = tracefs()
    want = set(names)
    found: set[str] = set()
    try:
        with open(Path(t) / "available_filter_functions") if t else open(os.devnull) as f:
            for line in f:
                name = line.split(" ", 1)[0].rstrip("\n")
                if name in want:
                    found.add(name)
    except OSError:
        pass
    return [n for n in names if n not in found]


def perf_event_supported() -> bool:
    """Perf events (CONFIG_PERF_EVENTS) with the software PMU, whose cpu-clock the profile probe samples on."""
    return (Path("/sys/bus/event_source/devices/software").exists()
            or Path("/proc/sys/kernel/perf_event_paranoid").exists())


def uprobes_available() -> bool:
    if Path("/sys/bus/event_source/devices/uprobe").exists():
        return True
    t = tracefs()
    return bool(t and _may_see(Path.exists, t / "uprobe_events"))


@functools.lru_cache(maxsize=1)
def raw_tracepoints() -> bool:
    """BPF raw tracepoints (Linux 4.17+): their context struct is in the kernel's BTF,
    else the kernel symbol BCC's support_raw_tracepoint() looks for."""
    from ktop.probes.btf import BTFError, struct_offsets

    try:
        struct_offsets("bpf_raw_tracepoint_args", ("args",))
        return True
    except BTFError:
        pass
    try:
        with open("/proc/kallsyms") as f:
            return any(line.rstrip().endswith((" bpf_find_raw_tracepoint", " bpf_get_raw_tracepoint"))
                       for line in f)
    except OSError:
        return False


def btf_available() -> bool:
    return Path("/sys/kernel/btf/vmlinux").is_file()


@functools.lru_cache(maxsize=1)
def task_storage() -> bool:
    """BPF task-local storage from tracepoint programs, on the current task got through
    bpf_get_current_task_btf (both Linux 5.11+; tracing programs may use the storage since 5.12):
    a per-thread slot without a hash map's update and delete."""
    from ktop.probes.btf import BTFError, load

    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return False
    if (major, minor) < (5, 12):
        return False
    try:
        b = load()
    except (BTFError, OSError):
        return False
    return b.has_func("bpf_task_storage_get") and b.has_func("bpf_get_current_task_btf")


def kernel_headers() -> tuple[bool, str]:
    """(usable, description) of the headers BCC will compile against."""
    rel = platform.release()
    build = Path("/lib/modules") / rel / "build"
    if (build / "include").is_dir():
        target = os.path.realpath(build)
        if rel in target:
            return True, f"{build} -> {target}"
        return True, f"{build} -> {target} (not built for {rel}: only tracepoint fields are read)"
    if Path("/sys/kernel/kheaders.tar.xz").exists():
        return True, "/sys/kernel/kheaders.tar.xz (CONFIG_IKHEADERS)"
    return False, f"{build} missing"


def capabilities() -> int:
    """The effective capability mask of this process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def can_trace() -> bool:
    """Root, or the capabilities BPF tracing needs."""
    if os.geteuid() == 0:
        return True
    caps = capabilities()
    has = lambda bit: bool(caps >> bit & 1)  # noqa: E731
    return has(_CAP_SYS_ADMIN) or (has(_CAP_BPF) and has(_CAP_PERFMON))


def _bpf_map_create(map_type: int, key_size: int, value_size: int, max_entries: int) -> int:
    """Creates and closes a map; returns 0 or the errno."""
    try:
        os.close(bpfsys.create_map(map_type, key_size, value_size, max_entries))
    except OSError as exc:
        return exc.errno
    return 0


@functools.lru_cache(maxsize=1)
def bpf_syscall() -> int:
    """0 when bpf(2) works for us, else the errno (EPERM when not root)."""
    return _bpf_map_create(bpfsys.BPF_MAP_TYPE_ARRAY, 4, 8, 1)


@functools.lru_cache(maxsize=1)
def ringbuf_supported() -> bool | None:
    """True/False, or None when it cannot be told (no bpf(2) for us)."""
    if bpf_syscall() != 0:
        return None
    return _bpf_map_create(bpfsys.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096) == 0


@functools.lru_cache(maxsize=1)
def mmapable_arrays() -> bool:
    """Whether an array map can be made mmap-able here (BPF_F_MMAPABLE, Linux 5.5) and mapped:
    user space then reads it with no system call."""
    if bpf_syscall() != 0:
        return False
    try:
        fd = bpfsys.create_map(bpfsys.BPF_MAP_TYPE_ARRAY, 4, 8, 1, flags=bpfsys.BPF_F_MMAPABLE)
    except OSError:
        return False
    try:
        mmap.mmap(fd, 8, mmap.MAP_SHARED, mmap.PROT_READ).close()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def bcc_available() -> bool:
    return importlib.util.find_spec("bcc") is not None


def bpf_stats_enabled() -> bool | None:
    try:
        return Path("/proc/sys/kernel/bpf_stats_enabled").read_text().strip() == "1"
    except OSError:
        return None


def checks() -> list[Check]:
    """Everything ``ktop doctor`` reports about the kernel and this process."""
    out: list[Check] = []
    root = can_trace()
    out.append(Check("root", root, "running as root" if os.geteuid() == 0 else
                     ("tracing capabilities present" if root else f"uid {os.geteuid()}, no CAP_BPF/CAP_PERFMON"),
                     "" if root else "run ktop as root: sudo ktop"))
    err = bpf_syscall()
    if err == 0:
        out.append(Check("bpf syscall", True, "bpf(2) works"))
    else:
        out.append(Check("bpf syscall", False, f"bpf(2) failed: {os.strerror(err)}",
                         "run as root" if err == errno.EPERM else "kernel needs CONFIG_BPF_SYSCALL"))
    jit = Path("/proc/sys/net/core/bpf_jit_enable")
    out.append(Check("BPF JIT", jit.exists() and jit.read_text().strip() != "0",
                     "enabled" if jit.exists() else "no bpf_jit_enable", "sysctl net.core.bpf_jit_enable=1"))
    btf = btf_available()
    out.append(Check("BTF", btf, "/sys/kernel/btf/vmlinux" if btf else "no /sys/kernel/btf/vmlinux",
                     "kernel needs CONFIG_DEBUG_INFO_BTF (spawn then lacks ppid/exit code/lifetime)"))
    t = tracefs()
    out.append(Check("tracefs", t is not None, f"mounted at {t}" if t else "not mounted",
                     "mount -t tracefs nodev /sys/kernel/tracing"))
    ok, detail = kernel_headers()
    out.append(Check("kernel headers", ok, detail, "make install (links the distribution's headers)"))
    bcc = bcc_available()
    out.append(Check("bcc", bcc, "python3-bpfcc importable" if bcc else "python module bcc not found",
                     "apt-get install python3-bpfcc (and use a venv with --system-site-packages)"))
    rb = ringbuf_supported()
    out.append(Check("ring buffer", bool(rb), {True: "BPF_MAP_TYPE_RINGBUF works", False: "not supported",
                                               None: "cannot tell without bpf(2)"}[rb],
                     "kernel 5.8+ needed for spawn events"))
    out.append(Check("kprobes", kprobes_available(), "available" if kprobes_available() else
                     "this kernel has no kprobes (CONFIG_KPROBES is not set)",
                     "kernel-function targets need CONFIG_KPROBES"))
    out.append(Check("uprobes", uprobes_available(), "available" if uprobes_available() else "not available",
                     "user-function targets need CONFIG_UPROBE_EVENTS"))
    st = bpf_stats_enabled()
    out.append(Check("bpf stats", st is not None, "supported (currently " + ("on" if st else "off") + ")"
                     if st is not None else "kernel.bpf_stats_enabled missing"))
    batch = map_batch_ops()
    out.append(Check("map batch reads", bool(batch), {True: "BPF_MAP_LOOKUP_BATCH: one system call per map per tick",
                                                     False: "not in this kernel (Linux 5.6+): one lookup per key",
                                                     None: "cannot tell without bpf(2)"}[batch]))
    mm = mmapable_arrays()
    out.append(Check("mmap-able maps", mm, "BPF_F_MMAPABLE: the syscalls counters are read with no system call"
                     if mm else "not in this kernel (Linux 5.5+): the syscalls counters are read by system call"))
    out.append(Check("build helpers", True, f"{sys.executable} -m ktop.probes.helper compiles each probe and hands "
                     "its fds over a Unix socket; ktop itself never loads libbcc or LLVM"))
    out.append(Check("compile cache", True, compile_cache_detail()))
    return out


def compile_cache_detail() -> str:
    """What the helpers' compile cache (ktop/probes/bpfcache.py) holds, or why there is none."""
    from ktop.probes import bpfcache

    where = os.environ.get("KTOP_BPF_CACHE", bpfcache.DEFAULT_DIR)
    if not where or where == "off":
        return "off (KTOP_BPF_CACHE=off): every start compiles each probe"
    path = bpfcache.cache_dir()
    if path is None:
        return (f"not used: {where} must be a folder of this user's that no one else can write; "
                "every start compiles each probe")
    n = len(list(path.glob("*.json")))
    return f"{path}: {n} compile{'s' if n != 1 else ''} kept (a probe built before loads without clang)"


@functools.lru_cache(maxsize=1)
def map_batch_ops() -> bool | None:
    """Whether BPF_MAP_LOOKUP_BATCH works here (ktop/probes/maps.py falls back to a lookup per key)."""
    if bpf_syscall() != 0:
        return None
    from ktop.probes.maps import Map

    m = Map(bpfsys.create_map(bpfsys.BPF_MAP_TYPE_HASH, 4, 8, 4), "probe")
    try:
        m.update(b"\1\0\0\0", b"\0" * 8)
        m.read_all()
        return m.batched
    except OSError:
        return False
    finally:
        m.close()
