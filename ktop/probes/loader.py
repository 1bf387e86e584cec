"""ktop's side of a build: start a helper, receive the fds, hold them.

:func:`build` starts ``python -m ktop.probes.helper`` (see there), sends it
one request and receives the maps, programs and attachments it made. The
result, a :class:`Loaded`, owns those descriptors: closing it detaches the
probe. ktop's process never imports ``bcc``, so no libbcc or LLVM is ever
mapped here; a helper that crashes, hangs or fails to compile becomes a
:class:`BuildError` with a sentence, and nothing it attached outlives it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from ktop.probes.maps import Map
from ktop.snapshot import FAILED
from ktop.timings import timing

# A compile takes ~0.4 s here and 30-60 s under QEMU's TCG emulation.
DEFAULT_TIMEOUT_S = 120.0

# Helpers started while the dashboard draws its first frames run at nice 19, so on a
# small machine the UI comes first (first frame 0.48 s instead of 0.55 here); set_nice(0)
# a moment later puts the running ones back, so a busy machine never starves a build.
_nice = {"value": 0, "pids": set()}
_nice_lock = threading.Lock()


def set_nice(value: int) -> None:
    """The niceness (added to ktop's) of helpers from now on, and of those running now."""
    with _nice_lock:
        _nice["value"] = value
        pids = list(_nice["pids"])
    for pid in pids:
        _renice(pid, value)


def _track(pid: int) -> None:
    """A helper now running: set_nice() reaches it, and it starts at the niceness asked for."""
    with _nice_lock:
        _nice["pids"].add(pid)
        if _nice["value"]:
            _renice(pid, _nice["value"])


def _untrack(pid: int) -> None:
    with _nice_lock:
        _nice["pids"].discard(pid)


def _renice(pid: int, value: int) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + value))
    except OSError:
        pass  # gone already


