"""Settings are checked and normalised before any request."""

from __future__ import annotations

import pytest

from tap_kaleyra_rcs.settings import ENDPOINT_PATHS, POD_BASE_URLS, SettingsError, parse_settings

VALID = {
    "sid": "XXXXX6913850XXXX",
    "api_key": "k3b8497f58a94e84b671aca43",
    "agent_numbers": ["48900"],
}


def _problems(**changes) -> list[str]:
    config = {**VALID, **changes}
    config = {k: v for k, v in config.items() if v is not ...}
    with pytest.raises(SettingsError) as caught:
        parse_settings(config)
    return caught.value.problems


def test_defaults_use_the_in_pod_and_the_documented_path():
    settings = parse_settings(VALID)
    assert settings.base_url == POD_BASE_URLS["in"]
    assert settings.endpoint_url == (
        "https://rcs-api.in.kaleyra.io/v1/XXXXX6913850XXXX/rcs/agenttester/testersbyagent"
    )
    assert settings.max_concurrent_agents >= 1
    assert settings.max_retries == 5


def test_the_na_pod_chooses_the_na_base_url():
    assert parse_settings({**VALID, "pod": "na"}).base_url == "https://rcs-api.na.kaleyra.io"


def test_base_url_overrides_the_pod_and_loses_its_trailing_slash():
    settings = parse_settings({**VALID, "pod": "na", "base_url": "https://rcs-api.na.kaleyra.ai/"})
    assert settings.base_url == "https://rcs-api.na.kaleyra.ai"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost", "http://[::1]:9", "http://127.10.0.3"]
)
def test_plain_http_is_allowed_for_loopback_hosts(url):
    assert parse_settings({**VALID, "base_url": url}).base_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://rcs-api.in.kaleyra.io",
        "http://10.0.0.1",
        "ftp://rcs-api.in.kaleyra.io",
        "rcs-api.in.kaleyra.io",
        "https://user:pw@host.example",
        "https://host.example/?a=1",
        "https://host.example:notaport",
    ],
)
def test_unsafe_or_malformed_base_urls_are_refused(url):
    (problem,) = _problems(base_url=url)
    assert problem.startswith("base_url:")


@pytest.mark.parametrize("sid", ["abc/def", "..", "a?b", "a#b", "a b", "", ...])
def test_a_sid_that_could_change_the_url_path_is_refused(sid):
    (problem,) = _problems(sid=sid)
    assert problem.startswith("sid:")


def test_agent_numbers_are_normalised_deduplicated_and_ordered():
    settings = parse_settings({**VALID, "agent_numbers": [48901, "48900", " 48901", 48900]})
    assert settings.agent_numbers == ("48901", "48900")


def test_a_single_agent_number_may_be_given_without_a_list():
    assert parse_settings({**VALID, "agent_numbers": 48900}).agent_numbers == ("48900",)


@pytest.mark.parametrize(
    ("numbers", "prefix"),
    [
        ([], "agent_numbers:"),
        (..., "agent_numbers:"),
        (["48900", ""], "agent_numbers[1]:"),
        ([True], "agent_numbers[0]:"),
        ([1.5], "agent_numbers[0]:"),
        (["48 900"], "agent_numbers[0]:"),
    ],
)
def test_missing_blank_or_odd_agent_numbers_are_refused(numbers, prefix):
    (problem,) = _problems(agent_numbers=numbers)
    assert problem.startswith(prefix)


def test_an_api_key_with_spaces_is_refused_without_echoing_it():
    (problem,) = _problems(api_key="abc def-secret")
    assert problem.startswith("api_key:")
    assert "secret" not in problem


def test_every_problem_is_reported_at_once():
    problems = _problems(sid="a/b", api_key="", agent_numbers=[], pod="eu", max_retries=99)
    assert [p.split(":")[0] for p in problems] == [
        "sid",
        "api_key",
        "agent_numbers",
        "pod",
        "max_retries",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("request_timeout", 0),
        ("request_timeout", "30"),
        ("max_retries", -1),
        ("max_retries", 2.5),
        ("max_concurrent_agents", 0),
        ("max_requests_per_second", 0),
        ("retry_backoff_seconds", 61),
        ("endpoint_path", "/v1/{sid}/../admin"),
    ],
)
def test_out_of_range_numbers_and_unknown_paths_are_refused(name, value):
    (problem,) = _problems(**{name: value})
    assert problem.startswith(f"{name}:")


def test_every_documented_path_is_accepted():
    for path in ENDPOINT_PATHS:
        assert parse_settings({**VALID, "endpoint_path": path}).endpoint_path == path


def test_the_api_key_is_not_in_the_settings_repr():
    assert VALID["api_key"] not in repr(parse_settings(VALID))
