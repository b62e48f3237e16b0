"""Each HTTP outcome decided on purpose: fail at once, retry, or fail naming the agent."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from tap_kaleyra_rcs import client as client_module
from tap_kaleyra_rcs.client import TestersClient
from tap_kaleyra_rcs.errors import RetriesExhausted
from tap_kaleyra_rcs.settings import parse_settings
from tests.support import run_tap

FAST_RETRIES = {"max_retries": 3, "retry_backoff_seconds": 0.01, "max_concurrent_agents": 1}


def _faults(*faults: dict) -> dict:
    return {
        "agents": 2,
        "testers_per_agent": 3,
        "agent_overrides": {"48901": {"faults": list(faults)}},
    }


def _assert_clean_failure(run, *fragments: str) -> None:
    assert run.returncode == 1, run.stderr
    assert run.last_line.startswith("tap-kaleyra-rcs: error: ")
    for fragment in fragments:
        assert fragment in run.last_line, run.last_line
    assert "Traceback" not in run.stderr
    assert "unhandled error" not in run.stderr, "an anticipated failure is not 'unhandled'"
    assert not any(m["type"] == "ACTIVATE_VERSION" for m in run.messages)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_stop_at_once_without_retries(sandbox, tmp_path, status):
    api = sandbox(_faults({"status": status, "times": "always"}))
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    _assert_clean_failure(run, "agent 48901", f"HTTP {status}", "api_key", "pod")
    assert api.stats()["by_agent"]["48901"] == 1


def test_a_wrong_api_key_is_a_401_that_names_what_to_check(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    run = run_tap(api.config(api_key="not-the-right-key"), tmp_path)

    _assert_clean_failure(run, "HTTP 401", "api_key and sid")
    assert api.stats()["requests"] == 1


def test_rcs_channel_not_enabled_stops_at_once(sandbox, tmp_path):
    body = {"code": "RCS601", "message": "RCS channel is not enabled for this user"}
    api = sandbox(_faults({"status": 400, "body": body, "times": "always"}))
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    _assert_clean_failure(run, "RCS601", "RCS channel is enabled")
    assert api.stats()["by_agent"]["48901"] == 1


def test_rcs601_inside_an_http_200_is_still_a_configuration_failure(sandbox, tmp_path):
    body = {"code": "RCS601", "message": "RCS channel is not enabled for this user"}
    api = sandbox(_faults({"status": 200, "body": body, "times": "always"}))
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    _assert_clean_failure(run, "RCS601", "HTTP 200")


def test_unknown_agent_names_agent_status_code_and_message(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    run = run_tap(api.config(agent_numbers=["48900", "77777"]), tmp_path)

    _assert_clean_failure(run, "agent 77777", "HTTP 400", "RCS904", "Agent Not Found")
    assert api.stats()["by_agent"]["77777"] == 1


@pytest.mark.parametrize("status", [501, 505])
def test_server_errors_that_mean_never_stop_at_once_without_retries(sandbox, tmp_path, status):
    api = sandbox(_faults({"status": status, "times": "always"}))
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    _assert_clean_failure(run, "agent 48901", f"HTTP {status}", "check base_url and endpoint_path")
    assert "gave up" not in run.last_line
    assert "agent number" not in run.last_line
    assert api.stats()["by_agent"]["48901"] == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 408])
def test_transient_statuses_are_retried_and_every_record_arrives(sandbox, tmp_path, status):
    api = sandbox(_faults({"status": status, "times": 2}))
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    assert run.returncode == 0, run.stderr
    assert len(run.records) == 6
    assert len({r["id"] for r in run.records}) == 6
    assert api.stats()["by_agent"] == {"48900": 1, "48901": 3}


def test_retry_after_seconds_is_honoured(sandbox, tmp_path):
    api = sandbox(_faults({"status": 429, "headers": {"Retry-After": "1"}}))
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    assert run.returncode == 0, run.stderr
    throttled_at, retried_at = [at for at, agent, _, _ in api.stats()["log"] if agent == "48901"]
    assert retried_at - throttled_at >= 1.0
    assert "retry 1 of 3 in 1.0 s" in run.stderr


def _waits_between_attempts(api, monkeypatch, jitter: str, **settings) -> list[float]:
    """The back-off waits of one agent whose every attempt gets a 503.

    ``jitter`` picks the end of the jitter range the random draw returns; the
    draws themselves are checked to span half to all of the wait.
    """
    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return low if jitter == "shortest" else high

    monkeypatch.setattr(client_module.random, "uniform", uniform)
    waits: list[float] = []
    client = TestersClient(
        parse_settings(api.config(**settings)),
        logger=logging.getLogger("tests.backoff"),
        sleep=waits.append,
    )
    with pytest.raises(RetriesExhausted, match="gave up after"):
        client.fetch("48901")
    assert draws == [(0.5, 1.0)] * len(waits)
    return waits


@pytest.mark.parametrize(
    ("jitter", "expected"),
    [("longest", [1, 2, 4, 5, 5, 5]), ("shortest", [0.5, 1, 2, 2.5, 2.5, 2.5])],
)
def test_back_off_doubles_with_jitter_up_to_the_longest_wait(
    sandbox, monkeypatch, jitter, expected
):
    api = sandbox(_faults({"status": 503, "times": "always"}))
    waits = _waits_between_attempts(
        api,
        monkeypatch,
        jitter,
        max_retries=6,
        retry_backoff_seconds=1,
        max_retry_wait_seconds=5,
    )

    assert waits == expected
    assert api.stats()["by_agent"]["48901"] == 7


def test_a_retry_after_longer_than_the_cap_fails_at_once(sandbox, tmp_path):
    api = sandbox(_faults({"status": 503, "headers": {"Retry-After": "3600"}}))
    run = run_tap(api.config(max_retry_wait_seconds=5, **FAST_RETRIES), tmp_path)

    _assert_clean_failure(run, "agent 48901", "3600 s", "max_retry_wait_seconds")
    assert api.stats()["by_agent"]["48901"] == 1


def test_persistent_server_errors_give_up_after_the_retry_limit(sandbox, tmp_path):
    api = sandbox(_faults({"status": 503, "times": "always"}))
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    _assert_clean_failure(run, "agent 48901", "gave up after 4 attempts", "HTTP 503")
    assert api.stats()["by_agent"]["48901"] == 4


def test_a_server_that_never_answers_hits_the_request_timeout_and_is_retried(sandbox, tmp_path):
    api = sandbox(_faults({"kind": "hang", "seconds": 30}))
    started = time.monotonic()
    run = run_tap(api.config(request_timeout=0.5, **FAST_RETRIES), tmp_path)

    assert run.returncode == 0, run.stderr
    assert len(run.records) == 6
    assert "no answer within request_timeout=0.5 s" in run.stderr
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("kind", ["drop", "reset"])
def test_dropped_and_reset_connections_are_retried(sandbox, tmp_path, kind):
    api = sandbox(_faults({"kind": kind, "status": 200}))
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    assert run.returncode == 0, run.stderr
    assert len(run.records) == 6
    assert api.stats()["by_agent"]["48901"] == 2


def test_an_html_gateway_page_is_retried_then_reported_with_a_safe_snippet(sandbox, tmp_path):
    html = "<html><body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>"
    api = sandbox(
        _faults({"status": 502, "body_text": html, "content_type": "text/html", "times": "always"})
    )
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    _assert_clean_failure(run, "agent 48901", "HTTP 502", "502 Bad Gateway")
    assert "\n" not in run.last_line


def test_a_200_that_is_not_json_fails_clearly_without_retries(sandbox, tmp_path):
    api = sandbox(
        _faults({"status": 200, "body_text": "<html>login page</html>", "times": "always"})
    )
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    _assert_clean_failure(run, "agent 48901", "HTTP 200", "not JSON")
    assert api.stats()["by_agent"]["48901"] == 1


@pytest.mark.parametrize(
    ("body_text", "expected"),
    [
        ("", "with an empty body"),
        ('{"code":"RCS902","data":[{"id":"a"', "the body was cut off after 34 bytes"),
    ],
)
def test_a_200_cut_off_on_the_way_is_retried_then_reported(sandbox, tmp_path, body_text, expected):
    api = sandbox(_faults({"status": 200, "body_text": body_text, "times": "always"}))
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    _assert_clean_failure(run, "agent 48901", "gave up after", "HTTP 200", expected)
    assert api.stats()["by_agent"]["48901"] == FAST_RETRIES["max_retries"] + 1


def test_the_wrong_endpoint_path_is_a_configuration_failure(sandbox, tmp_path):
    api = sandbox({"agents": 1, "path": "/v1/{sid}/rcs/agent/testersbyagent"})
    run = run_tap(api.config(), tmp_path)

    _assert_clean_failure(run, "HTTP 404", "endpoint_path")


def test_the_other_documented_path_is_reachable_by_setting_alone(sandbox, tmp_path):
    api = sandbox({"agents": 1, "path": "/v1/{sid}/rcs/agent/testersbyagent"})
    run = run_tap(api.config(endpoint_path="/v1/{sid}/rcs/agent/testersbyagent"), tmp_path)

    assert run.returncode == 0, run.stderr
    assert len(run.records) == 5


@pytest.fixture
def closed_port():
    """A loopback port that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        yield unused.getsockname()[1]


