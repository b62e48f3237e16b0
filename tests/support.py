"""Shared helpers: a sandbox on a thread, and the installed tap run as a subprocess."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import string
import subprocess
import sys
import threading
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest

from tap_kaleyra_rcs.sandbox import DEFAULT_API_KEY, DEFAULT_SID, SandboxServer, Scenario
from tests.in_process import run_in_process

BIN = Path(sys.executable).parent
TAP = str(BIN / "tap-kaleyra-rcs")
SANDBOX = str(BIN / "tap-kaleyra-rcs-sandbox")
SCHEMA = json.loads((Path(__file__).parent.parent / "schemas" / "testers.json").read_text())


KEY_PIECE = 8
"""Characters in the shortest piece of an API key that counts as leaking it."""


@dataclass
class KeyScans:
    """How much output was checked for the API key, for the end-of-session summary."""

    tap_runs: int = 0
    """Runs of the installed tap whose whole stdout and stderr were scanned."""
    texts: int = 0
    """Other texts scanned: in-process error messages and retry reasons."""
    characters: int = 0
    """Characters scanned in all, tap output and other texts together."""


KEY_SCANS = KeyScans()

SECRET_SETTINGS = ("api_key", "phoneno_hash_key")
"""The tap's secret settings: no output may hold any piece of one."""


def secrets_given(config: dict[str, t.Any] | None, env: dict[str, str] | None) -> list[str]:
    """The secrets a run was given, in its config file or its environment; blank ones
    are no secret (and would match every run of spaces)."""
    found = []
    for name in SECRET_SETTINGS:
        value = (config or {}).get(name) or (env or {}).get(f"TAP_KALEYRA_RCS_{name.upper()}")
        if isinstance(value, str) and value.strip():
            found.append(value)
    return found


def key_pieces(key: str) -> list[str]:
    """The key itself and every run of ``KEY_PIECE`` characters in it, in order."""
    if len(key) <= KEY_PIECE:
        return [key]
    return [key[start : start + KEY_PIECE] for start in range(len(key) - KEY_PIECE + 1)]


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def key_piece_in(text: str, key: str) -> str | None:
    """The first piece of ``key`` found in ``text``, ignoring letter case; else None.

    Case is ignored because a host name or a shouted error message may hold the
    key with its letters changed, which reveals it just the same.
    """
    folded = text.translate(_ASCII_LOWER)
    pieces = key_pieces(key)
    return next((piece for piece in pieces if piece.translate(_ASCII_LOWER) in folded), None)


def assert_no_key(text: str, key: str, *, tap_run: bool = False) -> None:
    """Fail if ``text`` holds ``key`` or any piece of it; count the scan either way."""
    if tap_run:
        KEY_SCANS.tap_runs += 1
    else:
        KEY_SCANS.texts += 1
    KEY_SCANS.characters += len(text)
    piece = key_piece_in(text, key)
    if piece is not None:
        at = text.translate(_ASCII_LOWER).index(piece.translate(_ASCII_LOWER))
        context = text[max(0, at - 100) : at + 100]
        pytest.fail(f"a piece of the API key, {piece!r}, is in the output: {context!r}")


def sandbox_config(url: str, scenario: Scenario, **overrides: t.Any) -> dict[str, t.Any]:
    """A tap config for the sandbox at ``url`` serving ``scenario``: every agent it knows."""
    config: dict[str, t.Any] = {
        "sid": DEFAULT_SID,
        "api_key": DEFAULT_API_KEY,
        "agent_numbers": list(scenario.agents),
        "base_url": url,
        "retry_backoff_seconds": 0.01,
    }
    config.update(overrides)
    return config


