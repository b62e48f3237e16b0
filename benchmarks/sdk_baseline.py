"""The same tap with the SDK's defaults: what a plain Singer SDK tap costs.

    python benchmarks/sdk_baseline.py --config CONFIG_JSON > out.singer

Same HTTP client and record parsing, but the SDK's own per-record path
(conforming, selection, stream maps, one message object and one flush per
record) and its default JSON writer. Run it with max_concurrent_agents=1 for a
plain SDK tap's sequential partitions.
"""

from __future__ import annotations

import typing as t

from singer_sdk import Stream
from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter

from tap_kaleyra_rcs.streams import TestersStream
from tap_kaleyra_rcs.tap import TapKaleyraRcs

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class SdkDefaultsStream(TestersStream):
    """The testers stream, synced record by record by the SDK."""

    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> t.Generator[dict[str, t.Any], t.Any, t.Any]:
        yield from Stream._sync_records(self, context, write_messages=write_messages)  # noqa: SLF001


class SdkDefaultsTap(TapKaleyraRcs):
    """The tap with the SDK's default writer and record path."""

    message_writer_class = SimpleSingerWriter

    def discover_streams(self) -> list[Stream]:
        return [SdkDefaultsStream(self)]


if __name__ == "__main__":
    SdkDefaultsTap.cli()
