"""What the tap logs for whoever reads scheduled-run logs: a summary line, no false errors."""

from __future__ import annotations

import re

from tests.support import run_tap

SUMMARY = re.compile(
    r"INFO .*synced (\d+) testers? from (\d+) agents? \((\d+) with no testers\) "
    r"in [\d.]+ s; (\d+) retr(?:y|ies); (\d+) duplicate ids?$",
    re.MULTILINE,
)


def test_connection_test_succeeds_without_an_error_line(sandbox, tmp_path):
    api = sandbox({"agents": 3, "testers_per_agent": 4})

    run = run_tap(api.config(), tmp_path, "--test")

    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.records) == 1
    assert "ERROR" not in run.stderr
    assert "unhandled error" not in run.stderr
    # A dry run is not a sync: no summary either.
    assert SUMMARY.search(run.stderr) is None


def test_summary_counts_retries_made_by_concurrent_workers(sandbox, tmp_path):
    agents = [f"4890{i}" for i in range(6)]
    # Every agent but the last answers 503 twice before its list; the last has none.
    overrides: dict[str, dict[str, object]] = {
        agent: {"faults": [{"status": 503, "times": 2}]} for agent in agents[:-1]
    }
    overrides[agents[-1]] = {"testers": 0}
    api = sandbox({"agents": agents, "testers_per_agent": 7, "agent_overrides": overrides})

    run = run_tap(api.config(max_retries=3, max_concurrent_agents=6), tmp_path)

    assert run.returncode == 0, run.stderr[-3000:]
    assert SUMMARY.findall(run.stderr) == [(str(5 * 7), "6", "1", str(5 * 2), "0")]
    assert len(run.records) == 5 * 7
    assert api.stats()["by_status"]["503"] == 5 * 2


def test_a_failed_sync_logs_no_summary(sandbox, tmp_path):
    api = sandbox({"agents": 2, "agent_overrides": {}})
    config = api.config(max_retries=0)
    config["agent_numbers"] = [*config["agent_numbers"], "99999"]

    run = run_tap(config, tmp_path)

    assert run.returncode == 1
    assert SUMMARY.search(run.stderr) is None
