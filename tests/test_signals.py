"""SIGINT and SIGTERM mid-run: prompt non-zero exit, whole lines only, no activation."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.support import TAP
from tests.warehouses import wait_until

SLOW_AGENT_SECONDS = 600
"""Agent 48902 answers this late: far longer than any wait below, so it never completes."""
PROMPT_SECONDS = 10
"""docs/reliability.md: a signal stops the run "within seconds" (on a loaded machine)."""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_stops_promptly_without_activating(sandbox, tmp_path, signum):
    api = sandbox(
        {
            "agents": 4,
            "testers_per_agent": 200,
            "agent_overrides": {"48902": {"latency_ms": SLOW_AGENT_SECONDS * 1000}},
        }
    )
    config = api.config(emit_activate_version_messages=True, max_concurrent_agents=2)
    (tmp_path / "config.json").write_text(json.dumps(config))
    # Files, not pipes: an unread pipe would block the tap once it is full.
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(
            [TAP, "--config", str(tmp_path / "config.json")], stdout=out, stderr=err
        )
    complete = [t["id"] for agent in ("48900", "48901") for t in api.scenario.testers(agent)]
    try:
        # Records go out in agent order and each agent's are flushed together, its
        # testers then its observations: the first two agents' are all out (twice
        # len(complete) RECORD lines) while the tap waits for 48902.
        wait_until(
            lambda: (
                _whole_records(out_path) >= 2 * len(complete)
                and api.stats()["by_agent"].get("48902", 0) == 1
            ),
            what="the first two agents' records while 48902 is being fetched",
        )
        sent = time.monotonic()
        process.send_signal(signum)
        process.wait(timeout=SLOW_AGENT_SECONDS / 2)
        elapsed = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stdout, stderr = out_path.read_text(), err_path.read_text()

    assert process.returncode == 128 + signum
    assert elapsed < PROMPT_SECONDS, "it stopped without waiting for the slow agent"
    messages = [json.loads(line) for line in stdout.splitlines()]
    records = [
        m["record"]["id"] for m in messages if m["type"] == "RECORD" and m["stream"] == "testers"
    ]
    assert records == complete, "exactly the agents before the slow one, nothing after it"
    observed = [
        m["record"]["id"]
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == "testers_observations"
    ]
    assert observed == complete, "what the tap received before the signal is history"
    assert not any(m["type"] == "ACTIVATE_VERSION" for m in messages)
    assert f"stopped by {signal.Signals(signum).name}" in stderr.splitlines()[-1]
    assert "Traceback" not in stderr


def _whole_records(path) -> int:
    """RECORD lines written so far, counting only lines that have their newline."""
    text = path.read_bytes()
    return text[: text.rfind(b"\n") + 1].count(b'"type":"RECORD"')


def test_a_target_that_stops_reading_gets_a_one_line_error(sandbox, tmp_path):
    api = sandbox({"agents": 20, "testers_per_agent": 1000})
    (tmp_path / "config.json").write_text(json.dumps(api.config()))
    process = subprocess.Popen(
        [TAP, "--config", str(tmp_path / "config.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert json.loads(process.stdout.readline())["type"] == "SCHEMA"
    process.stdout.close()  # the target died
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 1
    text = stderr.decode()
    assert "closed it" in text.splitlines()[-1]
    assert "Traceback" not in text
    assert "Exception ignored" not in text
