"""Property-based tests: whatever the API answers, valid records or a clear error.

In process: 1,500 generated (status, body) pairs through the client's per-status
policy and the record builder. Over HTTP: 25 generated answers served by the
sandbox to the installed tap. Never an unhandled exception or traceback; every
record emitted matches schemas/testers.json.
"""

from __future__ import annotations

import json
import logging
import typing as t

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_kaleyra_rcs.client import Retry, TestersClient
from tap_kaleyra_rcs.errors import KaleyraError
from tap_kaleyra_rcs.records import COERCERS, build_records
from tap_kaleyra_rcs.settings import parse_settings
from tests.support import SCHEMA, RunningSandbox, run_tap

VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
SECRET = "fuzz-secret-key-0123"  # noqa: S105 - a made-up key the output must not show
CLIENT = TestersClient(
    parse_settings({"sid": "ABC123", "api_key": SECRET, "agent_numbers": ["1"]}),
    logger=logging.getLogger("fuzz"),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["true", "FALSE", "17", "-3", "1769708507204", "", SECRET, "a\u2028b\x85"]),
)
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
        {"id": st.one_of(st.text(min_size=1, max_size=12), st.integers())},
        optional={name: scalars for name in COERCERS if name != "id"},
    ),
    json_values,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "code": st.sampled_from(["RCS902", "RCS601", "RCS904", "RCS500", None, 7]),
        "message": st.text(max_size=30) | st.just(SECRET),
        "data": st.one_of(st.lists(testers, max_size=6), json_values),
    },
)
bodies = st.one_of(
    documents.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    documents.map(lambda d: json.dumps(d).encode()[: max(0, len(json.dumps(d)) - 3)]),
)
statuses = st.one_of(
    st.sampled_from([200] * 6 + [400, 401, 403, 404, 429, 500, 502, 503]),
    st.integers(min_value=100, max_value=599),
)


@settings(max_examples=1500, deadline=None)
@given(status=statuses, body=bodies, retry_after=st.none() | st.text(max_size=30))
def test_any_answer_gives_valid_records_a_retry_or_a_clear_error(status, body, retry_after):
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    try:
        outcome = CLIENT._decide("48900", status, headers, body)
        if isinstance(outcome, Retry):
            assert outcome.reason
            return
        batch = build_records("48900", outcome)
    except KaleyraError as error:
        message = str(error)
        assert len(message.splitlines()) == 1
        assert SECRET not in message
        return
    for record in batch.records:
        VALIDATOR.validate(record)
        assert record["agent_no"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    status=st.one_of(
        st.sampled_from([200] * 4 + [400, 429, 500]), st.integers(min_value=200, max_value=599)
    ),
    body=bodies,
)
def test_the_installed_tap_never_crashes_on_any_answer(tmp_path, status: int, body: bytes):
    api = RunningSandbox(
        {
            "agents": 2,
            "testers_per_agent": 2,
            "agent_overrides": {
                "48901": {"faults": [{"status": status, "body_hex": body.hex(), "times": "always"}]}
            },
        }
    )
    try:
        run = run_tap(api.config(max_retries=0, request_timeout=3), tmp_path, timeout=60)
    finally:
        api.stop()
    assert "Traceback" not in run.stderr
    assert run.returncode in {0, 1}
    records: list[dict[str, t.Any]] = run.records
    for record in records:
        VALIDATOR.validate(record)
    if run.returncode == 1:
        assert run.last_line.startswith("tap-kaleyra-rcs: ")
