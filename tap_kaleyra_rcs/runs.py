"""What one successful run did: its summary line, and the two run-log streams.

The testers stream is full table, and most targets cannot tell from its rows
alone which testers the latest run saw (target-duckdb ignores ACTIVATE_VERSION).
So a run that synced every agent ends with one ``testers_sync_runs`` record (when
it started and finished, what it found) and one ``testers_sync_run_agents`` record
per agent it synced completely. A tester is removed only when a successful run
that synced its agent did not see it; a failed or interrupted run writes neither,
so it never removes anything.
"""

from __future__ import annotations

import struct
import time
import typing as t
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import repeat
from operator import add, and_

from singer_sdk import Stream

from tap_kaleyra_rcs.errors import redact
from tap_kaleyra_rcs.records import load_schema

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_kaleyra_rcs.drift import SchemaChange
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
        self.duplicate_ids = 0
        self.synced_agents: list[SyncedAgent] = []
        self.skipped_agents: list[str] = []
        """Agents Kaleyra does not know, left out with ``unknown_agents: skip``."""
        self.held_agents: list[str] = []
        """Agents whose testers all vanished in one answer: not counted as synced."""
        self.schema_changes: dict[SchemaChange, str] = {}
        """Each way the run's answers departed from the schema, with the first agent."""
        self._seen = SeenIds()

    def count(self, batch: AgentTesters) -> list[Duplicate]:
        """Add one agent's batch; return the testers whose id the run had already seen.

        An id listed twice (under one agent, or under two) is a duplicate every
        time after the first. All of them are loaded: the models decide which
        one describes the tester (see docs/models.md), and the run says so.
        """
        self.synced_agents.append(SyncedAgent(batch.agent, batch.extracted_at, len(batch.records)))
        seen_before = self._seen.add(batch.agent, [record["id"] for record in batch.records])
        duplicates = [Duplicate(tester_id, first, batch.agent) for tester_id, first in seen_before]
        self.duplicate_ids += len(duplicates)
        return duplicates

    def finish(self, retries: int) -> FinishedRun:
        """The run's summary, now that every agent has synced."""
        return FinishedRun(
            run_id=self.run_id,
            started_at=self.started_at,
            finished_at=_utc_now(),
            seconds=time.monotonic() - self._started,
            agents=len(self.synced_agents),
            empty_agents=sum(not synced.testers for synced in self.synced_agents),
            testers=sum(synced.testers for synced in self.synced_agents),
            retries=retries,
            duplicate_ids=self.duplicate_ids,
            synced_agents=tuple(self.synced_agents),
            skipped_agents=tuple(self.skipped_agents),
            held_agents=tuple(self.held_agents),
            schema_changes=len(self.schema_changes),
        )


_ENTRY = 12
"""Bytes a tester takes in :class:`SeenIds`: its 64-bit fingerprint, then its first agent."""
_fingerprint = struct.Struct("<q").pack
"""A hash's 8 bytes: what a bucket holds for an id."""


class SeenIds:
    """Every tester id of a run as a 64-bit fingerprint, with the agent that first listed it.

    A dict of every id and its first agent took about 120 bytes a tester (the
    id string, the entry): 240 MB at 2,000,000 testers. Here each id is its
    64-bit hash (SipHash, keyed afresh by every process unless
    ``PYTHONHASHSEED`` is set), kept as 8 bytes followed by the first agent's
    place in the run as 4, in one of 65,536 buckets chosen by the hash's low
    bits: about 13 bytes a tester and 4 MB for the buckets (17 bytes a tester at
    1,000,000, 15 at 2,000,000). A batch is looked up and added with one
    ``find`` and one ``extend`` an id, run by C loops (``map``); only a batch
    with a duplicate (an id found, or listed twice in it) takes a Python loop.

    Two different ids that share a fingerprint would be reported as one
    duplicate (never missed: the same id always has the same fingerprint). With
    n ids that happens with probability about n^2 / 2^65: once in about 9
    million runs of 2,000,000 testers. Only the warning and the run record's
    ``duplicate_ids`` rest on it; the models find duplicates from the
    observations themselves.
    """

    BUCKETS = 1 << 16

    def __init__(self) -> None:
        """Empty: no agent, no id."""
        self.agents: list[str] = []
        self._buckets = [bytearray() for _ in range(self.BUCKETS)]

    def add(self, agent: str, tester_ids: list[str]) -> list[tuple[str, str]]:
        """Note one agent's ids; return each seen before, with the agent that listed it first."""
        owner = len(self.agents).to_bytes(_ENTRY - 8, "little")
        self.agents.append(agent)
        hashes = list(map(hash, tester_ids))
        keys = list(map(_fingerprint, hashes))
        held = list(map(self._buckets.__getitem__, map(and_, hashes, repeat(self.BUCKETS - 1))))
        found_at = max(map(bytearray.find, held, keys), default=-1)
        if found_at < 0 and len(set(hashes)) == len(hashes):
            # The usual batch: no id found, none listed twice; all added by C loops.
            deque(map(bytearray.extend, held, map(add, keys, repeat(owner))), maxlen=0)
            return []
        # A batch with a duplicate (or a key found straddling two entries): one by one.
        seen_before = []
        for tester_id, key, bucket in zip(tester_ids, keys, held, strict=True):
            at = bucket.find(key)
            while at >= 0 and at % _ENTRY:  # a match straddling two entries: look on
                at = bucket.find(key, at + 1)
            if at < 0:
                bucket.extend(key + owner)
            else:
                first = int.from_bytes(bucket[at + 8 : at + _ENTRY], "little")
                seen_before.append((tester_id, self.agents[first]))
        return seen_before


