"""The test command: set up ``.venv``, then lint, type-check and run every test.

    python3 scripts/test.py [pytest arguments]

End-to-end tests need Debian's ``postgresql`` package for the PostgreSQL
server binaries (``.ci/run`` installs it); the tests start and stop their own
server on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bootstrap import BIN, ROOT, ensure_environment, meltano_install, run, say

PYTEST_NO_TESTS = 5


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
    say("pytest")
    status = subprocess.run([str(BIN / "pytest"), *sys.argv[1:]], cwd=ROOT, check=False).returncode
    if status == PYTEST_NO_TESTS:
        say("pytest collected no tests: that is a failure")
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
