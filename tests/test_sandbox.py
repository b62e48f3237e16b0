"""The sandbox as users start it: its command line, scenario file and control endpoints."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from tap_kaleyra_rcs.sandbox import DEFAULT_API_KEY, DEFAULT_SID
from tests.support import SANDBOX

API_PATH = f"/v1/{DEFAULT_SID}/rcs/agenttester/testersbyagent"
HEADERS = {"api-key": DEFAULT_API_KEY, "Content-Type": "application/json"}


@pytest.fixture
def sandbox_process(tmp_path):
    """The installed sandbox command, started with a scenario file and one override."""
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"agents": 2, "testers_per_agent": 4, "seed": 3}))
    process = subprocess.Popen(
        [SANDBOX, "--scenario", str(scenario), "--testers", "6"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    yield url
    process.terminate()
    process.wait(timeout=10)
    process.stdout.close()


def _testers(url: str, agent: str) -> requests.Response:
    return requests.get(url + API_PATH, params={"agent_number": agent}, headers=HEADERS, timeout=10)


def test_the_command_line_overrides_the_scenario_file(sandbox_process):
    assert sandbox_process.startswith("http://127.0.0.1:")
    answer = _testers(sandbox_process, "48901").json()
    assert answer["code"] == "RCS902"
    assert len(answer["data"]) == 6, "--testers 6 wins over the file's 4"
    assert _testers(sandbox_process, "48902").status_code == 400, "the file's 2 agents"


def test_stats_count_requests_and_reset_zeroes_them(sandbox_process):
    _testers(sandbox_process, "48900")
    _testers(sandbox_process, "77777")
    stats = requests.get(f"{sandbox_process}/_sandbox/stats", timeout=10).json()
    assert stats["by_agent"] == {"48900": 1, "77777": 1}
    assert stats["by_status"] == {"200": 1, "400": 1}

    requests.post(f"{sandbox_process}/_sandbox/reset", timeout=10)
    assert requests.get(f"{sandbox_process}/_sandbox/stats", timeout=10).json()["requests"] == 0


def test_a_posted_scenario_is_served_from_the_next_request(sandbox_process):
    spec = {
        "agents": ["555"],
        "testers_per_agent": 1,
        "agent_overrides": {"555": {"faults": [{"status": 503}]}},
    }
    requests.post(f"{sandbox_process}/_sandbox/scenario", data=json.dumps(spec), timeout=10)

    assert _testers(sandbox_process, "555").status_code == 503
    assert len(_testers(sandbox_process, "555").json()["data"]) == 1
    assert _testers(sandbox_process, "48900").status_code == 400


def test_the_api_refuses_a_wrong_key_a_wrong_method_and_a_wrong_path(sandbox_process):
    wrong_key = requests.get(
        sandbox_process + API_PATH,
        params={"agent_number": "48900"},
        headers={**HEADERS, "api-key": "nope"},
        timeout=10,
    )
    assert (wrong_key.status_code, wrong_key.json()["code"]) == (401, "RCS401")
    wrong_method = requests.post(sandbox_process + API_PATH, timeout=10)
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "RCS405")
    assert (
        requests.get(sandbox_process + "/v1/other", headers=HEADERS, timeout=10).status_code == 404
    )


def test_a_bad_scenario_file_is_a_one_line_error(tmp_path):
    scenario = tmp_path / "scenario.json"
    scenario.write_text("{not json")
    done = subprocess.run(
        [SANDBOX, "--scenario", str(scenario)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("tap-kaleyra-rcs-sandbox: error: ")
    assert len(done.stderr.splitlines()) == 1
