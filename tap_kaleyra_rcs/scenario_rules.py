"""What a sandbox scenario may say: the keys and ranges docs/sandbox.md documents.

A typo such as ``{"agent": 6}`` would otherwise be ignored and the sandbox would
serve its defaults, so a test or a demo would pass against the wrong API. Each
rule names the key, what it must be, and the value it got.
"""

from __future__ import annotations

import typing as t

Check = t.Callable[[t.Any], bool]


def _number(low: float, high: float | None = None) -> Check:
    def check(value: t.Any) -> bool:  # noqa: ANN401
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and value >= low
            and (high is None or value <= high)
        )

    return check


def _whole(low: int, high: int | None = None) -> Check:
    in_range = _number(low, high)
    return lambda value: isinstance(value, int) and in_range(value)


def _text(value: t.Any) -> bool:  # noqa: ANN401
    return isinstance(value, str)


def _mapping(value: t.Any) -> bool:  # noqa: ANN401
    return isinstance(value, dict)


def _agents(value: t.Any) -> bool:  # noqa: ANN401
    if isinstance(value, list):
        return bool(value) and all(_text(a) or _whole(0)(a) for a in value)
    return _whole(1)(value)


def _indexes(value: t.Any) -> bool:  # noqa: ANN401
    return isinstance(value, list) and all(_whole(0)(i) for i in value)


def _times(value: t.Any) -> bool:  # noqa: ANN401
    return value == "always" or _whole(1)(value)


def _anything(value: t.Any) -> bool:  # noqa: ANN401, ARG001
    return True


TOP_LEVEL: dict[str, tuple[Check, str]] = {
    "sid": (_text, "a string"),
    "api_key": (_text, "a string"),
    "path": (_text, "a string"),
    "agents": (_agents, "a count of 1 or more, or a non-empty list of agent numbers"),
    "testers_per_agent": (_whole(0), "a whole number, 0 or more"),
    "seed": (_whole(-(2**63)), "a whole number"),
    "latency_ms": (_number(0), "a number of milliseconds, 0 or more"),
    "rate_limit_per_second": (
        lambda v: v is None or (_number(0)(v) and v > 0),
        "null or a number above 0",
    ),
    "cache_megabytes": (_whole(0), "a whole number, 0 or more"),
    "agent_overrides": (_mapping, "an object of agent number to its keys"),
}
PER_AGENT: dict[str, tuple[Check, str]] = {
    "faults": (lambda v: isinstance(v, list), "a list of faults"),
    "latency_ms": TOP_LEVEL["latency_ms"],
    "testers": (_whole(0), "a whole number, 0 or more"),
    "set": (_mapping, 'an object {"index": {field: value}}'),
    "unset": (_mapping, 'an object {"index": [field, ...]}'),
    "remove": (_indexes, "a list of tester indexes"),
    "extra_fields": (_mapping, "an object of fields"),
    "data": (_anything, "any JSON value"),
    "code": (_text, "a string"),
    "message": (_text, "a string"),
    "hold_until_in_flight": (_whole(1), "a whole number, 1 or more"),
    "hold_timeout_seconds": (_number(0), "a number of seconds, 0 or more"),
}
FAULT: dict[str, tuple[Check, str]] = {
    "status": (_whole(100, 599), "an HTTP status, 100 to 599"),
    "body": (_anything, "any JSON value"),
    "body_text": (_text, "a string"),
    "body_hex": (
        lambda v: _text(v) and _is_hex(v),
        "a string of hexadecimal byte pairs",
    ),
    "headers": (
        lambda v: _mapping(v) and all(_text(x) for x in v.values()),
        "an object of header names to strings",
    ),
    "content_type": (_text, "a string"),
    "retry_after_http_date": (_number(0), "a number of seconds from now, 0 or more"),
    "times": (_times, 'a count of 1 or more, or "always"'),
    "kind": (lambda v: v in ("response", "drop", "hang", "reset"), "drop, hang or reset"),
    "seconds": (_number(0), "a number of seconds, 0 or more"),
}


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _keys_problem(
    document: t.Any,  # noqa: ANN401
    rules: dict[str, tuple[Check, str]],
    where: str,
) -> str | None:
    if not isinstance(document, dict):
        name = where.rstrip(".") or "the scenario"
        return f"{name} must be a JSON object, not {type(document).__name__}"
    for key, value in document.items():
        if key not in rules:
            known = ", ".join(rules)
            return f"{where}{key!r} is not a scenario key; the keys here are: {known}"
        check, expected = rules[key]
        if not check(value):
            return f"{where}{key} must be {expected}, not {value!r}"
    return None


def scenario_problem(spec: t.Any) -> str | None:  # noqa: ANN401
    """What is wrong with a scenario document, or None if docs/sandbox.md allows it."""
    problem = _keys_problem(spec, TOP_LEVEL, "")
    if problem:
        return problem
    for agent, override in spec.get("agent_overrides", {}).items():
        where = f"agent_overrides.{agent}."
        problem = _keys_problem(override, PER_AGENT, where)
        for number, fault in enumerate(override.get("faults", []) if not problem else []):
            problem = problem or _keys_problem(fault, FAULT, f"{where}faults[{number}].")
        if problem:
            return problem
    return None
