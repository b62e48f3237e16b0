"""Faults, hostile input and interruption: the tap recovers exactly or fails clearly.

The rows of the fault matrix live in tests/fault_matrix.py (and docs/reliability.md
is generated from them); the faults that need more than a sandbox scenario are
tested below the matrix.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import jsonschema
import pytest

from tap_kaleyra_rcs.client import TestersClient
from tap_kaleyra_rcs.errors import ConfigurationRejected
from tap_kaleyra_rcs.sandbox import Scenario, default_agents
from tap_kaleyra_rcs.settings import parse_settings
from tests.fault_matrix import DOC, FAULTY_AGENT, MATRIX, MAX_RETRIES, Fault, render
from tests.processes import is_writing, pipe_is_full
from tests.support import SCHEMA, TAP, run_tap
from tests.warehouses import wait_until

if t.TYPE_CHECKING:
    from tests.support import RunningSandbox, TapRun

AGENTS = ["48900", FAULTY_AGENT, "48902", "48903"]
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
DEBUG = {"LOGLEVEL": "DEBUG"}
RETRY_WARNING = re.compile(r"agent (\d+): .*; retry (\d+) of (\d+) in (\d+\.\d) s$")
CLOCK_SLACK = 0.01
"""How far apart two readings of the wall clock and the monotonic clock may drift."""
LOG_STAMP_RESOLUTION = 0.001
"""Log lines carry the time cut to the millisecond."""


def _expected_ids(api) -> list[str]:
    ids = []
    for agent in AGENTS:
        if api.scenario.overrides.get(agent, {}).get("data", "list") == "list":
            ids += [str(tester["id"]) for tester in api.scenario.testers(agent)]
    return ids


@pytest.mark.parametrize("concurrency", [1, 8], ids=["sequential", "concurrent"])
@pytest.mark.parametrize("fault", MATRIX, ids=[fault.id for fault in MATRIX])
def test_fault_matrix(sandbox, tmp_path, fault: Fault, concurrency: int):
    api = sandbox(
        {"agents": AGENTS, "testers_per_agent": 5, "agent_overrides": {FAULTY_AGENT: fault.agent}}
    )
    config = api.config(
        max_retries=MAX_RETRIES,
        retry_backoff_seconds=0.01,
        max_concurrent_agents=concurrency,
        emit_activate_version_messages=True,
        **fault.settings,
    )
    # Sequential runs log at DEBUG (the most output to scan for the key; a traceback
    # may precede the error line there); concurrent runs at the default level.
    debug = concurrency == 1
    started = time.monotonic()
    run = run_tap(config, tmp_path, env=DEBUG if debug else None)
    elapsed = time.monotonic() - started

    assert debug or "Traceback" not in run.stderr
    assert elapsed < 30
    for record in run.records:
        VALIDATOR.validate(record)
    assert api.stats()["by_agent"][FAULTY_AGENT] == fault.requests
    waits = _retry_waits(run, FAULTY_AGENT)
    assert len(waits) == fault.requests - 1, "one warning per retry"
    _assert_server_named_waits_were_kept(api, fault, waits)
    if fault.recovers:
        assert run.returncode == 0, run.last_line
        assert [r["id"] for r in run.records] == _expected_ids(api)
        first = next((r for r in run.records if r["agent_no"] == FAULTY_AGENT), {})
        for name, value in fault.expect.items():
            assert first[name] == value, name
        assert len(run.of_type("ACTIVATE_VERSION")) == 1
    else:
        assert run.returncode == 1
        assert run.last_line.startswith("tap-kaleyra-rcs: error: ")
        for fragment in fault.message:
            assert fragment in run.last_line, run.last_line
        assert {r["agent_no"] for r in run.records} <= {"48900"}, "nothing after the failure"
        assert run.of_type("ACTIVATE_VERSION") == []


def _retry_waits(run: TapRun, agent: str) -> list[float]:
    """The waits the tap announced before each retry of ``agent``, in order."""
    waits = []
    for line in run.stderr.splitlines():
        found = RETRY_WARNING.search(line)
        if found and found[1] == agent:
            assert (int(found[2]), int(found[3])) == (len(waits) + 1, MAX_RETRIES), line
            waits.append(float(found[4]))
    return waits


def _arrivals(api: RunningSandbox, agent: str, count: int) -> list[float]:
    """When each of ``agent``'s ``count`` requests reached the sandbox (monotonic clock)."""

    def answered() -> list[float]:
        return sorted(at for at, who, *_ in list(api.server.stats.log) if who == agent)

    wait_until(lambda: len(answered()) == count, what=f"{count} answered requests of {agent}")
    return answered()


