"""target-postgres as meltano.yml runs it: through ``plugins/target-postgres-connection``.

A server that refuses the loader, or ends its connection mid-load (the soak's
``pg-drop``: scripts/soak.py), is one ``target-postgres: error:`` line naming the
server, and exit 1, not SQLAlchemy's traceback; the password is in no output.
"""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from tests.warehouses import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

LOADER = ROOT / ".meltano/loaders/target-postgres/venv/bin/target-postgres-connection"
PASSWORD = "a-password-never-shown-7f3c"  # noqa: S105 - the one that must not be shown
ONE_RECORD = "\n".join(
    json.dumps(message)
    for message in (
        {
            "type": "SCHEMA",
            "stream": "testers",
            "schema": {"properties": {"id": {"type": "string"}}},
            "key_properties": ["id"],
        },
        {"type": "RECORD", "stream": "testers", "record": {"id": "a"}},
    )
)


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: bound, then released, never listened."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_server_that_refuses_the_loader_is_one_line_and_exit_1(tmp_path):
    port = _closed_port()
    config = tmp_path / "target.json"
    config.write_text(
        json.dumps(
            {"host": "127.0.0.1", "port": port, "user": "loader", "password": PASSWORD,
             "database": "warehouse", "default_target_schema": "kaleyra"}
        )
    )  # fmt: skip
    done = subprocess.run(
        [str(LOADER), "--config", str(config)],
        input=ONE_RECORD, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    expected = (
        f"target-postgres: error: the connection to PostgreSQL loader@127.0.0.1:{port}/warehouse "
        f'failed (connection failed: connection to server at "127.0.0.1", port {port} failed: '
        "Connection refused); check that the server runs and the host, port, user and password "
        "settings, then run the job again (rows loaded before the failure count as a failed "
        "run's: docs/failures.md)"
    )
    assert errors == [expected]
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
