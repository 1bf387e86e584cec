"""ktop.model.text: untrusted strings become inert, visible text."""

from __future__ import annotations

import io
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from ktop.model.text import clean, join_argv, safe_text


def _bad(ch: str) -> bool:
    return ch == "\x1b" or unicodedata.category(ch) in ("Cc", "Cf")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\x1b[31mred", "\u241b[31mred"),  # ESC / CSI -> control picture
        ("\x1b]0;pwned\x07", "\u241b]0;pwned\u2407"),  # OSC terminated by BEL
        ("\x1b]8;;http://x\x1b\\", "\u241b]8;;http://x\u241b\\"),  # OSC 8 hyperlink, ST
        ("bell\x07", "bell\u2407"),
        ("\x9b2J", "\ufffd2J"),  # C1 CSI
        ("\x85next", "\ufffdnext"),  # C1 NEL
        ("a\x7fb", "a\u2421b"),  # DEL
        ("abc\u202edef", "abc\ufffddef"),  # RIGHT-TO-LEFT OVERRIDE
        ("a\u2066b\u2069", "a\ufffdb\ufffd"),  # bidi isolates
        ("zero\u200bwidth", "zero\ufffdwidth"),  # ZWSP (Cf)
        ("line\u2028sep", "line\ufffdsep"),  # LINE SEPARATOR (Zl)
        ("l1\nl2", "l1\u240al2"),
        ("a\tb", "a\u2409b"),
        ("cr\r", "cr\u240d"),
        ("nul\x00", "nul\u2400"),
        ("plain ascii", "plain ascii"),
        ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),  # printable non-ASCII kept
        ("", ""),
    ],
)
def test_clean_replaces_controls(raw, expected):
    assert clean(raw) == expected


def test_clean_invalid_utf8_bytes_are_shown_escaped():
    assert clean(b"ok\xff\xfe") == "ok\\xff\\xfe"
    assert clean(b"\x1b[2J") == "\u241b[2J"
    assert clean("caf\u00e9".encode()) == "caf\u00e9"


def test_kernel_bytes_keep_every_byte_and_json_tells_them_from_a_backslash():
    """issue 18: invalid UTF-8 in JSON was indistinguishable from the literal text \\xff."""
    import json

    from ktop.snapshot import kernel_text

    raw, literal = kernel_text(b"a\xff"), kernel_text(b"a\\xff")
    assert raw != literal
    assert json.dumps(raw) == '"a\\udcff"' and json.dumps(literal) == '"a\\\\xff"'
    assert json.loads(json.dumps(raw)).encode("utf-8", "surrogateescape") == b"a\xff"
    assert clean(raw) == clean(literal) == "a\\xff"  # on screen both read \xff: the JSON says which
    assert clean(kernel_text(b"\xed\xa0\x80")) == "\\xed\\xa0\\x80"  # a UTF-8-encoded surrogate is invalid too


def test_clean_none_is_empty():
    assert clean(None) == ""
    assert safe_text(None).plain == ""


def test_clean_limit_marks_the_cut():
    assert clean("abcdef", 4) == "abc\u2026"
    assert len(clean("abcdef", 4)) == 4
    assert clean("abcd", 4) == "abcd"
    # the limit counts the replaced characters, not the raw ones
    assert clean("\x1b\x1b\x1b\x1b\x1b", 3) == "\u241b\u241b\u2026"


@pytest.mark.parametrize("markup", ["[@click=app.quit]x", "[bold]", "[/", "[/bold]", "[red]a[/red]",
                                    "[link=http://evil]x[/link]", "\\[escaped]", ":smile:"])
def test_safe_text_never_parses_markup(markup):
    t = safe_text(markup)
    assert isinstance(t, Text)
    assert t.plain == markup
    assert t.spans == []


def test_safe_text_style_applies_to_whole_text_only():
    t = safe_text("[bold]x\x1b", style="red")
    assert t.plain == "[bold]x\u241b"
    assert str(t.style) == "red"
    assert t.spans == []


def test_safe_text_renders_without_raw_escape():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system=None, width=200)
    evil = "\x1b]0;title\x07[@click=app.quit]quit\x9b31m\u202e"
    console.print(safe_text(evil))
    out = buf.getvalue()
    assert "\x1b" not in out
    assert "\x9b" not in out
    assert "[@click=app.quit]quit" in out


@given(st.text())
def test_clean_output_has_no_control_or_format_chars(s):
    out = clean(s)
    assert not any(_bad(ch) for ch in out), repr(out)


@given(st.text(alphabet=st.characters(exclude_categories=())))  # surrogates too
def test_clean_any_codepoint_including_surrogates(s):
    out = clean(s)
    assert not any(_bad(ch) for ch in out)
    assert not any(unicodedata.category(ch) == "Cs" for ch in out)


@given(st.binary())
def test_clean_any_bytes(b):
    out = clean(b)
    assert not any(_bad(ch) for ch in out)


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_clean_limit_property(s, limit):
    out = clean(s, limit)
    assert len(out) <= limit
    full = clean(s)
    if len(full) <= limit:
        assert out == full
    else:
        assert out.endswith("\u2026") and full.startswith(out[:-1])


@given(st.text())
def test_clean_keeps_length_and_printables(s):
    out = clean(s)
    assert len(out) == len(s)  # one placeholder per replaced character
    for a, b in zip(s, out):
        if a.isprintable() and unicodedata.category(a) not in ("Cf", "Co", "Cn", "Zl", "Zp"):
            assert a == b


def test_join_argv_quotes_what_a_shell_would_split():
    assert join_argv(["ls", "-l", "/tmp"]) == "ls -l /tmp"
    assert join_argv(["echo", "a b"]) == "echo 'a b'"
    assert join_argv(["x", ""]) == "x ''"
    assert join_argv(["say", "it's"]) == "say 'it'\\''s'"
    assert join_argv([]) == ""
