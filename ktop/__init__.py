"""ktop: a top-like terminal dashboard fed by eBPF probes."""

__version__ = "0.1.0"
