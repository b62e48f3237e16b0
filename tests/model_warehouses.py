"""A warehouse the models are built in, through the real Meltano CLI.

DuckDB and PostgreSQL are real; BigQuery and Snowflake are local emulators
(tests/emulated_warehouses.py).
"""

from __future__ import annotations

import subprocess
import typing as t
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from filelock import FileLock

from tests.emulated_warehouses import EMULATORS, without_consistency_waits
from tests.warehouses import MELTANO, ROOT, meltano, meltano_env, meltano_run, postgres_env

if t.TYPE_CHECKING:
    import pytest

    from tests.emulated_warehouses import BigQueryEmulator, Emulator, FakeSnowflake
    from tests.support import RunningSandbox
    from tests.warehouses import Postgres

TESTERS_COLUMNS = (
    "id, agent_no, phoneno, test_status, status, override_dcs_check, carrierid, "
    "created_at, first_seen_at, last_seen_at, is_agent_synced, drifted_fields"
)
HISTORY_COLUMNS = (
    "id, agent_no, test_status, status, valid_from, valid_to, end_reason, first_observed_run_id"
)
SUMMARY_COLUMNS = (
    "agent_no, testers, accepted, pending, rejected, expired, other_status, "
    "oldest_pending_created_at, last_synced_at"
)
RAW_TABLES = ("testers", "testers_observations", "testers_sync_run_agents", "testers_sync_runs")
MODEL_ROWS: list[str] = []
"""Per warehouse and run, how many rows each model has: printed at the end of the session."""


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
    tap_runs: int = 0
    built: bool = False

    @property
    def job(self) -> str:
        return f"testers-{self.kind}"

    def _done(self, done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        self.runs.append(done)
        return done

    def _ran(
        self, done: subprocess.CompletedProcess[str], *, job: bool
    ) -> subprocess.CompletedProcess[str]:
        """A run done (``job``: with dbt): note each model's rows now, once there are models."""
        self._done(done)
        self.tap_runs += 1
        self.built = self.built or (job and done.returncode == 0)
        if self.built:
            counts = ", ".join(f"{name} {len(rows)}" for name, rows in self.models().items())
            outcome = "ok" if done.returncode == 0 else f"failed ({done.returncode})"
            MODEL_ROWS.append(f"{self.kind} run {self.tap_runs} {outcome}: {counts}")
        return done

    def run_job(self, **env: str) -> subprocess.CompletedProcess[str]:
        """The scheduled job: tap, loader, then dbt build."""
        return self._ran(meltano_run({**self.env, **env}, self.job), job=True)

    def load_only(self, **env: str) -> subprocess.CompletedProcess[str]:
        """Tap and loader, no dbt: ``meltano run tap-kaleyra-rcs target-<kind>``."""
        return self._ran(
            meltano_run({**self.env, **env}, "tap-kaleyra-rcs", f"target-{self.kind}"), job=False
        )

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``meltano invoke dbt-<kind> ...``."""
        return self._done(meltano(self.env, "invoke", f"dbt-{self.kind}", *args))

    def job_build(self) -> subprocess.CompletedProcess[str]:
        """The job's dbt step alone: ``meltano invoke dbt-<kind>:build-no-unit-tests``."""
        return self._done(meltano(self.env, "invoke", f"dbt-{self.kind}:build-no-unit-tests"))

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
    """A warehouse of ``kind`` (duckdb, postgres, bigquery, snowflake) of this test's own."""
    if kind == "bigquery":
        return _bigquery(request.getfixturevalue("bigquery"), api, tmp_path, **env)
    if kind == "snowflake":
        return _snowflake(request.getfixturevalue("snowflake"), api, tmp_path, **env)
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


def _discarding_rows(emulator: Emulator) -> t.Callable[[str], None]:
    """Run a statement on an emulator for its effect (DDL, DML)."""

    def execute(sql: str) -> None:
        emulator.query(sql)

    return execute


def _bigquery(
    emulator: BigQueryEmulator, api: RunningSandbox, tmp_path: Path, **env: str
) -> Warehouse:
    """A dataset of this test's own in the BigQuery emulator, loaded by target-bigquery."""
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    full_env = meltano_env(tmp_path, api.url, **{**emulator.env(dataset), **env})
    without_consistency_waits(Path(full_env["MELTANO_SYS_DIR_ROOT"]))

    return Warehouse(
        "bigquery",
        full_env,
        dataset,
        emulator.query,
        _discarding_rows(emulator),
        text="string",
        relations_sql="select table_name, table_type from {schema}.INFORMATION_SCHEMA.TABLES",
        drop_cascade="",
    )


LOADER_TIMEOUT = 300
"""Seconds target-snowflake may take to connect, create its tables and fail at its PUT."""


def run_target_snowflake(env: dict[str, str], messages: Path) -> subprocess.CompletedProcess[str]:
    """target-snowflake as Meltano configures it, fed ``messages``, connected to fakesnow.

    Meltano drops ``PYTHONPATH`` from a plugin's environment, so the loader is run
    here with the configuration ``meltano invoke --dump=config`` shows and the
    connection shim (tests/emulators/snowflake_connect_redirect) on its path.
    """
    dumped = meltano(env, "invoke", "--dump=config", "target-snowflake")
    assert dumped.returncode == 0, dumped.stderr[-3000:]
    config = messages.with_suffix(".target-snowflake.json")
    config.write_text(dumped.stdout)
    with messages.open() as given:
        return subprocess.run(
            [str(ROOT / ".meltano/loaders/target-snowflake/venv/bin/target-snowflake"),
             "--config", str(config)],
            stdin=given,
            capture_output=True,
            text=True,
            timeout=LOADER_TIMEOUT,
            check=False,
            env={**env, "PYTHONPATH": str(EMULATORS / "snowflake_connect_redirect")},
        )  # fmt: skip


@dataclass
class SnowflakeWarehouse(Warehouse):
    """Snowflake on fakesnow: the tap through Meltano, the loader's tables, a stand-in load.

    Each run: ``meltano invoke tap-kaleyra-rcs`` writes its Singer messages to a
    file; the first run hands them to target-snowflake itself, which connects and
    creates its four tables, then stops at its PUT (fakesnow has no stages); every
    run's messages are then loaded into those tables as the loader's configuration
    says (tests/emulators/snowflake_client.py); then the job's dbt command,
    ``meltano invoke dbt-snowflake:build-no-unit-tests``.
    A failed tap stops the job before dbt, as ``meltano run`` does.
    """

    emulator: FakeSnowflake | None = None
    files: Path | None = None
    loader: subprocess.CompletedProcess[str] | None = None
    """target-snowflake's own run (the first), for what it created and where it stopped."""

    def _tap_then_load(self, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        assert self.emulator is not None
        assert self.files is not None
        messages = self.files / f"run-{self.tap_runs + 1}.singer"
        with messages.open("w") as out:
            tap = subprocess.run(
                [MELTANO, "--log-level=info", "invoke", "tap-kaleyra-rcs"],
                cwd=ROOT,
                env={**self.env, **env},
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
                timeout=LOADER_TIMEOUT,
                check=False,
            )
        if self.loader is None:
            self.loader = run_target_snowflake({**self.env, **env}, messages)
        self.emulator.load(messages, self.schema)
        return subprocess.CompletedProcess(tap.args, tap.returncode, "", tap.stderr)

    def run_job(self, **env: str) -> subprocess.CompletedProcess[str]:
        """Tap, load, then the job's dbt build if the tap succeeded."""
        loaded = self._tap_then_load(env)
        if loaded.returncode != 0:
            return self._ran(loaded, job=True)
        built = meltano(self.env, "invoke", "dbt-snowflake:build-no-unit-tests")
        return self._ran(
            subprocess.CompletedProcess(
                built.args, built.returncode, built.stdout, loaded.stderr + built.stderr
            ),
            job=True,
        )

    def load_only(self, **env: str) -> subprocess.CompletedProcess[str]:
        """Tap and load, no dbt."""
        return self._ran(self._tap_then_load(env), job=False)


_SNOWFLAKE_DBT_PACKAGES: list[bool] = []
"""Non-empty once this process ran ``dbt deps`` in the Snowflake test project."""


def _install_snowflake_dbt_packages(env: dict[str, str]) -> None:
    """``dbt deps`` in tests/emulators/dbt_snowflake, once per test process.

    It links transform/ in as a local package (a symlink: later edits show through).
    Workers share that folder, so a lock keeps one ``dbt deps`` at a time.
    """
    if _SNOWFLAKE_DBT_PACKAGES:
        return
    with FileLock(EMULATORS / "dbt_snowflake" / ".deps.lock"):
        deps = meltano(env, "invoke", "dbt-snowflake", "deps")
    assert deps.returncode == 0, (deps.stdout + deps.stderr)[-3000:]
    _SNOWFLAKE_DBT_PACKAGES.append(True)


def _snowflake(
    emulator: FakeSnowflake, api: RunningSandbox, tmp_path: Path, **env: str
) -> Warehouse:
    """A schema of this test's own on fakesnow; dbt-snowflake builds the project's models."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    full_env = meltano_env(tmp_path, api.url, **emulator.env(schema), **env)
    _install_snowflake_dbt_packages(full_env)

    return SnowflakeWarehouse(
        "snowflake",
        full_env,
        schema,
        emulator.query,
        _discarding_rows(emulator),
        # fakesnow's information_schema.tables lists no views (Snowflake's does).
        relations_sql=(
            "select table_name, 'BASE TABLE' from information_schema.tables "
            "where table_schema = upper('{schema}') and table_type = 'BASE TABLE' "
            "union select table_name, 'VIEW' from information_schema.views "
            "where table_schema = upper('{schema}')"
        ),
        drop_cascade="",
        emulator=emulator,
        files=tmp_path,
    )
