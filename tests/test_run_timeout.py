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

import pytest

from tests.model_warehouses import open_warehouse
from tests.pipelines import spec

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

BOUND_SECONDS = 45
"""Above this job's normal time on the emulator (about 15 s), far below a hang."""


def test_a_job_whose_loader_cannot_write_ends_at_its_bound(sandbox, tmp_path, request):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}"
        wh = open_warehouse(
            "bigquery",
            sandbox(spec()),
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
    assert "generator already executing" in output, "the loader was stuck, not finished"
    assert BOUND_SECONDS <= took < BOUND_SECONDS + 60, "ended at its bound, not later"
    assert wh.rows("select count(*) from {schema}.testers_sync_runs") in ([], [("0",)]), (
        "a stopped run leaves no run record"
    )
