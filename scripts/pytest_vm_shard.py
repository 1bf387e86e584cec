"""A pytest plugin for `make test-vm`: with KTOP_VM_SHARD=K/N, keep every N-th test from the K-th.

N guests each run one shard of the suite, so that they share the host's cores
(a TCG guest keeps about one busy). Neighbouring tests are usually alike, so
taking every N-th balances the shards well.
"""

from __future__ import annotations

import os

import pytest


def parse_shard(text: str) -> tuple[int, int]:
    k, n = (int(x) for x in text.split("/"))
    if not 0 <= k < n:
        raise ValueError(f"shard {text!r}: need 0 <= K < N")
    return k, n


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    spec = os.environ.get("KTOP_VM_SHARD", "")
    if not spec:
        return
    k, n = parse_shard(spec)
    keep = [it for i, it in enumerate(items) if i % n == k]
    drop = [it for i, it in enumerate(items) if i % n != k]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
