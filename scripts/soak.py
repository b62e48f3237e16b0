"""The chaos soak: many runs of the real job against a changing world, checked by an oracle.

    python3 scripts/soak.py --seed 7 --runs 20 [--postgres] [--record]

Runs ``meltano run testers-duckdb`` (or ``testers-postgres``) again and again
against the sandbox, whose scenario a seeded plan (scripts/soak_world.py) changes
between runs: testers added, removed and back, status changes (values the summary
does not know included), agents emptied, dropped from ``agent_numbers`` and added
back, testers listed under two agents, fields the schema does not have; API
faults the tap rides through; and in some runs a failure it must stop on (a 500
on one agent, or SIGTERM to the tap while one agent's request hangs), sometimes
followed by a ``dbt build`` by hand.

After every run it checks the promises of docs/models.md and docs/failures.md
(see ``check_run``) and prints each broken one with the seed and run number. Its
last line is ``soak: R runs (S ok, F failed as expected), N faults injected, V
invariant violations``; it exits 1 when V > 0. The same seed gives the same plan.
``--record`` adds the figures to docs/soak.json (docs/reliability.md shows them).

Like scripts/demo.py it sets up ``.venv`` and the plugins it needs on a fresh
clone, and installs nothing when they are there already.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bootstrap import BIN, ROOT, commit, continue_in_environment, meltano_install, say

RECORD = ROOT / "docs" / "soak.json"
PLUGIN_FOLDERS = ("extractors", "loaders", "utilities", "mappers", "transformers")
"""The folders of .meltano/ holding installed plugins, linked into each soak's own .meltano/."""
RAW_TABLES = ("testers", "testers_observations", "testers_sync_run_agents", "testers_sync_runs")
JOB_TIMEOUT = 600
TAP_MAX_RETRIES_WHEN_FAILING = "1"
"""A failing run gives up after two attempts: the soak tests the failure, not the wait."""
TESTERS_SQL = (
    "select id, agent_no, coalesce(test_status, ''), coalesce(status, ''), "
    "coalesce(cast(carrierid as varchar), ''), cast(is_agent_synced as varchar), "
    "coalesce(drifted_fields, '') from {schema}.kaleyra_rcs__testers"
)
SUMMARY_SQL = (
    "select agent_no, cast(testers as varchar), cast(accepted as varchar), "
    "cast(pending as varchar), cast(rejected as varchar), cast(expired as varchar), "
    "cast(other_status as varchar) from {schema}.kaleyra_rcs__agent_summary"
)
HISTORY_SQL = (
    "select id, agent_no, coalesce(test_status, ''), coalesce(status, ''), "
    "coalesce(end_reason, ''), cast(valid_from as varchar), "
    "coalesce(cast(valid_to as varchar), '') "
    "from {schema}.kaleyra_rcs__tester_status_history order by id, valid_from"
)


