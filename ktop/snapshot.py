r"""The raw data of one tick: frozen, plain, JSON-serialisable.

Collectors produce a :class:`Snapshot` per tick; ``ktop.model.build_model``
turns snapshots into what panels draw. Nothing here imports BCC or Textual.

Text from the kernel (command names, argv, paths, cgroup names) is bytes that
other users choose and need not be UTF-8. :func:`kernel_text` decodes it
losslessly: each byte that is not valid UTF-8 becomes a lone surrogate
U+DC80..U+DCFF (Python's ``surrogateescape``, PEP 383), which JSON writes as
``\udcNN``. So ``ktop snapshot --json`` and recordings tell a byte 0xFF
(``"\udcff"``) from the four characters ``\xff`` (``"\\xff"``), and
``raw.encode("utf-8", "surrogateescape")`` gives the bytes back. The screen
shows such a byte as ``\xNN`` (``ktop.model.text.clean``).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from dataclasses import dataclass, field
from typing import Any, Optional

# Additive changes keep this number; breaking ones bump it.
SCHEMA = 1


def kernel_text(raw: bytes) -> str:
    """Kernel bytes as text, every byte kept (see the module's docstring)."""
    return raw.decode("utf-8", "surrogateescape")


def kernel_cstr(raw: bytes) -> str:
    """A NUL-terminated field of a kernel record (comm, a path) as :func:`kernel_text`."""
    return kernel_text(bytes(raw).split(b"\0", 1)[0])


def kernel_cstr_cached(raw: bytes) -> str:
    """:func:`kernel_cstr` for the fields that come back thousands of times a tick under exec churn
    (comms, paths): cached by the bytes before the NUL, as a record need not be zeroed after it."""
    end = raw.find(b"\0")
    return _cached_text(raw if end < 0 else raw[:end])


@functools.lru_cache(maxsize=1024)
def _cached_text(raw: bytes) -> str:
    return kernel_text(raw)


# Probe states.
STARTING = "starting"
LIVE = "live"
UNSUPPORTED = "unsupported"
FAILED = "failed"
NEEDS_ROOT = "needs-root"
STOPPED = "stopped"
DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class HostInfo:
    hostname: str
    kernel: str
    cpu_count: int
    ktop_version: str
    boot_time: float


@dataclass(frozen=True, slots=True)
class SystemSample:
    cpu_percent: tuple[float, ...]  # one per CPU
    cpu_total: float
    mem_total: int
    mem_used: int
    mem_available: int
    swap_total: int
    swap_used: int
    load: tuple[float, float, float]
    uptime_s: float


def _pickles_by_constructor(cls):
    """A frozen slots dataclass pickled as its constructor and its fields (one ``attrgetter``):
    Python's own way for such a class calls ``dataclasses.fields`` for every object and sets each
    field on load. 5,000 process rows: 9.1 -> 2.6 ms to pickle, which every kept tick of a
    5,000-process table paid (the history's keyframes)."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    get = operator.attrgetter(*names)
    cls.__reduce__ = lambda self: (cls, get(self))
    return cls


@_pickles_by_constructor
@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    ppid: int
    user: str
    comm: str
    cmdline: tuple[str, ...]
    cpu_percent: float
    rss: int
    state: str
    threads: int
    start_time: float
    cgroup_id: int = 0  # the v2 cgroup (0: unknown); named in Snapshot.cgroups


@dataclass(frozen=True, slots=True)
class CgroupInfo:
    """What a cgroup v2 id names (ktop/system/cgroups.py); every string clean of control characters."""

    id: int  # the cgroup's directory inode number: what bpf_get_current_cgroup_id() returns
    path: str  # relative to the v2 hierarchy's root ("/" for the root)
    label: str  # what tables show: a unit ("nginx.service"), "docker:<12 hex>", "pod:<uid>", a folder's name
    kind: str  # root, unit, container, pod, cgroup
    unit: str = ""  # the deepest systemd unit or slice on the path
    container: str = ""  # a container's short id (12 hex)
    runtime: str = ""  # docker, podman, containerd, crio, cri
    pod: str = ""  # a Kubernetes pod's uid
    name: str = ""  # a container's name, where its runtime's state on this machine says
    image: str = ""  # a container's image, likewise
    pod_name: str = ""  # "namespace/name" of the pod (of a container in one), likewise


@dataclass(frozen=True, slots=True)
class CgroupStat:
    """One v2 cgroup's own figures, read from its folder (ktop/system/cgstats.py) while the Cgroups
    view is open. None: the kernel gives no such file there (the controller is not enabled)."""

    id: int  # the folder's inode number (CgroupInfo.id)
    path: str  # relative to the v2 root ("/" for the root); clean
    label: str  # as CgroupInfo.label
    kind: str  # as CgroupInfo.kind
    memory_bytes: Optional[int] = None  # memory.current (a hybrid host: v1 memory.usage_in_bytes, same path)
    io_read_bytes: Optional[int] = None  # io.stat rbytes over every device, since the cgroup was made
    io_write_bytes: Optional[int] = None  # io.stat wbytes
    psi_cpu_percent: Optional[float] = None  # cpu.pressure "some avg10", %
    psi_io_percent: Optional[float] = None  # io.pressure
    psi_memory_percent: Optional[float] = None  # memory.pressure


@dataclass(frozen=True, slots=True)
class ProcessDetail:
    """What the PID screen shows beyond the table row (collected for one PID)."""

    pid: int
    exists: bool
    exe: str = ""
    cwd: str = ""
    cmdline: tuple[str, ...] = ()
    user: str = ""
    state: str = ""
    start_time: float = 0.0
    threads: int = 0
    open_files: Optional[int] = None  # file descriptors; None when unreadable
    rss: int = 0
    shared: int = 0
    swap: Optional[int] = None
    cpu_percent: float = 0.0
    nice: Optional[int] = None
    error: str = ""  # why something could not be read


@dataclass(frozen=True, slots=True)
class ProbeStatus:
    name: str
    status: str
    detail: str = ""
    lost: int = 0  # events the kernel could not hand over (cumulative)
    run_time_ns: int = 0  # kernel time spent in this probe's programs (cumulative, BPF stats)
    run_count: int = 0  # times they ran (cumulative)


@dataclass(slots=True)  # not frozen, as SyscallCount (below): made thousands a tick under exec churn
class ExecEvent:
    time: float  # wall clock, seconds
    pid: int
    ppid: int
    uid: int
    comm: str
    filename: str
    argv: tuple[str, ...]
    argv_truncated: bool
    retval: int  # 0, or the negative errno of a failed exec
    parent_comm: str = ""  # read in the kernel at exec time ("" when unknown)
    cgroup_id: int = 0  # the v2 cgroup it exec'd in (0: unknown); named in Snapshot.cgroups


@dataclass(slots=True)  # as ExecEvent
class ExitEvent:
    time: float
    pid: int
    ppid: int
    comm: str
    exit_code: Optional[int]  # exit status, or -N when killed by signal N
    exit_signal: Optional[int]
    lifetime_ms: Optional[float]


@dataclass(frozen=True, slots=True)
class SpawnSample:
    """What the spawn probe saw during one interval."""

    interval_s: float
    execs: tuple[ExecEvent, ...] = ()
    exits: tuple[ExitEvent, ...] = ()
    forks: int = 0
    exec_count: int = 0
    exec_failures: int = 0
    exit_count: int = 0
    lost: int = 0  # ring buffer full: events dropped in the kernel
    pending_full: int = 0  # argv map full: execs seen without argv
    tracked_full: int = 0  # exit map full: exits not reported
    args_truncated: int = 0
    failures_seen: bool = True  # failed execs are traced (--exec-failures, or no mm offsets in BTF)


@dataclass(frozen=True, slots=True)
class BioDiskOp:
    """One disk and operation during one interval (bio probe). Histograms are
    log2 slots of microseconds (ktop.model.hist)."""

    disk: str  # e.g. "vda"; partitions are folded into their disk
    dev: str  # "major:minor" of the disk
    op: str  # read, write, discard, flush, other
    count: int
    bytes: int
    errors: int
    lat_sum_ns: int
    lat_max_ns: int
    lat_buckets: tuple[int, ...]
    queue_count: int = 0  # requests that went through the I/O scheduler (insert -> issue)
    queue_sum_ns: int = 0
    queue_max_ns: int = 0
    queue_buckets: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class BioProc:
    """One process's completed block I/O during one interval (PID 0: not attributed)."""

    pid: int
    comm: str
    disk: str  # the disk of its latest completion
    reads: int
    writes: int
    others: int  # flush, discard, ...
    read_bytes: int
    write_bytes: int
    lat_sum_ns: int
    lat_max_ns: int


@dataclass(frozen=True, slots=True)
class BioSample:
    """What the bio probe saw during one interval."""

    interval_s: float
    disks: tuple[BioDiskOp, ...] = ()
    procs: tuple[BioProc, ...] = ()
    attribution: str = ""  # tracepoint the submitting PID comes from
    queue_source: str = ""  # tracepoint queue time starts at ("" when unavailable)
    issues: int = 0
    completions: int = 0
    no_start: int = 0  # completed without a start seen
    not_issued: int = 0  # completed by the OS without reaching the device
    inflight_full: int = 0
    diskop_full: int = 0
    proc_full: int = 0
    unattributed: int = 0
    rekeyed: int = 0
    rq_merged: int = 0
    filtered: int = 0
    expired: int = 0  # in-flight entries dropped by user space as stale
    mode: str = ""  # "raw" (raw tracepoints, keyed by request) or "tracepoint" (keyed by dev, sector, op)
    partial: int = 0  # partial completions (the request went on)
    missed: int = 0  # events the kernel skipped: a BPF program already ran on that CPU
    unseen: int = 0  # raw mode: completions never delivered (found when the request was reused)


@dataclass(frozen=True, slots=True)
class FuncTarget:
    """One funcs target (a spec such as ``c:malloc``) and how it is doing."""

    id: int
    spec: str
    kind: str  # kprobe, uprobe, tracepoint, usdt
    status: str  # live, attaching, unsupported, failed
    detail: str = ""  # why not live, or warnings (functions skipped)
    attached: int = 0  # functions (slots) attached
    matched: int = 0  # functions the pattern matched
    cap: int = 0  # most probes one spec may attach


@dataclass(frozen=True, slots=True)
class FuncTotal:
    """Exact calls of one function of one target during one interval."""

    target: int  # FuncTarget.id
    function: str
    count: int


@dataclass(frozen=True, slots=True)
class FuncCount:
    """Calls of one function by one process during one interval."""

    target: int  # FuncTarget.id
    function: str
    pid: int
    comm: str
    count: int


@dataclass(frozen=True, slots=True)
class FuncsSample:
    """What the funcs probe counted during one interval."""

    interval_s: float
    targets: tuple[FuncTarget, ...] = ()
    totals: tuple[FuncTotal, ...] = ()
    counts: tuple[FuncCount, ...] = ()
    map_full: int = 0  # hits whose process could not be recorded (totals stay exact)


@dataclass(frozen=True, slots=True)
class SyscallStat:
    """One system call, every process, during one interval."""

    nr: int
    name: str
    count: int  # calls that returned (exit and exit_group: entered)
    errors: int  # returned -4095..-1
    lat_ns: int = 0  # total latency of the timed calls
    hist: tuple[int, ...] = ()  # log2 slots of the timed calls' latency in ns (ktop.model.hist)
    errnos: tuple[tuple[int, int], ...] = ()  # (errno, count), most first


# Not frozen, as nothing changes one: under exec churn thousands are made a tick, and a frozen
# dataclass's __init__ costs 4x (0.63 against 0.14 us here, for its object.__setattr__ per field).
@dataclass(slots=True)
class SyscallCount:
    """One system call by one process during one interval."""

    pid: int
    comm: str
    nr: int
    name: str
    count: int
    errors: int
    lat_ns: int = 0  # total latency of the timed calls
    timed: int = 0  # calls with a latency
    errnos: tuple[tuple[int, int], ...] = ()  # (errno, count), most first


@dataclass(frozen=True, slots=True)
class SyscallsSample:
    """What the syscalls probe counted during one interval."""

    interval_s: float
    syscalls: tuple[SyscallStat, ...] = ()
    counts: tuple[SyscallCount, ...] = ()
    attach: str = ""  # raw_tracepoint or tracepoint
    names_from: str = ""  # where syscall names come from
    latency: str = ""  # latency mode: "on", "off", or "sampled N%" (N% of the time timed)
    no_start: int = 0  # returns whose entry was not seen (in flight at attach): not timed
    start_full: int = 0  # thread map full: calls not timed
    procs_full: int = 0  # process map full: counted per syscall, not per process
    errs_full: int = 0  # errno map full: errors whose errno was not recorded
    bad_nr: int = 0  # numbers outside the table's range (x32, -1 after seccomp): not counted


@dataclass(frozen=True, slots=True)
class NetProc:
    """One process's socket traffic of one protocol class during one interval (net probe)."""

    pid: int
    comm: str
    proto: str  # tcp, udp, unix, other
    tx_bytes: int = 0
    tx_calls: int = 0  # sendmsg returns with bytes
    rx_bytes: int = 0
    rx_calls: int = 0  # recvmsg returns with bytes (MSG_PEEK left out)
    retransmits: int = 0  # TCP segments retransmitted on its connections (those opened while ktop ran)
    cgroup_id: int = 0  # its v2 cgroup, recorded by the kernel at its first traffic


@dataclass(frozen=True, slots=True)
class NetConn:
    """One TCP connection that closed during the interval (tcplife)."""

    time: float  # its close, wall clock
    pid: int  # the connecting process, or an accepted socket's first user (0: never used)
    comm: str
    family: int  # 4 or 6
    saddr: str
    sport: int
    daddr: str
    dport: int
    duration_ns: int  # established (or opened, when it never was) to close
    connect_ns: int = 0  # connect latency (SYN_SENT to ESTABLISHED); 0 when accepted or not established
    tx_bytes: int = 0
    rx_bytes: int = 0
    retransmits: int = 0
    active: bool = True  # connect(); False: accepted
    established: bool = True
    reset: bool = False  # it received a reset
    cgroup_id: int = 0  # its process's v2 cgroup, at the connect or the accepted socket's first use


@dataclass(frozen=True, slots=True)
class NetListen:
    """A TCP socket that began to listen during the interval (net probe)."""

    time: float  # wall clock
    pid: int
    comm: str
    family: int  # 4 or 6
    addr: str
    port: int
    cgroup_id: int = 0  # the listening process's v2 cgroup


@dataclass(frozen=True, slots=True)
class NetOpen:
    """One TCP connection open at the end of the interval, followed since its open (net probe)."""

    pid: int  # 0: an accepted socket no process has used yet
    comm: str
    family: int  # 4 or 6
    saddr: str
    sport: int
    daddr: str
    dport: int
    state: str  # ESTABLISHED, SYN_SENT, FIN_WAIT1 ... (include/net/tcp_states.h)
    age_ns: int  # since SYN_SENT / SYN_RECV
    connect_ns: int = 0  # SYN_SENT to ESTABLISHED; 0 when accepted or not established yet
    tx_bytes: int = 0
    rx_bytes: int = 0
    retransmits: int = 0
    active: bool = True  # connect(); False: accepted
    cgroup_id: int = 0  # its process's v2 cgroup (0: an accepted socket not used yet)


@dataclass(frozen=True, slots=True)
class NetSample:
    """What the net probe saw during one interval."""

    interval_s: float
    procs: tuple[NetProc, ...] = ()
    conns: tuple[NetConn, ...] = ()  # closed during the interval
    connect_buckets: tuple[int, ...] = ()  # connect latency of the interval's established connects
    connects: int = 0  # active opens (SYN_SENT)
    accepts: int = 0  # passive opens (SYN_RECV)
    connect_failed: int = 0  # active opens closed before ESTABLISHED (refused, timed out)
    retransmits: int = 0  # tcp_retransmit_skb, every socket
    resets_sent: int = 0
    resets_received: int = 0
    procs_full: int = 0  # process map full: traffic not counted per process
    conns_full: int = 0  # connection map full: a connection not followed
    lost: int = 0  # closed connections dropped (ring buffer full, or ktop's queue)
    open: tuple[NetOpen, ...] = ()  # open at the end of the interval: the most bytes first, at most MAX_OPEN
    open_total: int = 0  # how many were open (followed), shown or not
    listens: tuple[NetListen, ...] = ()  # listen() starts during the interval


@dataclass(frozen=True, slots=True)
class SchedProc:
    """One process's scheduling during one interval (sched probe; ``pid`` is the TGID).
    Histograms are log2 slots of microseconds (ktop.model.hist)."""

    pid: int
    comm: str
    runq_count: int  # waits on a run queue that ended (switch-in)
    runq_sum_ns: int
    runq_max_ns: int  # the longest since the kernel's entry for it was made (not this interval's only)
    runq_buckets: tuple[int, ...]
    off_r_ns: int = 0  # off-CPU after a preemption (runnable, waiting for a CPU)
    off_s_ns: int = 0  # off-CPU asleep (interruptible), stopped or traced
    off_d_ns: int = 0  # off-CPU in uninterruptible sleep (usually I/O)


@dataclass(frozen=True, slots=True)
class SchedCpu:
    """One CPU's run-queue waits during one interval, every task (kernel threads too)."""

    cpu: int
    runq_buckets: tuple[int, ...]
    runq_sum_ns: int = 0


@dataclass(frozen=True, slots=True)
class SchedSlowWait:
    """One run-queue wait of the slow-wait threshold or more (runqslower), and the task that held
    the CPU until the waiting one got it (the ``prev`` of that switch; PID 0: the CPU was idle)."""

    time: float  # wall-clock seconds of the switch-in
    pid: int  # the thread that waited
    tgid: int
    comm: str  # the thread's name
    cpu: int  # the CPU it got
    wait_ns: int
    prev_pid: int
    prev_tgid: int
    prev_comm: str


@dataclass(frozen=True, slots=True)
class SchedOffStack:
    """Off-CPU time of one process under one kernel stack in one state during one interval
    (offcputime; sched probe with --offcpu-stacks): blocks of the threshold or more only."""

    pid: int  # the TGID
    comm: str
    state: str  # "S" asleep (or stopped), "D" uninterruptible
    off_ns: int
    count: int  # blocks
    kernel: tuple[str, ...] = ()  # frames, root first (where it went to sleep is the last); a marker when lost


@dataclass(frozen=True, slots=True)
class SchedSample:
    """What the sched probe saw during one interval."""

    interval_s: float
    procs: tuple[SchedProc, ...] = ()
    cpus: tuple[SchedCpu, ...] = ()
    switches: int = 0  # context switches seen
    wakeups: int = 0  # wakeups of followed tasks
    runq_waits: int = 0  # run-queue waits measured (every task)
    tasks_full: int = 0  # thread map full: a wait not measured
    procs_full: int = 0  # process map full: a wait counted per CPU only
    slow: tuple[SchedSlowWait, ...] = ()  # the interval's slowest waits at or above the threshold (a few)
    slow_waits: int = 0  # waits at or above the threshold (all of them)
    slow_lost: int = 0  # of those, not reported: the ring buffer was full
    slow_threshold_ns: int = 0  # --runq-slower-us (0: off)
    offcpu_stacks: bool = False  # --offcpu-stacks: off-CPU time per kernel stack
    offcpu_min_block_ns: int = 0  # blocks shorter than this are not counted per stack
    offcpu: tuple[SchedOffStack, ...] = ()  # most off-CPU time first
    off_blocks: int = 0  # blocks counted per stack
    off_full: int = 0  # blocks not counted per stack: the kernel's map was full
    stack_lost: int = 0  # stacks lost to a stack-map collision or a full stack map (counted under a marker)
    stacks_unread: int = 0  # blocks whose stack id could not be read back


@dataclass(frozen=True, slots=True)
class ProfileStack:
    """One sampled stack of one process during one interval (profile probe), frames named in user
    space. Frames run from the root (``main``) to the leaf; kernel frames follow user frames."""

    pid: int  # the TGID
    comm: str
    count: int  # samples
    user: tuple[str, ...] = ()  # empty: no user stack (a kernel thread); ("[missed user stack]",): lost
    kernel: tuple[str, ...] = ()  # empty: the sample was taken in user mode


@dataclass(frozen=True, slots=True)
class ProfileSample:
    """What the profile probe saw during one interval: samples of every CPU at ``hz``."""

    interval_s: float
    hz: int
    cpus: int = 1  # CPUs sampled
    samples: int = 0  # samples of traced tasks (idle left out)
    idle_samples: int = 0  # samples of the idle task (0 with -p)
    stacks: tuple[ProfileStack, ...] = ()
    counts_full: int = 0  # the kernel's count map full: a sample not kept per stack
    user_stack_lost: int = 0  # a user stack lost to a stack-map collision or a full stack map
    kernel_stack_lost: int = 0
    stacks_unread: int = 0  # a stack id the kernel gave but user space could not read back
    user_stack_none: int = 0  # no user stack (-EFAULT: a kernel thread): not a loss
    kernel_stack_none: int = 0  # no kernel stack (the sample was taken in user mode): not a loss


@dataclass(frozen=True, slots=True)
class Flag:
    """One anomaly the flag detector (ktop/model/flags.py) holds at a tick: a series that left its
    usual level, a process doing something never seen, or events lost."""

    kind: str  # bio-latency, bio-iops, errors, execs, calls, runq-latency, retransmits, ... lost, map-full
    subject: str  # what: "vda read", "ENOENT by curl", "parent bash", a probe name
    text: str  # one sentence, for people ("x14 the usual p99 of reads on vda since 12:03:05, by dd (pid 123)")
    start: float  # wall clock it began
    value: float  # this tick's figure, in ``unit``
    usual: float  # the baseline it left (0: never seen)
    peak: float  # the highest figure since it began
    unit: str  # "us", "/s", "B/s", "events"
    score: float  # how far past its threshold (peak-independent, now): orders the flags
    pid: int = 0  # the process it names (the subject, or the busiest one behind it); 0: none
    new: bool = False  # behaviour never seen before (the first error burst of an errno, ...)
    section: str = ""  # the model section (panel) it is about
    end: Optional[float] = None  # when it returned to its usual level (None: still on)


@dataclass(frozen=True, slots=True)
class HttpGroup:
    """HTTP requests of one interval that share a process, side, method, path pattern and status (http probe).
    ``path`` is folded (ktop.probes.http.fold_path): untrusted text. Latency: log2 slots of microseconds."""

    pid: int
    comm: str
    side: str  # "server" (it read the request) or "client" (it wrote it)
    method: str
    path: str
    status: int
    count: int
    lat_buckets: tuple[int, ...]
    lat_sum_ns: int = 0
    lat_max_ns: int = 0
    lat_min_ns: int = 0  # 0: unknown (an older recording)
    # (index, count) of a fine histogram of microseconds (ktop.model.hist.fine_index): percentiles within 1/8
    lat_fine: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One answered request (the slowest of an interval are kept one by one)."""

    time: float  # wall clock of the response, seconds
    pid: int
    comm: str
    side: str
    method: str
    path: str
    status: int
    latency_ns: int


@dataclass(frozen=True, slots=True)
class HttpEncrypted:
    """Connections of one process seen opening encrypted (a TLS hello) or as HTTP/2 (its preface): not parsed."""

    pid: int
    comm: str
    side: str
    kind: str  # "tls" or "h2"
    count: int


@dataclass(frozen=True, slots=True)
class HttpSample:
    """What the http probe saw during one interval."""

    interval_s: float
    groups: tuple[HttpGroup, ...] = ()
    slowest: tuple[HttpRequest, ...] = ()  # the slowest answered requests of the interval, slowest first
    encrypted: tuple[HttpEncrypted, ...] = ()
    requests_seen: int = 0  # request lines seen by the kernel (answered or not)
    lost: int = 0  # answered requests dropped (ring buffer or queue full)
    conns_full: int = 0  # connection map full: a request not followed
    pending_full: int = 0  # more requests waiting on one connection than it keeps
    unpaired: int = 0  # responses with no request waiting
    unanswered: int = 0  # requests still waiting when their connection closed
    threads_full: int = 0  # calls in flight map full: a call not looked at
    cut: int = 0  # request buffers longer than the window: pipelined requests past it not seen
    groups_dropped: int = 0  # requests of groups beyond the interval's bound (counted in "other")


@dataclass(frozen=True, slots=True)
class Snapshot:
    time: float
    interval_s: float
    host: HostInfo
    system: SystemSample
    probes: tuple[ProbeStatus, ...]
    processes: tuple[ProcessInfo, ...]
    # One field per probe (its `section` in ktop/registry.py), None when the probe is not live.
    spawns: Optional[SpawnSample] = None
    bio: Optional[BioSample] = None
    funcs: Optional[FuncsSample] = None
    syscalls: Optional[SyscallsSample] = None
    net: Optional[NetSample] = None
    sched: Optional[SchedSample] = None
    profile: Optional[ProfileSample] = None
    http: Optional[HttpSample] = None
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)
    # Where the process table came from: "task iterator", or "/proc" and why.
    process_source: str = ""
    # The cgroups of this tick's processes and execs, named (the ids that resolved).
    cgroups: tuple[CgroupInfo, ...] = ()
    # Every v2 cgroup's figures, only while the Cgroups view is open (None: not collected).
    cgroup_stats: Optional[tuple[CgroupStat, ...]] = None
    # Drill-down: the same data scoped (in the kernel) to one PID and its children.
    focus: Optional[Snapshot] = None
    focus_detail: Optional[ProcessDetail] = None
    # The flags active at this tick (ktop/model/flags.py); None when no detector ran over it (a
    # recording made before flags existed: the replay runs one).
    flags: Optional[tuple[Flag, ...]] = None

    def probe(self, name: str) -> Optional[ProbeStatus]:
        for p in self.probes:
            if p.name == name:
                return p
        return None


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples and dicts to plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


def from_jsonable(tp: Any, data: Any) -> Any:
    """The inverse of :func:`to_jsonable` for type ``tp``, driven by its type hints.

    Raises:
        ktop.codec.DecodeError: naming where the data does not fit.
    """
    from ktop.codec import decode

    return decode(tp, data)


def snapshot_from_jsonable(data: Any) -> Snapshot:
    """A Snapshot from ``to_jsonable`` output (a recording line).

    Keys this ktop does not know (a section of a newer ktop's probe) are
    ignored: see :func:`unknown_sections`.

    Raises:
        ktop.codec.DecodeError: naming where the data does not fit.
    """
    from ktop.codec import decode

    return decode(Snapshot, data)


def unknown_sections(data: Any) -> list[str]:
    """The top-level keys of ``data`` that are not Snapshot fields (a newer ktop's probe sections)."""
    if not isinstance(data, dict):
        return []
    known = {f.name for f in dataclasses.fields(Snapshot)}
    return [k for k in data if k not in known]
