"""A 200 whose body was cut off is retried; a 200 that is not the API fails at once."""

from __future__ import annotations

import logging

import msgspec
import pytest

from tap_kaleyra_rcs.client import Retry, TestersClient, decode_testers, is_cut_off
from tap_kaleyra_rcs.errors import MalformedResponse, RetriesExhausted
from tap_kaleyra_rcs.settings import parse_settings

WHOLE = (
    '{"code":"RCS902","message":"Tester details found successfully","data":'
    '[{"id":"a1","created_date":1769708507204,"score":-1.5e+3,"name":"h\\"\u00e9llo",'
    '"override_dcs_check":true,"carrierid":null}]}'
).encode()
NOT_THE_API = [
    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    b"<!DOCTYPE html><html><form action='/login'>Sign in</form>",
    b"Service temporarily unavailable for maintenance",
    b"\xff\xfe{",
    b"[]",
    b'"ok"',
    b"12",
    b'{"code":"RCS902"}x',
    b'{"code" "RCS902"}',
    b'{"n":1e,"data":[]}',
    # Cut, but not a cut object or array: no API answer starts like these.
    b'"Service unavail',
    b"tru",
    b"-",
]


def _decode_error(body: bytes) -> msgspec.DecodeError | None:
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        return error
    return None


def test_the_whole_body_decodes():
    assert decode_testers(WHOLE, "9")[0]["id"] == "a1"


@pytest.mark.parametrize("length", range(1, len(WHOLE)))
def test_every_cut_of_a_json_body_is_retried(length):
    # Every cut point: mid-string, mid-number (also after '-', '.' and 'e'),
    # mid-literal, inside a multi-byte character, right after '"data":['.
    outcome = decode_testers(WHOLE[:length], "9")

    assert isinstance(outcome, Retry)
    assert outcome.reason == (
        f"HTTP 200 but the body was cut off after {length} bytes (incomplete JSON)"
    )
    assert outcome.retry_after is None, "the normal back-off applies"


@pytest.mark.parametrize("body", [b"", b"  \r\n"])
def test_an_empty_200_is_retried(body):
    outcome = decode_testers(body, "9")

    assert isinstance(outcome, Retry)
    assert "empty body" in outcome.reason


@pytest.mark.parametrize("body", NOT_THE_API)
def test_a_whole_body_that_is_not_the_api_fails_at_once(body):
    with pytest.raises(MalformedResponse, match="agent 9: "):
        decode_testers(body, "9")


@pytest.mark.parametrize("body", [body for body in NOT_THE_API if _decode_error(body)])
def test_what_is_not_json_is_not_taken_for_a_cut(body):
    error = _decode_error(body)
    assert error is not None
    assert not is_cut_off(body, error)


def test_msgspec_still_says_how_a_cut_body_ends():
    # is_cut_off reads these messages: a msgspec upgrade that rewords them must fail here.
    assert "truncated" in str(_decode_error(b'{"data":[{"id":"a'))
    assert str(_decode_error(b'{"n":-')).endswith("invalid number (byte 6)")
    assert str(_decode_error(b'{"n":1e,}')).endswith("invalid number (byte 7)")


def test_a_body_cut_off_every_time_gives_up_naming_the_agent_after_the_normal_backoff(sandbox):
    cut = WHOLE[:40].decode()
    api = sandbox(
        {
            "agents": ["48900"],
            "agent_overrides": {
                "48900": {"faults": [{"status": 200, "body_text": cut, "times": "always"}]}
            },
        }
    )
    settings = parse_settings(api.config(max_retries=3, retry_backoff_seconds=0.5))
    waits: list[float] = []
    client = TestersClient(settings, logger=logging.getLogger("test"), sleep=waits.append)

    with pytest.raises(RetriesExhausted) as caught:
        client.fetch("48900")

    message = str(caught.value)
    assert message.startswith("agent 48900: gave up after 4 attempts")
    assert "the body was cut off after 40 bytes" in message
    assert api.stats()["by_agent"] == {"48900": 4}
    # Exponential back-off with jitter: 0.5 x 2^n x [0.5, 1].
    assert len(waits) == 3
    for attempt, wait in enumerate(waits):
        assert 0.25 * 2**attempt <= wait <= 0.5 * 2**attempt, waits


def test_a_body_cut_off_once_is_fetched_whole_on_the_next_attempt(sandbox):
    api = sandbox({"agents": ["48900"]})
    whole = api.scenario.success_body("48900")
    cut = whole[: whole.index(b'"data":[') + len(b'"data":[')].decode()
    api.use(
        {
            "agents": ["48900"],
            "agent_overrides": {"48900": {"faults": [{"status": 200, "body_text": cut}]}},
        }
    )
    settings = parse_settings(api.config())
    client = TestersClient(settings, logger=logging.getLogger("test"), sleep=lambda _: None)

    testers = client.fetch("48900")

    assert [tester["id"] for tester in testers] == [
        tester["id"] for tester in api.scenario.testers("48900")
    ]
    assert api.stats()["by_agent"] == {"48900": 2}


def test_whole_bodies_leave_the_connection_for_the_next_request(sandbox):
    """Each body read in one go still hands its connection back to the session's pool."""
    api = sandbox({"agents": 3, "testers_per_agent": 200})
    client = TestersClient(parse_settings(api.config()), logger=logging.getLogger("test"))

    for agent in api.scenario.agents:
        assert len(client.fetch(agent)) == 200

    pools = client._session.get_adapter(api.url).poolmanager.pools
    opened = [pools[key].num_connections for key in pools.keys()]  # noqa: SIM118 - no iterator
    assert opened == [1], "one keep-alive connection served all three"
