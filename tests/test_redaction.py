"""The API key never reaches the output, wherever an answer echoes it and wherever it is cut.

A Kaleyra error body, a proxy's page or a redirect may echo the API key, whole or
cut short. The tap shortens what it quotes: a code or message and a body's
snippet to 120 characters, a body to the bytes it decodes at all, a field value
to 40 characters. So the key is placed on each side of each cut: some characters
before it, a few before it, exactly at it and just after it. ``run_tap`` scans
every run for every 8-character piece of the key; these tests also check that the
key's first character never follows the text the server wrote just before it,
which catches a key cut down to fewer than 8 characters.
"""

from __future__ import annotations

import json
import logging
import typing as t
from dataclasses import dataclass

import pytest

from tap_kaleyra_rcs import errors as errors_module
from tap_kaleyra_rcs.client import _SNIPPET_LENGTH, Retry, TestersClient, safe_snippet
from tap_kaleyra_rcs.drift import DriftPolicy
from tap_kaleyra_rcs.errors import KaleyraError, MalformedResponse
from tap_kaleyra_rcs.phones import PhoneHasher
from tap_kaleyra_rcs.records import build_records
from tap_kaleyra_rcs.settings import parse_settings
from tests.support import assert_no_key, key_piece_in, run_tap

KEY = "Rcs-Test-KEY-7f3a9c2e"
"""A made-up key; mixed case, as a host name holding it arrives lower-cased."""
DECOY = "D" * len(KEY)
HASH_KEY = "Hash-Secret-KEY-wXq7zLm9"
"""A made-up phoneno_hash_key, the other secret: redacted like the API key."""
"""A key of the same length that no answer echoes: the same windows, nothing redacted."""
AGENT = "48901"
MARK = " the key is "
"""What the server writes just before the key: the key's first character never follows it."""
BYTE_WINDOW = (_SNIPPET_LENGTH + len(KEY)) * 4
"""Bytes of a body decoded for a snippet when KEY is the key in use: the longest key
past the 120-character cut, at 4 bytes per character."""
VALUE_CUT = 40
"""Characters of a field value quoted in a coercion error."""


@dataclass(frozen=True)
class Carrier:
    """Where in an answer the server puts the key, and the cut that text goes through."""

    name: str
    cut: int

    def body(self, echoed: str, start: int) -> bytes:
        """An answer with ``echoed`` starting at character (or byte) ``start`` of the cut text."""
        lead = "." * (start - len(MARK)) + MARK
        text = f"{lead}{echoed} and the rest of what the server says"
        if self.name == "message":
            return json.dumps({"code": "RCS904", "message": text}).encode()
        if self.name == "code":
            return json.dumps({"code": text, "message": "Refused"}).encode()
        if self.name == "page":  # not JSON: quoted as a snippet
            return text.encode()
        # Control characters collapse to one space, so the end of the decoded
        # bytes lands inside the 120-character snippet.
        return b"\x01" * (start - len(MARK)) + f"{MARK}{echoed} and the rest".encode()


CARRIERS = {
    "message": Carrier("message", _SNIPPET_LENGTH),
    "code": Carrier("code", _SNIPPET_LENGTH),
    "page": Carrier("page", _SNIPPET_LENGTH),
    "bytes": Carrier("bytes", BYTE_WINDOW),
}
PLACES = [
    pytest.param(KEY, -12, id="key 12 before the cut"),
    pytest.param(KEY, -3, id="key 3 before the cut"),
    pytest.param(KEY, 0, id="key at the cut"),
    pytest.param(KEY, 1, id="key just after the cut"),
    pytest.param(KEY[:10], -40, id="key echoed cut short, before the cut"),
    pytest.param(KEY[:10], -5, id="key echoed cut short, across the cut"),
]
"""Where the key starts, relative to the cut, for the runs of the installed tap."""


def assert_key_not_shown(text: str, echoed: str) -> None:
    """No piece of the key, and not even its first character where the key was."""
    assert_no_key(text, KEY)
    # Leading space left out: a snippet starting with the mark has it stripped.
    assert (MARK.lstrip() + echoed[0]).lower() not in text.lower(), "the key's start survived"


