"""The fault matrix: every fault the tap is tested against, and what it must do.

One table drives both ``tests/test_fault_matrix.py`` (each row runs against the
sandbox over real HTTP, sequentially and at the default concurrency) and
``docs/reliability.md`` (``python -m tests.fault_matrix`` writes it; a test fails
when it is stale). In each row, agent 48901 of four agents gets the fault.
"""

from __future__ import annotations

import json
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from tap_kaleyra_rcs.sandbox import Scenario

DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
FAULTY_AGENT = "48901"
HTML = "<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
TRUNCATED = '{"code":"RCS902","message":"Tester details found successfully","data":[{"id":"a'
NOT_UTF8 = "fffe7b22636f6465223a22" + "ff" * 8
LOGIN = "<!DOCTYPE html><html><body><form action='/login'>Sign in</form></body></html>"
MAINTENANCE = "Down for scheduled maintenance until 02:00 UTC"
MAX_RETRIES = 3
"""The retry budget every row runs with (tests/test_fault_matrix.py)."""
ALL_ATTEMPTS = MAX_RETRIES + 1
GAVE_UP_AFTER = f"gave up after {ALL_ATTEMPTS} attempts"
WHOLE = Scenario({"agents": [FAULTY_AGENT]}).success_body(FAULTY_AGENT).decode()
"""The 200 body agent 48901 gets when no fault is served (the rows' 5 testers)."""


def _cut_after(marker: str, extra: int = 0) -> str:
    """The whole body, cut ``extra`` characters after the first ``marker``."""
    return WHOLE[: WHOLE.index(marker) + len(marker) + extra]


CUT_MID_STRING = _cut_after('"id":"', 8)
CUT_MID_NUMBER = _cut_after('"created_date":', 6)
CUT_AFTER_DATA = _cut_after('"data":[')


@dataclass(frozen=True)
class Fault:
    """One row: what agent 48901 answers, and what the tap must do about it."""

    group: str
    name: str
    agent: dict[str, t.Any]
    """The sandbox's agent_overrides entry for agent 48901."""
    recovers: bool
    """True: every record arrives, none lost or duplicated. False: clear failure."""
    outcome: str
    """What the user sees, for the document."""
    message: tuple[str, ...] = ()
    """Fragments the one-line error must contain (failures)."""
    expect: dict[str, t.Any] = field(default_factory=dict)
    """Values the first tester of agent 48901 must have (recoveries)."""
    settings: dict[str, t.Any] = field(default_factory=dict)
    attempts: int | None = None
    """Requests agent 48901 gets, when not the default (see :attr:`requests`)."""

    @property
    def id(self) -> str:
        return f"{self.group}: {self.name}"

    @property
    def requests(self) -> int:
        """Requests agent 48901 gets: by default one per scripted fault plus the
        answer that is used (recoveries), or just one (failures: no retry)."""
        if self.attempts is not None:
            return self.attempts
        if not self.recovers:
            return 1
        return 1 + sum(int(fault.get("times", 1)) for fault in self.agent.get("faults", []))


def _faults(*faults: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"faults": list(faults)}


def _first(**values: t.Any) -> dict[str, t.Any]:
    return {"set": {"0": values}}


RETRIED = "retried with back-off; every record arrives"
GAVE_UP = "fails after max_retries+1 attempts, naming the agent and the last status"

