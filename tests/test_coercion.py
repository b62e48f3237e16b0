"""Integers arrive as JSON numbers or as ASCII digit strings; anything else is a clear error.

``str.isdigit`` is true for "²" or "①", which ``int`` refuses with a traceback,
and ``int`` accepts Arabic-Indic and full-width digits or "1_000", which no one
would expect in an id: only an optional minus and 1 to 19 ASCII digits are
coerced; every other string stops the run naming the agent and the field.
"""

from __future__ import annotations

import json

import pytest

from tap_kaleyra_rcs.client import decode_testers
from tap_kaleyra_rcs.drift import FAIL_ADVICE, DriftPolicy
from tap_kaleyra_rcs.errors import MalformedResponse
from tap_kaleyra_rcs.records import COERCERS, FittingTester, FittingTesters, build_records
from tests.support import run_tap

AGENT = "48901"
NOT_WHOLE_NUMBERS = [
    pytest.param("²", id="superscript two"),
    pytest.param("①", id="circled one"),
    pytest.param("١٢", id="Arabic-Indic twelve"),
    pytest.param("\uff11\uff12", id="full-width twelve"),
    pytest.param("--5", id="double minus"),
    pytest.param("1" * 25, id="25 digits"),
    pytest.param("1²", id="ASCII digit then superscript"),
    pytest.param("1_000", id="underscore"),
    pytest.param("+5", id="plus sign"),
    pytest.param("12 34", id="inner space"),
    pytest.param("-", id="minus alone"),
    pytest.param("", id="empty"),
]


def _tester(**fields: object) -> dict[str, object]:
    return {"id": "t-1", "agent_no": AGENT, **fields}


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("17", 17),
        ("-3", -3),
        (" 42 ", 42),
        ("\t-8\n", -8),
        ("0", 0),
        ("007", 7),
        ("9" * 19, 10**19 - 1),
        ("-" + "9" * 19, -(10**19 - 1)),
    ],
)
def test_ascii_digit_strings_become_the_integer_they_spell(text, number):
    (record,) = build_records(AGENT, [_tester(carrierid=text)]).records
    assert record["carrierid"] == number
    assert type(record["carrierid"]) is int


def test_a_created_date_digit_string_becomes_a_timestamp():
    (record,) = build_records(AGENT, [_tester(created_date=" 1769708507204 ")]).records
    assert record["created_date"] == 1769708507204
    assert record["created_at"] == "2026-01-29T17:41:47.204Z"


@pytest.mark.parametrize("text", NOT_WHOLE_NUMBERS)
@pytest.mark.parametrize("field", ["carrierid", "created_date"])
def test_other_digit_strings_are_an_error_naming_agent_and_field(field, text):
    with pytest.raises(MalformedResponse) as caught:
        build_records(AGENT, [_tester(**{field: text})], drift=DriftPolicy("fail"))
    message = str(caught.value)
    assert message.startswith(f"agent {AGENT}: tester #0 field {field!r} is str ")
    assert "expected a whole number" in message
    assert message.endswith(FAIL_ADVICE)


@pytest.mark.parametrize("field", ["carrierid", "created_date"])
@pytest.mark.parametrize("text", NOT_WHOLE_NUMBERS)
def test_other_digit_strings_are_kept_beside_a_null_typed_column(field, text):
    (record,) = build_records(AGENT, [_tester(**{field: text})]).records

    assert record[field] is None
    assert json.loads(record["drifted_fields"]) == {field: text}


@pytest.mark.parametrize("text", NOT_WHOLE_NUMBERS[:6])
def test_with_fail_the_tap_stops_cleanly_on_a_digit_it_cannot_read(sandbox, tmp_path, text):
    api = sandbox(
        {
            "agents": ["48900", AGENT],
            "agent_overrides": {AGENT: {"set": {"0": {"carrierid": text}}}},
        }
    )
    run = run_tap(api.config(max_concurrent_agents=1, schema_changes="fail"), tmp_path)

    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert run.last_line.startswith(f"tap-kaleyra-rcs: error: agent {AGENT}: "), run.last_line
    assert "field 'carrierid'" in run.last_line
    assert {record["agent_no"] for record in run.records} == {"48900"}, "nothing of agent 48901"


def _well_formed(tester_id: str, agent_no: str = AGENT) -> dict[str, object]:
    """A tester in the API's usual shape: after the first, recognised by its shape alone."""
    return {
        "id": tester_id,
        "agent_no": agent_no,
        "phoneno": "+910000000001",
        "created_date": 1700000000000,
        "test_status": "ACCEPTED",
    }


def test_a_tester_of_a_known_shape_with_an_empty_id_still_stops_the_run():
    with pytest.raises(MalformedResponse, match=r"tester #1 has no 'id'"):
        build_records(AGENT, [_well_formed("t-1"), _well_formed("")])


def test_a_tester_of_a_known_shape_with_an_empty_agent_no_gets_the_synced_agent():
    built = build_records(AGENT, [_well_formed("t-1"), _well_formed("t-2", agent_no="")])
    assert [record["agent_no"] for record in built.records] == [AGENT, AGENT]


def test_the_fitting_shape_has_every_documented_field():
    assert set(FittingTester.__struct_fields__) == set(COERCERS)


_FULL = {
    "phoneno": "919900000001",
    "test_status": "ACCEPTED",
    "status": "ACTIVE",
    "agent_no": "48900",
    "id": "a",
    "override_dcs_check": False,
    "created_date": 1769708507204,
    "carrierid": 310,
}


@pytest.mark.parametrize(
    "testers",
    [
        [_FULL, {**_FULL, "id": "b", "phoneno": None, "carrierid": None, "status": "ÄCTIVE ☃"}],
        [{k: v for k, v in _FULL.items() if k != "carrierid"}] * 2,
        [_FULL, {k: v for k, v in _FULL.items() if k not in {"created_date", "phoneno"}}],
        [_FULL, {**_FULL, "agent_no": ""}, {**_FULL, "agent_no": None}],
        [{**_FULL, "id": ""}],
        [{**_FULL, "created_date": 10**18}],
        [],
    ],
    ids=[
        "full",
        "a-field-never-sent",
        "fields-missing",
        "no-agent",
        "empty-id",
        "not-millis",
        "none",
    ],
)
def test_an_answer_decoded_as_fitting_builds_what_the_field_by_field_path_builds(testers):
    body = json.dumps({"code": "RCS902", "message": "found", "data": testers}).encode()

    def built(raw: list) -> tuple[list, dict] | str:
        try:
            batch = build_records("48900", raw)
        except MalformedResponse as failure:
            return str(failure)
        return batch.records, batch.changes

    fitting = decode_testers(body, "48900")
    assert type(fitting) is FittingTesters
    assert built(fitting) == built(json.loads(body)["data"])


def test_an_answer_with_a_value_to_coerce_is_checked_field_by_field():
    body = json.dumps({"code": "RCS902", "data": [{**_FULL, "carrierid": "310"}]}).encode()

    assert type(decode_testers(body, "48900")) is list
