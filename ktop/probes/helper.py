"""The build helper: BCC compiles and attaches here, in a short-lived process.

``python -m ktop.probes.helper`` is started by :mod:`ktop.probes.loader`
with one end of an ``AF_UNIX`` ``SOCK_SEQPACKET`` pair (``KTOP_HELPER_FD``).
It reads one JSON request, imports ``bcc`` (ktop's own process never does),
compiles and attaches the probe's program, and sends back one JSON header
(map names, program names, how many attachments, the probe's plain-data
extra) followed by every file descriptor (SCM_RIGHTS, at most 250 a
message). It then leaves with ``os._exit``: BCC's atexit clean-up would
detach the very perf events and links that ktop now holds (they are the
same kernel objects), and LLVM's hundreds of megabytes go with the process.

Separate processes cannot crash each other inside libbcc (iovisor/bcc#4500),
so probes compile in parallel without a lock. With ``KTOP_HELPER_ZYGOTE`` it
is the start-up zygote instead (every command that runs the collectors): it
imports and reads what every helper needs once, then forks one such helper
per build (see loader.py).
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import socket
import sys
import traceback

FDS_PER_MESSAGE = 250  # the kernel's SCM_MAX_FD is 253
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: str | int | None = None) -> None:
    """A helper whose ktop (or zygote) died, even by SIGKILL, must not go on attaching."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass
    parent = parent or os.environ.get("KTOP_HELPER_PARENT")
    if parent and os.getppid() != int(parent):
        os._exit(3)


def bpf_fds(b) -> tuple[dict[str, int], dict[str, int], list[int]]:
    """(maps by name, programs by name, attachment fds) of a BCC object."""
    from ktop.probes.bpfcache import Replayed

    if isinstance(b, Replayed):
        maps = dict(b.maps)
    else:
        maps = _bcc_maps(b)
    progs = {name.decode() if isinstance(name, bytes) else str(name): f.fd for name, f in b.funcs.items()}
    links = []
    for table in ("tracepoint_fds", "raw_tracepoint_fds", "kprobe_fds", "uprobe_fds"):
        for fd in getattr(b, table, {}).values():
            if isinstance(fd, dict):  # kprobe_fds: {function: fd} per event (programs may share one)
                links.extend(int(x) for x in fd.values())
            else:
                links.append(int(fd))
    links.extend(getattr(b, "ktop_links", ()))  # what a helper_build attached itself (an iterator's link)
    return maps, progs, links


def _bcc_maps(b) -> dict[str, int]:
    from bcc.libbcc import lib

    # BCC's binding leaves these two undeclared (a pointer would be cut to an int)
    lib.bpf_num_tables.restype, lib.bpf_num_tables.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    lib.bpf_table_name.restype, lib.bpf_table_name.argtypes = ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t]
    maps = {}
    for i in range(lib.bpf_num_tables(b.module)):
        name = lib.bpf_table_name(b.module, i)
        fd = lib.bpf_table_fd(b.module, name)
        if fd >= 0:
            maps[name.decode()] = fd
    return maps


