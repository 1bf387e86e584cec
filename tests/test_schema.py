"""The shipped JSON Schemas (ktop/schemas/) describe what ktop writes: documents and recorded ticks."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (the test extra has it)")

from ktop import schema  # noqa: E402
from ktop.model import build_model, snapshot_document  # noqa: E402
from ktop.snapshot import LIVE, ProbeStatus, to_jsonable  # noqa: E402
from tests.ui import bio_fakes, fakes, funcs_fakes, http_fakes, net_fakes, profile_fakes, sched_fakes, syscalls_fakes  # noqa: E402


def _every_section():
    return replace(fakes.snapshot(spawn=fakes.spawn_sample()), bio=bio_fakes.tick_sample(1),
                   syscalls=syscalls_fakes.sample(), funcs=funcs_fakes.sample(), net=net_fakes.sample(),
                   sched=sched_fakes.sample(), profile=profile_fakes.sample(), http=http_fakes.sample(),
                   probes=tuple(ProbeStatus(n, LIVE) for n in ("spawn", "funcs", "bio", "syscalls", "net",
                                                               "sched", "profile", "http")))


def _check(name: str, data) -> None:
    s = schema.load(name)
    jsonschema.Draft202012Validator.check_schema(s)
    jsonschema.Draft202012Validator(s).validate(json.loads(json.dumps(data)))


def test_the_document_fits_its_schema_with_every_probe_and_with_none():
    _check("snapshot", snapshot_document(build_model(None, _every_section()), 1.0))
    _check("snapshot", snapshot_document(build_model(None, fakes.snapshot()), 1.0))


def test_a_document_that_breaks_the_contract_does_not_fit():
    doc = snapshot_document(build_model(None, _every_section()), 1.0)
    doc["processes"][0]["pid"] = "1"
    with pytest.raises(jsonschema.ValidationError):
        _check("snapshot", doc)


def test_a_recorded_tick_fits_its_schema_and_the_schema_is_current():
    _check("tick", to_jsonable(_every_section()))
    assert schema.load("tick") == json.loads(json.dumps(schema.tick_schema())), "run scripts/gen-docs.py"


# Numbers that have no unit to say: ids, codes and versions, the load average (dimensionless), and
# counts, named for what they count. Anything else says its unit, in its name (schema.UNIT_SUFFIXES)
# or, in the tick whose names stay as in the code, in its description (schema.TICK_UNITS).
UNITLESS = {
    "schema", "pid", "ppid", "uid", "nr", "id", "target", "retval", "exit_code", "exit_signal", "nice", "load",
    "count", "counters", "errnos", "errors", "lost", "run_count", "cpu_count", "threads", "open_files",
    "execs", "exec_count", "exec_failures", "forks", "exits", "exit_count", "args_truncated", "pending_full",
    "tracked_full", "ios", "reads", "writes", "others", "queue_count", "issues", "completions", "no_start",
    "not_issued", "inflight_full", "diskop_full", "proc_full", "unattributed", "rekeyed", "rq_merged",
    "filtered", "expired", "partial", "missed", "unseen", "attached", "matched", "cap", "map_full",
    "rows_dropped", "calls", "timed", "start_full", "procs_full", "errs_full", "bad_nr", "pairs_dropped",
    "processes_dropped", "tx_calls", "rx_calls", "sport", "dport", "port", "family", "closed", "connects", "accepts",
    "open_total", "connect_failed", "retransmits", "resets_sent", "resets_received", "conns_full",
    "cpu", "runq_count", "switches", "wakeups", "runq_waits", "tasks_full", "tgid", "prev_pid", "prev_tgid",
    "slow_waits", "slow_lost", "blocks", "stacks_kept", "off_blocks", "off_full", "stack_lost", "stacks_unread",
    "cpus", "samples", "idle_samples", "self_samples", "total_samples", "kernel_frames", "counts_full",
    "user_stack_lost", "kernel_stack_lost", "user_stack_none", "kernel_stack_none",
    "cgroup_id",  # an id (an inode number)
    "requests", "errors_4xx", "errors_5xx", "requests_seen", "tls_connections", "h2_connections", "unpaired",
    "unanswered", "threads_full", "cut", "groups_dropped", "status", "statuses", "methods",
}


def _resolve(s: dict, root: dict) -> dict:
    ref = s.get("$ref", "")
    return _resolve(root["$defs"][ref.rsplit("/", 1)[1]], root) if ref.startswith("#/$defs/") else s


def _numeric(s: dict, root: dict) -> bool:
    """A number, or a nullable one, an array of them, or a map to them."""
    s = _resolve(s, root)
    if s.get("type") in ("integer", "number"):
        return True
    parts = s.get("anyOf", []) + s.get("prefixItems", [])
    if isinstance(s.get("items"), dict):
        parts.append(s["items"])
    if isinstance(s.get("additionalProperties"), dict) and not s.get("properties"):
        parts.append(s["additionalProperties"])
    return any(_numeric(p, root) for p in parts)


def _properties(node):
    """(name, schema) of every property anywhere in a schema, $defs included."""
    if isinstance(node, dict):
        yield from (node.get("properties") or {}).items()
        for v in node.values():
            yield from _properties(v)
    elif isinstance(node, list):
        for v in node:
            yield from _properties(v)


def _without_unit(root: dict) -> set[str]:
    return {name for name, sub in _properties(root)
            if _numeric(sub, root) and name not in UNITLESS and name != "bytes"
            and not name.endswith(schema.UNIT_SUFFIXES) and "Unit: " not in sub.get("description", "")}


@pytest.mark.parametrize("name", ["snapshot", "tick"])
def test_every_number_says_its_unit(name):
    """A field that will be added to the document or the tick cannot leave its unit out."""
    assert _without_unit(schema.load(name)) == set(), "name it with its unit, or give the tick's a Unit: description"


def test_the_unit_check_sees_a_number_without_a_unit_wherever_it_is():
    s = {"$defs": {"h": {"type": "array", "items": {"type": "object", "properties": {"low": {"type": "integer"}}}}},
         "properties": {"latency": {"anyOf": [{"type": "number"}, {"type": "null"}]}, "hist": {"$ref": "#/$defs/h"},
                        "slots": {"type": "array", "items": {"type": "integer"}}, "pid": {"type": "integer"},
                        "wait_ns": {"type": "integer"}, "rss": {"type": "integer", "description": "Unit: bytes."}}}
    assert _without_unit(s) == {"latency", "low", "slots"}


def test_the_tick_unit_table_names_real_fields_without_a_unit_suffix():
    fields = {n for _, d in schema.tick_schema()["$defs"].items() for n in d.get("properties", {})}
    names = {k.rsplit(".", 1)[-1] for k in schema.TICK_UNITS}
    assert names <= fields and not any(n.endswith(schema.UNIT_SUFFIXES) for n in names)
