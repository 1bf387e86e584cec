"""JSON Schemas of what ktop writes: a recorded tick (made here from the Snapshot dataclasses' type
hints, as the codec reads them back) and the ``ktop snapshot --json`` document (written by hand:
``ktop/schemas/snapshot.schema.json``). Both ship in the wheel; ``scripts/gen-docs.py`` writes
``ktop/schemas/tick.schema.json`` and ``tests/test_schema.py`` checks real output against both.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from importlib import resources
from typing import Any, Union, get_args, get_origin

from ktop.snapshot import SCHEMA, Snapshot

try:
    from types import UnionType
except ImportError:  # pragma: no cover - Python 3.9
    UnionType = None  # type: ignore[assignment,misc]


# A number with a unit says it at the end of its name; wall-clock timestamps are unix seconds,
# ``_unix_s``. The snapshot document follows this everywhere (its names are its interface).
UNIT_SUFFIXES = ("_unix_s", "_s", "_ms", "_us", "_ns", "_bytes", "_percent", "_per_s")

# The recorded tick keeps the dataclasses' names (internal to record/replay: renaming would ripple
# through the code for no reader), so its numbers whose name does not say the unit get it here, the
# one table: field name, or "Class.field" where a name means different things, -> unit.
_LOG2 = "(ktop/model/hist.py: slot 0 holds 0, slot i >= 1 holds [2^(i-1), 2^i), the last slot also all above)"
TICK_UNITS = {
    "time": "unix seconds (wall clock)",
    "boot_time": "unix seconds",
    "start_time": "unix seconds",
    "cpu_total": "percent (the mean of cpu_percent)",
    "mem_total": "bytes",
    "mem_used": "bytes",
    "mem_available": "bytes",
    "swap_total": "bytes",
    "swap_used": "bytes",
    "rss": "bytes",
    "shared": "bytes",
    "swap": "bytes",
    "lat_buckets": f"counts per log2 slot of microseconds {_LOG2}",
    "queue_buckets": f"counts per log2 slot of microseconds {_LOG2}",
    "connect_buckets": f"counts per log2 slot of microseconds {_LOG2}",
    "hist": f"counts per log2 slot of nanoseconds {_LOG2}",
    "runq_buckets": f"counts per log2 slot of microseconds {_LOG2}",
    "hz": "samples a second on each CPU",
    "Flag.start": "unix seconds (wall clock)",
    "Flag.end": "unix seconds (wall clock)",
    "Flag.value": "the flag's unit field (us, /s, B/s or events)",
    "Flag.usual": "the flag's unit field (us, /s, B/s or events)",
    "Flag.peak": "the flag's unit field (us, /s, B/s or events)",
    "Flag.score": "none (the figure over its threshold; flags are ordered by it)",
    "lat_fine": "(index, count) pairs of a fine histogram of microseconds: each log2 slot in 8 linear parts "
                "(ktop.model.hist.fine_index)",
}


def _described(s: dict, cls: str, name: str) -> dict:
    unit = TICK_UNITS.get(f"{cls}.{name}", TICK_UNITS.get(name))
    return {**s, "description": f"Unit: {unit}."} if unit else s


def _type(tp: Any, defs: dict) -> dict:
    if tp is Any:
        return {}
    if tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    origin, args = get_origin(tp), get_args(tp)
    if origin is Union or (UnionType is not None and origin is UnionType):
        return {"anyOf": [_type(a, defs) for a in args]}
    if origin in (tuple, list):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return {"type": "array", "prefixItems": [_type(a, defs) for a in args],
                    "minItems": len(args), "maxItems": len(args)}
        return {"type": "array", "items": _type(args[0], defs) if args else {}}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type(args[1], defs) if args else {}}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # a placeholder: Snapshot holds Snapshot (focus)
            hints = typing.get_type_hints(tp)
            fields = [f for f in dataclasses.fields(tp) if f.init]
            defs[name] = {
                "type": "object",
                "properties": {f.name: _described(_type(hints[f.name], defs), name, f.name) for f in fields},
                "required": [f.name for f in fields if f.default is dataclasses.MISSING
                             and f.default_factory is dataclasses.MISSING],
            }
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no JSON Schema for {tp!r}")


def tick_schema() -> dict:
    """A recording's snapshot line (``ktop record``): additive changes keep ``schema``."""
    defs: dict = {}
    root = _type(Snapshot, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://ktop.invalid/schemas/tick-{SCHEMA}.schema.json",
            "title": f"ktop recorded tick (schema {SCHEMA})",
            "description": "One line of a ktop recording after the header: a Snapshot (ktop/snapshot.py), "
                           "its fields' names as in the code (the snapshot document renames them to say "
                           "their units). A number whose name does not end in its unit (_s, _ms, _us, _ns, "
                           "_bytes, _percent, _per_s) says it in its description, or is a count or an id. "
                           "Text from the kernel keeps every byte: a byte that is not UTF-8 is a lone "
                           "surrogate \\udcNN.",
            "$defs": defs, **root}


def load(name: str) -> dict:
    """A shipped schema: ``tick`` or ``snapshot``."""
    return json.loads(resources.files("ktop").joinpath("schemas", f"{name}.schema.json").read_text())
