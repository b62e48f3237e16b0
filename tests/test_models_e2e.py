"""The dbt models, built by the scheduled jobs, over four runs that change the API.

Real Meltano (`meltano run testers-duckdb` / `testers-postgres`), the real tap,
target-duckdb and target-postgres, real dbt with dbt-duckdb and dbt-postgres, a real
DuckDB file and a real PostgreSQL server; the sandbox API on 127.0.0.1. Between runs
the sandbox's scenario changes as a user's account would:

1. a first run;
2. one tester's status changes, one tester is removed and one is added;
3. an agent answers 500 forever after an earlier agent changed a tester: the run
   fails after loading that earlier agent (a partial load);
4. the failing agent is healthy again.

After each run the three models are read back and compared with what the sandbox
served. This runs on PostgreSQL with the loader's default settings (rows of
removed testers kept, marked deleted); the history scenario
(tests/test_history_e2e.py) makes the same checks on every warehouse, DuckDB
included, with PostgreSQL there under ``hard_delete``.
"""

from __future__ import annotations

import hashlib
import hmac
import typing as t

import pytest
import yaml

from tests.model_warehouses import SUMMARY_COLUMNS, Warehouse, duckdb_reader, open_warehouse
from tests.pipelines import spec
from tests.test_meltano_e2e import AGENTS
from tests.warehouses import ROOT, meltano, meltano_env, meltano_run, postgres_env

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.support import RunningSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

KNOWN_STATUSES = ("ACCEPTED", "PENDING", "REJECTED", "EXPIRED")

FIRST: dict[str, t.Any] = {}
SECOND = {
    "48902": {"set": {"3": {"test_status": "REVOKED", "status": "INACTIVE"}}},
    "48903": {"remove": [5]},
    "48901": {"testers": 9},
}
PARTIAL_CHANGE = {"set": {"0": {"test_status": "REJECTED"}}}
FAILING = {"faults": [{"status": 500, "times": "always"}]}
THIRD = {**SECOND, "48900": PARTIAL_CHANGE, "48904": FAILING}
FOURTH = {**SECOND, "48900": PARTIAL_CHANGE}


def _spec(overrides: dict[str, t.Any]) -> dict[str, t.Any]:
    return spec(agent_overrides=overrides)


@pytest.fixture(params=["postgres"])
def warehouse(request, sandbox, tmp_path: Path) -> tuple[Warehouse, RunningSandbox]:
    api = sandbox(_spec(FIRST))
    return open_warehouse(request.param, api, tmp_path, request), api


def _served(api: RunningSandbox) -> dict[str, dict[str, t.Any]]:
    return {tester["id"]: tester for agent in AGENTS for tester in api.scenario.testers(agent)}


def _expected_summary(api: RunningSandbox) -> dict[str, tuple[int, ...]]:
    summary = {}
    for agent in AGENTS:
        statuses = [tester["test_status"] for tester in api.scenario.testers(agent)]
        known = [statuses.count(status) for status in KNOWN_STATUSES]
        summary[agent] = (len(statuses), *known, len(statuses) - sum(known))
    return summary


def _assert_models_match_the_sandbox(wh: Warehouse, api: RunningSandbox) -> None:
    served = _served(api)
    current = {row[0]: row for row in wh.models()["testers"]}
    assert set(current) == set(served)
    for tester_id, row in current.items():
        tester = served[tester_id]
        assert row[1:5] == (
            tester["agent_no"],
            tester["phoneno"],
            tester["test_status"],
            tester["status"],
        )
    summary = {
        row[0]: tuple(int(v) for v in row[1:7])
        for row in wh.rows(f"select {SUMMARY_COLUMNS} from {{schema}}.kaleyra_rcs__agent_summary")
    }
    assert summary == _expected_summary(api)
    # Exactly one open period per current tester, in its current state.
    open_periods = wh.rows(
        "select id, test_status, status from {schema}.kaleyra_rcs__tester_status_history "
        "where valid_to is null"
    )
    assert open_periods == sorted(
        (tester_id, tester["test_status"], tester["status"]) for tester_id, tester in served.items()
    )


def _periods(wh: Warehouse, tester_id: str) -> list[tuple[str, ...]]:
    """(test_status, status, valid_from, valid_to) of one tester, oldest first."""
    return [period[1:5] for period in wh.period(tester_id)]


