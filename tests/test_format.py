"""ktop.model.format: numbers as htop shows them."""

from __future__ import annotations

import pytest

from ktop.model.format import duration_ms, errno_name, exit_text, human_bytes, retval_text, signal_name, uptime


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "-"),
        (0, "0"),
        (512, "512"),
        (1023, "1023"),
        (1024, "1.0K"),
        (1536, "1.5K"),
        (100 * 1024, "100K"),
        (150 * 1024**2, "150M"),
        (int(2.5 * 1024**3), "2.5G"),
        (3 * 1024**4, "3.0T"),
        (5000 * 1024**4, "5000T"),  # T is the largest unit
        (-1536, "-1.5K"),
    ],
)
def test_human_bytes(n, text):
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "-"),
        (0, "0ms"),
        (850, "850ms"),
        (999.4, "999ms"),
        (1000, "1.0s"),
        (2300, "2.3s"),
        (59_900, "59.9s"),
        (60_000, "1m00s"),
        (245_000, "4m05s"),
        (3_600_000, "1h00m"),
        ((3 * 3600 + 12 * 60 + 59) * 1000, "3h12m"),
    ],
)
def test_duration_ms(ms, text):
    assert duration_ms(ms) == text


@pytest.mark.parametrize(("s", "text"), [(0, "00:00"), (59, "00:00"), (61, "00:01"), (3661, "01:01"),
                                         (86400 + 3600 + 60, "1d 01:01"), (10 * 86400, "10d 00:00")])
def test_uptime(s, text):
    assert uptime(s) == text


def test_signal_and_errno_names():
    assert signal_name(9) == "SIGKILL"
    assert signal_name(15) == "SIGTERM"
    assert signal_name(200) == "SIG200"
    assert errno_name(2) == "ENOENT"
    assert errno_name(13) == "EACCES"
    assert errno_name(99999) == "E99999"


@pytest.mark.parametrize(
    ("code", "sig", "text"),
    [(None, None, ""), (0, None, "0"), (3, None, "3"), (-9, 9, "SIGKILL"), (-11, 11, "SIGSEGV")],
)
def test_exit_text(code, sig, text):
    assert exit_text(code, sig) == text


def test_retval_text():
    assert retval_text(0) == "0"
    assert retval_text(-2) == "-2 ENOENT"
    assert retval_text(-13) == "-13 EACCES"
    assert retval_text(-8) == "-8 ENOEXEC"
