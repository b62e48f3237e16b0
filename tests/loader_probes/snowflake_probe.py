"""Run inside target-snowflake's own environment: what would it create and merge on?

Reads ``{"config": ..., "schema_message": ...}`` on stdin and prints JSON: the
SQL type of every column, the sink's key properties and the ON clause of the
MERGE it would run. The loader's own classes do the work; the only stand-in is
the identifier preparer, which the loader takes from an engine that logs in to
Snowflake: here it comes from the same dialect without logging in. Any network
connection fails the probe.
"""

from __future__ import annotations

import json
import re
import sys

import sqlalchemy
from loader_probes_network import forbid_network

forbid_network()

from target_snowflake.connector import DEFAULT_RESERVED_WORDS  # noqa: E402
from target_snowflake.target import TargetSnowflake  # noqa: E402


def main() -> None:
    """Print the loader's view of the tap's SCHEMA message."""
    given = json.load(sys.stdin)
    message = given["schema_message"]
    target = TargetSnowflake(config=given["config"], validate_config=True)
    # The same steps as the target's own SCHEMA handling, minus setup()'s DDL.
    sink = target.get_sink_class(message["stream"])(
        target=target,
        stream_name=message["stream"],
        schema=message["schema"],
        key_properties=message["key_properties"],
    )
    connector = sink.connector
    engine = sqlalchemy.create_engine(
        connector.sqlalchemy_url, connect_args=connector.get_connect_args()
    )
    engine.dialect.identifier_preparer.reserved_words |= DEFAULT_RESERVED_WORDS
    connector._cached_engine = engine
    dialect = engine.dialect
    schema = sink.conform_schema(sink.schema)
    columns = {
        name: str(connector.to_sql_type(prop).compile(dialect=dialect))
        for name, prop in schema["properties"].items()
    }
    statement, _ = connector._get_merge_from_stage_statement(
        full_table_name=sink.full_table_name,
        schema=schema,
        sync_id="probe",
        file_format="probe",
        key_properties=sink.key_properties,
    )
    merge_on = re.search(r" on (.+?) when matched", str(statement)).group(1)
    merges = bool(sink.key_properties) and sink.config.get("load_method", "upsert") == "upsert"
    sys.stdout.write(
        json.dumps(
            {
                "columns": columns,
                "key_properties": sink.key_properties,
                "merges": merges,
                "merge_on": merge_on,
                "table": str(sink.full_table_name),
            }
        )
        + "\n"
    )


main()
