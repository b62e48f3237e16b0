"""The test command: set up ``.venv``, then lint, type-check and run every test.

    python3 scripts/test.py [--stage NAME ...] [pytest arguments]

With no ``--stage``, every stage of :data:`FULL_RUN` runs in order, as CI runs
them: the whole suite on the Python that runs this script (both cores, with
pytest-xdist), then, for every other Python version ``pyproject.toml`` claims
(its classifiers), the tests that need no database and no Meltano (``-m "not
e2e"``) in a virtual environment of its own (``.venvs/py3.X``). A claimed
version with no interpreter on this machine is skipped with a warning, or fails
the run when the ``CI`` variable is set. ``--stage`` runs only the stages named
(the GitHub workflow runs them one job each). Every stage's time is printed at
the end, and every pytest run prints its slowest tests.

End-to-end tests need Debian's ``postgresql`` package for the PostgreSQL
server binaries (``.ci/run`` installs it); the tests start and stop their own
server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bootstrap import (
    BIN,
    LOCKS,
    ROOT,
    ensure_environment,
    meltano_install,
    run,
    say,
)

PYTEST_NO_TESTS = 5
WORKERS = ("-n", "2", "--maxschedchunk", "1")
"""pytest-xdist: two workers (this project's machines have two cores), each handed
the next test when it finishes one, so that the longest, started first
(tests/conftest.py), never leave one worker idle at the end."""
SLOWEST = ("--durations=15",)
"""Every pytest run lists its 15 slowest tests, so that a slow one shows in the log."""
UNIT = ("-m", "not e2e")
"""The tier without databases or Meltano: the one to run after each edit."""
E2E = ("-m", "e2e")
UNIT_WORKERS = ("-n", "4", "--maxschedchunk", "1")
"""The tier without databases or Meltano waits more than it computes: four workers
(pyproject.toml's default for a bare ``pytest``)."""
OTHER_VERSIONS_RUN = (*UNIT, *UNIT_WORKERS, "-p", "no:cacheprovider", "-q", *SLOWEST)
"""What runs under each other claimed Python: every test that needs no database or Meltano."""
OTHER_VERSIONS_BESIDE = (*UNIT, "-n", "0", "-p", "no:cacheprovider", "-q", *SLOWEST)
"""The same, one process, beside the plugins' install and the main Python's tests:
they leave part of the two cores idle (waiting on the network, loaders, emulators
and databases), which this fills."""

FULL_RUN = ("venv", "plugins", "lint", "types", "tests", "other-pythons")
"""The stages of ``python3 scripts/test.py``, in order."""
SPLIT = {"tests": ("unit", "e2e"), "other-pythons": ("unit",)}
"""Stages of the full run that the GitHub workflow runs as parts, one job each."""
STAGE_TIMES: list[tuple[str, float]] = []


def claimed_versions() -> list[str]:
    """The ``3.X`` versions pyproject.toml's classifiers claim (no tomllib before 3.11)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.findall(r'"Programming Language :: Python :: (3\.\d+)"', text)


def find_interpreter(version: str) -> Path | None:
    """The newest pyenv build of ``3.X``, else a working ``python3.X`` on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    builds = {}
    for build in pyenv.glob(f"{version}.*"):
        release = re.fullmatch(rf"{re.escape(version)}\.(\d+)", build.name)
        if release and (build / "bin" / "python").exists():
            builds[int(release[1])] = build / "bin" / "python"
    if builds:
        return builds[max(builds)]
    on_path = shutil.which(f"python{version}")
    # A pyenv shim exists for every installed version but runs only the selected ones.
    works = on_path and subprocess.run([on_path, "-c", ""], capture_output=True, check=False)
    return Path(on_path) if on_path and works and works.returncode == 0 else None


def timed(name: str) -> t.Callable[[t.Callable[..., int]], t.Callable[..., int]]:
    """Record how long the stage ``name`` took, whatever its outcome."""

    def wrap(stage: t.Callable[..., int]) -> t.Callable[..., int]:
        def timed_stage(*arguments: str, **options: bool) -> int:
            started = time.monotonic()
            try:
                return stage(*arguments, **options)
            finally:
                STAGE_TIMES.append((name, time.monotonic() - started))

        return timed_stage

    return wrap


def pytest_status(python: Path, *arguments: str, log: Path | None = None) -> int:
    """Run pytest under ``python``; collecting no test counts as a failure.

    With ``log``, its output goes to that file instead of this one's.
    """
    command = [str(python), "-m", "pytest", *arguments]
    with log.open("w") if log else contextlib.nullcontext() as out:
        status = subprocess.run(
            command, cwd=ROOT, check=False, stdout=out, stderr=subprocess.STDOUT if out else None
        ).returncode
    if status == PYTEST_NO_TESTS:
        say(f"pytest under {python} collected no tests: that is a failure")
        return 1
    return status


def other_versions(*, beside: bool = False) -> int:
    """The tests without databases or Meltano under every other claimed Python.

    ``beside``: while the main Python's tests run, so one process at a time, each
    version's output kept in ``.venvs/py3.X.log`` and printed once it is done.
    """
    failed = 0
    for version in claimed_versions():
        if version == _running():
            continue
        interpreter = find_interpreter(version)
        if interpreter is None:
            say(f"Python {version} is claimed in pyproject.toml but not installed here")
            failed += 1 if os.environ.get("CI") else 0
            continue
        failed += timed(f"pytest -m 'not e2e', Python {version}")(_one_other_version)(
            version, str(interpreter), beside=beside
        )
    return failed


def _one_other_version(version: str, interpreter: str, *, beside: bool = False) -> int:
    home = ROOT / ".venvs" / f"py{version}"
    say(f"Python {version} ({interpreter}): installing into {home.relative_to(ROOT)}")
    try:
        run(BIN / "uv", "venv", "--quiet", "--allow-existing", "--python", interpreter, home)
        python = home / "bin" / "python"
        uv_pip = (BIN / "uv", "pip")
        run(*uv_pip, "sync", "--quiet", "--python", python, LOCKS / "test.txt")
        run(*uv_pip, "install", "--quiet", "--python", python, "--no-deps", "-e", ".")
    except SystemExit:
        say(f"could not set up Python {version}")
        return 1
    say(f"pytest -m 'not e2e' under Python {version}")
    if not beside:
        status = pytest_status(python, *OTHER_VERSIONS_RUN)
    else:
        log = home.with_suffix(".log")
        status = pytest_status(python, *OTHER_VERSIONS_BESIDE, log=log)
        say(f"pytest -m 'not e2e' under Python {version}, as it ran beside the main tests:")
        print(log.read_text(encoding="utf-8", errors="replace"), flush=True)
    if status != 0:
        say(f"tests failed under Python {version}")
        return 1
    return 0


def _lint() -> int:
    say("README settings table")
    run(BIN / "python", "scripts/readme_settings.py", "--check")
    say("ruff")
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    say("check-jsonschema: the GitHub workflows and meltano.yml")
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    run(BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    run(BIN / "check-jsonschema", "--builtin-schema", "vendor.meltano", ROOT / "meltano.yml")
    return 0


def _types() -> int:
    say("mypy --strict")
    run(BIN / "mypy")
    return 0


def _pytest(name: str, *selection: str, workers: tuple[str, ...] = WORKERS) -> t.Callable[..., int]:
    def stage(*arguments: str) -> int:
        say(f"pytest {' '.join(selection) or '(every test)'} under Python {_running()}")
        durations = () if any(a.startswith("--durations") for a in arguments) else SLOWEST
        return pytest_status(BIN / "python", *selection, *workers, *durations, *arguments)

    stage.__name__ = name
    return stage


def _running() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


STAGES: dict[str, t.Callable[..., int]] = {
    "venv": lambda *_: 0 if ensure_environment("test") else 1,
    "plugins": lambda *_: (
        meltano_install({**os.environ, "KALEYRA_SANDBOX_PORT": "0"}, compile_bytecode=False) or 0
    ),
    "lint": lambda *_: _lint(),
    "types": lambda *_: _types(),
    "tests": _pytest("tests"),
    "unit": _pytest("unit", *UNIT, workers=UNIT_WORKERS),
    "e2e": _pytest("e2e", *E2E),
    "other-pythons": lambda *_: 1 if other_versions() else 0,
}
"""Each stage by name; ``tests``, ``unit`` and ``e2e`` take pytest's arguments."""


def bytecode_written_on_first_import() -> None:
    """Let every process this command starts write bytecode as it first imports a module.

    The environments the tests run in (the Meltano plugins, the emulators, the other
    Pythons') are this command's own. Compiling all of them at install compiled
    about 30,000 modules, of which the tests import fewer than half; with
    PYTHONDONTWRITEBYTECODE set (as on these machines and in many containers),
    leaving them uncompiled would compile each module again in every process that
    imports it. So the variable is dropped here, and each module is compiled once,
    by the first process that needs it (Python writes the file atomically, so two
    processes at once are safe). ``.venv`` is still compiled at install: every
    process imports most of it.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def parse(arguments: list[str]) -> tuple[list[str], list[str]]:
    """The stages asked for (``--stage NAME``, repeatable; none: the full run), pytest's rest."""
    stages, rest = [], []
    words = iter(arguments)
    for word in words:
        if word == "--stage":
            name = next(words, "")
            if name not in STAGES:
                raise SystemExit(f"--stage takes one of {', '.join(STAGES)}; got {name!r}")
            stages.append(name)
        else:
            rest.append(word)
    return stages or list(FULL_RUN), rest


def print_times() -> None:
    """The table of stage times, at the end of every run."""
    say("stage times")
    width = max(len(name) for name, _ in STAGE_TIMES)
    for name, seconds in STAGE_TIMES:
        print(f"    {name:<{width}}  {seconds:7.1f} s", file=sys.stderr)
    total = sum(seconds for _, seconds in STAGE_TIMES)
    print(f"    {'total':<{width}}  {total:7.1f} s", file=sys.stderr, flush=True)


def main() -> int:
    """Run the stages asked for; a failed one fails the run, and no test collected fails it.

    When both ``tests`` and ``other-pythons`` are asked for, the other Pythons' tests
    run beside the main ones (see :data:`OTHER_VERSIONS_BESIDE`), from the first
    stage after ``venv`` (which installs the uv they are set up with) on: the
    plugins' install, lint and type-check leave a core mostly idle.
    """
    stages, pytest_arguments = parse(sys.argv[1:])
    started = time.monotonic()
    bytecode_written_on_first_import()
    beside = "tests" in stages and "other-pythons" in stages
    others: list[int] = []
    background = threading.Thread(target=lambda: others.append(other_versions(beside=True)))
    failed = []
    try:
        for name in stages:
            if name == "other-pythons":
                if not beside and other_versions():
                    failed.append(name)
                continue
            if beside and name != "venv" and background.ident is None:
                background.start()
            if timed(name)(STAGES[name])(*pytest_arguments) != 0:
                failed.append(name)
        if beside:
            if background.ident is None:  # nothing ran after venv
                background.start()
            background.join()
            if others != [0]:
                failed.append("other-pythons")
    finally:
        print_times()
        say(f"wall time {time.monotonic() - started:.1f} s")
    if failed:
        say(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
