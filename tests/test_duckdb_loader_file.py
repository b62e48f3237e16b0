"""target-duckdb as meltano.yml runs it: through ``plugins/target-duckdb-file``.

A job creates the folder of its DuckDB file (the README's commands after
``rm -r output``: tests/test_readme_commands.py), and a file another job holds
open is one ``target-duckdb: error:`` line and exit 1, not a lock traceback.
"""

from __future__ import annotations

import json
import subprocess
import typing as t

import pytest

from tests.warehouses import ROOT

if t.TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

LOADER_BIN = ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin"
PROPERTIES = {"id": {"type": "string"}, "carrierid": {"type": "integer"}}
TWO_RECORDS = "\n".join(
    json.dumps(message)
    for message in (
        {
            "type": "SCHEMA",
            "stream": "testers",
            "schema": {"properties": PROPERTIES},
            "key_properties": ["id"],
        },
        {"type": "RECORD", "stream": "testers", "record": {"id": "a", "carrierid": 1}},
        {"type": "RECORD", "stream": "testers", "record": {"id": "b", "carrierid": 2}},
    )
)


def _load(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LOADER_BIN / "target-duckdb-file"), "--config", str(config)],
        input=TWO_RECORDS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _config(tmp_path: Path, database: Path) -> Path:
    config = tmp_path / "target.json"
    config.write_text(json.dumps({"filepath": str(database), "default_target_schema": "k"}))
    return config


def test_a_file_another_job_holds_is_one_line_and_exit_1(tmp_path):
    database = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [
            str(LOADER_BIN / "python"),
            "-c",
            (
                f"import duckdb, sys; db = duckdb.connect({str(database)!r}); "
                "print('open', flush=True); sys.stdin.read()"
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n", "the other job holds the file"

        done = _load(_config(tmp_path, database))
    finally:
        holder.communicate("", timeout=60)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("target-duckdb: error:")]
    assert line.startswith(f"target-duckdb: error: {database} is open in another process")
    assert line.endswith("wait for it to finish, or give each job a filepath of its own")
