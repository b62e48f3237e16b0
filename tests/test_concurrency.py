"""Concurrent agents: same output as sequential, shared rate limit and back-off, clean stops."""

from __future__ import annotations

import time

import pytest

from tests.support import run_tap


def test_records_come_in_configured_order_whatever_order_responses_arrive(sandbox, tmp_path):
    # The first agents answer slowest, so responses arrive in reverse order.
    latencies = {str(48900 + i): {"latency_ms": 300 - 30 * i} for i in range(8)}
    api = sandbox({"agents": 8, "testers_per_agent": 3, "agent_overrides": latencies})
    concurrent = run_tap(api.config(max_concurrent_agents=8), tmp_path)
    sequential = run_tap(api.config(max_concurrent_agents=1), tmp_path)

    assert concurrent.returncode == sequential.returncode == 0
    assert [r["id"] for r in concurrent.records] == [r["id"] for r in sequential.records]
    agents = [r["agent_no"] for r in concurrent.records]
    assert agents == sorted(agents)
    assert len(concurrent.records) == 24


@pytest.mark.parametrize("concurrency", [1, 3, 6])
def test_no_more_requests_in_flight_than_the_concurrency_setting(sandbox, tmp_path, concurrency):
    api = sandbox({"agents": 12, "testers_per_agent": 2, "latency_ms": 100})
    run = run_tap(api.config(max_concurrent_agents=concurrency), tmp_path)

    assert run.returncode == 0, run.stderr
    assert api.stats()["max_in_flight"] == concurrency
    assert len(run.records) == 24


def test_concurrency_overlaps_latency(sandbox, tmp_path):
    api = sandbox({"agents": 16, "testers_per_agent": 2, "latency_ms": 250})
    started = time.monotonic()
    run = run_tap(api.config(max_concurrent_agents=8), tmp_path)
    elapsed = time.monotonic() - started

    assert run.returncode == 0, run.stderr
    # Sequentially this is 16 x 0.25 s = 4 s of waiting; 8 at a time needs 0.5 s.
    assert elapsed < 3.0


def test_the_rate_limit_is_never_exceeded_and_every_record_arrives(sandbox, tmp_path):
    api = sandbox({"agents": 30, "testers_per_agent": 4, "rate_limit_per_second": 10})
    run = run_tap(api.config(max_requests_per_second=10, max_concurrent_agents=8), tmp_path)

    assert run.returncode == 0, run.stderr
    stats = api.stats()
    assert stats["max_requests_in_1s"] <= 10
    assert stats["by_status"] == {"200": 30}
    assert len(run.records) == 120


def test_one_429_pauses_every_worker_for_its_retry_after(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 24,
            "testers_per_agent": 2,
            "latency_ms": 50,
            "agent_overrides": {
                "48903": {"faults": [{"status": 429, "headers": {"Retry-After": "1"}}]}
            },
        }
    )
    run = run_tap(api.config(max_concurrent_agents=6), tmp_path)

    assert run.returncode == 0, run.stderr
    assert len(run.records) == 48
    log = api.stats()["log"]
    (throttled_at,) = [at for at, _, status in log if status == 429]
    # Requests already under way may land just after; none may start later in the pause.
    in_pause = [at for at, _, _ in log if throttled_at + 0.2 < at < throttled_at + 0.95]
    assert in_pause == []
    assert max(at for at, _, _ in log) > throttled_at + 0.95


def test_the_first_fatal_error_stops_the_run_without_waiting_for_the_rest(sandbox, tmp_path):
    slow = {str(48900 + i): {"latency_ms": 3000} for i in range(2, 40)}
    slow["48901"] = {"faults": [{"status": 401, "times": "always"}]}
    api = sandbox({"agents": 40, "agent_overrides": slow})
    config = api.config(max_concurrent_agents=4, emit_activate_version_messages=True)
    started = time.monotonic()
    run = run_tap(config, tmp_path)
    elapsed = time.monotonic() - started

    assert run.returncode == 1
    assert "agent 48901" in run.last_line
    assert "Traceback" not in run.stderr
    assert elapsed < 2.5, "slow agents in flight are not waited for"
    assert api.stats()["requests"] <= 6, "no new agent is started after the failure"
    assert run.of_type("ACTIVATE_VERSION") == []
