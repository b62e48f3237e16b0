"""Files named on the command line: every mistake is one line, exit 1, no traceback.

``--config``, ``--state`` and ``--catalog`` that are missing, folders, not JSON or
not JSON objects, and catalogs that select none of the tap's streams. In process
(the command's own ``main``), and once through the installed command.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from tap_kaleyra_rcs.arguments import STREAMS, file_problem, named_files, selects_a_stream
from tap_kaleyra_rcs.tap import TapKaleyraRcs
from tests.support import TAP, run_tap

CONFIG = {"api_key": "a-key-for-argument-tests", "sid": "s1", "agent_numbers": ["48900"]}


def _catalog(selected: dict[str, bool]) -> dict[str, t.Any]:
    """A catalog listing ``selected``'s streams, each selected or not at the stream level."""
    return {
        "streams": [
            {
                "tap_stream_id": name,
                "stream": name,
                "schema": {"type": "object", "properties": {}},
                "metadata": [{"breadcrumb": [], "metadata": {"selected": chosen}}],
            }
            for name, chosen in selected.items()
        ]
    }


CASES = {
    "config missing": ("--config", None, "no such file; give --config the path of a JSON object"),
    "config a folder": ("--config", "folder", "is a folder, not a file"),
    "config not JSON": ("--config", '{"sid": ', "is not valid JSON (Expecting value at line 1"),
    "config a list": ("--config", "[1]", "holds a JSON list, not an object"),
    "config not UTF-8": ("--config", b"\xff\xfe{}", "is not UTF-8 text"),
    "state not JSON": ("--state", "{bookmarks", "is not valid JSON"),
    "catalog not JSON": (
        "--catalog",
        "",
        "is not valid JSON (Expecting value at line 1, column 1)",
    ),
    "catalog empty": ("--catalog", "{}", "selects none of the tap's streams"),
    "catalog all deselected": (
        "--catalog",
        json.dumps(_catalog(dict.fromkeys(STREAMS, False))),
        "so the run would sync nothing",
    ),
    "catalog of other streams": (
        "--catalog",
        json.dumps(_catalog({"orders": True})),
        "select at least testers",
    ),
}


def _file(tmp_path: Path, content: str | bytes | None) -> str:
    path = tmp_path / "named.json"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    return str(path)


@pytest.mark.parametrize(("option", "content", "says"), CASES.values(), ids=CASES.keys())
def test_a_bad_file_is_one_line_naming_the_option_and_the_path(tmp_path, option, content, says):
    path = _file(tmp_path, content)
    config = None if option == "--config" else CONFIG

    run = run_tap(config, tmp_path, option, path)

    assert run.returncode == 1
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"tap-kaleyra-rcs: error: {option} {path}: ")
    assert says in lines[0]
    assert CONFIG["api_key"] not in run.stderr


def test_the_installed_command_says_the_same_one_line(tmp_path):
    missing = str(tmp_path / "nothere.json")

    run = run_tap(None, tmp_path, "--config", missing, executable=TAP)

    assert run.returncode == 1
    expected = (
        f"tap-kaleyra-rcs: error: --config {missing}: no such file; give --config the path "
        "of a JSON object of settings (README, Configuration)"
    )
    assert run.stderr.splitlines() == [expected]


def test_a_config_file_with_the_key_is_never_quoted(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"api_key": "zz-secret-key-zz", "sid": }')

    run = run_tap(None, tmp_path, f"--config={config}")

    assert run.returncode == 1
    assert "zz-secret-key-zz" not in run.stderr
    assert "secret" not in run.stderr


def test_a_catalog_selecting_one_stream_runs():
    assert selects_a_stream(_catalog({"testers": True, "testers_sync_runs": False}))
    assert selects_a_stream(_catalog({"orders": False, "testers_observations": True}))
    assert not selects_a_stream(_catalog({"testers": False}))
    no_metadata = _catalog({"testers": True})
    no_metadata["streams"][0]["metadata"] = []
    assert selects_a_stream(no_metadata), "no selection metadata: the SDK syncs the stream"
    assert selects_a_stream({"streams": "not a list"}), "left to the SDK's own error"


def test_file_options_are_found_in_both_forms_and_env_is_not_a_file():
    assert named_files(["--config", "a.json", "--state=s.json", "--catalog", "c.json"]) == [
        ("--config", "a.json"),
        ("--state", "s.json"),
        ("--catalog", "c.json"),
    ]
    assert named_files(["--config", "ENV", "--config=ENV", "--discover"]) == []
    assert named_files(["--about", "--config"]) == [], "the SDK says a value is missing"


def test_the_streams_a_catalog_must_select_are_the_taps_own():
    tap = TapKaleyraRcs(config=CONFIG, validate_config=False)
    assert set(STREAMS) == set(tap.streams)


def test_an_unreadable_file_says_so_and_what_to_do(tmp_path, monkeypatch):
    def refuse(*_: object, **__: object) -> str:
        raise PermissionError

    path = _file(tmp_path, "{}")
    monkeypatch.setattr(Path, "read_text", refuse)

    assert file_problem("--state", path) == (
        f"--state {path}: cannot be read (permission denied); let this user read it"
    )
