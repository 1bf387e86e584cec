"""Instruction pointers to function names, in ktop's process, cached.

Kernel addresses come from ``/proc/kallsyms`` (read once, searched by
bisection). User addresses go through the process's ``/proc/PID/maps`` to
the mapped file and an offset in it, then through that file's ELF symbol
tables (``.symtab`` and ``.dynsym``), read by the small reader here once per
file (keyed by device and inode, so every process that maps libc shares one
table). A frame without a symbol is ``module+0xoffset``; an address in no
mapping (JIT code, or a process that exited before ktop read its maps) is
``[unknown]``. A thread of the symbolizer's own reads a new process's maps
and the tables of the files it maps as soon as the probe tells of it
(:meth:`Symbolizer.follow`: that thread reads the probe's ring buffer
itself), so a short-lived process is named after it exited and a tick
only looks names up. Everything here is pure file reading: no BCC.
"""

from __future__ import annotations

import bisect
import os
import queue
import select
import struct
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PHDR = struct.Struct("<IIQQQQQQ")
_SYM = struct.Struct("<IBBHQQ")
SHT_SYMTAB = 2
SHT_DYNSYM = 11
PT_LOAD = 1
STT_FUNC = 2
STT_GNU_IFUNC = 10
MAX_ELF_BYTES = 1 << 30  # a bigger file is not read for symbols (its frames show as module+0x...)
# A followed ring is also read this often: a safety net, as the kernel wakes the primer for each record.
FOLLOW_POLL_MS = 100
# Files waiting to be opened by the primer; beyond, the oldest are left to the tick (exec storms).
MAX_OPENING = 4096
_ABSENT = object()


class SymbolTable:
    """Sorted (start, size, name) of functions; :meth:`find` bisects."""

    def __init__(self, entries: list[tuple[int, int, str]]):
        entries.sort()
        self.starts = [e[0] for e in entries]
        self.sizes = [e[1] for e in entries]
        self.names = [e[2] for e in entries]

    def __len__(self) -> int:
        return len(self.starts)

    def find(self, addr: int) -> Optional[tuple[str, int]]:
        """(name, offset in it) of the function holding ``addr``, or None."""
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0:
            return None
        start, size = self.starts[i], self.sizes[i]
        if size and addr >= start + size:
            # Symbols of size 0 (assembly labels) take what follows them; a sized one ends.
            return None
        return self.names[i], addr - start


