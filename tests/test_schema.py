"""The shipped JSON Schemas (ktop/schemas/) describe what ktop writes: documents and recorded ticks."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (the test extra has it)")

from ktop import schema  # noqa: E402
from ktop.model import build_model, snapshot_document  # noqa: E402
from ktop.snapshot import LIVE, ProbeStatus, to_jsonable  # noqa: E402
from tests.ui import bio_fakes, fakes, funcs_fakes, syscalls_fakes  # noqa: E402


def _every_section():
    return replace(fakes.snapshot(spawn=fakes.spawn_sample()), bio=bio_fakes.tick_sample(1),
                   syscalls=syscalls_fakes.sample(), funcs=funcs_fakes.sample(),
                   probes=tuple(ProbeStatus(n, LIVE) for n in ("spawn", "funcs", "bio", "syscalls")))


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
