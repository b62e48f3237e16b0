"""Remove SQL comments, for the BigQuery emulator's launcher (bigquery_emulator.py).

Standard library only, so the project's tests can check it too.
"""

from __future__ import annotations

QUOTES = "'\"`"


def without_comments(sql: str) -> str:
    """``sql`` with its ``--``, ``#`` and ``/* */`` comments replaced by a space.

    Quoted strings and identifiers (with backslash escapes) are kept as they are.
    """
    kept: list[str] = []
    i, quote = 0, ""
    while i < len(sql):
        char = sql[i]
        if quote:
            kept.append(sql[i : i + 2] if char == "\\" else char)
            i += 2 if char == "\\" else 1
            quote = "" if char == quote else quote
        elif char in QUOTES:
            quote = char
            kept.append(char)
            i += 1
        elif sql.startswith(("--", "#"), i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            kept.append(" ")
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = len(sql) if end < 0 else end + 2
            kept.append(" ")
        else:
            kept.append(char)
            i += 1
    return "".join(kept)
