"""The run summary and its record, in process (the subprocess tests see them end to end)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tap_kaleyra_rcs.errors import SettingsInvalid
from tap_kaleyra_rcs.records import AgentTesters
from tap_kaleyra_rcs.runs import FinishedRun, RunSummary


def _batch(agent: str, testers: int) -> AgentTesters:
    return AgentTesters(agent, [{"id": f"{agent}-{i}"} for i in range(testers)])


def _finished(retries: int = 0, *testers_per_agent: int) -> FinishedRun:
    summary = RunSummary()
    for index, testers in enumerate(testers_per_agent):
        summary.count(_batch(str(48900 + index), testers))
    return summary.finish(retries)


def test_the_record_counts_agents_empty_agents_testers_and_retries():
    record = _finished(3, 4, 0, 2, 0).record()

    assert uuid.UUID(record.pop("run_id"))
    started = dt.datetime.fromisoformat(record.pop("started_at"))
    finished = dt.datetime.fromisoformat(record.pop("finished_at"))
    assert started.utcoffset() == finished.utcoffset() == dt.timedelta(0)
    assert started <= finished
    assert record == {"agents": 4, "agents_without_testers": 2, "testers": 6, "retries": 3}


def test_the_line_says_the_same_as_the_record():
    line = _finished(1, 5, 0).line()

    assert line.startswith("synced 5 testers from 2 agents (1 with no testers) in ")
    assert line.endswith(" s; 1 retries")
    seconds = float(line.split(" in ")[1].split(" s;")[0])
    assert 0 <= seconds < 60


def test_every_run_has_its_own_id():
    assert _finished(0, 1).run_id != _finished(0, 1).run_id


@pytest.mark.parametrize(
    ("problems", "line"),
    [
        (["sid: required"], "1 setting problem (listed above); first: sid: required"),
        (
            ["sid: required", "pod: must be one of in, na"],
            "2 setting problems (listed above); first: sid: required",
        ),
    ],
)
def test_settings_problems_end_in_one_line_naming_the_first(problems, line):
    error = SettingsInvalid(problems)

    assert str(error) == line
    assert error.problems == problems