# -- The installed tap over HTTP -------------------------------------------------------------

HTTP_CASES = [
    (200, "page"),
    (200, "bytes"),
    (200, "message"),
    (400, "message"),
    (400, "code"),
    (400, "page"),
    (401, "message"),
    (403, "code"),
    (401, "bytes"),
    (503, "message"),
    (500, "code"),
    (502, "page"),
    (500, "bytes"),
]
"""Every status family through each of its paths: 200 (not JSON, or an error code),
400 (agent refused), 401/403 (configuration refused), 5xx (retried, then given up)."""


def _serving(sandbox, **agent: t.Any):
    return sandbox(
        {
            "api_key": KEY,
            "agents": ["48900", AGENT],
            "testers_per_agent": 2,
            "agent_overrides": {AGENT: agent},
        }
    )


def _run(api, tmp_path):
    config = api.config(api_key=KEY, max_retries=1, max_concurrent_agents=1, schema_changes="fail")
    run = run_tap(config, tmp_path)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("tap-kaleyra-rcs:")]
    assert errors == [run.last_line], "exactly one error line, and it is the last"
    assert run.last_line.startswith(f"tap-kaleyra-rcs: error: agent {AGENT}: "), run.last_line
    return run


@pytest.mark.parametrize(("echoed", "offset"), PLACES)
@pytest.mark.parametrize("case", HTTP_CASES, ids=[f"{s} {c}" for s, c in HTTP_CASES])
def test_a_key_echoed_at_any_cut_is_not_in_the_output(sandbox, tmp_path, case, echoed, offset):
    status, carrier = case
    where = CARRIERS[carrier]
    body = where.body(echoed, where.cut + offset)
    api = _serving(sandbox, faults=[{"status": status, "body_hex": body.hex(), "times": "always"}])
    run = _run(api, tmp_path)

    assert f"HTTP {status}" in run.last_line
    assert_key_not_shown(run.stdout + run.stderr, echoed)


@pytest.mark.parametrize("status", [301, 302, 307])
@pytest.mark.parametrize(
    ("location", "named_host"),
    [
        pytest.param(f"https://{KEY}.example.test/v1/x", ".example.test", id="host"),
        pytest.param(f"https://user:{KEY}@127.0.0.1:1/v1/x", "127.0.0.1:1", id="userinfo"),
        pytest.param(f"https://127.0.0.1:1/{KEY}/x", "127.0.0.1:1", id="path"),
        pytest.param(f"https://127.0.0.1:1/x?api-key={KEY}", "127.0.0.1:1", id="query"),
    ],
)
def test_a_key_in_a_redirect_location_is_not_in_the_output(
    sandbox, tmp_path, status, location, named_host
):
    redirect = {"status": status, "headers": {"Location": location}, "body_text": ""}
    api = _serving(sandbox, faults=[{**redirect, "times": "always"}])
    run = _run(api, tmp_path)

    assert f"HTTP {status} redirect to " in run.last_line
    assert named_host in run.last_line, "the host is still named, without the key"
    assert api.stats()["by_agent"][AGENT] == 1, "not retried, not followed"


@pytest.mark.parametrize("offset", [-12, -3, 0])
def test_a_key_in_a_field_value_quoted_in_an_error_is_not_in_the_output(sandbox, tmp_path, offset):
    # The value is quoted as repr(["...the key is KEY..."]): "['" comes first.
    value = ["." * (VALUE_CUT + offset - len(MARK) - 2) + MARK + KEY]
    api = _serving(sandbox, set={"0": {"status": value}})
    run = _run(api, tmp_path)

    assert "field 'status'" in run.last_line
    assert_key_not_shown(run.stderr, KEY)


