"""The Meltano Hub definition (meltano-hub/): current, and all a new Meltano project needs.

It is generated from ``--about`` by scripts/hub_definition.py. A fresh Meltano
project adds the tap from it with ``meltano add --from-ref`` (no Hub involved),
installs the wheel built from this checkout, and syncs the sandbox through it.
"""

from __future__ import annotations

import json
import subprocess
import typing as t

import pytest
import yaml

from tests.support import BIN
from tests.warehouses import MELTANO, ROOT, outside_environment

DEFINITION = ROOT / "meltano-hub" / "tap-kaleyra-rcs.yml"
COMPARED = ("name", "kind", "label", "description", "value", "options")


def _definition() -> dict[str, t.Any]:
    return t.cast("dict[str, t.Any]", yaml.safe_load(DEFINITION.read_text()))


def test_the_definition_is_what_about_generates_now():
    done = subprocess.run(
        [str(BIN / "python"), str(ROOT / "scripts" / "hub_definition.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_definition_agrees_with_the_inline_one_in_meltano_yml():
    hub = _definition()
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (inline,) = [e for e in project["plugins"]["extractors"] if e["name"] == hub["name"]]
    assert sorted(inline["capabilities"]) == hub["capabilities"]
    assert inline["settings_group_validation"] == hub["settings_group_validation"]
    assert inline["namespace"] == hub["namespace"]
    assert inline["executable"] == hub["executable"]
    assert [s["name"] for s in inline["settings"]] == [s["name"] for s in hub["settings"]]
    for mine, theirs in zip(inline["settings"], hub["settings"], strict=True):
        assert {k: mine.get(k) for k in COMPARED} == {k: theirs.get(k) for k in COMPARED}
        assert bool(mine.get("sensitive")) is theirs["sensitive"], mine["name"]
    sensitive = [s["name"] for s in hub["settings"] if s["sensitive"]]
    assert sensitive == ["api_key", "phoneno_hash_key"], "sid and the others are not secrets"


@pytest.mark.e2e
def test_a_new_meltano_project_adds_the_tap_from_the_definition_and_syncs(sandbox, tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [str(BIN / "uv"), "build", "--quiet", "--wheel", "--out-dir", str(dist), str(ROOT)],
        check=True,
    )
    (wheel,) = dist.glob("*.whl")
    reference = tmp_path / "tap-kaleyra-rcs.yml"
    reference.write_text(yaml.safe_dump({**_definition(), "pip_url": str(wheel)}, sort_keys=False))
    api = sandbox()
    config = api.config()
    env = outside_environment()
    env |= {
        "TAP_KALEYRA_RCS_SID": config["sid"],
        "TAP_KALEYRA_RCS_API_KEY": config["api_key"],
        "TAP_KALEYRA_RCS_AGENT_NUMBERS": json.dumps(config["agent_numbers"]),
        "TAP_KALEYRA_RCS_BASE_URL": config["base_url"],
    }

    def meltano(*args: str, cwd: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [MELTANO, *args], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        return done

    meltano("init", "--no-usage-stats", "project", cwd=str(tmp_path))
    project = str(tmp_path / "project")
    meltano("add", "--plugin-type", "extractor", "--from-ref", str(reference),
            "tap-kaleyra-rcs", cwd=project)  # fmt: skip
    added = yaml.safe_load((tmp_path / "project" / "meltano.yml").read_text())
    (extractor,) = added["plugins"]["extractors"]
    assert extractor["pip_url"] == str(wheel)
    assert "utilities" not in added["plugins"]

    synced = meltano("invoke", "tap-kaleyra-rcs", cwd=project)
    records = [
        line for line in map(json.loads, synced.stdout.splitlines())
        if line["type"] == "RECORD" and line["stream"] == "testers"
    ]  # fmt: skip
    expected = sum(len(api.scenario.testers(agent)) for agent in api.scenario.agents)
    assert len(records) == expected > 0
