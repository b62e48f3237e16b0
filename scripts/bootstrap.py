"""Create the project's virtual environment and install the project and its plugins.

    python3 scripts/bootstrap.py demo|test

sets up ``.venv`` and the Meltano plugins that ``demo.py`` or ``test.py`` needs,
and runs nothing (for an image, or a machine that is set up once and run many
times). Both scripts import it too, so that each is one command on a machine
that has nothing but Python 3.10+. Standard library only: it runs before
anything is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
LOCKS = ROOT / "requirements"
"""The exact versions (with hashes) the demo and the tests install; see docs/development.md."""
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
DEMO_PLUGINS = ("tap-kaleyra-rcs", "target-duckdb", "dbt-duckdb")
"""What the demo runs; the tests need every plugin in meltano.yml."""
UV_QUIET_COMPILED = ("--quiet", "--compile-bytecode")
"""uv, unlike pip, leaves bytecode to the first import, and with PYTHONDONTWRITEBYTECODE
set (as in many containers) that is every import of every process: compiled once at
install, Meltano and each plugin start about a second sooner."""
USAGE = (
    "usage: python3 scripts/bootstrap.py demo|test  "
    "(sets up .venv and the Meltano plugins the demo or the tests need; runs nothing)"
)


def say(message: str) -> None:
    """Progress lines go to stderr so stdout stays for results."""
    print(f"==> {message}", file=sys.stderr, flush=True)


def run(*command: str | Path, quiet: bool = False, env: dict[str, str] | None = None) -> None:
    """Run a command from the project root; stop with its status if it fails."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        env=env,
        check=False,
        stdout=subprocess.DEVNULL if quiet else None,
    )
    if done.returncode != 0:
        say(f"failed ({done.returncode}): {' '.join(str(p) for p in command)}")
        raise SystemExit(done.returncode)


def commit() -> str:
    """The checkout's commit, as measured figures name it; ``+changes`` when the code differs.

    Only ``docs/`` may differ unmarked: that is where the figures are written,
    one soak or benchmark after another.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args],  # noqa: S607 - git from PATH, as a user runs it
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs")
    return f"{head}{' +changes' if changed else ''}"


def ensure_environment(extra: str) -> Path:
    """Make ``.venv`` (once), install the ``extra`` lock and this checkout; return its bin dir.

    pip installs only uv, at the lock's version and hashes; uv then makes
    ``.venv`` exactly the lock (several times faster than pip for the same files).
    """
    if sys.version_info < (3, 10):  # noqa: UP036 - this file runs on any python3
        raise SystemExit("Python 3.10 or newer is needed")
    if not (BIN / "python").exists():
        say(f"creating {VENV.relative_to(ROOT)}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    lock = LOCKS / f"{extra}.txt"
    say(f"installing {lock.relative_to(ROOT)} and tap-kaleyra-rcs (editable) into {VENV.name}")
    started = time.monotonic()
    uv_pin = _locked_requirement(lock, "uv")
    if not _has_version(BIN / "uv", uv_pin):
        with tempfile.TemporaryDirectory() as scratch:
            pin_file = Path(scratch) / "uv.txt"
            pin_file.write_text(uv_pin, encoding="utf-8")
            pip = (BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
            run(*pip, "--require-hashes", "--no-deps", "--requirement", pin_file, quiet=True)
    uv = (BIN / "uv", "pip")
    # Exactly the locked versions, each checked against its hash; then the tap
    # itself, editable, so that the tap every test runs is this checkout as it
    # is now, never a copy taken at the last install.
    run(*uv, "sync", *UV_QUIET_COMPILED, "--require-hashes", "--python", BIN / "python", lock)
    run(*uv, "install", *UV_QUIET_COMPILED, "--no-deps", "--python", BIN / "python", "-e", ".")
    # The checkout's own bytecode too: the tests start the tap as a process many times.
    run(BIN / "python", "-m", "compileall", "-q", ROOT / "tap_kaleyra_rcs", quiet=True)
    say(f"{VENV.name} ready in {time.monotonic() - started:.1f} s")
    return BIN


def _locked_requirement(lock: Path, name: str) -> str:
    """``name``'s entry in ``lock``: its pin and the lines of hashes that follow it."""
    lines = lock.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}=="))
    end = start + 1
    while end < len(lines) and lines[end].lstrip().startswith("--hash="):
        end += 1
    return "\n".join(lines[start:end]).rstrip(" \\") + "\n"


def _has_version(executable: Path, pin: str) -> bool:
    """Whether ``executable`` exists and says the version ``pin`` (``name==X ...``) names."""
    if not executable.exists():
        return False
    wanted = pin.split("==", 1)[1].split(maxsplit=1)[0]
    said = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False)
    return said.returncode == 0 and wanted in said.stdout.split()


def continue_in_environment(extra: str) -> None:
    """Install (see :func:`ensure_environment`), then re-run this script with .venv's Python.

    Returns only once the script runs inside ``.venv``, where the project's
    dependencies can be imported.
    """
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    os.environ.setdefault("KALEYRA_SETUP_STARTED", repr(time.time()))
    python = ensure_environment(extra) / "python"
    os.execv(python, [str(python), *sys.argv])  # noqa: S606 - our own interpreter


def meltano_install(env: dict[str, str], *plugins: str, compile_bytecode: bool = True) -> None:
    """Install plugins from meltano.yml, each in its own environment; none named: all.

    ``compile_bytecode``: compile every module at install (the demo: its runs then
    start at once, whatever PYTHONDONTWRITEBYTECODE says). The test command passes
    False: it lets Python write bytecode as modules are first imported instead, so
    only the half of the plugins' 20,000 modules the tests use is ever compiled.

    Timed: the Snowflake and BigQuery loaders bring hundreds of MB of
    dependencies, and a slow install should show in the log.
    """
    which = " ".join(plugins) or "every plugin in meltano.yml"
    say(f"meltano install ({which})")
    started = time.monotonic()
    # Meltano installs each plugin with uv, which reads this.
    compiled = {**env, "UV_COMPILE_BYTECODE": "1"} if compile_bytecode else env
    run(BIN / "meltano", "--log-level=warning", "install", *plugins, quiet=True, env=compiled)
    say(f"meltano install took {time.monotonic() - started:.1f} s")


def main(arguments: list[str]) -> int:
    """Set up for ``demo`` or ``test``; a wrong argument prints the usage and returns 2."""
    if len(arguments) != 1 or arguments[0] not in {"demo", "test"}:
        print(USAGE, file=sys.stderr)
        return 2
    (purpose,) = arguments
    ensure_environment(purpose)
    plugins = DEMO_PLUGINS if purpose == "demo" else ()
    meltano_install({**os.environ, "KALEYRA_SANDBOX_PORT": "0"}, *plugins)
    say(f"ready: python3 scripts/{purpose}.py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