MATRIX: list[Fault] = [
    Fault(
        "Throttling",
        "429, Retry-After: 1 (seconds)",
        _faults({"status": 429, "headers": {"Retry-After": "1"}}),
        True,
        "waits 1 s (every worker pauses), then every record arrives",
    ),
    Fault(
        "Throttling",
        "429, Retry-After as an HTTP date 2 s ahead",
        _faults({"status": 429, "retry_after_http_date": 2}),
        True,
        "waits until that date, then every record arrives",
    ),
    Fault(
        "Throttling",
        "429 without Retry-After, twice",
        _faults({"status": 429, "times": 2}),
        True,
        RETRIED,
    ),
    Fault(
        "Throttling",
        "429 that never stops",
        _faults({"status": 429, "times": "always"}),
        False,
        GAVE_UP,
        ("agent 48901", GAVE_UP_AFTER, "HTTP 429"),
        attempts=ALL_ATTEMPTS,
    ),
    Fault(
        "Throttling",
        "429 asking to wait 1 hour",
        _faults({"status": 429, "headers": {"Retry-After": "3600"}}),
        False,
        "fails at once rather than stall: the wait exceeds max_retry_wait_seconds",
        ("agent 48901", "3600 s", "max_retry_wait_seconds"),
    ),
    *[
        Fault(
            "Server errors",
            f"{status} {label}",
            _faults({"status": status, "times": times}),
            times != "always",
            RETRIED if times != "always" else GAVE_UP,
            () if times != "always" else ("agent 48901", GAVE_UP_AFTER, f"HTTP {status}"),
            attempts=ALL_ATTEMPTS if times == "always" else None,
        )
        for status in (500, 502, 503, 504)
        for label, times in (("once", 1), ("three times", 3), ("forever", "always"))
    ],
    Fault(
        "Bodies",
        "200 with an HTML page",
        _faults({"status": 200, "body_text": HTML, "content_type": "text/html", "times": "always"}),
        False,
        "fails at once with a snippet, one request: not the API",
        ("agent 48901", "HTTP 200", "not JSON", "502 Bad Gateway"),
    ),
    Fault(
        "Bodies",
        "200 with a login page",
        _faults(
            {"status": 200, "body_text": LOGIN, "content_type": "text/html", "times": "always"}
        ),
        False,
        "fails at once with a snippet, one request: not the API",
        ("agent 48901", "HTTP 200", "not JSON", "Sign in"),
    ),
    Fault(
        "Bodies",
        "200 with plain text (a maintenance notice)",
        _faults(
            {
                "status": 200,
                "body_text": MAINTENANCE,
                "content_type": "text/plain",
                "times": "always",
            }
        ),
        False,
        "fails at once with a snippet, one request: not the API",
        ("agent 48901", "HTTP 200", "not JSON", "scheduled maintenance"),
    ),
    Fault(
        "Bodies",
        "200 with whole JSON that is not an object",
        _faults({"status": 200, "body": [{"id": "a"}], "times": "always"}),
        False,
        "fails at once, one request",
        ("agent 48901", "HTTP 200", "a JSON list, not an object"),
    ),
    Fault(
        "Bodies",
        "200 with an empty body, once",
        _faults({"status": 200, "body_text": ""}),
        True,
        "retried with back-off (a body lost on the way); every record arrives",
    ),
    Fault(
        "Bodies",
        "200 with an empty body, forever",
        _faults({"status": 200, "body_text": "", "times": "always"}),
        False,
        GAVE_UP,
        ("agent 48901", GAVE_UP_AFTER, "HTTP 200 with an empty body"),
        attempts=ALL_ATTEMPTS,
    ),
    *[
        Fault(
            "Bodies",
            f"200 with JSON cut off {where}, once",
            _faults({"status": 200, "body_text": cut}),
            True,
            "retried with back-off; every record arrives",
        )
        for where, cut in (
            ("mid-string", CUT_MID_STRING),
            ("mid-number", CUT_MID_NUMBER),
            ('right after "data":[', CUT_AFTER_DATA),
        )
    ],
    Fault(
        "Bodies",
        "200 with JSON cut off, forever",
        _faults({"status": 200, "body_text": CUT_MID_STRING, "times": "always"}),
        False,
        GAVE_UP + ", saying the body was cut off",
        (
            "agent 48901",
            GAVE_UP_AFTER,
            f"HTTP 200 but the body was cut off after {len(CUT_MID_STRING)} bytes",
        ),
        attempts=ALL_ATTEMPTS,
    ),
    Fault(
        "Bodies",
        "200 with a non-UTF-8 body",
        _faults({"status": 200, "body_hex": NOT_UTF8, "times": "always"}),
        False,
        "fails at once",
        ("agent 48901", "not JSON"),
    ),
    Fault(
        "Bodies",
        "500 with an HTML page, forever",
        _faults({"status": 500, "body_text": HTML, "content_type": "text/html", "times": "always"}),
        False,
        GAVE_UP,
        ("agent 48901", "HTTP 500", "502 Bad Gateway"),
        attempts=ALL_ATTEMPTS,
    ),
    Fault(
        "Bodies",
        "502 with an empty body, forever",
        _faults({"status": 502, "body_text": "", "times": "always"}),
        False,
        GAVE_UP,
        ("agent 48901", "HTTP 502", "(empty body)"),
        attempts=ALL_ATTEMPTS,
    ),
    Fault(
        "Bodies",
        "503 with truncated JSON, once",
        _faults({"status": 503, "body_text": TRUNCATED}),
        True,
        RETRIED,
    ),
    Fault(
        "Bodies",
        "400 with an HTML page",
        _faults({"status": 400, "body_text": HTML, "times": "always"}),
        False,
        "fails at once naming agent, status and a snippet",
        ("agent 48901", "HTTP 400", "502 Bad Gateway"),
    ),
    Fault(
        "Bodies",
        "400 with a non-UTF-8 body",
        _faults({"status": 400, "body_hex": NOT_UTF8, "times": "always"}),
        False,
        "fails at once",
        ("agent 48901", "HTTP 400"),
    ),
    Fault(
        "Bodies",
        "connection reset halfway through a 200 body, once",
        _faults({"kind": "reset", "status": 200}),
        True,
        RETRIED,
    ),
    Fault(
        "Shapes",
        "'data' is an object",
        {"data": {"id": "x"}},
        False,
        "fails at once",
        ("agent 48901", "'data' is a JSON dict"),
    ),
    Fault(
        "Shapes",
        "'data' is a string",
        {"data": "none"},
        False,
        "fails at once",
        ("agent 48901", "'data' is a JSON str"),
    ),
    Fault(
        "Shapes",
        "a tester that is not an object",
        _faults({"status": 200, "body": {"code": "RCS902", "data": [1, 2]}, "times": "always"}),
        False,
        "fails at once",
        ("agent 48901", "tester #0 is a JSON int"),
    ),
    Fault(
        "Shapes",
        "HTTP 200 with code RCS500",
        _faults(
            {
                "status": 200,
                "body": {"code": "RCS500", "message": "Internal error", "data": []},
                "times": "always",
            }
        ),
        False,
        "fails: an error inside a 200 is never read as zero testers",
        ("agent 48901", "RCS500", "not the success code"),
    ),
    Fault(
        "Shapes",
        "HTTP 200 with code RCS904 and no data",
        _faults(
            {
                "status": 200,
                "body": {"code": "RCS904", "message": "No Agents Found"},
                "times": "always",
            }
        ),
        False,
        "fails, naming the code and message",
        ("agent 48901", "RCS904", "No Agents Found"),
    ),
    Fault(
        "Shapes",
        "RCS902 with 'data': null",
        {"data": "null"},
        True,
        "zero testers for that agent; the others arrive",
    ),
    Fault(
        "Shapes",
        "a new field in every tester",
        {"extra_fields": {"risk_score": 0.5}},
        True,
        "kept in drifted_fields, named in one warning; every record arrives",
        expect={"drifted_fields": '{"risk_score":0.5}'},
    ),
    Fault(
        "Field types",
        "created_date as a digit string",
        _first(created_date="1769708507204"),
        True,
        "coerced to the integer",
        expect={"created_date": 1769708507204, "created_at": "2026-01-29T17:41:47.204Z"},
    ),
    Fault(
        "Field types",
        "created_date as a whole float",
        _first(created_date=1769708507204.0),
        True,
        "coerced to the integer",
        expect={"created_date": 1769708507204},
    ),
    Fault(
        "Field types",
        "created_date with a fraction",
        _first(created_date=1769708507204.5),
        True,
        "kept in drifted_fields, created_date and created_at null (schema_changes: fail stops)",
        expect={
            "created_date": None,
            "created_at": None,
            "drifted_fields": '{"created_date":1769708507204.5}',
        },
    ),
    Fault(
        "Field types",
        "created_date as a word",
        _first(created_date="yesterday"),
        True,
        "kept in drifted_fields, created_date and created_at null (schema_changes: fail stops)",
        expect={
            "created_date": None,
            "created_at": None,
            "drifted_fields": '{"created_date":"yesterday"}',
        },
    ),
    Fault(
        "Field types",
        "created_date out of range",
        _first(created_date=10**17),
        True,
        "created_date kept as sent, created_at null (schema_changes: fail stops)",
        expect={"created_date": 10**17, "created_at": None},
    ),
    Fault(
        "Field types",
        'override_dcs_check as "true"',
        _first(override_dcs_check="true"),
        True,
        "coerced to true",
        expect={"override_dcs_check": True},
    ),
    Fault(
        "Field types",
        'override_dcs_check as "yes"',
        _first(override_dcs_check="yes"),
        True,
        "kept in drifted_fields, the typed column null (schema_changes: fail stops)",
        expect={"override_dcs_check": None, "drifted_fields": '{"override_dcs_check":"yes"}'},
    ),
    Fault(
        "Field types",
        "override_dcs_check as 1",
        _first(override_dcs_check=1),
        True,
        "1 is not a boolean: kept in drifted_fields, the typed column null",
        expect={"override_dcs_check": None, "drifted_fields": '{"override_dcs_check":1}'},
    ),
    Fault(
        "Field types",
        "id as a number",
        _first(id=987654),
        True,
        'coerced to the string "987654"',
        expect={"id": "987654"},
    ),
    Fault("Field types", "id as a float", _first(id=1.5), False, "fails", ("agent 48901", "'id'")),
    Fault(
        "Field types",
        "id missing",
        {"unset": {"0": ["id"]}},
        False,
        "fails: a tester without id can't be upserted",
        ("agent 48901", "no 'id'"),
    ),
    Fault("Field types", "id empty", _first(id=""), False, "fails", ("agent 48901", "no 'id'")),
    Fault(
        "Field types",
        "status as a number",
        _first(status=7),
        True,
        'coerced to "7"',
        expect={"status": "7"},
    ),
    Fault(
        "Field types",
        "carrierid null",
        _first(carrierid=None),
        True,
        "kept as null",
        expect={"carrierid": None},
    ),
    Fault(
        "Field types",
        "phoneno as a list",
        _first(phoneno=["1"]),
        True,
        "kept in drifted_fields, phoneno null; never kept when phoneno is hashed",
        expect={"phoneno": None, "drifted_fields": '{"phoneno":["1"]}'},
    ),
    Fault(
        "Field types",
        "carrierid as a word",
        _first(carrierid="T-Mobile"),
        True,
        "kept in drifted_fields, carrierid null (schema_changes: drop leaves it out; fail stops)",
        expect={"carrierid": None, "drifted_fields": '{"carrierid":"T-Mobile"}'},
    ),
    Fault(
        "Field types",
        "agent_no missing",
        {"unset": {"0": ["agent_no"]}},
        True,
        "filled from the configured agent number",
        expect={"agent_no": FAULTY_AGENT},
    ),
    Fault(
        "Connections", "dropped without an answer, once", _faults({"kind": "drop"}), True, RETRIED
    ),
    Fault(
        "Connections",
        "accepts and never answers, once",
        _faults({"kind": "hang", "seconds": 30}),
        True,
        "request_timeout fires, then the retry succeeds",
        settings={"request_timeout": 0.5},
    ),
    Fault(
        "Connections",
        "accepts and never answers, forever",
        _faults({"kind": "hang", "seconds": 30, "times": "always"}),
        False,
        "fails after (max_retries+1) x request_timeout plus back-off",
        ("agent 48901", GAVE_UP_AFTER, "request_timeout=0.5"),
        settings={"request_timeout": 0.5},
        attempts=ALL_ATTEMPTS,
    ),
    Fault(
        "Refusals",
        "401",
        _faults({"status": 401, "times": "always"}),
        False,
        "fails at once, no retry, says what to check",
        ("agent 48901", "HTTP 401", "api_key"),
    ),
    Fault(
        "Refusals",
        "403",
        _faults({"status": 403, "times": "always"}),
        False,
        "fails at once, no retry",
        ("agent 48901", "HTTP 403"),
    ),
    Fault(
        "Refusals",
        "400 RCS601 (RCS not enabled)",
        _faults(
            {
                "status": 400,
                "body": {"code": "RCS601", "message": "RCS not enabled"},
                "times": "always",
            }
        ),
        False,
        "fails at once, no retry",
        ("agent 48901", "RCS601", "RCS channel is enabled"),
    ),
    Fault(
        "Refusals",
        "400 RCS904 Agent Not Found",
        _faults(
            {
                "status": 400,
                "body": {"code": "RCS904", "message": "Agent Not Found"},
                "times": "always",
            }
        ),
        False,
        "fails naming agent, status, code and message",
        ("agent 48901", "HTTP 400", "RCS904", "Agent Not Found"),
    ),
    Fault(
        "Refusals",
        "404",
        _faults({"status": 404, "times": "always"}),
        False,
        "fails at once: check base_url and endpoint_path",
        ("HTTP 404", "endpoint_path"),
    ),
    Fault(
        "Refusals",
        "302 to another host",
        _faults(
            {
                "status": 302,
                "headers": {"Location": "https://elsewhere.example/x"},
                "body_text": "",
                "times": "always",
            }
        ),
        False,
        "fails: redirects are not followed, the key never leaves the configured host",
        ("HTTP 302", "elsewhere.example", "base_url"),
    ),
]
"""Besides these rows, tests/test_fault_matrix.py covers connection refused, a DNS
failure, a 100,000-tester agent and signals, which need more than a scenario."""


