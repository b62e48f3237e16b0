"""The ``testers`` stream: one partition per configured agent, full table."""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import logging
import sys
import time
import typing as t
from pathlib import Path

import singer_sdk
from singer_sdk import Stream
from singer_sdk.exceptions import MaxRecordsLimitException

from tap_kaleyra_rcs.client import NoTesterList, TestersClient
from tap_kaleyra_rcs.drift import KEEP, describe, drift_policy
from tap_kaleyra_rcs.errors import AgentRequestFailed, KaleyraError, UnknownAgent
from tap_kaleyra_rcs.output import SingerOutput, lines_of, records_go_out_unchanged
from tap_kaleyra_rcs.phones import phone_hasher
from tap_kaleyra_rcs.prefetch import OrderedPrefetcher
from tap_kaleyra_rcs.records import AgentTesters, build_records, load_schema
from tap_kaleyra_rcs.runs import (
    FinishedRun,
    RunSummary,
    duplicates_warning,
    held_back_warning,
)

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_kaleyra_rcs.settings import Settings
    from tap_kaleyra_rcs.tap import TapKaleyraRcs

TESTERS_LAST_ANSWERED = "testers_last_answered"
"""The partition state's count of the testers the agent listed in its last answer."""

PARTITION_KEY = "agent_no"
"""The partition key is also the record field, so the SDK's own "add the
partition context to the record" step fills ``agent_no`` rather than adding a
column the schema doesn't have."""

ANSWER_BYTES_AHEAD = 8 << 20
"""How many bytes of answers may be read and decoded ahead of what is being sent.

A decoded tester takes about 3.5 times its bytes in the answer, so this is about
30 MB of agents fetched ahead. With 1,000 testers an agent (about 0.2 MB) the
window of ``2 x max_concurrent_agents`` agents binds first, as before; an agent
of 50,000 (about 10 MB) is read once the one before it has been sent, so such
agents are held one at a time.
"""

FAST_PATH_CHECKED_AGAINST = (
    "0.54.9",
    (
        "(self, context: 'types.Context | None' = None, *, write_messages: 'bool' = True)"
        " -> 't.Generator[dict, t.Any, t.Any]'"
    ),
)
"""The singer-sdk version, and the signature of its private ``Stream._sync_records``,
that ``TestersStream._sync_records`` was read against and overrides. The SDK may
change a private method in any release; see the README on upgrading the pin."""


def installed_sdk_version() -> str:
    """The installed singer-sdk's version, read from the ``dist-info`` folder beside it.

    One directory listing instead of ``importlib.metadata.version``, which reads
    every installed distribution's metadata: about 25 ms of every run's start-up.
    Anything but exactly one such folder (another kind of install) falls back to
    ``importlib.metadata``.
    """
    beside = Path(singer_sdk.__file__).resolve().parent.parent
    found = [folder.name for folder in beside.glob("singer_sdk-*.dist-info")]
    if len(found) == 1:
        return found[0].removeprefix("singer_sdk-").removesuffix(".dist-info")
    return importlib.metadata.version("singer-sdk")


def installed_sync_records() -> tuple[str, str]:
    """The installed singer-sdk version and its ``Stream._sync_records`` signature."""
    return (
        installed_sdk_version(),
        str(inspect.signature(Stream._sync_records)),  # noqa: SLF001 - what is overridden
    )


FAST_PATH_SAFE = installed_sync_records() == FAST_PATH_CHECKED_AGAINST
"""False with any other SDK: every record then takes the SDK's own path."""


def writes_directly(output: object, stream: Stream) -> t.TypeGuard[SingerOutput]:
    """Whether ``stream`` may write records to ``output`` directly, past the SDK's record path."""
    return FAST_PATH_SAFE and isinstance(output, SingerOutput) and records_go_out_unchanged(stream)


