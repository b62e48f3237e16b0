"""What one successful run did: its summary line, and the ``testers_sync_runs`` stream.

The testers stream is full table, and most targets cannot tell from its rows
alone which testers the latest run saw (target-duckdb ignores ACTIVATE_VERSION).
So a run that synced every agent ends with one ``testers_sync_runs`` record: when it
started and finished, and what it found. Every tester of that run was extracted
at or after ``started_at``; a tester last extracted before the latest run's
``started_at`` was not seen by it. A failed or interrupted run writes no record.
"""

from __future__ import annotations

import time
import typing as t
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from singer_sdk import Stream

from tap_kaleyra_rcs.records import load_schema

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_kaleyra_rcs.records import AgentTesters


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat()


class RunSummary:
    """What a run has done so far: created when it starts, before its first request.

    Every tester of the run is extracted after ``started_at``. :meth:`finish`
    turns it into the :class:`FinishedRun` that a run which synced every agent
    logs and records.
    """

    def __init__(self) -> None:
        """Start now: nothing counted yet."""
        self.run_id = str(uuid.uuid4())
        self.started_at = _utc_now()
        self._started = time.monotonic()
        self.testers = 0
        self.agents = 0
        self.empty_agents = 0

    def count(self, batch: AgentTesters) -> None:
        """Add one agent's batch."""
        self.agents += 1
        self.testers += len(batch.records)
        self.empty_agents += not batch.records

    def finish(self, retries: int) -> FinishedRun:
        """The run's summary, now that every agent has synced."""
        return FinishedRun(
            run_id=self.run_id,
            started_at=self.started_at,
            finished_at=_utc_now(),
            seconds=time.monotonic() - self._started,
            agents=self.agents,
            empty_agents=self.empty_agents,
            testers=self.testers,
            retries=retries,
        )


@dataclass(frozen=True)
class FinishedRun:
    """A run that synced every agent: its one log line and its ``testers_sync_runs`` record.

    Scheduled runs are read the morning after: one line tells whether the run
    looked normal (how many testers, agents answering empty, retries needed).
    """

    run_id: str
    started_at: str
    finished_at: str
    seconds: float
    agents: int
    empty_agents: int
    testers: int
    retries: int

    def line(self) -> str:
        """E.g. ``synced 240 testers from 6 agents (0 with no testers) in 1.4 s; 0 retries``."""
        return (
            f"synced {self.testers} testers from {self.agents} agents "
            f"({self.empty_agents} with no testers) in {self.seconds:.1f} s; "
            f"{self.retries} retries"
        )

    def record(self) -> dict[str, t.Any]:
        """The run's ``testers_sync_runs`` record."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "agents": self.agents,
            "agents_without_testers": self.empty_agents,
            "testers": self.testers,
            "retries": self.retries,
        }


class TestersSyncRunsStream(Stream):
    """One record per run that synced every agent of the ``testers`` stream.

    Synced after ``testers`` (the SDK syncs streams in the order of their
    names), and only when that stream completed in this run: with ``testers``
    deselected, or in a ``--test`` run, it sends nothing.
    """

    __test__ = False  # not a pytest test class, despite the name

    name = "testers_sync_runs"
    """Must sort after ``testers``; ``Tap.load_streams``, which sorts, is final."""
    primary_keys: t.ClassVar[list[str]] = ["run_id"]
    replication_key = None
    schema = load_schema("testers_sync_runs")

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: the rows of earlier runs are history, not rows this run replaces."""
        return False

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:  # noqa: ARG002
        """The ``testers`` stream's completed run, if it completed in this process."""
        testers = self._tap.streams.get("testers")
        completed: FinishedRun | None = getattr(testers, "completed_run", None)
        if completed is not None:
            yield completed.record()
