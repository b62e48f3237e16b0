"""Property-based tests: whatever the API answers, valid records or a clear error.

In process: 1,500 generated (status, headers, body) answers through the client's
per-status policy and the record builder, and 1,000 tester lists through the
record builder alone. Over HTTP: 25 generated answers served
by the sandbox to the installed tap. Never an unhandled exception or traceback;
every record emitted matches schemas/testers.json; no error, retry reason or
output holds the API key or any 8-character piece of it, though the answers
echo pieces of it (in any case, anywhere around the cuts) in codes, messages,
pages and redirect locations. Integer fields get digits of every kind: ASCII,
superscript, circled, Arabic-Indic, full-width, mixed.
"""

from __future__ import annotations

import json
import logging
import os
import string
import typing as t

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_kaleyra_rcs.client import Retry, TestersClient
from tap_kaleyra_rcs.errors import KaleyraError
from tap_kaleyra_rcs.records import COERCERS, AgentTesters, build_records
from tap_kaleyra_rcs.settings import parse_settings
from tests.support import KEY_PIECE, SCHEMA, RunningSandbox, assert_no_key, run_tap

VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
SECRET = "fuzz-Secret-KEY-0123"  # noqa: S105 - a made-up key the output must not show
CLIENT = TestersClient(
    parse_settings({"sid": "ABC123", "api_key": SECRET, "agent_numbers": ["1"]}),
    logger=logging.getLogger("fuzz"),
)
INTEGER_FIELDS = [
    name
    for name, spec in SCHEMA["properties"].items()
    if "integer" in spec["type"] and name in COERCERS
]

key_pieces = st.builds(
    lambda start, length, case: case(SECRET[start : start + length]),
    st.integers(0, len(SECRET) - KEY_PIECE),
    st.integers(KEY_PIECE, len(SECRET)),
    st.sampled_from([str, str.upper, str.lower, str.swapcase]),
)
"""The key, or 8 or more of its characters in a row, in any letter case."""
echoes = st.builds(
    lambda before, piece, after: before + piece + after,
    st.text(max_size=130) | st.integers(0, 130).map(lambda n: "." * n),
    key_pieces,
    st.text(max_size=20),
)
"""Server text echoing the key; up to 130 characters before it, so it lands on the cuts."""
odd_digits = st.builds(
    str.__add__,
    st.sampled_from(["", "", "-", "--", "+", " "]),
    st.text(
        st.sampled_from(string.digits) | st.characters(categories=["Nd", "No"]),
        min_size=1,
        max_size=25,
    ),
)
"""Digit strings of every kind: "²", "①", "١٢", full-width, "--5", 25 digits, mixed with ASCII."""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["true", "FALSE", "17", "-3", "1769708507204", "", "a\u2028b\x85"]),
)
integers_as_sent = st.one_of(
    scalars, odd_digits, st.sampled_from(["²", "①", "١٢", "\uff11\uff12", "1" * 25]), echoes
)
"""What a field coerced to an integer may hold; an echo of the key is never an integer,
so it is quoted in an error (text fields would pass it on as data)."""
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
field_names = st.sampled_from([*COERCERS, "created_at", "new_field", ""])
testers = st.one_of(
    st.dictionaries(field_names, scalars, max_size=10),
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.text(min_size=1, max_size=12), st.integers()),
            **dict.fromkeys(INTEGER_FIELDS, integers_as_sent),
        },
        optional={
            name: scalars for name in COERCERS if name != "id" and name not in INTEGER_FIELDS
        },
    ),
    json_values,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "code": st.sampled_from(["RCS902", "RCS601", "RCS904", "RCS500", None, 7]) | echoes,
        "message": st.text(max_size=30) | echoes,
        "data": st.one_of(st.lists(testers, max_size=6), json_values),
    },
)
successes = st.lists(testers, min_size=1, max_size=6).map(
    lambda data: json.dumps({"code": "RCS902", "data": data}).encode()
)
"""Bodies that reach the record builder, field by field."""
bodies = st.one_of(
    successes,
    documents.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    echoes.map(str.encode),
    documents.map(lambda d: json.dumps(d).encode()[: max(0, len(json.dumps(d)) - 3)]),
)
statuses = st.one_of(
    st.sampled_from([200] * 6 + [301, 302, 400, 401, 403, 404, 429, 500, 502, 503]),
    st.integers(min_value=100, max_value=599),
)
url_safe_pieces = key_pieces.filter(lambda piece: piece.isascii())
locations = st.none() | st.builds(
    lambda template, piece: template.format(piece),
    st.sampled_from(
        [
            "https://{}.example.test/v1",
            "https://user:{}@127.0.0.1:1/v1",
            "https://127.0.0.1:1/{}/v1",
            "https://127.0.0.1:1/v1?api-key={}",
            "/{}",
        ]
    ),
    url_safe_pieces,
)
"""A redirect's Location header: absent, or echoing the key in host, userinfo, path, query."""


