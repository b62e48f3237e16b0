"""Meltano pipelines into real warehouses, read back row by row.

Real Meltano CLI, real target-duckdb and target-postgres from meltano.yml, a real
DuckDB file and a real PostgreSQL server; the sandbox API on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import typing as t
from dataclasses import dataclass

import duckdb
import pytest
import yaml

from tap_kaleyra_rcs.sandbox import DEFAULT_API_KEY, DEFAULT_SID
from tests.meltano_kinds import MELTANO_KINDS, kinds_for
from tests.processes import command_line, descendants, kill_tree
from tests.support import TAP, RunningSandbox
from tests.warehouses import (
    ROOT,
    meltano,
    meltano_env,
    meltano_run,
    meltano_start,
    postgres_env,
    wait_until,
)

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.warehouses import Postgres

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

AGENTS = ["48900", "48901", "48902", "48903", "48904", "48905"]
ALL_TESTERS = len(AGENTS) * 8


def _spec(**agent_overrides: dict) -> dict:
    return {"agents": AGENTS, "testers_per_agent": 8, "agent_overrides": agent_overrides}


@dataclass
class Pipeline:
    """The sandbox, one Meltano environment and one warehouse, for one test."""

    api: RunningSandbox
    env: dict[str, str]
    tmp_path: Path
    postgres: Postgres | None = None
    schema: str = ""

    def run(self, target: str, tap: str = "tap-kaleyra-rcs") -> subprocess.CompletedProcess[str]:
        return meltano_run(self.env, tap, target)

    def run_ok(self, target: str, tap: str = "tap-kaleyra-rcs") -> None:
        done = self.run(target, tap)
        assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]

    def expected_ids(self) -> set[str]:
        return {tester["id"] for agent in AGENTS for tester in self.api.scenario.testers(agent)}

    def duckdb_rows(self, sql: str) -> list[tuple]:
        with duckdb.connect(self.env["TARGET_DUCKDB_FILEPATH"], read_only=True) as db:
            return db.sql(sql).fetchall()

    def pg_testers(self) -> dict[str, dict[str, str]]:
        """Every row of the PostgreSQL table; deleted_at is '' when not deleted."""
        assert self.postgres is not None
        rows = self.postgres.psql(
            "select id, test_status, status, coalesce(_sdc_deleted_at::text, '') "
            f"from {self.schema}.testers"
        )
        return {r[0]: {"test_status": r[1], "status": r[2], "deleted_at": r[3]} for r in rows}

    def pg_deleted_ids(self) -> list[str]:
        return [tester_id for tester_id, row in self.pg_testers().items() if row["deleted_at"]]


@pytest.fixture
def pipeline(sandbox, tmp_path) -> Pipeline:
    api = sandbox(_spec())
    return Pipeline(api, meltano_env(tmp_path, api.url), tmp_path)


@pytest.fixture
def pg_pipeline(sandbox, tmp_path, postgres) -> Pipeline:
    """A pipeline into a fresh PostgreSQL schema, after one successful first run."""
    api = sandbox(_spec())
    env, schema = postgres_env(tmp_path, api.url, postgres)
    pipeline = Pipeline(api, env, tmp_path, postgres, schema)
    pipeline.run_ok("target-postgres")
    return pipeline


def test_duckdb_twice_gives_no_duplicates_and_the_right_values(pipeline):
    pipeline.run_ok("target-duckdb")
    pipeline.run_ok("target-duckdb")

    rows = pipeline.duckdb_rows(
        "select id, agent_no, test_status, created_date, created_at from kaleyra.testers"
    )
    assert len(rows) == ALL_TESTERS
    assert {r[0] for r in rows} == pipeline.expected_ids()
    by_id = {r[0]: r[1:] for r in rows}
    for agent in AGENTS:
        for tester in pipeline.api.scenario.testers(agent):
            agent_no, test_status, created_date, created_at = by_id[tester["id"]]
            assert (agent_no, test_status, created_date) == (
                agent,
                tester["test_status"],
                tester["created_date"],
            )
            # DuckDB's TIMESTAMP is naive UTC: it must be the same instant, to the ms.
            epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc).replace(tzinfo=None)
            millis = (created_at - epoch) // dt.timedelta(milliseconds=1)
            assert millis == tester["created_date"]


def test_duckdb_shows_a_changed_test_status_after_the_next_run(pipeline):
    pipeline.run_ok("target-duckdb")
    changed = pipeline.api.scenario.testers("48902")[3]["id"]
    pipeline.api.use(_spec(**{"48902": {"set": {"3": {"test_status": "REVOKED"}}}}))
    pipeline.run_ok("target-duckdb")

    rows = pipeline.duckdb_rows("select id, test_status from kaleyra.testers")
    assert len(rows) == ALL_TESTERS
    assert dict(rows)[changed] == "REVOKED"


def test_hashed_phones_variant_without_its_key_fails_naming_the_variable(pipeline):
    # prod has no demo key: the key comes only from TAP_KALEYRA_RCS_PHONENO_HASH_KEY.
    # Unset, Meltano leaves phoneno_hash_key out of the tap's config altogether.
    # (The README-order run with the sandbox's key: tests/test_models_e2e.py.)
    prod = {
        **pipeline.env,
        "MELTANO_ENVIRONMENT": "prod",
        "TAP_KALEYRA_RCS_SID": DEFAULT_SID,
        "TAP_KALEYRA_RCS_API_KEY": DEFAULT_API_KEY,
        "TAP_KALEYRA_RCS_AGENT_NUMBERS": json.dumps(AGENTS),
        "TAP_KALEYRA_RCS_BASE_URL": pipeline.api.url,
    }
    failed = meltano_run(prod, "tap-kaleyra-rcs--hashed-phones", "target-duckdb")

    assert failed.returncode != 0
    output = failed.stderr + failed.stdout
    (line,) = [line for line in output.splitlines() if "tap-kaleyra-rcs: error:" in line]
    assert "first: phoneno_hash_key: not set, and require_phoneno_hash_key is true" in line
    assert "set TAP_KALEYRA_RCS_PHONENO_HASH_KEY" in line
    assert pipeline.api.stats()["requests"] == 0
    assert pipeline.duckdb_rows("select table_name from information_schema.tables") == []

    key = "prod-KEY-from-the-environment-wXq7"
    given = meltano(
        {**prod, "TAP_KALEYRA_RCS_PHONENO_HASH_KEY": key},
        "invoke",
        "--dump=config",
        "tap-kaleyra-rcs--hashed-phones",
    )
    assert given.returncode == 0, given.stderr[-3000:]
    assert json.loads(given.stdout)["phoneno_hash_key"] == key


def test_jsonl_target_gets_every_tester(pipeline):
    pipeline.run_ok("target-jsonl")

    lines = (pipeline.tmp_path / "testers.jsonl").read_text().splitlines()
    assert {json.loads(line)["id"] for line in lines} == pipeline.expected_ids()


def test_postgres_twice_gives_no_duplicates(pg_pipeline):
    pg_pipeline.run_ok("target-postgres")

    assert pg_pipeline.postgres.psql(
        f"select count(*), count(distinct id) from {pg_pipeline.schema}.testers"
    ) == [[str(ALL_TESTERS)] * 2]
    assert set(pg_pipeline.pg_testers()) == pg_pipeline.expected_ids()
    assert pg_pipeline.pg_deleted_ids() == []


def test_postgres_shows_a_changed_test_status_after_the_next_run(pg_pipeline):
    changed = pg_pipeline.api.scenario.testers("48900")[0]["id"]
    pg_pipeline.api.use(
        _spec(**{"48900": {"set": {"0": {"test_status": "REJECTED", "status": "INACTIVE"}}}})
    )
    pg_pipeline.run_ok("target-postgres")

    row = pg_pipeline.pg_testers()[changed]
    assert (row["test_status"], row["status"]) == ("REJECTED", "INACTIVE")


def test_postgres_marks_a_removed_tester_deleted_after_the_next_run(pg_pipeline):
    removed = pg_pipeline.api.scenario.testers("48903")[5]["id"]
    pg_pipeline.api.use(_spec(**{"48903": {"remove": [5]}}))
    pg_pipeline.run_ok("target-postgres")

    assert len(pg_pipeline.pg_testers()) == ALL_TESTERS, "soft delete keeps the row"
    assert pg_pipeline.pg_deleted_ids() == [removed]


@pytest.mark.parametrize("status", [401, 503], ids=["auth", "retries_exhausted"])
def test_postgres_a_failed_run_marks_nothing_deleted(pg_pipeline, status):
    removed = pg_pipeline.api.scenario.testers("48900")[0]["id"]
    # Agent 48900 now lacks a tester, and a later agent fails: no deletion may happen.
    failing = {"faults": [{"status": status, "times": "always"}]}
    pg_pipeline.api.use(_spec(**{"48900": {"remove": [0]}, "48904": failing}))
    failed = pg_pipeline.run("target-postgres")

    assert failed.returncode != 0
    assert "agent 48904" in failed.stderr + failed.stdout
    assert len(pg_pipeline.pg_testers()) == ALL_TESTERS
    assert pg_pipeline.pg_deleted_ids() == []

    pg_pipeline.api.use(_spec(**{"48900": {"remove": [0]}}))
    pg_pipeline.run_ok("target-postgres")
    assert pg_pipeline.pg_deleted_ids() == [removed]


def test_postgres_a_killed_tap_marks_nothing_deleted(pg_pipeline):
    api = pg_pipeline.api
    # The last agent answers slowly; the tap is killed while it waits for it.
    api.use(_spec(**{"48900": {"remove": [1, 2]}, "48905": {"latency_ms": 60000}}))
    api.server.stats.reset()
    running = meltano_start(
        pg_pipeline.env, "tap-kaleyra-rcs", "target-postgres", log=pg_pipeline.tmp_path / "log"
    )
    try:
        wait_until(lambda: "48905" in api.stats()["by_agent"], what="the tap asking for 48905")
        # Only the tap this Meltano run started: other runs may share the machine.
        (tap,) = [pid for pid in descendants(running.pid) if _is_installed_tap(pid)]
        os.kill(tap, signal.SIGKILL)
        assert running.wait(timeout=120) != 0
    finally:
        kill_tree(running)

    assert len(pg_pipeline.pg_testers()) == ALL_TESTERS
    assert pg_pipeline.pg_deleted_ids() == []


def _is_installed_tap(pid: int) -> bool:
    """Whether ``pid`` runs the tap Meltano installed into this checkout.

    Meltano resolves the link in this test's own .meltano/ (tests/warehouses.py),
    so the tap runs from the checkout's .meltano/extractors/.
    """
    extractors = f"{ROOT}/.meltano/extractors/"
    return any(
        part.startswith(extractors) and part.endswith("/bin/tap-kaleyra-rcs")
        for part in command_line(pid)
    )


def test_meltano_yml_settings_mirror_the_tap_about_output():
    about = json.loads(
        subprocess.run(
            [TAP, "--about", "--format=json"], capture_output=True, text=True, check=True
        ).stdout
    )["settings"]["properties"]
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (extractor,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-kaleyra-rcs"]
    declared: dict[str, t.Any] = {s["name"]: s for s in extractor["settings"]}

    assert list(declared) == list(about)
    for name, spec in about.items():
        setting = declared[name]
        assert setting["label"] == spec["title"], name
        assert setting["description"] == spec["description"], name
        assert bool(setting.get("sensitive")) == bool(spec.get("secret")), name
        if "enum" in spec:
            assert [o["value"] for o in setting["options"]] == [v for v in spec["enum"] if v]
        if spec.get("default") is not None:
            assert setting["value"] == spec["default"], name
        assert setting["kind"] in MELTANO_KINDS, name
        assert setting["kind"] in kinds_for(spec), name
    assert declared["api_key"]["kind"] == "string"
    assert declared["api_key"]["sensitive"] is True
