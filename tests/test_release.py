"""The installed version names its commit; the changelog and the set-up command keep their form."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import typing as t
from importlib.metadata import version as installed_version

import pytest

from tests.support import BIN, assert_names_head, load_test_command
from tests.warehouses import ROOT

KEEP_A_CHANGELOG_KINDS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def _tap(*args: str) -> str:
    done = subprocess.run(
        [str(BIN / "tap-kaleyra-rcs"), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_version_and_about_give_the_installed_version_which_names_the_commit():
    installed = installed_version("tap-kaleyra-rcs")
    assert _tap("--version").startswith(f"tap-kaleyra-rcs v{installed},")
    assert json.loads(_tap("--about", "--format", "json"))["version"] == installed

    assert_names_head(installed, hint=": run python3 scripts/test.py to reinstall")


def test_the_changelog_keeps_a_changelog_form():
    text = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert versions[0] == "[Unreleased]"
    for heading in versions[1:]:
        assert re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", heading), heading
    kinds = set(re.findall(r"^### (.+)$", text, flags=re.MULTILINE))
    assert kinds, "no entries"
    assert kinds <= KEEP_A_CHANGELOG_KINDS


@pytest.mark.parametrize("arguments", [[], ["prod"], ["demo", "test"]])
def test_the_set_up_command_says_how_to_use_it(arguments):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bootstrap.py"), *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: python3 scripts/bootstrap.py demo|test")
    assert done.stderr.count("\n") == 1


def test_the_claimed_pythons_the_tested_ones_and_the_readme_agree():
    pyproject = (ROOT / "pyproject.toml").read_text()
    claimed = load_test_command().claimed_versions()
    (minimum,) = re.findall(r'^requires-python = ">=(3\.\d+)"$', pyproject, flags=re.MULTILINE)
    minors = [int(version.split(".")[1]) for version in claimed]
    assert claimed[0] == minimum
    assert minors == list(range(minors[0], minors[0] + len(minors))), "a gap in the claims"
    assert f"with Python {minimum}+ " in (ROOT / "README.md").read_text()
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in claimed
    assert json.loads(_tap("--about", "--format", "json"))["supported_python_versions"] == claimed


def test_the_running_python_is_found_and_an_unclaimed_one_is_not():
    script = load_test_command()
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    interpreter = script.find_interpreter(running)
    assert interpreter is not None
    done = subprocess.run(
        [str(interpreter), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(sys.version_info[:2])
    assert script.find_interpreter("3.99") is None


def _locked(extra: str) -> dict[str, str]:
    """name → version of every pin in requirements/<extra>.txt that applies to this Python."""
    from packaging.requirements import Requirement  # noqa: PLC0415 - only these tests need it

    pins = {}
    for line in (ROOT / "requirements" / f"{extra}.txt").read_text().splitlines():
        if not line or line[0] in " #":
            continue
        requirement = Requirement(line.rstrip(" \\"))
        if requirement.marker is None or requirement.marker.evaluate():
            (specifier,) = requirement.specifier
            pins[requirement.name.lower()] = specifier.version
    return pins


def _requirements(pyproject: str, section: str) -> list[str]:
    (body,) = re.findall(rf"^{section} = \[\n((?:    .*\n)*)\]", pyproject, flags=re.MULTILINE)
    return re.findall(r'^    "([^"]+)"', body, flags=re.MULTILINE)


@pytest.mark.parametrize("extra", ["demo", "test"])
def test_the_lock_satisfies_what_pyproject_asks_for(extra):
    from packaging.requirements import Requirement  # noqa: PLC0415

    pyproject = (ROOT / "pyproject.toml").read_text()
    locked = _locked(extra)
    sections = ["dependencies", "demo", *(["test"] if extra == "test" else [])]
    asked = [
        Requirement(text) for section in sections for text in _requirements(pyproject, section)
    ]
    for requirement in asked:
        if requirement.name == "tap-kaleyra-rcs":
            continue
        name = requirement.name.lower()
        assert name in locked, f"{name} is not in requirements/{extra}.txt: refresh the lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (name, locked[name])


def test_this_environment_is_the_test_lock():
    for name, pinned in _locked("test").items():
        assert installed_version(name) == pinned, f"{name}: run python3 scripts/test.py"


@pytest.mark.parametrize(("ci", "failures"), [("true", 1), (None, 0)])
def test_a_claimed_python_missing_here_fails_only_under_ci(monkeypatch, capsys, ci, failures):
    script = load_test_command()
    monkeypatch.setattr(script, "claimed_versions", lambda: ["3.99"])
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)

    assert script.other_versions() == failures
    assert "Python 3.99 is claimed in pyproject.toml but not installed here" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("beside", [True, False])
def test_each_other_python_runs_timed_and_beside_when_asked(monkeypatch, beside):
    script = load_test_command()
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    monkeypatch.setattr(script, "claimed_versions", lambda: [running, "3.98", "3.99"])
    monkeypatch.setattr(script, "find_interpreter", lambda version: f"/opt/python{version}")
    calls = []

    def one(version: str, interpreter: str, *, beside: bool = False) -> int:
        calls.append((version, interpreter, beside))
        return 1 if version == "3.99" else 0

    monkeypatch.setattr(script, "_one_other_version", one)
    monkeypatch.setattr(script, "STAGE_TIMES", [])

    assert script.other_versions(beside=beside) == 1, "one failed version fails the stage"
    assert calls == [
        ("3.98", "/opt/python3.98", beside),
        ("3.99", "/opt/python3.99", beside),
    ]
    assert [name for name, _ in script.STAGE_TIMES] == [
        "pytest -m 'not e2e', Python 3.98",
        "pytest -m 'not e2e', Python 3.99",
    ]


def test_stages_default_to_the_full_run_and_an_unknown_one_is_refused():
    script = load_test_command()
    assert script.parse(["-p", "no:cacheprovider"]) == (
        list(script.FULL_RUN),
        ["-p", "no:cacheprovider"],
    )
    assert script.parse(["--stage", "unit", "-x"]) == (["unit"], ["-x"])
    with pytest.raises(SystemExit, match="--stage takes one of venv, plugins"):
        script.parse(["--stage", "nope"])


def test_the_other_pythons_start_once_venv_is_set_up_and_run_beside_the_rest(monkeypatch):
    script = load_test_command()
    others_started = threading.Event()
    seen: list[tuple[str, bool]] = []

    def stage(name: str) -> t.Callable[..., int]:
        def run(*_: str) -> int:
            if name == "plugins":  # the next stage after venv: the other Pythons run now
                others_started.wait(timeout=60)
            seen.append((name, others_started.is_set()))
            return 0

        return run

    def others(*, beside: bool = False) -> int:
        seen.append((f"other-pythons, beside: {beside}", others_started.is_set()))
        others_started.set()
        return 0

    monkeypatch.setattr(script, "STAGES", {name: stage(name) for name in script.STAGES})
    monkeypatch.setattr(script, "other_versions", others)
    monkeypatch.setattr(script, "STAGE_TIMES", [])
    monkeypatch.setattr(sys, "argv", ["scripts/test.py"])
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")

    assert script.main() == 0
    assert "PYTHONDONTWRITEBYTECODE" not in os.environ, "every process it starts writes bytecode"
    assert seen == [
        ("venv", False),
        ("other-pythons, beside: True", False),
        ("plugins", True),
        ("lint", True),
        ("types", True),
        ("tests", True),
    ]