class _AnticipatedFailures(logging.Filter):
    """Drop the SDK's "unhandled error" line when the error is one we anticipated.

    The SDK logs it for any exception leaving a sync; for a KaleyraError the
    tap's own one-line message follows, and "unhandled" would be untrue. A
    ``--test`` run stops at its record limit by raising too, and succeeds.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = sys.exc_info()[1]
        return not (
            record.levelno == logging.ERROR
            and str(record.msg).startswith("An unhandled error occurred while syncing")
            and (
                isinstance(error, KaleyraError)
                or isinstance(getattr(error, "__cause__", None), MaxRecordsLimitException)
            )
        )


class ObservationWriter(t.Protocol):
    """The ``testers_observations`` stream, as the testers stream uses it."""

    def write_observations(self, batch: AgentTesters, run: RunSummary) -> None:
        """Send every tester of ``batch`` as an observation of ``run``."""


class TestersStream(Stream):
    """RCS test devices registered under each configured agent.

    Full table, never incremental: a tester's status changes without its
    ``created_date`` moving, so no field is a safe bookmark. Warehouses upsert
    on ``id``.
    """

    __test__ = False  # not a pytest test class, despite the name

    name = "testers"
    primary_keys: t.ClassVar[list[str]] = ["id"]
    replication_key = None
    schema = load_schema()

    def __init__(self, tap: TapKaleyraRcs) -> None:
        """Bind the stream to its tap; nothing is fetched before the sync."""
        super().__init__(tap)
        self.logger.addFilter(_AnticipatedFailures())
        self._prefetcher: OrderedPrefetcher[AgentTesters] | None = None
        self._client: TestersClient | None = None
        self._summary: RunSummary | None = None
        self.completed_run: FinishedRun | None = None
        """The run's summary, once every agent has synced (for ``testers_sync_runs``)."""
        self._drift = KEEP
        # Records carry this version; it is activated only once every agent has
        # synced (see finalize_state_progress_markers), never at the start.
        self._run_version: int | None = None
        if self.activates_version_at_end:
            self._run_version = self._stream_version = int(time.time() * 1000)

    @property
    def settings(self) -> Settings:
        """The tap's validated settings."""
        return t.cast("TapKaleyraRcs", self._tap).settings

    @property
    def partitions(self) -> list[dict[str, t.Any]]:
        """One context per agent, in the configured order."""
        return [{PARTITION_KEY: agent} for agent in self.settings.agent_numbers]

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never let the SDK emit ``ACTIVATE_VERSION`` when the stream *starts*.

        Activated at the start, a version would make a target mark as deleted
        every tester of every agent that a failing run then never reaches.
        """
        return False

    @property
    def activates_version_at_end(self) -> bool:
        """The user's ``emit_activate_version_messages`` setting."""
        return bool(self.config.get("emit_activate_version_messages", False))

    def _take_batch(self, agent: str) -> AgentTesters:
        """The next agent's testers, fetched ahead on worker threads."""
        if self._prefetcher is None:
            settings = self.settings
            self._summary = RunSummary()
            self._client = client = TestersClient(
                settings,
                logger=self.logger,
                user_agent=f"{self._tap.name}/{self._tap.plugin_version}",
            )
            phones = phone_hasher(settings.phoneno_hash_key, self.logger)

            self._drift = drift = drift_policy(
                settings.schema_changes, self.config, hashes_phones=phones is not None
            )

            def fetch_agent(agent: str) -> AgentTesters:
                # Runs on a worker thread: HTTP and parsing only, no SDK state.
                try:
                    raw = client.fetch(agent)
                except UnknownAgent as unknown:
                    if settings.unknown_agents != "skip":
                        raise
                    self.logger.warning(
                        "agent %s: Kaleyra does not know it (%s); left out of this run "
                        "(unknown_agents: skip): it counts as not synced and its testers "
                        "are kept as last seen. Remove it from agent_numbers if it is gone",
                        agent,
                        unknown.answer,
                    )
                    return AgentTesters(agent, [], answer="unknown")
                batch = build_records(agent, raw, phones, drift)
                if isinstance(raw, NoTesterList):
                    batch.answer = "null"
                return batch

            if settings.repeated_agent_numbers:
                self.logger.warning(
                    "agent_numbers lists %s more than once; each agent is synced once",
                    ", ".join(settings.repeated_agent_numbers),
                )

            workers = settings.max_concurrent_agents
            self._prefetcher = OrderedPrefetcher(
                settings.agent_numbers,
                fetch_agent,
                workers=workers,
                window=2 * workers,
                budget=ANSWER_BYTES_AHEAD,
            )
        batch = self._prefetcher.take(agent)
        summary = t.cast("RunSummary", self._summary)
        for change, detail in batch.changes.items():
            if change not in summary.schema_changes:
                summary.schema_changes[change] = batch.agent
                self.logger.warning("%s", describe(change, detail, batch.agent, self._drift))
        if batch.answer != "unknown":
            null = " (data: null, read as no testers)" if batch.answer == "null" else ""
            self.logger.info("agent %s: %d testers%s", batch.agent, len(batch.records), null)
        return batch

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Yield one agent's testers (the SDK's path: stream maps, selection...)."""
        if context is None:  # pragma: no cover - the stream is always partitioned
            msg = "the testers stream is synced one agent partition at a time"
            raise RuntimeError(msg)
        batch = self._take_batch(context[PARTITION_KEY])
        with self._whole_agent():
            yield from batch.records
            self._handed_over(batch)

    def _whole_agent(self) -> t.ContextManager[None]:
        """An agent's testers and observations go out together, even on a signal."""
        output = self._tap.message_writer
        return output.whole() if isinstance(output, SingerOutput) else contextlib.nullcontext()

    def _handed_over(self, batch: AgentTesters) -> None:
        """Note that every record of ``batch`` went out; after the last agent, the run is done.

        A failure, a signal or a ``--test`` record limit stops the sync before
        the last agent's records are all out, so no run is recorded then.
        """
        summary = t.cast("RunSummary", self._summary)
        for observations in self.child_streams:
            t.cast("ObservationWriter", observations).write_observations(batch, summary)
        state = self.get_context_state({PARTITION_KEY: batch.agent})
        if batch.answer == "unknown":
            summary.skipped_agents.append(batch.agent)
        elif self._vanished_at_once(batch, state.get(TESTERS_LAST_ANSWERED)):
            summary.held_agents.append(batch.agent)
            self.logger.warning("%s", held_back_warning(batch, state[TESTERS_LAST_ANSWERED]))
        elif duplicates := summary.count(batch):
            self.logger.warning("%s", duplicates_warning(duplicates))
        if batch.answer != "unknown":
            state[TESTERS_LAST_ANSWERED] = len(batch.records)
        if batch.agent == self.settings.agent_numbers[-1]:
            if len(summary.skipped_agents) == len(self.settings.agent_numbers):
                msg = (
                    "Kaleyra knows none of the agents in agent_numbers: check sid and pod "
                    "(or base_url), and the agent numbers"
                )
                raise AgentRequestFailed(msg)
            self.completed_run = summary.finish(t.cast("TestersClient", self._client).retries)

    def _vanished_at_once(self, batch: AgentTesters, last_answered: object) -> bool:
        """Whether every tester of an agent that had some vanished in this one answer.

        A gateway or a Kaleyra bug answering ``data: null`` or ``[]`` would
        otherwise make the models and ``ACTIVATE_VERSION`` remove every tester of
        the agent. Unless ``trust_empty_answers``, the first such answer is held
        back: the agent counts as not synced. The state then records 0 testers,
        so the next run's answer is believed.
        """
        return (
            not batch.records
            and isinstance(last_answered, int)
            and last_answered > 0
            and not self.settings.trust_empty_answers
        )

    def _sync_records(
        self,
        context: Context | None = None,
        *,
        write_messages: bool = True,
    ) -> t.Generator[dict[str, t.Any], t.Any, t.Any]:
        """Sync every agent; the SDK's per-record machinery only where it is needed.

        The SDK's loop conforms each value to the schema, applies selection and
        stream maps, and builds, encodes and flushes one message per record:
        several times the cost of the HTTP and parsing. Records from
        ``build_records`` already match the schema exactly, so when nothing
        needs transforming (no stream map, no flattening, no deselected field,
        no record limit) each agent's RECORD lines are encoded in one go and
        written in large chunks, with the same messages, metrics and state.
        """
        output = self._tap.message_writer
        if not (write_messages and writes_directly(output, self)):
            yield from super()._sync_records(context, write_messages=write_messages)
            return
        record_counter = self.get_record_counter()
        timer = self.get_sync_timer()
        with record_counter, timer:
            for partition in [context] if context is not None else self.partitions:
                record_counter.with_context(partition)
                timer.with_context(partition)
                batch = self._take_batch(partition[PARTITION_KEY])
                with output.whole():
                    output.write_records(
                        self.name, lines_of(batch), batch.extracted_at, self._run_version
                    )
                    self.state_manager.is_flushed = False
                    output.flush()
                    self._handed_over(batch)
                record_counter.increment(len(batch.records))
                self._finalize_state(self.get_context_state(partition))
                del batch  # not kept while the next agent is awaited and received
        if context is None:
            self._finalize_state(self.stream_state)
        self._write_state_message()

    def generate_child_contexts(
        self,
        record: dict[str, t.Any],  # noqa: ARG002
        context: Context | None,  # noqa: ARG002
    ) -> t.Iterable[Context | None]:
        """None: the child stream, ``testers_observations``, is written a batch at a time.

        :meth:`_handed_over` sends each agent's observations once its testers
        are out, so a run that fails later has still sent what it received.
        """
        return ()

    def finalize_state_progress_markers(self, state: dict[str, t.Any] | None = None) -> None:
        """Called by the SDK only after every partition synced without error.

        That is the one safe moment to activate the version: a target may now
        treat the testers it did not receive in this run as deleted.
        """
        held = self.completed_run.held_agents if self.completed_run else ()
        if held and self._run_version is not None:
            self.logger.warning(
                "No ACTIVATE_VERSION sent: agent(s) %s answered no testers after having "
                "some, so no tester is marked deleted in this run (trust_empty_answers)",
                ", ".join(held),
            )
        elif self._run_version is not None and self.selected:
            self._write_activate_version_message(self._run_version)
        super().finalize_state_progress_markers(state)
        if self.completed_run is not None:
            self.logger.info("%s", self.completed_run.line())