def _assert_server_named_waits_were_kept(
    api: RunningSandbox, fault: Fault, waits: list[float]
) -> None:
    """Each retry after a Retry-After came no sooner than the server asked.

    The n-th request of the faulty agent got the n-th fault of its script. Arrival
    times are taken by the sandbox: the 429 arrived before the tap read it, and the
    retry was sent before it arrived, so their gap is at most the tap's wait.
    """
    script = Scenario({"agent_overrides": {FAULTY_AGENT: fault.agent}})
    served = [script.next_fault(FAULTY_AGENT) or {} for _ in range(fault.requests)]
    named = [
        (index, served[index])
        for index in range(fault.requests - 1)
        if "Retry-After" in served[index].get("headers", {})
        or "retry_after_http_date" in served[index]
    ]
    if not named:
        return
    arrivals = _arrivals(api, FAULTY_AGENT, fault.requests)
    wall_minus_monotonic = time.time() - time.monotonic()
    for index, answer in named:
        asked_at, retried_at = arrivals[index], arrivals[index + 1]
        if "retry_after_http_date" in answer:
            ahead = float(answer["retry_after_http_date"])
            # An HTTP date has whole seconds: the sandbox named a date no earlier
            # than this one, and at most `ahead` seconds after the 429 was sent.
            earliest_date = math.floor(asked_at + wall_minus_monotonic + ahead)
            assert retried_at + wall_minus_monotonic >= earliest_date - CLOCK_SLACK
            assert waits[index] <= ahead + 0.05, "announced with one decimal"
        else:
            seconds = float(answer["headers"]["Retry-After"])
            assert waits[index] == pytest.approx(seconds, abs=0.05), "announced with one decimal"
            assert retried_at - asked_at >= seconds


def test_a_429_holds_every_worker_until_its_retry_after(sandbox, tmp_path):
    workers, pause, others_take = 2, 1.0, 0.2
    throttled, *others = default_agents(10)
    retry_after = {"status": 429, "headers": {"Retry-After": f"{pause:g}"}}
    api = sandbox(
        {
            "agents": [throttled, *others],
            "testers_per_agent": 2,
            # The other agents answer slowly, so that without a shared hold the
            # other worker's next requests would fall inside the pause.
            "latency_ms": others_take * 1000,
            "agent_overrides": {throttled: {"faults": [retry_after], "latency_ms": 0}},
        }
    )
    run = run_tap(api.config(max_concurrent_agents=workers, max_retries=MAX_RETRIES), tmp_path)

    assert run.returncode == 0, run.last_line
    assert len(run.records) == 2 * 10
    asked_at, retried_at = _arrivals(api, throttled, 2)
    assert retried_at - asked_at >= pause
    # The tap warns after it has set the hold. From then on, a request reaches
    # the sandbox before the pause is over only if its worker had sent it already:
    # at most one per other worker.
    held_from = _first_warning_at(run, throttled) + LOG_STAMP_RESOLUTION + CLOCK_SLACK
    during = [
        agent for at, agent, *_ in list(api.server.stats.log) if held_from < at < asked_at + pause
    ]
    assert len(during) <= workers - 1, during


def _first_warning_at(run: TapRun, agent: str) -> float:
    """When the tap announced its first retry of ``agent``, on the monotonic clock."""
    wall_minus_monotonic = time.time() - time.monotonic()
    for line in run.stderr.splitlines():
        found = RETRY_WARNING.search(line)
        if found and found[1] == agent:
            logged = line.split(" | ", 1)[0]
            # The tap logs local time: astimezone() reads a naive time as local.
            stamp = dt.datetime.strptime(logged, "%Y-%m-%d %H:%M:%S,%f").astimezone()
            return stamp.timestamp() - wall_minus_monotonic
    raise AssertionError(f"no retry warning for agent {agent}")


def test_reliability_doc_is_generated_from_the_matrix():
    assert DOC.read_text(encoding="utf-8") == render(), "run: python -m tests.fault_matrix"


def test_every_fault_kind_in_the_matrix_recovers_or_fails_as_documented():
    # Guards the matrix itself: both outcomes are exercised, failures name the agent.
    assert {fault.recovers for fault in MATRIX} == {True, False}
    assert all(fault.message for fault in MATRIX if not fault.recovers)


@pytest.mark.parametrize("concurrency", [1, 8])
def test_connection_refused_fails_naming_the_agent(tmp_path, concurrency):
    # A port bound but not listening refuses connections, and stays ours (no
    # other process can start listening on it) until the run is over.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        config = {
            "sid": "ABC123",
            "api_key": "refused-key-123",
            "agent_numbers": ["48900", "48901"],
            "base_url": f"http://127.0.0.1:{port}",
            "max_retries": 1,
            "retry_backoff_seconds": 0.01,
            "max_concurrent_agents": concurrency,
        }
        run = run_tap(config, tmp_path)

    assert run.returncode == 1
    assert "connection refused" in run.last_line
    # One at a time, the first agent fails first; at once, whichever failed first
    # stops the run.
    named = {"agent 48900"} if concurrency == 1 else {"agent 48900", "agent 48901"}
    assert any(agent in run.last_line for agent in named), run.last_line
    assert "Traceback" not in run.stderr


