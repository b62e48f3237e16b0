"""One set of variables configures each loader and its dbt adapter.

Meltano passes no loader config on to a later step, so each dbt utility declares
the loader's namespace and setting names, and repeats its defaults. These tests
read both through the real Meltano CLI and require them to agree. They run
Meltano, so they belong to the end-to-end tier (run once, under the main Python).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import duckdb
import pytest
import yaml

from tests.warehouses import MELTANO, ROOT

pytestmark = pytest.mark.e2e

PAIRS = [
    ("target-duckdb", "dbt-duckdb"),
    ("target-postgres", "dbt-postgres"),
    ("target-snowflake", "dbt-snowflake"),
    ("target-bigquery", "dbt-bigquery"),
]


def _config(plugin: str, environment: str, **variables: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARGET_", "MELTANO_"))}
    env.update({"KALEYRA_SANDBOX_PORT": "1", **variables})
    done = subprocess.run(
        [MELTANO, f"--environment={environment}", "config", "--unsafe", "print", plugin],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads(done.stdout)
    assert isinstance(config, dict)
    return config


@pytest.mark.parametrize("environment", ["sandbox", "prod"])
@pytest.mark.parametrize(("loader", "dbt"), PAIRS, ids=[dbt for _, dbt in PAIRS])
def test_dbt_reads_what_the_loader_reads(environment, loader, dbt):
    loader_config, dbt_config = _config(loader, environment), _config(dbt, environment)
    shared = set(loader_config) & set(dbt_config)

    assert "default_target_schema" in shared or "dataset" in shared
    assert {name: dbt_config[name] for name in shared} == {
        name: loader_config[name] for name in shared
    }


@pytest.mark.parametrize(
    ("loader", "dbt", "settings"),
    [
        ("target-duckdb", "dbt-duckdb", {"TARGET_DUCKDB_FILEPATH": "filepath"}),
        (
            "target-postgres",
            "dbt-postgres",
            {
                "TARGET_POSTGRES_HOST": "host",
                "TARGET_POSTGRES_PASSWORD": "password",
                "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": "default_target_schema",
            },
        ),
        (
            "target-snowflake",
            "dbt-snowflake",
            {
                "TARGET_SNOWFLAKE_ACCOUNT": "account",
                # Every credential form (tests/test_dbt_credentials.py: dbt reads each).
                "TARGET_SNOWFLAKE_PASSWORD": "password",
                "TARGET_SNOWFLAKE_PRIVATE_KEY": "private_key",
                "TARGET_SNOWFLAKE_PRIVATE_KEY_PATH": "private_key_path",
                "TARGET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "private_key_passphrase",
                "TARGET_SNOWFLAKE_OAUTH_ACCESS_TOKEN": "oauth_access_token",
            },
        ),
        (
            "target-bigquery",
            "dbt-bigquery",
            {
                "TARGET_BIGQUERY_PROJECT": "project",
                "TARGET_BIGQUERY_CREDENTIALS_PATH": "credentials_path",
                "TARGET_BIGQUERY_CREDENTIALS_JSON": "credentials_json",
            },
        ),
    ],
    ids=["duckdb", "postgres", "snowflake", "bigquery"],
)
def test_each_variable_reaches_both(loader, dbt, settings):
    """Each variable set to a value of its own; one Meltano call per plugin reads them all."""
    variables = {variable: f"set-by-{variable}" for variable in settings}
    expected = {setting: variables[variable] for variable, setting in settings.items()}
    for plugin in (loader, dbt):
        config = _config(plugin, "prod", **variables)
        assert {setting: config[setting] for setting in expected} == expected, plugin


def test_dbt_and_the_loader_open_the_duckdb_file_with_one_duckdb_version():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    pip_urls = {
        plugin["name"]: plugin["pip_url"]
        for kind in ("loaders", "utilities")
        for plugin in project["plugins"][kind]
    }
    pins = {
        name: re.findall(r"(?:^|\s)duckdb==(\S+)", pip_urls[name])
        for name in ("target-duckdb", "dbt-duckdb")
    }
    assert pins["target-duckdb"] == pins["dbt-duckdb"] == [duckdb.__version__]
