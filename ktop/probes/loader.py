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
        with _nice_lock:
            _nice["pids"].add(proc.pid)
            if _nice["value"]:
                _renice(proc.pid, _nice["value"])
        try:
            ours.sendall(b"J" + json.dumps(request).encode())
            deadline = time.monotonic() + timeout
            header = _recv(ours, deadline, fds)
            if header is None:
                raise BuildError(_died(proc, log))
            want = len(header.get("maps", ())) + len(header.get("progs", ())) + int(header.get("links", 0))
            while len(fds) < want:
                if _recv(ours, deadline, fds, header=False) is None:
                    raise BuildError(_died(proc, log))
        except socket.timeout:
            proc.kill()
            raise BuildError(f"the build helper did not finish within {timeout:g} s and was stopped "
                             "(KTOP_BUILD_TIMEOUT sets the limit)") from None
        except ConnectionError:  # a pipe broken, or reset: the helper died before it read or sent all
            raise BuildError(_died(proc, log)) from None
        finally:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with _nice_lock:
                _nice["pids"].discard(proc.pid)
        timing({"event": "helper_done", "probe": request.get("probe"), "pid": pid})
        # even a build that went live may have had sites that failed; what cannot be removed
        # after one that went live is said by the next start's clean-up
        left = _clean_after(pid)
        if left and not header.get("ok"):
            header["error"] = f"{header.get('error') or 'the build failed'}; {left}"
        return header, fds
    except BaseException as exc:
        for fd in fds:
            os.close(fd)
        left = _clean_after(pid) if pid else ""
        if left and isinstance(exc, BuildError):
            exc.detail = f"{exc.detail}; {left}"
            exc.args = (exc.detail,)
        raise
    finally:
        ours.close()
        theirs.close()
        log.close()


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
    if code < 0:
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


__all__ = ["BuildError", "Loaded", "build", "call", "timeout_s"]
