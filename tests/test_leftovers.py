from ktop.probes.leftovers import stale_events

LISTING = """p:kprobes/p_vfs_read_bcc_4242 vfs_read
r:kprobes/r_vfs_read_bcc_4242 vfs_read
p:uprobes/p__usr_lib_libc_so_6_0x9a0f0_bcc_77 /usr/lib/libc.so.6:0x000000000009a0f0
p:kprobes/myown vfs_write
p:uprobes/p_x_bcc_notapid /bin/x:0x10
"""


def test_only_dead_bcc_owners_are_stale():
    alive = {77}.__contains__
    assert stale_events(LISTING, alive) == ["kprobes/p_vfs_read_bcc_4242", "kprobes/r_vfs_read_bcc_4242"]


def test_nothing_stale_when_all_alive_or_empty():
    assert stale_events(LISTING, lambda pid: True) == []
    assert stale_events("", lambda pid: False) == []
