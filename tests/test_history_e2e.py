"""History that survives: every model rebuilt from the raw observations, on DuckDB and PostgreSQL.

Real Meltano, the real tap, target-duckdb / target-postgres and dbt; the sandbox API
on 127.0.0.1. Seven runs change the sandbox's account the way a user's would, and
one tester, T, goes through all of it:

1. a first run (the job: tap, loader, dbt build);
2. T's status changes, loaded by ``meltano run tap-kaleyra-rcs target-<kind>``
   alone (no dbt); agent 48905's answer adds two fields, a string and an object;
3. T is removed; tester M moves from agent 48903 to 48904; a tester of 48905 has
   ``carrierid`` as a word (both kept in ``drifted_fields``: schema_changes keep);
4. a run that fails at agent 48904, after 48900 answered with W changed to an
   unknown status and without X;
5. agent 48901 (T's, U's and V's) is taken out of ``agent_numbers``;
6. 48901 is synced again, without T and V; agent 48905 answers an empty list,
   which is held back (its testers kept) as the first empty answer after testers;
7. T is back; 48905 answers empty again, which is believed: its testers go.

Throughout, 48902 lists 48903's first tester too (a duplicate under two agents),
48905 lists one tester twice, and one tester has no test_status.

PostgreSQL runs with ``hard_delete: true`` and ACTIVATE_VERSION on, so the loader
deletes removed testers' rows from ``testers``: the models must not care.

At the end every dbt-built relation is dropped and rebuilt from the raw tables,
and (on DuckDB) a run record that lands after dbt built past it fails the job's
build, naming the rebuild, which then succeeds.
"""

from __future__ import annotations

import json
import typing as t

import pytest

from tap_kaleyra_rcs.sandbox import generate_testers
from tests.emulated_warehouses import STORAGE_WRITE_HOST
from tests.model_warehouses import Warehouse, open_warehouse
from tests.pipelines import spec
from tests.test_meltano_e2e import AGENTS

if t.TYPE_CHECKING:
    from tests.support import RunningSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

UNKNOWN = "ON_HOLD"
"""A test_status none of the four known ones."""


NEW_FIELDS = {"brand_id": "b-7", "device": {"model": "X1", "os": ["rcs", 2]}}
"""The fields 48905's answer adds in run 2: a string and a nested object."""


def _generated(api: RunningSandbox, agent: str, index: int) -> dict[str, t.Any]:
    """The sandbox's generated tester ``index`` of ``agent``, before any edit."""
    return generate_testers(api.scenario.seed, agent, 8)[index]


def _scenario(api: RunningSandbox, **agents: dict[str, t.Any]) -> dict[str, t.Any]:
    """The step's per-agent changes, plus what holds in every step.

    48902's tester #4 carries the id of 48903's tester #0 (one tester under two
    agents), 48905's tester #6 the id of its tester #7 (listed twice), and 48902's
    tester #1 has no test_status.
    """
    overrides: dict[str, dict[str, t.Any]] = json.loads(json.dumps(agents))
    in_48902 = overrides.setdefault("48902", {})
    in_48902.setdefault("set", {})["4"] = {"id": _generated(api, "48903", 0)["id"]}
    in_48902["unset"] = {"1": ["test_status"]}
    in_48905 = overrides.setdefault("48905", {})
    if in_48905.get("testers") != 0:
        in_48905.setdefault("set", {})["6"] = {"id": _generated(api, "48905", 7)["id"]}
    return spec(agent_overrides=overrides)


WAREHOUSES = ("duckdb", "postgres", "bigquery", "snowflake")
"""Every warehouse the scenario runs on, each through its own loader."""


@pytest.fixture(params=WAREHOUSES)
def warehouse(request, sandbox, tmp_path) -> tuple[Warehouse, RunningSandbox]:
    api = sandbox(spec())
    api.use(_scenario(api))
    extra = {}
    if request.param == "postgres":
        extra = {
            "TARGET_POSTGRES_HARD_DELETE": "true",
            "TAP_KALEYRA_RCS_EMIT_ACTIVATE_VERSION_MESSAGES": "true",
        }
    return open_warehouse(request.param, api, tmp_path, request, **extra), api


