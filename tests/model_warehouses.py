"""A warehouse the models are built in, through the real Meltano CLI.

DuckDB and PostgreSQL are real; BigQuery and Snowflake are local emulators
(tests/emulated_warehouses.py).
"""

from __future__ import annotations

import typing as t
import uuid
from dataclasses import dataclass, field

import duckdb

from tests.warehouses import meltano, meltano_env, meltano_run, postgres_env

if t.TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    import pytest

    from tests.emulated_warehouses import BigQueryEmulator
    from tests.support import RunningSandbox
    from tests.warehouses import Postgres

TESTERS_COLUMNS = (
    "id, agent_no, phoneno, test_status, status, override_dcs_check, carrierid, "
    "created_at, first_seen_at, last_seen_at, is_agent_synced"
)
HISTORY_COLUMNS = (
    "id, agent_no, test_status, status, valid_from, valid_to, end_reason, first_observed_run_id"
)
SUMMARY_COLUMNS = (
    "agent_no, testers, accepted, pending, rejected, expired, other_status, "
    "oldest_pending_created_at, last_synced_at"
)
RAW_TABLES = ("testers", "testers_observations", "testers_sync_run_agents", "testers_sync_runs")


@dataclass
class Warehouse:
    """One warehouse, its loader and dbt plugins, and a way to read text rows back."""

    kind: str
    env: dict[str, str]
    schema: str
    read: t.Callable[[str], list[tuple[str, ...]]]
    execute: t.Callable[[str], None]
    text: str = "varchar"
    """The SQL type a value is cast to, to compare it as text (BigQuery: string)."""
    relations_sql: str = (
        "select table_name, table_type from information_schema.tables "
        "where table_schema = '{schema}'"
    )
    """(name, 'VIEW' or 'BASE TABLE') of every relation in the schema."""
    drop_cascade: str = " cascade"
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    @property
    def job(self) -> str:
        return f"testers-{self.kind}"

    def _done(self, done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        self.runs.append(done)
        return done

    def run_job(self, **env: str) -> subprocess.CompletedProcess[str]:
        """The scheduled job: tap, loader, then dbt build."""
        return self._done(meltano_run({**self.env, **env}, self.job))

    def load_only(self, **env: str) -> subprocess.CompletedProcess[str]:
        """Tap and loader, no dbt: ``meltano run tap-kaleyra-rcs target-<kind>``."""
        return self._done(
            meltano_run({**self.env, **env}, "tap-kaleyra-rcs", f"target-{self.kind}")
        )

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``meltano invoke dbt-<kind> ...``."""
        return self._done(meltano(self.env, "invoke", f"dbt-{self.kind}", *args))

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        """Rows of ``sql`` (``{schema}`` and ``{text}`` filled in), every value as text, sorted."""
        return sorted(self.read(sql.format(schema=self.schema, text=self.text)))

    def models(self) -> dict[str, list[tuple[str, ...]]]:
        """Every row of the three models, for before/after comparisons."""
        return {
            "testers": self.rows(f"select {TESTERS_COLUMNS} from {{schema}}.kaleyra_rcs__testers"),
            "history": self.rows(
                f"select {HISTORY_COLUMNS} from {{schema}}.kaleyra_rcs__tester_status_history"
            ),
            "summary": self.rows(
                f"select {SUMMARY_COLUMNS} from {{schema}}.kaleyra_rcs__agent_summary"
            ),
        }

    def dbt_relations(self) -> list[tuple[str, str]]:
        """(name, 'VIEW' or 'BASE TABLE') of every relation dbt built: all but the raw tables."""
        listed = [(name.lower(), kind) for name, kind in self.rows(self.relations_sql)]
        return [(name, kind) for name, kind in listed if name not in RAW_TABLES]

    def drop_dbt_relations(self) -> list[str]:
        """Drop every relation dbt built, keeping only what the loader wrote."""
        dropped = []
        for name, kind in self.dbt_relations():
            what = "view" if kind == "VIEW" else "table"
            self.execute(f"drop {what} if exists {self.schema}.{name}{self.drop_cascade}")
            dropped.append(name)
        return dropped

    def period(self, tester_id: str) -> list[tuple[str, ...]]:
        """(agent_no, test_status, status, valid_from, valid_to, end_reason), oldest first."""
        return [
            row[1:]
            for row in self.rows(
                "select cast(valid_from as {text}), agent_no, test_status, status, "
                "cast(valid_from as {text}), coalesce(cast(valid_to as {text}), ''), "
                "coalesce(end_reason, '') "
                f"from {{schema}}.kaleyra_rcs__tester_status_history where id = '{tester_id}'"
            )
        ]


def duckdb_reader(path: str) -> t.Callable[[str], list[tuple[str, ...]]]:
    def read(sql: str) -> list[tuple[str, ...]]:
        with duckdb.connect(path, read_only=True) as db:
            rows = db.sql(sql).fetchall()
        return [tuple("" if value is None else str(value) for value in row) for row in rows]

    return read


def _duckdb_executor(path: str) -> t.Callable[[str], None]:
    def execute(sql: str) -> None:
        with duckdb.connect(path) as db:
            db.execute(sql)

    return execute


def open_warehouse(
    kind: str, api: RunningSandbox, tmp_path: Path, request: pytest.FixtureRequest, **env: str
) -> Warehouse:
    """A warehouse of ``kind`` ('duckdb', 'postgres', 'bigquery') of this test's own."""
    if kind == "bigquery":
        return _bigquery(request.getfixturevalue("bigquery"), api, tmp_path, **env)
    if kind == "duckdb":
        full_env = meltano_env(tmp_path, api.url, **env)
        path = full_env["TARGET_DUCKDB_FILEPATH"]
        return Warehouse(kind, full_env, "kaleyra", duckdb_reader(path), _duckdb_executor(path))
    postgres: Postgres = request.getfixturevalue("postgres")
    full_env, schema = postgres_env(tmp_path, api.url, postgres, **env)

    def read(sql: str) -> list[tuple[str, ...]]:
        return [tuple(row) for row in postgres.psql(sql)]

    def execute(sql: str) -> None:
        postgres.psql(sql)

    return Warehouse(kind, full_env, schema, read, execute)


def _bigquery(
    emulator: BigQueryEmulator, api: RunningSandbox, tmp_path: Path, **env: str
) -> Warehouse:
    """A dataset of this test's own in the BigQuery emulator, loaded by target-bigquery."""
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    full_env = meltano_env(tmp_path, api.url, **emulator.env(dataset), **env)

    def execute(sql: str) -> None:
        emulator.query(sql)

    return Warehouse(
        "bigquery",
        full_env,
        dataset,
        emulator.query,
        execute,
        text="string",
        relations_sql="select table_name, table_type from {schema}.INFORMATION_SCHEMA.TABLES",
        drop_cascade="",
    )
