"""A local stand-in for Kaleyra's Get Tester By Agent endpoint (standard library only).

It behaves as ``shared/kaleyra-rcs-api.md`` describes the real API: it checks
the path, the SID and the ``api-key`` header, answers unknown agents with
``400 RCS904``, and serves deterministic, realistic testers per agent. Faults
are data, not code paths: a scenario lists, per agent, the responses to give
before the normal one (429 with ``Retry-After``, 5xx, HTML or truncated
bodies, dropped or hanging connections), plus latency, new fields, ``null``
data and edits to the tester list. It binds to 127.0.0.1 only.

For tests that must not depend on timing, an agent's override may say
``"hold_until_in_flight": N``: each of its requests is answered only once N
requests to the API are in flight at the same time (or, if that never happens,
after ``"hold_timeout_seconds"``, 10 by default). A request of every worker held
at one point proves they overlapped, whatever the machine's speed.

Control endpoints (no key needed, loopback only):
``GET /_sandbox/stats`` (request counts, and per request its arrival and end),
``POST /_sandbox/scenario`` (replace the scenario), ``POST /_sandbox/reset``
(zero the counters).
"""

from __future__ import annotations

import argparse
import collections
import errno
import json
import random
import socket
import sys
import threading
import time
import typing as t
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tap_kaleyra_rcs.scenario_rules import scenario_problem

DEFAULT_SID = "SANDBOX0000SID01"
DEFAULT_API_KEY = "sandbox-api-key-0000"
DEFAULT_PATH = "/v1/{sid}/rcs/agenttester/testersbyagent"
FIRST_AGENT = 48900
_TEST_STATUSES = ("ACCEPTED", "ACCEPTED", "ACCEPTED", "PENDING", "PENDING", "REJECTED", "EXPIRED")
_STATUSES = ("ACTIVE", "ACTIVE", "ACTIVE", "INACTIVE")
_CARRIERS = (0, 0, 0, 310, 311, 404)
_JAN_2025_MS = 1_735_689_600_000
_YEAR_MS = 365 * 24 * 3600 * 1000
_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}
_ERROR_CODES = {400: "RCS904", 405: "RCS405", 500: "RCS500", 502: "RCS502"}


def default_agents(count: int) -> list[str]:
    """``count`` agent numbers: 48900, 48901, ..."""
    return [str(FIRST_AGENT + i) for i in range(count)]


def generate_testers(seed: int, agent: str, count: int) -> list[dict[str, t.Any]]:
    """The same ``count`` realistic testers for the same seed and agent, every time."""
    rng = random.Random(f"{seed}:{agent}")  # noqa: S311 - test data, not crypto
    return [
        {
            "phoneno": f"1{rng.randrange(10**9, 10**10)}",
            "test_status": rng.choice(_TEST_STATUSES),
            "status": rng.choice(_STATUSES),
            "agent_no": agent,
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "override_dcs_check": rng.random() < 0.5,  # noqa: PLR2004
            "created_date": _JAN_2025_MS + rng.randrange(_YEAR_MS),
            "carrierid": rng.choice(_CARRIERS),
        }
        for _ in range(count)
    ]


