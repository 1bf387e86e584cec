"""ktop.ui.driver: the input thread sleeps until input, or until a pending Escape times out."""

from textual._xterm_parser import XTermParser

from ktop.ui.driver import TICK_S, input_timeout


def test_no_pending_input_sleeps_for_good():
    assert input_timeout(XTermParser()) is None


def test_a_lone_escape_wakes_the_thread_for_its_timeout():
    parser = XTermParser()
    assert list(parser.feed("\x1b")) == []  # an Escape, or the start of a sequence: not known yet
    timeout = input_timeout(parser)
    assert timeout is not None and 0 <= timeout <= TICK_S
    parser._timeout_time = 0.0  # long past: the next tick delivers it
    assert input_timeout(parser) == 0
    assert [e.key for e in parser.tick()] == ["escape"]
    assert input_timeout(parser) is None


def test_a_whole_key_leaves_nothing_pending():
    parser = XTermParser()
    assert [e.key for e in parser.feed("q")] == ["q"]
    assert input_timeout(parser) is None
