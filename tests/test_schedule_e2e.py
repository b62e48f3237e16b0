"""Scheduled runs, end to end: schedules, exit statuses, overlapping runs, the run summary.

Real Meltano CLI (``meltano schedule run``, ``meltano run``), real target-duckdb,
a real DuckDB file and the sandbox API on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import typing as t

import duckdb
import pytest

from tap_kaleyra_rcs.settings import parse_settings
from tests.processes import command_line, with_environment
from tests.warehouses import (
    meltano,
    meltano_env,
    meltano_run,
    meltano_start,
    wait_until,
)

if t.TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from tests.support import RunningSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

AGENTS = ["48900", "48901", "48902", "48903", "48904", "48905"]
JOBS = ["testers-duckdb", "testers-postgres", "testers-snowflake", "testers-bigquery"]
SUMMARY = re.compile(
    r"synced (\d+) testers? from (\d+) agents? \((\d+) with no testers\) in [\d.]+ s; "
    r"(\d+) retr(?:y|ies)"
)
SLOW_AGENT_MS = 600_000
"""Latency of the agent a run is caught waiting for: far longer than any test.
The run then lasts request_timeout (30 s) per attempt, with max_retries=1 (set
by meltano_env): at least 60 s in which it is certainly still running."""


def _spec(**agent_overrides: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"agents": AGENTS, "testers_per_agent": 8, "agent_overrides": agent_overrides}


def _meltano(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return meltano(env, "--log-level=info", *args)


def _testers_in(env: dict[str, str]) -> int:
    with duckdb.connect(env["TARGET_DUCKDB_FILEPATH"], read_only=True) as db:
        row = db.sql("select count(*) from kaleyra.testers").fetchone()
    assert row is not None
    return int(row[0])


def _expected(api: RunningSandbox) -> int:
    return sum(len(api.scenario.testers(agent)) for agent in AGENTS)


LOADER_SHARE = DBT_SHARE = 420
"""Seconds docs/scheduling.md allows the loader and dbt in a scheduled run's bound."""


def test_schedule_list_shows_a_daily_schedule_for_each_warehouse_job(tmp_path):
    env = meltano_env(tmp_path, "http://127.0.0.1:0")
    done = _meltano(env, "schedule", "list", "--format=json")

    assert done.returncode == 0, done.stderr[-3000:]
    schedules = json.loads(done.stdout)["schedules"]["job"]
    assert {s["job"]["name"]: s["interval"] for s in schedules} == dict.fromkeys(JOBS, "@daily")
    tasks = {s["job"]["name"]: s["job"]["tasks"] for s in schedules}
    expected = {
        job: [f"tap-kaleyra-rcs target-{warehouse} dbt-{warehouse}:build-no-unit-tests"]
        for job, warehouse in ((job, job.split("-")[1]) for job in JOBS)
    }
    # target-bigquery adds no column to an existing table: the job adds drifted_fields first.
    expected["testers-bigquery"].insert(0, "dbt-bigquery:prepare-tables")
    assert tasks == expected
    # Every run ends: each schedule bounds its run, above the tap's own worst case
    # for 16 agents with the default settings plus the loader's and dbt's share.
    tap_worst = parse_settings(
        {"sid": "S1", "api_key": "k-1", "agent_numbers": [str(n) for n in range(16)]}
    ).worst_case_seconds
    assert tap_worst == 960
    bounds = {s["name"]: int(s["env"]["MELTANO_RUN_TIMEOUT"]) for s in schedules}
    assert bounds == dict.fromkeys(bounds, tap_worst + LOADER_SHARE + DBT_SHARE)


def test_scheduled_duckdb_run_loads_every_tester_and_ends_with_the_summary(sandbox, tmp_path):
    # One agent has no testers and one answers 503 once: the summary must say so.
    api = sandbox(
        _spec(**{"48901": {"testers": 0}, "48903": {"faults": [{"status": 503, "times": 1}]}})
    )
    env = meltano_env(tmp_path, api.url)

    done = _meltano(env, "schedule", "run", "daily-testers-duckdb")

    assert done.returncode == 0, done.stderr[-4000:]
    assert _testers_in(env) == _expected(api) == 5 * 8
    summaries = SUMMARY.findall(done.stderr + done.stdout)
    assert summaries == [(str(5 * 8), "6", "1", "1")]


