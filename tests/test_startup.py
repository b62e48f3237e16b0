"""Start-up: modules the SDK imports only for features a run may not use, and the C heap."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from tap_kaleyra_rcs.cli import SDK_IMPORTS_ON_FIRST_USE
from tap_kaleyra_rcs.startup import (
    OnFirstUse,
    StandIn,
    imported_on_first_use,
    large_blocks_from_the_system,
)
from tests.support import BIN

PROBE = "kaleyra_startup_probe"


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A module that counts its imports (in ``sys``) and holds a function and a class."""
    (tmp_path / f"{PROBE}.py").write_text(
        textwrap.dedent(
            """
            import sys

            sys.kaleyra_probe_imports = getattr(sys, "kaleyra_probe_imports", 0) + 1


            def double(value, times=2):
                return times * value


            class Answer:
                number = 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, PROBE, raising=False)
    yield
    sys.modules.pop(PROBE, None)
    if hasattr(sys, "kaleyra_probe_imports"):
        del sys.kaleyra_probe_imports


def _imports() -> int:
    return getattr(sys, "kaleyra_probe_imports", 0)


def test_inside_the_block_an_import_binds_a_stand_in_and_imports_nothing(probe):
    with imported_on_first_use(PROBE):
        import kaleyra_startup_probe  # noqa: PLC0415
        from kaleyra_startup_probe import double  # noqa: PLC0415

    assert isinstance(kaleyra_startup_probe, StandIn)
    assert isinstance(double, OnFirstUse)
    assert _imports() == 0
    assert PROBE not in sys.modules, "the stand-in is withdrawn after the block"


def test_the_first_call_imports_the_module_once_and_returns_what_the_real_one_does(probe):
    with imported_on_first_use(PROBE):
        from kaleyra_startup_probe import Answer, double  # noqa: PLC0415

    assert double(21) == 42
    assert double(5, times=3) == 15
    assert Answer.number == 42  # an attribute of a deferred name: read from the real one
    assert isinstance(Answer.real()(), Answer)
    assert not isinstance(3, Answer)
    assert issubclass(Answer.real(), Answer)
    assert not issubclass(int, Answer)
    assert _imports() == 1
    import kaleyra_startup_probe  # noqa: PLC0415

    assert not isinstance(kaleyra_startup_probe, StandIn)
    assert kaleyra_startup_probe.double is double.real()


def test_a_use_inside_the_block_ends_the_deferral_instead_of_looping(probe):
    with imported_on_first_use(PROBE):
        from kaleyra_startup_probe import double  # noqa: PLC0415

        assert double(4) == 8
        import kaleyra_startup_probe  # noqa: PLC0415

        assert not isinstance(kaleyra_startup_probe, StandIn)
    assert sys.modules[PROBE] is kaleyra_startup_probe, "the real module stays"
    assert _imports() == 1


def test_a_module_already_imported_is_left_alone(probe):
    import kaleyra_startup_probe  # noqa: PLC0415

    with imported_on_first_use(PROBE):
        import kaleyra_startup_probe as inside  # noqa: PLC0415
    assert inside is kaleyra_startup_probe
    assert sys.modules[PROBE] is kaleyra_startup_probe
    assert _imports() == 1


def test_a_stand_in_is_no_package_and_answers_no_dunder():
    stand_in = StandIn(PROBE)
    with pytest.raises(AttributeError, match=r"^__path__$"):
        stand_in.__path__  # noqa: B018 - what the import system asks
    assert not hasattr(stand_in, "__all__")
    assert isinstance(stand_in.anything, OnFirstUse)


_AFTER_THE_CLI = """
import json, sys, tempfile
import tap_kaleyra_rcs.cli
from singer_sdk.helpers import _batch
from singer_sdk import target_base
from singer_sdk.streams import rest
deferred = sorted(m for m in {deferred!r} + ("fsspec",) if m in sys.modules)
bound = [type(name).__name__ for name in (_batch.UPath, target_base.Parallel, rest.backoff)]
path = _batch.UPath(tempfile.gettempdir())
waits = rest.backoff.expo(factor=2)
real_waits = __import__("backoff").expo(factor=2)
print(json.dumps({{
    "imported_at_start": deferred,
    "bound": bound,
    "upath": [type(path).__module__.split(".")[0], path.exists()],
    "backoff": [[next(waits) for _ in range(4)], [next(real_waits) for _ in range(4)]],
    "now_imported": sorted(m for m in ("upath", "fsspec", "backoff") if m in sys.modules),
    "joblib_real": hasattr(__import__("joblib"), "Parallel"),
}}))
"""


def test_the_tap_starts_without_the_sdks_unused_modules_and_they_work_when_used():
    """In a fresh process: what the command imports, and each deferred name once used."""
    done = subprocess.run(
        [sys.executable, "-c", _AFTER_THE_CLI.format(deferred=SDK_IMPORTS_ON_FIRST_USE)],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout)

    assert found["imported_at_start"] == []
    assert found["bound"] == ["OnFirstUse", "OnFirstUse", "StandIn"]
    assert found["upath"] == ["upath", True]
    through_stand_in, real = found["backoff"]
    assert through_stand_in == real
    assert found["now_imported"] == ["backoff", "fsspec", "upath"]
    assert found["joblib_real"]


def test_the_installed_command_imports_none_of_the_deferred_modules():
    """What a user runs: the console script, with Python's own import log."""
    done = subprocess.run(
        [str(BIN / "tap-kaleyra-rcs"), "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
    )
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "singer_sdk" in imported, "the log covers the SDK's import"
    deferred = {*SDK_IMPORTS_ON_FIRST_USE, "fsspec"}
    assert not {name.split(".")[0] for name in imported} & deferred
    assert json.loads(done.stdout)["name"] == "tap-kaleyra-rcs"


_PAGE_FAULTS_OF_CHURN = """
import resource
def churn():
    for _ in range(100):
        blocks = [bytes(200_000) for _ in range(10)]  # an answer's worth, then freed
        del blocks
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's parameters")
def test_memory_freed_at_the_heaps_top_is_reused_instead_of_faulted_in_again():
    """2 MB allocated and freed 100 times: each round's pages come back from the heap.

    Without the tap's setting (a fresh interpreter) they go back to the system
    and are faulted in again; with it (here, in process, as the command does)
    they stay.
    """
    pages_churned = 100 * 10 * 200_000 // 4096

    def faults_in_a_fresh_interpreter(before: str) -> int:
        code = before + _PAGE_FAULTS_OF_CHURN + "print(faults)"
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return int(done.stdout)

    assert faults_in_a_fresh_interpreter("") > pages_churned // 2, "glibc's own setting"
    # The command's module sets it as it is imported, before the SDK's imports.
    assert faults_in_a_fresh_interpreter("import tap_kaleyra_rcs.cli\n") < pages_churned // 20

    assert large_blocks_from_the_system()
    found: dict[str, int] = {}
    exec(_PAGE_FAULTS_OF_CHURN, found)  # noqa: S102 - the same code as the fresh interpreter's
    assert found["faults"] < pages_churned // 20
