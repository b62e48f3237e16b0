"""SIGINT and SIGTERM mid-run: prompt non-zero exit, whole lines only, no activation."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.support import TAP


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_stops_promptly_without_activating(sandbox, tmp_path, signum):
    api = sandbox(
        {"agents": 4, "testers_per_agent": 200, "agent_overrides": {"48902": {"latency_ms": 20000}}}
    )
    config = api.config(emit_activate_version_messages=True, max_concurrent_agents=2)
    (tmp_path / "config.json").write_text(json.dumps(config))
    # Files, not pipes: an unread pipe would block the tap once it is full.
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(
            [TAP, "--config", str(tmp_path / "config.json")], stdout=out, stderr=err
        )
    deadline = time.monotonic() + 10
    while api.stats()["by_agent"].get("48902", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    sent = time.monotonic()
    process.send_signal(signum)
    process.wait(timeout=10)
    elapsed = time.monotonic() - sent
    stdout, stderr = out_path.read_text(), err_path.read_text()

    assert process.returncode == 128 + signum
    assert elapsed < 3
    messages = [json.loads(line) for line in stdout.splitlines()]
    assert sum(m["type"] == "RECORD" for m in messages) == 400, "two agents were complete"
    assert not any(m["type"] == "ACTIVATE_VERSION" for m in messages)
    assert f"stopped by {signal.Signals(signum).name}" in stderr.splitlines()[-1]
    assert "Traceback" not in stderr


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
