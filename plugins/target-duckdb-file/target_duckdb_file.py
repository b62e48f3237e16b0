"""target-duckdb, with its database file's folder created and file problems in one line.

Meltano runs this instead of ``target-duckdb`` (meltano.yml's ``executable``):

- DuckDB does not create folders, so a job writing ``output/warehouse.duckdb``
  after ``output/`` was deleted ended in a traceback (``Cannot open file``).
  The folder of a local ``filepath`` is created first.
- Two jobs writing one file at once (say the plain and the hashed-phones tap,
  whose separate state ids let Meltano start both) ended in a lock traceback.
  A file DuckDB cannot open, locked or otherwise, is now one
  ``target-duckdb: error:`` line naming the file and what to do, and exit 1.
- Ctrl-C on ``meltano run`` (SIGINT to every process of the job, then SIGTERM
  from Meltano, which then waits for the loader) killed target-duckdb with a
  ``KeyboardInterrupt`` traceback, losing every tester it had received but not
  yet written. Now a SIGINT or SIGTERM ends its input there: it writes
  everything it received, as at the end of any input, and exits 1.

Everything else is target-duckdb's own code, unchanged.
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import sys
import typing as t
from pathlib import Path
from urllib.parse import urlsplit


def database_file(config_path: str | None) -> Path | None:
    """The local database file the config names, or None (MotherDuck, no config)."""
    if not config_path:
        return None
    try:
        config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # target-duckdb's own error says what is wrong with the file
    path = config.get("path", config.get("filepath")) if isinstance(config, dict) else None
    if not isinstance(path, str) or not path or path == ":memory:" or urlsplit(path).scheme:
        return None
    return Path(path)


class Interrupted(Exception):
    """Raised by the signal handler into a blocked read of the input."""


class InputUntilSignal:
    """The loader's input lines, ending early at a SIGINT or SIGTERM.

    The loader writes what it holds when its input ends, so ending the input is
    how a signal gets everything received so far written. A signal that arrives
    while a line is being read interrupts the read; one that arrives while the
    loader works on a line ends the input before the next read.
    """

    def __init__(self, stream: t.TextIO) -> None:
        """Read ``stream``; no signal received yet."""
        self._stream = stream
        self._reading = False
        self._stopped = False
        self.received: set[int] = set()

    def install(self) -> None:
        """Handle SIGINT and SIGTERM in this process from now on."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.handle)

    def handle(self, signum: int, _frame: object) -> None:
        """End the input: interrupt a read in progress, or stop before the next one."""
        if not self.received:
            name = signal.Signals(signum).name
            sys.stderr.write(
                f"target-duckdb: {name} received: writing what the tap sent so far, then stopping\n"
            )
            sys.stderr.flush()
        self.received.add(signum)
        self._stopped = True
        if self._reading:
            raise Interrupted

    def __iter__(self) -> t.Iterator[str]:
        """Each line until the end of the input or the first signal."""
        while not self._stopped:
            line = ""
            self._reading = True
            try:
                line = self._stream.readline()
            except Interrupted:
                pass
            finally:
                self._reading = False
            if line:
                yield line
            elif not self._stopped:
                return


def run_loader(database: Path | None, config_path: str | None) -> None:
    """target-duckdb's ``main``, reading its input through :class:`InputUntilSignal`."""
    import duckdb  # noqa: PLC0415 - after the folder exists; the loader's own pin
    import target_duckdb  # noqa: PLC0415

    config = {}
    if config_path:
        with open(config_path, encoding="utf-8") as handle:  # noqa: PTH123
            config = json.load(handle)
    lines = InputUntilSignal(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8"))
    lines.install()
    try:
        connection = target_duckdb.duckdb_connect(config)
        target_duckdb.persist_lines(connection, config, lines)
        connection.close()
    except duckdb.IOException as problem:
        text = str(problem).splitlines()[0].split(". See also")[0]
        if "conflicting lock" in text.lower():
            _fail(
                f"{database} is open in another process, another job writing it? ({text}); "
                "wait for it to finish, or give each job a filepath of its own"
            )
        _fail(f"DuckDB failed on {database} ({text}): check filepath and the disk")
    if lines.received:
        _fail("stopped by a signal after writing everything the tap had sent")


def main() -> None:
    """Create the database file's folder, then run target-duckdb."""
    parser = argparse.ArgumentParser(prog="target-duckdb-file")
    parser.add_argument("-c", "--config", help="Config file")
    config_path = parser.parse_args().config
    database = database_file(config_path)
    if database is not None:
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as problem:
            _fail(f"cannot create the folder of {database} ({problem.strerror}): check filepath")
    run_loader(database, config_path)


def _fail(message: str) -> None:
    sys.stderr.write(f"target-duckdb: error: {message}\n")
    raise SystemExit(1)


if __name__ == "__main__":
    main()
