"""The chaos soak (scripts/soak.py): one short clean seed end to end, and its oracle on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from soak_world import Loaded, compare, expected_models, plan_runs  # noqa: E402

SEED, RUNS = 38, 4
"""Seed 38's first four runs: tester changes and ride-through faults in each, the loader
killed mid-load, a run failing on a 500, and dbt stopped mid-build."""


def _tester(tester_id: str, agent: str, test_status: str = "ACCEPTED") -> dict[str, object]:
    return {"id": tester_id, "agent_no": agent, "test_status": test_status,
            "status": "ACTIVE", "carrierid": 310}  # fmt: skip


def test_the_same_seed_gives_the_same_plan():
    first, again = plan_runs(5, 12), plan_runs(5, 12)
    assert [(p.agents, p.overrides, p.kind, p.faults) for p in first] == [
        (p.agents, p.overrides, p.kind, p.faults) for p in again
    ]
    assert any(p.changes for p in first)


def test_the_short_seed_injects_what_its_docstring_says():
    plans = plan_runs(SEED, RUNS)
    assert [p.kind for p in plans] == ["clean", "loader-kill", "fail", "dbt-sigterm"]
    assert all(p.changes for p in plans[1:])
    # PostgreSQL's plan may also drop the loader's connections; DuckDB's never does.
    assert "pg-drop" not in {p.kind for p in plan_runs(SEED, 60)}
    assert "pg-drop" in {p.kind for p in plan_runs(SEED, 60, postgres=True)}


def test_the_oracle_follows_the_documented_rules_and_catches_a_difference():
    runs = [
        Loaded(
            "r1",
            {
                "48900": [_tester("a", "48900"), _tester("b", "48900")],
                "48901": [_tester("c", "48901")],
            },
            {"48900", "48901"},
        ),
        # A failed run that did not list b removes nothing.
        Loaded("r2", {"48900": [_tester("a", "48900", "PAUSED")]}, None),
        # 48901 left agent_numbers; 48900 no longer lists b: removed.
        Loaded("r3", {"48900": [_tester("a", "48900", "PAUSED")]}, {"48900"}),
    ]
    models = expected_models(runs)
    assert [row[:6] for row in models["testers"]] == [
        ("a", "48900", "PAUSED", "ACTIVE", "310", "true"),
        ("c", "48901", "ACCEPTED", "ACTIVE", "310", "false"),
    ]
    # An unknown status counts in other_status; the agent no longer synced is not listed.
    assert models["summary"] == [("48900", "1", "0", "0", "0", "0", "1")]
    assert dict(models["history"])["b"] == '[["48900", "ACCEPTED", "ACTIVE", "removed"]]'
    assert dict(models["history"])["c"] == (
        '[["48901", "ACCEPTED", "ACTIVE", "agent_no_longer_synced"]]'
    )
    planted = {**models, "summary": [("48900", "2", "1", "0", "0", "0", "1")]}
    problems = compare(models, planted)
    assert any("summary" in problem for problem in problems)
    assert compare(models, models) == []


@pytest.mark.e2e
def test_a_short_soak_of_one_seed_finds_no_violation():
    done = subprocess.run(
        [sys.executable, "scripts/soak.py", "--seed", str(SEED), "--runs", str(RUNS),
         "--rebuild-every", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    last = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert last.startswith(f"soak: {RUNS} runs")
    assert last.endswith(", 0 invariant violations"), last
