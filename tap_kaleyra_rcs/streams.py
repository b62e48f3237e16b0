"""The ``testers`` stream: one partition per configured agent, full table."""

from __future__ import annotations

import time
import typing as t

from singer_sdk import Stream

from tap_kaleyra_rcs.client import TestersClient
from tap_kaleyra_rcs.prefetch import OrderedPrefetcher
from tap_kaleyra_rcs.records import AgentTesters, build_records, load_schema

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_kaleyra_rcs.settings import Settings
    from tap_kaleyra_rcs.tap import TapKaleyraRcs

PARTITION_KEY = "agent_no"
"""The partition key is also the record field, so the SDK's own "add the
partition context to the record" step fills ``agent_no`` rather than adding a
column the schema doesn't have."""


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
        """Bind the stream to the tap's validated settings."""
        super().__init__(tap)
        self._prefetcher: OrderedPrefetcher[AgentTesters] | None = None
        self._warned_fields: set[str] = set()
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

    def _start_prefetcher(self) -> OrderedPrefetcher[AgentTesters]:
        settings = self.settings
        client = TestersClient(
            settings,
            logger=self.logger,
            user_agent=f"{self._tap.name}/{self._tap.plugin_version}",
        )

        def fetch_agent(agent: str) -> AgentTesters:
            # Runs on a worker thread: HTTP and parsing only, no SDK state.
            return build_records(agent, client.fetch(agent))

        workers = settings.max_concurrent_agents
        return OrderedPrefetcher(
            settings.agent_numbers, fetch_agent, workers=workers, window=2 * workers
        )

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:
        """Yield one agent's testers, fetched ahead by the worker threads."""
        if context is None:  # pragma: no cover - the stream is always partitioned
            msg = "the testers stream is synced one agent partition at a time"
            raise RuntimeError(msg)
        if self._prefetcher is None:
            self._prefetcher = self._start_prefetcher()
        batch = self._prefetcher.take(context[PARTITION_KEY])
        for name in sorted(batch.unknown_fields - self._warned_fields):
            self.logger.warning(
                "The API returned a field '%s' that the testers schema does not "
                "have; it is left out of the records. (Warned once per field.)",
                name,
            )
            self._warned_fields.add(name)
        self.logger.info("agent %s: %d testers", batch.agent, len(batch.records))
        return batch.records

    def finalize_state_progress_markers(self, state: dict[str, t.Any] | None = None) -> None:
        """Called by the SDK only after every partition synced without error.

        That is the one safe moment to activate the version: a target may now
        treat the testers it did not receive in this run as deleted.
        """
        if self._run_version is not None and self.selected:
            self._write_activate_version_message(self._run_version)
        super().finalize_state_progress_markers(state)
