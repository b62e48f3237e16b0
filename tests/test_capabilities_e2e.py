"""Every capability the tap advertises, through the real Meltano CLI into a real warehouse.

docs/capabilities.md maps each capability to the test that proves it; one lives in
test_meltano_e2e.py (activate-version in RECORD mode).
"""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from tests.pipelines import (
    duckdb_columns,
    duckdb_pipeline,
    live_rows,
    postgres_pipeline,
    setting_env,
    spec,
)
from tests.support import SCHEMA
from tests.test_meltano_e2e import AGENTS, ALL_TESTERS
from tests.warehouses import ROOT, meltano

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

STATE_ID = "sandbox:tap-kaleyra-rcs-to-target-duckdb"


def _declared_capabilities() -> list[str]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-kaleyra-rcs"]
    return tap["capabilities"]


def test_about_through_meltano_lists_what_meltano_yml_declares(sandbox, tmp_path):
    pipeline = duckdb_pipeline(sandbox(spec()), tmp_path)
    done = meltano(pipeline.env, "invoke", "tap-kaleyra-rcs", "--about", "--format=json")

    assert done.returncode == 0, done.stderr[-2000:]
    about = json.loads(done.stdout)
    assert sorted(about["capabilities"]) == sorted(_declared_capabilities())
    assert "api_key" in about["settings"]["properties"]


def test_discover_through_meltano_lists_every_field(sandbox, tmp_path):
    pipeline = duckdb_pipeline(sandbox(spec()), tmp_path)
    done = meltano(pipeline.env, "select", "tap-kaleyra-rcs", "--list", "--all")

    assert done.returncode == 0, done.stderr[-2000:]
    listed = {
        line.split("]", 1)[1].strip(): line.split("]", 1)[0].strip(" \t[")
        for line in done.stdout.splitlines()
        if line.strip().startswith("[") and "testers." in line
    }
    assert set(listed) == {f"testers.{name}" for name in SCHEMA["properties"]}
    assert listed["testers.id"] == "automatic"


def test_catalog_with_deselected_fields_loads_a_table_without_them(sandbox, tmp_path):
    # A new field is inside drifted_fields: Meltano's select sees that one property.
    selection = ["testers.*", "!testers.phoneno", "!testers.carrierid", "!testers.drifted_fields"]
    drift = {"48902": {"extra_fields": {"brand_id": "b-7"}}}
    pipeline = duckdb_pipeline(
        sandbox(spec(agent_overrides=drift)),
        tmp_path,
        TAP_KALEYRA_RCS__SELECT=json.dumps(selection),
    )
    pipeline.run_ok("target-duckdb")

    columns = duckdb_columns(pipeline)
    assert not {"phoneno", "carrierid", "drifted_fields", "brand_id"} & columns
    assert {"id", "agent_no", "test_status", "status", "created_date"} <= columns
    assert pipeline.duckdb_rows("select count(*) from kaleyra.testers") == [(ALL_TESTERS,)]


def test_stream_maps_from_the_environment_hash_phoneno_with_a_configured_salt(sandbox, tmp_path):
    salt = "pepper-1"
    pipeline = duckdb_pipeline(
        sandbox(spec()),
        tmp_path,
        **setting_env(
            stream_maps={"testers": {"phoneno": "sha256(config['salt'] + phoneno)"}},
            stream_map_config={"salt": salt},
        ),
    )
    pipeline.run_ok("target-duckdb")

    landed = dict(pipeline.duckdb_rows("select id, phoneno from kaleyra.testers"))
    expected = {
        tester["id"]: hashlib.sha256((salt + tester["phoneno"]).encode()).hexdigest()
        for agent in AGENTS
        for tester in pipeline.api.scenario.testers(agent)
    }
    assert landed == expected
    observed = dict(pipeline.duckdb_rows("select id, phoneno from kaleyra.testers_observations"))
    assert observed == expected, "the observations follow the testers map"


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        # Keys longer than 20 characters are shortened the SDK's way.
        (1, {"original_x_id", "original_x_status", "ori_x_test_status", "ori_x_odc"}),
        (0, {"original"}),  # depth 0: the nested object stays one column
    ],
    ids=["depth1", "depth0"],
)
def test_schema_flattening_from_the_environment_splits_a_nested_object(
    sandbox, tmp_path, depth, expected
):
    pipeline = duckdb_pipeline(
        sandbox(spec()),
        tmp_path,
        **setting_env(
            # "record" nests the whole tester in one object property.
            stream_maps={"testers": {"original": "record"}},
            flattening_enabled=True,
            flattening_max_depth=depth,
            flattening_separator="_x_",
            flattening_max_key_length=20,
        ),
    )
    pipeline.run_ok("target-duckdb")

    columns = duckdb_columns(pipeline) - {c for c in duckdb_columns(pipeline) if c[:5] == "_sdc_"}
    assert expected <= columns
    assert ("original" in columns) == (depth == 0)
    assert pipeline.duckdb_rows("select count(*) from kaleyra.testers") == [(ALL_TESTERS,)]