class RunningSandbox:
    """A sandbox server on a background thread, for one test."""

    def __init__(self, spec: dict[str, t.Any] | None = None) -> None:
        self.server = SandboxServer(0, Scenario(spec))
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def scenario(self) -> Scenario:
        return self.server.scenario

    def use(self, spec: dict[str, t.Any]) -> None:
        """Serve a new scenario from the next request on."""
        self.server.scenario = Scenario(spec)

    def stats(self) -> dict[str, t.Any]:
        return self.server.stats.snapshot()

    def config(self, **overrides: t.Any) -> dict[str, t.Any]:
        """A tap config for this sandbox: every agent the scenario knows."""
        return sandbox_config(self.url, self.scenario, **overrides)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class TapRun:
    """What one run of the tap printed, parsed."""

    returncode: int
    stdout: str
    stderr: str

    @functools.cached_property
    def messages(self) -> list[dict[str, t.Any]]:
        """Every stdout line as a Singer message (each must be complete JSON)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def of_type(self, kind: str) -> list[dict[str, t.Any]]:
        return [m for m in self.messages if m["type"] == kind]

    @property
    def records(self) -> list[dict[str, t.Any]]:
        """The ``testers`` records."""
        return self.records_of("testers")

    def records_of(self, stream: str) -> list[dict[str, t.Any]]:
        return [m["record"] for m in self.of_type("RECORD") if m["stream"] == stream]

    @property
    def last_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


def run_tap(
    config: dict[str, t.Any] | None,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    executable: str | None = None,
) -> TapRun:
    """Run the tap with these settings and arguments; parse each stdout line.

    By default in this process (:func:`run_in_process`): the same entry point the
    ``tap-kaleyra-rcs`` command calls, at a fraction of a new interpreter's cost.
    An ``executable`` (``TAP``: the installed command) runs as a subprocess
    instead, for what only a process shows: the console script, the interpreter's
    own exit and output, signals and pipes.
    """
    arguments = []
    if config is not None:
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config))
        arguments += ["--config", str(config_file)]
    arguments += list(args)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_KALEYRA_RCS_")}
    full_env.update(env or {})
    if executable is not None:
        done = subprocess.run(
            [executable, *arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            check=False,
        )
        run = TapRun(done.returncode, done.stdout, done.stderr)
    else:
        run = TapRun(*run_in_process(arguments, full_env))
    # Every run, whatever it tests, also checks that no piece of any secret leaks.
    for scan, secret in enumerate(secrets_given(config, env)):
        assert_no_key(run.stdout + run.stderr, secret, tap_run=scan == 0)
    return run


def ran(
    *command: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to its end, its output captured as text, whatever its status."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def checked(
    *command: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; fail the test with the end of its output unless it succeeds."""
    done = ran(*command, cwd=cwd, env=env, timeout=timeout)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done


def git(*args: str) -> str:
    """The output of a git command in this checkout, stripped; it must succeed."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def head_commit() -> str:
    """The full hash of the checkout's HEAD commit."""
    return git("rev-parse", "HEAD")


def release_tag_at_head() -> str | None:
    """The release tag ``vX.Y.Z`` on HEAD, if HEAD is a release."""
    try:
        return git("describe", "--tags", "--exact-match", "--match", "v*")
    except subprocess.CalledProcessError:  # no tag on HEAD
        return None


DEV_VERSION = re.compile(r"\d+\.\d+(\.\d+)?\.dev\d+\+g(?P<commit>[0-9a-f]{7,40})(\.d\d{8})?")
"""A version hatch-vcs gives a commit that is not a release: ``.devN+g<commit>``,
with ``.d<date>`` when the tree had uncommitted changes."""


def assert_names_head(version: str, hint: str = "") -> None:
    """Fail unless ``version`` is HEAD's: its release tag's, else a dev version naming it."""
    tag = release_tag_at_head()
    if tag is not None:  # a release: exactly the tag's version
        assert version == tag.removeprefix("v"), f"{version} is not the release {tag}"
        return
    found = DEV_VERSION.fullmatch(version)
    assert found, f"{version!r} is not a development version naming its commit"
    head = head_commit()
    assert head.startswith(found["commit"]), f"{version} is not HEAD, {head[:12]}{hint}"


def load_test_command() -> t.Any:
    """scripts/test.py as a module (scripts/ is not a package), for its stages and versions."""
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("test_command", root / "scripts" / "test.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(root / "scripts"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(root / "scripts"))
    return module