def timeout_s() -> float:
    try:
        return float(os.environ.get("KTOP_BUILD_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


class BuildError(Exception):
    def __init__(self, detail: str, status: str = FAILED):
        super().__init__(detail)
        self.detail = detail
        self.status = status


@dataclass
class Loaded:
    """What a helper built, now held by ktop: closing it detaches everything."""

    maps: dict[str, Map] = field(default_factory=dict)
    progs: dict[str, int] = field(default_factory=dict)
    links: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Map:
        return self.maps[name]

    def close(self) -> None:
        # attachments first, so no program runs against a map being freed
        links, self.links = self.links, []
        progs, self.progs = self.progs, {}
        maps, self.maps = self.maps, {}
        for fd in links + list(progs.values()):
            try:
                os.close(fd)
            except OSError:
                pass
        for m in maps.values():
            m.close()


def _helper_command() -> list[str]:
    return [sys.executable, "-m", "ktop.probes.helper"]


def _run(request: dict, timeout: Optional[float]) -> tuple[dict, list[int]]:
    """Runs one helper; returns its header and the fds it sent."""
    timeout = timeout_s() if timeout is None else timeout
    forked = _run_forked(request, timeout)
    if forked is not None:
        return forked
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    log = tempfile.TemporaryFile(prefix="ktop-helper-")
    env = dict(os.environ, KTOP_HELPER_FD=str(theirs.fileno()), KTOP_HELPER_PARENT=str(os.getpid()))
    fds: list[int] = []
    pid = 0
    try:
        try:
            proc = subprocess.Popen(_helper_command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    pass_fds=(theirs.fileno(),), env=env, close_fds=True)
        except OSError as exc:
            raise BuildError(f"cannot start the build helper: {exc.strerror}") from exc
        pid = proc.pid
        theirs.close()
        timing({"event": "helper_start", "probe": request.get("probe"), "pid": pid})
        _track(pid)
        try:
            ours.sendall(b"J" + json.dumps(request).encode())
            deadline = time.monotonic() + timeout
            header = _recv(ours, deadline, fds)
            if header is None:
                raise BuildError(_died(proc, log))
            while len(fds) < _wanted(header):
                if _recv(ours, deadline, fds, header=False) is None:
                    raise BuildError(_died(proc, log))
        except socket.timeout:
            proc.kill()
            raise _too_slow(timeout) from None
        except ConnectionError:  # a pipe broken, or reset: the helper died before it read or sent all
            raise BuildError(_died(proc, log)) from None
        finally:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _untrack(pid)
        return _answered(request, header, fds, pid)
    except BaseException as exc:
        _failed(exc, fds, pid)
        raise
    finally:
        ours.close()
        theirs.close()
        log.close()


def _wanted(header: dict) -> int:
    """How many fds a helper's answer announces (maps, programs, then attachments)."""
    return len(header.get("maps", ())) + len(header.get("progs", ())) + int(header.get("links", 0))


def _too_slow(timeout: float) -> BuildError:
    return BuildError(f"the build helper did not finish within {timeout:g} s and was stopped "
                      "(KTOP_BUILD_TIMEOUT sets the limit)")


def _answered(request: dict, header: dict, fds: list[int], pid: int, **done) -> tuple[dict, list[int]]:
    """A helper's answer, with what its clean-up could not remove said in a failed build's error.
    (Even a build that went live may have had sites that failed; what cannot be removed after
    one that went live is said by the next start's clean-up.)"""
    timing({"event": "helper_done", "probe": request.get("probe"), "pid": pid, "cached": bool(header.get("cached")),
            **done})
    left = _clean_after(pid)
    if left and not header.get("ok"):
        header["error"] = f"{header.get('error') or 'the build failed'}; {left}"
    return header, fds


def _failed(exc: BaseException, fds: list[int], pid: int) -> None:
    """A build that raised: closes what it received; its sentence says what could not be removed."""
    for fd in fds:
        os.close(fd)
    left = _clean_after(pid) if pid else ""
    if left and isinstance(exc, BuildError):
        exc.detail = f"{exc.detail}; {left}"
        exc.args = (exc.detail,)


def _clean_after(pid: int) -> str:
    """A helper that failed (or died) may have left tracefs entries: removes them now.

    Returns a sentence for the probe's status when some could not be removed, else "".
    """
    from ktop.probes import leftovers

    try:
        said = leftovers.remove_owned_by(pid)
    except Exception as exc:  # never hides the build's own error
        said = [f"could not check tracefs for what the failed helper left: {exc}"]
    return "; ".join(line for line in said if line.startswith("could not"))


def _recv(sock: socket.socket, deadline: float, fds: list[int], header: bool = True) -> Optional[dict]:
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    data, got, _flags, _addr = socket.recv_fds(sock, 1 << 22, 256)
    fds.extend(got)
    if not data:
        return None
    if header:
        if data[:1] != b"J":
            raise BuildError("the build helper answered out of order")
        return json.loads(data[1:])
    return {}


def _died(proc: subprocess.Popen, log) -> str:
    try:
        code = proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    return _why(code, log)


def _why(code: Optional[int], log) -> str:
    """The sentence for a helper that ended before it answered (``code`` as Popen's returncode:
    a signal negative; None when unknown)."""
    if code is None:
        why = "the build helper ended before it answered"
    elif code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        why = f"the build helper was killed by {sig}"
    else:
        why = f"the build helper exited with status {code} before it answered"
    tail = _tail(log)
    return f"{why}" + (f": {tail}" if tail else "")


def _tail(log, limit: int = 400) -> str:
    try:
        log.flush()
        size = os.fstat(log.fileno()).st_size
        text = os.pread(log.fileno(), min(4096, size), max(0, size - 4096)).decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:limit] if lines else ""


def build(request: dict, timeout: Optional[float] = None) -> Loaded:
    """Compiles and attaches in a helper; returns what it holds.

    ``request``: ``probe`` (its module under ktop.probes), ``source``,
    ``cflags``, and whatever the probe's ``helper_build`` reads.

    Raises:
        BuildError: the sentence for the probe's status.
    """
    header, fds = _run(dict(request, kind="build"), timeout)
    if not header.get("ok"):
        for fd in fds:
            os.close(fd)
        raise BuildError(header.get("error") or "the build failed", header.get("status") or FAILED)
    names = list(header["maps"])
    progs = list(header["progs"])
    loaded = Loaded(extra=header.get("extra") or {})
    try:
        for i, name in enumerate(names):
            loaded.maps[name] = Map(fds[i], name)
        loaded.progs = dict(zip(progs, fds[len(names):len(names) + len(progs)]))
        loaded.links = fds[len(names) + len(progs):]
    except BaseException:
        loaded.close()
        for fd in fds[len(loaded.maps):]:
            try:
                os.close(fd)
            except OSError:
                pass
        raise
    return loaded


def call(probe: str, function: str, *args, timeout: Optional[float] = None) -> Any:
    """Runs ``ktop.probes.<probe>.<function>(*args)`` in a helper (plain JSON data both ways).

    For the few user-space reads that need libbcc (ELF symbols, USDT notes).
    """
    header, fds = _run({"kind": "call", "probe": probe, "function": function, "args": list(args)}, timeout)
    for fd in fds:
        os.close(fd)
    if not header.get("ok"):
        raise BuildError(header.get("error") or "the helper failed", header.get("status") or FAILED)
    return header.get("result")


# -- start-up builds forked from one helper ------------------------------------------------------
# Each helper spends ~0.2 s of CPU before it compiles (Python, ktop's modules, libbcc, the
# kernel's BTF): 0.8 s of the 2.6 s that the dashboard's four start-up builds cost, on a machine
# whose two CPUs they share with the first frames. During start-up one helper, the zygote, pays
# that once and forks a child per build; each child is a helper as above (its own process, so
# libbcc's compiles still never share one). Its children report to ktop on their own socket:
# "P<pid>" first, then the helper's answer; the zygote adds "X<code>" once it has reaped one.
# A build that finds the zygote gone starts a helper of its own. Every command that runs the
# collectors starts one (ktop.cli.common.running).


class _NotForked(Exception):
    """The zygote ended before it forked a child for this build."""


class _Zygote:
    def __init__(self, preload: list[str]):
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log = tempfile.TemporaryFile(prefix="ktop-zygote-")
        env = dict(os.environ, KTOP_HELPER_ZYGOTE=str(theirs.fileno()), KTOP_HELPER_PARENT=str(os.getpid()),
                   KTOP_HELPER_PRELOAD=",".join(preload))
        try:
            self.proc = subprocess.Popen(_helper_command(), stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=self.log, pass_fds=(theirs.fileno(),), env=env, close_fds=True)
        finally:
            theirs.close()
        self.lock = threading.Lock()
        _track(self.proc.pid)

    def send_slot(self, theirs: socket.socket, log) -> bool:
        with self.lock:
            if self.control.fileno() < 0 or self.proc.poll() is not None:
                return False
            try:
                socket.send_fds(self.control, [b"S"], [theirs.fileno(), log.fileno()])
                return True
            except OSError:
                return False

    def close(self) -> None:
        """No more builds through it: it exits once its children have."""
        with self.lock:
            self.control.close()
        threading.Thread(target=self._reap, name="ktop-zygote-reap", daemon=True).start()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout_s() + 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _untrack(self.proc.pid)
        self.log.close()


_zygote: dict[str, Optional[_Zygote]] = {"z": None}


def start_zygote(preload: list[str]) -> None:
    """The next builds fork from one helper (see above) until :func:`stop_zygote`; ``preload``:
    the probes whose modules it imports first."""
    if _zygote["z"] is None:
        try:
            _zygote["z"] = _Zygote(preload)
        except OSError:
            pass  # builds start their own helpers, as without it


def stop_zygote() -> None:
    z, _zygote["z"] = _zygote["z"], None
    if z is not None:
        z.close()


def _run_forked(request: dict, timeout: float) -> Optional[tuple[dict, list[int]]]:
    """:func:`_run` through the zygote; None when there is none (or it ended before forking)."""
    z = _zygote["z"]
    if z is None:
        return None
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    log = tempfile.TemporaryFile(prefix="ktop-helper-")
    fds: list[int] = []
    pid = 0
    try:
        sent = z.send_slot(theirs, log)
        theirs.close()
        if not sent:
            return None
        deadline = time.monotonic() + timeout
        try:
            ours.sendall(b"J" + json.dumps(request).encode())
            first = _recv_forked(ours, deadline, fds, log, forked=False)
            if first[:1] != b"P":
                raise _NotForked()
        except (_NotForked, ConnectionError):
            return None  # the zygote left before this build: a helper of its own
        except socket.timeout:
            return None
        pid = int(first[1:])
        timing({"event": "helper_start", "probe": request.get("probe"), "pid": pid, "forked": True})
        _track(pid)
        code: Optional[int] = None
        try:
            try:
                header = _recv_forked(ours, deadline, fds, log)
                if header[:1] != b"J":
                    raise BuildError("the build helper answered out of order")
                header = json.loads(header[1:])
                while len(fds) < _wanted(header):
                    _recv_forked(ours, deadline, fds, log)
            except socket.timeout:
                _kill(pid)
                raise _too_slow(timeout) from None
            except ConnectionError:
                raise BuildError(_why(None, log)) from None
        finally:
            code = _wait_forked(ours, pid)
            _untrack(pid)
        return _answered(request, header, fds, pid, code=code)
    except BaseException as exc:
        _failed(exc, fds, pid)
        raise
    finally:
        ours.close()
        log.close()


def _recv_forked(sock: socket.socket, deadline: float, fds: list[int], log, forked: bool = True) -> bytes:
    """One message of a forked helper: its pid ("P"), its answer ("J"), a batch of fds ("F").
    "X<code>" (the zygote reaped it) or the end of the socket is a BuildError once it has
    forked, else _NotForked."""
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    data, got, _flags, _addr = socket.recv_fds(sock, 1 << 22, 256)
    fds.extend(got)
    if not data:
        if not forked:
            raise _NotForked()
        raise BuildError(_why(None, log))
    if data[:1] == b"X":
        raise BuildError(_why(int(data[1:]), log))
    return data


def _wait_forked(sock: socket.socket, pid: int) -> Optional[int]:
    """Waits (5 s at most) for the zygote's word that ``pid`` has exited; its code, or None."""
    end = time.monotonic() + 5
    try:
        while time.monotonic() < end:
            sock.settimeout(max(0.001, end - time.monotonic()))
            data, got, _flags, _addr = socket.recv_fds(sock, 1 << 16, 256)
            for fd in got:
                os.close(fd)  # what came after the answer was counted: never left open
            if not data:
                return None
            if data[:1] == b"X":
                return int(data[1:])
    except (OSError, ValueError):
        pass
    _kill(pid)
    return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass  # gone already


__all__ = ["BuildError", "Loaded", "build", "call", "start_zygote", "stop_zygote", "timeout_s"]
