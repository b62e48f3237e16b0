"""Every tap setting set through its environment variable reaches the tap under ``meltano run``.

Each value is given as text, as a shell or scheduler exports it, and each test
observes the setting's effect on the real tap: which requests the sandbox saw,
what the tap logged, or what it sent. Settings proven elsewhere through the
environment: stream_maps, stream_map_config, flattening_* and batch_config in
test_capabilities_e2e.py.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from tests.pipelines import duckdb_pipeline, setting_env, spec
from tests.test_meltano_e2e import AGENTS, ALL_TESTERS
from tests.warehouses import free_port, meltano

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]


def _jsonl_agents(pipeline) -> list[str]:
    lines = (pipeline.tmp_path / "testers.jsonl").read_text().splitlines()
    return [json.loads(line)["agent_no"] for line in lines]


def test_sid_api_key_and_endpoint_path(sandbox, tmp_path):
    # The sandbox accepts only these three; meltano.yml's sandbox values would be refused.
    account = {
        "sid": "ENVSID0000000042",
        "api_key": "env-api-key-9f8e7d6c",
        "path": "/wsgw/v1/agent/testersbyagent",
    }
    api = sandbox(spec(**account))
    pipeline = duckdb_pipeline(
        api,
        tmp_path,
        **setting_env(
            sid=account["sid"], api_key=account["api_key"], endpoint_path=account["path"]
        ),
    )
    done = pipeline.run("target-jsonl")

    assert done.returncode == 0, done.stderr[-3000:]
    assert api.stats()["bad_keys"] == 0
    assert len(_jsonl_agents(pipeline)) == ALL_TESTERS
    assert account["api_key"] not in done.stdout + done.stderr


def test_agent_numbers_and_base_url(sandbox, tmp_path):
    api = sandbox(spec())
    pipeline = duckdb_pipeline(
        api,
        tmp_path,
        # meltano.yml's base_url points at this port, where nothing listens.
        KALEYRA_SANDBOX_PORT=str(free_port()),
        **setting_env(agent_numbers='["48903", 48901]', base_url=api.url),
    )
    pipeline.run_ok("target-jsonl")

    assert sorted(api.stats()["by_agent"]) == ["48901", "48903"]
    assert _jsonl_agents(pipeline) == ["48903"] * 8 + ["48901"] * 8


def test_request_timeout(sandbox, tmp_path):
    api = sandbox(spec(agent_overrides={"48902": {"latency_ms": 20000}}))
    pipeline = duckdb_pipeline(api, tmp_path, **setting_env(request_timeout="0.5", max_retries="0"))
    done = pipeline.run("target-jsonl")

    assert done.returncode != 0
    assert "agent 48902: gave up after 1 attempts" in done.stderr
    assert "no answer within request_timeout=0.5 s" in done.stderr


def test_max_retries(sandbox, tmp_path):
    api = sandbox(spec(agent_overrides={"48901": {"faults": [{"status": 503, "times": "always"}]}}))
    pipeline = duckdb_pipeline(
        api, tmp_path, **setting_env(max_retries="2", retry_backoff_seconds="0.01")
    )
    done = pipeline.run("target-jsonl")

    assert done.returncode != 0
    assert api.stats()["by_agent"]["48901"] == 3
    assert "agent 48901: gave up after 3 attempts" in done.stderr


def test_retry_backoff_seconds(sandbox, tmp_path):
    backoff = 0.6  # meltano.yml's sandbox environment sets 0.2
    api = sandbox(spec(agent_overrides={"48900": {"faults": [{"status": 503}]}}))
    pipeline = duckdb_pipeline(api, tmp_path, **setting_env(retry_backoff_seconds=str(backoff)))
    done = pipeline.run("target-jsonl")

    assert done.returncode == 0, done.stderr[-3000:]
    (wait,) = re.findall(r"agent 48900: HTTP 503 .*; retry 1 of 1 in ([0-9.]+) s", done.stderr)
    # The first wait is the back-off times a jitter factor between 0.5 and 1 (one decimal).
    assert backoff * 0.5 - 0.05 <= float(wait) <= backoff + 0.05


def test_max_retry_wait_seconds(sandbox, tmp_path):
    throttled = {"faults": [{"status": 429, "headers": {"Retry-After": "5"}}]}
    api = sandbox(spec(agent_overrides={"48900": throttled}))
    pipeline = duckdb_pipeline(api, tmp_path, **setting_env(max_retry_wait_seconds="1.5"))
    done = pipeline.run("target-jsonl")

    assert done.returncode != 0
    assert "asks to wait 5 s before retrying, more than max_retry_wait_seconds=1.5" in done.stderr
    assert api.stats()["by_agent"]["48900"] == 1


def test_max_concurrent_agents(sandbox, tmp_path):
    # Slow answers: with meltano.yml's 8 workers, all six agents would be in flight at once.
    api = sandbox(spec(latency_ms=300))
    pipeline = duckdb_pipeline(api, tmp_path, **setting_env(max_concurrent_agents="1"))
    pipeline.run_ok("target-jsonl")

    assert api.stats()["max_in_flight"] == 1
    assert sorted(api.stats()["by_agent"]) == AGENTS


def test_max_requests_per_second(sandbox, tmp_path):
    rate = 3.5
    api = sandbox(spec())
    pipeline = duckdb_pipeline(api, tmp_path, **setting_env(max_requests_per_second=str(rate)))
    pipeline.run_ok("target-jsonl")

    stats = api.stats()
    assert stats["requests"] == len(AGENTS)
    # Unlimited, all six requests would arrive within the same second.
    assert stats["max_requests_in_1s"] <= math.ceil(rate)


def test_emit_activate_version_messages(sandbox, tmp_path):
    # meltano.yml turns it on; the variable turns it off.
    pipeline = duckdb_pipeline(
        sandbox(spec()), tmp_path, **setting_env(emit_activate_version_messages="false")
    )
    done = meltano(pipeline.env, "invoke", "tap-kaleyra-rcs")

    assert done.returncode == 0, done.stderr[-3000:]
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [message["type"] for message in messages]
    testers = [m for m in messages if m["type"] == "RECORD" and m["stream"] == "testers"]
    assert len(testers) == ALL_TESTERS
    assert "ACTIVATE_VERSION" not in kinds


def test_pod_and_faker_config_reach_the_config_file(sandbox, tmp_path):
    # pod takes effect only without base_url, i.e. against Kaleyra itself, and
    # faker_config only with the faker package installed: the file the tap
    # reads is what can be checked here.
    pipeline = duckdb_pipeline(
        sandbox(spec()),
        tmp_path,
        **setting_env(pod="na", faker_config={"seed": 7, "locale": ["en_US"]}),
    )
    done = meltano(pipeline.env, "invoke", "--dump=config", "tap-kaleyra-rcs")

    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads(done.stdout)
    assert config["pod"] == "na"
    assert config["faker_config"] == {"seed": 7, "locale": ["en_US"]}
