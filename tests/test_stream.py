"""The testers stream, end to end: the installed tap against the sandbox over HTTP."""

from __future__ import annotations

import datetime as dt

import jsonschema
import pytest

from tests.support import SCHEMA, run_tap

VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def test_emits_schema_records_and_state_with_one_request_per_agent(sandbox, tmp_path):
    api = sandbox({"agents": 3, "testers_per_agent": 4})
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr
    schema_message = run.of_type("SCHEMA")[0]
    assert schema_message["stream"] == "testers"
    assert schema_message["key_properties"] == ["id"]
    assert len(run.records) == 12
    assert [r["agent_no"] for r in run.records] == ["48900"] * 4 + ["48901"] * 4 + ["48902"] * 4
    assert run.messages[-1]["type"] == "STATE", "the state comes after every record"
    assert run.messages[-1]["value"] == {
        "bookmarks": {
            "testers": {
                "partitions": [
                    {"context": {"agent_no": agent}, "testers_last_answered": 4}
                    for agent in ("48900", "48901", "48902")
                ]
            },
            "testers_observations": {},
            "testers_sync_run_agents": {},
            "testers_sync_runs": {},
        }
    }
    assert api.stats()["by_agent"] == {"48900": 1, "48901": 1, "48902": 1}


def test_records_are_exactly_the_api_testers_and_match_the_schema(sandbox, tmp_path):
    api = sandbox({"agents": 2, "testers_per_agent": 6})
    run = run_tap(api.config(), tmp_path)

    expected = api.scenario.testers("48900") + api.scenario.testers("48901")
    assert [r["id"] for r in run.records] == [t["id"] for t in expected]
    for record, tester in zip(run.records, expected, strict=True):
        VALIDATOR.validate(record)
        assert {k: record[k] for k in tester} == tester


def test_created_at_is_created_date_as_rfc3339_utc(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 1,
            "agent_overrides": {
                "48900": {"testers": 2, "set": {"0": {"created_date": 1769708507204}}}
            },
        }
    )
    run = run_tap(api.config(), tmp_path)

    first = run.records[0]
    assert first["created_date"] == 1769708507204
    assert first["created_at"] == "2026-01-29T17:41:47.204Z"
    for record in run.records:
        parsed = dt.datetime.fromisoformat(record["created_at"].replace("Z", "+00:00"))
        assert parsed.utcoffset() == dt.timedelta(0)
        assert int(parsed.timestamp() * 1000) == record["created_date"]


def test_agent_numbers_given_as_numbers_and_duplicates_are_fetched_once(sandbox, tmp_path):
    api = sandbox({"agents": 2})
    run = run_tap(api.config(agent_numbers=[48901, "48900", " 48901 ", 48900]), tmp_path)

    assert run.returncode == 0, run.stderr
    assert api.stats()["by_agent"] == {"48900": 1, "48901": 1}
    assert run.records[0]["agent_no"] == "48901", "configured order is kept"


def test_agent_no_missing_from_the_api_is_filled_from_the_partition(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 2,
            "agent_overrides": {
                "48901": {"testers": 2, "unset": {"0": ["agent_no"], "1": ["agent_no"]}}
            },
        }
    )
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr
    second_agent = [
        r for r in run.records if r["id"] in {t["id"] for t in api.scenario.testers("48901")}
    ]
    assert len(second_agent) == 2
    assert {r["agent_no"] for r in second_agent} == {"48901"}


def test_new_api_fields_are_dropped_with_one_warning_per_field_name(sandbox, tmp_path):
    extra = {"extra_fields": {"carrier_name": "T-Mobile", "tags": ["vip"]}}
    api = sandbox(
        {"agents": 3, "testers_per_agent": 5, "agent_overrides": {"48900": extra, "48902": extra}}
    )
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr
    assert len(run.records) == 15
    assert all("carrier_name" not in r and "tags" not in r for r in run.records)
    assert run.stderr.count("field 'carrier_name'") == 1
    assert run.stderr.count("field 'tags'") == 1


@pytest.mark.parametrize("data_mode", ["empty", "null", "missing"])
def test_no_data_with_the_success_code_is_zero_testers(sandbox, tmp_path, data_mode):
    api = sandbox(
        {"agents": 2, "testers_per_agent": 3, "agent_overrides": {"48900": {"data": data_mode}}}
    )
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr
    assert [r["agent_no"] for r in run.records] == ["48901"] * 3


def test_a_tester_without_id_fails_the_run_naming_the_agent(sandbox, tmp_path):
    api = sandbox({"agents": 2, "agent_overrides": {"48901": {"unset": {"2": ["id"]}}}})
    run = run_tap(api.config(max_concurrent_agents=1), tmp_path)

    assert run.returncode == 1
    assert "agent 48901" in run.last_line
    assert "no 'id'" in run.last_line
    assert "Traceback" not in run.stderr
    assert {r["agent_no"] for r in run.records} <= {"48900"}, "nothing of 48901 is emitted"


