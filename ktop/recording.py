"""Recordings: snapshots as JSON Lines, one flushed line per tick.

The first line is a header, every further line one :class:`Snapshot` as
:func:`ktop.snapshot.to_jsonable` writes it::

    {"ktop_recording": 1, "schema": 1, "host": {...}, "started": 1700000000.0,
     "interval_s": 1.0, "probes": ["spawn"], "ktop_version": "0.1.0"}
    {"time": ..., "interval_s": ..., "host": {...}, "system": {...}, "processes": [...], ...}

A FILE ending in ``.gz`` is written gzip-compressed, each line flushed
(``Z_SYNC_FLUSH``) so that a reader sees every complete tick even when the
writer was killed before it wrote the gzip trailer. Readers detect gzip by
its magic bytes, not by the name.

The file is created with mode 0600 (argv and paths can hold secrets), never
through a symlink, and only as a regular file.

:class:`Recording` reads a file: it checks every line once (so a bad file
fails before anything is shown or printed), keeps an index (byte offsets,
or the compressed lines of a gzip file) and decodes snapshots on demand. A
torn last line (the writer died mid-write) is dropped with a warning; any
other bad line is a :class:`RecordingError` naming the file and the line.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import time
import zlib
from bisect import bisect_right
from typing import Any, Iterator, Optional

from ktop.codec import DecodeError
from ktop.snapshot import SCHEMA, HostInfo, Snapshot, snapshot_from_jsonable, to_jsonable, unknown_sections

FORMAT = 1  # the "ktop_recording" header value; bumped on a breaking change of the file layout
MAGIC = "ktop_recording"


class RecordingError(Exception):
    """A file that cannot be read as a recording: ``FILE:LINE: reason``."""

    def __init__(self, path: str, reason: str, line: Optional[int] = None):
        super().__init__(reason)
        self.path = path
        self.reason = reason
        self.line = line

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.reason}"


# -- writing ----------------------------------------------------------------

def open_private(path: str) -> int:
    """Opens ``path`` for writing, mode 0600: no symlink, regular files only.

    An existing regular file is truncated and its mode set to 0600.

    Raises:
        OSError: with a readable ``strerror`` (a symlink gives ELOOP).
    """
    # O_NONBLOCK: a FIFO without a reader fails at once (ENXIO) instead of blocking; on a regular
    # file it changes nothing
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, "not a regular file", path)
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def header(host: HostInfo, interval_s: float, probes: list[str], started: Optional[float] = None) -> dict:
    from ktop import __version__

    return {MAGIC: FORMAT, "schema": SCHEMA, "host": to_jsonable(host),
            "started": time.time() if started is None else started,
            "interval_s": interval_s, "probes": list(probes), "ktop_version": __version__}


def encode(snapshot: Snapshot) -> bytes:
    """One recording line (with its newline)."""
    return (json.dumps(to_jsonable(snapshot), separators=(",", ":")) + "\n").encode()


class RecordingWriter:
    """Writes a recording; every :meth:`write` is one flushed line."""

    def __init__(self, path: str, head: dict):
        self.path = path
        self.ticks = 0
        self.raw_bytes = 0  # uncompressed JSON written
        self._size = 0  # the file's size when closed
        fd = open_private(path)
        st = os.fstat(fd)
        self._inode = (st.st_dev, st.st_ino)  # what tells this file from one made in its place
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._gz: Optional[gzip.GzipFile] = None
        if path.endswith(".gz"):
            self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._file, compresslevel=6, mtime=0)
        self._put((json.dumps(head, separators=(",", ":")) + "\n").encode())

    def _put(self, data: bytes) -> None:
        self.raw_bytes += len(data)
        if self._gz is not None:
            self._gz.write(data)
            self._gz.flush()  # Z_SYNC_FLUSH: a reader sees the whole line
        else:
            view = memoryview(data)
            while view:
                n = self._file.write(view)
                view = view[n:]

    def write(self, snapshot: Snapshot) -> None:
        self._put(encode(snapshot))
        self.ticks += 1

    @property
    def file_bytes(self) -> int:
        return self._file.tell() if not self._file.closed else self._size

    def still_there(self) -> bool:
        """Whether ``path`` is still this recording (not removed or replaced meanwhile)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._inode

    def close(self) -> None:
        """Closes; OSError when the gzip trailer cannot be written (the lines before stay readable)."""
        if self._file.closed:
            return
        try:
            if self._gz is not None:
                self._gz.close()  # the gzip trailer
        finally:
            try:
                self._size = os.fstat(self._file.fileno()).st_size
            except OSError:
                pass
            self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- reading ----------------------------------------------------------------

