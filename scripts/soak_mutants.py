"""Does the soak catch bugs? Plant one at a time in a copy of the project and soak it.

    .venv/bin/python scripts/soak_mutants.py [--seed 3] [--runs 10]

For each planted bug: copy the project to a temporary folder (the tap's Meltano
plugin copied too, pointed at the copy, so a bug in the tap is the one that
runs; the other plugins and ``.venv`` are linked), change one line, run
``scripts/soak.py --stop-at-first`` there, and report whether the soak caught it
and at which run. A bug the soak misses is a gap in its oracle or its plan.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bootstrap import ROOT, commit

TAP_PLUGIN = Path(".meltano/extractors/tap-kaleyra-rcs")
RECORD = ROOT / "docs" / "soak_mutants.json"
"""``--record``'s results, shown in docs/reliability.md."""

MUTANTS = {
    "summary lists the agents of every successful run, not the latest's": (
        "transform/models/marts/kaleyra_rcs__agent_summary.sql",
        "    where recency = 1\n",
        "    where recency >= 1\n",
    ),
    "an agent no longer synced removes its testers": (
        "transform/models/intermediate/int_kaleyra_rcs__tester_events.sql",
        "when absences.synced_run_id is null then 'agent_no_longer_synced' else 'removed'",
        "when absences.synced_run_id is null then 'removed' else 'removed'",
    ),
    "copy order: the lowest agent number wins": (
        "transform/macros/kaleyra_rcs_copy_order.sql",
        "synced_agent_no desc, position desc",
        "synced_agent_no asc, position desc",
    ),
    "history: a period dated a second before its tester was received": (
        "transform/models/marts/kaleyra_rcs__tester_status_history.sql",
        "    event_at as valid_from,\n",
        "    {{ dbt.dateadd('second', -1, 'event_at') }} as valid_from,\n",
    ),
    "tap: a held-back agent is counted as synced too": (
        "tap_kaleyra_rcs/streams.py",
        "            summary.held_agents.append(batch.agent)\n",
        "            summary.held_agents.append(batch.agent)\n            summary.count(batch)\n",
    ),
    "tap: an empty answer is not remembered, so a second one is held back too": (
        "tap_kaleyra_rcs/streams.py",
        "            state[TESTERS_LAST_ANSWERED] = len(batch.records)\n",
        (
            "            state[TESTERS_LAST_ANSWERED] = len(batch.records) or state.get("
            "TESTERS_LAST_ANSWERED, 0)\n"
        ),
    ),
}
"""name: (file, the exact text, the bug). Each text occurs once in its file."""
CONTROL = "no bug planted"
"""Soaked first: if the unchanged copy fails, a caught mutant would prove nothing."""


def copy_project(into: Path) -> None:
    """The checkout in ``into``, its tap plugin re-pointed there; the rest linked."""
    ignored = shutil.ignore_patterns(".venv", ".meltano", ".git", "output", "target", "logs",
                                     "__pycache__", ".mypy_cache", ".ruff_cache")  # fmt: skip
    shutil.copytree(ROOT, into, ignore=ignored, symlinks=True)
    (into / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    meltano = into / ".meltano"
    meltano.mkdir()
    for name in ("loaders", "utilities", "mappers", "transformers"):
        if (ROOT / ".meltano" / name).exists():
            (meltano / name).symlink_to(ROOT / ".meltano" / name, target_is_directory=True)
    shutil.copytree(ROOT / TAP_PLUGIN, into / TAP_PLUGIN, symlinks=True)
    # The plugin is an editable install of the checkout: point it, and its scripts'
    # interpreter lines, at the copy.
    venv = into / TAP_PLUGIN / "venv"
    for path in [*venv.glob("lib/python*/site-packages/*.pth"), *venv.glob("bin/*")]:
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_bytes()
        if str(ROOT).encode() in text:
            path.write_bytes(text.replace(str(ROOT).encode(), str(into).encode()))


def soak(folder: Path, seed: int, runs: int) -> tuple[int | None, str]:
    """Soak the copy; the run the first violation was found at (None: none), and that line."""
    done = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "scripts/soak.py", "--seed", str(seed),
         "--runs", str(runs), "--stop-at-first"],
        cwd=folder, capture_output=True, text=True, check=False,
    )  # fmt: skip
    first = re.search(r"VIOLATION seed \d+ run (\d+): (.*)", done.stdout)
    if first:
        # The first violation's line, and for a failed job the lines naming what failed.
        detail = done.stdout[first.start(2) :].split("\nVIOLATION")[0].split("\n==>")[0]
        failing = [line.strip() for line in detail.splitlines() if " FAIL " in line]
        return int(first.group(1)), "; ".join([first.group(2), *failing[:2]])[:400]
    return None, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]


def fingerprints() -> dict[str, bytes]:
    """The shared plugins' install fingerprints: a soak in a copy must never reinstall them."""
    return {
        str(path): path.read_bytes()
        for path in (ROOT / ".meltano").glob("*/*/venv/.meltano_plugin_fingerprint")
    }


def main() -> int:
    """The unchanged copy first (it must pass), then every mutant in turn."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", help="only the mutants whose name contains this")
    parser.add_argument(
        "--record", action="store_true", help="write the results to docs/soak_mutants.json"
    )
    args = parser.parse_args()
    caught = 0
    results: list[dict[str, object]] = []
    chosen = {k: v for k, v in MUTANTS.items() if not args.only or args.only in k}
    shared = fingerprints()
    for name, (relative, text, bug) in {CONTROL: ("", "", ""), **chosen}.items():
        with tempfile.TemporaryDirectory(prefix="kaleyra-mutant-") as scratch:
            folder = Path(scratch) / "project"
            copy_project(folder)
            if relative:
                target = folder / relative
                source = target.read_text(encoding="utf-8")
                if source.count(text) != 1:
                    print(f"{name}: the text to change is not in {relative} once; skipped")
                    continue
                target.write_text(source.replace(text, bug), encoding="utf-8")
            started = time.monotonic()
            run, line = soak(folder, args.seed, args.runs)
            seconds = time.monotonic() - started
        if fingerprints() != shared:
            print("a shared plugin was reinstalled during the soak: stopping", flush=True)
            return 2
        if name == CONTROL:
            print(f"CONTROL {name}: {'clean' if run is None else 'VIOLATION at run ' + str(run)}"
                  f" ({seconds:.0f} s): {line}", flush=True)  # fmt: skip
            if run is not None:
                return 2
            continue
        results.append({"bug": name, "file": relative, "caught_at_run": run})
        if run is None:
            print(f"MISSED  {name} ({args.runs} runs, {seconds:.0f} s): {line}", flush=True)
        else:
            caught += 1
            print(f"CAUGHT  {name}: at run {run} ({seconds:.0f} s): {line}", flush=True)
    if args.record:
        RECORD.write_text(
            json.dumps(
                {"seed": args.seed, "runs": args.runs, "commit": commit(), "bugs": results},
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    print(
        f"soak mutants: {caught} of {len(chosen)} caught (seed {args.seed}, up to {args.runs} runs)"
    )
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
