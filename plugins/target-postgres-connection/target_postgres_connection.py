"""target-postgres, with a connection it cannot open or loses said in one line.

Meltano runs this instead of ``target-postgres`` (meltano.yml's ``executable``).
A server that is down, refuses the login, or ends the loader's connection
mid-load (a restart, a failover, an administrator's ``pg_terminate_backend``)
made target-postgres print a 60-line SQLAlchemy traceback. Such an error is now
one ``target-postgres: error:`` line naming the server and what to do, and exit
1; what the run had loaded before stays, as a failed run's (docs/failures.md).
The password is never in the line: the server's message does not contain it,
and the line names only host, port, database and user.

Everything else is target-postgres's own code, unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def server(config_path: str | None) -> str:
    """``user@host:port/database`` as the config names them, or a placeholder."""
    config: object = {}
    if config_path:
        try:
            config = json.loads(Path(config_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
    if not isinstance(config, dict):
        config = {}
    host = config.get("host") or "localhost"
    port = config.get("port") or 5432
    database = config.get("database") or "?"
    user = config.get("user") or "?"
    return f"{user}@{host}:{port}/{database}"


def reason(problem: BaseException) -> str:
    """The driver's first line, without SQLAlchemy's statement and link lines."""
    cause = getattr(problem, "orig", None) or problem
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


def main() -> None:
    """Run target-postgres; a connection error is one line and exit 1."""
    parser = argparse.ArgumentParser(prog="target-postgres-connection", add_help=False)
    parser.add_argument("-c", "--config")
    config_path = parser.parse_known_args()[0].config
    import sqlalchemy.exc  # noqa: PLC0415 - the loader's own pin, in its own environment
    from target_postgres.target import TargetPostgres  # noqa: PLC0415

    try:
        TargetPostgres.cli(prog_name="target-postgres")
    except sqlalchemy.exc.OperationalError as problem:
        sys.stderr.write(
            f"target-postgres: error: the connection to PostgreSQL {server(config_path)} "
            f"failed ({reason(problem)}); check that the server runs and the host, port, "
            "user and password settings, then run the job again (rows loaded before the "
            "failure count as a failed run's: docs/failures.md)\n"
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
