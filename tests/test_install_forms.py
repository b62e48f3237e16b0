"""The tap installs from every source a user has, names its commit, and syncs.

The sources: a git clone, the sdist and the wheel built from it, and archives of
the repository as ``git archive`` makes them (a tar, unpacked) and as a code host
serves them (``<repo>-<commit>/`` inside a ``.tar.gz`` or a ``.zip``, with
export-subst applied). Each is installed into a new virtual environment outside
this checkout; its ``--version`` must name HEAD's commit, and its own
``tap-kaleyra-rcs-sandbox`` and ``tap-kaleyra-rcs`` must sync. A Meltano project
whose ``pip_url`` is an archive must do the same through ``meltano install``.

Everything is made from HEAD's commit, not the working tree: a clone and an
archive can only hold what is committed, so uncommitted edits don't change what
is tested here (the rest of the suite runs the working tree).
"""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import tarfile
import typing as t

import pytest
import yaml

from tap_kaleyra_rcs.sandbox import Scenario
from tests.pipelines import setting_env
from tests.support import (
    BIN,
    DEV_VERSION,
    TapRun,
    assert_names_head,
    assert_no_key,
    checked,
    git,
    head_commit,
    run_tap,
    sandbox_config,
)
from tests.warehouses import MELTANO, ROOT, outside_environment

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.e2e  # installs packages: not part of the other Pythons' run

LOCK = ROOT / "requirements" / "test.txt"
HUB_DEFINITION = ROOT / "meltano-hub" / "tap-kaleyra-rcs.yml"


class Sources:
    """HEAD's commit in each form a user installs from, each made on first use.

    A module fixture, so one pytest-xdist worker makes each form it needs once.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.commit = head_commit()
        self.top = f"tap-kaleyra-rcs-{self.commit}"
        """The top folder of a code host's archive: ``<repo>-<ref>``."""

    @functools.cached_property
    def clone(self) -> Path:
        """A clone of this repository, at HEAD's commit."""
        clone = self.folder / "clone"
        git("clone", "--quiet", "--no-checkout", str(ROOT), str(clone))
        checked("git", "checkout", "--quiet", "--detach", self.commit, cwd=clone)
        return clone

    def _built(self, kind: str) -> Path:
        out = self.folder / kind
        checked(BIN / "uv", "build", "--quiet", f"--{kind}", "--out-dir", out, self.clone, cwd=ROOT)
        (built,) = out.glob("tap_kaleyra_rcs-*")  # uv also writes a .gitignore there
        return built

    @functools.cached_property
    def sdist(self) -> Path:
        return self._built("sdist")

    @functools.cached_property
    def wheel(self) -> Path:
        return self._built("wheel")

    def archive(self, extension: str) -> Path:
        """``git archive`` of HEAD named and laid out as a code host serves it."""
        path = self.folder / f"{self.top}.{extension}"
        if not path.exists():
            git("archive", f"--prefix={self.top}/", "-o", str(path), self.commit)
        return path

    @functools.cached_property
    def unpacked_tar(self) -> Path:
        """``git archive --format=tar``, unpacked: installed as the folder it makes."""
        with tarfile.open(self.archive("tar")) as archive:
            archive.extractall(self.folder / "unpacked", filter="data")
        return self.folder / "unpacked" / self.top


FORMS: dict[str, tuple[Callable[[Sources], Path], bool]] = {
    "git clone": (lambda s: s.clone, False),
    "sdist": (lambda s: s.sdist, False),
    "wheel": (lambda s: s.wheel, False),
    "tar, unpacked": (lambda s: s.unpacked_tar, True),
    "tar.gz": (lambda s: s.archive("tar.gz"), True),
    "zip": (lambda s: s.archive("zip"), True),
}
"""Each form: how to make it, and whether it is an archive (no git history in it)."""


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    return Sources(tmp_path_factory.mktemp("sources"))


def _assert_names_head(version_line: str, *, archive: bool) -> None:
    """``--version`` names HEAD's commit; an archive with no release tag behind it
    says ``0.1.dev0+g<commit>``, as .gitattributes and docs/development.md say."""
    prefix, sdk = "tap-kaleyra-rcs v", ", Meltano SDK v"
    assert version_line.startswith(prefix), version_line
    assert sdk in version_line, version_line
    version = version_line.removeprefix(prefix).split(sdk)[0]
    assert_names_head(version)
    if archive and DEV_VERSION.fullmatch(version) and not _a_release_tag_is_behind_head():
        assert version == f"0.1.dev0+g{git('rev-parse', '--short', 'HEAD')}"


