"""Where the per-record time goes: the tap's stages against the hand-written loop's.

    .venv/bin/python benchmarks/stages.py

In process, no HTTP: the same 100 x 1,000 sandbox bodies, medians of five runs.
The output goes to a sink that keeps nothing.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import time

from tap_kaleyra_rcs.client import decode_testers
from tap_kaleyra_rcs.output import SingerOutput, lines_of
from tap_kaleyra_rcs.records import build_records
from tap_kaleyra_rcs.runs import RunSummary
from tap_kaleyra_rcs.sandbox import Scenario

SCENARIO = Scenario({"agents": 100, "testers_per_agent": 1000})
BODIES = [SCENARIO.success_body(agent) for agent in SCENARIO.agents]


class _Sink:
    """A stdout whose buffer discards what it is given."""

    class buffer:  # noqa: N801 - the attribute's name
        @staticmethod
        def write(data: bytes) -> int:
            return len(data)

    @staticmethod
    def flush() -> None:
        pass


def one_run() -> list[float]:
    marks = [time.perf_counter()]
    raws = [
        decode_testers(body, agent) for body, agent in zip(BODIES, SCENARIO.agents, strict=True)
    ]
    marks.append(time.perf_counter())
    batches = [build_records(agent, raw) for agent, raw in zip(SCENARIO.agents, raws, strict=True)]
    marks.append(time.perf_counter())
    stdout, sys.stdout = sys.stdout, _Sink()  # type: ignore[assignment]
    try:
        output, run = SingerOutput(), RunSummary()
        for batch in batches:
            output.write_records("testers", lines_of(batch), batch.extracted_at)
        output.flush()
        marks.append(time.perf_counter())
        for batch in batches:
            fields = {"run_id": run.run_id, "run_started_at": run.started_at}
            fields["synced_agent_no"] = batch.agent
            output.write_observations(
                "testers_observations", lines_of(batch), fields, batch.extracted_at
            )
        output.flush()
        marks.append(time.perf_counter())
        for batch in batches:
            run.count(batch)
        marks.append(time.perf_counter())
    finally:
        sys.stdout = stdout
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
        "tap: decode the 100 bodies (msgspec, into the schema's types)",
        "tap: build_records (created_at, ids and agents checked)",
        "tap: encode and queue the testers' RECORD lines",
        "tap: splice and queue the observations' RECORD lines",
        "tap: fingerprint every id for duplicate naming",
        "loop: json.loads of the 100 bodies",
        "loop: json.dumps, one RECORD per tester",
    ]
    for index, name in enumerate(names):
        print(f"| {name} | {statistics.median(run[index] for run in runs) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
