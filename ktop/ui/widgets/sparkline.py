"""Block-character sparklines as Rich text (cheap: one short string per line)."""

from __future__ import annotations

from typing import Sequence

BLOCKS = " ▁▂▃▄▅▆▇█"


def spark(values: Sequence[float], width: int, top: float | None = None) -> str:
    """The last ``width`` values as block characters, scaled to ``top`` (or their max)."""
    vals = list(values)[-width:] if width > 0 else []
    if not vals:
        return " " * max(width, 0)
    hi = top if top is not None else max(vals)
    hi = hi if hi > 0 else 1.0
    out = []
    for v in vals:
        i = 0 if v <= 0 else max(1, min(8, round(8 * v / hi)))
        out.append(BLOCKS[i])
    return "".join(out).rjust(width)
