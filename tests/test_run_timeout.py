"""Every scheduled run ends: a job whose loader hangs is stopped at its bound.

target-bigquery, when it cannot reach the Storage Write endpoint, retries for
ever. Meltano's ``MELTANO_RUN_TIMEOUT`` (``meltano run --timeout``) ends the run
at the bound each schedule in meltano.yml states (docs/scheduling.md derives it
from the settings). Here the endpoint is a closed port on 127.0.0.1 behind the
test's redirect of the write client, and the bound a small one, so the test
takes about that long.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.model_warehouses import open_warehouse
from tests.pipelines import AGENTS, spec

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

BOUND_SECONDS = 45
"""Above this job's normal time on the emulator (about 15 s), far below a hang."""
TESTERS_PER_AGENT = 8
STOP_SECONDS = 30
"""How long the job's processes may take to go once Meltano has exited: they were sent
SIGTERM when the bound passed, and are killed when Meltano's event loop closes."""


def job_processes(marker: str) -> list[str]:
    """The command lines of live processes whose environment holds ``marker``."""
    return [command for entry in Path("/proc").iterdir() if (command := _holding(entry, marker))]


def _holding(entry: Path, marker: str) -> str:
    """``entry``'s command line if its environment holds ``marker``, else ''."""
    try:
        if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
            return (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        pass  # ended meanwhile, or not ours to read
    return ""


def wait_until_gone(marker: str, seconds: float) -> list[str]:
    """The job's processes still alive after ``seconds``, polled until they are gone."""
    deadline = time.monotonic() + seconds
    while (left := job_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_a_job_whose_loader_cannot_write_ends_at_its_bound(sandbox, tmp_path, request):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}"
        wh = open_warehouse(
            "bigquery",
            sandbox(spec(TESTERS_PER_AGENT)),
            tmp_path,
            request,
            grpc_proxy=unreachable,
            MELTANO_RUN_TIMEOUT=str(BOUND_SECONDS),
        )
        started = time.monotonic()
        done = wh.run_job()
        took = time.monotonic() - started

    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "Run timed out" in output
    # The tap finished; the loader, still retrying its write, was the step stopped.
    tap_done = f"synced {TESTERS_PER_AGENT * len(AGENTS)} testers from {len(AGENTS)} agents"
    assert tap_done in output, output[-3000:]
    assert BOUND_SECONDS <= took < BOUND_SECONDS + 60, "ended at its bound, not later"
    # Ended means ended: no loader left retrying for ever behind the exited job.
    marker = f"MELTANO_SYS_DIR_ROOT={wh.env['MELTANO_SYS_DIR_ROOT']}"
    assert wait_until_gone(marker, STOP_SECONDS) == []
    assert wh.rows("select count(*) from {schema}.testers_sync_runs") in ([], [("0",)]), (
        "a stopped run leaves no run record"
    )
