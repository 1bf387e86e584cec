"""What every model section shares: the sparkline length, the bounded push, user names."""

from __future__ import annotations

import pwd
from functools import lru_cache

HISTORY = 120  # samples kept per sparkline, heatmap and rate history


def push(hist: tuple, value, limit: int = HISTORY) -> tuple:
    """``hist`` with ``value`` appended, the oldest dropped beyond ``limit``."""
    return (hist + (value,))[-limit:]


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)
