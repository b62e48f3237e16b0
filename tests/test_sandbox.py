"""The sandbox as users start it: its command line, scenario file and control endpoints."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest
import requests

from tap_kaleyra_rcs import sandbox as sandbox_command
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


@pytest.mark.parametrize(
    ("scenario", "named"),
    [
        (
            {"agent": 6},
            (
                "'agent' is not a scenario key; the keys here are: sid, api_key, path, agents, "
                "testers_per_agent, seed, latency_ms, rate_limit_per_second, cache_megabytes, "
                "agent_overrides"
            ),
        ),
        ({"agents": -1}, "agents must be a count of 1 or more"),
        ({"agents": []}, "agents must be a count of 1 or more"),
        ({"agents": True}, "agents must be"),
        ({"testers_per_agent": 2.5}, "testers_per_agent must be a whole number"),
        ({"latency_ms": -1}, "latency_ms must be a number of milliseconds"),
        ({"rate_limit_per_second": 0}, "rate_limit_per_second must be null or a number above 0"),
        ({"cache_megabytes": "big"}, "cache_megabytes must be a whole number"),
        ({"agent_overrides": []}, "agent_overrides must be an object"),
        ({"agent_overrides": {"48900": 3}}, "agent_overrides.48900 must be a JSON object"),
        ({"agent_overrides": {"48900": {"test": 3}}}, "agent_overrides.48900.'test' is not"),
        ({"agent_overrides": {"48900": {"remove": [-1]}}}, "remove must be a list of tester"),
        ({"agent_overrides": {"48900": {"hold_until_in_flight": 0}}}, "hold_until_in_flight"),
        ({"agent_overrides": {"48900": {"faults": [{"status": 5}]}}}, "faults[0].status must"),
        ({"agent_overrides": {"48900": {"faults": [{"status": 600}]}}}, "100 to 599, not 600"),
        ({"agent_overrides": {"48900": {"faults": [{}, {"times": 0}]}}}, "faults[1].times"),
        ({"agent_overrides": {"48900": {"faults": [{"kind": "boom"}]}}}, "drop, hang or reset"),
        ({"agent_overrides": {"48900": {"faults": [{"body_hex": "zz"}]}}}, "hexadecimal"),
        ({"agent_overrides": {"48900": {"faults": [{"headers": {"A": 1}}]}}}, "header names"),
        ([], "the scenario must be a JSON object, not list"),
    ],
)
def test_a_scenario_docs_do_not_allow_is_one_line_and_exit_2(tmp_path, capsys, scenario, named):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))

    assert sandbox_command.main(["--scenario", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"tap-kaleyra-rcs-sandbox: error: --scenario {path}: ")
    assert named in error
    assert len(error.splitlines()) == 1


def test_every_documented_scenario_key_is_accepted(sandbox):
    every_key = {
        "sid": "SID1", "api_key": "k", "path": "/v1/{sid}/x", "agents": ["1", 2, 0],
        "testers_per_agent": 0, "seed": -3, "latency_ms": 0.5, "rate_limit_per_second": None,
        "cache_megabytes": 0,
        "agent_overrides": {"1": {
            "latency_ms": 0, "testers": 2, "set": {}, "unset": {}, "remove": [0],
            "extra_fields": {}, "data": {"any": 1}, "code": "RCS902", "message": "m",
            "hold_until_in_flight": 1, "hold_timeout_seconds": 0,
            "faults": [
                {"status": 503, "body": None, "headers": {"Retry-After": "1"}, "times": "always",
                 "content_type": "text/plain", "retry_after_http_date": 0},
                {"body_text": "x", "times": 1}, {"body_hex": "00ff", "status": 599},
                {"status": 100},
                {"kind": "hang", "seconds": 0}, {"kind": "drop"}, {"kind": "reset"},
            ],
        }},
    }  # fmt: skip
    assert sandbox(every_key).url.startswith("http://127.0.0.1:")


def test_a_posted_scenario_docs_do_not_allow_is_refused_and_the_old_one_kept(sandbox):
    api = sandbox({"agents": 1})
    refused = requests.post(f"{api.url}/_sandbox/scenario", data='{"agents": 0}', timeout=10)

    assert refused.status_code == 400
    assert "agents must be a count of 1 or more" in refused.json()["message"]
    assert _get(api.url, "48900").status_code == 200


def test_the_sandbox_on_a_busy_port_says_so_in_one_line(sandbox, capsys):
    busy = sandbox().url.rsplit(":", 1)[1]

    assert sandbox_command.main(["--port", busy]) == 2
    error = capsys.readouterr().err
    assert error == (
        f"tap-kaleyra-rcs-sandbox: error: port {busy} is already in use: "
        "give another --port, or 0 for any free one\n"
    )


def _get(url: str, agent: str) -> requests.Response:
    return requests.get(
        f"{url}{API_PATH}", params={"agent_number": agent}, headers=HEADERS, timeout=30
    )


def test_the_log_gives_each_request_its_arrival_status_and_end(sandbox):
    api = sandbox({"agents": 2, "agent_overrides": {"48901": {"latency_ms": 200}}})
    _get(api.url, "48900")
    _get(api.url, "48901")

    (first, second) = api.stats()["log"]
    assert first[:3] == [0.0, "48900", 200]
    assert second[1:3] == ["48901", 200]
    assert first[3] <= second[0], "one after the other"
    assert second[3] - second[0] >= 0.2, "the latency is inside the request"
    assert api.stats()["in_flight"] == 0


def test_a_held_agent_is_answered_once_enough_requests_are_in_flight(sandbox):
    hold = {"hold_until_in_flight": 2, "hold_timeout_seconds": 30}
    api = sandbox({"agents": 2, "agent_overrides": {"48900": hold}})
    held = threading.Thread(target=_get, args=(api.url, "48900"))
    held.start()
    assert api.server.stats.wait_for_in_flight(1, timeout=30)
    assert _get(api.url, "48901").status_code == 200
    held.join(30)

    log = {agent: (arrived, ended) for arrived, agent, _, ended in api.stats()["log"]}
    assert log["48900"][1] >= log["48901"][0], "answered only once the second one came"
    assert log["48900"][1] - log["48900"][0] < 30, "released by the second one, not the timeout"
    assert api.stats()["max_in_flight"] == 2


def test_a_hold_that_is_never_met_ends_after_its_timeout(sandbox):
    hold = {"hold_until_in_flight": 2, "hold_timeout_seconds": 0.3}
    api = sandbox({"agents": 1, "agent_overrides": {"48900": hold}})

    assert _get(api.url, "48900").status_code == 200
    ((arrived, _, _, ended),) = api.stats()["log"]
    assert ended - arrived >= 0.3


def test_closing_the_sandbox_ends_requests_still_waiting(sandbox):
    api = sandbox({"agents": 1, "agent_overrides": {"48900": {"faults": [{"kind": "hang"}]}}})
    failures: list[Exception] = []

    def hang() -> None:
        try:
            _get(api.url, "48900")
        except requests.ConnectionError as exc:
            failures.append(exc)

    waiting = threading.Thread(target=hang)
    waiting.start()
    assert api.server.stats.wait_for_in_flight(1, timeout=30)
    api.stop()
    waiting.join(30)

    assert not waiting.is_alive()
    assert len(failures) == 1, "the hang (an hour) ended with the connection closed"