def _headers(retry_after: str | None, location: str | None) -> dict[str, str]:
    headers = {"Retry-After": retry_after, "Location": location}
    return {name: value for name, value in headers.items() if value is not None}


def _valid_records_or_a_clear_error(make_records: t.Callable[[], AgentTesters]) -> None:
    """Every record matches the schema, or the error is one line, naming the agent, keyless."""
    try:
        batch = make_records()
    except KaleyraError as error:
        message = str(error)
        assert len(message.splitlines()) == 1
        assert message.startswith("agent 48900: ")
        assert_no_key(message, SECRET)
        return
    for record in batch.records:
        VALIDATOR.validate(record)
        assert record["agent_no"]


@settings(max_examples=1500, deadline=None)
@given(
    status=statuses,
    body=bodies,
    retry_after=st.none() | st.text(max_size=30),
    location=locations,
)
def test_any_answer_gives_valid_records_a_retry_or_a_clear_error(
    status, body, retry_after, location
):
    def decide_then_build() -> AgentTesters:
        outcome = CLIENT._decide("48900", status, _headers(retry_after, location), body)
        if isinstance(outcome, Retry):
            assert outcome.reason
            assert_no_key(outcome.reason, SECRET)
            return AgentTesters("48900", [])
        return build_records("48900", outcome)

    _valid_records_or_a_clear_error(decide_then_build)


@settings(max_examples=1000, deadline=None)
@given(raw_testers=st.lists(testers, max_size=6))
def test_any_tester_list_gives_valid_records_or_a_clear_error(raw_testers):
    # The record builder alone, so that every example reaches the field coercions.
    _valid_records_or_a_clear_error(lambda: build_records("48900", raw_testers))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    status=st.one_of(
        st.sampled_from([200] * 4 + [302, 400, 429, 500]), st.integers(min_value=200, max_value=599)
    ),
    body=bodies,
    location=locations,
)
def test_the_installed_tap_never_crashes_on_any_answer(
    tmp_path, status: int, body: bytes, location
):
    fault = {"status": status, "body_hex": body.hex(), "times": "always"}
    api = RunningSandbox(
        {
            "api_key": SECRET,
            "agents": 2,
            "testers_per_agent": 2,
            "agent_overrides": {
                "48901": {"faults": [{**fault, "headers": _headers(None, location)}]}
            },
        }
    )
    try:
        # run_tap fails the test if stdout or stderr holds any piece of the key.
        run = run_tap(
            api.config(api_key=SECRET, max_retries=0, request_timeout=3), tmp_path, timeout=60
        )
    finally:
        api.stop()
    assert "Traceback" not in run.stderr
    assert run.returncode in {0, 1}
    records: list[dict[str, t.Any]] = run.records
    for record in records:
        VALIDATOR.validate(record)
    if run.returncode == 1:
        assert run.last_line.startswith("tap-kaleyra-rcs: ")


def test_ci_runs_the_same_examples_every_time_and_keeps_no_database():
    ci = settings.get_profile("ci")
    assert ci.derandomize is True
    assert ci.database is None
    assert ci.print_blob is True
    assert settings.get_profile("local").derandomize is False
    expected = "ci" if os.environ.get("CI") else "local"
    assert settings.default.derandomize is (expected == "ci")
    assert (settings.default.database is None) is (expected == "ci")
