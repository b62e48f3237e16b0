"""Mutation testing of the dbt models: each hand-made mistake must fail a dbt unit test.

    .venv/bin/python scripts/mutate_models.py

mutmut mutates Python only, so the SQL gets this: build the models once on a
DuckDB file that the tap loaded from the sandbox (dbt unit tests need the tested
models' parents to exist), then for each mutation below change one line of SQL,
run ``meltano invoke dbt-duckdb test --select test_type:unit``, and put the line
back. Prints KILLED (with the unit tests that failed) or SURVIVED per mutation;
exits 1 if any survived. Run by hand, not in CI: about 10 s per mutation.
"""

from __future__ import annotations

import os
import sys
import tempfile
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import RunningSandbox  # noqa: E402
from tests.warehouses import meltano, meltano_env  # noqa: E402

if t.TYPE_CHECKING:
    import subprocess

EVENTS = "transform/models/intermediate/int_kaleyra_rcs__tester_events.sql"
HISTORY = "transform/models/marts/kaleyra_rcs__tester_status_history.sql"
CURRENT = "transform/models/marts/kaleyra_rcs__testers.sql"
SUMMARY = "transform/models/marts/kaleyra_rcs__agent_summary.sql"
COPY_ORDER = "transform/macros/kaleyra_rcs_copy_order.sql"
DRIFT = "transform/macros/kaleyra_rcs_drifted_fields.sql"

MUTATIONS = [
    (
        "status left out of the state compared",
        EVENTS,
        "            or status is distinct from previous_status\n",
        "",
    ),
    (
        "a missing test_status not counted in other_status",
        SUMMARY,
        "when testers.test_status is null\n                    or testers.test_status not in",
        "when testers.test_status not in",
    ),
    (
        "min -> max: removal dated at the last resync, not the first",
        EVENTS,
        "min(synced_agents.run_started_at) as resynced_run_at",
        "max(synced_agents.run_started_at) as resynced_run_at",
    ),
    (
        "> -> >= in the presence predicate",
        EVENTS,
        "or sequenced.next_observed_run_at > sequenced.next_successful_run_at",
        "or sequenced.next_observed_run_at >= sequenced.next_successful_run_at",
    ),
    (
        "< -> <=: a return after a removal continues the old period",
        EVENTS,
        "or previous_next_successful_run_at < run_started_at",
        "or previous_next_successful_run_at <= run_started_at",
    ),
    (
        "agent_changed and status_changed swapped",
        HISTORY,
        "then 'agent_changed'",
        "then 'status_changed'",
    ),
    (
        "the duplicate under the lowest agent wins",
        COPY_ORDER,
        "synced_agent_no desc, position desc",
        "synced_agent_no asc, position desc",
    ),
    (
        "a removal dated at the run's start, not the agent's answer",
        EVENTS,
        "coalesce(absences.synced_at, absences.absent_run_at) as event_at",
        "absences.absent_run_at as event_at",
    ),
    (
        "failed runs remove testers",
        EVENTS,
        "min(case when is_successful then started_at end)",
        "min(started_at)",
    ),
    (
        "testers of an agent no longer synced left out of the current ones",
        CURRENT,
        "where recency = 1 and kind <> 'removed'",
        "where recency = 1 and kind = 'observed'",
    ),
    (
        "the summary counts testers of agents no longer synced",
        SUMMARY,
        "    where is_agent_synced\n",
        "",
    ),
    (
        "current testers without their latest answer's drifted_fields",
        CURRENT,
        "    latest.drifted_fields\n",
        "    cast(null as {{ dbt.type_string() }}) as drifted_fields\n",
    ),
    ("a passed-through field with a typed column keeps its name", DRIFT, "~ '_as_sent'", ""),
]


def dbt(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``meltano invoke dbt-duckdb ARGS`` in the scratch warehouse."""
    return meltano(env, "--log-level=warning", "invoke", "dbt-duckdb", *args)


def failed_tests(output: str) -> list[str]:
    """The unit tests dbt reports as failed or in error."""
    return [
        line.split("::")[1].split()[0]
        for line in output.splitlines()
        if "::" in line and (" FAIL " in line or " ERROR " in line)
    ]


def main() -> int:
    """Build once, then try every mutation; 1 if any survived."""
    survived = 0
    with tempfile.TemporaryDirectory() as scratch:
        api = RunningSandbox({"agents": 2, "testers_per_agent": 3})
        try:
            env = meltano_env(Path(scratch), api.url)
            env["TAP_KALEYRA_RCS_AGENT_NUMBERS"] = '["48900", "48901"]'
            built = meltano(env, "run", "testers-duckdb")
            if built.returncode != 0:
                print(built.stderr[-3000:], file=sys.stderr)
                return 2
            baseline = dbt(env, "test", "--select", "test_type:unit")
            if failed_tests(baseline.stdout) or baseline.returncode != 0:
                print("the unit tests fail before any mutation", file=sys.stderr)
                return 2
            for name, path, old, new in MUTATIONS:
                source = ROOT / path
                text = source.read_text()
                if text.count(old) != 1:
                    print(f"not found once in {path}: {old!r}", file=sys.stderr)
                    return 2
                source.write_text(text.replace(old, new))
                try:
                    failed = failed_tests(dbt(env, "test", "--select", "test_type:unit").stdout)
                finally:
                    source.write_text(text)
                survived += not failed
                print(f"{'KILLED  ' if failed else 'SURVIVED'} {name}: {', '.join(failed)}")
        finally:
            api.stop()
    print(f"{len(MUTATIONS) - survived} of {len(MUTATIONS)} mutations killed")
    return 1 if survived else 0


if __name__ == "__main__":
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    sys.exit(main())