def test_an_unknown_field_named_after_the_key_is_warned_about_without_it(sandbox, tmp_path):
    api = _serving(sandbox, extra_fields={f"echo {KEY} x": 1})
    run = run_tap(api.config(api_key=KEY), tmp_path)

    assert run.returncode == 0, run.stderr[-2000:]
    (warning,) = [line for line in run.stderr.splitlines() if "new field" in line]
    assert "'echo *** x'" in warning
    assert_key_not_shown(run.stdout + run.stderr, KEY)
    kept = {r.get("drifted_fields") for r in run.records if r["agent_no"] == AGENT}
    assert kept == {'{"echo *** x":1}'}, "kept, the key redacted from the field's name"


def test_the_phone_hash_key_echoed_in_a_quoted_value_is_not_in_the_output(sandbox, tmp_path):
    # Short enough to be quoted whole: only redaction keeps the key out.
    api = _serving(sandbox, set={"0": {"carrierid": f"echo {HASH_KEY}"}})
    config = api.config(
        api_key=KEY, phoneno_hash_key=HASH_KEY, max_retries=1, schema_changes="fail"
    )
    run = run_tap(config, tmp_path)

    assert run.returncode == 1
    assert run.last_line.startswith(f"tap-kaleyra-rcs: error: agent {AGENT}: tester #0 field")
    assert "'echo ***'" in run.last_line
    assert_no_key(run.stdout + run.stderr, HASH_KEY)


def test_a_key_in_a_value_kept_in_drifted_fields_is_redacted(sandbox, tmp_path):
    api = _serving(sandbox, set={"0": {"carrierid": f"echo {KEY}"}})
    run = run_tap(api.config(api_key=KEY), tmp_path)

    assert run.returncode == 0, run.stderr[-2000:]
    assert_key_not_shown(run.stdout + run.stderr, KEY)
    (drifted,) = [r["drifted_fields"] for r in run.records if r.get("drifted_fields")]
    assert drifted == '{"carrierid":"echo ***"}'


def test_a_huge_field_value_is_quoted_short_and_without_the_key(sandbox, tmp_path):
    api = _serving(sandbox, set={"0": {"carrierid": "x" * 100_000 + KEY}})
    run = _run(api, tmp_path)

    assert "field 'carrierid'" in run.last_line
    assert len(run.last_line) < 400
    assert_key_not_shown(run.stderr, KEY)


# -- In process: every position around every cut ---------------------------------------------


@pytest.fixture
def client(monkeypatch) -> TestersClient:
    """A client whose key, KEY, is the only key in use."""
    monkeypatch.setattr(errors_module, "_SECRETS", set())
    settings = parse_settings({"sid": "ABC123", "api_key": KEY, "agent_numbers": [AGENT]})
    return TestersClient(settings, logger=logging.getLogger("redaction"))


def _shown(client: TestersClient, status: int, body: bytes) -> str:
    """What the tap would print about this answer: the error, or the retry's reason."""
    try:
        outcome = client._decide(AGENT, status, {}, body)
    except KaleyraError as error:
        message = str(error)
        assert message.startswith(f"agent {AGENT}: ")
        assert len(message.splitlines()) == 1
        return message
    assert isinstance(outcome, Retry), "an answer echoing text is never data"
    return outcome.reason


@pytest.mark.parametrize("status", [200, 400, 401, 503])
@pytest.mark.parametrize("carrier", list(CARRIERS))
def test_every_position_around_every_cut_hides_the_key(client, status, carrier):
    where = CARRIERS[carrier]
    for echoed in (KEY, KEY[:10]):
        for offset in range(-len(echoed) - 2, 4):
            shown = _shown(client, status, where.body(echoed, where.cut + offset))
            assert f"HTTP {status}" in shown, (offset, shown)
            assert_key_not_shown(shown, echoed)


@pytest.mark.parametrize("status", [200, 400, 503])
@pytest.mark.parametrize("carrier", list(CARRIERS))
def test_the_key_is_placed_where_each_cut_falls(monkeypatch, client, status, carrier):
    # With a decoy key of the same length in use, KEY is plain text: 12 characters
    # before the cut some of it shows, at the cut none does.
    monkeypatch.setattr(errors_module, "_SECRETS", {DECOY})
    where = CARRIERS[carrier]
    before = _shown(client, status, where.body(KEY, where.cut - 12))
    at = _shown(client, status, where.body(KEY, where.cut))
    assert (MARK + KEY[:3]).strip() in before, before
    assert (MARK + KEY[0]).strip() not in at, at


