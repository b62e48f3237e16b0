"""The main job, end to end: sandbox API -> tap -> Meltano -> DuckDB -> dbt, then a summary.

    python3 scripts/demo.py

Sets up ``.venv`` and the Meltano plugins, starts the local Kaleyra sandbox,
runs the ``testers-duckdb`` job (tap, target-duckdb, dbt build) in the
``sandbox`` environment, prints the ``kaleyra_rcs__agent_summary`` model from
``output/warehouse.duckdb``, and stops the sandbox, also when a step fails or
the script is interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bootstrap import (
    BIN,
    DEMO_PLUGINS,
    ROOT,
    continue_in_environment,
    meltano_install,
    run,
    say,
)

# meltano.yml's default for target-duckdb; TARGET_DUCKDB_FILEPATH overrides both.
DATABASE = Path(os.environ.get("TARGET_DUCKDB_FILEPATH", ROOT / "output" / "warehouse.duckdb"))
AGENTS, TESTERS_PER_AGENT = 6, 40
SUMMARY_MODEL = "kaleyra_rcs__agent_summary"


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


SUMMARY_COLUMNS = (
    "agent_no, testers, accepted, pending, rejected, expired, other_status, "
    "oldest_pending_created_at"
)
"""The columns shown: the counts, then the oldest pending invitation (last)."""


def summary() -> str:
    """The per-agent table of the ``kaleyra_rcs__agent_summary`` model, with totals."""
    import duckdb  # noqa: PLC0415 - importable once continue_in_environment() ran

    with duckdb.connect(str(DATABASE), read_only=True) as db:
        result = db.sql(f"select {SUMMARY_COLUMNS} from kaleyra.{SUMMARY_MODEL} order by agent_no")  # noqa: S608 - constants
        header = [
            column.replace("oldest_pending_created_at", "oldest pending")
            for column in result.columns
        ]
        rows = result.fetchall()
    table = [header]
    table += [[_cell(value) for value in row] for row in rows]
    counts = [list(row[1:-1]) for row in rows]
    totals = [str(sum(column)) for column in zip(*counts, strict=True)] if rows else []
    oldest = min((row[-1] for row in rows if row[-1] is not None), default=None)
    table.append(["all", *totals, _cell(oldest)])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    title = (
        f"{totals[0] if totals else 0} testers from {len(rows)} agents in "
        f"{_shown(DATABASE)} (model kaleyra.{SUMMARY_MODEL})"
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


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> int:
    """Set up, run the pipeline against the sandbox, summarise, clean up."""
    # SIGTERM becomes an exception so that the `finally` below stops the sandbox.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    continue_in_environment("demo")
    env = {**os.environ, "MELTANO_ENVIRONMENT": "sandbox"}
    # Only what this pipeline needs: the other loaders and dbt adapters (Snowflake
    # and BigQuery above all) would add minutes and hundreds of MB.
    meltano_install(env, *DEMO_PLUGINS)
    setup_seconds = time.time() - float(os.environ.get("KALEYRA_SETUP_STARTED", time.time()))
    DATABASE.parent.mkdir(exist_ok=True)
    sandbox, port = start_sandbox()
    try:
        say(f"sandbox API on http://127.0.0.1:{port}; running the pipeline")
        env["KALEYRA_SANDBOX_PORT"] = port
        run_started = time.monotonic()
        # The scheduled job: tap -> target-duckdb -> dbt build (models and data tests).
        run(BIN / "meltano", "--log-level=warning", "run", "testers-duckdb", env=env)
        run_seconds = time.monotonic() - run_started
    finally:
        stop(sandbox)
    print(summary())
    print(f"\nset-up {setup_seconds:.1f} s, pipeline run {run_seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
