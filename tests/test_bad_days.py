"""Bad days at Kaleyra: an agent it no longer knows, an answer that empties an agent.

Neither may stop the daily run for every other agent, and neither may make the
models or ``ACTIVATE_VERSION`` remove testers on the strength of one odd answer.
"""

from __future__ import annotations

import json
import typing as t

import pytest

from tests.support import run_tap

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.support import TapRun


def _activated(run: TapRun) -> bool:
    return any(m["type"] == "ACTIVATE_VERSION" for m in run.messages)


def _run_record(run: TapRun) -> dict[str, t.Any]:
    (record,) = run.records_of("testers_sync_runs")
    return record


def _synced_agents(run: TapRun) -> list[str]:
    return [r["agent_no"] for r in run.records_of("testers_sync_run_agents")]


def _warnings(run: TapRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if "WARNING" in line]


def _state_file(tmp_path: Path, run: TapRun) -> str:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(run.of_type("STATE")[-1]["value"]))
    return str(path)


def test_an_unknown_agent_fails_the_run_by_default_naming_the_way_out(sandbox, tmp_path):
    api = sandbox({"agents": 2})
    run = run_tap(api.config(agent_numbers=["48900", "49999"]), tmp_path)

    assert run.returncode == 1
    assert run.last_line == (
        'tap-kaleyra-rcs: error: agent 49999: HTTP 400 RCS904 "Agent Not Found"; check that '
        "the agent number is right and registered on this account, or set unknown_agents: "
        "skip to leave it out"
    )
    assert run.records_of("testers_sync_runs") == []


def test_skip_leaves_an_unknown_agent_out_with_one_warning_and_names_it(sandbox, tmp_path):
    api = sandbox({"agents": 3, "testers_per_agent": 2})
    config = api.config(
        agent_numbers=["48900", "49999", "48902"],
        unknown_agents="skip",
        emit_activate_version_messages=True,
    )
    run = run_tap(config, tmp_path)

    assert run.returncode == 0, run.stderr
    assert [r["agent_no"] for r in run.records] == ["48900"] * 2 + ["48902"] * 2
    (warning,) = [w for w in _warnings(run) if "49999" in w]
    assert 'Kaleyra does not know it (HTTP 400 RCS904 "Agent Not Found")' in warning
    assert "unknown_agents: skip" in warning
    assert _synced_agents(run) == ["48900", "48902"], "the models see it as not synced"
    record = _run_record(run)
    assert (record["skipped_agents"], record["held_agents"], record["agents"]) == (
        "49999",
        None,
        2,
    )
    assert "skipped as unknown to Kaleyra: 49999" in run.stderr
    assert _activated(run), "deletions are still detected for every other agent"


def test_skip_still_fails_a_run_in_which_kaleyra_knows_no_agent(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    run = run_tap(api.config(agent_numbers=["49998", "49999"], unknown_agents="skip"), tmp_path)

    assert run.returncode == 1
    assert run.last_line == (
        "tap-kaleyra-rcs: error: Kaleyra knows none of the agents in agent_numbers: check "
        "sid and pod (or base_url), and the agent numbers"
    )
    assert run.records_of("testers_sync_runs") == []


def test_skip_does_not_hide_other_refusals(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 1,
            "agent_overrides": {"48900": {"faults": [{"status": 400, "body": {"code": "RCS904"}}]}},
        }
    )
    run = run_tap(api.config(unknown_agents="skip"), tmp_path)

    assert run.returncode == 1
    assert "HTTP 400 RCS904;" in run.last_line, "a missing field is not an unknown agent"


SDK_RECORD_PATH = {"stream_maps": {"testers": {"carrierid": "carrierid"}}}
"""A stream map: records take the SDK's own path instead of the tap's direct one."""


@pytest.mark.parametrize(
    ("data", "said", "extra"),
    [
        ("empty", "an empty list", {}),
        ("null", "data: null", {}),
        ("empty", "an empty list", SDK_RECORD_PATH),
    ],
)
def test_an_agent_whose_testers_all_vanish_is_held_back_once(sandbox, tmp_path, data, said, extra):
    api = sandbox({"agents": 2, "testers_per_agent": 3})
    config = api.config(emit_activate_version_messages=True, **extra)
    first = run_tap(config, tmp_path)
    api.use({"agents": 2, "testers_per_agent": 3, "agent_overrides": {"48901": {"data": data}}})

    held = run_tap(config, tmp_path, "--state", _state_file(tmp_path, first))

    assert held.returncode == 0, held.stderr
    assert [r["agent_no"] for r in held.records] == ["48900"] * 3
    assert any(
        w.endswith(
            f"agent 48901: answered {said} after listing 3 testers in its last answer; not "
            "counted as synced, so none of its testers is removed in this run. If the agent "
            "really has no testers now, the next run counts it (or set trust_empty_answers: true)"
        )
        for w in _warnings(held)
    )
    assert _synced_agents(held) == ["48900"], "not synced: the models remove none of its testers"
    assert _run_record(held)["held_agents"] == "48901"
    assert not _activated(held), "no tester is marked deleted on one odd answer"
    assert any("No ACTIVATE_VERSION sent: agent(s) 48901" in w for w in _warnings(held))

    believed = run_tap(config, tmp_path, "--state", _state_file(tmp_path, held))

    assert believed.returncode == 0, believed.stderr
    assert _synced_agents(believed) == ["48900", "48901"], "a second empty answer is believed"
    assert _run_record(believed)["held_agents"] is None
    assert _activated(believed)


def test_trust_empty_answers_believes_the_first(sandbox, tmp_path):
    api = sandbox({"agents": 1, "testers_per_agent": 2})
    config = api.config(emit_activate_version_messages=True, trust_empty_answers=True)
    first = run_tap(config, tmp_path)
    api.use({"agents": 1, "agent_overrides": {"48900": {"data": "empty"}}})

    run = run_tap(config, tmp_path, "--state", _state_file(tmp_path, first))

    assert _synced_agents(run) == ["48900"]
    assert _activated(run)
    assert _run_record(run)["agents_without_testers"] == 1


def test_data_null_with_no_testers_before_is_zero_testers_said_apart(sandbox, tmp_path):
    api = sandbox({"agents": 2, "agent_overrides": {"48901": {"data": "null"}}})
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr
    assert _synced_agents(run) == ["48900", "48901"]
    assert "agent 48901: 0 testers (data: null, read as no testers)" in run.stderr
    assert "agent 48900: 5 testers\n" in run.stderr + "\n"


def test_repeated_agent_numbers_are_merged_with_a_warning_naming_them(sandbox, tmp_path):
    api = sandbox({"agents": 2, "testers_per_agent": 1})
    config = api.config(agent_numbers=["48900", "48901", 48900, " 48901", "48900"])
    run = run_tap(config, tmp_path)

    assert [r["agent_no"] for r in run.records] == ["48900", "48901"]
    assert api.stats()["by_agent"] == {"48900": 1, "48901": 1}
    (warning,) = [w for w in _warnings(run) if "more than once" in w]
    assert warning.endswith(
        "agent_numbers lists 48900, 48901 more than once; each agent is synced once"
    )
