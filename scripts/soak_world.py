"""The soak's world and its oracle: what the sandbox serves each run, and what the models must hold.

``scripts/soak.py`` drives the real pipeline; this module has no process, HTTP or
database in it, so the plan is reproducible from the seed alone and the oracle can
be tested on a planted difference (tests/test_soak.py).

The world is a handful of agents whose testers change between runs by a seeded
random plan; every change is written as the sandbox's own scenario keys
(docs/sandbox.md), so what each agent answers is ``Scenario(...).testers(agent)``,
computed here the same way the sandbox computes it.

The oracle replays docs/models.md's rules, as written there, over the answers each
run delivered and the runs that succeeded, and gives the rows the three models
must have. It is written from the docs, not from the SQL: a difference is either a
bug in the models or a sentence in the docs that does not say what they do.
"""

from __future__ import annotations

import copy
import json
import random
import typing as t
from dataclasses import dataclass, field

from tap_kaleyra_rcs.sandbox import Scenario, generate_testers

AGENTS = ("48900", "48901", "48902", "48903", "48904")
MAX_TESTERS = 6
"""Tester slots per agent: small, so that removals, returns and duplicates collide often."""
KNOWN_STATUSES = ("ACCEPTED", "PENDING", "REJECTED", "EXPIRED")
STATUS_VALUES = (*KNOWN_STATUSES, "PAUSED", "REVOKED")
"""PAUSED and REVOKED are values the summary does not know: they count in other_status."""
CARRIER_WORD = "T-Mobile"
RIDE_THROUGH = ("429", "429-retry-after", "503", "drop", "reset", "cut-off")
"""API faults the tap retries (docs/failures.md "Retries are bounded"): every one is survived."""
HANG_SECONDS = 20
"""How long the sandbox holds the request the tap is signalled during."""
LOADER_HANG_SECONDS = 6
"""How long the sandbox holds the last agent's request while the loader is hit: then it
drops the connection, and the tap's retry gets the answer."""
MUST_FAIL = frozenset({"fail", "sigterm", "loader-kill"})
"""Kinds after which the job must exit non-zero."""
MAY_FAIL = frozenset({"pg-drop", "dbt-sigterm"})
"""Kinds after which either exit is right, each checked as what it then is: a dropped
connection the loader may open again, and a dbt build that may end before its signal."""


@dataclass
class AgentWorld:
    """One agent's tester list as sandbox scenario edits; indexes are generated tester slots."""

    count: int = 4
    removed: set[int] = field(default_factory=set)
    changes: dict[int, dict[str, t.Any]] = field(default_factory=dict)
    extra: bool = False
    empty: str | None = None
    """``"empty"`` or ``"null"``: the agent answers no testers."""

    def override(self) -> dict[str, t.Any]:
        """The agent's ``agent_overrides`` entry (faults added by the run)."""
        entry: dict[str, t.Any] = {"testers": self.count}
        edits = {str(i): dict(c) for i, c in self.changes.items() if i < self.count}
        if edits:
            entry["set"] = edits
        if self.removed:
            entry["remove"] = sorted(self.removed)
        if self.extra:
            entry["extra_fields"] = {"brand_id": "b-soak"}
        if self.empty:
            entry["data"] = self.empty
        return entry


@dataclass
class RunPlan:
    """What one run does: the scenario served, the agents configured, the faults injected."""

    number: int
    agents: list[str]
    overrides: dict[str, dict[str, t.Any]]
    kind: str = "clean"
    """``clean`` (faults it rides through only), ``fail`` (a 500 always), ``sigterm`` (to
    the tap mid-fetch), ``loader-kill`` (SIGKILL to the loader mid-load), ``pg-drop``
    (the loader's PostgreSQL connections terminated mid-load) or ``dbt-sigterm``."""
    target: str | None = None
    """The agent failing (``fail``) or held while the tap or the loader is hit."""
    delay: float = 0.0
    """``dbt-sigterm``: seconds after dbt has parsed the project before the signal."""
    faults: list[tuple[str, str]] = field(default_factory=list)
    """(agent, fault) the tap must ride through."""
    hand_build: bool = False
    """After a failed job, run ``dbt build`` by hand, as an operator might."""
    changes: list[str] = field(default_factory=list)

    @property
    def must_fail(self) -> bool:
        """Whether the job must exit non-zero: a failure was injected."""
        return self.kind in MUST_FAIL

    @property
    def may_fail(self) -> bool:
        """Whether the job may exit either way (then checked as what its exit says)."""
        return self.kind in MAY_FAIL

    def answers(self, seed: int) -> dict[str, list[dict[str, t.Any]]]:
        """What each configured agent answers, with no fault: the tester list it would load."""
        scenario = Scenario(scenario_document(seed, "k", self.overrides, with_faults=False))
        result = {}
        for agent in self.agents:
            mode = self.overrides.get(agent, {}).get("data")
            result[agent] = [] if mode in {"empty", "null"} else scenario.testers(agent)
        return result


