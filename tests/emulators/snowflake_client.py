"""A Snowflake client for the tests, and the stand-in for target-snowflake's load step.

Runs inside fakesnow's environment (tests/emulators/snowflake.txt), which has
snowflake-connector-python; the project's has not. It stays up for a test
session and answers one JSON request per line on stdin with one JSON line:

* ``{"sql": "...", "database": "..."}`` → ``{"rows": [[text or null, ...], ...]}``
* ``{"load": "run.singer", "database": "...", "schema": "..."}`` →
  ``{"rows": [[records loaded]]}``: the stand-in load described below.

Any failure answers ``{"error": "..."}``.

**Why a stand-in load.** target-snowflake writes a run's rows to files, PUTs them
to the ``@~`` user stage and COPYs or MERGEs from there; fakesnow has none of
that. So the loader itself connects and creates its tables (the tests run it),
and this fills them with the tap's own Singer messages the way the loader's
configuration says: upsert on the stream's key (the last record of a key wins),
the ``_sdc_*`` columns of ``add_record_metadata``, and ``ACTIVATE_VERSION`` with
``hard_delete: false`` (rows of older versions get ``_sdc_deleted_at``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import typing as t

import snowflake.connector

NETWORK_TIMEOUT = 60
"""Seconds a statement may take: a fakesnow HTTP 500 is otherwise retried for ever."""


def _connect(database: str | None = None, schema: str | None = None) -> t.Any:
    return snowflake.connector.connect(
        account="emulated",
        user="tests",
        password="unused",  # noqa: S106 - fakesnow checks none
        host="127.0.0.1",
        port=int(os.environ["FAKESNOW_PORT"]),
        protocol="http",
        database=database,
        schema=schema,
        login_timeout=NETWORK_TIMEOUT,
        network_timeout=NETWORK_TIMEOUT,
        socket_timeout=NETWORK_TIMEOUT,
    )


def _text(value: object) -> str | None:
    """A value as text. fakesnow sums NUMBER(38,0) as a float; Snowflake as a number."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _utc_naive(value: str | None) -> dt.datetime | None:
    """An RFC 3339 time as TIMESTAMP_NTZ holds it: UTC, no offset."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed
    return parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)


def query(sql: str, database: str | None) -> list[list[str | None]]:
    """Every row of ``sql``."""
    with _connect(database) as connection:
        cursor = connection.cursor()
        cursor.execute(sql)
        if cursor.description is None:
            return []
        return [[_text(value) for value in row] for row in cursor.fetchall()]


def load(path: str, database: str, schema: str) -> int:
    """Apply the Singer messages in ``path``; return how many records were loaded."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    sync_started = time.time_ns() // 1000
    properties: dict[str, dict[str, t.Any]] = {}
    keys: dict[str, list[str]] = {}
    records = 0
    with _connect(database, schema) as connection, open(path, encoding="utf-8") as messages:  # noqa: PTH123
        cursor = connection.cursor()
        for line in messages:
            message = json.loads(line)
            kind, stream = message["type"], message.get("stream")
            if kind == "SCHEMA":
                properties[stream] = message["schema"]["properties"]
                keys[stream] = message["key_properties"]
            elif kind == "RECORD":
                records += 1
                record = message["record"]
                row = {
                    name: _utc_naive(record.get(name))
                    if spec.get("format") == "date-time"
                    else record.get(name)
                    for name, spec in properties[stream].items()
                }
                row.update(
                    _sdc_extracted_at=_utc_naive(message.get("time_extracted")),
                    _sdc_received_at=now,
                    _sdc_batched_at=now,
                    _sdc_deleted_at=None,
                    _sdc_sequence=sync_started + records,
                    _sdc_table_version=message.get("version"),
                    _sdc_sync_started_at=sync_started,
                )
                same_key = " and ".join(f"{key} = %({key})s" for key in keys[stream])
                cursor.execute(f"delete from {stream} where {same_key}", row)
                columns = ", ".join(row)
                values = ", ".join(f"%({column})s" for column in row)
                cursor.execute(f"insert into {stream} ({columns}) values ({values})", row)
            elif kind == "ACTIVATE_VERSION":
                cursor.execute(
                    f"update {stream} set _sdc_deleted_at = %(now)s "
                    "where _sdc_deleted_at is null "
                    "and (_sdc_table_version is null or _sdc_table_version < %(version)s)",
                    {"now": now, "version": message["version"]},
                )
    return records


def main() -> None:
    """Answer requests until stdin closes."""
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if "load" in request:
                rows: list[list[t.Any]] = [
                    [load(request["load"], request["database"], request["schema"])]
                ]
            else:
                rows = query(request["sql"], request.get("database"))
            answer: dict[str, t.Any] = {"rows": rows}
        except Exception as error:  # noqa: BLE001 - every failure goes back to the test
            answer = {"error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
