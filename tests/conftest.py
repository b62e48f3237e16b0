"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import typing as t
from pathlib import Path

import pytest
from filelock import FileLock
from hypothesis import settings

from tests.emulated_warehouses import BigQueryEmulator, FakeSnowflake
from tests.model_warehouses import MODEL_ROWS
from tests.support import BIN, KEY_PIECE, KEY_SCANS, RunningSandbox
from tests.warehouses import MELTANO, ROOT, Postgres

# Both built on Hypothesis's own defaults: it loads a profile of its own when it
# sees a CI variable, which a profile registered without a parent would inherit.
settings.register_profile(
    "ci", settings.get_profile("default"), derandomize=True, database=None, print_blob=True
)
"""CI: the same examples on every run, nothing read from or written to a database,
and a failing example printed in full so it can be replayed from the log."""
settings.register_profile("local", settings.get_profile("default"))
"""Locally: new random examples each run, failures remembered in .hypothesis/."""
settings.load_profile("ci" if os.environ.get("CI") else "local")

# The plugins, the emulators and the other Pythons' environments are compiled as
# their modules are first imported, not at install (scripts/test.py,
# bytecode_written_on_first_import): every process the tests start may write it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run against an installed copy of the tap that is not this checkout.

    Many tests run the ``tap-kaleyra-rcs`` command as a subprocess: if ``.venv``
    held a copy installed before the last edit, they would test stale code.

    Under mutmut (``MUTANT_UNDER_TEST`` is set) the mutated copy is imported in
    process only, and subprocesses run the checkout: run mutmut with the
    in-process test modules (see docs/development.md).
    """
    if "MUTANT_UNDER_TEST" in os.environ:
        return
    done = subprocess.run(
        [str(BIN / "python"), "-c", "import tap_kaleyra_rcs; print(tap_kaleyra_rcs.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    imported = Path(done.stdout.strip()).resolve().parent if done.returncode == 0 else None
    if imported != ROOT / "tap_kaleyra_rcs":
        message = (
            f"the tap-kaleyra-rcs in {BIN.parent} is not this checkout's working tree "
            f"({imported or done.stderr.strip()[-200:]}); run python3 scripts/test.py, "
            "or pip install --editable '.[test]' into it"
        )
        raise pytest.UsageError(message)


START_FIRST = (
    "tests/test_history_e2e.py::test_history_of_every_change_survives_a_rebuild_from_raw_data[snowflake]",
    "tests/test_history_e2e.py::test_history_of_every_change_survives_a_rebuild_from_raw_data[bigquery]",
    "tests/test_history_e2e.py::",
    "tests/test_models_e2e.py::",
    "tests/test_schedule_e2e.py::",
    "tests/test_loaders_on_emulators.py::",
    "tests/test_loader_contracts.py::",
    "tests/test_project.py::",
    "tests/test_dbt_package.py::",
)
"""The longest tests, longest first (docs/development.md has their times).

pytest-xdist hands each worker the next test as it finishes one (``--maxschedchunk
1`` in scripts/test.py); started first, the longest tests run beside the many
short ones instead of after them, when one worker would be left alone."""


def _start_order(item: pytest.Item) -> tuple[int, int]:
    """Where ``item`` starts: named in START_FIRST by its place there, then the other
    end-to-end tests, then the rest; collection order within each."""
    for place, prefix in enumerate(START_FIRST):
        if item.nodeid.startswith(prefix):
            return (place, 0)
    return (len(START_FIRST), 0 if item.get_closest_marker("e2e") else 1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first (a stable sort: the same order in every worker)."""
    items.sort(key=_start_order)


@pytest.fixture
def sandbox() -> t.Iterator[t.Callable[..., RunningSandbox]]:
    """Start sandboxes with a given scenario; all are stopped after the test."""
    started: list[RunningSandbox] = []

    def start(spec: dict[str, t.Any] | None = None) -> RunningSandbox:
        running = RunningSandbox(spec)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def meltano_plugins(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Install the plugins meltano.yml defines, once per test session.

    Under pytest-xdist every worker asks; a lock shared by the workers makes the
    second wait for the first, then find every plugin installed already.
    """
    with FileLock(tmp_path_factory.getbasetemp().parent / "meltano-install.lock"):
        done = subprocess.run(
            [MELTANO, "--log-level=warning", "install"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "KALEYRA_SANDBOX_PORT": "0"},
        )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="session")
def postgres() -> t.Iterator[Postgres]:
    """One PostgreSQL server for the session; each test uses its own schema."""
    # Not under pytest's tmp dir: its 0700 parents would lock out the postgres user.
    base = Path(tempfile.mkdtemp(prefix="kaleyra-pg-"))
    try:
        server = Postgres(base)
        yield server
        server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def bigquery(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[BigQueryEmulator]:
    """One BigQuery emulator for the session; each test uses its own dataset."""
    emulator = BigQueryEmulator(tmp_path_factory.mktemp("bigquery"))
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def snowflake(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FakeSnowflake]:
    """One fakesnow server for the session; each test uses its own schema."""
    emulator = FakeSnowflake(tmp_path_factory.mktemp("snowflake"))
    yield emulator
    emulator.stop()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker: hand what it counted to the controller, which prints it."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["model_rows"] = MODEL_ROWS
        output["key_scans"] = [KEY_SCANS.tap_runs, KEY_SCANS.texts, KEY_SCANS.characters]


def pytest_testnodedown(node: t.Any, error: object) -> None:
    """On the controller: add up what each worker counted."""
    output = getattr(node, "workeroutput", {})
    MODEL_ROWS.extend(output.get("model_rows", []))
    tap_runs, texts, characters = output.get("key_scans", [0, 0, 0])
    KEY_SCANS.tap_runs += tap_runs
    KEY_SCANS.texts += texts
    KEY_SCANS.characters += characters


def pytest_terminal_summary(terminalreporter: t.Any) -> None:
    """Say how much output was scanned for the API key, and the models' rows per run."""
    for line in MODEL_ROWS:
        terminalreporter.write_line(f"models after {line}")
    terminalreporter.write_line(
        f"Key scan: stdout and stderr of {KEY_SCANS.tap_runs} tap runs and "
        f"{KEY_SCANS.texts} other texts ({KEY_SCANS.characters:,} characters) checked for "
        f"the API key, any phoneno_hash_key, and every {KEY_PIECE}-character piece of them"
    )