class KeptRefusal(Exception):
    """The verifier refused this very compile before (a ``failed`` cache entry): said again without
    a compile. ``detail`` is the sentence it got then."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def _refused_by_verifier(exc: BaseException) -> bool:
    """The verifier refused a program (BCC's words, EACCES): not clang's error, nor a failure that
    may pass next time (ENOMEM, EPERM)."""
    msg = str(exc)
    return msg.startswith("Failed to load BPF program") and msg.rstrip().endswith("Permission denied")


def refused(b, exc: BaseException) -> None:
    """The verifier refused a program of a fresh compile (``b.load_func`` in a probe's helper_build):
    kept as such, so the next build with these flags goes to its fallback without compiling."""
    keep = getattr(b, "ktop_keep", None)
    if keep and _refused_by_verifier(exc):
        _keep_failure(keep[0], describe(exc))


def _keep_failure(k: str, sentence: str) -> None:
    from ktop.probes import bpfcache

    try:
        bpfcache.keep(k, {"v": bpfcache.CACHE_VERSION, "failed": sentence[:2000]})
    except OSError:
        pass


def compile_bpf(source: str, cflags: list[str]):
    """BCC's ``BPF(src_file=source, cflags=cflags)``, or, where the same compile was kept (see
    bpfcache.py), its stand-in loaded without clang. A fresh compile is kept by :func:`serve`
    once ktop has its fds.

    Raises:
        KeptRefusal: the verifier refused this compile before (the probe's fallback, if it has
            one, follows at once).
        Exception: BCC's, for a compile or load that fails now."""
    import bcc
    from bcc import BPF

    from ktop.probes import bpfcache

    k = bpfcache.key(source, cflags, bcc.__version__)
    own = bpfcache.self_tgid(cflags)
    entry = bpfcache.lookup(k) if k else None
    if entry is not None and entry.get("failed"):
        raise KeptRefusal(entry["failed"])
    unloaded = None
    if entry is not None and not entry.get("refused"):
        try:
            return bpfcache.Replayed(entry, own)
        except Exception as exc:  # a damaged entry, or one the kernel refuses without BCC's BTF
            print(f"ktop: the kept compile {k} did not load ({exc}); compiling", file=sys.stderr)
            unloaded = (entry, str(exc))
    try:
        b = BPF(src_file=source.encode(), cflags=cflags)
    except Exception as exc:
        if k and _refused_by_verifier(exc):  # the probes' fallbacks (REGS_BTF, PROBE_READ) go there at once
            _keep_failure(k, describe(exc))
        raise
    b.ktop_keep = (k, own, os.path.basename(source), unloaded) if k and not (entry or {}).get("refused") else None
    return b


def _keep(b, maps: dict, progs: dict, links: list) -> None:
    """A fresh compile into the cache, when the cache can replay it (else nothing: it compiles next time)."""
    from ktop.probes import bpfcache

    k, own, source, unloaded = b.ktop_keep
    try:
        entry = dict(bpfcache.entry_of(b, maps, progs, links, own), source=source)
        if unloaded is not None and bpfcache.same_programs(entry, unloaded[0]):
            # what did not load is what BCC compiled again: never replayed (no compile and a failed
            # load at every start), compiled each time as before
            entry = {"v": bpfcache.CACHE_VERSION, "source": source, "refused": unloaded[1][:500]}
        bpfcache.keep(k, entry)
    except bpfcache.NotKept as exc:
        print(f"ktop: not kept: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"ktop: could not keep the compile: {exc}", file=sys.stderr)


def request_probe(req: dict):
    """The probe of a build request, made here with ktop's options: its -D knobs (and the BTF and
    tracefs reads behind them) come from this process."""
    from ktop.probes.base import ProbeOptions
    from ktop.registry import probe_class

    opts = req.get("options") or {}
    return probe_class(req["probe"])(ProbeOptions(pid=opts.get("pid"), extra=dict(opts.get("extra") or {}),
                                                  more_pids=tuple(opts.get("more_pids") or ()),
                                                  self_pid=int(opts.get("self_pid") or 0)))


def default_build(req: dict):
    """A program whose TRACEPOINT_PROBE / RAW_TRACEPOINT_PROBE functions BCC attaches itself;
    what the probe chose goes back as the extra."""
    probe = request_probe(req)
    cflags = list(req["cflags"]) if "cflags" in req else probe.cflags()
    return compile_bpf(req["source"], cflags), probe.helper_state()


def _send(sock: socket.socket, header: dict, fds: list[int]) -> None:
    sock.sendall(b"J" + json.dumps(header).encode())
    for i in range(0, len(fds), FDS_PER_MESSAGE):
        socket.send_fds(sock, [b"F"], fds[i:i + FDS_PER_MESSAGE])


def serve(sock: socket.socket) -> None:
    from ktop.probes.bpfcache import Replayed

    req = json.loads(sock.recv(1 << 22)[1:])
    fault = os.environ.get("KTOP_HELPER_FAULT", "")  # tests only: hang, crash
    if fault == f"hang:{req.get('probe')}":
        signal.pause()
    if fault == f"crash:{req.get('probe')}":
        os.kill(os.getpid(), signal.SIGKILL)
    module = importlib.import_module(f"ktop.probes.{req['probe']}")
    kind = req.get("kind", "build")
    if kind == "call":  # plain data in, plain data out (funcs resolution needs libbcc's ELF readers)
        _send(sock, {"ok": True, "result": getattr(module, req["function"])(*req.get("args", ()))}, [])
        return
    build = getattr(module, "helper_build", default_build)
    b, extra = build(req)
    maps, progs, links = bpf_fds(b)
    cached = isinstance(b, Replayed)  # loaded from the compile cache, not compiled
    header = {"ok": True, "maps": list(maps), "progs": list(progs), "links": len(links), "extra": extra,
              "cached": cached}
    _send(sock, header, [*maps.values(), *progs.values(), *links])
    if getattr(b, "ktop_keep", None):
        _keep(b, maps, progs, links)


def describe(exc: BaseException) -> str:
    from ktop.probes.base import describe_build_error

    return describe_build_error(exc, _stderr_tail())


def _stderr_tail(limit: int = 16384) -> str:
    try:
        size = os.fstat(2).st_size
        return os.pread(2, min(limit, size), max(0, size - limit)).decode("utf-8", "replace")
    except OSError:
        return ""


def main() -> None:
    _die_with_parent()
    if os.environ.get("KTOP_HELPER_ZYGOTE"):
        zygote(socket.socket(fileno=int(os.environ["KTOP_HELPER_ZYGOTE"])))
    _answer(socket.socket(fileno=int(os.environ["KTOP_HELPER_FD"])))


def _answer(sock: socket.socket) -> None:
    """Serves one request on ``sock`` and leaves."""
    try:
        serve(sock)
    except BaseException as exc:  # every failure is a sentence for the probe's status
        sys.stderr.write(traceback.format_exc())
        sys.stderr.flush()
        try:
            status = getattr(exc, "status", "failed")
            _send(sock, {"ok": False, "status": status, "error": getattr(exc, "detail", None) or describe(exc),
                         "cached": isinstance(exc, KeptRefusal)}, [])
        except OSError:
            pass
    sys.stdout.flush()
    os._exit(0)  # never BCC's atexit clean-up: it would detach what ktop now holds


ZYGOTE_IDLE_S = 5.0  # with no build running and none asked for, the zygote leaves


def _preload(probes: str) -> None:
    """What every child would import and read first: libbcc, the probes' modules, the BTF."""
    import bcc  # noqa: F401  (libbcc and LLVM mapped once, shared by every child)

    for name in filter(None, probes.split(",")):
        try:
            importlib.import_module(f"ktop.probes.{name}")
        except Exception:
            pass  # the child that builds it says why
    from ktop.probes import btf

    try:
        btf.load()
    except btf.BTFError:
        pass


def zygote(control: socket.socket) -> None:
    """KTOP_HELPER_ZYGOTE (ktop/probes/loader.py): forks one child a build, each handed a socket
    and a log file over ``control`` ("S" and two fds); leaves when ktop closes ``control``, or
    after ZYGOTE_IDLE_S without a build, once its children have exited."""
    import select
    import time

    _preload(os.environ.get("KTOP_HELPER_PRELOAD", ""))
    children: dict[int, tuple[socket.socket, int]] = {}  # pid: (its socket, a pidfd or -1)
    poller = select.poll()
    poller.register(control, select.POLLIN)
    idle_since = time.monotonic()
    while control.fileno() >= 0 or children:
        wait_ms = 50 if any(fd < 0 for _s, fd in children.values()) else 1000
        for fd, _ev in poller.poll(wait_ms):
            if fd != control.fileno():
                continue  # a child's pidfd: reaped below
            try:
                _data, fds, _flags, _addr = socket.recv_fds(control, 16, 2)
            except OSError:
                fds = []
            if len(fds) != 2:  # ktop closed it: no more builds
                for x in fds:
                    os.close(x)
                poller.unregister(control)
                control.close()
                continue
            sock, log = socket.socket(fileno=fds[0]), fds[1]
            me = os.getpid()
            pid = os.fork()
            if pid == 0:
                control.close()
                for other, pidfd in children.values():
                    other.close()
                    if pidfd >= 0:
                        os.close(pidfd)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.close(log)
                _die_with_parent(me)  # now with the zygote, which waits for its children
                sock.send(b"P%d" % os.getpid())
                _answer(sock)
            os.close(log)
            try:
                pidfd = os.pidfd_open(pid)
                poller.register(pidfd, select.POLLIN)
            except (OSError, AttributeError):
                pidfd = -1  # polled every 50 ms instead
            children[pid] = (sock, pidfd)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                continue
            sock, pidfd = children.pop(pid)
            if pidfd >= 0:
                poller.unregister(pidfd)
                os.close(pidfd)
            try:
                sock.send(b"X%d" % os.waitstatus_to_exitcode(status))
            except OSError:
                pass  # ktop stopped waiting
            sock.close()
            idle_since = time.monotonic()
        if children:
            idle_since = time.monotonic()
        elif control.fileno() >= 0 and time.monotonic() - idle_since > ZYGOTE_IDLE_S:
            poller.unregister(control)
            control.close()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
