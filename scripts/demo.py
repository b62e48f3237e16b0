"""The main job, end to end: sandbox API -> tap -> Meltano -> DuckDB, then a summary.

    python3 scripts/demo.py

Sets up ``.venv`` and the Meltano plugins, starts the local Kaleyra sandbox,
runs ``meltano run tap-kaleyra-rcs target-duckdb`` in the ``sandbox``
environment, prints what landed in ``output/warehouse.duckdb``, and stops the
sandbox, also when a step fails or the script is interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bootstrap import BIN, ROOT, continue_in_environment, meltano_install, run, say

# meltano.yml's default for target-duckdb; TARGET_DUCKDB_FILEPATH overrides both.
DATABASE = Path(os.environ.get("TARGET_DUCKDB_FILEPATH", ROOT / "output" / "warehouse.duckdb"))
AGENTS, TESTERS_PER_AGENT = 6, 40


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    """Start the sandbox on a free port; return the process and its port."""
    sandbox = subprocess.Popen(
        [
            str(BIN / "tap-kaleyra-rcs-sandbox"),
            "--port",
            "0",
            "--agents",
            str(AGENTS),
            "--testers",
            str(TESTERS_PER_AGENT),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sandbox.stdout is not None
    url = sandbox.stdout.readline().strip()
    if not url:
        raise SystemExit("the sandbox did not start")
    return sandbox, url.rsplit(":", 1)[1]


def stop(process: subprocess.Popen[str]) -> None:
    """Terminate a child and wait for it, so nothing is left running."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def summary() -> str:
    """Testers per agent and per test_status, read back from the DuckDB file."""
    import duckdb  # noqa: PLC0415 - importable once continue_in_environment() ran

    with duckdb.connect(str(DATABASE), read_only=True) as db:
        statuses = [
            row[0]
            for row in db.sql(
                "select distinct coalesce(test_status, '(none)') from kaleyra.testers order by 1"
            ).fetchall()
        ]
        rows = db.sql(
            "select agent_no, coalesce(test_status, '(none)'), count(*) "
            "from kaleyra.testers group by all"
        ).fetchall()
    counts: dict[str, dict[str, int]] = {}
    for agent, status, count in rows:
        counts.setdefault(agent, {})[status] = count
    header = ["agent", *statuses, "total"]
    table = [header]
    for agent in sorted(counts):
        per_status = [counts[agent].get(s, 0) for s in statuses]
        table.append([agent, *map(str, per_status), str(sum(per_status))])
    totals = [sum(counts[a].get(s, 0) for a in counts) for s in statuses]
    table.append(["all", *map(str, totals), str(sum(totals))])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    title = (
        f"{sum(totals)} testers from {len(counts)} agents in "
        f"{_shown(DATABASE)} (table kaleyra.testers)"
    )
    lines = [title, ""]
    for index, row in enumerate(table):
        lines.append(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0 or index == len(table) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> int:
    """Set up, run the pipeline against the sandbox, summarise, clean up."""
    # SIGTERM becomes an exception so that the `finally` below stops the sandbox.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    continue_in_environment("demo")
    env = {**os.environ, "MELTANO_ENVIRONMENT": "sandbox"}
    # Only what this pipeline needs: the other loaders (Snowflake and BigQuery
    # above all) would add minutes and hundreds of MB.
    meltano_install(env, "tap-kaleyra-rcs", "target-duckdb")
    setup_seconds = time.time() - float(os.environ.get("KALEYRA_SETUP_STARTED", time.time()))
    DATABASE.parent.mkdir(exist_ok=True)
    sandbox, port = start_sandbox()
    try:
        say(f"sandbox API on http://127.0.0.1:{port}; running the pipeline")
        env["KALEYRA_SANDBOX_PORT"] = port
        run_started = time.monotonic()
        run(
            BIN / "meltano",
            "--log-level=warning",
            "run",
            "tap-kaleyra-rcs",
            "target-duckdb",
            env=env,
        )
        run_seconds = time.monotonic() - run_started
    finally:
        stop(sandbox)
    print(summary())
    print(f"\nset-up {setup_seconds:.1f} s, pipeline run {run_seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
