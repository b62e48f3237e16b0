"""Contracts with the Snowflake and BigQuery loaders, checked without either service.

Each loader is installed by ``meltano install`` into its own environment, as
for a real run. A probe (tests/loader_probes/) runs inside that environment
and asks the loader's own code what it would do with the tap's real SCHEMA
message and the configuration Meltano would hand it in ``prod``: the column
type of every field, the key it merges on, and whether it merges at all. Any
network connection fails the probe. What this cannot show: that Snowflake and
BigQuery accept the statements, and the loaders' behaviour on the wire.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import typing as t

import pytest
import yaml

from tests.support import run_tap
from tests.warehouses import MELTANO, ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

PROBES = ROOT / "tests" / "loader_probes"
TEXT_FIELDS = ["id", "agent_no", "phoneno", "test_status", "status"]
INTEGER_FIELDS = ["created_date", "carrierid"]

# Stand-ins for what a deployment exports; the probes never connect anywhere.
ACCOUNT_VARIABLES = {
    "target-snowflake": {
        "TARGET_SNOWFLAKE_ACCOUNT": "probe-account",
        "TARGET_SNOWFLAKE_USER": "probe-user",
        "TARGET_SNOWFLAKE_PASSWORD": "probe-password",
        "TARGET_SNOWFLAKE_DATABASE": "PROBE_DB",
        "TARGET_SNOWFLAKE_WAREHOUSE": "PROBE_WH",
    },
    "target-bigquery": {
        "TARGET_BIGQUERY_PROJECT": "probe-project",
        "TARGET_BIGQUERY_CREDENTIALS_JSON": "{}",
    },
}
SECRETS_THE_LOADERS_DO_NOT_FLAG = {"password", "private_key_passphrase", "credentials_json"}
"""Secrets whose ``--about`` entry lacks the secret flag."""
SNOWFLAKE_INTEGERS = {"INTEGER", "BIGINT", "SMALLINT", "NUMBER(38, 0)", "DECIMAL(38, 0)"}
"""Integer column types. A NUMBER or DECIMAL without precision and scale is also
NUMBER(38, 0) in Snowflake: see _snowflake_integer."""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARGET_", "MELTANO_"))}
    env["KALEYRA_SANDBOX_PORT"] = "0"
    env.update(extra)
    return env


def _prod_config(loader: str, variables: dict[str, str]) -> dict[str, t.Any]:
    """The configuration Meltano hands the loader in ``prod``, secrets included."""
    done = subprocess.run(
        [
            MELTANO,
            "--log-level=warning",
            "--environment=prod",
            "config",
            "--unsafe",
            "print",
            loader,
            "--format=json",
        ],
        cwd=ROOT,
        env=_clean_env(**variables),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return t.cast("dict[str, t.Any]", json.loads(done.stdout))


@pytest.fixture(scope="module")
def schema_messages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, t.Any]]:
    """The SCHEMA messages the tap really sends, by stream, from a run against the sandbox."""
    from tests.support import RunningSandbox  # noqa: PLC0415

    api = RunningSandbox({"agents": 1, "testers_per_agent": 1})
    try:
        run = run_tap(api.config(), tmp_path_factory.mktemp("tap"))
    finally:
        api.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    return {
        m["stream"]: {**m, "records": run.records_of(m["stream"])} for m in run.of_type("SCHEMA")
    }


@pytest.fixture(scope="module")
def schema_message(schema_messages: dict[str, dict[str, t.Any]]) -> dict[str, t.Any]:
    """The ``testers`` SCHEMA message."""
    return schema_messages["testers"]


def _probe(loader: str, schema_message: dict[str, t.Any]) -> dict[str, t.Any]:
    """Run the loader's probe inside the environment Meltano installed it in."""
    python = ROOT / ".meltano" / "loaders" / loader / "venv" / "bin" / "python"
    config = _prod_config(loader, ACCOUNT_VARIABLES[loader])
    probe = PROBES / f"{loader.removeprefix('target-')}_probe.py"
    message = {k: v for k, v in schema_message.items() if k != "records"}
    done = subprocess.run(
        [str(python), str(probe)],
        input=json.dumps(
            {
                "config": config,
                "schema_message": message,
                "records": schema_message.get("records", []),
            }
        ),
        cwd=ROOT,
        env={**_clean_env(), "PYTHONPATH": str(PROBES)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return t.cast("dict[str, t.Any]", json.loads(done.stdout.strip().splitlines()[-1]))


def _snowflake_integer(sql_type: str) -> bool:
    return sql_type in SNOWFLAKE_INTEGERS or sql_type in {"NUMBER", "DECIMAL", "NUMERIC"}


def test_snowflake_types_and_merge_key(schema_message):
    found = _probe("target-snowflake", schema_message)
    columns = found["columns"]

    for name in TEXT_FIELDS:
        assert columns[name] == "VARCHAR", name
    assert columns["override_dcs_check"] == "BOOLEAN"
    for name in INTEGER_FIELDS:
        assert _snowflake_integer(columns[name]), (name, columns[name])
    assert columns["created_at"] == "TIMESTAMP_NTZ"
    # Removed testers are marked through these columns (hard_delete: false).
    assert columns["_sdc_deleted_at"] == "TIMESTAMP_NTZ"
    assert "_sdc_table_version" in columns

    assert found["key_properties"] == ["id"]
    assert found["merges"] is True
    assert found["merge_on"] == "d.id = s.id"


def test_bigquery_types_and_merge_key(schema_message):
    found = _probe("target-bigquery", schema_message)
    columns = found["columns"]

    assert found["sink"].endswith("DenormalizedSink")
    for name in TEXT_FIELDS:
        assert columns[name] == "STRING", name
    assert columns["override_dcs_check"] == "BOOLEAN"
    for name in INTEGER_FIELDS:
        assert columns[name] == "INTEGER", name
    assert columns["created_at"] == "TIMESTAMP"

    assert found["key_properties"] == ["id"]
    assert found["merges"] is True
    # meltano.yml's method, storage_write_api, run past the type mapping: the
    # protobuf write schema is built and every record serializes and decodes.
    (record,) = schema_message["records"]
    (written,) = found["written"]
    assert written["id"] == record["id"]
    assert written["phoneno"] == record["phoneno"]
    assert int(written["carrierid"]) == record["carrierid"]
    assert written["override_dcs_check"] == record["override_dcs_check"]
    # The loader ignores ACTIVATE_VERSION (it logs a warning): no tester is ever
    # marked deleted in BigQuery. README and docs/warehouses.md say so.
    assert found["handles_activate_version"] is False


OBSERVATION_KEY = ["run_id", "synced_agent_no", "position"]


def test_snowflake_keeps_every_observation(schema_messages):
    found = _probe("target-snowflake", schema_messages["testers_observations"])
    columns = found["columns"]

    assert found["key_properties"] == OBSERVATION_KEY
    assert found["merges"] is True, "a new key every run: the MERGE only inserts"
    assert found["merge_on"] == " and ".join(f"d.{k} = s.{k}" for k in OBSERVATION_KEY)
    assert _snowflake_integer(columns["position"])
    assert columns["received_at"] == columns["run_started_at"] == "TIMESTAMP_NTZ"
    agents = _probe("target-snowflake", schema_messages["testers_sync_run_agents"])
    assert agents["key_properties"] == ["run_id", "agent_no"]


def test_bigquery_keeps_every_observation(schema_messages):
    found = _probe("target-bigquery", schema_messages["testers_observations"])
    columns = found["columns"]

    assert found["key_properties"] == OBSERVATION_KEY
    assert found["merges"] is True
    assert columns["position"] == "INTEGER"
    assert columns["received_at"] == columns["run_started_at"] == "TIMESTAMP"
    agents = _probe("target-bigquery", schema_messages["testers_sync_run_agents"])
    assert agents["key_properties"] == ["run_id", "agent_no"]


@functools.cache
def _about(loader: str) -> dict[str, t.Any]:
    """``meltano invoke <loader> --about``: the loader starts in its environment."""
    done = subprocess.run(
        [MELTANO, "--log-level=warning", "invoke", loader, "--about", "--format=json"],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return t.cast("dict[str, t.Any]", json.loads(done.stdout))


@pytest.mark.parametrize("loader", ["target-snowflake", "target-bigquery"])
def test_loader_installs_and_starts(loader):
    assert _about(loader)["name"] == loader


def _setting(loader: str, variable: str) -> str:
    return variable.removeprefix(loader.upper().replace("-", "_") + "_").lower()


@pytest.mark.parametrize("loader", ["target-snowflake", "target-bigquery"])
def test_prod_takes_account_settings_and_credentials_only_from_the_environment(loader):
    variables = ACCOUNT_VARIABLES[loader]
    with_variables = _prod_config(loader, variables)
    without = _prod_config(loader, {})

    for variable, value in variables.items():
        name = _setting(loader, variable)
        assert name not in without, f"{loader}.{name} is set in meltano.yml"
        assert with_variables[name] == value


@pytest.mark.parametrize("loader", ["target-snowflake", "target-bigquery"])
def test_every_secret_setting_of_a_loader_is_declared_sensitive(loader):
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (plugin,) = [p for p in project["plugins"]["loaders"] if p["name"] == loader]
    sensitive = {s["name"] for s in plugin["settings"] if s.get("sensitive")}
    about = _about(loader)["settings"]["properties"]
    secrets = {
        name
        for name, spec in about.items()
        if spec.get("secret") or name in SECRETS_THE_LOADERS_DO_NOT_FLAG
    }

    assert secrets, loader
    assert secrets <= sensitive
