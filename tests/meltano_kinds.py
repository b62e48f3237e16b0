"""Which Meltano setting kinds meltano.yml may use for each of the tap's settings."""

from __future__ import annotations

import typing as t

MELTANO_KINDS = {
    "string",
    "integer",
    "boolean",
    "decimal",
    "date_iso8601",
    "email",
    "options",
    "file",
    "array",
    "object",
    "oauth",
}
"""Meltano 4's current setting kinds (password and hidden are deprecated)."""


def kinds_for(spec: dict[str, t.Any]) -> set[str]:
    """The meltano.yml kinds that carry a setting of this JSON type to the tap.

    Numbers are ``string``: Meltano turns a ``decimal`` read from an environment
    variable into a value it cannot write to the tap's config file, and the tap
    reads numbers from text.
    """
    types = set(spec.get("type", [])) if isinstance(spec.get("type"), list) else {spec["type"]}
    if "enum" in spec:
        return {"options"}
    for json_type, kinds in (
        ("number", {"string"}),
        ("integer", {"integer"}),
        ("boolean", {"boolean"}),
        ("array", {"array"}),
        ("object", {"object"}),
        ("string", {"string"}),
    ):
        if json_type in types:
            return kinds
    return set()
