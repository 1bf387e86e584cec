"""``KTOP_TEST_SHARD=I/N`` runs every Nth selected test from the I-th (0-based): scripts/test-vm.sh
boots N guests at once on a machine with 2N CPUs or more (a guest keeps two busy), each one shard."""

from __future__ import annotations

import os

import pytest


def shard_of(text: str) -> tuple[int, int]:
    """``"I/N"`` as (I, N), 0 <= I < N; ValueError otherwise."""
    i, _, n = text.partition("/")
    i, n = int(i), int(n)
    if not 0 <= i < n:
        raise ValueError(f"shard {text!r}: want I/N with 0 <= I < N")
    return i, n


@pytest.hookimpl(trylast=True)  # after -m and -k: the shards split what is selected
def pytest_collection_modifyitems(config, items):
    spec = os.environ.get("KTOP_TEST_SHARD")
    if not spec:
        return
    i, n = shard_of(spec)
    keep = [t for k, t in enumerate(items) if k % n == i]
    gone = [t for k, t in enumerate(items) if k % n != i]
    if gone:
        config.hook.pytest_deselected(items=gone)
    items[:] = keep
