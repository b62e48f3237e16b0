"""Where the per-record time goes: the tap's stages against the hand-written loop's.

    .venv/bin/python benchmarks/stages.py

In process, no HTTP: the same 100 x 1,000 sandbox bodies, medians of five runs.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time

import msgspec

from tap_kaleyra_rcs.client import decode_testers
from tap_kaleyra_rcs.output import LINES_PER_WRITE
from tap_kaleyra_rcs.records import build_records
from tap_kaleyra_rcs.sandbox import Scenario

SCENARIO = Scenario({"agents": 100, "testers_per_agent": 1000})
BODIES = [SCENARIO.success_body(agent) for agent in SCENARIO.agents]
ENCODE_LINES = msgspec.json.Encoder().encode_lines


def one_run() -> list[float]:
    marks = [time.perf_counter()]
    raws = [
        decode_testers(body, agent) for body, agent in zip(BODIES, SCENARIO.agents, strict=True)
    ]
    marks.append(time.perf_counter())
    batches = [build_records(agent, raw) for agent, raw in zip(SCENARIO.agents, raws, strict=True)]
    marks.append(time.perf_counter())
    for batch in batches:
        for start in range(0, len(batch.records), LINES_PER_WRITE):
            ENCODE_LINES(batch.records[start : start + LINES_PER_WRITE])
    marks.append(time.perf_counter())
    documents = [json.loads(body) for body in BODIES]
    marks.append(time.perf_counter())
    for document in documents:
        for tester in document["data"]:
            json.dumps(
                {
                    "type": "RECORD",
                    "stream": "testers",
                    "record": tester,
                    "time_extracted": "2026-01-01T00:00:00+00:00",
                }
            )
    marks.append(time.perf_counter())
    return [later - earlier for earlier, later in itertools.pairwise(marks)]


def main() -> None:
    runs = [one_run() for _ in range(5)]
    names = [
        "tap: msgspec decode of the 100 bodies",
        "tap: build_records (type checks, created_at)",
        "tap: encode the RECORD lines",
        "loop: json.loads of the 100 bodies",
        "loop: json.dumps, one RECORD per tester",
    ]
    for index, name in enumerate(names):
        print(f"| {name} | {statistics.median(run[index] for run in runs) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
