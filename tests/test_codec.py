"""Snapshot (de)serialisation: every dataclass of a snapshot survives JSON and back."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Optional, Union

import pytest
from factories import exec_ev, exit_ev, proc, snapshot, spawn_sample
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ktop.snapshot as snapmod
from ktop.codec import DecodeError, decode
from ktop.registry import PROBES
from ktop.snapshot import (
    ProcessInfo,
    Snapshot,
    from_jsonable,
    snapshot_from_jsonable,
    to_jsonable,
    unknown_sections,
)

NoneType = type(None)
TEXT = st.text(max_size=12) | st.sampled_from(["", "a\udcff", "\x1b[31m", "tab\there", "ünï"])


def strategy(tp: Any, depth: int = 0) -> st.SearchStrategy:
    """Values of type ``tp`` built from its type hints (any dataclass, including later ones)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return st.none()
    if origin is Union:
        subs = [strategy(a, depth) for a in args if a is not NoneType]
        return st.one_of(*subs, *([st.none()] if NoneType in args else []))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy(args[0], depth), max_size=3).map(tuple)
        return st.tuples(*(strategy(a, depth) for a in args))
    if origin is list:
        return st.lists(strategy(args[0], depth), max_size=3)
    if origin is dict:
        return st.dictionaries(st.text(max_size=5) if args[0] is str else strategy(args[0], depth),
                               st.integers() | st.text(max_size=5) if args[1] is Any else strategy(args[1], depth),
                               max_size=2)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        kw = {}
        for f in dataclasses.fields(tp):
            if not f.init:
                continue
            h = hints[f.name]
            if tp is Snapshot and f.name == "focus":
                kw[f.name] = st.none() if depth else st.none() | strategy(Snapshot, depth + 1)
                continue
            kw[f.name] = strategy(h, depth + 1)
        return st.builds(tp, **kw)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(min_value=-(2**63), max_value=2**64)
    if tp is float:
        return st.floats(allow_nan=False)
    if tp is str:
        return TEXT
    raise AssertionError(f"no strategy for {tp!r}: extend tests/test_codec.py")


def all_dataclasses() -> list[type]:
    """Every dataclass a snapshot can hold (nested too)."""
    found: dict[type, None] = {}
    todo = [v for v in vars(snapmod).values() if dataclasses.is_dataclass(v) and isinstance(v, type)]
    while todo:
        cls = todo.pop()
        if cls in found:
            continue
        found[cls] = None
        for h in typing.get_type_hints(cls).values():
            stack = [h]
            while stack:
                t = stack.pop()
                if dataclasses.is_dataclass(t) and isinstance(t, type):
                    todo.append(t)
                stack.extend(typing.get_args(t))
    return sorted(found, key=lambda c: c.__name__)


def roundtrip(cls, obj):
    text = json.dumps(to_jsonable(obj))
    if cls is Snapshot:
        return snapshot_from_jsonable(json.loads(text))
    return from_jsonable(cls, json.loads(text))


def test_all_dataclasses_found():
    names = {c.__name__ for c in all_dataclasses()}
    assert {"Snapshot", "SpawnSample", "ExecEvent", "ExitEvent", "ProcessInfo", "HostInfo"} <= names


@pytest.mark.parametrize("cls", all_dataclasses(), ids=lambda c: c.__name__)
def test_roundtrip_every_dataclass(cls):
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                     HealthCheck.data_too_large])
    @given(strategy(cls))
    def check(obj):
        assert roundtrip(cls, obj) == obj

    check()


def test_roundtrip_realistic_snapshot():
    s = snapshot(processes=[proc(1, 0, "init"), proc(42, 1, "bash", cmdline=["bash", "-c", "x"])],
                 spawns=spawn_sample([exec_ev(100, 42, "ls", ["ls", "-l"]), exec_ev(101, retval=-2)],
                                     [exit_ev(100, code=0), exit_ev(7, code=None, sig=9, lifetime_ms=None)],
                                     forks=3, exec_count=1, exec_failures=1))
    back = roundtrip(Snapshot, s)
    assert back == s
    assert isinstance(back.processes, tuple) and isinstance(back.processes[1].cmdline, tuple)
    assert isinstance(back.system.load, tuple) and isinstance(back.time, float)


def test_focus_snapshot_roundtrips():
    inner = snapshot(time=5.0, processes=[proc(9)])
    s = dataclasses.replace(snapshot(processes=[proc(9), proc(10)]), focus=inner)
    assert roundtrip(Snapshot, s) == s


def test_unknown_keys_ignored_missing_defaults_filled():
    data = to_jsonable(proc(5))
    data["from_a_newer_ktop"] = [1, 2]
    assert from_jsonable(ProcessInfo, data) == proc(5)
    s = to_jsonable(snapshot())
    del s["schema"], s["extra"], s["spawns"]
    back = snapshot_from_jsonable(s)
    assert back.schema == snapmod.SCHEMA and back.extra == {} and back.spawns is None


def test_errors_name_the_place():
    data = to_jsonable(snapshot(processes=[proc(1), proc(2)]))
    data["processes"][1]["pid"] = "two"
    with pytest.raises(DecodeError) as e:
        snapshot_from_jsonable(data)
    assert str(e.value) == "processes[1].pid: expected an integer, got a string"
    data = to_jsonable(snapshot())
    del data["host"]["hostname"]
    with pytest.raises(DecodeError, match=r"host\.hostname: missing field of HostInfo"):
        snapshot_from_jsonable(data)
    with pytest.raises(DecodeError, match="expected an object"):
        snapshot_from_jsonable([1, 2])
    data = to_jsonable(snapshot())
    data["system"]["load"] = [1.0, 2.0]
    with pytest.raises(DecodeError, match=r"system\.load: expected 3 items"):
        snapshot_from_jsonable(data)


def test_section_of_a_newer_ktop_is_ignored_and_reported():
    data = to_jsonable(snapshot())
    data["gpu"] = {"whatever": 1}
    back = snapshot_from_jsonable(data)
    assert back == snapshot_from_jsonable(to_jsonable(snapshot()))
    assert unknown_sections(data) == ["gpu"]
    assert unknown_sections(to_jsonable(snapshot())) == []


def test_every_registry_section_is_a_typed_snapshot_field():
    hints = typing.get_type_hints(Snapshot)
    for probe in PROBES.values():
        tp = hints[probe.section]
        (cls,) = [a for a in typing.get_args(tp) if a is not type(None)]
        assert dataclasses.is_dataclass(cls), probe.name


def test_decode_plain_types():
    assert decode(dict[int, tuple[str, ...]], {"1": ["a"], "2": []}) == {1: ("a",), 2: ()}
    assert decode(Optional[float], 3) == 3.0 and isinstance(decode(float, 3), float)
    assert decode(Union[int, str], "x") == "x"
    with pytest.raises(DecodeError):
        decode(int, True)
    with pytest.raises(DecodeError):
        decode(bool, 1)
    assert decode(typing.Literal["a", "b"], "a") == "a"
    assert decode(float, float("inf")) == float("inf")
