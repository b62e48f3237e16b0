"""Meltano pipelines into real warehouses, read back row by row.

Real Meltano CLI, real target-duckdb and target-postgres from meltano.yml, a real
DuckDB file and a real PostgreSQL server; the sandbox API on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import uuid

import duckdb
import pytest
import yaml

from tests.support import TAP
from tests.warehouses import ROOT, meltano_env, meltano_run, meltano_start, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

AGENTS = ["48900", "48901", "48902", "48903", "48904", "48905"]


def _spec(**agent_overrides: dict) -> dict:
    return {"agents": AGENTS, "testers_per_agent": 8, "agent_overrides": agent_overrides}


def _expected_ids(api) -> set[str]:
    return {t["id"] for agent in AGENTS for t in api.scenario.testers(agent)}


def _duckdb_rows(env, sql: str) -> list[tuple]:
    with duckdb.connect(env["TARGET_DUCKDB_FILEPATH"], read_only=True) as db:
        return db.sql(sql).fetchall()


@pytest.fixture
def pg_env(postgres, tmp_path):
    """Meltano environment variables pointing target-postgres at a fresh schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    return schema, {
        "TARGET_POSTGRES_HOST": "127.0.0.1",
        "TARGET_POSTGRES_PORT": str(postgres.port),
        "TARGET_POSTGRES_USER": "postgres",
        "TARGET_POSTGRES_PASSWORD": "unused-with-trust-auth",
        "TARGET_POSTGRES_DATABASE": "warehouse",
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
    }


def _pg_testers(postgres, schema: str) -> dict[str, dict[str, str]]:
    rows = postgres.psql(
        f"select id, test_status, agent_no, coalesce(_sdc_deleted_at::text, '') "
        f"from {schema}.testers"
    )
    return {r[0]: {"test_status": r[1], "agent_no": r[2], "deleted_at": r[3]} for r in rows}


def _assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]


def test_duckdb_twice_gives_no_duplicates_and_the_right_values(sandbox, tmp_path):
    api = sandbox(_spec())
    env = meltano_env(tmp_path, api.url)
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-duckdb"))
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-duckdb"))

    rows = _duckdb_rows(
        env, "select id, agent_no, test_status, created_date, created_at from kaleyra.testers"
    )
    assert len(rows) == len(AGENTS) * 8
    assert {r[0] for r in rows} == _expected_ids(api)
    by_id = {r[0]: r for r in rows}
    for agent in AGENTS:
        for tester in api.scenario.testers(agent):
            _, agent_no, test_status, created_date, created_at = by_id[tester["id"]]
            assert (agent_no, test_status, created_date) == (
                agent,
                tester["test_status"],
                tester["created_date"],
            )
            assert int(created_at.timestamp() * 1000) == tester["created_date"] or (
                created_at.tzinfo is None
                and round((created_at - created_at.__class__(1970, 1, 1)).total_seconds() * 1000)
                == tester["created_date"]
            )


def test_duckdb_shows_a_changed_test_status_after_the_next_run(sandbox, tmp_path):
    api = sandbox(_spec())
    env = meltano_env(tmp_path, api.url)
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-duckdb"))
    changed = api.scenario.testers("48902")[3]["id"]
    api.use(_spec(**{"48902": {"set": {"3": {"test_status": "REVOKED"}}}}))
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-duckdb"))

    rows = _duckdb_rows(env, "select id, test_status from kaleyra.testers")
    assert len(rows) == len(AGENTS) * 8
    assert dict(rows)[changed] == "REVOKED"


def test_hashed_phones_variant_never_lands_a_clear_number(sandbox, tmp_path):
    api = sandbox(_spec())
    env = meltano_env(tmp_path, api.url)
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs--hashed-phones", "target-duckdb"))

    landed = dict(_duckdb_rows(env, "select id, phoneno from kaleyra.testers"))
    for agent in AGENTS:
        for tester in api.scenario.testers(agent):
            assert landed[tester["id"]] == hashlib.sha256(tester["phoneno"].encode()).hexdigest()


def test_jsonl_target_gets_every_tester(sandbox, tmp_path):
    api = sandbox(_spec())
    env = meltano_env(tmp_path, api.url)
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-jsonl"))

    lines = (tmp_path / "testers.jsonl").read_text().splitlines()
    assert {json.loads(line)["id"] for line in lines} == _expected_ids(api)


def test_postgres_twice_gives_no_duplicates(sandbox, tmp_path, postgres, pg_env):
    schema, extra = pg_env
    api = sandbox(_spec())
    env = meltano_env(tmp_path, api.url, **extra)
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-postgres"))
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-postgres"))

    assert postgres.psql(f"select count(*), count(distinct id) from {schema}.testers") == [
        [str(len(AGENTS) * 8)] * 2
    ]
    testers = _pg_testers(postgres, schema)
    assert set(testers) == _expected_ids(api)
    assert all(t["deleted_at"] == "" for t in testers.values())


