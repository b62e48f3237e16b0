"""Concurrent agents: same output as sequential, shared rate limit and back-off, clean stops.

Times here come from the sandbox's own per-request log (arrival and end of each
request, in seconds since the first arrival), never from the tap's process start,
so interpreter start-up and a loaded machine do not move them.
"""

from __future__ import annotations

import pytest

from tap_kaleyra_rcs.sandbox import default_agents
from tests.support import TAP, run_tap


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
def test_exactly_the_configured_number_of_agents_are_in_flight_at_once(
    sandbox, tmp_path, concurrency
):
    # The first `concurrency` agents are answered only once that many requests are
    # in flight together: the peak is reached however slow the machine is, and a
    # tap with fewer workers would leave them waiting out the hold and fall short.
    hold = {"hold_until_in_flight": concurrency}
    api = sandbox(
        {
            "agents": 12,
            "testers_per_agent": 2,
            "latency_ms": 100,
            "agent_overrides": dict.fromkeys(default_agents(concurrency), hold),
        }
    )
    run = run_tap(api.config(max_concurrent_agents=concurrency), tmp_path)

    assert run.returncode == 0, run.stderr
    assert api.stats()["max_in_flight"] == concurrency
    assert len(run.records) == 24


def test_concurrency_overlaps_latency(sandbox, tmp_path):
    agents, latency, concurrency = 16, 0.25, 8
    api = sandbox({"agents": agents, "testers_per_agent": 2, "latency_ms": latency * 1000})
    run = run_tap(api.config(max_concurrent_agents=concurrency), tmp_path)

    assert run.returncode == 0, run.stderr
    log = api.stats()["log"]
    assert len(log) == agents
    # One at a time, the requests alone take agents x latency (4 s); 8 at a time
    # need 2 x latency. Less than half the sequential time proves real overlap.
    served_for = max(ended for _, _, _, ended in log)
    assert served_for < agents * latency / 2


def test_the_rate_limit_is_kept_and_every_record_arrives(sandbox, tmp_path):
    rate = 10
    # The sandbox throttles at twice the tap's limit: a request may reach it up to
    # a second late (a loaded machine) and the run still counts as within the limit,
    # while a tap that ignored its limit sends all 30 at once and meets 429s.
    api = sandbox({"agents": 30, "testers_per_agent": 4, "rate_limit_per_second": 2 * rate})
    run = run_tap(api.config(max_requests_per_second=rate, max_concurrent_agents=8), tmp_path)

    assert run.returncode == 0, run.stderr
    stats = api.stats()
    assert stats["by_status"] == {"200": 30}
    assert len(run.records) == 120
    # The pacer starts one request every 1.05 / rate s: 30 requests span at least
    # 29 such intervals, less however late the first one reached the sandbox.
    arrivals = [at for at, _, _, _ in stats["log"]]
    assert max(arrivals) - min(arrivals) > 29 * 1.05 / rate - 1.0


def _index(agent: str) -> int:
    return int(agent) - 48900


@pytest.mark.parametrize(
    ("fault", "pause", "config"),
    [
        ({"status": 429, "headers": {"Retry-After": "2"}}, 2.0, {}),
        ({"status": 429}, 2.0, {"retry_backoff_seconds": 2.0}),
    ],
    ids=["retry-after", "no-retry-after-waits-retry_backoff_seconds"],
)
def test_one_429_pauses_every_worker(sandbox, tmp_path, fault, pause, config):
    workers, latency = 4, 0.5
    # The first agent is throttled at once; the others are still being answered
    # when the 429 arrives. Their workers' next requests (agents `workers` and on,
    # well inside the prefetch window) must wait out the whole pause.
    overrides = {"48900": {"latency_ms": 0, "faults": [fault]}}
    api = sandbox(
        {
            "agents": 3 * workers,
            "testers_per_agent": 2,
            "latency_ms": latency * 1000,
            "agent_overrides": overrides,
        }
    )
    run = run_tap(api.config(max_concurrent_agents=workers, **config), tmp_path)

    assert run.returncode == 0, run.stderr
    assert len(run.records) == 2 * 3 * workers
    log = api.stats()["log"]
    (throttled_at,) = [at for at, _, status, _ in log if status == 429]
    # A request after the tap saw the 429 starts no earlier than the 429's arrival
    # plus the pause. The tap sees the 429 long before the others' `latency` is up.
    in_pause = [
        agent
        for at, agent, _, _ in log
        if _index(agent) >= workers and throttled_at < at < throttled_at + pause
    ]
    assert in_pause == [], "no worker starts another agent during the pause"
    (retried_at,) = [at for at, agent, status, _ in log if agent == "48900" and status == 200]
    assert retried_at >= throttled_at + pause


def test_at_most_twice_the_concurrency_agents_are_fetched_ahead(sandbox, tmp_path):
    workers = 2
    # README: "At most 2 x `max_concurrent_agents` fetched agents wait in memory".
    # While the first agent is being answered, nothing can be handed on, so every
    # request that arrives before that answer is an agent fetched ahead.
    api = sandbox(
        {"agents": 20, "testers_per_agent": 2, "agent_overrides": {"48900": {"latency_ms": 1500}}}
    )
    run = run_tap(api.config(max_concurrent_agents=workers), tmp_path)

    assert run.returncode == 0, run.stderr
    assert len(run.records) == 40
    log = api.stats()["log"]
    (first_answered,) = [ended for _, agent, _, ended in log if agent == "48900"]
    started_meanwhile = [agent for at, agent, _, _ in log if at < first_answered]
    assert len(started_meanwhile) <= 2 * workers, started_meanwhile


def test_the_first_fatal_error_stops_the_run_without_waiting_for_the_rest(sandbox, tmp_path):
    workers = 4
    slow = {str(48900 + i): {"latency_ms": 60_000} for i in range(2, 40)}
    # The 401 is sent only once every worker has a request in the sandbox: the
    # slow ones (a minute each) are then certainly in flight when the run fails.
    slow["48901"] = {
        "hold_until_in_flight": workers,
        "faults": [{"status": 401, "times": "always"}],
    }
    api = sandbox({"agents": 40, "agent_overrides": slow})
    config = api.config(max_concurrent_agents=workers, emit_activate_version_messages=True)
    # The installed command: that the process exits with requests still in flight
    # is the behaviour under test.
    run = run_tap(config, tmp_path, executable=TAP)

    assert run.returncode == 1
    assert "agent 48901" in run.last_line
    assert "Traceback" not in run.stderr
    stats = api.stats()
    assert stats["in_flight"] >= workers - 1, "the tap exited without waiting for slow agents"
    # 48900 is answered at once, so its worker starts one more agent; no other is
    # started, before or after the failure.
    assert stats["requests"] <= workers + 1, "no new agent is started after the failure"
    assert run.of_type("ACTIVATE_VERSION") == []
