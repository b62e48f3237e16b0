"""Run inside target-bigquery's own environment: what would it create and merge on?

Reads ``{"config": ..., "schema_message": ..., "records": [...]}`` on stdin and
prints JSON: the BigQuery type of every column from the loader's
``SchemaTranslator``, the key properties the sink keeps, and whether the sink
would MERGE. With ``method: storage_write_api`` it also runs the sink's own write
path up to the network: the protobuf write schema, each record through the sink's
``preprocess_record`` and ``process_record`` into serialized rows, and those rows
decoded again. The loader's sink
creates a BigQuery client and tables in its constructor, so only the Singer SDK
part of it runs here (what it keeps from the SCHEMA message); the table schema
comes from the loader's ``BigQueryTable``, as in ``create_target``. Any network
connection fails the probe.
"""

from __future__ import annotations

import json
import sys
import types

from loader_probes_network import forbid_network

forbid_network()

from google.protobuf import json_format  # noqa: E402
from singer_sdk.sinks import Sink  # noqa: E402
from target_bigquery.core import (  # noqa: E402
    BigQueryTable,
    IngestionStrategy,
    SchemaResolverVersion,
)
from target_bigquery.target import TargetBigQuery  # noqa: E402


def main() -> None:
    """Print the loader's view of the tap's SCHEMA message."""
    given = json.load(sys.stdin)
    config, message = given["config"], given["schema_message"]
    target = TargetBigQuery(config=config, validate_config=True)
    sink_class = target.get_sink_class(message["stream"])
    sink = sink_class.__new__(sink_class)
    Sink.__init__(sink, target, message["stream"], message["schema"], message["key_properties"])
    table = BigQueryTable(
        name=sink.table_name,
        project=target.config["project"],
        dataset=target.config["dataset"],
        jsonschema=sink.schema,
        transforms=target.config.get("column_name_transforms", {}),
        ingestion_strategy=sink_class.ingestion_strategy,
        schema_resolver_version=SchemaResolverVersion(
            target.config.get("schema_resolver_version", 1)
        ),
    )
    columns = {
        field.name: field.field_type for field in table.get_resolved_schema(sink.apply_transforms)
    }
    # The three conditions BaseBigQuerySink.__init__ checks before it loads into
    # a temporary table that clean_up() MERGEs on sink.key_properties.
    upsert_candidate = sink_class._is_upsert_candidate(
        types.SimpleNamespace(config=target.config, stream_name=sink.stream_name)
    )
    merges = (
        bool(sink.key_properties)
        and sink_class.ingestion_strategy is IngestionStrategy.DENORMALIZED
        and upsert_candidate
    )
    written = None
    if target.config.get("method") == "storage_write_api":
        # The sink's own write path, minus its constructor's client and tables.
        sink.table = table
        sink.start_batch({})
        for record in given.get("records", []):
            sink.process_record(sink.preprocess_record(dict(record), {}), {})
        message_class = sink.proto_schema
        written = [
            json_format.MessageToDict(
                message_class.FromString(row), preserving_proto_field_name=True
            )
            for row in sink.proto_rows.serialized_rows
        ]
    sys.stdout.write(
        json.dumps(
            {
                "written": written,
                "columns": columns,
                "key_properties": sink.key_properties,
                "merges": merges,
                "sink": sink_class.__name__,
                "handles_activate_version": (
                    sink_class.activate_version is not Sink.activate_version
                ),
            }
        )
        + "\n"
    )


main()