_CHUNK = 1 << 20
MAX_LINE = 64 << 20  # one tick's JSON: about 1 MB at 5000 processes; longer is not a recording
MAX_TIME = 1e11  # seconds since the epoch (year 5138): a larger "time" is not a clock's


class _TooLong(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a recording holds")


def _lines(path: str) -> Iterator[tuple[int, bytes, Any]]:
    """(offset, line bytes, done) for each line of a plain or gzip file.

    The last yielded item of a file that does not end in a newline carries the
    partial line; ``done`` is True on that one, or on an empty sentinel item.
    For gzip files, offsets are None and a stream without its trailer ends
    with a sentinel whose line is ``None`` (the caller warns).
    """
    with open(path, "rb") as f:
        magic = f.read(2)
        f.seek(0)
        if magic == b"\x1f\x8b":
            yield from _gzip_lines(f)
            return
        offset = 0
        buf = b""
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            buf += chunk
            start = 0
            while True:
                nl = buf.find(b"\n", start)
                if nl < 0:
                    break
                yield offset, buf[start:nl + 1], False
                offset += nl + 1 - start
                start = nl + 1
            buf = buf[start:]
            if len(buf) > MAX_LINE:
                raise _TooLong()
        yield offset, buf, True


def _gzip_lines(f) -> Iterator[tuple[Any, bytes, Any]]:
    d = zlib.decompressobj(wbits=31)
    fed = False  # the current member's decompressor has seen input
    buf = b""
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        while chunk:
            fed = True
            try:
                # bounded output per call: a gzip bomb inflates 1000x, and a line has a limit anyway
                buf += d.decompress(chunk, _CHUNK * 4)
            except zlib.error as exc:
                raise _GzipBroken(str(exc)) from None
            chunk = d.unconsumed_tail
            if d.eof:  # a member ended; another may follow (cat a.gz b.gz)
                chunk, d, fed = d.unused_data, zlib.decompressobj(wbits=31), False
                if chunk and not chunk.startswith(b"\x1f\x8b"):
                    chunk = b""  # trailing garbage after the last member: ignored, as gzip(1) does
            start = 0
            while True:
                nl = buf.find(b"\n", start)
                if nl < 0:
                    break
                yield None, buf[start:nl + 1], False
                start = nl + 1
            buf = buf[start:]
            if len(buf) > MAX_LINE:
                raise _TooLong()
    yield None, buf, ("complete" if not fed or d.eof else "cut")


class _GzipBroken(Exception):
    pass


class Recording:
    """A recording file, checked line by line and indexed.

    Attributes:
        header: the first line (a dict).
        times: the ``time`` of each snapshot, in order.
        warnings: sentences for stderr (a torn last line, an unknown section).
    """

    def __init__(self, path: str):
        self.path = str(path)
        self.header: dict = {}
        self.times: list[float] = []
        self._sorted: list[float] = []
        self.warnings: list[str] = []
        self._offsets: list[int] = []  # plain files: where each snapshot line starts
        self._blobs: list[bytes] = []  # gzip files: each line, compressed on its own
        self._lengths: list[int] = []
        self._gzip = False
        self._scan()

    # -- the check-and-index pass --------------------------------------
    def _error(self, reason: str, line: Optional[int] = None) -> RecordingError:
        return RecordingError(self.path, reason, line)

    def _scan(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise self._error(f"cannot read: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            raise self._error("cannot read: is a directory")
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block, /dev/zero never ends
            raise self._error("cannot read: not a regular file (a recording is a file ktop record wrote)")
        pending: Optional[tuple[int, Any, bytes]] = None  # the previous line, checked once we know it is not last
        lineno = 0
        unknown_warned: set[str] = set()
        try:
            for offset, raw, done in self._iter_raw():
                if done is not False:
                    tail_ok = done in (True, "complete")
                    if raw:  # a last line without its newline
                        lineno += 1
                        if pending is not None:
                            self._accept(*pending, unknown_warned)
                        pending = (lineno, offset, raw)
                    if pending is not None:
                        self._accept_last(*pending, unknown_warned)
                    if not tail_ok:
                        self.warnings.append(
                            f"{self.path}: the gzip stream ends early (the recording was cut short); "
                            f"read {len(self.times)} ticks")
                    break
                lineno += 1
                if pending is not None:
                    self._accept(*pending, unknown_warned)
                pending = (lineno, offset, raw)
        except OSError as exc:
            raise self._error(f"cannot read: {exc.strerror or exc}") from None
        except _GzipBroken as exc:
            raise self._error(f"corrupt gzip data: {exc}", lineno + 1) from None
        except _TooLong:
            raise self._error(f"a line longer than {MAX_LINE >> 20} MiB: not a ktop recording", lineno + 1) from None
        if not self.header:
            raise self._error("empty file: not a ktop recording", 1)

    def _iter_raw(self):
        with open(self.path, "rb") as f:
            self._gzip = f.read(2) == b"\x1f\x8b"
        return _lines(self.path)

    def _parse(self, lineno: int, raw: bytes) -> Any:
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except RecursionError:
            raise self._error("corrupt line: nested too deeply", lineno) from None
        except (UnicodeDecodeError, ValueError) as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            if lineno == 1:
                raise self._error("not a ktop recording (the first line is not JSON)", 1) from None
            raise self._error(f"corrupt line: not JSON ({msg})", lineno) from None

    def _accept_last(self, lineno: int, offset: Any, raw: bytes, unknown_warned: set) -> None:
        try:
            self._accept(lineno, offset, raw, unknown_warned)
        except RecordingError:
            if lineno == 1 or not self.header:
                raise
            self.warnings.append(f"{self.path}:{lineno}: torn last line ignored (the recording was cut short)")

    def _accept(self, lineno: int, offset: Any, raw: bytes, unknown_warned: set) -> None:
        if lineno == 1:
            self._check_header(raw)
            return
        data = self._parse(lineno, raw)
        if not isinstance(data, dict):
            raise self._error("corrupt line: not a snapshot object", lineno)
        schema = data.get("schema", SCHEMA)
        if isinstance(schema, int) and schema > SCHEMA:
            raise self._error(f"snapshot schema {schema} is newer than this ktop reads ({SCHEMA}): "
                              "upgrade ktop", lineno)
        try:
            snap = snapshot_from_jsonable(data)
        except DecodeError as exc:
            raise self._error(f"corrupt line: {exc}", lineno) from None
        if not 0 <= snap.time < MAX_TIME:
            raise self._error(f"corrupt line: time {snap.time!r} is not a clock's", lineno)
        for name in unknown_sections(data):
            if name not in unknown_warned:
                unknown_warned.add(name)
                self.warnings.append(f"{self.path}:{lineno}: section {name!r} is not known to this ktop: ignored")
        self.times.append(snap.time)
        # the wall clock may step back (NTP): go-to-time searches the running maximum
        self._sorted.append(max(snap.time, self._sorted[-1]) if self._sorted else snap.time)
        self._lengths.append(len(raw))
        if self._gzip:
            self._blobs.append(zlib.compress(raw, 1))
        else:
            self._offsets.append(offset)

    def _check_header(self, raw: bytes) -> None:
        data = self._parse(1, raw)
        if not isinstance(data, dict) or MAGIC not in data:
            raise self._error(f"not a ktop recording (the first line has no {MAGIC!r} header)", 1)
        fmt = data.get(MAGIC)
        if not isinstance(fmt, int) or fmt < 1:
            raise self._error(f"not a ktop recording (bad {MAGIC!r} value {fmt!r})", 1)
        if fmt > FORMAT:
            raise self._error(f"recording format {fmt} is newer than this ktop reads ({FORMAT}): upgrade ktop", 1)
        schema = data.get("schema")
        if not isinstance(schema, int):
            raise self._error("not a ktop recording (the header has no integer 'schema')", 1)
        if schema > SCHEMA:
            raise self._error(f"snapshot schema {schema} is newer than this ktop reads ({SCHEMA}): upgrade ktop", 1)
        self.header = data

    # -- access ----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.times)

    def raw(self, i: int) -> bytes:
        """The JSON text of snapshot ``i``."""
        if self._gzip:
            return zlib.decompress(self._blobs[i])
        with open(self.path, "rb") as f:
            f.seek(self._offsets[i])
            return f.read(self._lengths[i])

    def snapshot(self, i: int) -> Snapshot:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return snapshot_from_jsonable(json.loads(self.raw(i)))

    def __iter__(self) -> Iterator[Snapshot]:
        if self._gzip:
            for i in range(len(self)):
                yield self.snapshot(i)
            return
        with open(self.path, "rb") as f:
            for off, n in zip(self._offsets, self._lengths):
                f.seek(off)
                yield snapshot_from_jsonable(json.loads(f.read(n)))

    def index_at(self, t: float) -> int:
        """The index of the last snapshot at or before wall-clock time ``t`` (0 if before the first)."""
        return max(0, bisect_right(self._sorted, t) - 1)

    @property
    def start(self) -> float:
        return self.times[0] if self.times else float(self.header.get("started", 0.0))

    @property
    def end(self) -> float:
        return self.times[-1] if self.times else self.start

    @property
    def duration_s(self) -> float:
        """Wall-clock span from the first to the last snapshot."""
        return self.end - self.start