def test_state_is_stored_passed_back_in_and_every_tester_still_comes(sandbox, tmp_path):
    api = sandbox(spec())
    pipeline = duckdb_pipeline(api, tmp_path)
    pipeline.run_ok("target-duckdb")
    stored = json.loads(meltano(pipeline.env, "state", "get", STATE_ID).stdout)
    partitions = stored["singer_state"]["bookmarks"]["testers"]["partitions"]
    assert [p["context"] for p in partitions] == [{"agent_no": agent} for agent in AGENTS]

    # A marker the tap can only carry forward if it was handed the state.
    stored["singer_state"]["bookmarks"]["retired_stream"] = {"marker": "kept"}
    written = meltano(pipeline.env, "state", "set", "--force", STATE_ID, json.dumps(stored))
    assert written.returncode == 0, written.stderr[-2000:]
    changed = api.scenario.testers("48901")[2]["id"]
    api.use(spec(agent_overrides={"48901": {"set": {"2": {"test_status": "REVOKED"}}}}))
    api.server.stats.reset()
    pipeline.run_ok("target-duckdb")

    # Full table: the state holds no bookmark, so every agent is read again.
    assert sorted(api.stats()["by_agent"]) == AGENTS
    assert dict(pipeline.duckdb_rows("select id, test_status from kaleyra.testers"))[changed] == (
        "REVOKED"
    )
    assert pipeline.duckdb_rows("select count(*) from kaleyra.testers") == [(ALL_TESTERS,)]
    after = json.loads(meltano(pipeline.env, "state", "get", STATE_ID).stdout)["singer_state"]
    assert after["bookmarks"]["retired_stream"] == {"marker": "kept"}
    assert after["bookmarks"]["testers"]["partitions"] == partitions


def test_structured_logging_gives_one_json_object_per_tap_log_line(sandbox, tmp_path):
    pipeline = duckdb_pipeline(
        sandbox(spec()),
        tmp_path,
        SINGER_SDK_LOG_CONFIG=str(ROOT / "docs" / "logging-json.yml"),
    )
    done = meltano(pipeline.env, "--log-format=json", "run", "tap-kaleyra-rcs", "target-jsonl")
    assert done.returncode == 0, done.stderr[-4000:]

    # Meltano parses each line the tap writes to stderr; a JSON one keeps its fields.
    tap_lines = [
        entry
        for entry in map(json.loads, done.stderr.splitlines())
        if entry.get("string_id") == "tap-kaleyra-rcs" and entry.get("stdio") == "stderr"
    ]
    assert len(tap_lines) >= len(AGENTS)
    unstructured = [e["event"] for e in tap_lines if "plugin_logger" not in e]
    assert unstructured == []
    events = {(e["plugin_logger"], e["event"]) for e in tap_lines}
    for agent in AGENTS:
        assert ("tap-kaleyra-rcs.testers", f"agent {agent}: 8 testers") in events


BATCH_TESTERS_PER_AGENT = 40


def _batch_config(tmp_path) -> dict:
    return {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": f"file://{tmp_path}/batches", "prefix": "testers-"},
    }


def test_batch_without_activation_loads_every_tester_live(sandbox, tmp_path, postgres):
    api = sandbox(spec(BATCH_TESTERS_PER_AGENT))
    pipeline = postgres_pipeline(
        api,
        tmp_path,
        postgres,
        **setting_env(batch_config=_batch_config(tmp_path), emit_activate_version_messages=False),
    )
    pipeline.run_ok("target-postgres")

    assert list((tmp_path / "batches").glob("testers-*.gz")), "records went as batch files"
    assert live_rows(pipeline) == len(AGENTS) * BATCH_TESTERS_PER_AGENT
    assert set(pipeline.pg_testers()) == pipeline.expected_ids()

    # meltano.yml turns activation on; with it, batch mode is refused before any
    # request, and the rows already loaded stay live.
    del pipeline.env["TAP_KALEYRA_RCS_EMIT_ACTIVATE_VERSION_MESSAGES"]
    api.server.stats.reset()
    refused = pipeline.run("target-postgres")
    assert refused.returncode != 0
    tap_lines = [line for line in refused.stderr.splitlines() if "tap-kaleyra-rcs: error:" in line]
    assert len(tap_lines) == 1
    assert "batch_config" in tap_lines[0]
    assert "emit_activate_version_messages" in tap_lines[0]
    assert api.stats()["requests"] == 0
    assert live_rows(pipeline) == len(AGENTS) * BATCH_TESTERS_PER_AGENT


def test_batch_with_activation_loads_nothing_into_a_new_schema(sandbox, tmp_path, postgres):
    api = sandbox(spec(BATCH_TESTERS_PER_AGENT))
    pipeline = postgres_pipeline(
        api, tmp_path, postgres, **setting_env(batch_config=_batch_config(tmp_path))
    )
    refused = pipeline.run("target-postgres")

    assert refused.returncode != 0
    assert "emit_activate_version_messages" in refused.stderr
    assert live_rows(pipeline) == 0
    assert not (tmp_path / "batches").exists()