def render() -> str:
    """docs/reliability.md, from the matrix."""
    lines = [
        "# Reliability: the fault matrix",
        "",
        "Generated from `tests/fault_matrix.py` by `python -m tests.fault_matrix`;",
        "`tests/test_fault_matrix.py` runs every row against the sandbox over real HTTP,",
        "once with `max_concurrent_agents=1` (logging at DEBUG) and once at the default",
        "concurrency, and checks that the API key appears nowhere in the output.",
        "In each row one agent of four gets the fault; the run either recovers with",
        "exactly the right records (none lost, none duplicated, every record valid",
        "against `schemas/testers.json`) or stops with a one-line",
        "`tap-kaleyra-rcs: error: ...` naming the agent, exit status 1, no traceback,",
        "no `ACTIVATE_VERSION`, and only whole Singer messages on stdout.",
        "",
        "The sandbox counts the requests the faulty agent gets (the `requests` column),",
        "and the tap's `retry N of M in X s` warnings must match them. Where the server",
        "names a wait (`Retry-After` in seconds or as an HTTP date), the sandbox's",
        "arrival times show that the retry came no sooner, and the warning shows the",
        "wait the tap chose: exactly the seconds given, or at most the time to the date.",
        "",
        "Time bound for a failing agent, with the settings used in these tests",
        f"(`max_retries={MAX_RETRIES}`, `retry_backoff_seconds=0.01`): at most {ALL_ATTEMPTS}",
        "attempts. With the",
        "defaults (`max_retries=5`, `request_timeout=30`, back-off 1, 2, 4, 8, 16 s,",
        "each wait at most `max_retry_wait_seconds=60`) an agent gives up within",
        "6 x 30 s + 31 s, about 3.5 minutes; a refusal (401, 403, RCS601, 4xx) or a",
        "malformed answer stops the run at once. A 200 whose JSON body was cut off",
        "(or is empty) is retried like a 503; a 200 that is whole but not the API's",
        "(HTML, plain text, JSON that is not an object) is not.",
        "",
        "| group | fault | outcome | result | requests |",
        "|---|---|---|---|---|",
    ]
    for fault in MATRIX:
        result = "recovers" if fault.recovers else "clear error"
        lines.append(
            f"| {fault.group} | {fault.name} | {fault.outcome} | {result} | {fault.requests} |"
        )
    lines += [
        "",
        "Also tested (tests/test_fault_matrix.py, tests/test_signals.py, tests/test_errors.py):",
        "",
        "| fault | outcome |",
        "|---|---|",
        "| connection refused | retried, then fails naming the agent |",
        (
            "| a 429 while other agents wait to be fetched | no other request reaches the API"
            " until its Retry-After has passed, but the one each worker already had in flight |"
        ),
        "| DNS failure for the API host | fails at once: check pod/base_url and DNS |",
        "| one agent with 100,000 testers | succeeds; peak memory is measured and bounded |",
        "| SIGTERM / SIGINT mid-run | exits 143 / 130 within seconds, no ACTIVATE_VERSION |",
        "| SIGTERM while a slow reader blocks stdout | the write completes: no half line |",
        "| a 3xx to another loopback server | not followed; that server sees no request |",
        "| the target stops reading stdout | one-line error naming that, exit 1 |",
        "",
        *soak_section(),
    ]
    return "\n".join(lines)


