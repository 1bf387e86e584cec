"""Turning untrusted strings (comm, argv, paths, user names) into safe text.

Other users choose these strings. Textual does not strip ESC, and DataTable
parses a plain ``str`` cell as markup, so every untrusted string becomes a
``rich.text.Text`` here, with every control or invisible formatting
character replaced by a visible placeholder (as htop and procps do).
"""

from __future__ import annotations

import unicodedata

from rich.text import Text

# C0 controls become the matching Unicode "control picture" (ESC -> U+241B).
_C0 = {c: chr(0x2400 + c) for c in range(0x20)}
_DEL = "\u2421"
_OTHER = "\ufffd"  # C1 controls, bidi overrides and other format characters
_TAB_SAFE = {0x09: "\u2409", 0x0A: "\u240a", 0x0D: "\u240d"}


def _needs_check(s: str) -> bool:
    return not (s.isascii() and s.isprintable())


def clean(value: str | bytes | None, limit: int | None = None) -> str:
    """Returns ``value`` with control and format characters made visible.

    Args:
        value: untrusted text; bytes are decoded as UTF-8 with invalid bytes
            shown as ``\\xNN``, as are the bytes that ``kernel_text`` kept as lone
            surrogates (U+DC80..U+DCFF).
        limit: cut to at most this many characters, marking the cut with ``…``.
    """
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    if _needs_check(value):
        out = []
        for ch in value:
            o = ord(ch)
            if o < 0x20:
                out.append(_C0[o])
            elif o == 0x7F:
                out.append(_DEL)
            elif o < 0x7F:
                out.append(ch)
            elif 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
                out.append(f"\\x{o - 0xDC00:02x}")
            else:
                cat = unicodedata.category(ch)
                # Cc: C1 controls; Cf: bidi overrides, zero-width joiners...;
                # Cs: lone surrogates; Zl/Zp: line/paragraph separators.
                out.append(_OTHER if cat in ("Cc", "Cf", "Cs", "Zl", "Zp", "Co", "Cn") else ch)
        value = "".join(out)
    if limit is not None and len(value) > limit:
        value = value[: max(limit - 1, 0)] + "…"
    return value


def safe_text(value: str | bytes | None, style: str = "", limit: int | None = None) -> Text:
    """Returns a ``Text`` for untrusted ``value``: never parsed as markup."""
    return Text(clean(value, limit), style=style, no_wrap=True, end="")


def join_argv(argv: list[str] | tuple[str, ...]) -> str:
    """Joins an argv for display, quoting arguments that hold spaces or are empty."""
    parts = []
    for a in argv:
        if a == "" or any(c in a for c in " \t\"'"):
            parts.append("'" + a.replace("'", "'\\''") + "'")
        else:
            parts.append(a)
    return " ".join(parts)
