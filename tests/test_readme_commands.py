"""The README's first pipeline, run as written, in order, as a new user runs it.

The commands come from README.md itself, so the README cannot drift from what
works. The test changes only what a second machine would: the sandbox's port
(a free one), where the DuckDB file goes (a folder that does not exist yet, as
after ``rm -r output``), and the ``prod`` credentials, which a user keeps in
``.env``. It waits for the sandbox's first stdout line (its URL, written once it
listens) before the next command, where a person would simply type slower.
``meltano install`` is the one command not run here: it reinstalls every plugin
in place, under the feet of the tests running beside it, so the session runs
it once, the same command in the same project (``meltano_plugins``).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import typing as t

import duckdb
import pytest

from tests.warehouses import ROOT, meltano_env, postgres_env

if t.TYPE_CHECKING:
    from pathlib import Path

    from tests.warehouses import Postgres

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("meltano_plugins")]

README_PORT = "8765"
SANDBOX_LINE = re.compile(r"^(tap-kaleyra-rcs-sandbox .*?)\s*&(\s*#.*)?$")


def first_pipeline_commands() -> list[str]:
    """The lines of the README's "The first pipeline" bash block, comments and all."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## The first pipeline", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def as_script(commands: list[str], port: str, prod_env: dict[str, str]) -> str:
    """One bash script of the commands, with the port and the prod credentials substituted."""
    lines = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for command in commands:
        line = command.replace(README_PORT, port)
        if started := SANDBOX_LINE.match(line):
            lines += [
                f"{started.group(1)} > sandbox.url &",
                "until [ -s sandbox.url ]; do sleep 0.05; done  # its URL: it listens",
            ]
        elif line.split("#")[0].split() == ["meltano", "install"]:
            lines.append(": meltano install: run once per session by the meltano_plugins fixture")
        elif "--environment=prod" in line:
            lines.append(" ".join(f"{k}='{v}'" for k, v in prod_env.items()) + " " + line)
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def test_the_readme_block_is_what_this_test_runs():
    commands = first_pipeline_commands()
    assert sum(bool(SANDBOX_LINE.match(c)) for c in commands) == 1, "one sandbox, started first"
    assert commands[0].startswith("source .venv/bin/activate")
    assert any(c.startswith("meltano --environment=prod run") for c in commands)
    assert sum(c.split("#")[0].split() == ["meltano", "install"] for c in commands) == 1
    assert all(README_PORT in c for c in commands if "8765" in c)


def test_the_first_pipeline_runs_as_written(tmp_path: Path, postgres: Postgres):
    port = _free_port()
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    database = tmp_path / "deleted-output" / "warehouse.duckdb"
    sandbox_url = f"http://127.0.0.1:{port}"
    env, schema = postgres_env(tmp_path, sandbox_url, postgres)
    prod_env = {
        "TAP_KALEYRA_RCS_SID": "SANDBOX0000SID01",
        "TAP_KALEYRA_RCS_API_KEY": "sandbox-api-key-0000",
        "TAP_KALEYRA_RCS_AGENT_NUMBERS": json.dumps([f"4890{i}" for i in range(6)]),
        "TAP_KALEYRA_RCS_BASE_URL": sandbox_url,
        **{k: v for k, v in env.items() if k.startswith("TARGET_POSTGRES_")},
    }
    shell_env = {
        k: v
        for k, v in meltano_env(tmp_path, sandbox_url).items()
        if k not in {"KALEYRA_SANDBOX_PORT", "MELTANO_ENVIRONMENT", "TAP_KALEYRA_RCS_MAX_RETRIES"}
    }
    shell_env |= {"MELTANO_PROJECT_ROOT": str(ROOT), "TARGET_DUCKDB_FILEPATH": str(database)}
    script = as_script(first_pipeline_commands(), port, prod_env)

    done = subprocess.run(
        ["bash", "-c", script],
        cwd=clone,
        env=shell_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr + done.stdout
    singer = [json.loads(line) for line in (clone / "testers.singer").read_text().splitlines()]
    records = [m for m in singer if m["type"] == "RECORD" and m["stream"] == "testers"]
    assert len(records) == 2 * 40, "config.json's two agents, 40 testers each"
    catalog = json.loads((clone / "catalog.json").read_text())
    assert "testers" in {stream["tap_stream_id"] for stream in catalog["streams"]}
    with duckdb.connect(str(database), read_only=True) as db:
        (runs,) = db.sql("select count(*) from kaleyra.testers_sync_runs").fetchone() or (0,)
        (testers,) = db.sql("select count(distinct id) from kaleyra.testers").fetchone() or (0,)
    assert (runs, testers) == (2, 240), "the plain run, then the hashed-phones variant"
    loaded = postgres.psql(f"select count(*) from {schema}.testers")
    assert loaded == [["240"]], "the prod run, with the credentials from .env"