class SyncedAgent(t.NamedTuple):
    """One agent a run synced completely: when its answer arrived, and how many testers.

    A named tuple, as :class:`Duplicate`: cheaper to create at start-up than a dataclass.
    """

    agent: str
    received_at: str
    testers: int


class Duplicate(t.NamedTuple):
    """A tester whose id the run had already seen, under ``first_agent``."""

    tester_id: str
    first_agent: str
    agent: str


MOST_DUPLICATES_NAMED = 10
"""A warning names at most this many duplicate ids; it counts the rest."""


def duplicates_warning(duplicates: list[Duplicate]) -> str:
    """The WARNING for one agent's duplicate ids, e.g. ``... id 'a' (also under 48900)``."""
    named = ", ".join(
        f"{redact(repr(d.tester_id))} (also under {d.first_agent})"
        for d in duplicates[:MOST_DUPLICATES_NAMED]
    )
    more = len(duplicates) - MOST_DUPLICATES_NAMED
    rest = f" and {more} more" if more > 0 else ""
    return (
        f"agent {duplicates[0].agent}: {len(duplicates)} tester id(s) already seen in this "
        f"run: {named}{rest}. Every copy is loaded; the models keep the one under the "
        "highest agent number, the last in its list (docs/models.md). Ask Kaleyra why "
        "one tester is listed twice."
    )


def held_back_warning(batch: AgentTesters, last_answered: int) -> str:
    """The WARNING for an agent whose testers all vanished in one answer."""
    answered = "data: null" if batch.answer == "null" else "an empty list"
    return (
        f"agent {batch.agent}: answered {answered} after listing {last_answered} "
        "testers in its last answer; not counted as synced, so none of its testers is "
        "removed in this run. If the agent really has no testers now, the next run "
        "counts it (or set trust_empty_answers: true)"
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
    duplicate_ids: int
    synced_agents: tuple[SyncedAgent, ...]
    skipped_agents: tuple[str, ...] = ()
    held_agents: tuple[str, ...] = ()
    schema_changes: int = 0

    def line(self) -> str:
        """E.g. ``synced 240 testers from 6 agents (0 with no testers) in 1.4 s; 0 retries; 0 duplicate ids``.

        Agents left out (unknown to Kaleyra, or held back after a sudden empty
        answer) are named after it, so the morning's reader sees them.
        """  # noqa: E501
        text = (
            f"synced {_count(self.testers, 'tester')} from {_count(self.agents, 'agent')} "
            f"({self.empty_agents} with no testers) in {self.seconds:.1f} s; "
            f"{_count(self.retries, 'retry', 'retries')}; "
            f"{_count(self.duplicate_ids, 'duplicate id')}"
        )
        if self.schema_changes:
            text += f"; {_count(self.schema_changes, 'schema change')} (named above)"
        if self.skipped_agents:
            text += f"; skipped as unknown to Kaleyra: {', '.join(self.skipped_agents)}"
        if self.held_agents:
            text += f"; not synced, testers all gone at once: {', '.join(self.held_agents)}"
        return text

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
            "duplicate_ids": self.duplicate_ids,
            "skipped_agents": ",".join(self.skipped_agents) or None,
            "held_agents": ",".join(self.held_agents) or None,
            "schema_changes": self.schema_changes,
        }

    def agent_records(self) -> list[dict[str, t.Any]]:
        """The run's ``testers_sync_run_agents`` records: one per agent it synced."""
        return [
            {
                "run_id": self.run_id,
                "run_started_at": self.started_at,
                "agent_no": synced.agent,
                "received_at": synced.received_at,
                "testers": synced.testers,
            }
            for synced in self.synced_agents
        ]


def _count(number: int, one: str, many: str | None = None) -> str:
    """``1 agent``, ``2 agents``: the summary line is read by people."""
    return f"{number} {one if number == 1 else many or one + 's'}"


class _RunLogStream(Stream):
    """A stream written once per run that synced every agent of ``testers``.

    Synced after ``testers`` (the SDK syncs streams in the order of their
    names), and only when that stream completed in this run: with ``testers``
    not synced, or in a ``--test`` run, it sends nothing.
    """

    __test__ = False  # not a pytest test class, despite the name

    replication_key = None

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: the rows of earlier runs are history, not rows this run replaces."""
        return False

    def run_records(self, run: FinishedRun) -> list[dict[str, t.Any]]:
        """The records ``run`` adds to this stream."""
        raise NotImplementedError

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:  # noqa: ARG002
        """The ``testers`` stream's completed run, if it completed in this process."""
        testers = self._tap.streams.get("testers")
        completed: FinishedRun | None = getattr(testers, "completed_run", None)
        if completed is not None:
            yield from self.run_records(completed)


class TestersSyncRunsStream(_RunLogStream):
    """One record per run that synced every agent of the ``testers`` stream."""

    name = "testers_sync_runs"
    """Must sort after ``testers``; ``Tap.load_streams``, which sorts, is final."""
    primary_keys: t.ClassVar[list[str]] = ["run_id"]
    schema = load_schema("testers_sync_runs")

    def run_records(self, run: FinishedRun) -> list[dict[str, t.Any]]:
        """The run's one record."""
        return [run.record()]


class TestersSyncRunAgentsStream(_RunLogStream):
    """One record per agent that a successful run synced completely.

    Which agents a run synced is what tells a removed tester (its agent was
    synced and did not list it) from one whose agent is no longer synced.
    """

    name = "testers_sync_run_agents"
    """Must sort after ``testers``."""
    primary_keys: t.ClassVar[list[str]] = ["run_id", "agent_no"]
    schema = load_schema("testers_sync_run_agents")

    def run_records(self, run: FinishedRun) -> list[dict[str, t.Any]]:
        """One record per agent of the run."""
        return run.agent_records()
