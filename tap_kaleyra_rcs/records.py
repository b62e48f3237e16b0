"""Turning one raw tester from the API into a record that matches ``testers.json``.

The API's field types are known only from one sample, so each field is coerced
only where the meaning is unambiguous (``"true"`` for a boolean, ``1.0`` or
``"17"`` for an integer, a number for an id). A value that still does not fit
never goes into its typed column, which would make the target load it wrongly or
not at all: by ``schema_changes`` it is kept in ``drifted_fields`` (the typed
column null), left out, or stops the run with the agent and field named.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import msgspec
from msgspec import UNSET, UnsetType

from tap_kaleyra_rcs.drift import (
    CHANGED_TYPE,
    DRIFTED_FIELDS,
    FAIL_ADVICE,
    KEEP,
    MISSING,
    NEW,
    NOT_EPOCH_MILLISECONDS,
    DriftPolicy,
    SchemaChange,
    new_field_error,
)
from tap_kaleyra_rcs.errors import MalformedResponse, longest_secret, redact, redact_cut
from tap_kaleyra_rcs.phones import PHONE_FIELD, PhoneHasher

_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - naive on purpose: rendered with "Z"
_BOOLEAN_WORDS = {"true": True, "false": False}
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")
"""ASCII digits only, at most 19 (a 64-bit integer's width), an optional minus.

``str.isdigit`` is also true for "²" or "①", which ``int`` refuses, and ``int``
accepts Arabic-Indic or full-width digits that no one would expect in an id:
only the unambiguous form is coerced, anything else is a clear error.
"""


def load_schema(stream: str = "testers") -> dict[str, t.Any]:
    """A stream's JSON schema, from the installed package or from a checkout."""
    packaged = resources.files("tap_kaleyra_rcs") / "schemas" / f"{stream}.json"
    if packaged.is_file():
        return t.cast("dict[str, t.Any]", json.loads(packaged.read_text("utf-8")))
    checkout = Path(__file__).resolve().parent.parent / "schemas" / f"{stream}.json"
    return t.cast("dict[str, t.Any]", json.loads(checkout.read_text("utf-8")))


class _BadValue(ValueError):
    """A field value that can't be coerced; the message says what was expected."""


def _text(value: object) -> str | None:
    if value is None or type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise _BadValue("a string")


def _boolean(value: object) -> bool | None:
    if value is None or type(value) is bool:
        return value
    if type(value) is str and value.strip().lower() in _BOOLEAN_WORDS:
        return _BOOLEAN_WORDS[value.strip().lower()]
    raise _BadValue('true or false (or the strings "true"/"false")')


def _integer(value: object) -> int | None:
    if value is None or type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is str and _WHOLE_NUMBER.fullmatch(value.strip()):
        return int(value.strip())
    raise _BadValue("a whole number (ASCII digits)")


COERCERS: dict[str, t.Callable[[object], t.Any]] = {
    "id": _text,
    "agent_no": _text,
    "phoneno": _text,
    "test_status": _text,
    "status": _text,
    "override_dcs_check": _boolean,
    "created_date": _integer,
    "carrierid": _integer,
}
"""Every field the API documents, with how its value is made to fit the schema."""


class FittingTester(msgspec.Struct, forbid_unknown_fields=True):
    """A tester whose every field already has the type :data:`COERCERS` gives it.

    Decoding an answer's testers into this shape checks every field's type in
    msgspec's C code; an answer that does not fit it (a field the schema lacks,
    a value of another type) is decoded as plain JSON and checked field by
    field instead. The fields are in the order the API documents and sends
    them, the order the records then have; a field the tester lacks stays out.
    """

    phoneno: str | UnsetType | None = UNSET
    test_status: str | UnsetType | None = UNSET
    status: str | UnsetType | None = UNSET
    agent_no: str | UnsetType | None = UNSET
    id: str | UnsetType | None = UNSET
    override_dcs_check: bool | UnsetType | None = UNSET
    created_date: int | UnsetType | None = UNSET
    carrierid: int | UnsetType | None = UNSET


class FittingTesters(list[dict[str, t.Any]]):
    """Testers that were decoded as :class:`FittingTester`: their types need no check."""


_DAY_MS = 86_400_000
_MINUTE_MS = 60_000
_dates: dict[int, str] = {}
# Every "THH:MM:" of a day, every "SS." and every "mmmZ": with them a timestamp
# is three table look-ups instead of formatting numbers, for every tester. Built
# by joining two-digit strings: formatting 2,500 numbers cost 2.6 ms of start-up.
_TWO_DIGITS = [f"{n:02d}" for n in range(100)]
_MINUTES = ["T" + hh + ":" + mm + ":" for hh in _TWO_DIGITS[:24] for mm in _TWO_DIGITS[:60]]
_SECONDS = [ss + "." for ss in _TWO_DIGITS[:60]]
_MILLIS = [digit + nn + "Z" for digit in "0123456789" for nn in _TWO_DIGITS]


def epoch_millis_to_rfc3339(millis: int) -> str:
    """E.g. ``1769708507204`` -> ``"2026-01-29T17:41:47.204Z"`` (exact, no floats).

    Raises:
        OverflowError: outside the years 1 to 9999.

    """
    days, in_day = divmod(millis, _DAY_MS)
    date = _dates.get(days)
    if date is None:
        date = (_EPOCH + timedelta(days=days)).date().isoformat()
        if len(_dates) < 100_000:  # noqa: PLR2004 - bound the cache (~270 years)
            _dates[days] = date
    minute, in_minute = divmod(in_day, _MINUTE_MS)
    second, milli = divmod(in_minute, 1000)
    return date + _MINUTES[minute] + _SECONDS[second] + _MILLIS[milli]


@dataclass
class AgentTesters:
    """One agent's records, ready to emit, and the field names the schema lacks."""

    agent: str
    records: list[dict[str, t.Any]]
    changes: dict[SchemaChange, str] = field(default_factory=dict)
    """How the answer departed from the schema, each change once, with a detail."""
    extracted_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    """When the API's answer arrived: the records' ``time_extracted``."""
    answer: str = "list"
    """What Kaleyra answered: ``list`` (``data`` was a list), ``null`` (``data: null``
    or no ``data``: no list at all) or ``unknown`` (``Agent Not Found``, skipped)."""
    lines: list[bytes] | None = None
    """The records encoded as JSON lines, once the first stream to send them directly has."""


_TRUSTED_SHAPES: set[tuple[tuple[str, ...], tuple[type, ...]]] = set()
"""(field names, value types) of raw testers that needed no change at all.

The API sends the same shape for nearly every tester, so after the first such
tester is checked field by field, the rest are recognised by their shape and
taken as they are (still only with a non-empty id and agent_no). Shapes with an
unknown field, a missing field or a value that needed coercing are never added.
"""


def build_records(
    agent: str,
    raw_testers: list[t.Any],
    phones: PhoneHasher | None = None,
    drift: DriftPolicy = KEEP,
) -> AgentTesters:
    """Coerce every raw tester of one agent, or fail naming the agent and field.

    What does not fit the schema is kept, left out or fails the run as ``drift``
    says (tap_kaleyra_rcs/drift.py), and each such change is noted once in the
    batch's ``changes``. With ``phones``, each ``phoneno`` is replaced by its
    keyed hash here, before any stream sends or maps the records
    (tap_kaleyra_rcs/phones.py).
    """
    result = AgentTesters(agent, [])
    append = result.records.append
    changes = result.changes
    trusted = _TRUSTED_SHAPES
    fitting = type(raw_testers) is FittingTesters
    seen_fields = _fields_of_fitting(raw_testers) if fitting else set()
    for index, raw in enumerate(raw_testers):
        # The hot path: no check of the types (or one shape lookup instead of one a field).
        if fitting:
            if raw.get("id") and raw.get("agent_no") and "created_date" in raw:
                record = raw
            else:
                record = _coerce_tester(agent, index, raw, changes, drift)
        elif type(raw) is dict:
            names = tuple(raw)
            seen_fields.add(names)
            if (names, tuple(map(type, raw.values()))) in trusted and raw["id"] and raw["agent_no"]:
                record = raw
            else:
                record = _coerce_tester(agent, index, raw, changes, drift)
        else:
            record = _coerce_tester(agent, index, raw, changes, drift)
        millis = record["created_date"]
        try:
            record["created_at"] = None if millis is None else epoch_millis_to_rfc3339(millis)
        except OverflowError:
            record["created_at"] = None
            _not_epoch_milliseconds(agent, index, millis, changes, drift)
        append(record)
    _note_missing(seen_fields, changes)
    if phones is not None:
        phones.hash_phones(result.records)
    return result


def _fields_of_fitting(testers: list[dict[str, t.Any]]) -> set[tuple[str, ...]]:
    """The sets of fields the testers had: all of them unless a tester has fewer."""
    every_field = FittingTester.__struct_fields__
    # A fitting tester has only known fields: as many as there are means all of them.
    if set(map(len, testers)) <= {len(every_field)}:
        return {every_field}
    return set(map(tuple, testers))


def _note_missing(seen_fields: set[tuple[str, ...]], changes: dict[SchemaChange, str]) -> None:
    """Note each documented field that no tester of the answer had."""
    if seen_fields:
        for name in COERCERS.keys() - set().union(*seen_fields):
            changes.setdefault(SchemaChange(name, MISSING), "")


def _not_epoch_milliseconds(
    agent: str, index: int, millis: int, changes: dict[SchemaChange, str], drift: DriftPolicy
) -> None:
    if drift.mode == "fail":
        msg = (
            f"agent {agent}: tester #{index} created_date is not a plausible "
            f"epoch-milliseconds timestamp{FAIL_ADVICE}"
        )
        raise MalformedResponse(msg) from None
    changes.setdefault(SchemaChange("created_date", NOT_EPOCH_MILLISECONDS), _short(millis))


def _coerce_tester(
    agent: str,
    index: int,
    raw: object,
    changes: dict[SchemaChange, str],
    drift: DriftPolicy,
) -> dict[str, t.Any]:
    """Check and coerce one tester field by field; learn its shape if it needed nothing."""
    if not isinstance(raw, dict):
        msg = f"agent {agent}: tester #{index} is a JSON {type(raw).__name__}, not an object"
        raise MalformedResponse(msg)
    record: dict[str, t.Any] = {}
    drifted: dict[str, t.Any] = {}
    where = f"agent {agent}: tester #{index}"
    for name, value in raw.items():
        fits, coerced = _fit(where, name, value, changes, drift)
        if fits:
            record[name] = coerced
        elif drift.keeps(name):
            drifted[name] = value
        if not fits and name in COERCERS:
            record[name] = None
    if not record.get("id"):
        msg = (
            f"agent {agent}: tester #{index} has no 'id', so it can't be upserted; "
            "the run stops before this agent's testers, and nothing is marked deleted"
        )
        raise MalformedResponse(msg)
    unchanged = len(record) == len(raw) and all(record[k] is v for k, v in raw.items())
    if unchanged and record.get("agent_no") and "created_date" in raw:
        _TRUSTED_SHAPES.add((tuple(raw), tuple(map(type, raw.values()))))
    if not record.get("agent_no"):
        record["agent_no"] = agent
    record.setdefault("created_date", None)
    if drifted:
        # Redacted like every text the tap writes: a server that echoes the key
        # in a field must not put it in the warehouse through this column.
        text = json.dumps(drifted, ensure_ascii=False, separators=(",", ":"))
        record[DRIFTED_FIELDS] = redact(text)
    return record


def _fit(
    where: str, name: str, value: object, changes: dict[SchemaChange, str], drift: DriftPolicy
) -> tuple[bool, t.Any]:
    """``(True, value as the schema has it)``, or ``(False, None)`` for a change kept or left out.

    Raises MalformedResponse for an unusable id, and for any change under ``fail``.
    """
    coerce = COERCERS.get(name)
    if coerce is None:
        if drift.mode == "fail":
            raise MalformedResponse(new_field_error(where, name))
        changes.setdefault(SchemaChange(name, NEW), type(value).__name__)
        return False, None
    try:
        return True, coerce(value)
    except _BadValue as expected:
        # A phone number is personal data: never quoted, whatever its shape.
        shown = "" if name == PHONE_FIELD else f" {_short(value)}"
        found = f"{type(value).__name__}{shown}, expected {expected}"
        if name == "id" or drift.mode == "fail":
            advice = "" if name == "id" else FAIL_ADVICE
            raise MalformedResponse(f"{where} field {name!r} is {found}{advice}") from None
        changes.setdefault(SchemaChange(name, CHANGED_TYPE), found)
        return False, None


_SHORT = 40


def _short(value: object) -> str:
    """The value for an error message: redacted first, as the cut could split a key."""
    text = repr(value)
    reach = _SHORT + longest_secret()  # a key starting before the cut ends by here
    text = redact_cut(text[:reach]) if len(text) > reach else redact(text)
    return text if len(text) <= _SHORT else text[:_SHORT] + "..."
