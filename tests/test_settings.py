"""Settings are checked and normalised before any request."""

from __future__ import annotations

import re
import typing as t
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from tap_kaleyra_rcs.settings import (
    ENDPOINT_PATHS,
    POD_BASE_URLS,
    Settings,
    SettingsError,
    parse_settings,
)
from tap_kaleyra_rcs.tap import TapKaleyraRcs

ROOT = Path(__file__).resolve().parent.parent

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


def _pod_of(settings: Settings) -> str:
    (pod,) = [pod for pod, url in POD_BASE_URLS.items() if url == settings.base_url]
    return pod


IN_EFFECT: dict[str, t.Callable[[Settings], object]] = {
    "pod": _pod_of,
    "endpoint_path": lambda s: s.endpoint_path,
    "request_timeout": lambda s: s.request_timeout,
    "max_retries": lambda s: s.max_retries,
    "retry_backoff_seconds": lambda s: s.retry_backoff_seconds,
    "max_retry_wait_seconds": lambda s: s.max_retry_wait_seconds,
    "max_concurrent_agents": lambda s: s.max_concurrent_agents,
    "unknown_agents": lambda s: s.unknown_agents,
    "trust_empty_answers": lambda s: s.trust_empty_answers,
    "schema_changes": lambda s: s.schema_changes,
}
"""How to read, from the checked settings, the value a default gives each setting."""


def _readme_defaults() -> dict[str, str]:
    """Setting -> Default column of the README's settings table ("None": no default)."""
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0]
    rows = [line.strip("|").split("|") for line in table.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): cells[2].strip() for cells in rows[1:]}


def _meltano_defaults() -> dict[str, object]:
    """Setting -> ``value:`` of the extractor's settings in meltano.yml."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (extractor,) = [e for e in project["plugins"]["extractors"] if e["name"] == "tap-kaleyra-rcs"]
    return {s["name"]: s["value"] for s in extractor["settings"] if "value" in s}


def test_every_default_in_effect_is_the_documented_one():
    declared = {
        name: spec["default"]
        for name, spec in TapKaleyraRcs.config_jsonschema["properties"].items()
        if "default" in spec
    }
    readme = _readme_defaults()
    meltano = _meltano_defaults()
    settings = parse_settings(VALID)
    stream = TapKaleyraRcs(config=VALID).streams["testers"]
    in_effect = {name: read(settings) for name, read in IN_EFFECT.items()}
    in_effect["emit_activate_version_messages"] = stream.activates_version_at_end

    assert set(declared) == set(in_effect), "every default is applied by the tap"
    assert {name for name, value in readme.items() if value != "None"} == set(declared)
    assert set(meltano) == set(declared)
    for name, default in declared.items():
        assert in_effect[name] == default, name
        assert readme[name] == str(default), name
        assert meltano[name] == default, name


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
        "http://evil-localhost",
        "http://localhost.example.com",
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


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:", "https://host.example:/v1", "http://[::1]:", "http://localhost: "]
)
def test_a_colon_with_no_port_after_it_is_refused_naming_the_unset_port(url):
    (problem,) = _problems(base_url=url)
    assert problem == (
        f"base_url: {url.strip()!r} has a ':' with no port after it (an unset port "
        "variable?); give the port, or drop the ':'"
    )


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


NUMERIC_SETTINGS = (
    "request_timeout",
    "max_retries",
    "retry_backoff_seconds",
    "max_retry_wait_seconds",
    "max_concurrent_agents",
    "max_requests_per_second",
)
"""Each numeric setting; Settings holds it under the same name."""


@pytest.mark.parametrize("name", NUMERIC_SETTINGS)
def test_both_bounds_a_refusal_states_are_accepted_and_just_beyond_is_not(name):
    (problem,) = _problems(**{name: -1_000_000})
    found = re.fullmatch(rf"{name}: must be between (\S+) and (\S+), got -1e\+06", problem)
    assert found, problem
    for bound in found.groups():
        given = Decimal(bound) if "." in bound else int(bound)
        settings = parse_settings({**VALID, name: given})
        assert getattr(settings, name) == float(given), bound
    low, high = (Decimal(bound) for bound in found.groups())
    step = Decimal("0.001")
    for beyond in (low - step, high + step):
        (refused,) = _problems(**{name: beyond})
        assert refused.startswith(f"{name}: must be between {found[1]} and {found[2]}"), refused


DESCRIBED_RANGE = re.compile(r"\((\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)[ ;)]")
"""The range a numeric setting's description states, e.g. (1-64; ...) or (0.1-600 s)."""


def _types(schema: t.Mapping[str, t.Any]) -> list[str]:
    types = schema.get("type", [])
    return [types] if isinstance(types, str) else list(types)


@pytest.mark.parametrize(
    "name",
    [
        name
        for name, schema in TapKaleyraRcs.config_jsonschema["properties"].items()
        # The tap's own settings (Settings holds each checked value), not the SDK's.
        if name in Settings.__dataclass_fields__ and {"integer", "number"} & set(_types(schema))
    ],
)
def test_the_range_a_numeric_setting_describes_is_the_range_it_accepts(name):
    schema = TapKaleyraRcs.config_jsonschema["properties"][name]
    found = DESCRIBED_RANGE.search(schema["description"])
    assert found, f"{name}: the description states no range like (1-64): {schema['description']}"
    low, high = (Decimal(bound) for bound in found.groups())
    whole = "integer" in _types(schema)

    def given(value: Decimal) -> int | Decimal:
        return int(value) if whole else value

    for bound in (low, high):
        assert getattr(parse_settings({**VALID, name: given(bound)}), name) == float(bound)
    for step in {Decimal(1), Decimal(1) if whole else Decimal("0.001")}:
        for beyond in (low - step, high + step):
            (refused,) = _problems(**{name: given(beyond)})
            assert refused.startswith(f"{name}: must be between "), refused