class Scenario:
    """What the sandbox serves: accounts, agents, tester lists and per-agent faults."""

    def __init__(self, spec: t.Mapping[str, t.Any] | None = None) -> None:
        """Build from a scenario document (docs/sandbox.md); missing keys get defaults.

        Raises ValueError naming the key when the document says something
        docs/sandbox.md does not allow, rather than serving defaults instead.
        """
        spec = dict(spec or {})
        if problem := scenario_problem(spec):
            raise ValueError(problem)
        self.sid: str = spec.get("sid", DEFAULT_SID)
        self.api_key: str = spec.get("api_key", DEFAULT_API_KEY)
        self.seed: int = int(spec.get("seed", 7))
        self.path: str = spec.get("path", DEFAULT_PATH).format(sid=self.sid)
        agents = spec.get("agents", 3)
        self.agents: list[str] = (
            default_agents(agents) if isinstance(agents, int) else [str(a) for a in agents]
        )
        self.testers_per_agent: int = int(spec.get("testers_per_agent", 5))
        self.latency_ms: float = float(spec.get("latency_ms", 0))
        self.rate_limit: float | None = spec.get("rate_limit_per_second")
        self.overrides: dict[str, dict[str, t.Any]] = {
            str(k): v for k, v in spec.get("agent_overrides", {}).items()
        }
        self._fault_queues = {
            agent: _expand_faults(o.get("faults", [])) for agent, o in self.overrides.items()
        }
        self._lock = threading.Lock()
        self._bodies: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._cached_bytes = 0
        self.cache_budget = int(spec.get("cache_megabytes", 512)) * 1024 * 1024

    def next_fault(self, agent: str) -> dict[str, t.Any] | None:
        """The fault to serve for this request of ``agent``, if any remain."""
        with self._lock:
            queue = self._fault_queues.get(agent)
            if not queue:
                return None
            fault = queue[0]
            if fault.get("times") != "always":
                queue.popleft()
            return fault

    def latency_for(self, agent: str) -> float:
        """Seconds to wait before answering ``agent``."""
        return float(self.overrides.get(agent, {}).get("latency_ms", self.latency_ms)) / 1000

    def in_flight_goal(self, agent: str) -> tuple[int, float] | None:
        """(requests in flight to wait for, longest wait in s) before answering ``agent``.

        ``None`` when the agent is answered without waiting for other requests.
        """
        override = self.overrides.get(agent, {})
        goal = override.get("hold_until_in_flight")
        if goal is None:
            return None
        return int(goal), float(override.get("hold_timeout_seconds", 10))

    def testers(self, agent: str) -> list[dict[str, t.Any]]:
        """The agent's tester list with the scenario's edits applied."""
        override = self.overrides.get(agent, {})
        testers = generate_testers(
            self.seed, agent, int(override.get("testers", self.testers_per_agent))
        )
        for index, changes in override.get("set", {}).items():
            testers[int(index)].update(changes)
        for index, names in override.get("unset", {}).items():
            for name in names:
                testers[int(index)].pop(name, None)
        if extra := override.get("extra_fields"):
            for tester in testers:
                tester.update(extra)
        removed = {int(i) for i in override.get("remove", [])}
        return [tester for i, tester in enumerate(testers) if i not in removed]

    def success_body(self, agent: str) -> bytes:
        """The 200 body for ``agent``, cached within a memory budget."""
        with self._lock:
            body = self._bodies.get(agent)
            if body is not None:
                self._bodies.move_to_end(agent)
                return body
        override = self.overrides.get(agent, {})
        document: dict[str, t.Any] = {
            "code": override.get("code", "RCS902"),
            "message": override.get("message", "Tester details found successfully"),
        }
        data_mode = override.get("data", "list")
        if data_mode == "list":
            document["data"] = self.testers(agent)
        elif data_mode == "null":
            document["data"] = None
        elif data_mode == "empty":
            document["data"] = []
        elif data_mode != "missing":
            document["data"] = data_mode  # any other JSON value: a wrong shape on purpose
        body = json.dumps(document, separators=(",", ":")).encode()
        with self._lock:
            if agent not in self._bodies:
                self._bodies[agent] = body
                self._cached_bytes += len(body)
            while self._cached_bytes > self.cache_budget and len(self._bodies) > 1:
                _, evicted = self._bodies.popitem(last=False)
                self._cached_bytes -= len(evicted)
        return body


def _expand_faults(faults: list[dict[str, t.Any]]) -> collections.deque[dict[str, t.Any]]:
    queue: collections.deque[dict[str, t.Any]] = collections.deque()
    for fault in faults:
        times = fault.get("times", 1)
        if times == "always":
            queue.append(fault)
            break
        queue.extend([fault] * int(times))
    return queue


