"""The Snowflake and BigQuery loaders' own code against the local emulators.

target-snowflake, configured as ``meltano.yml`` says, connects to fakesnow,
creates its tables in the shape the contract tests expect, and stops at its first
PUT: fakesnow has no stages, so its load (PUT, COPY, MERGE) is not proven here.
target-bigquery runs all the way, in tests/test_history_e2e.py, started through a
wrapper that skips only its waits for BigQuery's eventual consistency; a test here
shows the wrapper runs the installed loader and skips nothing else.

Each loader ``meltano.yml`` defines has a test that runs its configured write
path past the type mapping; the last test here keeps that list complete.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from tests import test_meltano_e2e
from tests.emulated_warehouses import EMULATORS, without_consistency_waits
from tests.model_warehouses import RAW_TABLES, SnowflakeWarehouse, open_warehouse
from tests.pipelines import spec
from tests.test_history_e2e import WAREHOUSES
from tests.test_loader_contracts import INTEGER_FIELDS, TEXT_FIELDS
from tests.warehouses import ROOT, own_meltano_folder

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

SNOWFLAKE_TYPES = {
    "text": "VARCHAR(16777216)",
    "boolean": "BOOLEAN",
    "integer": "NUMBER(38,0)",
    "timestamp": "TIMESTAMP_NTZ(9)",
}
"""What target-snowflake creates for each kind of field (meltano.yml: TIMESTAMP_NTZ)."""


@pytest.fixture
def loaded(snowflake, sandbox, tmp_path, request) -> SnowflakeWarehouse:
    api = sandbox(spec())
    wh = open_warehouse("snowflake", api, tmp_path, request)
    done = wh.load_only()
    assert done.returncode == 0, done.stderr[-3000:]
    assert isinstance(wh, SnowflakeWarehouse)
    return wh


def _columns(wh: SnowflakeWarehouse, table: str) -> dict[str, str]:
    return {name.lower(): kind for name, kind, *_ in wh.read(f"describe table {wh.schema}.{table}")}


def test_target_snowflake_creates_its_tables_then_stops_at_its_put(loaded):
    loader = loaded.loader
    assert loader is not None
    assert loader.returncode != 0
    # It got as far as staging the first batch: the PUT to the user stage.
    assert "@~/target-snowflake/" in loader.stderr, loader.stderr[-3000:]

    testers = _columns(loaded, "testers")
    for name in TEXT_FIELDS:
        assert testers[name] == SNOWFLAKE_TYPES["text"], name
    for name in INTEGER_FIELDS:
        assert testers[name] == SNOWFLAKE_TYPES["integer"], name
    assert testers["override_dcs_check"] == SNOWFLAKE_TYPES["boolean"]
    assert testers["created_at"] == SNOWFLAKE_TYPES["timestamp"]
    for metadata in ("_sdc_deleted_at", "_sdc_extracted_at", "_sdc_received_at"):
        assert testers[metadata] == SNOWFLAKE_TYPES["timestamp"], metadata
    assert testers["_sdc_table_version"] == SNOWFLAKE_TYPES["integer"]

    observations = _columns(loaded, "testers_observations")
    assert set(testers) < set(observations)
    assert observations["position"] == SNOWFLAKE_TYPES["integer"]
    assert observations["run_started_at"] == SNOWFLAKE_TYPES["timestamp"]
    assert _columns(loaded, "testers_sync_runs")["duplicate_ids"] == SNOWFLAKE_TYPES["integer"]
    assert _columns(loaded, "testers_sync_run_agents")["testers"] == SNOWFLAKE_TYPES["integer"]


def test_the_stand_in_load_fills_the_loaders_tables_with_the_taps_rows(loaded):
    counts = {
        table: int(loaded.read(f"select count(*) from {loaded.schema}.{table}")[0][0])
        for table in RAW_TABLES
    }
    assert counts == {
        "testers": 48,
        "testers_observations": 48,
        "testers_sync_run_agents": 6,
        "testers_sync_runs": 1,
    }
    ((deleted,),) = loaded.read(
        f"select count(*) from {loaded.schema}.testers where _sdc_deleted_at is not null"
    )
    assert deleted == "0"


def test_target_bigquery_runs_as_installed_with_only_its_sleeps_skipped(tmp_path):
    folder = Path(own_meltano_folder(tmp_path))
    without_consistency_waits(folder)
    installed = ROOT / ".meltano" / "loaders"
    loaders = folder / "loaders"
    others = sorted(p.name for p in installed.iterdir() if p.name != "target-bigquery")
    assert others, "no other loader installed"
    for name in others:
        assert (loaders / name).resolve() == (installed / name).resolve()

    # Meltano starts <plugin>/venv/bin/<executable>: the wrapper runs the installed loader.
    wrapper = loaders / "target-bigquery" / "venv" / "bin" / "target-bigquery"
    about = subprocess.run(
        [wrapper, "--about", "--format", "json"], capture_output=True, text=True, check=False
    )
    assert about.returncode == 0, about.stderr[-3000:]
    assert json.loads(about.stdout)["name"] == "target-bigquery"

    # Under the shim the loader's sleep returns at once; the rest of `time` is the real one.
    python = installed / "target-bigquery" / "venv" / "bin" / "python"
    wait = 600  # a sleep that, were it real, would outlast the check below
    shimmed = subprocess.run(
        [python, "-c", (
            "import sys, time; sys.path.insert(0, sys.argv[1]); "
            "import without_consistency_waits, target_bigquery.core as core; "
            "started = time.monotonic(); core.time.sleep(float(sys.argv[2])); "
            "print(time.monotonic() - started < float(sys.argv[2]), "
            "core.time.strftime is time.strftime, time.sleep is not core.time.sleep)"
        ), EMULATORS / "bigquery_loader", str(wait)],
        capture_output=True, text=True, check=False, timeout=wait / 2,
    )  # fmt: skip
    assert shimmed.returncode == 0, shimmed.stderr[-3000:]
    assert shimmed.stdout.split() == ["True", "True", "True"]


OTHER_WRITE_PATH_TESTS = {
    "target-snowflake": test_target_snowflake_creates_its_tables_then_stops_at_its_put,
    "target-jsonl": test_meltano_e2e.test_jsonl_target_gets_every_tester,
}
"""Loaders not in the history scenario, and the test that runs each one's write path."""


def test_every_loader_meltano_yml_defines_has_a_write_path_test():
    project: dict[str, t.Any] = yaml.safe_load((ROOT / "meltano.yml").read_text())
    loaders = {loader["name"] for loader in project["plugins"]["loaders"]}
    in_history = {f"target-{kind}" for kind in WAREHOUSES} - set(OTHER_WRITE_PATH_TESTS)
    assert loaders == in_history | set(OTHER_WRITE_PATH_TESTS)
    assert '"target-jsonl"' in inspect.getsource(OTHER_WRITE_PATH_TESTS["target-jsonl"])
