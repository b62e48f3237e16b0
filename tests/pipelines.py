"""Pipelines for end-to-end tests that set the tap's settings through the environment."""

from __future__ import annotations

import json
import subprocess
import typing as t
import uuid

from tests.test_meltano_e2e import AGENTS, Pipeline
from tests.warehouses import MELTANO, ROOT, meltano_env

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.support import RunningSandbox
    from tests.warehouses import Postgres


def spec(testers_per_agent: int = 8, **overrides: t.Any) -> dict[str, t.Any]:
    """A sandbox scenario with the agents meltano.yml's sandbox environment asks for."""
    return {"agents": AGENTS, "testers_per_agent": testers_per_agent, **overrides}


def setting_env(**settings: t.Any) -> dict[str, str]:
    """``TAP_KALEYRA_RCS_<NAME>`` variables, as a user would export them: all text."""
    return {
        f"TAP_KALEYRA_RCS_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
        for name, value in settings.items()
    }


def duckdb_pipeline(api: RunningSandbox, tmp_path: Path, **env: str) -> Pipeline:
    """A pipeline into a DuckDB file of its own; ``env`` adds or overrides variables."""
    return Pipeline(api, meltano_env(tmp_path, api.url, **env), tmp_path)


def postgres_pipeline(
    api: RunningSandbox, tmp_path: Path, postgres: Postgres, **env: str
) -> Pipeline:
    """A pipeline into a fresh PostgreSQL schema, the target configured only by variables."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    full_env = meltano_env(
        tmp_path,
        api.url,
        TARGET_POSTGRES_HOST="127.0.0.1",
        TARGET_POSTGRES_PORT=str(postgres.port),
        TARGET_POSTGRES_USER="postgres",
        TARGET_POSTGRES_PASSWORD="unused-with-trust-auth",  # noqa: S106
        TARGET_POSTGRES_DATABASE="warehouse",
        TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=schema,
        **env,
    )
    return Pipeline(api, full_env, tmp_path, postgres, schema)


def live_rows(pipeline: Pipeline) -> int:
    """Rows in the PostgreSQL table that are not marked deleted (0 if there is no table)."""
    assert pipeline.postgres is not None
    exists = pipeline.postgres.psql(f"select to_regclass('{pipeline.schema}.testers') is not null")
    if exists != [["t"]]:
        return 0
    rows = pipeline.postgres.psql(
        f"select count(*) from {pipeline.schema}.testers where _sdc_deleted_at is null"
    )
    return int(rows[0][0])


def duckdb_columns(pipeline: Pipeline) -> set[str]:
    return {
        row[0]
        for row in pipeline.duckdb_rows(
            "select column_name from information_schema.columns "
            "where table_schema = 'kaleyra' and table_name = 'testers'"
        )
    }


def meltano(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Any Meltano command in the project, with this test's environment."""
    return subprocess.run(
        [MELTANO, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
