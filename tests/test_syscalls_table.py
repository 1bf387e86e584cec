"""The syscall-name table: parsed from the UAPI header at run time, merged with
the unified 424+ numbers and BCC's dict (no BCC, no root)."""

from __future__ import annotations

import platform

import pytest

from ktop.probes import features, systable

X86_SNIPPET = """
#ifndef _ASM_UNISTD_64_H
#define _ASM_UNISTD_64_H

#define __NR_read 0
#define __NR_write 1
#define __NR__sysctl 156
#define __NR_getppid 110
#define __NR_openat 257
#define __NR_set_mempolicy_home_node 450

#endif /* _ASM_UNISTD_64_H */
"""

GENERIC_SNIPPET = """
#define __NR_io_setup 0
__SC_COMP(__NR_io_setup, sys_io_setup, compat_sys_io_setup)
#define __NR3264_fcntl 25
__SC_COMP_3264(__NR3264_fcntl, sys_fcntl64, sys_fcntl, compat_sys_fcntl64)
#define __NR_openat 56
#define __NR_arch_specific_syscall 244
#define __NR_riscv_flush_icache (__NR_arch_specific_syscall + 15)
#undef __NR_syscalls
#define __NR_syscalls 451
#define __NR_fcntl __NR3264_fcntl
"""


def test_parse_x86_header():
    t = systable.parse_unistd(X86_SNIPPET)
    assert t == {0: "read", 1: "write", 156: "_sysctl", 110: "getppid", 257: "openat",
                 450: "set_mempolicy_home_node"}


def test_parse_generic_header_with_indirections():
    t = systable.parse_unistd(GENERIC_SNIPPET)
    assert t[0] == "io_setup" and t[25] == "fcntl" and t[56] == "openat"
    assert t[259] == "riscv_flush_icache"
    assert 451 not in t and 244 not in t  # the count and the marker are not syscalls


def test_build_table_merges_header_unified_and_bcc():
    t = systable.build_table("x86_64", X86_SNIPPET, {2: b"open", 110: b"wrong"})
    assert t[110] == "getppid"  # the header wins
    assert t[2] == "open"  # BCC fills what the header lacks
    assert t[435] == "clone3" and t[462] == "mseal" and t[469] == "file_setattr"  # unified numbers
    assert t[335] == "uretprobe" and t[336] == "uprobe"  # x86_64's late additions
    assert 335 not in systable.build_table("aarch64", None, {})
    assert 435 not in systable.build_table("alpha", None, {})  # alpha adds 110: not guessed


def test_numbers():
    assert systable.numbers({60: "exit", 231: "exit_group"}, ["exit", "exit_group", "nope"]) == \
        {"exit": 60, "exit_group": 231}


def _machine_table():
    paths = [p for p in systable.header_paths(platform.machine()) if p.is_file()]
    if not paths:
        pytest.skip(f"no UAPI syscall header for {platform.machine()} installed (linux-libc-dev)")
    return systable.running_table()


def test_running_table_x86_64():
    if platform.machine() != "x86_64":
        pytest.skip("x86_64 numbers")
    t, source = _machine_table()
    assert source.endswith("unistd_64.h")
    assert (t[0], t[59], t[110], t[231], t[257], t[435]) == \
        ("read", "execve", "getppid", "exit_group", "openat", "clone3")


def test_running_table_agrees_with_bcc_where_bcc_has_a_name():
    if platform.machine() != "x86_64":
        pytest.skip("BCC's built-in table is x86_64's")
    if not features.bcc_available():
        pytest.skip("BCC is not installed")
    from bcc.syscall import syscalls as bcc_table

    t, _ = _machine_table()
    assert {nr: t.get(nr) for nr in bcc_table} == {nr: n.decode() for nr, n in bcc_table.items()}
    assert len(t) > len(bcc_table) + 40  # BCC's stops at 334


def test_every_syscall_the_running_kernel_traces_has_a_number():
    """tracefs lists the kernel's syscalls by name (events/syscalls/sys_enter_*)."""
    root = features.tracefs()
    if root is None or not (root / "events" / "syscalls").is_dir():
        pytest.skip("tracefs with syscall events is not available")
    t, _ = _machine_table()
    names = {p.name[len("sys_enter_"):] for p in (root / "events" / "syscalls").iterdir()
             if p.name.startswith("sys_enter_")}
    names = {systable.TRACEFS_ALIASES.get(n, n) for n in names}
    assert sorted(names - set(t.values())) == []