def test_connection_refused_is_retried_then_reported(tmp_path, closed_port):
    config = {
        "sid": "ABC123",
        "api_key": "k-123456",
        "agent_numbers": ["1"],
        "base_url": f"http://127.0.0.1:{closed_port}",
        **FAST_RETRIES,
        "max_retries": 1,
    }
    run = run_tap(config, tmp_path)

    _assert_clean_failure(run, "agent 1", "gave up after 2 attempts", "connection refused")
    assert f"at base_url http://127.0.0.1:{closed_port}: check base_url" in run.last_line
    assert "Kaleyra may be degraded" not in run.last_line, "the likelier cause is named instead"


def test_a_base_url_with_an_unset_port_fails_at_once_in_one_line(tmp_path):
    config = {"sid": "ABC123", "api_key": "k-123456", "agent_numbers": ["1"]}
    run = run_tap({**config, "base_url": "http://127.0.0.1:"}, tmp_path)

    assert run.returncode == 1
    assert run.last_line == (
        "tap-kaleyra-rcs: error: 1 setting problem (listed above); first: "
        "base_url: 'http://127.0.0.1:' has a ':' with no port after it "
        "(an unset port variable?); give the port, or drop the ':'"
    )
    assert "Traceback" not in run.stderr
    assert run.records == []


def test_a_redirect_is_not_followed_so_the_key_never_reaches_another_host(sandbox, tmp_path):
    elsewhere = sandbox({"agents": 1, "api_key": "the-other-hosts-key"})
    location = f"{elsewhere.url}/v1/SANDBOX0000SID01/rcs/agenttester/testersbyagent"
    api = sandbox(
        _faults(
            {"status": 302, "headers": {"Location": location}, "body_text": "", "times": "always"}
        )
    )
    run = run_tap(api.config(**FAST_RETRIES), tmp_path)

    _assert_clean_failure(run, "HTTP 302", "redirect", "127.0.0.1", "base_url")
    assert elsewhere.stats()["requests"] == 0
