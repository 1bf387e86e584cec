"""System call names of the running architecture, read at run time.

Where the names come from, in order of trust:

1. The UAPI header of the running architecture (``asm/unistd_64.h`` on
   x86_64, ``asm-generic/unistd.h`` on arm64 and riscv64), parsed here: it
   is generated from the kernel's own syscall table, so every number it
   has is right (syscall numbers never change). It comes with the C
   library's kernel headers (Debian: ``linux-libc-dev``) and is as new as
   that package, not as the running kernel.
2. Numbers newer than that header: since Linux 5.1 every new syscall has
   the same number on every architecture (424 and up; alpha and mips add a
   base, and are not handled), plus x86_64's own late additions. They are
   listed below (up to Linux 6.18).
3. BCC's ``bcc.syscall.syscalls`` dict, only when no header is installed:
   on x86_64 it is a copy of strace's table that stops at 334 (rseq), so
   on its own it misnames nothing but leaves clone3 (435), openat2,
   faccessat2, close_range, io_uring ... unnamed.

A number in none of them is shown as ``syscall_<nr>``.
"""

from __future__ import annotations

import functools
import platform
import re
from pathlib import Path
from typing import Iterable, Mapping, Optional

# Linux 5.1+: one number for every architecture (asm-generic and all tables).
UNIFIED: dict[int, str] = {
    424: "pidfd_send_signal", 425: "io_uring_setup", 426: "io_uring_enter", 427: "io_uring_register",
    428: "open_tree", 429: "move_mount", 430: "fsopen", 431: "fsconfig", 432: "fsmount", 433: "fspick",
    434: "pidfd_open", 435: "clone3", 436: "close_range", 437: "openat2", 438: "pidfd_getfd",
    439: "faccessat2", 440: "process_madvise", 441: "epoll_pwait2", 442: "mount_setattr",
    443: "quotactl_fd", 444: "landlock_create_ruleset", 445: "landlock_add_rule",
    446: "landlock_restrict_self", 447: "memfd_secret", 448: "process_mrelease", 449: "futex_waitv",
    450: "set_mempolicy_home_node", 451: "cachestat", 452: "fchmodat2", 453: "map_shadow_stack",
    454: "futex_wake", 455: "futex_wait", 456: "futex_requeue", 457: "statmount", 458: "listmount",
    459: "lsm_get_self_attr", 460: "lsm_set_self_attr", 461: "lsm_list_modules", 462: "mseal",
    463: "setxattrat", 464: "getxattrat", 465: "listxattrat", 466: "removexattrat",
    467: "open_tree_attr", 468: "file_getattr", 469: "file_setattr",
}
# Architecture-specific numbers newer than many installed headers.
ARCH_EXTRA: dict[str, dict[int, str]] = {
    "x86_64": {334: "rseq", 335: "uretprobe", 336: "uprobe"},
}
# Where each architecture's table lives under /usr/include.
HEADERS: dict[str, tuple[str, ...]] = {
    "x86_64": ("x86_64-linux-gnu/asm/unistd_64.h", "asm/unistd_64.h", "asm-x86_64/unistd_64.h"),
    "aarch64": ("asm-generic/unistd.h", "aarch64-linux-gnu/asm/unistd.h"),
    "riscv64": ("asm-generic/unistd.h", "riscv64-linux-gnu/asm/unistd.h"),
    "s390x": ("s390x-linux-gnu/asm/unistd_64.h", "asm/unistd_64.h"),
    "ppc64le": ("powerpc64le-linux-gnu/asm/unistd_64.h", "asm/unistd_64.h"),
}
# Architectures whose numbers do not follow the unified 424+ scheme.
_NO_UNIFIED = ("alpha", "mips", "ia64")

# The names tracefs uses (SYSCALL_DEFINE names) where they differ from the table's.
TRACEFS_ALIASES = {"newstat": "stat", "newfstat": "fstat", "newlstat": "lstat", "newuname": "uname",
                   "sendfile64": "sendfile", "umount": "umount2"}

_DEFINE = re.compile(r"^\s*#\s*define\s+__NR(?:3264)?_(\w+)\s+(.+?)\s*(?:/\*.*)?$")


def parse_unistd(text: str) -> dict[int, str]:
    """``#define __NR_name number`` lines to {number: name}.

    Handles asm-generic's indirections (``#define __NR_fcntl __NR3264_fcntl``,
    ``(__NR_foo + 1)``) and skips the ``__NR_syscalls`` count and
    ``__NR_arch_specific_syscall`` markers.
    """
    raw: dict[str, str] = {}
    for line in text.splitlines():
        m = _DEFINE.match(line)
        if m:
            raw.setdefault(m.group(1), m.group(2))
    values: dict[str, Optional[int]] = {}

    def value(name: str, depth: int = 0) -> Optional[int]:
        if name in values:
            return values[name]
        expr = raw.get(name)
        result: Optional[int] = None
        if expr is not None and depth < 8:
            expr = expr.strip("() ")
            if re.fullmatch(r"\d+", expr):
                result = int(expr)
            else:
                m = re.fullmatch(r"__NR(?:3264)?_(\w+)\s*(?:\+\s*(\d+))?", expr)
                if m:
                    base = value(m.group(1), depth + 1)
                    if base is not None:
                        result = base + int(m.group(2) or 0)
        values[name] = result
        return result

    out: dict[int, str] = {}
    for name in raw:
        if name in ("syscalls", "arch_specific_syscall"):
            continue
        nr = value(name)
        if nr is not None:
            out.setdefault(nr, name)
    return out


def header_paths(machine: str, include: Path = Path("/usr/include")) -> list[Path]:
    return [include / rel for rel in HEADERS.get(machine, ())]


def build_table(machine: str, header_text: Optional[str], bcc_table: Optional[Mapping[int, bytes | str]] = None
                ) -> dict[int, str]:
    """The merged table: header first, then the unified and arch lists, then BCC's dict."""
    table: dict[int, str] = {}
    if header_text:
        table.update(parse_unistd(header_text))
    extra = dict(ARCH_EXTRA.get(machine, {}))
    if not machine.startswith(_NO_UNIFIED):
        extra.update(UNIFIED)
    for nr, name in extra.items():
        table.setdefault(nr, name)
    if bcc_table:
        for nr, name in bcc_table.items():
            table.setdefault(int(nr), name.decode() if isinstance(name, bytes) else str(name))
    return table


def syscall_name(table: Mapping[int, str], nr: int) -> str:
    name = table.get(nr)
    return name if name is not None else f"syscall_{nr}"


def numbers(table: Mapping[int, str], names: Iterable[str]) -> dict[str, int]:
    """{name: number} for those of ``names`` that the table has."""
    rev = {v: k for k, v in table.items()}
    return {n: rev[n] for n in names if n in rev}


@functools.lru_cache(maxsize=1)
def running_table() -> tuple[dict[int, str], str]:
    """(table, where it came from) for this machine."""
    machine = platform.machine()
    for path in header_paths(machine):
        try:
            text = path.read_text()
        except OSError:
            continue
        table = build_table(machine, text)
        if len(table) > 100:
            return table, str(path)
    try:  # BCC's own table, read in a helper: ktop's process never imports bcc
        from ktop.probes import loader

        bcc_syscalls = {int(k): v.encode() for k, v in loader.call("syscalls", "bcc_syscall_table").items()}
    except Exception:
        bcc_syscalls = {}
    return build_table(machine, None, bcc_syscalls), "bcc.syscall (no UAPI header installed)"


__all__ = ["build_table", "parse_unistd", "running_table", "syscall_name", "numbers"]
