"""The SDK command line as users call it: about, discover, catalog, state, env, maps."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import pytest

from tests.support import TAP, run_tap

SETTINGS = (
    "sid",
    "api_key",
    "agent_numbers",
    "pod",
    "base_url",
    "endpoint_path",
    "request_timeout",
    "max_retries",
    "retry_backoff_seconds",
    "max_retry_wait_seconds",
    "max_concurrent_agents",
    "emit_activate_version_messages",
    "max_requests_per_second",
)


def _setting_names(about_format: str | None, text: str) -> list[str]:
    """The setting each entry of ``--about`` names, read from that entry's own line."""
    if about_format == "--format=json":
        return list(json.loads(text)["settings"]["properties"])
    if about_format == "--format=markdown":
        rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
        return rows[1:]  # after the header row
    return re.findall(r"^\s*- Name: (\S+)$", text, flags=re.MULTILINE)


@pytest.mark.parametrize("about_format", ["--format=json", "--format=markdown", None])
def test_about_lists_every_setting(about_format):
    done = subprocess.run(
        [TAP, "--about", *([about_format] if about_format else [])],
        capture_output=True,
        text=True,
        check=True,
    )
    names = _setting_names(about_format, done.stdout)
    assert [name for name in names if name in SETTINGS] == list(SETTINGS)


def test_about_marks_the_api_key_secret():
    done = subprocess.run(
        [TAP, "--about", "--format=json"], capture_output=True, text=True, check=True
    )
    settings = json.loads(done.stdout)["settings"]["properties"]
    assert settings["api_key"].get("secret") is True
    assert settings["sid"].get("secret") is not True


def test_discover_gives_the_testers_their_observations_and_the_run_log_streams(tmp_path):
    run = run_tap({"sid": "x"}, tmp_path, "--discover", executable=TAP)
    assert run.returncode == 0
    streams = {entry["tap_stream_id"]: entry for entry in json.loads(run.stdout)["streams"]}
    assert list(streams) == [
        "testers",
        "testers_observations",
        "testers_sync_run_agents",
        "testers_sync_runs",
    ]
    keys = {name: entry["key_properties"] for name, entry in streams.items()}
    assert keys == {
        "testers": ["id"],
        "testers_observations": ["run_id", "synced_agent_no", "position"],
        "testers_sync_run_agents": ["run_id", "agent_no"],
        "testers_sync_runs": ["run_id"],
    }
    testers = set(streams["testers"]["schema"]["properties"])
    assert testers >= {"id", "created_at", "phoneno"}
    observed = set(streams["testers_observations"]["schema"]["properties"])
    assert observed == testers | {
        "run_id",
        "run_started_at",
        "synced_agent_no",
        "position",
        "received_at",
    }


def test_a_catalog_can_deselect_a_field(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    catalog = json.loads(run_tap(api.config(), tmp_path, "--discover", executable=TAP).stdout)
    for entry in catalog["streams"][0]["metadata"]:
        if entry["breadcrumb"] == ["properties", "phoneno"]:
            entry["metadata"]["selected"] = False
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))

    run = run_tap(
        api.config(), tmp_path, "--catalog", str(tmp_path / "catalog.json"), executable=TAP
    )
    assert run.returncode == 0, run.stderr
    assert len(run.records) == 5
    assert all("phoneno" not in r for r in run.records)


def test_state_from_a_previous_run_is_accepted_and_all_testers_come_again(sandbox, tmp_path):
    api = sandbox({"agents": 2})
    first = run_tap(api.config(), tmp_path, executable=TAP)
    (tmp_path / "state.json").write_text(json.dumps(first.of_type("STATE")[-1]["value"]))

    second = run_tap(
        api.config(), tmp_path, "--state", str(tmp_path / "state.json"), executable=TAP
    )
    assert second.returncode == 0, second.stderr
    assert [r["id"] for r in second.records] == [r["id"] for r in first.records]


def test_config_from_environment_variables(sandbox, tmp_path):
    api = sandbox({"agents": 2})
    config = api.config()
    env = {
        "TAP_KALEYRA_RCS_SID": config["sid"],
        "TAP_KALEYRA_RCS_API_KEY": config["api_key"],
        "TAP_KALEYRA_RCS_AGENT_NUMBERS": '["48901", 48900]',
        "TAP_KALEYRA_RCS_BASE_URL": config["base_url"],
    }
    run = run_tap(None, tmp_path, "--config", "ENV", env=env, executable=TAP)
    assert run.returncode == 0, run.stderr
    assert config["api_key"] not in run.stdout + run.stderr
    assert [r["agent_no"] for r in run.records][::5] == ["48901", "48900"]


def test_a_stream_map_can_hash_the_phone_number(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    maps = {"testers": {"phoneno": "md5(phoneno)"}}
    run = run_tap(api.config(stream_maps=maps), tmp_path, executable=TAP)
    assert run.returncode == 0, run.stderr
    originals = [t["phoneno"] for t in api.scenario.testers("48900")]
    expected = [hashlib.md5(p.encode()).hexdigest() for p in originals]  # noqa: S324
    assert [r["phoneno"] for r in run.records] == expected


def test_a_stream_map_can_drop_the_phone_number(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    run = run_tap(
        api.config(stream_maps={"testers": {"phoneno": "__NULL__"}}), tmp_path, executable=TAP
    )
    assert run.returncode == 0, run.stderr
    assert len(run.records) == 5
    assert all("phoneno" not in r for r in run.records)
    assert "phoneno" not in run.of_type("SCHEMA")[0]["schema"]["properties"]


def test_flattening_still_emits_every_record(sandbox, tmp_path):
    api = sandbox({"agents": 2})
    run = run_tap(
        api.config(flattening_enabled=True, flattening_max_depth=1), tmp_path, executable=TAP
    )
    assert run.returncode == 0, run.stderr
    assert len(run.records) == 10


def test_python_dash_m_runs_the_same_tap(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    (tmp_path / "config.json").write_text(json.dumps(api.config()))
    done = subprocess.run(
        [sys.executable, "-m", "tap_kaleyra_rcs", "--config", str(tmp_path / "config.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"type":"RECORD","stream":"testers"') == 5


def test_bad_settings_are_reported_by_name_before_any_request(sandbox, tmp_path):
    api = sandbox({"agents": 1})
    config = api.config(
        sid="ab/../cd", agent_numbers=["48900", "  "], pod="eu", base_url="http://kaleyra.example"
    )
    run = run_tap(config, tmp_path, executable=TAP)

    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    errors = [line.rsplit(" | ", 1)[-1] for line in run.stderr.splitlines() if "| ERROR" in line]
    named = [error.split(":")[0] for error in errors if ":" in error]
    assert named == ["sid", "agent_numbers[1]", "pod", "base_url"], errors
    assert api.stats()["requests"] == 0


def test_debug_logging_never_shows_the_api_key(sandbox, tmp_path):
    api = sandbox({"agents": 2, "agent_overrides": {"48901": {"faults": [{"status": 503}]}}})
    run = run_tap(api.config(), tmp_path, env={"TAP_KALEYRA_RCS_LOGLEVEL": "DEBUG"}, executable=TAP)
    assert run.returncode == 0, run.stderr
    assert "DEBUG" in run.stderr
    assert api.config()["api_key"] not in run.stdout + run.stderr