def _ok(done) -> None:
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def _built(done) -> str:
    """What dbt says it ran: its ``Finished running ...`` line."""
    (line,) = [
        line for line in (done.stdout + done.stderr).splitlines() if "Finished running" in line
    ]
    return line


class Runs:
    """The runs loaded so far, oldest first, read from the raw tables."""

    def __init__(self, wh: Warehouse) -> None:
        started = wh.rows(
            "select distinct cast(run_started_at as {text}), run_id "
            "from {schema}.testers_observations"
        )
        self.ids = [run_id for _, run_id in started]
        self._wh = wh

    def received(self, step: int, agent: str) -> str:
        """When ``agent``'s answer arrived in run ``step`` (1-based)."""
        ((at,),) = self._wh.rows(
            "select distinct cast(received_at as {text}) from {schema}.testers_observations "
            f"where run_id = '{self.ids[step - 1]}' and synced_agent_no = '{agent}'"
        )
        return at

    def synced(self, step: int, agent: str) -> str:
        """When ``agent``'s answer arrived in successful run ``step``, from its run record."""
        ((at,),) = self._wh.rows(
            "select cast(received_at as {text}) from {schema}.testers_sync_run_agents "
            f"where run_id = '{self.ids[step - 1]}' and agent_no = '{agent}'"
        )
        return at

    def started(self, step: int) -> str:
        ((at,),) = self._wh.rows(
            "select distinct cast(run_started_at as {text}) from {schema}.testers_observations "
            f"where run_id = '{self.ids[step - 1]}'"
        )
        return at


def _current(wh: Warehouse) -> dict[str, tuple[str, ...]]:
    return {
        row[0]: row[1:]
        for row in wh.rows(
            "select id, agent_no, test_status, status, cast(is_agent_synced as {text}) "
            "from {schema}.kaleyra_rcs__testers"
        )
    }


def _served(api: RunningSandbox, agents: list[str] = AGENTS) -> dict[str, dict[str, t.Any]]:
    """Every tester ``agents`` serve, by id; of a duplicate, the highest agent's copy."""
    by_id: dict[str, dict[str, t.Any]] = {}
    for agent in sorted(agents):
        for tester in api.scenario.testers(agent):
            by_id[tester["id"]] = tester
    return by_id


def _assert_current_is_what_the_sandbox_serves(wh: Warehouse, api: RunningSandbox) -> None:
    """After a run that synced every agent: each served tester current, as served, once open."""
    served = _served(api)
    current = wh.rows(
        "select id, agent_no, phoneno, coalesce(test_status, ''), status "
        "from {schema}.kaleyra_rcs__testers"
    )
    assert current == sorted(
        (tid, tr["agent_no"], tr["phoneno"], tr.get("test_status") or "", tr["status"])
        for tid, tr in served.items()
    )
    open_periods = wh.rows(
        "select id, coalesce(test_status, ''), status "
        "from {schema}.kaleyra_rcs__tester_status_history where valid_to is null"
    )
    assert open_periods == [row[:1] + row[3:] for row in current], "one open period each"
    assert _summary(wh) == _expected_summary(api, AGENTS)


def _summary(wh: Warehouse) -> dict[str, tuple[int, ...]]:
    return {
        row[0]: tuple(int(v) for v in row[1:7])
        for row in wh.rows(
            "select agent_no, testers, accepted, pending, rejected, expired, other_status "
            "from {schema}.kaleyra_rcs__agent_summary"
        )
    }


def _expected_summary(api: RunningSandbox, agents: list[str]) -> dict[str, tuple[int, ...]]:
    """Counts per agent of what the sandbox serves, each duplicate id counted once."""
    by_id = _served(api, agents)
    summary = {}
    for agent in agents:
        statuses = [tr.get("test_status") for tr in by_id.values() if tr["agent_no"] == agent]
        known = [statuses.count(s) for s in ("ACCEPTED", "PENDING", "REJECTED", "EXPIRED")]
        summary[agent] = (len(statuses), *known, len(statuses) - sum(known))
    return summary


