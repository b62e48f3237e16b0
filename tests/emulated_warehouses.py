"""Local stand-ins for BigQuery and Snowflake, started by the end-to-end tests.

Each emulator runs in a virtual environment of its own (``.emulators/<name>``),
installed from the fully pinned ``tests/emulators/<name>.txt`` with uv: it needs a
newer DuckDB than the project's, and it is never part of the demo's set-up.
What each emulator cannot do, and the shims for it, are in docs/warehouses.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import ssl
import subprocess
import threading
import typing as t
from http.server import BaseHTTPRequestHandler, HTTPServer

import requests
from filelock import FileLock

from tests.support import BIN
from tests.warehouses import ROOT, free_port, wait_until

if t.TYPE_CHECKING:
    from pathlib import Path

EMULATORS = ROOT / "tests" / "emulators"
ENVIRONMENTS = ROOT / ".emulators"
START_TIMEOUT = 120
"""Seconds an emulator may take to answer after start-up on a loaded 2-core machine."""


def emulator_python(name: str) -> Path:
    """The Python of emulator ``name``'s environment, installed (again) if its pins changed."""
    requirements = EMULATORS / f"{name}.txt"
    pins = hashlib.sha256(requirements.read_bytes()).hexdigest()
    home = ENVIRONMENTS / name
    python = home / "bin" / "python"
    stamp = home / "installed-pins.sha256"
    ENVIRONMENTS.mkdir(exist_ok=True)
    # pytest-xdist's workers may both start one: the second waits, then finds it installed.
    with FileLock(ENVIRONMENTS / f"{name}.lock"):
        if python.exists() and stamp.exists() and stamp.read_text() == pins:
            return python
        uv = str(BIN / "uv")
        subprocess.run(
            [uv, "venv", "--quiet", "--allow-existing", "--python", str(BIN / "python"), str(home)],
            check=True,
        )
        subprocess.run(
            # Bytecode is written as modules are first imported (tests/conftest.py).
            [uv, "pip", "sync", "--quiet", "--python", str(python), str(requirements)],
            check=True,
        )
        stamp.write_text(pins)
    return python


def start_server(
    name: str, command: list[str], base: Path, answers: t.Callable[[], bool]
) -> subprocess.Popen[bytes]:
    """Start an emulator, its output in ``base/<name>.log``; return once ``answers()`` holds.

    An emulator that exits while starting fails at once, with the end of its log.
    """
    log = base / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=base)

    def started() -> bool:
        if process.poll() is not None:
            message = f"{name} exited: {log.read_text(errors='replace')[-2000:]}"
            raise RuntimeError(message)
        return answers()

    wait_until(started, START_TIMEOUT, what=f"{name} to answer ({log})")
    return process


