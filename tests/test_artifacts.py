"""The sdist and the wheel a user installs: built, checked with the field's tools, installed clean.

``uv build`` makes the sdist, then the wheel from that sdist (so the sdist is
shown to build). Each is installed into a new virtual environment of its own,
outside this checkout, and runs ``--about`` and a sync against the sandbox.
"""

from __future__ import annotations

import json
import subprocess
import typing as t
import zipfile

import pytest

from tests.model_warehouses import RAW_TABLES
from tests.support import BIN, run_tap
from tests.warehouses import ROOT

if t.TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e  # installs packages: not part of the other Pythons' run


def _run(*command: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done


def _wheel_version(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    (version,) = [line.removeprefix("Version: ") for line in lines if line.startswith("Version: ")]
    return version


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    _run(BIN / "uv", "build", "--quiet", "--out-dir", out, ROOT)
    (sdist,) = out.glob("tap_kaleyra_rcs-*.tar.gz")
    (wheel,) = out.glob("tap_kaleyra_rcs-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_twine_check_strict_passes_both(built):
    done = _run(BIN / "twine", "check", "--strict", built["sdist"], built["wheel"])
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_check_wheel_contents_passes_and_the_schemas_are_inside(built):
    _run(BIN / "check-wheel-contents", built["wheel"])
    names = zipfile.ZipFile(built["wheel"]).namelist()
    for stream in RAW_TABLES:
        assert f"tap_kaleyra_rcs/schemas/{stream}.json" in names
    assert not [name for name in names if name.startswith("tests/")]


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_each_installs_clean_and_syncs_the_sandbox(kind, built, sandbox, tmp_path):
    home = tmp_path / "venv"
    _run(BIN / "uv", "venv", "--quiet", "--python", BIN / "python", home, cwd=tmp_path)
    _run(BIN / "uv", "pip", "install", "--quiet", "--python", home / "bin" / "python",
         built[kind], cwd=tmp_path)  # fmt: skip
    tap = str(home / "bin" / "tap-kaleyra-rcs")
    about: dict[str, t.Any] = json.loads(_run(tap, "--about", "--format", "json").stdout)
    assert about["version"] == _wheel_version(built["wheel"])
    assert about["name"] == "tap-kaleyra-rcs"

    api = sandbox()
    run = run_tap(api.config(), tmp_path, executable=tap)
    assert run.returncode == 0, run.stderr[-3000:]
    expected = sum(len(api.scenario.testers(agent)) for agent in api.scenario.agents)
    assert len(run.records_of("testers")) == expected > 0