def _received(wh: Warehouse, agent: str) -> list[str]:
    """When each run received ``agent``'s answer, oldest first."""
    return [
        row[0]
        for row in wh.rows(
            "select distinct cast(received_at as {text}) from {schema}.testers_observations "
            f"where synced_agent_no = '{agent}'"
        )
    ]


def _run_starts(wh: Warehouse) -> list[str]:
    return [
        row[0]
        for row in wh.rows("select cast(started_at as {text}) from {schema}.testers_sync_runs")
    ]


def test_models_follow_the_api_over_four_runs_and_ignore_a_failed_one(warehouse):
    wh, api = warehouse
    original = {agent: api.scenario.testers(agent) for agent in AGENTS}
    changed = original["48902"][3]
    removed = original["48903"][5]
    partially_loaded = original["48900"][0]

    # 1. A first run.
    assert wh.run_job().returncode == 0, wh.runs[-1].stderr[-4000:]
    _assert_models_match_the_sandbox(wh, api)
    assert len(wh.models()["history"]) == len(_served(api))

    # 2. A status change, a removal and an addition.
    api.use(_spec(SECOND))
    added = api.scenario.testers("48901")[8]
    assert wh.run_job().returncode == 0, wh.runs[-1].stderr[-4000:]
    _assert_models_match_the_sandbox(wh, api)
    first_run, second_run = _run_starts(wh)
    (before, after) = _periods(wh, changed["id"])
    assert before[:2] == (changed["test_status"], changed["status"])
    assert after[:2] == ("REVOKED", "INACTIVE")
    assert before[3] == after[2], "the first period ends where the second begins"
    assert after[3] == ""
    ((*_, removed_to),) = _periods(wh, removed["id"])
    assert removed_to == _received(wh, "48903")[1], "closed when run 2's 48903 answered"
    ((*_, added_from, added_to),) = _periods(wh, added["id"])
    assert added_from >= second_run
    assert added_to == ""
    models_after_second = wh.models()

    # 3. 48900 changes a tester, then 48904 fails: the job stops before dbt.
    api.use(_spec(THIRD))
    failed = wh.run_job()
    assert failed.returncode != 0
    assert "agent 48904" in failed.stderr + failed.stdout
    assert wh.models() == models_after_second, "a failed run changes no model"

    # 4. Healthy again: the change made in run 3 appears, dated when run 3 received it.
    api.use(_spec(FOURTH))
    assert wh.run_job().returncode == 0, wh.runs[-1].stderr[-4000:]
    _assert_models_match_the_sandbox(wh, api)
    assert len(_run_starts(wh)) == 3, "only successful runs are recorded"
    fourth_run = max(_run_starts(wh))
    (before, after) = _periods(wh, partially_loaded["id"])
    assert before[:2] == (partially_loaded["test_status"], partially_loaded["status"])
    assert after[:2] == ("REJECTED", partially_loaded["status"])
    failed_run_received = _received(wh, "48900")[2]
    assert after[2] == failed_run_received < fourth_run, "the failed run's sighting is history"
    assert before[3] == after[2]
    assert first_run < second_run < fourth_run