def test_every_position_around_the_cut_of_a_quoted_field_value_hides_the_key(client):
    for offset in range(-len(KEY) - 2, 4):
        value = ["." * (VALUE_CUT + offset - len(MARK) - 2) + MARK + KEY]
        tester = {"id": "a", "agent_no": AGENT, "status": value}
        with pytest.raises(MalformedResponse) as caught:
            build_records(AGENT, [tester], drift=DriftPolicy("fail"))
        assert "field 'status'" in str(caught.value)
        assert_key_not_shown(str(caught.value), KEY)


# -- The scan itself -------------------------------------------------------------------------


def test_each_hidden_run_becomes_one_marker_and_the_rest_is_kept(monkeypatch):
    monkeypatch.setattr(errors_module, "_SECRETS", {KEY})

    assert errors_module.redact(f"{KEY} middle {KEY}") == "*** middle ***"
    assert errors_module.redact(f"{KEY} tail") == "*** tail"
    assert errors_module.redact(f"a{KEY.upper()[:9]}b") == "a***b"
    assert errors_module.redact("nothing secret here") == "nothing secret here"


def test_a_phone_hasher_registers_its_key_for_redaction(monkeypatch):
    monkeypatch.setattr(errors_module, "_SECRETS", {KEY})
    PhoneHasher(HASH_KEY)

    assert errors_module.redact(f"a {HASH_KEY} b {HASH_KEY[4:13]} c {KEY}") == "a *** b *** c ***"
    assert errors_module.longest_secret() == len(HASH_KEY)


@pytest.mark.parametrize("api_key_first", [True, False])
def test_two_secrets_sharing_a_piece_are_both_hidden_whole(monkeypatch, api_key_first):
    other = "Zz-Test-KEY-7f3a-other"  # shares "-Test-KEY-7f3a" with KEY
    in_use = [KEY, other] if api_key_first else [other, KEY]  # whichever is looked at first
    monkeypatch.setattr(errors_module, "_SECRETS", in_use)

    assert errors_module.redact(f"a {KEY} b {other} c") == "a *** b *** c"


def test_with_no_key_in_use_a_snippet_is_the_body_shortened(monkeypatch):
    monkeypatch.setattr(errors_module, "_SECRETS", set())

    assert errors_module.longest_secret() == 0
    assert safe_snippet(b"x" * 500) == repr("x" * _SNIPPET_LENGTH + "...")


def test_a_cut_text_loses_exactly_the_characters_a_key_could_start_in(monkeypatch):
    monkeypatch.setattr(errors_module, "_SECRETS", {KEY})

    assert errors_module.redact_cut("x" * 20) == "x" * 13, "7 characters: one short of a piece"


@pytest.mark.parametrize(
    "piece", ["Rcs-Test", "t-KEY-7f", "7f3a9c2e"], ids=["start", "middle", "end"]
)
def test_the_key_scan_flags_any_8_character_piece_of_the_key(piece):
    assert piece in KEY
    assert key_piece_in(f"before {piece} after", KEY) == piece
    assert key_piece_in(piece, KEY) == piece
    assert key_piece_in(f"before {piece.swapcase()} after", KEY) == piece, "whatever the case"
    assert key_piece_in(f"{piece[:-1]} and {piece[1:]}", KEY) is None, "7 characters pass"


def test_the_key_scan_passes_text_without_a_piece_of_the_key():
    assert key_piece_in("agent 48901: HTTP 401 *** refused", KEY) is None
    assert key_piece_in("", KEY) is None
    assert key_piece_in("k-12345", "k-123456") is None
    assert key_piece_in("key k-123456.", "k-123456") == "k-123456", "a short key counts whole"


def test_a_failed_key_scan_says_which_piece_and_where():
    with pytest.raises(pytest.fail.Exception, match=r"'Rcs-Test'.*bad Rcs-Test-KEY-7f3a9c2e"):
        assert_no_key(f"line one\nerror: bad {KEY}\n", KEY)
