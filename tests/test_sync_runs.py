"""The ``testers_sync_runs`` stream: one record per run that synced every agent, and no other."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import jsonschema

from tap_kaleyra_rcs.records import load_schema
from tests.support import run_tap

RUNS = "testers_sync_runs"
RUN_SCHEMA = jsonschema.Draft202012Validator(
    load_schema(RUNS), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def _when(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    assert moment.utcoffset() == dt.timedelta(0), "times are UTC"
    return moment


def test_a_run_that_synced_every_agent_ends_with_its_record(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 4,
            "testers_per_agent": 3,
            "agent_overrides": {
                "48901": {"testers": 0},
                "48903": {"faults": [{"status": 503, "times": 2}]},
            },
        }
    )
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr
    (record,) = run.records_of(RUNS)
    RUN_SCHEMA.validate(record)
    assert uuid.UUID(record["run_id"])
    assert (record["agents"], record["agents_without_testers"]) == (4, 1)
    assert (record["testers"], record["retries"]) == (9, 2)
    last_tester = max(i for i, m in enumerate(run.messages) if m.get("stream") == "testers")
    first_run_message = min(i for i, m in enumerate(run.messages) if m.get("stream") == RUNS)
    assert first_run_message > last_tester, "the run's record comes after every tester"


def test_every_tester_of_the_run_was_extracted_between_its_start_and_finish(sandbox, tmp_path):
    api = sandbox({"agents": 3, "testers_per_agent": 2})
    run = run_tap(api.config(max_concurrent_agents=1), tmp_path)

    (record,) = run.records_of(RUNS)
    started, finished = _when(record["started_at"]), _when(record["finished_at"])
    extracted = [
        _when(m["time_extracted"]) for m in run.of_type("RECORD") if m["stream"] == "testers"
    ]
    assert len(extracted) == 6
    assert all(started <= moment <= finished for moment in extracted)


def test_each_run_has_its_own_id(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    first = run_tap(api.config(), tmp_path).records_of(RUNS)
    second = run_tap(api.config(), tmp_path).records_of(RUNS)

    assert len(first) == len(second) == 1
    assert first[0]["run_id"] != second[0]["run_id"]
    assert _when(first[0]["finished_at"]) <= _when(second[0]["started_at"])


def test_a_failed_run_records_no_run(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 3,
            "agent_overrides": {"48902": {"faults": [{"status": 500, "times": "always"}]}},
        }
    )
    # One agent at a time: 48900 and 48901 are answered and sent before 48902 fails.
    # (Fetched at once, 48902's failure may stop the run before any answer arrives.)
    run = run_tap(api.config(max_retries=0, max_concurrent_agents=1), tmp_path)

    assert run.returncode == 1
    assert run.records, "the agents before the failure were sent"
    assert [m for m in run.messages if m.get("stream") == RUNS] == []


def test_a_connection_test_records_no_run(sandbox, tmp_path):
    # The first agent has nothing to send, so the record limit stops the run in the
    # second one: one agent done is not a run done.
    api = sandbox(
        {"agents": 2, "testers_per_agent": 3, "agent_overrides": {"48900": {"testers": 0}}}
    )
    run = run_tap(api.config(), tmp_path, "--test")

    assert run.returncode == 0, run.stderr
    assert run.records_of(RUNS) == []


def test_with_testers_deselected_no_run_is_recorded(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    catalog = json.loads(run_tap(api.config(), tmp_path, "--discover").stdout)
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == RUNS
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    run = run_tap(api.config(), tmp_path, "--catalog", str(tmp_path / "catalog.json"))

    assert run.returncode == 0, run.stderr
    assert run.records == []
    assert run.records_of(RUNS) == []
    assert api.stats()["requests"] == 0


def test_the_run_log_is_never_activated(sandbox, tmp_path):
    api = sandbox({"agents": 2})
    run = run_tap(api.config(emit_activate_version_messages=True), tmp_path)

    assert run.returncode == 0, run.stderr
    assert [m["stream"] for m in run.of_type("ACTIVATE_VERSION")] == ["testers"]
    (record_message,) = [m for m in run.of_type("RECORD") if m["stream"] == RUNS]
    assert "version" not in record_message, "earlier runs' rows stay: they are history"