def test_a_dns_failure_stops_at_once_with_what_to_check(monkeypatch):
    # Resolution fails locally: no query leaves the machine.
    def no_such_host(*_args, **_kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    settings = parse_settings(
        {
            "sid": "ABC123",
            "api_key": "dns-key-123",
            "agent_numbers": ["1"],
            "base_url": "https://api.kaleyra.invalid",
        }
    )
    attempts: list[float] = []
    client = TestersClient(
        settings, logger=__import__("logging").getLogger("t"), sleep=attempts.append
    )
    with pytest.raises(ConfigurationRejected, match="cannot resolve the API host") as caught:
        client.fetch("1")
    assert "dns-key-123" not in str(caught.value)
    assert attempts == [], "not retried"


def test_a_100k_tester_agent_succeeds_with_bounded_memory(sandbox, tmp_path):
    api = sandbox({"agents": 1, "testers_per_agent": 100_000})
    (tmp_path / "config.json").write_text(json.dumps(api.config()))
    with (tmp_path / "out").open("wb") as sink:
        child = subprocess.Popen(
            [TAP, "--config", str(tmp_path / "config.json")], stdout=sink, stderr=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0
    lines = (tmp_path / "out").read_bytes().splitlines()
    assert sum(line.startswith(b'{"type":"RECORD","stream":"testers"') for line in lines) == 100_000
    peak_mb = usage.ru_maxrss / 1024
    sys.stderr.write(f"\npeak memory for one 100,000-tester agent: {peak_mb:.0f} MB\n")
    assert peak_mb < 500


@pytest.mark.parametrize("agent", ["48900&agent_number=48901", "48900#x", "../48900", "48 900"])
def test_agent_numbers_are_sent_only_as_one_query_value(sandbox, tmp_path, agent):
    api = sandbox({"agents": 2})
    run = run_tap(api.config(agent_numbers=[agent], max_retries=0), tmp_path)

    assert run.returncode == 1
    if " " in agent:
        assert "agent_numbers[0]" in run.stderr
        assert api.stats()["requests"] == 0
    else:
        assert api.stats()["by_agent"] == {agent: 1}, "the whole string arrived as the value"
        assert "RCS904" in run.last_line


def test_tls_verification_cannot_be_switched_off_by_empty_bundle_variables(monkeypatch):
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
    settings = parse_settings({"sid": "ABC123", "api_key": "tls-key-123", "agent_numbers": ["1"]})
    client = TestersClient(settings, logger=__import__("logging").getLogger("t"))
    assert client._session.verify is True


def test_sigterm_while_stdout_is_blocked_leaves_only_whole_lines(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 3,
            "testers_per_agent": 20_000,
            "agent_overrides": {"48902": {"latency_ms": 20_000}},
        }
    )
    (tmp_path / "config.json").write_text(
        json.dumps(api.config(emit_activate_version_messages=True))
    )
    child = subprocess.Popen(
        [TAP, "--config", str(tmp_path / "config.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        # Nobody reads: once the pipe is full, the tap's next write must wait in
        # the kernel. Signal it only when it is seen waiting there.
        wait_until(
            lambda: (
                child.poll() is None
                and pipe_is_full(child.stdout.fileno())
                and is_writing(child.pid, 1)
            ),
            timeout=60,
            what="the tap blocked in write(2) on a full stdout pipe",
        )
    finally:
        child.send_signal(signal.SIGTERM)
        stdout, stderr = child.communicate(timeout=30)

    assert child.returncode == 128 + signal.SIGTERM
    lines = stdout.split(b"\n")
    assert lines[-1] == b"", "output ends with a complete line"
    messages = [json.loads(line) for line in lines[:-1]]
    assert not any(m["type"] == "ACTIVATE_VERSION" for m in messages)
    assert b"stopped by SIGTERM" in stderr.splitlines()[-1]


def test_fault_rows_cover_what_the_issue_lists():
    names = " ".join(fault.id for fault in MATRIX)
    for must in (
        "HTTP date",
        "429 that never stops",
        "500 once",
        "504 forever",
        "non-UTF-8",
        "'data' is an object",
        "code RCS500",
        "created_date as a digit string",
        'override_dcs_check as "true"',
        "id as a number",
        "never answers",
    ):
        assert must in names
    assert Path(DOC).exists()
