"""What the tap does when Kaleyra's answer departs from the schema (``schema_changes``).

Every field type comes from one sample answer, and the API may add fields. A
changed type used to stop every scheduled run until a new release, and a new
field was lost for good. Now, by default (``keep``), whatever does not fit the
schema goes into one text column, ``drifted_fields``, as a JSON object: new
fields under their name, and values whose type no longer fits under their
field's name (the typed column is then null). Text is the one column type every
loader creates the same way and no warehouse has to change later: real BigQuery
cannot turn an INT64 column into a STRING one, PostgreSQL's loader refuses to
alter a column's type, and BigQuery's ignores a new SCHEMA mid-run
(docs/streams.md, "When Kaleyra changes its API").
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from tap_kaleyra_rcs.errors import redact

SCHEMA_CHANGE_CHOICES = ("keep", "drop", "fail")
DRIFTED_FIELDS = "drifted_fields"
"""The column that holds, as JSON object text, what did not fit the schema."""

NEW = "new"
CHANGED_TYPE = "changed type"
MISSING = "missing"
NOT_EPOCH_MILLISECONDS = "not epoch milliseconds"


@dataclass(frozen=True)
class DriftPolicy:
    """``schema_changes``, and the fields never to keep even when they drift.

    ``left_out`` holds the fields a user's stream map sets to ``__NULL__`` (a
    new field dropped by name, like a documented one) and ``phoneno`` when it
    is hashed: a number that is not text can't be hashed, so it is not kept.
    """

    mode: str = "keep"
    left_out: frozenset[str] = frozenset()

    def keeps(self, name: str) -> bool:
        """Whether a value of ``name`` that does not fit goes into ``drifted_fields``."""
        return self.mode == "keep" and name not in self.left_out


KEEP = DriftPolicy()

_NULL_MAPS = ("__NULL__", None)


def drift_policy(mode: str, config: t.Mapping[str, t.Any], *, hashes_phones: bool) -> DriftPolicy:
    """The run's policy: ``schema_changes``, less what the user drops by name or hashes.

    A stream map ``{"testers": {"brand_id": "__NULL__"}}`` drops a new field
    by name as it drops a documented one; with ``phoneno`` hashed, a number
    that is not text (so can't be hashed) is not kept in clear either.
    """
    testers_map = (config.get("stream_maps") or {}).get("testers")
    dropped = {
        name
        for name, mapped in (testers_map.items() if isinstance(testers_map, dict) else ())
        if mapped in _NULL_MAPS and not name.startswith("__")
    }
    if hashes_phones:
        dropped.add("phoneno")
    return DriftPolicy(mode, frozenset(dropped))


class SchemaChange(t.NamedTuple):
    """One way an answer departed from the schema: a field, and what changed."""

    field: str
    kind: str


def describe(change: SchemaChange, detail: str, agent: str, policy: DriftPolicy) -> str:
    """The WARNING naming one change, once per run: field, agent, what changed, what was done."""
    name = redact(repr(change.field))  # the server's words: they may echo the key
    if change.kind == MISSING:
        return (
            f"agent {agent}: documented field {name} is missing from every tester of the "
            "answer (renamed?); its column is null. A new field, if any, is named apart"
        )
    if change.kind == NOT_EPOCH_MILLISECONDS:
        return (
            f"agent {agent}: field 'created_date' is not epoch milliseconds ({detail}); "
            "created_at is null, created_date keeps the value as sent"
        )
    kept = policy.keeps(change.field)
    if change.kind == NEW:
        what = f"new field {name} ({redact(detail)})"
        done = "kept in drifted_fields" if kept else "left out"
    else:
        what = f"field {name} changed type: {redact(detail)}"
        where = "kept in drifted_fields" if kept else "left out"
        done = f"its value is {where} and {name} is null"
    return (
        f"agent {agent}: {what}; {done} (schema_changes: {policy.mode}; "
        "docs/streams.md, When Kaleyra changes its API)"
    )


def new_field_error(where: str, field: str) -> str:
    """The one line that stops a run with ``schema_changes: fail`` at a new field."""
    return (
        f"{where} has a field {redact(repr(field))} the schema does "
        f"not have, and schema_changes is fail: look at the change, then set schema_changes "
        "to keep (load it in drifted_fields) or drop (leave it out)"
    )


FAIL_ADVICE = (
    "; schema_changes is fail: set it to keep (load the value in drifted_fields) "
    "or drop (leave it out) to let runs go on"
)
"""Appended to a changed type's error under ``fail``; without ``fail`` it is kept or dropped."""
