"""Hand-made http samples (plain data, as the collector builds them) for model, schema and panel tests."""

from __future__ import annotations

from ktop.model import hist
from ktop.snapshot import HttpEncrypted, HttpGroup, HttpRequest, HttpSample

LAT_SLOTS = 32


def buckets(*values_us: float) -> tuple[int, ...]:
    return hist.histogram(values_us, LAT_SLOTS)


def group(pid, comm, side, method, path, status, lat_us: list[float]) -> HttpGroup:
    return HttpGroup(pid=pid, comm=comm, side=side, method=method, path=path, status=status, count=len(lat_us),
                     lat_buckets=buckets(*lat_us), lat_sum_ns=int(sum(lat_us) * 1000),
                     lat_max_ns=int(max(lat_us) * 1000), lat_min_ns=int(min(lat_us) * 1000),
                     lat_fine=hist.add_pairs((), [(hist.fine_index(int(v)), 1) for v in lat_us]))


def sample(interval_s: float = 1.0, t: float = 1_800_000_000.0) -> HttpSample:
    """A server answering 8 200s and 2 404s, its client, a hostile path, and a TLS client."""
    return HttpSample(
        interval_s=interval_s,
        groups=(group(100, "api-server", "server", "GET", "/users/{id}", 200, [50_000] * 8),
                group(100, "api-server", "server", "GET", "/nope", 404, [300, 400]),
                group(100, "api-server", "server", "POST", "/x\x1b[31m[red]", 500, [2000]),
                group(200, "loadgen", "client", "GET", "/users/{id}", 200, [51_000] * 8)),
        slowest=(HttpRequest(time=t, pid=100, comm="api-server", side="server", method="GET", path="/users/{id}",
                             status=200, latency_ns=52_000_000),
                 HttpRequest(time=t, pid=100, comm="api-server", side="server", method="POST",
                             path="/x\x1b[31m[red]", status=500, latency_ns=2_000_000)),
        encrypted=(HttpEncrypted(pid=300, comm="curl", side="client", kind="tls", count=1),),
        requests_seen=20)