def test_postgres_shows_a_changed_test_status_after_the_next_run(
    sandbox, tmp_path, postgres, pg_env
):
    schema, extra = pg_env
    api = sandbox(_spec())
    env = meltano_env(tmp_path, api.url, **extra)
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-postgres"))
    changed = api.scenario.testers("48900")[0]["id"]
    api.use(_spec(**{"48900": {"set": {"0": {"test_status": "REJECTED", "status": "INACTIVE"}}}}))
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-postgres"))

    assert _pg_testers(postgres, schema)[changed]["test_status"] == "REJECTED"
    assert postgres.psql(f"select status from {schema}.testers where id = '{changed}'") == [
        ["INACTIVE"]
    ]


def test_postgres_marks_a_removed_tester_deleted_after_the_next_run(
    sandbox, tmp_path, postgres, pg_env
):
    schema, extra = pg_env
    api = sandbox(_spec())
    env = meltano_env(tmp_path, api.url, **extra)
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-postgres"))
    removed = api.scenario.testers("48903")[5]["id"]
    api.use(_spec(**{"48903": {"remove": [5]}}))
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-postgres"))

    testers = _pg_testers(postgres, schema)
    assert len(testers) == len(AGENTS) * 8, "soft delete keeps the row"
    assert testers[removed]["deleted_at"] != ""
    assert [i for i, t in testers.items() if t["deleted_at"]] == [removed]


@pytest.mark.parametrize("failure", ["auth", "retries_exhausted"])
def test_postgres_a_failed_run_marks_nothing_deleted(sandbox, tmp_path, postgres, pg_env, failure):
    schema, extra = pg_env
    api = sandbox(_spec())
    env = meltano_env(tmp_path, api.url, **extra)
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-postgres"))
    removed = api.scenario.testers("48900")[0]["id"]
    # Agent 48900 now lacks a tester, and a later agent fails: no deletion may happen.
    if failure == "auth":
        faults = {"faults": [{"status": 401, "times": "always"}]}
    else:
        faults = {"faults": [{"status": 503, "times": "always"}]}
    api.use(_spec(**{"48900": {"remove": [0]}, "48904": faults}))
    failed = meltano_run(env, "tap-kaleyra-rcs", "target-postgres")

    assert failed.returncode != 0
    assert "agent 48904" in failed.stderr + failed.stdout
    testers = _pg_testers(postgres, schema)
    assert len(testers) == len(AGENTS) * 8
    assert all(t["deleted_at"] == "" for t in testers.values())

    api.use(_spec(**{"48900": {"remove": [0]}}))
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-postgres"))
    assert [i for i, t in _pg_testers(postgres, schema).items() if t["deleted_at"]] == [removed]


def test_postgres_a_killed_tap_marks_nothing_deleted(sandbox, tmp_path, postgres, pg_env):
    schema, extra = pg_env
    api = sandbox(_spec())
    env = meltano_env(tmp_path, api.url, **extra)
    _assert_ok(meltano_run(env, "tap-kaleyra-rcs", "target-postgres"))
    # The last agent answers slowly; the tap is killed while it waits for it.
    api.use(_spec(**{"48900": {"remove": [1, 2]}, "48905": {"latency_ms": 60000}}))
    api.server.stats.reset()
    running = meltano_start(env, "tap-kaleyra-rcs", "target-postgres", log=tmp_path / "run.log")
    wait_until(lambda: "48905" in api.stats()["by_agent"], timeout=60)
    tap_pids = subprocess.run(
        ["pgrep", "-f", f"{ROOT}/.meltano/extractors/.*/tap-kaleyra-rcs"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert tap_pids, "the tap process is running"
    for pid in tap_pids:
        subprocess.run(["kill", f"-{signal.SIGKILL.value}", pid], check=False)
    assert running.wait(timeout=120) != 0

    testers = _pg_testers(postgres, schema)
    assert len(testers) == len(AGENTS) * 8
    assert all(t["deleted_at"] == "" for t in testers.values())


def test_meltano_yml_settings_mirror_the_tap_about_output():
    about = json.loads(
        subprocess.run(
            [TAP, "--about", "--format=json"], capture_output=True, text=True, check=True
        ).stdout
    )["settings"]["properties"]
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (extractor,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-kaleyra-rcs"]
    declared = {s["name"]: s for s in extractor["settings"]}

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
    assert declared["api_key"]["kind"] == "password"
    assert declared["api_key"]["sensitive"] is True
