"""Reverse DNS of remote addresses, asked for only when the user turns names on (the Network
panel's key), and never on the thread that ticks or draws.

:meth:`ReverseNames.name` answers at once from a bounded cache: the name, or None while it is
not known (the caller shows the number). A miss queues the address for one background thread,
which asks the resolver (``socket.gethostbyaddr`` by default) in a helper thread of its own and
waits at most ``timeout_s``: an address whose lookup hangs (a dead DNS server: glibc's own
retries take 5 s and more) counts as having no name, and the next address is asked meanwhile.
At most ``max_stuck`` lookups may hang at once; beyond that the queue waits, not the caller.
Answers and failures are cached (LRU, ``max_entries``), failures for a shorter time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import OrderedDict, deque
from typing import Callable, Optional

MAX_NAME = 253  # the longest DNS name


def _gethostbyaddr(addr: str) -> Optional[str]:
    try:
        return socket.gethostbyaddr(addr)[0]
    except (OSError, UnicodeError):
        return None


class ReverseNames:
    """A bounded cache of reverse lookups filled by a background thread."""

    def __init__(self, resolve: Callable[[str], Optional[str]] = _gethostbyaddr, *, max_entries: int = 1024,
                 max_queue: int = 256, timeout_s: float = 2.0, ttl_s: float = 600.0, fail_ttl_s: float = 60.0,
                 max_stuck: int = 4, on_answer: Optional[Callable[[], None]] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.resolve = resolve
        self.max_entries, self.max_queue = max_entries, max_queue
        self.timeout_s, self.ttl_s, self.fail_ttl_s = timeout_s, ttl_s, fail_ttl_s
        self.on_answer = on_answer
        self.clock = clock
        self._cache: OrderedDict[str, tuple[Optional[str], float]] = OrderedDict()  # addr -> (name, expires)
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._cond = threading.Condition()
        self._slots = threading.BoundedSemaphore(max_stuck)
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self.lookups = 0  # resolver calls made
        self.timeouts = 0  # of which gave up waiting
        self.dropped = 0  # misses not queued (the queue was full): asked again on a later call

    def name(self, addr: str) -> Optional[str]:
        """The name of ``addr`` if known now, else None (and the lookup is queued). Never blocks on DNS."""
        now = self.clock()
        with self._cond:
            hit = self._cache.get(addr)
            if hit is not None and hit[1] > now:
                self._cache.move_to_end(addr)
                return hit[0]
            if addr in self._queued or self._closed:
                return None
            if len(self._queue) >= self.max_queue:
                self.dropped += 1
                return None
            self._queue.append(addr)
            self._queued.add(addr)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ktop-rdns", daemon=True)
                self._thread.start()
            self._cond.notify()
        return None

    def known(self, addr: str) -> bool:
        """Whether ``addr`` has an answer (a name or none) in the cache."""
        with self._cond:
            hit = self._cache.get(addr)
            return hit is not None and hit[1] > self.clock()

    def pending(self) -> int:
        with self._cond:
            return len(self._queued)

    def close(self) -> None:
        """Stops the thread after the lookup in hand (a hung one is left to end on its own)."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()

    def _store(self, addr: str, name: Optional[str]) -> None:
        if name is not None:
            name = name[:MAX_NAME] or None
        with self._cond:
            self._cache[addr] = (name, self.clock() + (self.ttl_s if name else self.fail_ttl_s))
            self._cache.move_to_end(addr)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    def _ask(self, addr: str, box: list) -> None:
        try:
            box.append(self.resolve(addr))
        except Exception:  # a resolver's failure is a missing name, nothing more
            box.append(None)
        finally:
            self._slots.release()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                addr = self._queue.popleft()
            self._slots.acquire()  # at most max_stuck lookups hang at once
            box: list = []
            t = threading.Thread(target=self._ask, args=(addr, box), name="ktop-rdns-ask", daemon=True)
            t.start()
            t.join(self.timeout_s)
            self.lookups += 1
            if t.is_alive():
                self.timeouts += 1
            self._store(addr, box[0] if box else None)
            with self._cond:
                self._queued.discard(addr)
            if self.on_answer is not None:
                try:
                    self.on_answer()
                except Exception:  # the app may be closing
                    pass


__all__ = ["ReverseNames"]
