"""Pipelines for end-to-end tests that set the tap's settings through the environment."""

from __future__ import annotations

import json
import typing as t

from tests.test_meltano_e2e import AGENTS, Pipeline
from tests.warehouses import meltano_env, postgres_env

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
    full_env, schema = postgres_env(tmp_path, api.url, postgres, **env)
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
