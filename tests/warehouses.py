"""Real services for the end-to-end tests: a PostgreSQL server and the Meltano CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import typing as t
import uuid
from pathlib import Path

import pytest

from tests.support import BIN, ran

ROOT = Path(__file__).resolve().parent.parent
MELTANO = str(BIN / "meltano")
DBT_KINDS = ("DUCKDB", "POSTGRES", "BIGQUERY", "SNOWFLAKE")
"""The dbt plugins meltano.yml defines, as their settings' variable prefixes say them."""


def free_port() -> int:
    """A port free a moment ago: whoever binds it next may not be us, so retry on a clash."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1, started from Debian's binaries."""

    def __init__(self, base: Path) -> None:
        bin_dir = _postgres_bin()
        if bin_dir is None:
            message = "PostgreSQL server binaries not found: apt-get install postgresql"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.bin = bin_dir
        self.base = base
        self.data = base / "data"
        # initdb refuses to run as root: hand the directory to the postgres user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(base, "postgres", "postgres")
            base.chmod(0o700)
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.port = self._start()
        self.psql("create database warehouse", database="postgres")

    START_ATTEMPTS = 5

    def _start(self) -> int:
        """Start the server on a free port; another one if someone took it meanwhile.

        PostgreSQL can't be told to pick a port itself, so a port is chosen first
        and may be taken by another process before the server binds it.
        """
        log = self.base / "server.log"
        for _ in range(self.START_ATTEMPTS):
            port = free_port()
            log.unlink(missing_ok=True)
            started = self._pg(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(log),
                "-w",
                "-o",
                f"-p {port} -c listen_addresses=127.0.0.1 -k {self.base} -c fsync=off",
                "start",
                check=False,
            )
            if started.returncode == 0:
                return port
            server_log = log.read_text(errors="replace") if log.exists() else ""
            if "could not bind" not in server_log and "in use" not in server_log:
                message = f"PostgreSQL did not start: {server_log[-2000:] or started.stderr!r}"
                raise RuntimeError(message)
        message = f"PostgreSQL found no free port in {self.START_ATTEMPTS} attempts"
        raise RuntimeError(message)

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*self._as, str(self.bin / tool), *args], check=check, capture_output=True, cwd="/"
        )

    def psql(self, sql: str, database: str = "warehouse") -> list[list[str]]:
        """Run SQL; rows as lists of strings (NULL as an empty string)."""
        done = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-At",
                "-F",
                "\t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return [line.split("\t") for line in done.stdout.splitlines()]

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


PLUGIN_FOLDERS = ("extractors", "loaders", "utilities", "mappers", "transformers")
"""The folders of .meltano/ that hold installed plugins; the rest is per run."""


def own_meltano_folder(tmp_path: Path) -> str:
    """A .meltano/ of this test's own that shares the installed plugins.

    Meltano writes each run's catalog and state to fixed names under
    .meltano/run/; two tests running Meltano at once (pytest-xdist) would read
    each other's. The plugins' environments are linked in, not installed again.
    """
    folder = tmp_path / ".meltano"
    if not folder.exists():
        folder.mkdir()
        for name in PLUGIN_FOLDERS:
            (folder / name).symlink_to(ROOT / ".meltano" / name, target_is_directory=True)
    return str(folder)


def outside_environment() -> dict[str, str]:
    """This process's environment without the tap's, the loaders' and Meltano's
    variables: what a Meltano project a test makes starts from."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_KALEYRA_RCS_", "TARGET_", "MELTANO_"))
    }


def meltano_env(tmp_path: Path, sandbox_url: str, **extra: str) -> dict[str, str]:
    """Environment for one test's Meltano runs: its own system DB, files and schema."""
    env = outside_environment()
    env.update(
        {
            "MELTANO_ENVIRONMENT": "sandbox",
            "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
            "MELTANO_SYS_DIR_ROOT": own_meltano_folder(tmp_path),
            "KALEYRA_SANDBOX_PORT": sandbox_url.rsplit(":", 1)[1],
            "TARGET_DUCKDB_FILEPATH": str(tmp_path / "warehouse.duckdb"),
            "TARGET_JSONL_DESTINATION_PATH": str(tmp_path),
            # No sandbox retries needed to pass: keep failing runs short.
            "TAP_KALEYRA_RCS_MAX_RETRIES": "1",
            # No dbt.log: no test reads it, and writing every debug event to it was
            # about 4% of each dbt run's CPU. dbt's output still reaches stdout.
            "DBT_LOG_LEVEL_FILE": "none",
            # dbt's target/ and logs/ per test: two tests building at once (pytest-xdist)
            # would overwrite each other's manifest and partial-parse files.
            **{
                f"DBT_{kind}_DBT_{folder}_PATH": str(tmp_path / "dbt" / folder.lower())
                for kind in DBT_KINDS
                for folder in ("TARGET", "LOG")
            },
        }
    )
    env.update(extra)
    return env


def postgres_env(
    tmp_path: Path, sandbox_url: str, postgres: Postgres, **extra: str
) -> tuple[dict[str, str], str]:
    """:func:`meltano_env` for a fresh PostgreSQL schema of its own; also that schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = meltano_env(
        tmp_path,
        sandbox_url,
        TARGET_POSTGRES_HOST="127.0.0.1",
        TARGET_POSTGRES_PORT=str(postgres.port),
        TARGET_POSTGRES_USER="postgres",
        TARGET_POSTGRES_PASSWORD="unused-with-trust-auth",  # noqa: S106
        TARGET_POSTGRES_DATABASE="warehouse",
        TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=schema,
        **extra,
    )
    return env, schema


def meltano(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Any Meltano command in the project, with this test's environment."""
    return ran(MELTANO, *args, cwd=ROOT, env=env, timeout=timeout)


def meltano_run(
    env: dict[str, str], *blocks: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return meltano(env, "--log-level=info", "run", *blocks, timeout=timeout)


def meltano_start(
    env: dict[str, str],
    *blocks: str,
    log: Path,
    command: str = "run",
    own_session: bool = False,
) -> subprocess.Popen[bytes]:
    """``meltano <command> <blocks>`` in the background, its output in ``log``.

    ``own_session``: in a process group of its own, as a terminal's foreground
    job, so a signal can go to every process of it and to nothing else.
    """
    with log.open("wb") as sink:
        return subprocess.Popen(
            [MELTANO, "--log-level=info", *command.split(), *blocks],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=own_session,
        )


def wait_until(
    condition: t.Callable[[], bool], timeout: float = 60, *, what: str = "the condition"
) -> None:
    """Poll ``condition`` until it holds; the timeout is generous, for a loaded machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}; it never happened")
        time.sleep(0.05)
