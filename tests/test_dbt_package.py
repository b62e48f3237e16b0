"""The models as a dbt package: a new dbt project installs transform/ and builds it.

The tap loads a DuckDB file through Meltano (schema ``kaleyra``); then a dbt
project of its own, outside this repository and its Meltano project, lists
``transform/`` in its ``packages.yml`` (a local path), points the package's vars
at that schema, and builds into another schema with the dbt that dbt-duckdb's
plugin environment has.
"""

from __future__ import annotations

import subprocess
import typing as t

import pytest
import yaml

from tests.model_warehouses import duckdb_reader
from tests.pipelines import spec
from tests.warehouses import ROOT, meltano_env, meltano_run

if t.TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

DBT = ROOT / ".meltano" / "utilities" / "dbt-duckdb" / "venv" / "bin" / "dbt"


def _dbt_project(home: Path, warehouse: Path) -> None:
    home.mkdir()
    (home / "dbt_project.yml").write_text(
        yaml.safe_dump(
            {
                "name": "my_warehouse",
                "version": "1.0.0",
                "config-version": 2,
                "profile": "my_warehouse",
                "vars": {"kaleyra_rcs": {"kaleyra_rcs_schema": "kaleyra"}},
            }
        )
    )
    (home / "packages.yml").write_text(
        yaml.safe_dump({"packages": [{"local": str(ROOT / "transform")}]})
    )
    profile = {"type": "duckdb", "path": str(warehouse), "schema": "analytics", "threads": 1}
    (home / "profiles.yml").write_text(
        yaml.safe_dump({"my_warehouse": {"target": "dev", "outputs": {"dev": profile}}})
    )


def _dbt(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(DBT), *args, "--project-dir", str(home), "--profiles-dir", str(home)],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def test_a_new_dbt_project_installs_the_models_as_a_package_and_builds_them(sandbox, tmp_path):
    api = sandbox(spec())
    env = meltano_env(tmp_path, api.url)
    loaded = meltano_run(env, "tap-kaleyra-rcs", "target-duckdb")
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    warehouse = tmp_path / "warehouse.duckdb"
    home = tmp_path / "my_warehouse"
    _dbt_project(home, warehouse)

    _dbt(home, "deps")
    built = _dbt(home, "build")
    assert "ERROR=0" in built.stdout

    read = duckdb_reader(str(warehouse))
    testers = {
        tester["id"] for agent in api.scenario.agents for tester in api.scenario.testers(agent)
    }
    current = {row[0] for row in read("select id from analytics.kaleyra_rcs__testers")}
    assert current == testers
    summary = read("select agent_no from analytics.kaleyra_rcs__agent_summary")
    assert sorted(row[0] for row in summary) == sorted(api.scenario.agents)
    assert read("select count(*) from information_schema.tables where table_schema = 'kaleyra' "
                "and table_name like 'kaleyra_rcs%'") == [("0",)]  # fmt: skip
