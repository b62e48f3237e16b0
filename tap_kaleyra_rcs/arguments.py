"""The files named on the command line, checked before the SDK reads them.

The SDK reads ``--config`` itself and lets a missing or malformed file end in a
Python traceback (``FileNotFoundError``, ``JSONDecodeError``); ``--state`` and
``--catalog`` that are not JSON do the same. A scheduler's log then shows forty
lines and no advice. And a catalog that selects none of the tap's streams (``{}``,
or every stream deselected) made a run that synced nothing and exited 0, which a
scheduler records as a success. Each file is read here first, and the first
problem becomes one line that names the option, the path and what to do.
Nothing of a file's contents is quoted: a config file holds the API key.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

from singer_sdk.singerlib import Catalog

FILE_OPTIONS = ("--config", "--state", "--catalog")
"""Options whose value is a JSON file (``--config ENV`` reads the environment instead)."""

STREAMS = ("testers", "testers_observations", "testers_sync_run_agents", "testers_sync_runs")
"""The tap's streams: a catalog must select at least one of them."""

_WHAT = {
    "--config": "a JSON object of settings (README, Configuration)",
    "--state": "the JSON state a previous run wrote",
    "--catalog": "a Singer catalog, as --discover writes it",
}


def named_files(arguments: list[str]) -> list[tuple[str, str]]:
    """(option, path) for each file option, in both ``--config x`` and ``--config=x`` forms."""
    found = []
    for place, word in enumerate(arguments):
        option, equals, value = word.partition("=")
        if option not in FILE_OPTIONS:
            continue
        if not equals:
            if place + 1 >= len(arguments):
                continue  # the SDK's own "requires an argument" message says it
            value = arguments[place + 1]
        if option == "--config" and value == "ENV":
            continue
        found.append((option, value))
    return found


def file_problem(option: str, path: str) -> str | None:
    """What is wrong with the file ``path`` given to ``option``, in one line; None if nothing."""
    expected = f"give {option} the path of {_WHAT[option]}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{option} {path}: no such file; {expected}"
    except IsADirectoryError:
        return f"{option} {path}: is a folder, not a file; {expected}"
    except PermissionError:
        return f"{option} {path}: cannot be read (permission denied); let this user read it"
    except UnicodeDecodeError:
        return f"{option} {path}: is not UTF-8 text; {expected}"
    return _content_problem(option, path, text, expected)


def _content_problem(option: str, path: str, text: str, expected: str) -> str | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        return f"{option} {path}: is not valid JSON ({exc.msg} at {where}); {expected}"
    if not isinstance(value, dict):
        return f"{option} {path}: holds a JSON {type(value).__name__}, not an object; {expected}"
    if option == "--catalog" and not selects_a_stream(value):
        return (
            f"{option} {path}: selects none of the tap's streams ({', '.join(STREAMS)}), so "
            "the run would sync nothing; select at least testers (meltano.yml's select, or "
            "the catalog's metadata), or run without --catalog"
        )
    return None


def selects_a_stream(catalog: dict[str, t.Any]) -> bool:
    """Whether the catalog selects at least one of :data:`STREAMS`, as the SDK reads it."""
    try:
        entries = Catalog.from_dict(catalog)
    except (KeyError, TypeError, ValueError):
        return True  # a catalog the SDK cannot read: its own error says why
    return any(
        name in entries and entries[name].metadata.resolve_selection().get((), True)
        for name in STREAMS
    )


def first_problem(arguments: list[str]) -> str | None:
    """The first problem with any file named in ``arguments``; None if every one reads."""
    for option, path in named_files(arguments):
        problem = file_problem(option, path)
        if problem:
            return problem
    return None
