"""The whole job interrupted: Ctrl-C on ``meltano run``, or SIGTERM to Meltano.

Ctrl-C sends SIGINT to every process of the job; Meltano then sends SIGTERM to
the tap and the loader and waits for them. The tap stops at once (no
``ACTIVATE_VERSION``, no run record); target-duckdb, through
``plugins/target-duckdb-file``, writes every tester it had read and stops.
(Meltano keeps the loader's input open while it waits for it, so the loader
cannot read on to the end of what the tap sent.)
So what is loaded is every tester the loader had read when the signal came (the
agent being sent then possibly in part), what is lost is the rest, and nothing
is deleted. The tap failing or signalled alone: tests/test_meltano_e2e.py
and tests/test_signals.py.
"""

from __future__ import annotations

import os
import signal

import duckdb
import pytest

from tests.pipelines import duckdb_pipeline, spec
from tests.processes import kill_tree
from tests.warehouses import meltano_start, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

TESTERS_PER_AGENT = 8
HANGING_AGENT = "48903"
AGENTS = [f"4890{i}" for i in range(6)]
OBSERVATIONS_TABLE_CREATED = """Table '"testers_observations"' does not exist. Creating"""


@pytest.mark.parametrize(
    ("signum", "to_every_process"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-on-the-job", "sigterm-to-meltano"],
)
def test_an_interrupted_job_loads_every_agent_the_tap_sent_and_deletes_nothing(
    sandbox, tmp_path, signum, to_every_process
):
    api = sandbox(
        spec(TESTERS_PER_AGENT, agent_overrides={HANGING_AGENT: {"faults": [{"kind": "hang"}]}})
    )
    pipeline = duckdb_pipeline(api, tmp_path, TAP_KALEYRA_RCS_MAX_CONCURRENT_AGENTS="1")
    log = tmp_path / "job.log"
    job = meltano_start(pipeline.env, "tap-kaleyra-rcs", "target-duckdb", log=log, own_session=True)
    try:
        wait_until(
            lambda: api.stats()["in_flight"] == 1 and HANGING_AGENT in api.stats()["by_agent"],
            what=f"the tap waiting on agent {HANGING_AGENT}",
        )
        # The loader creates a table when it reads the stream's SCHEMA: the one of
        # the observations comes after the first agent's testers.
        wait_until(
            lambda: OBSERVATIONS_TABLE_CREATED in log.read_text(),
            what="the loader reading the first agent's testers",
        )
        (os.killpg if to_every_process else os.kill)(job.pid, signum)
        assert job.wait(timeout=120) != 0
    finally:
        kill_tree(job)

    output = log.read_text()
    assert "Traceback" not in output
    name = signal.Signals(signum).name
    assert f"tap-kaleyra-rcs: stopped by {name}" in output
    assert f"target-duckdb: {name} received: writing what the tap sent so far" in output
    per_agent = "select agent_no, count(*) from kaleyra.{} group by 1 order by 1"
    with duckdb.connect(pipeline.env["TARGET_DUCKDB_FILEPATH"], read_only=True) as db:
        tables = {
            row[0] for row in db.sql("select table_name from information_schema.tables").fetchall()
        }
        loaded = {
            table: db.sql(per_agent.format(table)).fetchall()
            for table in ("testers", "testers_observations")
            if table in tables
        }
    assert "testers_sync_runs" not in tables, "no run record: the models remove nothing"
    assert loaded["testers"][0] == ("48900", TESTERS_PER_AGENT), "read before the signal: loaded"
    for table, counts in loaded.items():
        agents = [agent for agent, _ in counts]
        assert agents == AGENTS[: len(agents)], f"{table}: the agents in the tap's order"
        assert all(n == TESTERS_PER_AGENT for _, n in counts[:-1]), f"{table}: whole agents"
        assert HANGING_AGENT not in agents
