"""eBPF probes: one adapter per probe, found through :mod:`ktop.registry`.

ctypes and BCC objects never leave this package: adapters return the plain
frozen dataclasses of :mod:`ktop.snapshot`.
"""
