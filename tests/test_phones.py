"""phoneno_hash_key: every phoneno sent as its HMAC-SHA256 under the key, and the key kept secret.

The tap runs in this process (``run_tap``), against the sandbox on 127.0.0.1.
Each expected hash is computed here with ``hmac.new``, independently of the tap.
"""

from __future__ import annotations

import hashlib
import hmac
import typing as t

import pytest

from tap_kaleyra_rcs.drift import FAIL_ADVICE, DriftPolicy, drift_policy
from tap_kaleyra_rcs.errors import MalformedResponse, redact
from tap_kaleyra_rcs.phones import PhoneHasher
from tap_kaleyra_rcs.records import build_records
from tap_kaleyra_rcs.settings import SettingsError, parse_settings
from tests.support import assert_no_key, run_tap

KEY = "Phone-Test-KEY-wXq7zLm9"
"""A made-up key; no 8 characters of it in a row are hex digits, so no hash in the
output can hold a piece of it by chance."""
VALID = {"sid": "ABC123", "api_key": "k3b8497f58a94e84b671aca43", "agent_numbers": ["48900"]}
NO_NUMBER = {"set": {"0": {"phoneno": None}}, "unset": {"1": ["phoneno"]}}
"""Agent 48900's first tester has a null phoneno, its second none at all."""


def _hmac(phone: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), phone.encode(), hashlib.sha256).hexdigest()


def _phones(records: list[dict[str, t.Any]]) -> list[str | None]:
    """Each record's phoneno; ``"absent"`` where the record has no such field."""
    return [record.get("phoneno", "absent") for record in records]


def _served(api) -> list[str | None]:
    """The phone numbers the sandbox serves, agent by agent, as _phones reads them."""
    scenario = api.scenario
    return [
        tester.get("phoneno", "absent")
        for agent in scenario.agents
        for tester in scenario.testers(agent)
    ]


@pytest.fixture
def api(sandbox):
    return sandbox({"agents": 2, "testers_per_agent": 3, "agent_overrides": {"48900": NO_NUMBER}})


def test_the_key_sends_every_phoneno_as_its_hmac_in_both_streams(api, tmp_path):
    run = run_tap(api.config(phoneno_hash_key=KEY), tmp_path)

    assert run.returncode == 0, run.stderr[-2000:]
    served = _served(api)
    expected = [phone if phone in {None, "absent"} else _hmac(phone) for phone in served]
    assert expected[:2] == [None, "absent"], "a null or absent number stays so"
    assert _phones(run.records) == expected
    assert _phones(run.records_of("testers_observations")) == expected
    assert not any(phone in run.stdout for phone in served[2:]), "no clear number is sent"
    assert (
        "phoneno is sent as its HMAC-SHA256 under phoneno_hash_key, in testers and "
        "testers_observations, before any stream map"
    ) in run.stderr


def test_without_a_key_phoneno_is_sent_as_it_is(api, tmp_path):
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr[-2000:]
    assert _phones(run.records) == _served(api)
    assert "HMAC" not in run.stderr


def test_the_key_from_the_environment_hashes_the_same_and_is_in_no_output_at_debug(api, tmp_path):
    env = {
        "TAP_KALEYRA_RCS_SID": "SANDBOX0000SID01",
        "TAP_KALEYRA_RCS_API_KEY": "sandbox-api-key-0000",
        "TAP_KALEYRA_RCS_AGENT_NUMBERS": '["48901"]',
        "TAP_KALEYRA_RCS_BASE_URL": api.url,
        "TAP_KALEYRA_RCS_PHONENO_HASH_KEY": KEY,
        "TAP_KALEYRA_RCS_LOGLEVEL": "DEBUG",
    }
    from_env = run_tap(None, tmp_path, "--config", "ENV", env=env)
    from_file = run_tap(api.config(phoneno_hash_key=KEY), tmp_path, env={"LOGLEVEL": "DEBUG"})

    for run in (from_env, from_file):
        assert run.returncode == 0, run.stderr[-2000:]
        assert " DEBUG " in run.stderr
        assert_no_key(run.stdout + run.stderr, KEY)
    clear = [tester["phoneno"] for tester in api.scenario.testers("48901")]
    assert _phones(from_env.records) == [_hmac(phone) for phone in clear]


