"""The GitHub workflows run what scripts/test.py runs, on the Pythons pyproject.toml claims.

Nothing can run the workflows here, so these tests hold them to the test command:
the same stages, every claimed Python in the matrix, and a release that builds,
checks and publishes through trusted publishing. ``scripts/test.py``'s lint stage
also validates them against the GitHub workflow schema (check-jsonschema).
"""

from __future__ import annotations

import re
import typing as t

import yaml

from tests.support import load_test_command
from tests.warehouses import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name: str) -> dict[str, t.Any]:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def _stages(job: dict[str, t.Any]) -> list[str]:
    """The ``scripts/test.py --stage`` names a job's steps run, in order."""
    runs = [step["run"] for step in job["steps"] if "scripts/test.py" in step.get("run", "")]
    return [name for command in runs for name in re.findall(r"--stage (\S+)", command)]


def test_the_ci_workflow_runs_every_stage_of_the_test_command():
    script = load_test_command()
    jobs = _workflow("ci.yml")["jobs"]
    expected = {part for stage in script.FULL_RUN for part in script.SPLIT.get(stage, (stage,))}
    run = {stage for job in jobs.values() for stage in _stages(job)}
    assert run == expected
    assert run <= set(script.STAGES), "a stage scripts/test.py does not know"
    for job in jobs.values():
        stages = _stages(job)
        assert stages[0] == "venv", "every job sets up .venv first"
        if {"e2e"} & set(stages):
            assert stages.index("plugins") < stages.index("e2e"), "Meltano's plugins first"


def test_the_unit_matrix_is_every_claimed_python_and_e2e_runs_once_on_one_of_them():
    script = load_test_command()
    jobs = _workflow("ci.yml")["jobs"]
    (unit,) = [job for job in jobs.values() if "unit" in _stages(job)]
    assert unit["strategy"]["matrix"]["python-version"] == script.claimed_versions()
    (e2e,) = [job for job in jobs.values() if "e2e" in _stages(job)]
    (setup,) = [step for step in e2e["steps"] if "setup-python" in step.get("uses", "")]
    assert setup["with"]["python-version"] in script.claimed_versions()
    assert "strategy" not in e2e
    assert any("postgresql" in step.get("run", "") for step in e2e["steps"])


def test_every_checkout_has_the_history_the_version_is_read_from():
    for name in ("ci.yml", "release.yml"):
        for job in _workflow(name)["jobs"].values():
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["fetch-depth"] == 0, f"{name}: hatch-vcs needs the tags"


def test_a_v_tag_builds_checks_and_publishes_with_trusted_publishing():
    workflow = _workflow("release.yml")
    # PyYAML reads the key "on" as True (YAML 1.1).
    assert workflow[True] == {"push": {"tags": ["v*"]}}
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    commands = " ".join(step.get("run", "") for step in build["steps"])
    for check in ("-m build", "twine check --strict", "check-wheel-contents"):
        assert check in commands
    assert publish["needs"] == "build"
    assert publish["permissions"] == {"id-token": "write"}
    assert workflow["permissions"] == {"contents": "read"}, "only publish may mint a token"
    assert any(
        step.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for step in publish["steps"]
    )
    assert not any("password" in str(step.get("with", {})) for step in publish["steps"])
