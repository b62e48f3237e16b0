"""What starting the tap costs before its first request, and how much of it is the tap's own.

    .venv/bin/python benchmarks/startup.py [--runs 15]

Each case is a new interpreter, run N times with the cases interleaved (so every
case meets the same machine load); medians of the CPU time each child used. The
command imports the SDK with the garbage collector paused and the modules in
``tap_kaleyra_rcs.cli.SDK_IMPORTS_ON_FIRST_USE`` deferred
(``tap_kaleyra_rcs.startup``), so the tap's own start-up is ``import
tap_kaleyra_rcs.cli`` less the SDK's import done the same way; the SDK's plain
import, and with the pause alone, are shown too, for what each saves.
Then ``-X importtime`` for one import of the tap: the self time of each of its
modules, and the heaviest modules the SDK brings that a tap run never uses.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys

CASES = {
    "python -c pass": "pass",
    "import requests, json (the hand-written loop)": "import requests, json",
    "import singer_sdk": "import singer_sdk",
    "import singer_sdk, collector paused as the tap does": (
        "from tap_kaleyra_rcs.startup import CollectorPaused\n"
        "with CollectorPaused(): import singer_sdk"
    ),
    "import singer_sdk, paused and deferring as the tap does": (
        "from tap_kaleyra_rcs.startup import CollectorPaused, imported_on_first_use\n"
        "from tap_kaleyra_rcs.cli import SDK_IMPORTS_ON_FIRST_USE as DEFERRED\n"
        "with CollectorPaused(), imported_on_first_use(*DEFERRED): import singer_sdk"
    ),
    "import tap_kaleyra_rcs.cli": "import tap_kaleyra_rcs.cli",
}
UNUSED_BY_A_TAP_RUN = (
    "singer_sdk.streams.rest",
    "singer_sdk.streams.graphql",
    "singer_sdk.streams.sql",
    "singer_sdk.helpers._batch",
    "singer_sdk.target_base",
    "singer_sdk.mapper_base",
    "singer_sdk.sql",
    "fsspec",
    "upath",
    "joblib",
)


def child_cpu(code: str) -> float:
    """CPU seconds (user + system) of one new interpreter running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_times() -> dict[str, tuple[int, int]]:
    """Module name: (self, cumulative) microseconds, from ``-X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import tap_kaleyra_rcs.cli"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        found[name.strip()] = (int(own), int(cumulative))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    cpu: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(runs):
        for name, code in CASES.items():
            cpu[name].append(child_cpu(code))
    medians = {name: statistics.median(values) * 1000 for name, values in cpu.items()}
    print(f"CPU per new interpreter, median of {runs} interleaved runs:")
    for name, value in medians.items():
        print(f"  {value:6.0f} ms  {name}")
    paused = medians["import singer_sdk, collector paused as the tap does"]
    sdk = medians["import singer_sdk, paused and deferring as the tap does"]
    tap = medians["import tap_kaleyra_rcs.cli"]
    print(f"  {tap - sdk:6.0f} ms  the tap's own start-up above the SDK's import (as the tap does)")
    saved = medians["import singer_sdk"] - paused
    print(f"  {saved:6.0f} ms  what pausing the collector saves on the SDK's import")
    print(f"  {paused - sdk:6.0f} ms  what deferring the unused modules saves besides")

    times = import_times()
    ours = {name: own for name, (own, _) in times.items() if name.startswith("tap_kaleyra_rcs")}
    print("\n-X importtime, self time of the tap's modules (one run):")
    for name, own in sorted(ours.items(), key=lambda item: -item[1]):
        print(f"  {own / 1000:6.1f} ms  {name}")
    print(f"  {sum(ours.values()) / 1000:6.1f} ms  in all")
    print("\n-X importtime, cumulative, modules the SDK imports that a tap run never uses:")
    for name in UNUSED_BY_A_TAP_RUN:
        if name in times:
            print(f"  {times[name][1] / 1000:6.1f} ms  {name}")
        else:
            print(f"  {'-':>6}     {name} (not imported)")
    print(f"  {times['singer_sdk'][1] / 1000:6.1f} ms  singer_sdk, all of it")


if __name__ == "__main__":
    main()