def test_history_of_every_change_survives_a_rebuild_from_raw_data(warehouse, request):  # noqa: PLR0915 - one story, told in order
    wh, api = warehouse
    t_, u, v = (_generated(api, "48901", i) for i in range(3))
    w, x = _generated(api, "48900", 0), _generated(api, "48900", 5)
    m = _generated(api, "48903", 3)
    duplicated = _generated(api, "48903", 0)
    revoked = {"test_status": "REVOKED", "status": "INACTIVE"}
    without_48901 = json.dumps([a for a in AGENTS if a != "48901"])
    moved_m = {"set": {"7": {**m, "agent_no": "48904", "test_status": "PENDING"}}}
    failed_run_48900 = {"set": {"0": {"test_status": UNKNOWN}}, "remove": [5]}
    changed_w = {"set": {"0": {"test_status": UNKNOWN}}}
    added = {"testers": 9}  # 48902's ninth tester, listed from run 3 on
    new_fields = {"extra_fields": NEW_FIELDS}  # run 2: Kaleyra adds two fields
    carrierid_as_word = {"set": {"0": {"carrierid": "T-Mobile"}}}  # run 3: a type changes

    # 1. A first run. The job's build runs the data tests, not dbt's unit tests.
    job = wh.run_job()
    _ok(job)
    assert "data tests" in _built(job)
    assert "unit test" not in _built(job)
    first = wh.models()
    served = {tester["id"] for agent in AGENTS for tester in api.scenario.testers(agent)}
    assert len(served) == 46, "48 listed, two of them twice"
    assert len(first["history"]) == len(first["testers"]) == 46
    _assert_current_is_what_the_sandbox_serves(wh, api)
    assert _current(wh)[duplicated["id"]][0] == "48903", "the highest agent's copy wins"

    # 2. T changes; loaded without dbt. 48905's answer adds two fields (drift).
    api.use(_scenario(api, **{"48901": {"set": {"0": revoked}}, "48905": new_fields}))
    _ok(wh.load_only())

    # 3. T removed, M moves to 48904, N added to 48902; the job builds both runs.
    api.use(
        _scenario(
            api,
            **{"48901": {"set": {"0": revoked}, "remove": [0]}, "48903": {"remove": [3]}},
            **{"48904": moved_m, "48902": added, "48905": carrierid_as_word},
        )
    )
    n = api.scenario.testers("48902")[8]
    third = wh.run_job()
    _ok(third)
    assert "WARN 1 warn_testers_with_drifted_fields" in third.stdout + third.stderr, (
        "the build warns of the drifted tester, and succeeds"
    )
    assert t_["id"] not in _current(wh)
    _assert_current_is_what_the_sandbox_serves(wh, api)
    # Runs 2 and 3 exited 0 under schema_changes: keep, and lost nothing: the new
    # fields and the word are in the raw history, the typed carrierid null.
    drifted = wh.rows(
        "select distinct drifted_fields from {schema}.testers_observations "
        "where drifted_fields is not null"
    )
    assert [json.loads(text) for (text,) in drifted] == sorted(
        [NEW_FIELDS, {"carrierid": "T-Mobile"}], key=lambda d: json.dumps(d, separators=(",", ":"))
    )
    worded = wh.rows(
        "select count(*), count(carrierid) from {schema}.testers_observations "
        """where drifted_fields = '{{"carrierid":"T-Mobile"}}'"""  # braces: .format
    )
    assert worded == [("1", "0")], "one tester, its typed column null, never the word"

    # 4. 48900 changes W and drops X, then 48904 fails: the job stops before dbt.
    after_third = wh.models()
    api.use(
        _scenario(
            api,
            **{"48900": failed_run_48900, "48901": {"remove": [0]}, "48903": {"remove": [3]}},
            **{"48904": {**moved_m, "faults": [{"status": 500, "times": "always"}]}},
            **{"48902": added},
        )
    )
    failed = wh.run_job()
    assert failed.returncode != 0
    assert "agent 48904" in failed.stderr + failed.stdout
    assert wh.models() == after_third, "a failed job changes no model"
    if wh.kind == "duckdb":  # and by hand, dbt after the failed run: it removes nothing
        _ok(wh.dbt("build"))
        assert x["id"] in _current(wh)
        assert _current(wh)[w["id"]][1] == UNKNOWN

    # 5. Agent 48901 is no longer synced.
    api.use(
        _scenario(
            api,
            **{"48900": changed_w, "48901": {"remove": [0]}, "48903": {"remove": [3]}},
            **{"48904": moved_m, "48902": added},
        )
    )
    _ok(wh.run_job(TAP_KALEYRA_RCS_AGENT_NUMBERS=without_48901))
    current = _current(wh)
    assert current[u["id"]][3] == current[v["id"]][3] == "false", "kept, flagged not synced"
    assert "48901" not in _summary(wh)

    # 6. 48901 is synced again, without T and V; 48905 answers an empty list.
    api.use(
        _scenario(
            api,
            **{"48900": changed_w, "48901": {"remove": [0, 2]}, "48903": {"remove": [3]}},
            **{"48904": moved_m, "48905": {"testers": 0}, "48902": added},
        )
    )
    _ok(wh.run_job())
    current = _current(wh)
    assert v["id"] not in current, "removed once its agent is synced again without it"
    assert current[u["id"]][3] == "true"
    # The job passes the state on, so the tap knows 48905 listed testers last time:
    # its first empty answer is held back, not synced, and removes nothing. The
    # Snowflake harness runs the tap with `meltano invoke`, without the state: there
    # an empty answer is believed at once (docs/streams.md, testers_sync_runs).
    if wh.kind != "snowflake":
        held = {tid for tid, row in current.items() if row[0] == "48905"}
        assert held, "48905's testers are kept"
        assert {current[tid][3] for tid in held} == {"false"}, "flagged not synced"
        assert set(current) - held == set(_served(api)), "every other agent as served"
        assert "48905" not in _summary(wh)
        assert wh.rows(
            "select held_agents from {schema}.testers_sync_runs where held_agents is not null"
        ) == [("48905",)]
    else:
        _assert_current_is_what_the_sandbox_serves(wh, api)

    # 7. T is back.
    api.use(
        _scenario(
            api,
            **{"48900": changed_w, "48901": {"set": {"0": revoked}, "remove": [2]}},
            **{"48903": {"remove": [3]}, "48904": moved_m, "48905": {"testers": 0}},
            **{"48902": added},
        )
    )
    _ok(wh.run_job())
    _assert_current_is_what_the_sandbox_serves(wh, api)
    summary = _summary(wh)
    assert summary["48905"] == (0, 0, 0, 0, 0, 0), "a second empty answer is believed: zeros"
    runs = Runs(wh)
    assert len(runs.ids) == 7
    recorded = wh.rows("select run_id from {schema}.testers_sync_runs")
    assert recorded == sorted((run_id,) for run_id in runs.ids if run_id != runs.ids[3]), (
        "every run but the failed fourth has its run record"
    )

    # T: change (run 2, never built on its own), removal (3), its agent dropped (5)
    # and re-added (6) while it was gone, return (7).
    assert wh.period(t_["id"]) == [
        ("48901", t_["test_status"], t_["status"], runs.received(1, "48901"),
         runs.received(2, "48901"), "status_changed"),
        ("48901", "REVOKED", "INACTIVE", runs.received(2, "48901"),
         runs.synced(3, "48901"), "removed"),
        ("48901", "REVOKED", "INACTIVE", runs.received(7, "48901"), "", ""),
    ]  # fmt: skip
    # U: not removed while its agent was not synced; a new period once it was again.
    assert wh.period(u["id"]) == [
        ("48901", u["test_status"], u["status"], runs.received(1, "48901"),
         runs.started(5), "agent_no_longer_synced"),
        ("48901", u["test_status"], u["status"], runs.received(6, "48901"), "", ""),
    ]  # fmt: skip
    # V: gone while its agent was not synced: its history ends there, and it is
    # no longer current.
    assert wh.period(v["id"]) == [
        ("48901", v["test_status"], v["status"], runs.received(1, "48901"),
         runs.started(5), "agent_no_longer_synced"),
    ]  # fmt: skip
    # W: changed in the failed run 4, dated when run 4 received it.
    assert wh.period(w["id"]) == [
        ("48900", w["test_status"], w["status"], runs.received(1, "48900"),
         runs.received(4, "48900"), "status_changed"),
        ("48900", UNKNOWN, w["status"], runs.received(4, "48900"), "", ""),
    ]  # fmt: skip
    assert runs.received(4, "48900") < runs.started(5), "run 4's sighting is history"
    # N: added in run 3, one open period from when run 3 received it.
    assert wh.period(n["id"]) == [
        ("48902", n["test_status"], n["status"], runs.received(3, "48902"), "", ""),
    ]
    # X: absent from the failed run only: never removed.
    assert wh.period(x["id"]) == [
        ("48900", x["test_status"], x["status"], runs.received(1, "48900"), "", ""),
    ]
    # M: moved agent, a change of state.
    assert wh.period(m["id"]) == [
        ("48903", m["test_status"], m["status"], runs.received(1, "48903"),
         runs.received(3, "48904"), "agent_changed"),
        ("48904", "PENDING", m["status"], runs.received(3, "48904"), "", ""),
    ]  # fmt: skip

    # Duplicates are counted in every run record.
    duplicate_counts = wh.rows("select duplicate_ids from {schema}.testers_sync_runs")
    assert {int(count) for (count,) in duplicate_counts} == {2, 1}  # 1 once 48905 is empty
    assert duplicated["id"] in failed.stderr + failed.stdout

    if wh.kind == "postgres":  # hard_delete: the loader deleted V's row; history kept it
        assert wh.rows(f"select id from {{schema}}.testers where id = '{v['id']}'") == []
        indexes = wh.rows(
            "select indexname from pg_indexes "
            "where schemaname = '{schema}' and tablename = 'testers_observations'"
        )
        assert ("testers_observations_run_started_at_brin",) in indexes

    if wh.kind == "bigquery":  # the rows went through the Storage Write API, as configured
        bridge = request.getfixturevalue("bigquery").bridge
        assert bridge.tunnels, "no Storage Write connection was made"
        assert set(bridge.tunnels) == {f"{STORAGE_WRITE_HOST}:443"}

    # Every dbt-built relation dropped, then one build: the same rows.
    incremental = wh.models()
    dropped = wh.drop_dbt_relations()
    assert "int_kaleyra_rcs__tester_events" in dropped
    assert wh.dbt_relations() == []
    rebuilt = wh.dbt("build")
    _ok(rebuilt)
    assert "unit tests" in _built(rebuilt), "dbt build runs the unit tests on this warehouse"
    assert wh.models() == incremental

    if wh.kind == "duckdb":  # a successful run whose record lands after dbt built past it
        # (dbt ran during a load): its removals were never computed. The job's build
        # fails on it, naming the rebuild, and the rebuild succeeds.
        wh.execute(
            f"insert into {wh.schema}.testers_sync_runs (run_id, started_at, finished_at, "
            "agents, agents_without_testers, testers, retries, duplicate_ids) values "
            "('late-run', timestamp '2000-01-01', timestamp '2000-01-01', 6, 0, 48, 0, 0)"
        )
        late = wh.job_build()
        assert late.returncode != 0
        assert "assert_every_successful_run_is_built" in late.stdout
        _ok(wh.dbt("build", "--full-refresh"))
