"""What keeping the raw history costs on DuckDB: rows, file size and dbt build time per run.

    .venv/bin/python benchmarks/history_cost.py [--runs 30] [--agents 100] [--testers 1000]

A steady account: 100 agents x 1,000 testers; before each run after the first,
10 more testers of every agent (1 %) change test_status. Each run goes through
the real Meltano CLI: ``meltano run tap-kaleyra-rcs target-duckdb`` against the
sandbox on 127.0.0.1, then ``meltano invoke dbt-duckdb build`` (models and all their
tests, dbt's own time read from its last line). After the last run every model is
dropped and built again from the raw tables (a full rebuild), and the rows are
compared with the incremental ones.

Prints one line per run, then the figures docs/models.md quotes. Takes about
15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.model_warehouses import RAW_TABLES, Warehouse, duckdb_reader  # noqa: E402
from tests.support import RunningSandbox  # noqa: E402
from tests.warehouses import meltano_env  # noqa: E402

DBT_SECONDS = re.compile(r"Finished running .* in .*\(([\d.]+)s\)")
STATUSES = ("ACCEPTED", "PENDING", "REJECTED", "EXPIRED")


def scenario(agents: int, testers: int, run: int) -> dict[str, object]:
    """Run ``run`` (from 1): the first 10 x (run - 1) testers of each agent changed."""
    changed = {
        str(index): {"test_status": f"CHANGED_{index // 10}"} for index in range(10 * (run - 1))
    }
    return {
        "agents": agents,
        "testers_per_agent": testers,
        "agent_overrides": {str(48900 + a): {"set": changed} for a in range(agents)},
    }


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{(done.stdout + done.stderr)[-3000:]}")
    return time.monotonic() - started, done.stdout + done.stderr


def dbt_build(env: dict[str, str]) -> tuple[float, float]:
    """(seconds of the whole command, dbt's own seconds)."""
    seconds, output = timed([str(ROOT / ".venv/bin/meltano"), "invoke", "dbt-duckdb", "build"], env)
    match = DBT_SECONDS.findall(output)
    return seconds, float(match[-1]) if match else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--testers", type=int, default=1000)
    args = parser.parse_args()
    meltano = str(ROOT / ".venv/bin/meltano")

    with tempfile.TemporaryDirectory() as scratch:
        api = RunningSandbox(scenario(args.agents, args.testers, 1))
        try:
            agents = [str(48900 + a) for a in range(args.agents)]
            env = meltano_env(
                Path(scratch), api.url, TAP_KALEYRA_RCS_AGENT_NUMBERS=str(agents).replace("'", '"')
            )
            path = env["TARGET_DUCKDB_FILEPATH"]
            warehouse = Warehouse("duckdb", env, "kaleyra", duckdb_reader(path), lambda _: None)
            builds: list[tuple[float, float]] = []
            print("run  load_s  build_s  dbt_s  observations  events  file_MB")
            for run in range(1, args.runs + 1):
                api.use(scenario(args.agents, args.testers, run))
                load_s, _ = timed([meltano, "run", "tap-kaleyra-rcs", "target-duckdb"], env)
                builds.append(dbt_build(env))
                ((observations, events),) = warehouse.rows(
                    "select (select count(*) from kaleyra.testers_observations), "
                    "(select count(*) from kaleyra.int_kaleyra_rcs__tester_events)"
                )
                size = Path(path).stat().st_size / 1e6
                print(
                    f"{run:3d}  {load_s:6.1f}  {builds[-1][0]:7.1f}  {builds[-1][1]:5.1f}  "
                    f"{observations:>12}  {events:>6}  {size:7.1f}",
                    flush=True,
                )
            incremental = warehouse.models()
            for name, kind in warehouse.dbt_relations():
                drop = f"drop {'view' if kind == 'VIEW' else 'table'} kaleyra.{name}"
                with duckdb.connect(path) as db:
                    db.execute(drop)
            rebuild = dbt_build(env)
            same = warehouse.models() == incremental
        finally:
            api.stop()

    per_run = [b[1] for b in builds[1:]]
    print()
    print(f"raw tables: {', '.join(RAW_TABLES)}")
    print(f"dbt build, run 1: {builds[0][1]:.1f} s (command {builds[0][0]:.1f} s)")
    print(f"dbt build, run {args.runs}: {builds[-1][1]:.1f} s (command {builds[-1][0]:.1f} s)")
    print(f"dbt build, runs 2-{args.runs}: median {statistics.median(per_run):.1f} s")
    tenth = max(1, len(per_run) // 3)
    early, late = per_run[:tenth], per_run[-tenth:]
    print(
        f"dbt build, first {tenth} incremental runs: median {statistics.median(early):.1f} s; "
        f"last {tenth}: median {statistics.median(late):.1f} s "
        f"(ratio {statistics.median(late) / statistics.median(early):.2f})"
    )
    print(f"dbt build, full rebuild after run {args.runs}: {rebuild[1]:.1f} s")
    print(f"full rebuild gives the incremental rows: {same}")
    print(f"OS: {os.uname().sysname} {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