def _a_release_tag_is_behind_head() -> bool:
    """Whether ``git describe`` finds a tag, as an archive's describe-name would."""
    try:
        git("describe", "--tags", "--match", "*[0-9]*")
    except subprocess.CalledProcessError:
        return False
    return True


@contextlib.contextmanager
def _installed_sandbox(bin_folder: Path) -> Iterator[str]:
    """The installed ``tap-kaleyra-rcs-sandbox`` on a free port; its URL."""
    process = subprocess.Popen(
        [str(bin_folder / "tap-kaleyra-rcs-sandbox"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # its first line; "" if it ended
        assert url.startswith("http://127.0.0.1:"), f"the sandbox said {url!r}"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _assert_syncs(bin_folder: Path, sync: Callable[[dict[str, t.Any]], TapRun]) -> None:
    """``sync``, given a config for the installed sandbox, sends every tester it serves."""
    scenario = Scenario()  # what the sandbox serves with no options
    with _installed_sandbox(bin_folder) as url:
        run = sync(sandbox_config(url, scenario))
    assert run.returncode == 0, run.stderr[-3000:]
    served = [tester["id"] for agent in scenario.agents for tester in scenario.testers(agent)]
    assert [record["id"] for record in run.records] == served
    assert served


@pytest.mark.parametrize("form", list(FORMS))
def test_each_form_installs_clean_names_its_commit_and_syncs(form, sources, tmp_path):
    make, archive = FORMS[form]
    source = make(sources)
    home = tmp_path / "venv"
    checked(BIN / "uv", "venv", "--quiet", "--python", BIN / "python", home, cwd=tmp_path)
    # The lock as constraints: the dependencies tested everywhere else, from uv's cache.
    checked(BIN / "uv", "pip", "install", "--quiet", "--python", home / "bin" / "python",
            "--constraints", LOCK, source, cwd=tmp_path)  # fmt: skip
    tap = home / "bin" / "tap-kaleyra-rcs"

    _assert_names_head(checked(tap, "--version", cwd=tmp_path).stdout.strip(), archive=archive)
    if form in {"sdist", "wheel"}:  # the file's name carries the version it was built with
        about = json.loads(checked(tap, "--about", "--format", "json", cwd=tmp_path).stdout)
        assert source.name.startswith(f"tap_kaleyra_rcs-{about['version']}")
    _assert_syncs(home / "bin", lambda config: run_tap(config, tmp_path, executable=str(tap)))


def test_a_meltano_project_installs_the_tap_from_an_archive_pip_url(sources, tmp_path):
    """A user's own project: the Hub definition with an archive URL as its ``pip_url``,
    as a code host serves one (``.../archive/<commit>.tar.gz``). Never the repository's
    own project: ``meltano install`` there would reinstall plugins other tests use."""
    served_as = tmp_path / "archive" / f"{sources.commit}.tar.gz"
    served_as.parent.mkdir()
    served_as.write_bytes(sources.archive("tar.gz").read_bytes())
    extractor = {**yaml.safe_load(HUB_DEFINITION.read_text()), "pip_url": served_as.as_uri()}
    project = tmp_path / "project"
    project.mkdir()
    (project / "meltano.yml").write_text(
        yaml.safe_dump(
            {
                "project_id": "install-forms",
                "send_anonymous_usage_stats": False,
                "plugins": {"extractors": [extractor]},
            }
        )
    )
    env = outside_environment()
    checked(MELTANO, "--log-level=warning", "install", cwd=project, env=env)
    version = checked(MELTANO, "invoke", "tap-kaleyra-rcs", "--version", cwd=project, env=env)
    _assert_names_head(version.stdout.strip(), archive=True)

    def sync(config: dict[str, t.Any]) -> TapRun:
        settings = setting_env(**config)  # the settings a user exports for Meltano
        done = subprocess.run(
            [MELTANO, "--log-level=warning", "invoke", "tap-kaleyra-rcs"],
            cwd=project,
            env=env | settings,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert_no_key(done.stdout + done.stderr, config["api_key"], tap_run=True)
        return TapRun(done.returncode, done.stdout, done.stderr)

    _assert_syncs(project / ".meltano" / "extractors" / "tap-kaleyra-rcs" / "venv" / "bin", sync)