def test_field_values_are_coerced_only_when_unambiguous(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 1,
            "agent_overrides": {
                "48900": {
                    "testers": 1,
                    "set": {
                        "0": {
                            "override_dcs_check": "TRUE",
                            "created_date": "1769708507204",
                            "carrierid": 3.0,
                            "id": 12345,
                        }
                    },
                }
            },
        }
    )
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr
    record = run.records[0]
    VALIDATOR.validate(record)
    assert record["override_dcs_check"] is True
    assert record["created_date"] == 1769708507204
    assert record["carrierid"] == 3
    assert record["id"] == "12345"


def test_with_fail_a_value_that_cannot_be_coerced_fails_naming_agent_and_field(sandbox, tmp_path):
    api = sandbox(
        {"agents": 1, "agent_overrides": {"48900": {"set": {"1": {"override_dcs_check": "maybe"}}}}}
    )
    run = run_tap(api.config(schema_changes="fail"), tmp_path)

    assert run.returncode == 1
    assert "agent 48900" in run.last_line
    assert "'override_dcs_check'" in run.last_line
    assert run.records == []


def test_activate_version_is_sent_once_after_every_agent_synced(sandbox, tmp_path):
    api = sandbox({"agents": 3})
    run = run_tap(api.config(emit_activate_version_messages=True), tmp_path)

    assert run.returncode == 0, run.stderr
    testers = [m for m in run.messages if m.get("stream") == "testers"]
    kinds = [m["type"] for m in testers]
    (activate,) = [m for m in run.messages if m["type"] == "ACTIVATE_VERSION"]
    assert activate["stream"] == "testers", "the run log is history: never activated"
    last_record = max(i for i, kind in enumerate(kinds) if kind == "RECORD")
    assert kinds.index("ACTIVATE_VERSION") > last_record
    assert {m["version"] for m in testers if m["type"] == "RECORD"} == {activate["version"]}


def test_activate_version_is_off_unless_asked_for(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.of_type("ACTIVATE_VERSION") == []


def test_a_failing_run_sends_no_activate_version(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 3,
            "agent_overrides": {"48902": {"faults": [{"status": 500, "times": "always"}]}},
        }
    )
    # One agent at a time, so the earlier agents are answered before 48902 fails.
    config = api.config(emit_activate_version_messages=True, max_retries=1, max_concurrent_agents=1)
    run = run_tap(config, tmp_path)

    assert run.returncode == 1
    assert run.records, "earlier agents' records were emitted"
    assert run.of_type("ACTIVATE_VERSION") == []


def test_the_direct_path_writes_what_the_sdk_path_writes(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 3,
            "testers_per_agent": 7,
            "agent_overrides": {
                "48901": {
                    "set": {"2": {"carrierid": "12", "created_date": None}},
                    "unset": {"4": ["agent_no"]},
                }
            },
        }
    )
    config = api.config(emit_activate_version_messages=True)
    direct = run_tap(config, tmp_path)
    # A stream map with no changes sends records through the SDK's own path.
    through_sdk = run_tap(
        {**config, "stream_maps": {"testers": {"__alias__": "testers"}}}, tmp_path
    )

    assert direct.returncode == through_sdk.returncode == 0
    assert len(direct.records) == 21
    for ours, sdks in zip(direct.messages, through_sdk.messages, strict=True):
        assert list(ours) == list(sdks), "the same fields, in the same order"
        if ours["type"] == "RECORD":
            assert list(ours["record"]) == list(sdks["record"])
    assert _same_in_every_run(direct) == _same_in_every_run(through_sdk)


RUN_TIMES = ("started_at", "finished_at", "run_started_at", "received_at")


def _same_in_every_run(run) -> list[dict]:
    """The run's messages, with what differs from run to run checked, then set aside.

    That is the stream version (one per run, the same on every RECORD and on the
    ACTIVATE_VERSION), the extraction time (a UTC timestamp), and the run's id and
    times in the observations and run-log records; everything else must be identical
    between two runs over the same data.
    """
    (activate,) = run.of_type("ACTIVATE_VERSION")
    stable = []
    for message in run.messages:
        stable_message = dict(message)
        if message["type"] == "RECORD" and message["stream"] != "testers":
            record = message["record"]
            stable_message["record"] = {
                **record,
                "run_id": "this run's id",
                **{at: "a UTC time" for at in RUN_TIMES if at in record},
            }
        if "version" in message:
            assert message["version"] == activate["version"]
            stable_message["version"] = "this run's version"
        if "time_extracted" in message:
            extracted = dt.datetime.fromisoformat(message["time_extracted"])
            assert extracted.utcoffset() == dt.timedelta(0)
            stable_message["time_extracted"] = "a UTC time"
        stable.append(stable_message)
    return stable
