"""The ``testers_observations`` stream: every tester every run received, never overwritten.

The ``testers`` table holds one row per tester, upserted on ``id``: it says what
each tester looks like now and forgets every earlier state. Each observation row
is one tester as one agent's answer listed it in one run, keyed by
``(run_id, synced_agent_no, position)``, so a target that upserts on the key
(every target this project configures) only ever adds rows. The models rebuild
all history from these rows (docs/models.md).

Observations are sent while ``testers`` syncs, right after each agent's testers,
so a run that fails at a later agent has still sent what it received: that is
history too. The stream never sends ``ACTIVATE_VERSION``: earlier runs' rows are
not rows this run replaces.
"""

from __future__ import annotations

import typing as t

from singer_sdk import Stream

from tap_kaleyra_rcs.output import lines_of
from tap_kaleyra_rcs.records import load_schema
from tap_kaleyra_rcs.streams import TestersStream, writes_directly

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_kaleyra_rcs.records import AgentTesters
    from tap_kaleyra_rcs.runs import RunSummary


RUN_FIELDS = ("run_id", "run_started_at", "synced_agent_no", "position", "received_at")
"""What an observation adds to a tester record."""
_NOT_INHERITED = ("__alias__", "__source__", "__key_properties__")


def with_inherited_stream_map(stream_maps: dict[str, t.Any]) -> dict[str, t.Any]:
    """``stream_maps`` where ``testers_observations`` follows the map given for ``testers``.

    A user who hashes or drops ``phoneno`` in ``testers`` expects it hashed or
    dropped wherever the testers land, observations included. So unless
    ``testers_observations`` has a map of its own, it gets the testers map's
    property mappings and filter (not its alias, source or keys); with
    ``__else__`` the run fields are kept as they are.
    """
    if TestersStream.name not in stream_maps or TestersObservationsStream.name in stream_maps:
        return stream_maps
    inherited = testers = stream_maps[TestersStream.name]
    if isinstance(testers, dict):
        inherited = {k: v for k, v in testers.items() if k not in _NOT_INHERITED}
        if "__else__" in inherited:
            inherited.update({field: field for field in RUN_FIELDS})
    return {**stream_maps, TestersObservationsStream.name: inherited}


def observations(batch: AgentTesters, run: RunSummary) -> list[dict[str, t.Any]]:
    """One observation record per tester of ``batch``, in the agent's order."""
    received_at = batch.extracted_at
    return [
        {
            "run_id": run.run_id,
            "run_started_at": run.started_at,
            "synced_agent_no": batch.agent,
            "position": position,
            "received_at": received_at,
            **tester,
        }
        for position, tester in enumerate(batch.records)
    ]


class TestersObservationsStream(Stream):
    """Every tester every run received, with the run and the time it arrived.

    A child of ``testers`` in the SDK's sense: selecting it alone still makes
    the tap fetch the testers, without sending the ``testers`` stream itself.
    """

    __test__ = False  # not a pytest test class, despite the name

    name = "testers_observations"
    parent_stream_type = TestersStream
    primary_keys: t.ClassVar[list[str]] = ["run_id", "synced_agent_no", "position"]
    replication_key = None
    state_partitioning_keys: t.ClassVar[list[str]] = []
    schema = load_schema("testers_observations")

    _schema_sent = False
    """Set on the instance once its SCHEMA message went out, before its first record."""

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: the rows of earlier runs are history, not rows this run replaces."""
        return False

    def get_records(self, context: Context | None) -> t.Iterable[dict[str, t.Any]]:  # noqa: ARG002
        """Nothing: the parent stream sends observations (:meth:`write_observations`)."""
        return ()

    def write_observations(self, batch: AgentTesters, run: RunSummary) -> None:
        """Send every tester of ``batch`` as an observation of ``run``, if selected.

        Directly as encoded lines when nothing transforms them, else through
        the SDK's own record path (stream maps, deselected fields, flattening,
        or an SDK version the direct path was not checked against).
        """
        if not self.selected:
            return
        if not self._schema_sent:
            self._write_schema_message()
            self._schema_sent = True
        output = self._tap.message_writer
        if writes_directly(output, self):
            # The same messages as observations(batch, run) would give, spliced
            # from the testers' encoded lines instead of built and encoded anew.
            fields = {
                "run_id": run.run_id,
                "run_started_at": run.started_at,
                "synced_agent_no": batch.agent,
            }
            output.write_observations(self.name, lines_of(batch), fields, batch.extracted_at)
            output.flush()
        else:
            for record in observations(batch, run):
                self._write_record_message(record)
