"""How settings reach the tap and how their failures end, and the SDK the fast path trusts."""

from __future__ import annotations

import importlib.metadata

import pytest

from tap_kaleyra_rcs import output, streams
from tap_kaleyra_rcs.settings import numbers_from_text
from tap_kaleyra_rcs.tap import TapKaleyraRcs
from tests.support import run_tap

PROPERTIES = TapKaleyraRcs.config_jsonschema["properties"]
BATCH_CONFIG = {
    "encoding": {"format": "jsonl", "compression": "gzip"},
    "storage": {"root": "file:///nowhere", "prefix": "testers-"},
}


@pytest.mark.parametrize(
    ("name", "text", "number"),
    [
        ("request_timeout", "10", 10.0),
        ("retry_backoff_seconds", "0.25", 0.25),
        ("max_retry_wait_seconds", " 1e2 ", 100.0),
        ("max_requests_per_second", ".5", 0.5),
        ("max_retries", "7", 7),
        ("max_concurrent_agents", "+3", 3),
    ],
)
def test_number_settings_given_as_text_become_numbers(name, text, number):
    converted = numbers_from_text({name: text}, PROPERTIES)[name]
    assert converted == number
    assert type(converted) is type(number)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("request_timeout", "ten"),
        ("request_timeout", "\u0661\u0660"),  # Arabic-Indic digits: not plain decimal text
        ("max_retries", "2.5"),
        ("sid", "12345"),  # a string setting stays a string
    ],
)
def test_other_text_is_left_for_validation_to_name(name, text):
    assert numbers_from_text({name: text}, PROPERTIES)[name] == text


def test_batch_with_activate_version_is_refused_naming_both_settings(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    config = api.config(batch_config=BATCH_CONFIG, emit_activate_version_messages=True)
    run = run_tap(config, tmp_path)

    assert run.returncode == 1
    assert run.stdout == ""
    assert run.last_line.startswith("tap-kaleyra-rcs: error: 1 setting problem")
    assert "batch_config" in run.last_line
    assert "emit_activate_version_messages" in run.last_line
    assert api.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("changes", "count", "first"),
    [
        ({"sid": "a/b", "pod": "eu"}, 2, "first: sid:"),
        ({"flattening_max_depth": "deep"}, 1, "first: "),  # caught by the SDK's schema check
    ],
    ids=["tap_checks", "sdk_schema"],
)
def test_a_config_failure_ends_with_one_error_line(sandbox, tmp_path, changes, count, first):
    api = sandbox({"agents": 1})
    run = run_tap(api.config(**changes), tmp_path)

    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    noun = "problem" if count == 1 else "problems"
    assert lines[-1].startswith(f"tap-kaleyra-rcs: error: {count} setting {noun} (listed above)")
    assert first in lines[-1]
    assert lines[-2].endswith("Config validation failed")
    assert sum(" ERROR " in line for line in lines[:-2]) == count
    assert "Traceback" not in run.stderr


def test_fast_path_was_checked_against_the_installed_sdk():
    installed = streams.installed_sync_records()
    assert installed == streams.FAST_PATH_CHECKED_AGAINST, (
        "TestersStream._sync_records overrides the SDK's private Stream._sync_records, "
        f"checked against singer-sdk {streams.FAST_PATH_CHECKED_AGAINST[0]} "
        f"{streams.FAST_PATH_CHECKED_AGAINST[1]}; installed is singer-sdk {installed[0]} "
        f"{installed[1]}. Re-read Stream._sync_records in the new SDK, adapt the override, "
        "then update FAST_PATH_CHECKED_AGAINST (see README, 'Upgrading singer-sdk')."
    )
    assert streams.FAST_PATH_SAFE


def test_the_sdk_version_read_beside_it_is_the_one_its_metadata_gives(monkeypatch):
    from_metadata = importlib.metadata.version("singer-sdk")
    assert streams.installed_sdk_version() == from_metadata

    def scan(name: str) -> str:
        raise AssertionError(f"read every distribution's metadata for {name}")

    # The folder beside the package answers alone: no scan of every distribution.
    monkeypatch.setattr(importlib.metadata, "version", scan)
    assert streams.installed_sdk_version() == from_metadata
    monkeypatch.undo()
    # Another kind of install (no single dist-info folder beside the package):
    # the answer still comes, from importlib.metadata.
    monkeypatch.setattr(streams.Path, "glob", lambda *_: iter(()))
    monkeypatch.setattr(importlib.metadata, "version", lambda name: f"{name} from metadata")
    assert streams.installed_sdk_version() == "singer-sdk from metadata"


def test_another_sdk_sends_every_record_through_the_sdks_own_path(sandbox, monkeypatch, capfd):
    api = sandbox({"agents": 2})

    def refuse(*_args: object) -> None:
        raise AssertionError("the fast path ran with an SDK it was not checked against")

    monkeypatch.setattr(streams, "FAST_PATH_SAFE", False)
    monkeypatch.setattr(output.SingerOutput, "write_records", refuse)
    monkeypatch.setattr(output.SingerOutput, "write_observations", refuse)
    TapKaleyraRcs(config=api.config()).sync_all()

    lines = capfd.readouterr().out.splitlines()
    testers = '"type":"RECORD","stream":"testers"'
    assert sum(testers in line.replace(" ", "") for line in lines) == 10
    observed = '"type":"RECORD","stream":"testers_observations"'
    assert sum(observed in line.replace(" ", "") for line in lines) == 10