def parse_kallsyms(text: str) -> SymbolTable:
    """``/proc/kallsyms`` text symbols (t, T, w, W); zero addresses (kptr_restrict) are left out."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1] not in ("t", "T", "w", "W"):
            continue
        addr = int(parts[0], 16)
        if addr:
            entries.append((addr, 0, parts[2]))
    return SymbolTable(entries)


def _underscores(name: str) -> int:
    return len(name) - len(name.lstrip("_"))


@dataclass(frozen=True)
class ElfInfo:
    symbols: SymbolTable
    loads: tuple[tuple[int, int, int], ...]  # (p_offset, p_vaddr, p_filesz) of PT_LOAD segments

    def vaddr(self, file_offset: int) -> Optional[int]:
        """The link-time address of a file offset (for the symbol tables), None outside every segment."""
        for off, vaddr, size in self.loads:
            if off <= file_offset < off + size:
                return file_offset - off + vaddr
        return None


def read_elf(data: bytes) -> Optional[ElfInfo]:
    """The function symbols and load segments of a 64-bit little-endian ELF image, or None."""
    if len(data) < _EHDR.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (_ident, _type, _machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
     shentsize, shnum, _shstrndx) = _EHDR.unpack_from(data, 0)
    loads = []
    for i in range(phnum):
        o = phoff + i * phentsize
        if o + _PHDR.size > len(data):
            break
        p_type, _pf, p_offset, p_vaddr, _pa, p_filesz, _memsz, _align = _PHDR.unpack_from(data, o)
        if p_type == PT_LOAD:
            loads.append((p_offset, p_vaddr, p_filesz))
    sections = []
    for i in range(shnum):
        o = shoff + i * shentsize
        if o + _SHDR.size > len(data):
            break
        sections.append(_SHDR.unpack_from(data, o))
    entries: dict[int, tuple[int, int, str]] = {}
    for (_name, sh_type, _fl, _addr, sh_offset, sh_size, sh_link, _info, _align, sh_entsize) in sections:
        if sh_type not in (SHT_SYMTAB, SHT_DYNSYM) or sh_link >= len(sections):
            continue
        strtab = sections[sh_link]
        s_off, s_size = strtab[4], strtab[5]
        strings = data[s_off:s_off + s_size]
        esize = sh_entsize or _SYM.size
        end = min(len(data), sh_offset + sh_size)
        for o in range(sh_offset, end - _SYM.size + 1, esize):
            st_name, st_info, _other, shndx, value, size = _SYM.unpack_from(data, o)
            if (st_info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC) or not value or not shndx:
                continue
            nul = strings.find(b"\0", st_name)
            name = strings[st_name:nul if nul >= 0 else len(strings)].decode("utf-8", "backslashreplace")
            if not name:
                continue
            old = entries.get(value)
            # One name an address: the same function is in both tables, and aliases share it
            # (libc's getpid and __getpid): the sized one, then the one people call.
            if old is None or (size, -_underscores(name), -len(name)) > (old[1], -_underscores(old[2]), -len(old[2])):
                entries[value] = (value, size, name)
    return ElfInfo(SymbolTable(list(entries.values())), tuple(loads))


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int
    dev: str
    inode: int
    path: str


def parse_maps(text: str) -> list[Mapping]:
    """The executable mappings of ``/proc/PID/maps`` text, by start address."""
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5 or "x" not in parts[1]:
            continue
        lo, _, hi = parts[0].partition("-")
        try:
            out.append(Mapping(int(lo, 16), int(hi, 16), int(parts[2], 16), parts[3], int(parts[4]),
                               parts[5].strip() if len(parts) > 5 else ""))
        except ValueError:
            continue
    out.sort(key=lambda m: m.start)
    return _Maps(out)


def _module(path: str) -> str:
    if not path:
        return "[anon]"
    if path.startswith("["):
        return path
    return os.path.basename(path.removesuffix(" (deleted)"))


class Symbolizer:
    """Kernel and user frames to names, every table read once and kept (bounded)."""

    MAX_FILES = 512  # ELF tables kept (the least recently loaded go first)
    MAX_PROCS = 4096  # processes whose maps are kept
    MAX_ADDRS = 200_000  # resolved (file, offset) frames kept
    MAX_PENDING = 256  # files opened by the priming thread and not read yet

    def __init__(self, proc: str = "/proc", kallsyms: Optional[str] = None):
        self.proc = proc
        self._kallsyms_path = kallsyms or f"{proc}/kallsyms"
        self._kernel: Optional[SymbolTable] = None
        self._kernel_names: dict[int, str] = {}
        self._files: dict[tuple[str, int], Optional[ElfInfo]] = {}
        self._maps: dict[int, tuple[tuple, list[Mapping]]] = {}
        self._frames: dict[tuple[str, int, int], str] = {}
        self.elf_reads = 0  # files parsed (a test can see the cache work)
        self._checked: set[int] = set()  # processes whose maps were checked this tick (begin_tick)
        self._refreshed: set[int] = set()  # ... and read again for an address in none of them
        # the priming thread (ktop-maps) and the parser (ktop-symbols) change the caches under these
        self._maps_lock = threading.Lock()
        self._elf_lock = threading.Lock()  # held while one file is read: no file is read twice at once
        self._follow: Optional[tuple] = None  # (ring, pid of a record): read on ktop-maps too
        self._wake_fds: Optional[tuple[int, int]] = None  # wakes ktop-maps (a pipe), once it runs
        self._primer_thread: Optional[threading.Thread] = None
        self._closing = False
        self._parses: Optional[queue.SimpleQueue] = None  # files whose tables to read (ktop-symbols)
        self._pending: dict[tuple[str, int], int] = {}  # files opened for them, not read yet
        self._pending_lock = threading.Lock()
        self.primed = 0  # processes whose maps the priming thread read (a test can see it work)

    def begin_tick(self) -> None:
        """A process's maps are checked (a stat read) once a tick, not once a stack."""
        self._checked.clear()
        self._refreshed.clear()

    # -- kernel -------------------------------------------------------
    def kernel_table(self) -> SymbolTable:
        if self._kernel is None:
            try:
                with open(self._kallsyms_path) as f:
                    self._kernel = parse_kallsyms(f.read())
            except OSError:
                self._kernel = SymbolTable([])
        return self._kernel

    def kernel(self, addr: int) -> str:
        name = self._kernel_names.get(addr)
        if name is None:
            hit = self.kernel_table().find(addr)
            name = hit[0] if hit else f"0x{addr:x}"
            if len(self._kernel_names) < self.MAX_ADDRS:
                self._kernel_names[addr] = name
        return name

    # -- user ---------------------------------------------------------
    def _proc_key(self, pid: int) -> tuple:
        """What tells a process from a later one with its PID: its start time and name (an exec renames)."""
        try:
            with open(f"{self.proc}/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return ()
        r = stat.rfind(b")")
        fields = stat[r + 2:].split()
        return (fields[19] if len(fields) > 19 else b"", stat[stat.find(b"(") + 1:r])

    def maps(self, pid: int, refresh: bool = False) -> list[Mapping]:
        got = self._maps.get(pid)
        if got is not None and pid in self._checked and not refresh:
            return got[1]
        self._checked.add(pid)
        key = self._proc_key(pid)
        if got is not None and got[0] == key and key and not refresh:
            return got[1]
        return self._read_maps(pid, key, got)

    def _read_maps(self, pid: int, key: tuple, got) -> list[Mapping]:
        try:
            with open(f"{self.proc}/{pid}/maps") as f:
                maps = parse_maps(f.read())
        except OSError:  # gone: keep what we had for it (its last samples still resolve)
            return got[1] if got is not None else []
        if not maps and got is not None:  # a zombie's maps are empty: its last samples still resolve
            return got[1]
        with self._maps_lock:
            if len(self._maps) >= self.MAX_PROCS and pid not in self._maps:
                self._maps.pop(next(iter(self._maps)))
            self._maps[pid] = (key, maps)
        return maps

    def forget(self, keep_pids) -> None:
        """Drops the maps of processes not in ``keep_pids`` that have exited."""
        with self._maps_lock:
            pids = [p for p in self._maps if p not in keep_pids]
        for pid in pids:
            if not os.path.exists(f"{self.proc}/{pid}"):
                with self._maps_lock:
                    self._maps.pop(pid, None)

    # -- priming ------------------------------------------------------
    def follow(self, ring, pid_of: Callable[[bytes], int]) -> None:
        """Reads the maps of the process each record of ``ring`` names (``pid_of(record)``) as soon as
        the kernel commits it, and opens the files they map (a second thread reads their symbol
        tables, so a slow table never delays the next maps read). The ring is read on the priming
        thread itself: not on the collector's, whose tick can outlast a short-lived process (1.4 s
        seen under QEMU/TCG, while a 1 s process ran and exited). That thread owns ``ring`` from now on and
        closes it when it ends."""
        self._follow = (ring, pid_of)
        self._start()

    def _start(self) -> None:
        if self._primer_thread is None and not self._closing:
            self._parses = queue.SimpleQueue()
            self._wake_fds = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._primer_thread = threading.Thread(target=self._primer, name="ktop-maps", daemon=True)
            self._primer_thread.start()
            threading.Thread(target=self._parser, args=(self._parses,), name="ktop-symbols", daemon=True).start()
        self._wake()

    def _wake(self) -> None:
        if self._wake_fds is not None:
            try:
                os.write(self._wake_fds[1], b"!")
            except OSError:
                pass  # the pipe is full (a wake-up is pending) or closed (the thread ended)

    def close(self) -> None:
        """Ends the priming threads (the parser finishes the file it is reading); closes open files
        and the followed ring (its thread is its only reader: it closes it, or here if it never ran)."""
        self._closing = True
        thread = self._primer_thread
        if thread is None:
            if self._follow is not None:
                self._follow[0].close()
        else:
            self._wake()
            self._parses.put(None)
            thread.join(2.0)
            if not thread.is_alive():  # else it may still poll them: left open
                fds, self._wake_fds = self._wake_fds, None
                for fd in fds:
                    os.close(fd)
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        for fd in pending.values():
            os.close(fd)

    def _primer(self) -> None:
        """Reads the maps of every process told of before anything else, then opens the files they
        map, one a pass, the newest process's first: a process told of while many files wait (ktop's
        first second on a busy machine, each open a wait for the GIL while the parser reads a big
        table) has its maps read and its files opened before them, not after."""
        wake_r = self._wake_fds[0]
        poll = select.poll()
        poll.register(wake_r, select.POLLIN)
        ring = pid_of = None
        opening: deque = deque(maxlen=MAX_OPENING)  # (pid, Mapping) of files to open (the oldest go)
        try:
            while not self._closing:
                if ring is None and self._follow is not None:
                    ring, pid_of = self._follow
                    poll.register(ring.fileno(), select.POLLIN)
                if not opening:
                    poll.poll(FOLLOW_POLL_MS if ring is not None else None)
                    try:
                        while os.read(wake_r, 64):
                            pass
                    except BlockingIOError:
                        pass
                pids = list(map(pid_of, ring.consume())) if ring is not None else []
                for pid in dict.fromkeys(pids):
                    if self._closing:
                        break
                    # the newest process's files first: the likeliest to be short-lived (the files
                    # of one that lives on are opened at the tick as well, should these wait)
                    opening.extendleft(reversed([(pid, m) for m in self._prime_maps(pid)]))
                if opening and not self._closing:
                    self._prime_file(*opening.popleft())
        finally:
            if ring is not None:
                ring.close()

    def _prime_maps(self, pid: int) -> list[Mapping]:
        """The process's maps, read now unless kept from its last read; [] once it is gone."""
        try:
            key = self._proc_key(pid)
            if not key:  # gone already
                return []
            got = self._maps.get(pid)
            maps = got[1] if got is not None and got[0] == key else self._read_maps(pid, key, got)
            self.primed += 1
            return [m for m in maps if m.inode]
        except Exception:  # noqa: BLE001 - its frames are named module+0x... or [unknown] later
            return []

    def _prime_file(self, pid: int, m: Mapping) -> None:
        """Opens a mapped file for the parser, unless read or opened already."""
        fkey = (m.dev, m.inode)
        if fkey in self._files or fkey in self._pending or len(self._pending) >= self.MAX_PENDING:
            return
        fd = self._open(pid, m)
        if fd is None:
            return
        with self._pending_lock:  # never waits for a file being read
            if self._closing or fkey in self._pending:
                os.close(fd)
                return
            self._pending[fkey] = fd
        self._parses.put(fkey)

    def _parser(self, q: queue.SimpleQueue) -> None:
        while (fkey := q.get()) is not None:
            try:
                self._elf_of(fkey, None)
            except Exception:  # noqa: BLE001 - as above
                continue

    def _open(self, pid: int, m: Mapping) -> Optional[int]:
        """A descriptor of the mapped file, or None once the process is gone."""
        # map_files opens the very file mapped (even deleted, or in another mount namespace).
        for path in (f"{self.proc}/{pid}/map_files/{m.start:x}-{m.end:x}", f"{self.proc}/{pid}/root{m.path}"):
            try:
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
        return None

    def _elf(self, pid: int, m: Mapping):
        """The file's ElfInfo (None: not an ELF file, or too big), or _ABSENT when it could not be
        opened (not kept: a process that maps it later may open it)."""
        return self._elf_of((m.dev, m.inode), (pid, m))

    def _elf_of(self, key: tuple[str, int], mapped: Optional[tuple[int, Mapping]]):
        info = self._files.get(key, _ABSENT)
        if info is not _ABSENT:
            return info
        with self._elf_lock:
            info = self._files.get(key, _ABSENT)
            if info is not _ABSENT:  # read by the other thread meanwhile
                return info
            with self._pending_lock:
                fd = self._pending.pop(key, None)  # opened by the primer while the process lived
            if fd is None and mapped is not None:
                fd = self._open(*mapped)
            if fd is None:  # not opened (the process is gone): another that maps it may open it
                return _ABSENT
            try:
                with os.fdopen(fd, "rb") as f:
                    info = read_elf(f.read()) if os.fstat(f.fileno()).st_size <= MAX_ELF_BYTES else None
            except OSError:
                info = None
            self.elf_reads += 1
            if len(self._files) >= self.MAX_FILES:
                self._files.pop(next(iter(self._files)))
            self._files[key] = info
        return info

    def user(self, pid: int, addr: int, maps: list[Mapping]) -> str:
        m = _find(maps, addr)
        if m is None:
            return "[unknown]"
        off = addr - m.start + m.offset
        fkey = (m.dev, m.inode, off)
        name = self._frames.get(fkey) if m.inode else None
        if name is not None:
            return name
        info = self._elf(pid, m) if m.inode else None
        keep = m.inode and info is not _ABSENT
        info = None if info is _ABSENT else info
        vaddr = info.vaddr(off) if info else None
        hit = info.symbols.find(vaddr) if info and vaddr is not None else None
        if hit:
            name = hit[0]
        else:
            name = f"{_module(m.path)}+0x{(vaddr if vaddr is not None else off):x}"
        if keep:
            if len(self._frames) >= self.MAX_ADDRS:
                self._frames.clear()
            self._frames[fkey] = name
        return name

    def user_stack(self, pid: int, ips: tuple[int, ...]) -> tuple[str, ...]:
        """Names of a user stack (as the kernel gives it: leaf first), in the same order."""
        maps = self.maps(pid)
        if maps and pid not in self._refreshed and any(_find(maps, ip) is None for ip in ips):
            self._refreshed.add(pid)  # once a tick: a frame-pointer walk through code without them
            maps = self.maps(pid, refresh=True)  # ends in junk addresses; or a library loaded since (dlopen)
        # A caller's frame holds the return address, after its call: the call itself is one byte
        # before (a call that ends a function would otherwise name the next one).
        return tuple(self.user(pid, ip if i == 0 else ip - 1, maps) for i, ip in enumerate(ips))

    def kernel_stack(self, ips: tuple[int, ...]) -> tuple[str, ...]:
        return tuple(self.kernel(ip if i == 0 else ip - 1) for i, ip in enumerate(ips))


class _Maps(list):
    """Mappings by start address, with the starts kept for bisection."""

    def __init__(self, maps):
        super().__init__(maps)
        self.starts = [m.start for m in self]


def _find(maps: list[Mapping], addr: int) -> Optional[Mapping]:
    starts = maps.starts if isinstance(maps, _Maps) else [m.start for m in maps]
    i = bisect.bisect_right(starts, addr) - 1
    return maps[i] if i >= 0 and addr < maps[i].end else None


__all__ = ["ElfInfo", "Mapping", "SymbolTable", "Symbolizer", "parse_kallsyms", "parse_maps", "read_elf"]
