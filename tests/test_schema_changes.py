"""When Kaleyra changes its API: ``schema_changes`` keep, drop and fail, in process.

Run 2 of the issue's scenario, as one answer: two new fields (a string and a
nested object) and ``carrierid`` as a word. The end-to-end runs through the real
loaders are in tests/test_history_e2e.py.
"""

from __future__ import annotations

import json
import typing as t

import jsonschema
import pytest

from tap_kaleyra_rcs.drift import (
    CHANGED_TYPE,
    MISSING,
    NEW,
    NOT_EPOCH_MILLISECONDS,
    DriftPolicy,
    SchemaChange,
    describe,
    drift_policy,
    new_field_error,
)
from tap_kaleyra_rcs.errors import MalformedResponse
from tap_kaleyra_rcs.records import build_records
from tests.support import run_tap

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.support import RunningSandbox, TapRun

AGENT = "48901"
DRIFT = {
    "agents": 2,
    "testers_per_agent": 3,
    "agent_overrides": {
        AGENT: {
            "extra_fields": {"brand_id": "b-7", "device": {"model": "X1", "os": ["rcs", 2]}},
            "set": {"1": {"carrierid": "T-Mobile"}},
        }
    },
}
NEW_AND_CHANGED = 3
"""brand_id and device are new, carrierid changed type."""


def _run(sandbox: t.Callable[..., RunningSandbox], tmp_path: Path, **config: t.Any) -> TapRun:
    api = sandbox(DRIFT)
    return run_tap(api.config(**config), tmp_path)


def _warnings(run: TapRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if "WARNING" in line]


def _valid_against_the_schema_sent(run: TapRun) -> None:
    schemas = {m["stream"]: m["schema"] for m in run.of_type("SCHEMA")}
    for message in run.of_type("RECORD"):
        jsonschema.validate(message["record"], schemas[message["stream"]])


def test_keep_loads_every_value_beside_the_typed_columns_and_the_run_goes_on(sandbox, tmp_path):
    api = sandbox(DRIFT)
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr[-2000:]
    _valid_against_the_schema_sent(run)
    drifted = [r for r in run.records if r["agent_no"] == AGENT]
    assert [json.loads(r["drifted_fields"]) for r in drifted] == [
        {"brand_id": "b-7", "device": {"model": "X1", "os": ["rcs", 2]}},
        {"carrierid": "T-Mobile", "brand_id": "b-7", "device": {"model": "X1", "os": ["rcs", 2]}},
        {"brand_id": "b-7", "device": {"model": "X1", "os": ["rcs", 2]}},
    ]
    assert drifted[1]["carrierid"] is None, "a typed column never holds another type"
    assert all("drifted_fields" not in r for r in run.records if r["agent_no"] != AGENT)
    observed = [o for o in run.records_of("testers_observations") if o["agent_no"] == AGENT]
    assert [o["drifted_fields"] for o in observed] == [r["drifted_fields"] for r in drifted]
    # From what was loaded, each answer can be rebuilt field for field.
    for record, sent in zip(drifted, api.scenario.testers(AGENT), strict=True):
        typed = {k: v for k, v in record.items() if k not in {"drifted_fields", "created_at"}}
        rebuilt = {**typed, **json.loads(record["drifted_fields"])}
        assert rebuilt == sent


def test_each_change_is_named_once_per_run_and_counted(sandbox, tmp_path):
    run = _run(sandbox, tmp_path)

    named = [w for w in _warnings(run) if "schema_changes: keep" in w]
    assert len(named) == NEW_AND_CHANGED
    assert any(
        w.endswith(
            f"agent {AGENT}: field 'carrierid' changed type: str 'T-Mobile', expected a whole "
            "number (ASCII digits); its value is kept in drifted_fields and 'carrierid' is null "
            "(schema_changes: keep; docs/streams.md, When Kaleyra changes its API)"
        )
        for w in named
    )
    assert any(
        f"agent {AGENT}: new field 'device' (dict); kept in drifted_fields" in w for w in named
    )
    assert f"; {NEW_AND_CHANGED} schema changes (named above)" in run.stderr
    (record,) = run.records_of("testers_sync_runs")
    assert record["schema_changes"] == NEW_AND_CHANGED


def test_drop_leaves_them_out_and_the_run_goes_on(sandbox, tmp_path):
    run = _run(sandbox, tmp_path, schema_changes="drop")

    assert run.returncode == 0, run.stderr[-2000:]
    assert all("drifted_fields" not in r for r in run.records)
    assert [r["carrierid"] for r in run.records if r["agent_no"] == AGENT][1] is None
    named = [w for w in _warnings(run) if "schema_changes: drop" in w]
    assert len(named) == NEW_AND_CHANGED
    assert all("left out" in w for w in named)


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ({"extra_fields": {"brand_id": "b-7"}}, "tester #0 has a field 'brand_id' the schema"),
        ({"set": {"0": {"carrierid": "T-Mobile"}}}, "tester #0 field 'carrierid' is str"),
    ],
)
def test_fail_stops_the_run_in_one_line(sandbox, tmp_path, override, says):
    api = sandbox({"agents": 2, "agent_overrides": {AGENT: override}})
    run = run_tap(api.config(schema_changes="fail", max_concurrent_agents=1), tmp_path)

    assert run.returncode == 1
    assert run.last_line.startswith(f"tap-kaleyra-rcs: error: agent {AGENT}: {says}")
    assert "schema_changes" in run.last_line
    assert "Traceback" not in run.stderr
    assert run.records_of("testers_sync_runs") == []