class Warehouse:
    """Where the job loads and builds: its environment, and a way to read rows as text."""

    kind = "duckdb"

    def __init__(self, work: Path) -> None:
        """The job's file in the soak's folder, schema ``kaleyra`` as the loader makes it."""
        self.work = work
        self.path = work / "warehouse.duckdb"
        self.schema = "kaleyra"

    def env(self) -> dict[str, str]:
        """The loader's variables; dbt reads the same ones."""
        return {"TARGET_DUCKDB_FILEPATH": str(self.path)}

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        """Rows of ``sql`` (``{schema}`` filled in), every value text, NULL as ''."""
        import duckdb  # noqa: PLC0415 - importable once continue_in_environment() ran

        if not self.path.exists():
            return []
        with duckdb.connect(str(self.path), read_only=True) as db:
            found = db.sql(sql.format(schema=self.schema)).fetchall()
        return [tuple("" if v is None else str(v) for v in row) for row in found]

    def has_table(self, name: str) -> bool:
        """Whether the schema has table ``name`` yet (before the first load it has none)."""
        found = self.rows(
            "select count(*) from information_schema.tables where table_schema = '{schema}' "  # noqa: S608 - the soak's own table names
            f"and table_name = '{name}'"
        )
        return bool(found) and found[0][0] != "0"

    def has_models(self) -> bool:
        """Whether dbt has built the models yet (before the first successful job it has not)."""
        return self.has_table("kaleyra_rcs__testers")

    def rebuilt(self, job_env: dict[str, str]) -> tuple[Warehouse, subprocess.CompletedProcess]:
        """A copy of the raw tables in a fresh file, every model built there from scratch."""
        fresh = Warehouse(self.work / "rebuild")
        fresh.path.parent.mkdir(exist_ok=True)
        fresh.path.unlink(missing_ok=True)
        shutil.copyfile(self.path, fresh.path)
        env = {**job_env, **fresh.env()}
        done = invoke_dbt(env, self.kind, "--full-refresh")
        return fresh, done

    def loader_connected(self, pid: int) -> bool:
        """Whether process ``pid`` has the warehouse file open."""
        try:
            return any(fd.readlink() == self.path for fd in Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            return False

    def stop(self) -> None:
        """Nothing to stop: DuckDB is a file."""


class PostgresWarehouse(Warehouse):
    """A throwaway PostgreSQL cluster (tests/warehouses.py's), a schema per build."""

    kind = "postgres"

    def __init__(self, work: Path, schema: str = "kaleyra_soak", server: object = None) -> None:
        """A schema in a new cluster, or ``schema`` in ``server`` (the rebuild's)."""
        super().__init__(work)
        if server is None:
            from tests.warehouses import Postgres  # noqa: PLC0415 - only with --postgres

            # Not inside ``work`` (mode 700, root's): the server runs as user postgres.
            folder = Path(tempfile.mkdtemp(prefix="kaleyra-soak-postgres-"))
            server = Postgres(folder)
        self.server = server
        self.schema = schema

    def env(self) -> dict[str, str]:
        """The loader's variables for this schema; dbt reads the same ones."""
        return {
            "TARGET_POSTGRES_HOST": "127.0.0.1",
            "TARGET_POSTGRES_PORT": str(self.server.port),  # type: ignore[attr-defined]
            "TARGET_POSTGRES_USER": "postgres",
            "TARGET_POSTGRES_PASSWORD": "unused-with-trust-auth",
            "TARGET_POSTGRES_DATABASE": "warehouse",
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": self.schema,
        }

    def loader_connected(self, pid: int) -> bool:  # noqa: ARG002 - any client of the database is the loader
        """Whether anyone (the loader: nothing else connects mid-load) holds a connection."""
        return self.rows(self.CLIENTS.format(what="count(*)"))[0][0] != "0"

    def drop_connections(self) -> bool:
        """Terminate every client's connection, as a server restart or a network cut would."""
        return self.rows(self.CLIENTS.format(what="count(pg_terminate_backend(pid))"))[0][0] != "0"

    CLIENTS = (
        "select {what} from pg_stat_activity "
        "where datname = 'warehouse' and pid <> pg_backend_pid()"
    )

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        """Rows of ``sql`` via psql, every value text, NULL as ''."""
        return [tuple(r) for r in self.server.psql(sql.format(schema=self.schema))]  # type: ignore[attr-defined]

    def rebuilt(self, job_env: dict[str, str]) -> tuple[Warehouse, subprocess.CompletedProcess]:
        """The raw tables copied into a fresh schema, every model built there from scratch."""
        fresh = PostgresWarehouse(self.work, f"{self.schema}_rebuild", self.server)
        statements = [
            f"drop schema if exists {fresh.schema} cascade",
            f"create schema {fresh.schema}",
        ]
        statements += [
            f"create table {fresh.schema}.{name} as select * from {self.schema}.{name}"  # noqa: S608 - our names
            for name in RAW_TABLES
        ]
        self.server.psql("; ".join(statements))  # type: ignore[attr-defined]
        done = invoke_dbt({**job_env, **fresh.env()}, self.kind, "--full-refresh")
        return fresh, done

    def stop(self) -> None:
        """Stop the throwaway cluster and delete it."""
        self.server.stop()  # type: ignore[attr-defined]
        shutil.rmtree(self.server.base, ignore_errors=True)  # type: ignore[attr-defined]


def own_meltano_folder(work: Path) -> Path:
    """A .meltano/ of the soak's own (its runs' catalogs, state) linking the installed plugins."""
    folder = work / ".meltano"
    folder.mkdir()
    for name in PLUGIN_FOLDERS:
        (folder / name).symlink_to(ROOT / ".meltano" / name, target_is_directory=True)
    return folder


def invoke_dbt(env: dict[str, str], kind: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``meltano invoke dbt-<kind> build`` (no unit tests: the same build as the job's).

    Every Meltano command here says ``--no-install``: .meltano/'s plugins are shared
    with whatever else runs, and a copy of the project (scripts/soak_mutants.py)
    links them, where Meltano would otherwise see a changed ``pip_url`` and install
    over them. (``MELTANO_AUTO_INSTALL=false`` is not enough in Meltano 4.4.)
    """
    return subprocess.run(
        [str(BIN / "meltano"), "--log-level=warning", "invoke", "--no-install",
         f"dbt-{kind}", "build", "--exclude-resource-type", "unit_test", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT, check=False,
    )  # fmt: skip


class Sandbox:
    """The sandbox as a process of the soak's own; its scenario is replaced between runs."""

    def __init__(self, work: Path) -> None:
        """Start it on a free port, its log in the soak's folder."""
        self.log = (work / "sandbox.log").open("w")
        self.process = subprocess.Popen(
            [str(BIN / "tap-kaleyra-rcs-sandbox"), "--port", "0"],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            raise SystemExit("the sandbox did not start")
        self.port = self.url.rsplit(":", 1)[1]

    def post(self, path: str, document: object) -> None:
        """POST ``document`` to a control endpoint."""
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            f"{self.url}{path}", data=json.dumps(document).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            answer.read()

    def stats(self) -> dict:
        """``/_sandbox/stats``: requests per agent and in flight."""
        with urllib.request.urlopen(f"{self.url}/_sandbox/stats", timeout=10) as answer:  # noqa: S310
            return json.loads(answer.read())

    def stop(self) -> None:
        """Stop it; a request it still holds gives up at once."""
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


def descendant(meltano_pid: int, executable: str) -> int | None:
    """The process among ``meltano_pid``'s descendants running ``bin/<executable>``, if any."""
    marker = f"bin/{executable}\0"
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    pending = [meltano_pid]
    while pending:
        pid = pending.pop()
        for child in children.get(pid, []):
            if marker in commands.get(child, ""):
                return child
            pending.append(child)
    return None


MELTANO_7047 = ("meltano/core/logging/utils.py", "_write_line_writer", "wait_closed")
"""What Meltano's own traceback on a loader that died holds (meltano/meltano#7047)."""
MELTANO_7047_NOTE = (
    "Meltano's own traceback after its loader died (meltano/meltano#7047), not the project's"
)
LOADER_EXECUTABLES = {"duckdb": "target-duckdb-file", "postgres": "target-postgres-connection"}
"""What meltano.yml runs as each loader (target-duckdb runs through its wrapper)."""


class Soak:
    """One soak: the plan, the pipeline, the runs as loaded, and the violations found."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        """Plan every run from the seed; start the sandbox and the warehouse."""
        from soak_world import plan_runs  # noqa: PLC0415 - imports the tap: inside .venv

        self.args = args
        self.work = work
        self.api_key = secrets.token_urlsafe(24)
        self.plans = plan_runs(args.seed, args.runs, postgres=args.postgres)
        self.delivered = False
        """Whether the last run's signal or loader fault reached its process."""
        self.sandbox = Sandbox(work)
        self.warehouse: Warehouse = PostgresWarehouse(work) if args.postgres else Warehouse(work)
        self.loaded: list = []
        self.built_through = 0
        self.interrupted_at: list[int] = []
        """Since the last complete build, the runs loaded when each interrupted build began."""
        """How many of ``loaded`` the models were last built from."""
        self.known_runs: set[str] = set()
        self.last_answered: dict[str, int | None] = {}
        """Per agent, its testers in its last answer the tap's state surely has; None: unsure."""
        self.violations: list[str] = []
        self.outputs: list[str] = []
        self.ok = self.failed = self.faults = 0
        self.upstream = 0
        """Meltano's known traceback when its loader died (meltano/meltano#7047)."""
        self.job_seconds: list[float] = []

    def env(self, plan: object) -> dict[str, str]:
        """The job's environment for ``plan``: the soak's own state, files, key and agents."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TAP_KALEYRA_RCS_", "TARGET_", "MELTANO_", "DBT_"))
        }
        env.update(
            {
                "MELTANO_ENVIRONMENT": "sandbox",
                "MELTANO_DATABASE_URI": f"sqlite:///{self.work / 'meltano.db'}",
                "MELTANO_SYS_DIR_ROOT": str(self.work / ".meltano"),
                "KALEYRA_SANDBOX_PORT": self.sandbox.port,
                "TAP_KALEYRA_RCS_API_KEY": self.api_key,
                "TAP_KALEYRA_RCS_AGENT_NUMBERS": json.dumps(plan.agents),  # type: ignore[attr-defined]
                "DBT_LOG_LEVEL_FILE": "none",
                **{
                    f"DBT_{kind}_DBT_{folder}_PATH": str(self.work / "dbt" / folder.lower())
                    for kind in ("DUCKDB", "POSTGRES")
                    for folder in ("TARGET", "LOG")
                },
                **self.warehouse.env(),
            }
        )
        if plan.kind == "fail":  # type: ignore[attr-defined]
            env["TAP_KALEYRA_RCS_MAX_RETRIES"] = TAP_MAX_RETRIES_WHEN_FAILING
        return env

    def violation(self, number: int, what: str) -> None:
        """Note a broken promise, with the seed and run that reproduce it."""
        line = f"VIOLATION seed {self.args.seed} run {number}: {what}"
        self.violations.append(line)
        print(line, flush=True)

    def models(self, warehouse: Warehouse | None = None) -> dict[str, list[tuple[str, ...]]]:
        """The three models' rows as the oracle spells them."""
        from soak_world import canonical_json  # noqa: PLC0415

        where = warehouse or self.warehouse
        if not where.has_models():
            return {}
        testers = sorted((*row[:6], canonical_json(row[6])) for row in where.rows(TESTERS_SQL))
        periods: dict[str, list] = {}
        for row in where.rows(HISTORY_SQL):
            periods.setdefault(row[0], []).append(
                [row[1], row[2] or None, row[3] or None, row[4] or None]
            )
        history = sorted((k, json.dumps(v)) for k, v in periods.items())
        return {"testers": testers, "summary": sorted(where.rows(SUMMARY_SQL)), "history": history}

    def run_job(self, plan: object, env: dict[str, str]) -> tuple[int, str]:
        """The job, with SIGTERM sent to the tap while the held agent's request hangs."""
        command = [
            str(BIN / "meltano"),
            "--log-level=info",
            "run",
            "--no-install",
            f"testers-{self.warehouse.kind}",
        ]
        log = self.work / f"run-{plan.number}.log"  # type: ignore[attr-defined]
        started = time.monotonic()
        with log.open("w") as sink:
            job = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
            )
            self.delivered = self.inject(plan, job)
            try:
                status = job.wait(timeout=JOB_TIMEOUT)
            except subprocess.TimeoutExpired:
                job.kill()
                status = job.wait()
        self.job_seconds.append(time.monotonic() - started)
        return status, log.read_text(errors="replace")

    def inject(self, plan: object, job: subprocess.Popen) -> bool:
        """The run's signal or loader fault, at its moment; whether it was delivered."""
        kind = plan.kind  # type: ignore[attr-defined]
        if kind == "dbt-sigterm":
            return self.signal_dbt(plan, job)
        if kind not in {"sigterm", "loader-kill", "pg-drop"} or not self.wait_for_held(plan, job):
            return False
        if kind == "sigterm":
            return self.signal_tap(plan, job)
        loader = self.wait_for_loader(job)
        if loader is None:
            self.violation(plan.number, f"the loader never reached the warehouse for {kind}")  # type: ignore[attr-defined]
            return False
        if kind == "loader-kill":
            os.kill(loader, signal.SIGKILL)
            return True
        return self.warehouse.drop_connections()  # type: ignore[attr-defined]

    def signal_tap(self, plan: object, job: subprocess.Popen) -> bool:
        """SIGTERM to the tap (its held request in flight)."""
        pid = descendant(job.pid, "tap-kaleyra-rcs")
        if pid is None:
            self.violation(plan.number, "no tap process to signal")  # type: ignore[attr-defined]
            return False
        os.kill(pid, signal.SIGTERM)
        return True

    def wait_for_loader(self, job: subprocess.Popen) -> int | None:
        """The loader's process once it holds the warehouse (mid-load): its pid, or None."""
        from soak_world import LOADER_HANG_SECONDS  # noqa: PLC0415

        deadline = time.monotonic() + LOADER_HANG_SECONDS
        while time.monotonic() < deadline and job.poll() is None:
            pid = descendant(job.pid, LOADER_EXECUTABLES[self.warehouse.kind])
            if pid is not None and self.warehouse.loader_connected(pid):
                return pid
            time.sleep(0.05)
        return None

    def wait_for_held(self, plan: object, job: subprocess.Popen) -> bool:
        """Wait until the held agent's request is in flight at the sandbox."""
        agent = plan.target  # type: ignore[attr-defined]
        before = self.sandbox_requests(agent)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and job.poll() is None:
            stats = self.sandbox.stats()
            if stats["in_flight"] >= 1 and self._arrived(stats, agent) > before:
                return True
            time.sleep(0.05)
        self.violation(plan.number, f"agent {agent}'s held request never reached the sandbox")  # type: ignore[attr-defined]
        return False

    def signal_dbt(self, plan: object, job: subprocess.Popen) -> bool:
        """SIGTERM to dbt the planned delay after it has parsed the project (its manifest).

        The moment within the build varies from run to run (dbt's speed); whether the
        signal arrived is what the soak records, and a build that ended first is a
        clean run.
        """
        manifest = self.work / "dbt" / "target" / "manifest.json"
        started = time.time()
        deadline = time.monotonic() + JOB_TIMEOUT
        while time.monotonic() < deadline and job.poll() is None:
            pid = descendant(job.pid, "dbt")
            if pid is not None and manifest.exists() and manifest.stat().st_mtime >= started:
                time.sleep(plan.delay)  # type: ignore[attr-defined]
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    return False
                return True
            time.sleep(0.05)
        return False

    def sandbox_requests(self, agent: str) -> int:
        """How many requests ``agent`` has sent the sandbox so far."""
        return self._arrived(self.sandbox.stats(), agent)

    @staticmethod
    def _arrived(stats: dict, agent: str) -> int:
        return int(stats.get("by_agent", {}).get(agent, 0))

    def new_runs(self) -> list[tuple[str, dict, dict | None]]:
        """Runs loaded since the last look: (run_id, observations per agent, run record or None)."""
        found = self.warehouse.rows(
            "select run_id, cast(min(run_started_at) as varchar) "
            "from {schema}.testers_observations "
            "group by run_id union select run_id, cast(started_at as varchar) "
            "from {schema}.testers_sync_runs"
        ) if self.warehouse.has_table("testers_observations") else []  # fmt: skip
        new = sorted({(when, run_id) for run_id, when in found if run_id not in self.known_runs})
        result = []
        for _, run_id in new:
            self.known_runs.add(run_id)
            answers: dict[str, list[dict]] = {}
            for (
                agent,
                tester_id,
                agent_no,
                test_status,
                status,
                carrier,
                drifted,
                phoneno,
                dcs,
                created,
            ) in self.warehouse.rows(
                "select synced_agent_no, id, agent_no, test_status, status, "  # noqa: S608 - a run id the warehouse gave
                "cast(carrierid as varchar), drifted_fields, phoneno, "
                "cast(override_dcs_check as varchar), cast(created_date as varchar) "
                "from {schema}.testers_observations "
                f"where run_id = '{run_id}' order by synced_agent_no, position"
            ):
                answers.setdefault(agent, []).append(
                    {"id": tester_id, "agent_no": agent_no, "test_status": test_status or None,
                     "status": status or None, "carrierid": carrier, "drifted": drifted,
                     "phoneno": phoneno, "override_dcs_check": dcs, "created_date": created}
                )  # fmt: skip
            record = self.warehouse.rows(
                "select coalesce(held_agents, '') from {schema}.testers_sync_runs "  # noqa: S608 - a run id the warehouse gave
                f"where run_id = '{run_id}'"
            )
            synced = self.warehouse.rows(
                "select agent_no, cast(testers as varchar) from {schema}.testers_sync_run_agents "  # noqa: S608 - a run id the warehouse gave
                f"where run_id = '{run_id}'"
            )
            run = None
            if record:
                run = {"held": [a for a in record[0][0].split(",") if a], "synced": dict(synced)}
            result.append((run_id, answers, run))
        return result

    def check_delivered(self, number: int, planned: dict, answers: dict) -> None:
        """Each agent's loaded observations are exactly what the sandbox served it, in order."""
        from soak_world import canonical_json  # noqa: PLC0415

        for agent, observed in answers.items():
            if agent not in planned:
                self.violation(number, f"agent {agent} loaded though not in agent_numbers")
                continue
            for position, (seen, sent) in enumerate(zip(observed, planned[agent], strict=False)):
                word = isinstance(sent.get("carrierid"), str)
                want_drift = {k: v for k, v in sent.items() if k == "brand_id"}
                if word:
                    want_drift["carrierid"] = sent["carrierid"]
                expected = (sent["id"], sent["agent_no"], sent["test_status"], sent["status"],
                            "" if word else str(sent["carrierid"]),
                            canonical_json(want_drift or None), sent["phoneno"],
                            str(sent["override_dcs_check"]).lower(),
                            str(sent["created_date"]))  # fmt: skip
                got = (seen["id"], seen["agent_no"], seen["test_status"], seen["status"],
                       seen["carrierid"], canonical_json(seen["drifted"]), seen["phoneno"],
                       seen["override_dcs_check"].lower(), seen["created_date"])  # fmt: skip
                if got != expected:
                    self.violation(
                        number, f"agent {agent} #{position}: loaded {got}, served {expected}"
                    )
            if len(observed) != len(planned[agent]):
                self.violation(
                    number,
                    f"agent {agent}: {len(observed)} observations loaded, "
                    f"{len(planned[agent])} served",
                )

    def check_run(self, plan: object, status: int, output: str) -> None:  # noqa: C901, PLR0912, PLR0915
        """Every promise the soak checks after one run; each broken one is a violation."""
        from soak_world import Loaded, compare, expected_models  # noqa: PLC0415

        number = plan.number  # type: ignore[attr-defined]
        planned = plan.answers(self.args.seed)  # type: ignore[attr-defined]
        killed_dbt = plan.kind == "dbt-sigterm" and self.delivered  # type: ignore[attr-defined]
        if (plan.must_fail or killed_dbt) and status == 0:  # type: ignore[attr-defined]
            self.violation(number, f"the job succeeded, though a {plan.kind} was injected")  # type: ignore[attr-defined]
        if not (plan.must_fail or plan.may_fail) and status != 0:  # type: ignore[attr-defined]
            self.violation(
                number, f"the job exited {status}; the tail of its output:\n{output[-1500:]}"
            )
        runs = self.new_runs()
        if len(runs) > 1:
            self.violation(number, f"{len(runs)} runs loaded by one job")
        for run_id, loaded, record in runs:
            self.check_delivered(number, planned, loaded)
            # Checked equal above: the oracle goes on with what the sandbox served.
            answers = {agent: planned[agent] for agent in loaded if agent in planned}
            if record is None:
                self.loaded.append(Loaded(run_id, answers, None))
                for agent in answers:
                    self.last_answered[agent] = None  # a failed run's state may or may not be kept
                continue
            if plan.must_fail:  # type: ignore[attr-defined]
                # (A job whose dbt step was killed has loaded the tap's whole run.)
                self.violation(number, f"a failed job sent a run record ({run_id})")
            if set(answers) | {a for a, n in record["synced"].items() if n == "0"} | set(
                record["held"]
            ) != set(plan.agents):  # type: ignore[attr-defined]
                self.violation(number, f"agents loaded {sorted(answers)}, configured {plan.agents}")  # type: ignore[attr-defined]
            for agent in plan.agents:  # type: ignore[attr-defined]
                empty = not planned[agent]
                before = self.last_answered.get(agent, 0)
                held = agent in record["held"]
                if held and not empty:
                    self.violation(number, f"agent {agent} held back though it listed testers")
                if empty and before is not None and held != (before > 0):
                    self.violation(
                        number,
                        f"agent {agent} answered no testers after {before}: held back {held}, "
                        f"expected {before > 0} (docs/models.md, Agents a run left out)",
                    )
                self.last_answered[agent] = len(planned[agent])
            want_synced = set(plan.agents) - set(record["held"])  # type: ignore[attr-defined]
            if set(record["synced"]) != want_synced:
                self.violation(
                    number, f"synced {sorted(record['synced'])}, expected {sorted(want_synced)}"
                )
            self.loaded.append(Loaded(run_id, answers, set(record["synced"])))
        before_models = self.previous_models
        if status != 0 and plan.hand_build:  # type: ignore[attr-defined]
            env = self.env(plan)
            env.pop("TAP_KALEYRA_RCS_MAX_RETRIES", None)
            built = invoke_dbt(env, self.warehouse.kind)
            self.outputs.append(built.stdout + built.stderr)
            if built.returncode != 0:
                self.violation(
                    number, f"dbt build by hand after the failure failed:\n{built.stdout[-1500:]}"
                )
            else:
                self.built_through = len(self.loaded)
                self.interrupted_at = []
        elif status == 0:
            self.built_through = len(self.loaded)
            self.interrupted_at = []
        actual = self.models()
        # docs/models.md "After a failed run": a job whose tap or loader fails stops
        # before dbt.
        stopped_before_dbt = status != 0 and not killed_dbt and not plan.hand_build  # type: ignore[attr-defined]
        if stopped_before_dbt and actual != before_models:
            self.violation(number, "a failed job changed the models")
        if killed_dbt and status != 0 and not plan.hand_build:  # type: ignore[attr-defined]
            self.interrupted_at.append(len(self.loaded))
        if self.interrupted_at:
            self.check_interrupted_build(number, actual)
        elif actual or self.built_through:
            expected = expected_models(self.loaded[: self.built_through])
            for problem in compare(expected, actual):
                self.violation(number, problem)
            self.check_history(number)
        self.previous_models = actual

    def check_interrupted_build(self, number: int, actual: dict) -> None:
        """Since dbt was killed mid-build: each model as one of the builds since left it.

        dbt builds one model at a time, each in its own transaction, so a model is never
        half built; which of them a signal reached varies. Until a build runs to its end,
        each model must equal what the models hold after the last complete build or
        after one of the interrupted builds since (the models may differ from each other
        meanwhile, so the cross-model checks wait). The next complete build (the next
        successful run's, or one by hand) must show everything loaded: checked then.
        """
        from soak_world import compare, expected_models  # noqa: PLC0415

        candidates = [
            expected_models(self.loaded[:through])
            for through in (self.built_through, *self.interrupted_at)
        ]
        for model in candidates[-1]:
            found = {model: actual.get(model, [])}
            if all(compare({model: known[model]}, found) for known in candidates):
                problems = compare({model: candidates[-1][model]}, found)
                self.violation(
                    number,
                    f"{model} since dbt was killed is as no build since the last complete one "
                    "left it: " + "; ".join(problems[:3]),
                )

    previous_models: dict = {}  # noqa: RUF012 - replaced, never mutated
    rebuilt_at = 0
    """The run after which the last full rebuild was compared."""

    def check_history(self, number: int) -> None:
        """Periods: one open per synced current tester; 'removed' dated by a synced answer."""
        synced_at = {
            row[0]
            for row in self.warehouse.rows(
                "select cast(received_at as varchar) from {schema}.testers_sync_run_agents"
            )
        }
        open_periods: dict[str, int] = {}
        for row in self.warehouse.rows(HISTORY_SQL):
            if not row[6]:
                open_periods[row[0]] = open_periods.get(row[0], 0) + 1
            if row[4] == "removed" and row[6] not in synced_at:
                self.violation(
                    number, f"{row[0]} removed at {row[6]}, no successful run's answer then"
                )
        # Every period starts at an observation of its tester, received within its run.
        for tester_id, valid_from in self.warehouse.rows(
            "select h.id, cast(h.valid_from as varchar) "
            "from {schema}.kaleyra_rcs__tester_status_history as h where not exists ("
            "select 1 from {schema}.stg_kaleyra_rcs__tester_observations as o "
            "where o.id = h.id and o.received_at = h.valid_from "
            "and o.received_at >= o.run_started_at)"
        ):
            self.violation(
                number, f"{tester_id}'s period from {valid_from} starts at no observation"
            )
        for row in self.warehouse.rows(TESTERS_SQL):
            want = 1 if row[5] == "true" else 0
            if open_periods.get(row[0], 0) != want:
                self.violation(
                    number,
                    f"{row[0]} (is_agent_synced {row[5]}) has "
                    f"{open_periods.get(row[0], 0)} open periods",
                )

    def check_rebuild(self, number: int, env: dict[str, str]) -> None:
        """A full rebuild from a copy of the raw tables gives the incremental build's rows."""
        self.rebuilt_at = number
        from soak_world import compare  # noqa: PLC0415

        fresh, done = self.warehouse.rebuilt(env)
        self.outputs.append(done.stdout + done.stderr)
        if done.returncode != 0:
            self.violation(number, f"the full rebuild failed:\n{done.stdout[-1500:]}")
            return
        for problem in compare(self.models(), self.models(fresh)):
            self.violation(number, f"full rebuild differs: {problem}")

    def check_secrets(self, plan: object, texts: list[str]) -> None:
        """No traceback, and no 8-character piece of the soak's API key, in any output.

        One traceback is Meltano's own and known (meltano/meltano#7047): when the
        loader dies while Meltano writes the tap's output to it, Meltano 4.4.1 may
        print a traceback of its ``_write_line_writer``. In a run whose loader the
        soak killed, that one is counted apart (``upstream``), not as a violation:
        nothing in the project can prevent it. Any other traceback is a violation.
        """
        number = plan.number  # type: ignore[attr-defined]
        pieces = {self.api_key[i : i + 8] for i in range(len(self.api_key) - 7)}
        for text in texts:
            for block in text.split("Traceback")[1:]:
                if (
                    plan.kind == "loader-kill"
                    and all(  # type: ignore[attr-defined]
                        mark in block[:6000] for mark in MELTANO_7047
                    )
                ):
                    self.upstream += 1
                    print(f"UPSTREAM seed {self.args.seed} run {number}: {MELTANO_7047_NOTE}")
                    continue
                self.violation(number, f"a traceback in the output: Traceback{block[:600]}")
            if any(piece in text for piece in pieces):
                self.violation(number, "a piece of the API key in the output")

    def check_files(self) -> None:
        """No piece of the API key in any file the soak's runs kept (the warehouse included)."""
        pieces = [self.api_key[i : i + 8].encode() for i in range(len(self.api_key) - 7)]
        for path in self.work.rglob("*"):
            if path.is_symlink() or not path.is_file() or "postgres" in path.parts:
                continue
            data = path.read_bytes()
            if any(piece in data for piece in pieces):
                self.violation(
                    len(self.plans), f"a piece of the API key in {path.relative_to(self.work)}"
                )

    def run(self) -> int:
        """Every planned run, checked; the number of violations."""
        from soak_world import with_faults  # noqa: PLC0415

        done_runs = 0
        for plan in self.plans:
            document = with_faults(plan, self.args.seed, self.api_key)
            self.sandbox.post("/_sandbox/scenario", document)
            env = self.env(plan)
            status, output = self.run_job(plan, env)
            self.faults += len(plan.faults) + (1 if plan.must_fail or self.delivered else 0)
            self.outputs.append(output)
            self.check_run(plan, status, output)
            if (
                status == 0
                and self.args.rebuild_every
                and plan.number % self.args.rebuild_every == 0
            ):
                self.check_rebuild(plan.number, env)
            self.check_secrets(plan, self.outputs)
            self.outputs.clear()
            if (plan.must_fail or plan.may_fail) and status != 0:
                self.failed += 1
            elif status == 0:
                self.ok += 1
            done_runs = plan.number
            missed = " (not delivered)" if plan.may_fail and not self.delivered else ""
            say(
                f"run {plan.number}: {plan.kind}{missed}"
                f"{' ' + str(plan.target) if plan.target else ''}, "
                f"exit {status}, faults {[f for _, f in plan.faults]}; {'; '.join(plan.changes)}"
            )
            if self.violations and self.args.stop_at_first:
                break
        self.plans = self.plans[:done_runs]
        last = self.plans[-1]
        # Once more after the last run, unless just done; only when every loaded run is
        # built (a rebuild would build a failed run's observations the models have not).
        just_done = self.rebuilt_at == last.number
        everything_built = self.built_through == len(self.loaded) and not self.interrupted_at
        if everything_built and not just_done and self.warehouse.has_models():
            self.check_rebuild(last.number, self.env(last))
        self.check_files()
        return len(self.violations)


def record(args: argparse.Namespace, soak: Soak, seconds: float) -> None:
    """Add this soak's figures to docs/soak.json (shown in docs/reliability.md)."""
    entries = json.loads(RECORD.read_text()) if RECORD.exists() else []
    entries.append(
        {
            "warehouse": soak.warehouse.kind,
            "seed": args.seed,
            "runs": len(soak.plans),
            "ok": soak.ok,
            "failed_as_expected": soak.failed,
            "faults": soak.faults,
            "violations": len(soak.violations),
            "meltano_7047": soak.upstream,
            "runs_per_minute": round(len(soak.plans) / (seconds / 60), 1),
            "commit": commit(),
            "command": f"python3 scripts/soak.py --seed {args.seed} --runs {args.runs}"
            + (f" --rebuild-every {args.rebuild_every}" if args.rebuild_every != 1 else "")
            + (" --postgres" if args.postgres else ""),
        }
    )
    RECORD.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")


def plugins_installed(kind: str) -> bool:
    """Whether the plugins the soak runs are in .meltano/ already (then nothing is installed)."""
    needed = ("extractors/tap-kaleyra-rcs", f"loaders/target-{kind}", f"utilities/dbt-{kind}")
    return all((ROOT / ".meltano" / name / "venv").exists() for name in needed)


def main() -> int:
    """Parse, set up if needed, soak, print the last line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--postgres", action="store_true", help="testers-postgres, not DuckDB")
    parser.add_argument(
        "--rebuild-every", type=int, default=1,
        help="compare a full rebuild after every N-th successful run (0: after the last only)",
    )  # fmt: skip
    parser.add_argument("--record", action="store_true", help="add the figures to docs/soak.json")
    parser.add_argument(
        "--stop-at-first", action="store_true", help="stop after the first run with a violation"
    )
    parser.add_argument("--keep", action="store_true", help="keep the soak's folder")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    continue_in_environment("test" if args.postgres else "demo")
    sys.path.insert(0, str(ROOT))
    kind = "postgres" if args.postgres else "duckdb"
    if not plugins_installed(kind):
        meltano_install({**os.environ, "KALEYRA_SANDBOX_PORT": "0"},
                        "tap-kaleyra-rcs", f"target-{kind}", f"dbt-{kind}")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="kaleyra-soak-"))
    own_meltano_folder(work)
    started = time.monotonic()
    soak = None
    try:
        soak = Soak(args, work)
        soak.run()
    finally:
        if soak is not None:
            soak.sandbox.stop()
            soak.warehouse.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    if args.record:
        record(args, soak, seconds)
    say(
        f"{len(soak.plans)} runs in {seconds:.0f} s "
        f"({len(soak.plans) / (seconds / 60):.1f} runs/minute)"
    )
    if soak.upstream:
        say(f"{soak.upstream} x {MELTANO_7047_NOTE}")
    print(
        f"soak: {len(soak.plans)} runs ({soak.ok} ok, {soak.failed} failed as expected), "
        f"{soak.faults} faults injected, {len(soak.violations)} invariant violations"
    )
    return 1 if soak.violations else 0


if __name__ == "__main__":
    sys.exit(main())