def _sandbox_phone_key() -> str:
    """The demo key meltano.yml's sandbox environment gives the hashed-phones variant."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (sandbox,) = [e for e in project["environments"] if e["name"] == "sandbox"]
    (variant,) = [
        plugin
        for plugin in sandbox["config"]["plugins"]["extractors"]
        if plugin["name"] == "tap-kaleyra-rcs--hashed-phones"
    ]
    return str(variant["config"]["phoneno_hash_key"])


def _phones(read: t.Callable[[str], list[tuple[str, ...]]], relation: str) -> dict[str, str]:
    """id -> phoneno ('' for NULL) of a relation holding one row per tester."""
    return dict(read(f"select id, phoneno from kaleyra.{relation}"))


def test_readme_order_hashes_from_the_variants_first_run_and_the_purge_clears_the_rest(
    sandbox, tmp_path
):
    # The README's order: the plain tap, then the hashed-phones variant into the
    # same DuckDB file; then the purge, and the models rebuilt.
    api = sandbox(_spec(FIRST))
    env = meltano_env(tmp_path, api.url)
    read = duckdb_reader(env["TARGET_DUCKDB_FILEPATH"])
    key = _sandbox_phone_key().encode()
    plain = meltano_run(env, "tap-kaleyra-rcs", "target-duckdb")
    assert plain.returncode == 0, plain.stderr[-4000:]
    clear = {tester_id: tester["phoneno"] for tester_id, tester in _served(api).items()}
    gone = api.scenario.testers("48903")[5]["id"]
    api.use(_spec({"48903": {"remove": [5]}}))  # not seen again: its loaded row stays as it was
    hashed = meltano_run(
        env, "tap-kaleyra-rcs--hashed-phones", "target-duckdb", "dbt-duckdb:build-no-unit-tests"
    )
    assert hashed.returncode == 0, hashed.stderr[-4000:]
    keyed = {
        tester_id: hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()
        for tester_id, phone in clear.items()
    }
    current = set(_served(api))

    # From the variant's first run on, only hashes; what the plain run loaded stays clear.
    first, second = [
        dict(read(f"select id, phoneno from kaleyra.testers_observations where run_id = '{run}'"))
        for (run,) in read(
            "select run_id from kaleyra.testers_observations "
            "group by run_id order by min(received_at)"
        )
    ]
    assert first == clear
    assert second == {tester_id: keyed[tester_id] for tester_id in current}
    assert _phones(read, "testers") == {**keyed, gone: clear[gone]}
    assert _phones(read, "int_kaleyra_rcs__tester_latest_observations")[gone] == clear[gone]
    models_before = _phones(read, "kaleyra_rcs__testers")
    assert models_before == second, "current testers: every one seen hashed"

    # The purge, then the models rebuilt, in one command as docs/capabilities.md gives it.
    purged = meltano_run(env, "dbt-duckdb:purge-clear-phones", "dbt-duckdb:build-no-unit-tests")
    assert purged.returncode == 0, purged.stderr[-4000:]
    assert f'testers_observations": {len(clear)} clear phone numbers set to NULL' in purged.stderr

    # No clear number in any raw table or model; the hashes are untouched.
    holding = read(
        "select table_name from information_schema.columns "
        "where table_schema = 'kaleyra' and column_name = 'phoneno'"
    )
    assert len(holding) >= 5, holding
    for (relation,) in holding:
        values = {phone for (phone,) in read(f"select distinct phoneno from kaleyra.{relation}")}
        assert values <= {"", *keyed.values()}, relation
    assert _phones(read, "testers")[gone] == ""
    assert _phones(read, "kaleyra_rcs__testers") == models_before
    summary = read("select sum(testers) from kaleyra.kaleyra_rcs__agent_summary")
    assert summary == [(str(len(current)),)]


HASH = "0123456789abcdef" * 4
PHONES = {
    "clear": "19876543210",
    "hash": HASH,
    "null": None,
    "upper-case hash": HASH.upper(),
    "63 hex digits": HASH[:63],
    "65 hex digits": HASH + "0",
    "formatted": "+1 987 654 3210",
    "empty": "",
}
"""phoneno values and what the purge must make of them: only a hash (64 lower-case hex
digits) and NULL are kept."""


def test_the_purge_keeps_only_hashes_on_postgresql(postgres, tmp_path):
    env, schema = postgres_env(tmp_path, "http://127.0.0.1:1", postgres)
    rows = ", ".join(
        f"('{case}', {'null' if phone is None else repr(phone)})" for case, phone in PHONES.items()
    )
    postgres.psql(
        f"create schema {schema}; "
        f"create table {schema}.testers_observations (id text, phoneno text); "
        f"insert into {schema}.testers_observations values {rows}; "
        f"create table {schema}.testers (id text, carrierid integer); "
        f"create table {schema}.kaleyra_rcs__testers (id text, phoneno text); "
        f"insert into {schema}.kaleyra_rcs__testers values ('a', '19876543210'), ('b', '{HASH}')"
    )
    purged = meltano(env, "invoke", "dbt-postgres:purge-clear-phones")

    assert purged.returncode == 0, purged.stdout[-3000:] + purged.stderr[-3000:]
    assert dict(postgres.psql(f"select id, phoneno from {schema}.testers_observations")) == {
        case: HASH if case == "hash" else "" for case in PHONES
    }
    assert postgres.psql(f"select id, phoneno from {schema}.kaleyra_rcs__testers order by id") == [
        ["a", ""],
        ["b", HASH],
    ]
    for skipped in ('testers" has no phoneno column', 'tester_latest_observations" does not exist'):
        assert skipped in purged.stdout, purged.stdout[-3000:]