EMPTY = "is empty, so phone numbers can't be hashed"
SHORT = "has 15 characters, fewer than 16: a short key can be guessed"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        pytest.param("", EMPTY, id="empty"),
        pytest.param("   ", EMPTY, id="blank"),
        pytest.param("Zq7!wLp#Rv2&kM9", SHORT, id="15 characters"),
        pytest.param(12345678901234567, "must be text", id="a number"),
    ],
)
def test_an_empty_or_short_key_is_one_problem_and_no_request(api, tmp_path, key, problem):
    run = run_tap(api.config(phoneno_hash_key=key), tmp_path)

    assert run.returncode == 1
    assert run.last_line.startswith(
        "tap-kaleyra-rcs: error: 1 setting problem (listed above); first: phoneno_hash_key: "
    )
    assert problem in run.last_line
    assert "Traceback" not in run.stderr
    assert api.stats()["requests"] == 0
    if str(key).strip():
        assert_no_key(run.stdout + run.stderr, str(key))


def test_a_key_of_16_characters_is_enough():
    settings = parse_settings({**VALID, "phoneno_hash_key": "Zq7!wLp#Rv2&kM9x"})
    assert settings.phoneno_hash_key == "Zq7!wLp#Rv2&kM9x"
    assert "Zq7!" not in repr(settings)


def test_a_required_key_that_is_not_set_is_refused_naming_its_variable():
    with pytest.raises(SettingsError) as caught:
        parse_settings({**VALID, "require_phoneno_hash_key": True})
    (problem,) = caught.value.problems
    assert problem.startswith("phoneno_hash_key: not set, and require_phoneno_hash_key is true")
    assert "set TAP_KALEYRA_RCS_PHONENO_HASH_KEY" in problem

    assert parse_settings({**VALID, "require_phoneno_hash_key": False}).phoneno_hash_key is None
    assert parse_settings(VALID).phoneno_hash_key is None, "no key, none required: clear numbers"


def test_the_hasher_gives_hmac_sha256_and_shows_nothing_of_its_key():
    hasher = PhoneHasher(KEY)
    records = [{"phoneno": "19876543210"}, {"phoneno": None}, {"id": "x"}, {"phoneno": ""}]
    hasher.hash_phones(records)

    assert records == [
        {"phoneno": _hmac("19876543210")},
        {"phoneno": None},
        {"id": "x"},
        {"phoneno": _hmac("")},
    ]
    assert hasher.digest("19876543210") != _hmac("19876543210", key=KEY + "x"), "keyed"
    assert hasher.digest("19876543210") != hashlib.sha256(b"19876543210").hexdigest()
    assert_no_key(repr(hasher), KEY)
    assert repr(hasher) == "PhoneHasher(key=***)"
    fresh = "Registered-By-The-Hasher-kQ9"  # no other test registers it
    PhoneHasher(fresh)
    assert fresh not in redact(f"refused: {fresh}"), "the key is registered for redaction"


@pytest.mark.parametrize(
    "key",
    [
        KEY,
        "k" * 63,
        "k" * 64,  # exactly one SHA-256 block
        "k" * 65,  # longer: hashed first
        "k" * 200,
        "clé-de-téléphone-ünïcode",  # hashed as UTF-8
    ],
)
@pytest.mark.parametrize("phone", ["19876543210", "", "+44 20 7946 0958", "٠١٢٣"])
def test_the_digest_is_hmac_sha256_for_any_key_length(key, phone):
    assert PhoneHasher(key).digest(phone) == _hmac(phone, key=key)


@pytest.mark.parametrize("value", [19876543210.5, ["19876543210"], {"number": "19876543210"}])
def test_a_malformed_phoneno_stops_the_run_without_quoting_the_number(value):
    tester = {"id": "a", "agent_no": "48900", "phoneno": value}
    with pytest.raises(MalformedResponse) as caught:
        build_records("48900", [tester], PhoneHasher(KEY), DriftPolicy("fail"))

    message = str(caught.value)
    kind = type(value).__name__
    assert message == (
        f"agent 48900: tester #0 field 'phoneno' is {kind}, expected a string{FAIL_ADVICE}"
    )


@pytest.mark.parametrize("value", [19876543210.5, ["19876543210"]])
def test_a_malformed_phoneno_is_never_kept_in_clear_when_phones_are_hashed(value):
    tester = {"id": "a", "agent_no": "48900", "phoneno": value, "brand_id": "b"}
    policy = drift_policy("keep", {}, hashes_phones=True)

    (record,) = build_records("48900", [tester], PhoneHasher(KEY), policy).records

    assert record["phoneno"] is None
    assert record["drifted_fields"] == '{"brand_id":"b"}', "the rest is kept; the number is not"