def test_a_failed_run_exits_1_and_logs_no_summary(sandbox, tmp_path):
    api = sandbox(_spec())
    env = meltano_env(tmp_path, api.url, TAP_KALEYRA_RCS_API_KEY="a-wrong-key-0000")

    done = meltano_run(env, "testers-duckdb")

    assert done.returncode == 1
    log = done.stderr + done.stdout
    assert "Kaleyra refused the request" in log
    assert SUMMARY.search(log) is None


def _caught_waiting(
    sandbox: t.Callable[..., RunningSandbox], tmp_path: Path
) -> tuple[RunningSandbox, dict[str, str]]:
    """A sandbox whose last agent answers only after far longer than any test."""
    api = sandbox(_spec(**{"48905": {"latency_ms": SLOW_AGENT_MS}}))
    return api, meltano_env(tmp_path, api.url)


def _wait_for_the_slow_agent(api: RunningSandbox) -> None:
    wait_until(lambda: "48905" in api.stats()["by_agent"], timeout=120)


def _tap_processes(env: dict[str, str]) -> list[int]:
    """The taps this test's Meltano started: other tests may be running taps meanwhile.

    Each test's Meltano has a .meltano/ of its own (``MELTANO_SYS_DIR_ROOT``), which
    every process it starts inherits in its environment.
    """
    ours = with_environment("MELTANO_SYS_DIR_ROOT", env["MELTANO_SYS_DIR_ROOT"])
    return [
        pid
        for pid in ours
        if any(part.endswith("/bin/tap-kaleyra-rcs") for part in command_line(pid))
    ]


def test_a_second_run_of_the_job_is_refused_while_the_first_runs(sandbox, tmp_path):
    """Meltano refuses to start a job whose state ID has a run in progress.

    The first run is caught waiting for a slow agent; the second, sharing the
    same system database, exits 1 at once without calling the API. Once the
    first has stopped, the job runs again normally.
    """
    api, env = _caught_waiting(sandbox, tmp_path)
    first = meltano_start(env, "testers-duckdb", log=tmp_path / "first.log")
    try:
        _wait_for_the_slow_agent(api)

        second = _meltano(env, "schedule", "run", "daily-testers-duckdb")

        assert second.returncode == 1
        assert (
            "Another 'sandbox:tap-kaleyra-rcs-to-target-duckdb' pipeline is already running"
            in second.stderr + second.stdout
        )
        # Refused before its tap started: no sync began, no request was made.
        assert "Beginning sync" not in second.stderr + second.stdout
        assert first.poll() is None
    finally:
        first.terminate()
        first.wait(timeout=120)

    api.use(_spec())
    again = _meltano(env, "schedule", "run", "daily-testers-duckdb")
    assert again.returncode == 0, again.stderr[-4000:]
    assert _testers_in(env) == 6 * 8


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 1)],
    ids=["SIGTERM-143", "SIGINT-1"],
)
def test_a_signalled_meltano_run_stops_the_tap_and_exits(sandbox, tmp_path, signum, status):
    api, env = _caught_waiting(sandbox, tmp_path)
    running = meltano_start(env, "testers-duckdb", log=tmp_path / "run.log")
    try:
        _wait_for_the_slow_agent(api)
        assert _tap_processes(env)
        running.send_signal(signum)
        assert running.wait(timeout=120) == status
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert _tap_processes(env) == []
    assert SUMMARY.search((tmp_path / "run.log").read_text()) is None


def test_sigterm_to_schedule_run_leaves_its_meltano_run_going(sandbox, tmp_path):
    """`meltano schedule run` dies of SIGTERM, but the `meltano run` it started goes on.

    This is why docs/scheduling.md has schedulers run `meltano run <job>`.
    """
    api, env = _caught_waiting(sandbox, tmp_path)
    wrapper = meltano_start(
        env,
        "daily-testers-duckdb",
        log=tmp_path / "run.log",
        command="schedule run",
        own_session=True,
    )
    try:
        _wait_for_the_slow_agent(api)
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=120) == -signal.SIGTERM
        assert _tap_processes(env)
    finally:
        os.killpg(wrapper.pid, signal.SIGTERM)
        wait_until(lambda: _tap_processes(env) == [], timeout=120)
