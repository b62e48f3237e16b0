"""The sdist and the wheel a user installs: built and checked with the field's tools.

``uv build`` makes the sdist, then the wheel from that sdist (so the sdist is
shown to build). Installing each into a clean environment, with a sync, is
tests/test_install_forms.py's, beside the other forms the tap installs from.
"""

from __future__ import annotations

import typing as t
import zipfile

import pytest

from tests.model_warehouses import RAW_TABLES
from tests.support import BIN, checked
from tests.warehouses import ROOT

if t.TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e  # installs packages: not part of the other Pythons' run


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    checked(BIN / "uv", "build", "--quiet", "--out-dir", out, ROOT, cwd=ROOT)
    (sdist,) = out.glob("tap_kaleyra_rcs-*.tar.gz")
    (wheel,) = out.glob("tap_kaleyra_rcs-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_twine_check_strict_passes_both(built):
    done = checked(BIN / "twine", "check", "--strict", built["sdist"], built["wheel"], cwd=ROOT)
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_check_wheel_contents_passes_and_the_schemas_are_inside(built):
    checked(BIN / "check-wheel-contents", built["wheel"], cwd=ROOT)
    names = zipfile.ZipFile(built["wheel"]).namelist()
    for stream in RAW_TABLES:
        assert f"tap_kaleyra_rcs/schemas/{stream}.json" in names
    assert not [name for name in names if name.startswith("tests/")]