def test_a_documented_field_missing_from_a_whole_answer_is_named(sandbox, tmp_path):
    unset = {str(i): ["carrierid"] for i in range(3)}
    api = sandbox(
        {"agents": 1, "testers_per_agent": 3, "agent_overrides": {"48900": {"unset": unset}}}
    )
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0
    assert any(
        "agent 48900: documented field 'carrierid' is missing from every tester of the answer "
        "(renamed?)" in w
        for w in _warnings(run)
    )
    assert run.records_of("testers_sync_runs")[0]["schema_changes"] == 1


def test_a_stream_map_drops_a_new_field_by_name(sandbox, tmp_path):
    maps = {"testers": {"brand_id": "__NULL__"}}
    run = _run(sandbox, tmp_path, stream_maps=maps)

    assert run.returncode == 0, run.stderr[-2000:]
    kept = [json.loads(r["drifted_fields"]) for r in run.records if r["agent_no"] == AGENT]
    assert all("brand_id" not in d and "device" in d for d in kept)
    assert all(
        "brand_id" not in (o.get("drifted_fields") or "")
        for o in run.records_of("testers_observations")
    )


def test_else_null_and_deselection_leave_drifted_fields_out(sandbox, tmp_path):
    only_ids = {"testers": {"id": "id", "__else__": "__NULL__"}}
    run = _run(sandbox, tmp_path, stream_maps=only_ids)

    assert run.returncode == 0, run.stderr[-2000:]
    assert {tuple(r) for r in run.records} == {("id",)}


def test_the_hashed_phones_variant_leaves_drift_out_as_it_says():
    import yaml  # noqa: PLC0415 - only this test reads meltano.yml

    from tests.warehouses import ROOT  # noqa: PLC0415

    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (variant,) = [
        e for e in project["plugins"]["extractors"] if e["name"] == "tap-kaleyra-rcs--hashed-phones"
    ]
    assert variant["config"]["schema_changes"] == "drop"


def test_a_catalog_that_deselects_drifted_fields_leaves_every_drifted_value_out(sandbox, tmp_path):
    """What Meltano's ``select: ["testers.*", "!testers.drifted_fields"]`` writes to the catalog."""
    api = sandbox(DRIFT)
    discovered = run_tap(api.config(), tmp_path, "--discover")
    catalog = json.loads(discovered.stdout)
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == ["properties", "drifted_fields"]:
                entry["metadata"]["selected"] = False
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = True
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))

    run = run_tap(api.config(), tmp_path, "--catalog", str(tmp_path / "catalog.json"))

    assert run.returncode == 0, run.stderr[-2000:]
    assert all("drifted_fields" not in r for r in run.records)
    assert [r["carrierid"] for r in run.records if r["agent_no"] == AGENT][1] is None


def test_only_fields_mapped_to_null_are_left_out_of_drifted_fields():
    maps = {
        "testers": {
            "brand_id": "__NULL__",
            "device": None,
            "__else__": "__NULL__",
            "x": "md5(x)",
            "__alias__": "t",
        }
    }
    assert drift_policy("keep", {"stream_maps": maps}, hashes_phones=False).left_out == {
        "brand_id",
        "device",
    }
    assert drift_policy("keep", {}, hashes_phones=True).left_out == {"phoneno"}


def test_a_kept_value_is_json_text_as_sent_unicode_included():
    tester = {"id": "a", "agent_no": "5", "brand": "éb", "carrierid": "Ⅻ"}
    (record,) = build_records("5", [tester]).records

    assert record["drifted_fields"] == '{"brand":"éb","carrierid":"Ⅻ"}'


def test_each_kind_of_change_is_described_in_full():
    keep, drop = DriftPolicy("keep"), DriftPolicy("drop")
    tail = "(schema_changes: drop; docs/streams.md, When Kaleyra changes its API)"
    assert describe(SchemaChange("brand_id", NEW), "str", "7", drop) == (
        f"agent 7: new field 'brand_id' (str); left out {tail}"
    )
    assert describe(SchemaChange("carrierid", CHANGED_TYPE), "str 'x'", "7", drop) == (
        f"agent 7: field 'carrierid' changed type: str 'x'; its value is left out and "
        f"'carrierid' is null {tail}"
    )
    assert describe(SchemaChange("created_date", NOT_EPOCH_MILLISECONDS), "10", "7", keep) == (
        "agent 7: field 'created_date' is not epoch milliseconds (10); created_at is null, "
        "created_date keeps the value as sent"
    )
    assert describe(SchemaChange("status", MISSING), "", "7", keep) == (
        "agent 7: documented field 'status' is missing from every tester of the answer "
        "(renamed?); its column is null. A new field, if any, is named apart"
    )
    assert new_field_error("agent 7: tester #2", "brand_id") == (
        "agent 7: tester #2 has a field 'brand_id' the schema does not have, and "
        "schema_changes is fail: look at the change, then set schema_changes to keep "
        "(load it in drifted_fields) or drop (leave it out)"
    )


def test_a_tester_that_is_not_an_object_is_named_with_its_agent():
    with pytest.raises(MalformedResponse, match=r"^agent 5: tester #0 is a JSON list, not"):
        build_records("5", [[1]])