SOAK_RECORD = DOC.parent / "soak.json"
"""The soaks run by hand with ``scripts/soak.py --record``: one entry per soak."""
SOAK_MUTANTS = DOC.parent / "soak_mutants.json"
"""``scripts/soak_mutants.py --record``: the planted bugs and the run that caught each."""


def soak_section() -> list[str]:
    """The chaos soak's recorded figures (docs/soak.json), with the command for each."""
    entries = json.loads(SOAK_RECORD.read_text(encoding="utf-8")) if SOAK_RECORD.exists() else []
    lines = [
        "## The chaos soak",
        "",
        "`scripts/soak.py` runs the whole job (`testers-duckdb` or `testers-postgres`:",
        "tap, loader, dbt build) again and again against the sandbox, whose testers and",
        "faults a seeded plan changes between runs (scripts/soak_world.py): additions,",
        "removals, returns, status changes (unknown values included), agents emptied,",
        "dropped from `agent_numbers` and back, testers listed under two agents, fields",
        "the schema does not have; 429 (with and without `Retry-After`), 503, dropped",
        "and reset connections and cut-off bodies the tap rides through; a 500 on one",
        "agent or SIGTERM to the tap mid-fetch that the job must fail on; the loader",
        "killed (SIGKILL) mid-load, and on PostgreSQL every connection to the warehouse",
        "terminated mid-load; SIGTERM to dbt mid-build; each sometimes followed by a",
        "`dbt build` by hand. After every run an oracle replays docs/models.md's rules",
        "over what the sandbox served and checks the exit status; what was loaded, field",
        "by field (`phoneno`, `override_dcs_check` and `created_date` included); the",
        "three models; that a job whose tap or loader failed changes no model; that",
        "after dbt was stopped each model is as the last build left it or as the run",
        "makes it, and the next build shows everything; that every history period",
        "begins at an observation of its tester received within its run, and every",
        "removal at a successful run's answer; that a full rebuild from a copy of the",
        "raw tables gives the same rows; and that no output or kept file holds a",
        "traceback or any 8-character piece of the soak's own API key.",
        "Not checked: the models' other times (`first_seen_at`, `last_seen_at`,",
        "`last_synced_at`, `oldest_pending_created_at`). The moment dbt is stopped",
        "varies with its speed (the plan fixes a delay after it has parsed the",
        "project); a signal that comes after dbt ended makes a clean run, and is not",
        "counted as a fault.",
        "When the loader dies while Meltano writes the tap's output to it, Meltano",
        "4.4.1 itself may print a traceback of its `_write_line_writer`",
        "([meltano/meltano#7047](https://github.com/meltano/meltano/issues/7047), open):",
        "in a run whose loader the soak killed, that one traceback is counted in its own",
        "column, not as a violation; any other traceback is one.",
        "Figures recorded with `--record` on a machine of 2 cores that other work",
        "shared at the time (so runs/minute is a floor; each soak starts its own sandbox",
        "and, for PostgreSQL, its own server):",
        "",
        (
            "| warehouse | command | commit | runs | ok | failed as expected | faults "
            "| violations | Meltano's traceback (#7047) | runs/minute |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines.extend(
        f"| {entry['warehouse']} | `{entry['command']}` | {entry.get('commit', '')} "
        f"| {entry['runs']} | {entry['ok']} | "
        f"{entry['failed_as_expected']} | {entry['faults']} | {entry['violations']} | "
        f"{entry.get('meltano_7047', '')} | {entry['runs_per_minute']} |"
        for entry in entries
    )
    totals = [sum(entry[key] for entry in entries) for key in ("runs", "faults", "violations")]
    lines += [
        "",
        f"In all: {totals[0]} runs, {totals[1]} faults injected, {totals[2]} invariant violations.",
        "",
    ]
    return lines + soak_mutants_section()


def soak_mutants_section() -> list[str]:
    """Which planted bugs the soak caught (docs/soak_mutants.json), and at which run."""
    if not SOAK_MUTANTS.exists():
        return []
    found = json.loads(SOAK_MUTANTS.read_text(encoding="utf-8"))
    caught = sum(1 for bug in found["bugs"] if bug["caught_at_run"] is not None)
    lines = [
        "### Does the soak catch bugs?",
        "",
        "`scripts/soak_mutants.py` plants one bug at a time in a copy of the project and",
        "soaks the copy (an unchanged copy first, which must pass). Recorded with",
        (
            f"`.venv/bin/python scripts/soak_mutants.py --seed {found['seed']} "
            f"--runs {found['runs']} --record` on commit {found.get('commit', '?')}: {caught} of "
            f"{len(found['bugs'])} caught."
        ),
        "",
        "| planted bug | in | caught at run |",
        "|---|---|---|",
    ]
    lines.extend(
        f"| {bug['bug']} | `{bug['file']}` | {bug['caught_at_run'] or 'missed'} |"
        for bug in found["bugs"]
    )
    return [*lines, ""]


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC}\n")
