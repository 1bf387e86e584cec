"""The target syntax of the funcs probe, as BCC's funccount users know it.

    func, k:func, p::func      a kernel function (kprobe)
    t:category:event           a kernel tracepoint
    lib:func, p:lib:func       a function in a library (uprobe); ``c:`` is libc
    /path/to/binary:func       a function in a binary (also ./rel/path:func)
    u:lib:probe                a USDT probe in a library or binary

``*`` is the only wildcard. Parsing is pure and strict: a spec is either a
:class:`FuncSpec` of checked parts or a :class:`SpecError` with one
sentence. A spec never becomes C text: the probe turns it into attach calls
and integer slot numbers (see bpf/funcs.bpf.c).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KERNEL = "kprobe"
USER = "uprobe"
TRACEPOINT = "tracepoint"
USDT = "usdt"

KIND_LABEL = {KERNEL: "kernel function", USER: "user function", TRACEPOINT: "tracepoint", USDT: "USDT probe"}

MAX_SPEC_LEN = 4096
MAX_NAME_LEN = 512

# What each part may hold. Symbol names: C, C++ mangled, Go (dots), versioned (@).
_FUNC = re.compile(r"[A-Za-z0-9_.$@*]+")
_TP_PART = re.compile(r"[A-Za-z0-9_*-]+")
_PROBE = re.compile(r"[A-Za-z0-9_*]+")
_LIB = re.compile(r"[A-Za-z0-9_.+-]+")


class SpecError(ValueError):
    """A malformed spec; the message is one sentence meant for the user."""


@dataclass(frozen=True)
class FuncSpec:
    text: str  # the spec as given (stripped)
    kind: str  # KERNEL, USER, TRACEPOINT or USDT
    library: str = ""  # library name or binary path (USER, USDT)
    pattern: str = ""  # glob: a function, "category:event" or a USDT probe name

    @property
    def wildcard(self) -> bool:
        return "*" in self.pattern

    @property
    def is_path(self) -> bool:
        return "/" in self.library

    def regex(self) -> str:
        """An anchored regular expression for the pattern (every other character escaped)."""
        return glob_regex(self.pattern)

    def describe(self) -> str:
        what = KIND_LABEL[self.kind] + ("s" if self.wildcard else "")
        if self.kind in (USER, USDT):
            where = "binary" if self.is_path else "library"
            return f"{what} {self.pattern} in {where} {self.library}"
        return f"{what} {self.pattern}"


def glob_regex(pattern: str) -> str:
    return "^" + "".join(".*" if c == "*" else re.escape(c) for c in pattern) + "$"


def _check(part: str, rx: re.Pattern, what: str, spec: str) -> str:
    if not part:
        raise SpecError(f"missing {what} in {spec!r}")
    if len(part) > MAX_NAME_LEN:
        raise SpecError(f"{what} longer than {MAX_NAME_LEN} characters")
    if not rx.fullmatch(part):
        bad = next(c for c in part if not rx.fullmatch(c))
        raise SpecError(f"{what} {part!r} may not contain {bad!r}")
    return part


def _func(part: str, spec: str) -> str:
    _check(part, _FUNC, "function name", spec)
    return part


def _library(part: str, spec: str, what: str = "library") -> str:
    if not part:
        raise SpecError(f"missing {what} in {spec!r}")
    if part.startswith(("/", "./", "../")) or part in (".", ".."):
        if len(part) > MAX_SPEC_LEN:
            raise SpecError("path too long")
        return part
    return _check(part, _LIB, what, spec)


def _split_last(rest: str) -> tuple[str, str]:
    """``lib:func`` split at the last colon (a path may hold colons)."""
    if ":" not in rest:
        return rest, ""
    a, b = rest.rsplit(":", 1)
    return a, b


def parse_spec(text: str) -> FuncSpec:
    """Parses one target spec.

    Raises:
        SpecError: one sentence saying what is wrong.
    """
    if not isinstance(text, str):
        raise SpecError("a spec is text")
    spec = text.strip()
    if not spec:
        raise SpecError("empty spec: give a function, lib:func, t:category:event or u:lib:probe")
    if len(spec) > MAX_SPEC_LEN:
        raise SpecError(f"spec longer than {MAX_SPEC_LEN} characters")
    for ch in spec:
        o = ord(ch)
        if o < 0x20 or o == 0x7F or (0x80 <= o < 0xA0):
            raise SpecError(f"spec contains a control character (U+{o:04X})")
        if ch.isspace():
            raise SpecError("spec contains a space")
        if not ch.isprintable():
            raise SpecError(f"spec contains an invisible character (U+{o:04X})")
    shown = spec if len(spec) <= 80 else spec[:79] + "…"

    if spec.startswith(("/", "./", "../")):
        path, func = _split_last(spec)
        if not func:
            raise SpecError(f"a binary needs a function: {path}:FUNCTION")
        return FuncSpec(spec, USER, _library(path, shown, "binary"), _func(func, shown))

    head, sep, rest = spec.partition(":")
    if not sep:
        return FuncSpec(spec, KERNEL, "", _func(spec, shown))
    if head == "t":
        parts = rest.split(":")
        if len(parts) != 2:
            raise SpecError("a tracepoint is t:CATEGORY:EVENT")
        cat = _check(parts[0], _TP_PART, "tracepoint category", shown)
        ev = _check(parts[1], _TP_PART, "tracepoint event", shown)
        return FuncSpec(spec, TRACEPOINT, "", f"{cat}:{ev}")
    if head == "u":
        lib, probe = _split_last(rest)
        if not probe or not lib:
            raise SpecError("a USDT probe is u:LIBRARY:PROBE (or u:/path/to/binary:PROBE)")
        return FuncSpec(spec, USDT, _library(lib, shown), _check(probe, _PROBE, "USDT probe name", shown))
    if head == "k":
        if ":" in rest:
            raise SpecError("a kernel function is k:FUNCTION (no further ':')")
        return FuncSpec(spec, KERNEL, "", _func(rest, shown))
    if head == "p":
        lib, func = _split_last(rest)
        if ":" not in rest:
            # p:func is BCC's lib:func with lib "p"; be explicit instead
            raise SpecError("use p::FUNCTION for a kernel function or p:LIBRARY:FUNCTION")
        if not lib:
            return FuncSpec(spec, KERNEL, "", _func(func, shown))
        return FuncSpec(spec, USER, _library(lib, shown), _func(func, shown))
    if ":" in rest:
        raise SpecError(f"too many ':' in {shown!r} (forms: func, lib:func, t:cat:event, u:lib:probe)")
    return FuncSpec(spec, USER, _library(head, shown), _func(rest, shown))


def check_spec(text: str) -> str | None:
    """None when ``text`` parses, else the error sentence (for validation as you type)."""
    try:
        parse_spec(text)
    except SpecError as exc:
        return str(exc)
    return None