class Stats:
    """What the sandbox served, for tests and benchmarks to assert on."""

    def __init__(self) -> None:
        """Start from zero."""
        self._lock = threading.Condition()
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self.by_agent: collections.Counter[str] = collections.Counter()
            self.by_status: collections.Counter[int] = collections.Counter()
            self.times: list[float] = []
            self.log: list[tuple[float, str, int, float]] = []
            # Requests in flight just after each arrival: a peak stays visible to
            # a waiter even if it has passed by the time the waiter wakes up.
            self.in_flight_after_arrival: list[int] = []
            self.in_flight = 0
            self.max_in_flight = 0
            self.bad_keys = 0

    def started(self, agent: str) -> float:
        """Count a request to the API path as it arrives; return its arrival time."""
        arrived = time.monotonic()
        with self._lock:
            self.by_agent[agent] += 1
            self.times.append(arrived)
            self.in_flight += 1
            self.in_flight_after_arrival.append(self.in_flight)
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._lock.notify_all()
        return arrived

    def finished(self, arrived: float, agent: str, status: int) -> None:
        """Count the status the request ended with (0: no response)."""
        ended = time.monotonic()
        with self._lock:
            self.by_status[status] += 1
            self.in_flight -= 1
            self.log.append((arrived, agent, status, ended))

    def wait_for_in_flight(self, count: int, timeout: float) -> bool:
        """Block until ``count`` requests are, or have been since the call, in flight at once.

        False if that has not happened within ``timeout`` seconds.
        """
        with self._lock:
            seen = len(self.in_flight_after_arrival)
            return self._lock.wait_for(
                lambda: (
                    self.in_flight >= count
                    or max(self.in_flight_after_arrival[seen:], default=0) >= count
                ),
                timeout,
            )

    def recent(self, window: float = 1.0) -> int:
        """Requests that arrived in the last ``window`` seconds."""
        now = time.monotonic()
        with self._lock:
            return sum(1 for moment in reversed(self.times) if now - moment < window)

    def snapshot(self) -> dict[str, t.Any]:
        """A JSON-ready view, including the most requests seen in any 1 s window."""
        with self._lock:
            times = sorted(self.times)
            busiest, start = 0, 0
            for end, moment in enumerate(times):
                while moment - times[start] >= 1.0:
                    start += 1
                busiest = max(busiest, end - start + 1)
            return {
                "requests": sum(self.by_agent.values()),
                "by_agent": dict(self.by_agent),
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "max_requests_in_1s": busiest,
                "max_in_flight": self.max_in_flight,
                "in_flight": self.in_flight,
                "bad_keys": self.bad_keys,
                # One entry per answered request, in arrival order: [arrived, agent,
                # status, ended], the times in seconds since the first arrival;
                # "ended" is when the answer was handed to the connection.
                "log": [
                    [round(at - times[0], 4), agent, status, round(ended - times[0], 4)]
                    for at, agent, status, ended in sorted(self.log)
                ]
                if times
                else [],
            }


class SandboxServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server holding the scenario and the statistics."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port: int, scenario: Scenario) -> None:
        """Bind to 127.0.0.1:``port`` (0 picks a free port)."""
        # Set before binding: a failed bind closes the server at once.
        self.closing = threading.Event()
        """Set on close: requests still sleeping (latency, hang) give up at once."""
        self.scenario = scenario
        self.stats = Stats()
        try:
            super().__init__(("127.0.0.1", port), SandboxHandler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                advice = "give another --port, or 0 for any free one"
                raise OSError(f"port {port} is already in use: {advice}") from None
            raise

    def server_close(self) -> None:
        """Stop listening, and wake every request still waiting to be answered."""
        self.closing.set()
        super().server_close()

    @property
    def url(self) -> str:
        """The base URL to give the tap."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:  # noqa: ANN401, ARG002
        """A client that hangs up (a tap that stopped) is normal here: say one line."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        sys.stderr.write(f"tap-kaleyra-rcs-sandbox: request failed: {error!r}\n")


class SandboxHandler(BaseHTTPRequestHandler):
    """Answers one HTTP request the way the scenario says."""

    protocol_version = "HTTP/1.1"
    server: SandboxServer
    _unrecorded: tuple[float, str] | None = None
    """(arrival, agent) of the API request being answered, until it is logged."""

    def setup(self) -> None:
        """Disable Nagle: headers and small bodies must not wait for delayed ACKs."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Stay quiet: tests read the tap's output, not the sandbox's."""

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: t.Mapping[str, str] | None = None,
        declared_length: int | None = None,
    ) -> None:
        # One write for status line, headers and body keeps latency predictable.
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        merged = {
            "Content-Type": content_type,
            "Content-Length": str(len(body) if declared_length is None else declared_length),
        }
        merged.update(headers or {})
        lines += [f"{name}: {value}" for name, value in merged.items()]
        self._record(status)
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()

    def _send_error(self, status: int, message: str, code: str | None = None) -> None:
        code = code or _ERROR_CODES.get(status, f"RCS{status}")
        self._send(status, json.dumps({"code": code, "message": message}).encode())

    def do_GET(self) -> None:
        """Serve the API path, or a control endpoint."""
        parts = urlsplit(self.path)
        if parts.path == "/_sandbox/stats":
            self._send(200, json.dumps(self.server.stats.snapshot()).encode())
            return
        scenario = self.server.scenario
        if parts.path != scenario.path:
            self._send_error(404, "Not Found", "RCS404")
            return
        query = parse_qs(parts.query)
        agent = (query.get("agent_number") or [""])[0]
        stats = self.server.stats
        self._unrecorded = (stats.started(agent), agent)
        status = 0
        try:
            status = self._answer(scenario, agent)
        finally:
            self._record(status)

    def _record(self, status: int) -> None:
        """Log the API request being answered, once; before its answer is sent.

        Recorded first, so that a client holding the answer always finds the
        request in the statistics.
        """
        if self._unrecorded is not None:
            arrived, agent = self._unrecorded
            self._unrecorded = None
            self.server.stats.finished(arrived, agent, status)

    def _answer(self, scenario: Scenario, agent: str) -> int:  # noqa: PLR0911 - one per rule
        if self.headers.get("api-key") != scenario.api_key:
            self.server.stats.bad_keys += 1
            self._send_error(401, "Invalid API key or SID", "RCS401")
            return 401
        if "application/json" not in (self.headers.get("Content-Type") or "").lower():
            self._send_error(400, "Content-Type must be application/json", "RCS701")
            return 400
        if scenario.rate_limit and self.server.stats.recent() > scenario.rate_limit:
            self._send_error(429, "Too many requests", "RCS429")
            return 429
        if goal := scenario.in_flight_goal(agent):
            self.server.stats.wait_for_in_flight(*goal)
        if delay := scenario.latency_for(agent):
            self.server.closing.wait(delay)
        fault = scenario.next_fault(agent)
        if fault is not None:
            return self._serve_fault(fault, scenario, agent)
        if not agent:
            self._send_error(400, "Missing field: agent_number")
            return 400
        if agent not in scenario.agents:
            self._send_error(400, "Agent Not Found")
            return 400
        self._send(200, scenario.success_body(agent))
        return 200

    def _serve_fault(self, fault: t.Mapping[str, t.Any], scenario: Scenario, agent: str) -> int:
        """Serve one scripted fault. Kinds: response (default), drop, hang, reset."""
        kind = fault.get("kind", "response")
        if kind == "drop":
            self.close_connection = True
            return 0
        if kind == "hang":
            self.server.closing.wait(float(fault.get("seconds", 3600)))
            self.close_connection = True
            return 0
        status = int(fault.get("status", 200))
        if "body_hex" in fault:
            body = bytes.fromhex(fault["body_hex"])
        elif "body_text" in fault:
            body = str(fault["body_text"]).encode()
        elif "body" in fault:
            body = json.dumps(fault["body"]).encode()
        elif status == 200 and agent in scenario.agents:  # noqa: PLR2004
            body = scenario.success_body(agent)
        else:
            message = _REASONS.get(status, "Error")
            body = json.dumps(
                {"code": _ERROR_CODES.get(status, f"RCS{status}"), "message": message}
            ).encode()
        content_type = fault.get("content_type", "application/json")
        headers = dict(fault.get("headers", {}))
        if "retry_after_http_date" in fault:  # seconds from now, as an HTTP date
            when = time.time() + float(fault["retry_after_http_date"])
            headers["Retry-After"] = formatdate(when, usegmt=True)
        if kind == "reset":
            # Promise the whole body, send half, then close: a reset mid-body.
            self._send(
                status,
                body[: len(body) // 2],
                content_type=content_type,
                declared_length=len(body),
                headers=headers,
            )
            self.close_connection = True
            return status
        self._send(status, body, content_type=content_type, headers=headers)
        return status

    def do_POST(self) -> None:
        """Control endpoints; anything else is the API's wrong-method answer."""
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b""
        if path == "/_sandbox/scenario":
            try:
                self.server.scenario = Scenario(json.loads(payload or b"{}"))
            except ValueError as exc:  # not JSON, or not a scenario docs/sandbox.md allows
                self._send_error(400, f"Bad scenario: {exc}")
                return
            self._send(200, b'{"ok":true}')
        elif path == "/_sandbox/reset":
            self.server.stats.reset()
            self._send(200, b'{"ok":true}')
        else:
            self._send_error(405, "Method not allowed")


def load_scenario(args: argparse.Namespace) -> Scenario:
    """The scenario file, with command-line options taking precedence."""
    spec: dict[str, t.Any] = {}
    if args.scenario:
        try:
            with open(args.scenario, encoding="utf-8") as handle:  # noqa: PTH123
                spec = json.load(handle)
        except ValueError as exc:  # not JSON, or not UTF-8
            raise ValueError(f"--scenario {args.scenario}: not a JSON scenario ({exc})") from None
        except OSError as exc:
            raise ValueError(f"--scenario {args.scenario}: {exc.strerror}") from None
        if problem := scenario_problem(spec):
            raise ValueError(f"--scenario {args.scenario}: {problem}")
    for option, key in (
        ("seed", "seed"),
        ("agents", "agents"),
        ("testers", "testers_per_agent"),
        ("latency_ms", "latency_ms"),
        ("rate_limit", "rate_limit_per_second"),
    ):
        value = getattr(args, option)
        if value is not None:
            spec[key] = value
    return Scenario(spec)


def main(argv: list[str] | None = None) -> int:
    """``tap-kaleyra-rcs-sandbox``: serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="tap-kaleyra-rcs-sandbox",
        description="Local stand-in for Kaleyra's Get Tester By Agent API, on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    parser.add_argument("--scenario", help="scenario JSON file (see the README)")
    parser.add_argument("--seed", type=int, help="seed for the generated testers")
    parser.add_argument("--agents", type=int, help="number of agents, from 48900 up")
    parser.add_argument("--testers", type=int, help="testers per agent")
    parser.add_argument("--latency-ms", type=float, help="delay before every answer")
    parser.add_argument("--rate-limit", type=float, help="requests per second before 429")
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args)
        server = SandboxServer(args.port, scenario)
    except (OSError, ValueError, TypeError) as exc:
        sys.stderr.write(f"tap-kaleyra-rcs-sandbox: error: {exc}\n")
        return 2
    # The first stdout line is the URL: scripts read it to learn the port.
    sys.stdout.write(f"{server.url}\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
