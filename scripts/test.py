"""The test command: set up ``.venv``, then lint, type-check and run every test.

    python3 scripts/test.py [pytest arguments]

The whole suite runs on the Python that runs this script. Then, for every other
Python version ``pyproject.toml`` claims (its classifiers), the tests that need no
database and no Meltano (``-m "not e2e"``) run again under that version, in a
virtual environment of its own (``.venvs/py3.X``). A claimed version with no
interpreter on this machine is skipped with a warning, or fails the run when the
``CI`` variable is set.

End-to-end tests need Debian's ``postgresql`` package for the PostgreSQL
server binaries (``.ci/run`` installs it); the tests start and stop their own
server on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bootstrap import BIN, LOCKS, ROOT, ensure_environment, meltano_install, run, say

PYTEST_NO_TESTS = 5
OTHER_VERSIONS_RUN = ("-m", "not e2e", "-p", "no:cacheprovider", "-q")
"""What runs under each other claimed Python: every test that needs no database or Meltano."""


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


def pytest_status(python: Path, *arguments: str) -> int:
    """Run pytest under ``python``; collecting no test counts as a failure."""
    command = [str(python), "-m", "pytest", *arguments]
    status = subprocess.run(command, cwd=ROOT, check=False).returncode
    if status == PYTEST_NO_TESTS:
        say(f"pytest under {python} collected no tests: that is a failure")
        return 1
    return status


def other_versions() -> int:
    """The tests without databases or Meltano under every other claimed Python."""
    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    failed = 0
    for version in claimed_versions():
        if version == current:
            continue
        interpreter = find_interpreter(version)
        if interpreter is None:
            say(f"Python {version} is claimed in pyproject.toml but not installed here")
            failed += 1 if os.environ.get("CI") else 0
            continue
        home = ROOT / ".venvs" / f"py{version}"
        say(f"Python {version} ({interpreter}): installing into {home.relative_to(ROOT)}")
        run(BIN / "uv", "venv", "--quiet", "--allow-existing", "--python", interpreter, home)
        python = home / "bin" / "python"
        run(BIN / "uv", "pip", "sync", "--quiet", "--python", python, LOCKS / "test.txt")
        run(BIN / "uv", "pip", "install", "--quiet", "--python", python, "--no-deps", "-e", ".")
        say(f"pytest -m 'not e2e' under Python {version}")
        if pytest_status(python, *OTHER_VERSIONS_RUN) != 0:
            say(f"tests failed under Python {version}")
            failed += 1
    return failed


def main() -> int:
    """Install, check and test; a run that collects no test fails."""
    ensure_environment("test")
    meltano_install({**os.environ, "KALEYRA_SANDBOX_PORT": "0"})
    say("README settings table")
    run(BIN / "python", "scripts/readme_settings.py", "--check")
    say("ruff")
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    say("mypy --strict")
    run(BIN / "mypy")
    say(f"pytest under Python {sys.version_info.major}.{sys.version_info.minor}")
    status = pytest_status(BIN / "python", *sys.argv[1:])
    if other_versions():
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
