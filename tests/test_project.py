"""The project's promises outside the tap: README, packaging and the demo command."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import duckdb
import pytest

from tests.processes import with_environment
from tests.support import BIN
from tests.warehouses import own_meltano_folder

ROOT = Path(__file__).resolve().parent.parent


def test_readme_settings_table_matches_about_output():
    done = subprocess.run(
        [sys.executable, "scripts/readme_settings.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def test_the_built_wheel_carries_the_schema_and_loads_it_from_the_package(tmp_path):
    # The tests run an editable install of the checkout; users install the wheel,
    # where the schema must come from inside the package.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("tap_kaleyra_rcs-*.whl")
    assert "tap_kaleyra_rcs/schemas/testers.json" in zipfile.ZipFile(wheel).namelist()
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    program = (
        "import sys, tap_kaleyra_rcs.records as r, importlib.resources as ir;"
        "p = ir.files('tap_kaleyra_rcs') / 'schemas' / 'testers.json';"
        "print(r.__file__.startswith(sys.argv[1]), p.is_file(),"
        " sorted(r.load_schema()['properties'])[0])"
    )
    done = subprocess.run(
        [str(BIN / "python"), "-c", program, str(site)],
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["True", "True", "agent_no"]


RUN_MARKER = "KALEYRA_TEST_RUN_MARKER"
"""Set to a fresh value for each demo run: every process it starts inherits it, so
the test finds its own leftovers, never those of another run on the machine."""


def _run_demo(tmp_path, marker: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TARGET_DUCKDB_FILEPATH": str(tmp_path / "demo.duckdb"),
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        # Meltano writes each run's catalog to a fixed name under .meltano/run/:
        # two demos at once (pytest-xdist) would read each other's half-written file.
        "MELTANO_SYS_DIR_ROOT": own_meltano_folder(tmp_path),
        RUN_MARKER: marker,
        **env_overrides,
    }
    return subprocess.run(
        [str(BIN / "python"), "scripts/demo.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.e2e
@pytest.mark.usefixtures("meltano_plugins")
def test_demo_prints_the_summary_and_leaves_no_process(tmp_path):
    marker = uuid.uuid4().hex
    done = _run_demo(tmp_path, marker)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "240 testers from 6 agents" in done.stdout
    assert "(model kaleyra.kaleyra_rcs__agent_summary)" in done.stdout
    all_agents = next(line for line in done.stdout.splitlines() if line.startswith("all "))
    testers, *per_status = all_agents.split()[1:7]
    assert testers == "240"
    assert sum(map(int, per_status)) == 240, "accepted + pending + rejected + expired + other"
    with duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True) as db:
        built = db.sql(
            "select agent_no, testers from kaleyra.kaleyra_rcs__agent_summary"
        ).fetchall()
    assert sorted(built) == [(f"4890{i}", 40) for i in range(6)], "the job built the models"
    assert with_environment(RUN_MARKER, marker) == [], "the sandbox (or another child) is left"


@pytest.mark.e2e
@pytest.mark.usefixtures("meltano_plugins")
def test_demo_stops_the_sandbox_when_the_pipeline_fails(tmp_path):
    marker = uuid.uuid4().hex
    done = _run_demo(
        tmp_path, marker, TAP_KALEYRA_RCS_API_KEY="a-wrong-key", TAP_KALEYRA_RCS_MAX_RETRIES="0"
    )

    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert with_environment(RUN_MARKER, marker) == [], "the sandbox (or another child) is left"
