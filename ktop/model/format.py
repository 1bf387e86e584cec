"""Number formatting shared by panels and the CLI."""

from __future__ import annotations

import signal


def human_bytes(n: float | int | None) -> str:
    """1536 -> '1.5K', as htop shows memory (powers of 1024)."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "" or abs(n) >= 100 else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}P"  # pragma: no cover


def duration_ms(ms: float | None) -> str:
    """Compact duration: '850ms', '2.3s', '4m05s', '3h12m'."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def uptime(seconds: float) -> str:
    d, rem = divmod(int(seconds), 86400)
    h, rem = divmod(rem, 3600)
    m, _ = divmod(rem, 60)
    return f"{d}d {h:02d}:{m:02d}" if d else f"{h:02d}:{m:02d}"


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIG{sig}"


def errno_name(err: int) -> str:
    import errno

    return errno.errorcode.get(err, f"E{err}")


def exit_text(exit_code: int | None, exit_signal: int | None) -> str:
    """'0', '3', 'SIGKILL', or '' while the process runs."""
    if exit_signal:
        return signal_name(exit_signal)
    if exit_code is None:
        return ""
    return str(exit_code)


def retval_text(retval: int, short: bool = False) -> str:
    """0 -> '0'; -2 -> '-2 ENOENT' (short: 'ENOENT')."""
    if retval == 0:
        return "0"
    return errno_name(-retval) if short else f"{retval} {errno_name(-retval)}"
