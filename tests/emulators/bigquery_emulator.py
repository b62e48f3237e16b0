"""Start bqemulator for the tests, with two shims for what it cannot do offline.

Runs inside the emulator's own environment (tests/emulators/bigquery.txt), never
in the project's: ``python bigquery_emulator.py start --rest-port ...`` takes the
emulator's own command-line arguments and hands them to its CLI.

1. **No spatial extension.** bqemulator installs and loads DuckDB's ``spatial``
   extension at start-up and refuses to start without it. Installing it means
   downloading it from DuckDB's extension repository, which the tests may not
   reach. Here it is loaded only if it is already there; nothing the project's
   tables use needs GEOGRAPHY.
2. **MERGE ... UPDATE SET with qualified columns.** target-bigquery's upsert
   writes ``WHEN MATCHED THEN UPDATE SET target.`col` = source.`col```, which
   BigQuery accepts and DuckDB (which runs the emulator's SQL) rejects. A
   translation rule drops the ``target.`` qualifier from the SET list only, as
   BigQuery itself reads it: a MERGE updates only its target table.

3. **Apostrophes in comments.** The emulator's pre-translation steps look for
   string literals by counting quotes and do not know SQL comments, so an
   apostrophe in a ``--`` comment (dbt keeps the models' comments) turns the
   literals after it inside out: ``cast('2026-11-29 19:00:30.721912+00:00' as
   timestamp)`` became ``...30.721912e0...``. Comments are removed before the
   translation; BigQuery ignores them anyway.

4. **One parse per statement.** The emulator parses each statement it is sent
   again in every step that looks at it (about fifteen times for a dbt model),
   and sqlglot's parser is pure Python: that was 84% of the emulator's CPU in a
   ``dbt build``. Each parse is kept (up to ``PARSED_KEPT`` statements), and
   every step after the first gets a copy of the tree, as a fresh parse would
   give it. A statement that fails to parse is parsed, and fails, each time.

None of them changes what the loader, dbt or the tap send.
"""

from __future__ import annotations

import os
import typing as t
from collections import OrderedDict

import duckdb
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

os.environ["BQEMU_ENABLE_FORMAT_EXTENSIONS"] = "false"  # they are downloads too

from bqemulator.cli import main
from bqemulator.sql.rules import register
from bqemulator.sql.rules._base import TranslationRule
from bqemulator.sql.translator import SQLTranslator
from bqemulator.storage import engine
from bqemulator.types import geography
from sql_comments import without_comments

UNREACHABLE_REPOSITORY = "http://127.0.0.1:9"
"""Where DuckDB would download extensions from: a closed local port."""


def _load_spatial_if_present(connection: duckdb.DuckDBPyConnection) -> None:
    """Load ``spatial`` if installed; never download it."""
    connection.execute("set autoinstall_known_extensions = false")
    connection.execute(f"set custom_extension_repository = '{UNREACHABLE_REPOSITORY}'")
    try:
        connection.execute("LOAD spatial")
    except duckdb.Error:
        return


def _engine_load_spatial(self: t.Any) -> None:
    _load_spatial_if_present(self.connection)


def _geography_connection() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:")
    _load_spatial_if_present(connection)
    return connection


engine.DuckDBEngine._load_spatial = _engine_load_spatial  # type: ignore[method-assign]
geography._ensure_conv_conn = _geography_connection


_translate = SQLTranslator.translate


def _translate_without_comments(self: SQLTranslator, bq_sql: str, **kwargs: t.Any) -> t.Any:
    return _translate(self, without_comments(bq_sql), **kwargs)


SQLTranslator.translate = _translate_without_comments  # type: ignore[method-assign]


PARSED_KEPT = 2048
"""Statements whose trees are kept, the least recently used dropped first."""

_parse = Dialect.parse
_parsed: OrderedDict[t.Hashable, list[t.Any]] = OrderedDict()


def _parse_once(self: Dialect, sql: str, **opts: t.Any) -> list[t.Any]:
    """What ``Dialect.parse`` gives, from a kept tree after the first time: a copy each time."""
    try:
        key: t.Hashable = (self, sql, tuple(sorted(opts.items())))
        hash(key)
    except TypeError:  # an option that cannot be a key: parse as before
        return _parse(self, sql, **opts)
    if key not in _parsed:
        _parsed[key] = _parse(self, sql, **opts)
        if len(_parsed) > PARSED_KEPT:
            _parsed.popitem(last=False)
    _parsed.move_to_end(key)
    return [tree.copy() if tree is not None else None for tree in _parsed[key]]


Dialect.parse = _parse_once  # type: ignore[method-assign]


@register
class UnqualifiedMergeUpdateSet(TranslationRule):
    """``UPDATE SET target.col = ...`` inside a MERGE becomes ``UPDATE SET col = ...``."""

    name = "MERGE_UPDATE_SET_UNQUALIFIED"

    def applies_to(self, node: exp.Expression) -> bool:
        """An UPDATE clause of a MERGE whose SET list names a qualified column."""
        return (
            isinstance(node, exp.Update)
            and isinstance(node.parent, exp.When)
            and any(
                isinstance(pair.this, exp.Column) and pair.this.table for pair in node.expressions
            )
        )

    def rewrite(self, node: exp.Expression) -> exp.Expression:
        """The same clause, each assigned column by its name alone."""
        update = node.copy()
        for pair in update.expressions:
            if isinstance(pair.this, exp.Column):
                pair.set("this", exp.column(pair.this.this.copy()))
        return update


if __name__ == "__main__":
    main()