def scenario_document(
    seed: int, api_key: str, overrides: dict[str, dict[str, t.Any]], *, with_faults: bool = True
) -> dict[str, t.Any]:
    """The sandbox scenario for a run (docs/sandbox.md)."""
    entries = copy.deepcopy(overrides)
    if not with_faults:
        for entry in entries.values():
            entry.pop("faults", None)
    return {
        "api_key": api_key,
        "seed": seed,
        "agents": list(AGENTS),
        "testers_per_agent": 4,
        "agent_overrides": entries,
    }


def _fault(name: str, body: bytes) -> list[dict[str, t.Any]]:
    """The sandbox faults for one ride-through fault name."""
    if name == "429":
        return [{"status": 429}]
    if name == "429-retry-after":
        return [{"status": 429, "headers": {"Retry-After": "1"}}]
    if name == "503":
        return [{"status": 503, "times": 2}]
    if name == "cut-off":
        return [{"status": 200, "body_text": body[: len(body) // 2].decode(errors="ignore")}]
    return [{"kind": name}]


def plan_runs(seed: int, runs: int, *, postgres: bool = False) -> list[RunPlan]:  # noqa: C901, PLR0912, PLR0915 - one branch per change
    """The same plan for the same seed: the world before each run, and that run's faults.

    ``pg-drop`` runs are planned only for PostgreSQL (``postgres``); on DuckDB those
    runs are clean.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible plan, not a secret
    world = {agent: AgentWorld(count=rng.randint(2, MAX_TESTERS)) for agent in AGENTS}
    configured = list(AGENTS[:4])
    plans = []
    for number in range(1, runs + 1):
        notes: list[str] = []
        if number > 1:
            for agent, state in world.items():
                if state.empty and rng.random() < 0.5:  # noqa: PLR2004
                    state.empty = None
                    notes.append(f"{agent} lists testers again")
            for _ in range(rng.randint(1, 4)):
                agent = rng.choice(AGENTS)
                state = world[agent]
                change = rng.choice(
                    ("add", "remove", "return", "status", "status", "empty", "agents",
                     "duplicate", "duplicate", "extra", "word")
                )  # fmt: skip
                index = rng.randrange(MAX_TESTERS)
                if change == "add" and state.count < MAX_TESTERS:
                    state.count += 1
                    notes.append(f"{agent} gains tester #{state.count - 1}")
                elif change == "remove":
                    state.removed.add(index)
                    notes.append(f"{agent} removes #{index}")
                elif change == "return" and state.removed:
                    back = rng.choice(sorted(state.removed))
                    state.removed.discard(back)
                    notes.append(f"{agent} lists #{back} again")
                elif change == "status":
                    key = rng.choice(("test_status", "test_status", "status"))
                    value = (
                        rng.choice(STATUS_VALUES)
                        if key == "test_status"
                        else rng.choice(("ACTIVE", "INACTIVE"))
                    )
                    state.changes.setdefault(index, {})[key] = value
                    notes.append(f"{agent} #{index} {key}={value}")
                elif change == "empty" and not state.empty:
                    state.empty = rng.choice(("empty", "null"))
                    notes.append(f"{agent} answers data {state.empty}")
                elif change == "agents":
                    if agent in configured and len(configured) > 1:
                        configured.remove(agent)
                        notes.append(f"{agent} dropped from agent_numbers")
                    elif agent not in configured:
                        configured.append(agent)
                        notes.append(f"{agent} back in agent_numbers")
                elif change == "duplicate":
                    # From an agent configured now, a tester it lists: a copy that is served.
                    other = rng.choice([a for a in configured if a != agent] or AGENTS)
                    listed = [i for i in range(world[other].count) if i not in world[other].removed]
                    source = rng.choice(listed or [0])
                    index = rng.randrange(state.count)
                    tester_id = generate_testers(seed, other, MAX_TESTERS)[source]["id"]
                    state.changes.setdefault(index, {})["id"] = tester_id
                    notes.append(f"{agent} #{index} lists {other}'s #{source}")
                elif change == "extra":
                    state.extra = not state.extra
                    notes.append(f"{agent} extra field {'on' if state.extra else 'off'}")
                elif change == "word":
                    state.changes.setdefault(index, {})["carrierid"] = CARRIER_WORD
                    notes.append(f"{agent} #{index} carrierid as a word")
        agents = sorted(configured)
        plan = RunPlan(number, agents, {a: s.override() for a, s in world.items()}, changes=notes)
        roll = rng.random()
        if number > 1 and roll < 0.15:  # noqa: PLR2004
            plan.kind, plan.target = "fail", rng.choice(agents)
            plan.hand_build = rng.random() < 0.5  # noqa: PLR2004
        elif number > 1 and roll < 0.3:  # noqa: PLR2004
            plan.kind, plan.target = "sigterm", rng.choice(agents)
            plan.hand_build = rng.random() < 0.5  # noqa: PLR2004
        elif number > 1 and roll < 0.38:  # noqa: PLR2004
            # The last agent: the loader has the others' records when it is killed.
            plan.kind, plan.target = "loader-kill", agents[-1]
            plan.hand_build = rng.random() < 0.5  # noqa: PLR2004
        elif number > 1 and roll < 0.46:  # noqa: PLR2004
            plan.kind, plan.delay = "dbt-sigterm", round(rng.uniform(0.0, 2.0), 2)
            plan.hand_build = rng.random() < 0.5  # noqa: PLR2004
        elif number > 1 and roll < 0.54 and postgres:  # noqa: PLR2004
            plan.kind, plan.target = "pg-drop", agents[-1]
        for _ in range(rng.choice((0, 1, 1, 2))):
            agent = rng.choice(agents)
            if agent != plan.target:
                plan.faults.append((agent, rng.choice(RIDE_THROUGH)))
        plans.append(plan)
    return plans


def with_faults(plan: RunPlan, seed: int, api_key: str) -> dict[str, t.Any]:
    """The scenario document of ``plan``, its faults included."""
    document = scenario_document(seed, api_key, plan.overrides)
    bodies = Scenario(document)
    for agent, name in plan.faults:
        entry = document["agent_overrides"].setdefault(agent, {})
        entry.setdefault("faults", []).extend(_fault(name, bodies.success_body(agent)))
    if plan.kind == "fail" and plan.target:
        entry = document["agent_overrides"].setdefault(plan.target, {})
        entry["faults"] = [{"status": 500, "times": "always"}]
    if plan.kind == "sigterm" and plan.target:
        entry = document["agent_overrides"].setdefault(plan.target, {})
        entry["faults"] = [{"kind": "hang", "seconds": HANG_SECONDS}]
    if plan.kind in {"loader-kill", "pg-drop"} and plan.target:
        entry = document["agent_overrides"].setdefault(plan.target, {})
        entry["faults"] = [{"kind": "hang", "seconds": LOADER_HANG_SECONDS}]
    return document


# The oracle ---------------------------------------------------------------------------


@dataclass
class Loaded:
    """One run as the warehouse has it: what each agent delivered, and whether it succeeded."""

    run_id: str
    answers: dict[str, list[dict[str, t.Any]]]
    """Per agent whose answer was loaded, its testers in order."""
    synced: set[str] | None
    """The agents the run synced (its ``testers_sync_run_agents``); None: the run failed."""


@dataclass
class Tester:
    """The oracle's view of one tester."""

    state: tuple[str, str | None, str | None]
    agent: str
    """The agent whose answer listed it (synced_agent_no)."""
    attributes: dict[str, t.Any]
    open: bool = True
    """Its last period has not ended (is_agent_synced)."""
    removed: bool = False
    periods: list[list[t.Any]] = field(default_factory=list)
    """[agent_no, test_status, status, end_reason] per period, oldest first."""


def _chosen_copies(answers: dict[str, list[dict[str, t.Any]]]) -> dict[str, tuple[str, dict]]:
    """One copy per tester: the one under the highest agent number, the last of its list."""
    chosen: dict[str, tuple[str, dict]] = {}
    for agent in sorted(answers, key=int):
        for tester in answers[agent]:
            chosen[tester["id"]] = (agent, tester)
    return chosen


def _state(tester: dict[str, t.Any], agent: str) -> tuple[str, str | None, str | None]:
    return (str(tester.get("agent_no") or agent), tester.get("test_status"), tester.get("status"))


def replay(runs: list[Loaded]) -> dict[str, Tester]:  # noqa: C901 - the rules, in one place
    """Every tester ever seen, after docs/models.md's rules applied to ``runs`` in order."""
    testers: dict[str, Tester] = {}
    for run in runs:
        chosen = _chosen_copies(run.answers)
        for tester_id, (agent, answer) in chosen.items():
            state = _state(answer, agent)
            known = testers.get(tester_id)
            if known is None:
                testers[tester_id] = Tester(state, agent, answer, periods=[[*state, None]])
                continue
            if not known.open:  # new, back after a removal, or its agent synced again
                known.periods.append([*state, None])
            elif state != known.state:
                reason = "agent_changed" if state[0] != known.state[0] else "status_changed"
                known.periods[-1][3] = reason
                known.periods.append([*state, None])
            known.state, known.agent, known.attributes = state, agent, answer
            known.open, known.removed = True, False
        if run.synced is None:
            continue  # a failed run removes nothing
        for tester_id, known in testers.items():
            if known.removed or tester_id in chosen:
                continue
            if known.agent in run.synced:
                if known.open:
                    known.periods[-1][3] = "removed"
                known.removed, known.open = True, False
            elif known.open:
                known.periods[-1][3] = "agent_no_longer_synced"
                known.open = False
    return testers


def _drift(tester: dict[str, t.Any]) -> dict[str, t.Any] | None:
    drifted = {k: v for k, v in tester.items() if k == "brand_id"}
    if isinstance(tester.get("carrierid"), str):
        drifted["carrierid"] = tester["carrierid"]
    return drifted or None


def expected_models(runs: list[Loaded]) -> dict[str, list[tuple[str, ...]]]:
    """The rows (as text, sorted) the models must hold once ``runs`` are built."""
    testers = replay(runs)
    current = {k: v for k, v in testers.items() if not v.removed}
    rows = []
    for tester_id, known in current.items():
        carrier = known.attributes.get("carrierid")
        rows.append(
            (
                tester_id,
                known.state[0],
                known.state[1] or "",
                known.state[2] or "",
                "" if carrier is None or isinstance(carrier, str) else str(carrier),
                "true" if known.open else "false",
                canonical_json(_drift(known.attributes)),
            )
        )
    latest = next((run for run in reversed(runs) if run.synced is not None), None)
    summary = []
    for agent in sorted(latest.synced if latest else ()):
        mine = [k for k in current.values() if k.open and k.state[0] == agent]
        counts = [sum(1 for k in mine if k.state[1] == s) for s in KNOWN_STATUSES]
        summary.append((agent, str(len(mine)), *map(str, counts), str(len(mine) - sum(counts))))
    history = sorted((tester_id, json.dumps(known.periods)) for tester_id, known in testers.items())
    return {"testers": sorted(rows), "summary": summary, "history": history}


def canonical_json(value: object) -> str:
    """JSON text (or a JSON string) in one spelling, so that two warehouses' texts compare."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = json.loads(value)
    return json.dumps(value, sort_keys=True)


def compare(
    expected: dict[str, list[tuple[str, ...]]], actual: dict[str, list[tuple[str, ...]]]
) -> list[str]:
    """What differs between two sets of model rows, one line per model and row."""
    problems = []
    for model, rows in expected.items():
        got = actual.get(model, [])
        missing = sorted(set(rows) - set(got))
        extra = sorted(set(got) - set(rows))
        problems += [f"{model}: expected, not found: {row}" for row in missing[:5]]
        problems += [f"{model}: found, not expected: {row}" for row in extra[:5]]
        if len(missing) + len(extra) > 10:  # noqa: PLR2004
            problems.append(f"{model}: {len(missing)} missing and {len(extra)} extra rows in all")
    return problems
