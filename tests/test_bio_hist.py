"""Log2 histogram and percentile maths (ktop.model.hist) against known distributions."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ktop.model import hist

N = 28


def exact_percentile(values, p):
    """Nearest-rank percentile of raw values."""
    v = sorted(values)
    return v[max(1, math.ceil(p / 100 * len(v))) - 1]


def test_slots_follow_bcc_bit_length():
    assert [hist.slot_of(v, N) for v in (0, 1, 2, 3, 4, 7, 8, 1023, 1024)] == [0, 1, 2, 2, 3, 3, 4, 10, 11]
    assert hist.slot_of(-5, N) == 0
    assert hist.slot_of(2 ** 40, N) == N - 1  # the overflow slot
    assert hist.slot_bounds(0) == (0.0, 0.0)
    assert hist.slot_bounds(1) == (1.0, 1.0)
    assert hist.slot_bounds(4) == (8.0, 15.0)
    assert hist.slot_bounds(N - 1, N) == (float(2 ** (N - 2)), math.inf)


def test_labels():
    assert [hist.slot_label(i, N) for i in (0, 1, 2, 3, 10, 11, 12, 21)] == \
        ["0", "1", "2-3", "4-7", "512-1023", "1K-2K", "2K-4K", "1M-2M"]
    assert hist.slot_label(N - 1, N) == "64M+"


def test_buckets_json_lists_non_empty_slots_with_their_bounds():
    """The document's histograms: whole-unit bounds, low <= v < high, no upper bound on the overflow slot."""
    assert hist.buckets_json((3, 0, 2, 0, 5), "ns") == [
        {"low_ns": 0, "high_ns": 1, "count": 3}, {"low_ns": 2, "high_ns": 4, "count": 2},
        {"low_ns": 8, "high_ns": None, "count": 5}]
    values = [0, 1, 5, 7, 100, 4095, 5000]
    for b in hist.buckets_json(hist.histogram(values, 13), "us"):
        inside = [v for v in values if b["low_us"] <= v and (b["high_us"] is None or v < b["high_us"])]
        assert len(inside) == b["count"]
    assert hist.buckets_json((0, 0), "us") == []


def test_empty_histogram_has_no_percentiles():
    assert hist.percentile((), 50) is None
    assert hist.percentile((0,) * N, 99) is None
    assert hist.percentiles((0,) * N) == (None, None, None)
    assert hist.mean_from((0,) * N) is None
    assert hist.used_range([(0,) * N, ()]) is None


def test_percentile_rejects_nonsense():
    with pytest.raises(ValueError):
        hist.percentile((1,), 0)
    with pytest.raises(ValueError):
        hist.percentile((1,), 101)


def test_one_bucket():
    # 100 values, all in slot 7 ([64, 127]): every percentile lies inside it
    h = hist.histogram([100] * 100, N)
    assert h[7] == 100 and hist.total(h) == 100
    for p in (1, 50, 95, 99, 100):
        v = hist.percentile(h, p)
        assert 64 <= v <= 127
    # interpolation: rank r of n lands at low + (high-low) * r/n
    assert hist.percentile(h, 50) == pytest.approx(64 + 63 * 50 / 100)
    assert hist.percentile(h, 100) == 127
    # with the exact max known, nothing exceeds it
    assert hist.percentile(h, 99, max_value=100) == 100
    assert hist.percentile(h, 50, max_value=100) == pytest.approx(64 + 63 * 0.5)


def test_single_value_and_zero():
    assert hist.percentile(hist.histogram([0], N), 50) == 0
    assert hist.percentile(hist.histogram([1], N), 99) == 1
    h = hist.histogram([0, 0, 0, 5], N)
    assert hist.percentile(h, 50) == 0
    assert 4 <= hist.percentile(h, 99) <= 7


def test_overflow_bucket():
    big = 2 ** 30
    h = hist.histogram([10] * 90 + [big] * 10, N)
    assert h[N - 1] == 10
    # p95 falls in the overflow slot: without a max it is the slot's lower bound ...
    assert hist.percentile(h, 95) == 2 ** (N - 2)
    # ... with the max known it interpolates up to the max, never beyond
    v = hist.percentile(h, 95, max_value=big)
    assert 2 ** (N - 2) < v <= big
    assert hist.percentile(h, 100, max_value=big) == big
    assert hist.percentile(h, 50, max_value=big) <= 15  # the body is untouched


def test_bimodal_known_distribution():
    # 90 fast reads (~50 µs) and 10 slow ones (~5 ms): p50 fast, p95 and p99 slow
    h = hist.histogram([50] * 90 + [5000] * 10, N)
    p50, p95, p99 = hist.percentiles(h, (50, 95, 99), max_value=5000)
    assert 32 <= p50 <= 63
    assert 4096 <= p95 <= 5000
    assert 4096 <= p99 <= 5000
    # p90 is still the last fast value
    assert 32 <= hist.percentile(h, 90) <= 63


@pytest.mark.parametrize("seed", range(5))
def test_lognormal_within_one_slot_of_truth(seed):
    rnd = random.Random(seed)
    values = [int(rnd.lognormvariate(6, 1.2)) for _ in range(5000)]
    h = hist.histogram(values, N)
    assert hist.total(h) == len(values)
    for p in (50, 90, 95, 99, 99.9):
        truth = exact_percentile(values, p)
        est = hist.percentile(h, p, max_value=max(values))
        # the estimate lies in the same slot as the true value
        assert hist.slot_of(est, N) == hist.slot_of(truth, N), (p, truth, est)


@given(st.lists(st.integers(min_value=0, max_value=2 ** 34), min_size=1, max_size=300),
       st.sampled_from([1, 25, 50, 75, 90, 95, 99, 99.9, 100]))
def test_percentile_is_in_the_slot_of_the_exact_value(values, p):
    h = hist.histogram(values, N)
    truth = exact_percentile(values, p)
    est = hist.percentile(h, p, max_value=max(values))
    lo, hi = hist.slot_bounds(hist.slot_of(truth, N), N)
    assert lo <= est <= min(hi, max(values))


@given(st.lists(st.integers(min_value=0, max_value=2 ** 20), min_size=1, max_size=200))
def test_percentiles_are_monotonic(values):
    h = hist.histogram(values, N)
    ps = [hist.percentile(h, p, max_value=max(values)) for p in (10, 50, 90, 95, 99, 100)]
    assert ps == sorted(ps)
    assert ps[-1] == max(values) or hist.slot_of(ps[-1], N) == hist.slot_of(max(values), N)


def test_add_sub_and_range():
    a = (1, 2, 3)
    b = (0, 1, 0, 4)
    assert hist.add(a, b) == (1, 3, 3, 4)
    assert hist.sub(hist.add(a, b), b) == (1, 2, 3, 0)
    assert hist.sub((1,), (5, 5)) == (0, 0)  # never negative
    assert hist.used_range([(0, 0, 1), (0, 2, 0, 0, 3)]) == (1, 4)


def test_mean_from_midpoints():
    assert hist.mean_from(hist.histogram([100] * 4, N)) == pytest.approx((64 + 127) / 2)