def stop_process(process: subprocess.Popen[t.Any]) -> None:
    """Terminate an emulator's process and wait for it; kill it if it will not go."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class TokenEndpoint:
    """An OAuth token endpoint on 127.0.0.1 that grants any request a dummy token.

    google-auth exchanges a service-account key for an access token before any
    call; the emulators check none, so a throwaway key and this endpoint are all
    the credentials the loader and dbt need.
    """

    def __init__(self) -> None:
        class Grant(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.dumps(
                    {"access_token": "emulator", "expires_in": 3600, "token_type": "Bearer"}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self._server = HTTPServer(("127.0.0.1", 0), Grant)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def throwaway_service_account(path: Path, pem: str, project: str, token_uri: str) -> Path:
    """A service-account key file holding ``pem``, valid nowhere but here."""
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": project,
                "private_key_id": "emulator",
                "private_key": pem,
                "client_email": f"loader@{project}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return path


STORAGE_WRITE_HOST = "bigquerystorage.googleapis.com"
"""Where the Storage Write client always connects: it does not read BIGQUERY_EMULATOR_HOST."""


class GrpcTlsBridge:
    """An HTTP CONNECT proxy on 127.0.0.1 that ends TLS and passes the gRPC bytes to the emulator.

    target-bigquery's Storage Write client dials ``bigquerystorage.googleapis.com:443``
    over TLS whatever the environment says. gRPC sends every connection through the
    proxy named by ``grpc_proxy`` (a variable nothing else reads), and trusts the roots
    in ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``. So the client, unchanged, opens a tunnel
    here, checks this bridge's certificate for that host (self-signed, trusted by
    that client only), and speaks HTTP/2 to the emulator's plain gRPC port. The
    requested host is never resolved or contacted: every tunnel ends on 127.0.0.1.
    """

    def __init__(self, upstream_port: int, certificate: Path, key: Path) -> None:
        self._upstream_port = upstream_port
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(certificate, key)
        self._tls.set_alpn_protocols(["h2"])
        self.tunnels: list[str] = []
        """The ``host:port`` of every CONNECT, so a test can show the write path came here."""
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._tunnel, "127.0.0.1", 0), self._loop
        ).result()
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _tunnel(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        self._open.add(client)
        try:
            head = await client_in.readuntil(b"\r\n\r\n")
            self.tunnels.append(head.split(b" ", 2)[1].decode())
            client.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await client.drain()
            await client.start_tls(self._tls)
            upstream_in, upstream = await asyncio.open_connection("127.0.0.1", self._upstream_port)
            self._open.add(upstream)
            await asyncio.gather(_pipe(client_in, upstream), _pipe(upstream_in, client))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            client.close()

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            for writer in self._open:
                writer.close()
            await asyncio.sleep(0)  # let the transports close their sockets

        asyncio.run_coroutine_threadsafe(close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    finally:
        sink.close()


class BigQueryEmulator:
    """bqemulator on 127.0.0.1: REST for the loader's and dbt's clients, gRPC for Storage Write."""

    PROJECT = "emulated-project"

    def __init__(self, base: Path) -> None:
        self.base = base
        python = emulator_python("bigquery")
        self.tokens = TokenEndpoint()
        subprocess.run(
            [
                str(python),
                str(EMULATORS / "throwaway_credentials.py"),
                str(base),
                STORAGE_WRITE_HOST,
            ],
            check=True,
        )
        self.key = throwaway_service_account(
            base / "key.json",
            (base / "service-account.pem").read_text(),
            self.PROJECT,
            self.tokens.url,
        )
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.bridge = GrpcTlsBridge(self.grpc_port, base / "tls.crt", base / "tls.key")
        self.url = f"http://127.0.0.1:{self.rest_port}"
        self._process = start_server(
            "bqemulator",
            [
                str(python),
                str(EMULATORS / "bigquery_emulator.py"),
                "start",
                *("--rest-host", "127.0.0.1", "--rest-port", str(self.rest_port)),
                *("--grpc-host", "127.0.0.1", "--grpc-port", str(self.grpc_port)),
                *("--project", self.PROJECT, "--ephemeral"),
            ],
            base,
            self._answers,
        )

    def _answers(self) -> bool:
        try:
            return requests.get(self._api("datasets"), timeout=5).ok
        except requests.ConnectionError:
            return False

    def _api(self, path: str) -> str:
        return f"{self.url}/bigquery/v2/projects/{self.PROJECT}/{path}"

    def env(self, dataset: str) -> dict[str, str]:
        """What the loader and dbt-bigquery need to reach this emulator, in ``dataset``."""
        return {
            "TARGET_BIGQUERY_PROJECT": self.PROJECT,
            "TARGET_BIGQUERY_DATASET": dataset,
            "TARGET_BIGQUERY_LOCATION": "US",
            "TARGET_BIGQUERY_CREDENTIALS_PATH": str(self.key),
            "BIGQUERY_EMULATOR_HOST": self.url,
            "grpc_proxy": f"http://127.0.0.1:{self.bridge.port}",
            "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(self.base / "tls.crt"),
            # google-auth must never look for a metadata server off this machine.
            "GCE_METADATA_HOST": "127.0.0.1:9",
            "GCE_METADATA_IP": "127.0.0.1:9",
            "NO_GCE_CHECK": "True",
        }

    def query(self, sql: str) -> list[tuple[str, ...]]:
        """Rows of a GoogleSQL query, every value as text (NULL as an empty string)."""
        answer = requests.post(
            self._api("queries"),
            json={"query": sql, "useLegacySql": False, "timeoutMs": 60000},
            timeout=120,
        )
        body = answer.json()
        if not answer.ok or "errors" in body or not body.get("jobComplete", False):
            message = f"query failed: {sql}\n{json.dumps(body)[:2000]}"
            raise AssertionError(message)
        return [
            tuple("" if cell["v"] is None else str(cell["v"]) for cell in row["f"])
            for row in body.get("rows", [])
        ]

    def stop(self) -> None:
        stop_process(self._process)
        self.tokens.stop()
        self.bridge.stop()


def without_consistency_waits(meltano_folder: Path) -> None:
    """Have Meltano start target-bigquery without its eventual-consistency sleeps.

    ``meltano_folder`` is a test's own ``.meltano/`` (tests/warehouses.py), whose
    ``loaders/`` links to the installed loaders. It becomes a folder of links,
    but for ``target-bigquery/venv/bin/target-bigquery``: a wrapper that runs
    the installed loader under its own Python through
    tests/emulators/bigquery_loader/without_consistency_waits.py.
    """
    installed = ROOT / ".meltano" / "loaders"
    loaders = meltano_folder / "loaders"
    loaders.unlink()
    loaders.mkdir()
    for plugin in installed.iterdir():
        if plugin.name != "target-bigquery":
            (loaders / plugin.name).symlink_to(plugin, target_is_directory=plugin.is_dir())
    real = installed / "target-bigquery" / "venv" / "bin"
    wrapper = loaders / "target-bigquery" / "venv" / "bin" / "target-bigquery"
    wrapper.parent.mkdir(parents=True)
    shim = EMULATORS / "bigquery_loader" / "without_consistency_waits.py"
    wrapper.write_text(
        f'#!/bin/sh\nexec "{real / "python"}" "{shim}" "{real / "target-bigquery"}" "$@"\n'
    )
    wrapper.chmod(0o755)


class Emulator(t.Protocol):
    """What the warehouse helpers need from an emulator."""

    def env(self, dataset: str) -> dict[str, str]: ...

    def query(self, sql: str) -> list[tuple[str, ...]]: ...


class FakeSnowflake:
    """fakesnow's server on 127.0.0.1, and a client process of the tests' own."""

    DATABASE = "KALEYRA_TESTS"

    def __init__(self, base: Path) -> None:
        python = emulator_python("snowflake")
        self.port = free_port()
        self._server = start_server(
            "fakesnow",
            [str(python.parent / "fakesnow"), "-s", "--host", "127.0.0.1", "-p", str(self.port)],
            base,
            self._answers,
        )
        self._client = subprocess.Popen(
            [str(python), str(EMULATORS / "snowflake_client.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "FAKESNOW_PORT": str(self.port)},
        )
        self._ask({"sql": f"create database if not exists {self.DATABASE}"})

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5):
                return True
        except OSError:
            return False

    def _ask(self, request: dict[str, str]) -> list[tuple[str, ...]]:
        assert self._client.stdin is not None
        assert self._client.stdout is not None
        self._client.stdin.write(json.dumps(request) + "\n")
        self._client.stdin.flush()
        answer = json.loads(self._client.stdout.readline() or '{"error": "client exited"}')
        if "error" in answer:
            message = f"fakesnow: {answer['error']}\nrequest: {json.dumps(request)[:2000]}"
            raise AssertionError(message)
        return [tuple("" if value is None else value for value in row) for row in answer["rows"]]

    def env(self, schema: str) -> dict[str, str]:
        """What the loader, the stand-in load and dbt need to reach this server, in ``schema``."""
        return {
            "TARGET_SNOWFLAKE_ACCOUNT": "emulated",
            "TARGET_SNOWFLAKE_USER": "loader",
            "TARGET_SNOWFLAKE_PASSWORD": "unused-by-fakesnow",
            "TARGET_SNOWFLAKE_DATABASE": self.DATABASE,
            "TARGET_SNOWFLAKE_WAREHOUSE": "LOADING",
            "TARGET_SNOWFLAKE_DEFAULT_TARGET_SCHEMA": schema,
            "FAKESNOW_PORT": str(self.port),
            "DBT_SNOWFLAKE_DBT_PROJECT_DIR": str(EMULATORS / "dbt_snowflake"),
            "DBT_SNOWFLAKE_DBT_PROFILES_DIR": str(EMULATORS / "dbt_snowflake"),
        }

    def query(self, sql: str) -> list[tuple[str, ...]]:
        """Rows of a query in the tests' database, every value as text (NULL as '')."""
        return self._ask({"sql": sql, "database": self.DATABASE})

    def load(self, messages: Path, schema: str) -> int:
        """Load a run's Singer messages as target-snowflake would (snowflake_client.py)."""
        ((records,),) = self._ask(
            {"load": str(messages), "database": self.DATABASE, "schema": schema}
        )
        return int(records)

    def stop(self) -> None:
        if self._client.stdin is not None:
            self._client.stdin.close()
        stop_process(self._client)
        stop_process(self._server)
        if self._client.stdout is not None:
            self._client.stdout.close()
