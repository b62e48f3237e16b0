"""HTTP to Kaleyra's Get Tester By Agent endpoint, and what every answer means.

This module is the one place where the tap decides, status by status, whether a
response is data, a reason to retry, or a reason to stop the run. It is safe to
call from several threads at once: each thread gets its own HTTP session, and a
shared :class:`RequestPacer` spaces requests out and makes one 429 slow everyone.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
import typing as t
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import msgspec
import requests
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
from urllib3.exceptions import SSLError as TLSError

from tap_kaleyra_rcs.errors import (
    AGENT_ADVICE,
    AgentRequestFailed,
    ConfigurationRejected,
    MalformedResponse,
    RetriesExhausted,
    UnknownAgent,
    longest_secret,
    redact,
    redact_cut,
    register_secret,
)
from tap_kaleyra_rcs.prefetch import hold
from tap_kaleyra_rcs.records import FittingTester, FittingTesters

if t.TYPE_CHECKING:
    import logging

    from tap_kaleyra_rcs.settings import Settings

SUCCESS_CODE = "RCS902"
"""Kaleyra's code for "Tester details found successfully"."""

CHANNEL_NOT_ENABLED_CODE = "RCS601"

_CONFIG_HINT = (
    "check api_key and sid (kaleyra.io > API keys), that pod/base_url match the "
    "account's region, and that the RCS channel is enabled for the account"
)
_RETRIABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Transient by definition: throttling, timeouts and server or gateway trouble.
501 and 505 are 5xx too, but they say "never" rather than "not now"."""
_CONFIG_STATUSES = frozenset({401, 403, 404, 405})
"""The request itself is wrong for the account or the URL: no agent will work."""

_SNIPPET_LENGTH = 120
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class Retry(t.NamedTuple):
    """A transient failure: why, and how long the server asked us to wait.

    Value types here are named tuples, not dataclasses: a frozen dataclass costs
    about 1 ms of start-up to create, a named tuple a sixth of that.
    """

    reason: str
    retry_after: float | None = None


class NoTesterList(list[t.Any]):
    """A 200 with the success code and ``data: null`` (or no ``data``): no list at all.

    Read as zero testers, as the API notes say, but told apart from an empty list
    ``[]``: the run names such an agent, and an agent whose testers all vanish in
    one answer is not trusted at once (see ``trust_empty_answers``).
    """


class ErrorBody(t.NamedTuple):
    """The ``code`` and ``message`` a Kaleyra error body carries, when it has them."""

    code: str | None
    message: str | None

    def describe(self) -> str:
        """E.g. ``RCS904 "Agent Not Found"``, or an empty string."""
        parts = [self.code or "", f'"{self.message}"' if self.message else ""]
        return " ".join(p for p in parts if p)


class RequestPacer:
    """Spaces requests under a shared rate limit and a shared back-off.

    Every worker calls :meth:`wait_turn` before a request. Requests start at
    least ``1.05 / max_requests_per_second`` apart: the 5 % margin absorbs
    thread-scheduling jitter, so that no 1-second window seen by the server
    holds more than the limit. A 429 calls :meth:`hold_all`, which pushes every
    worker's next request past the server's ``Retry-After`` (also those already
    waiting), so throttling slows the whole run instead of each worker hammering
    on until its own retries run out.
    """

    MARGIN = 1.05

    def __init__(
        self,
        max_requests_per_second: float | None,
        *,
        clock: t.Callable[[], float] = time.monotonic,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        """Create a pacer; ``None`` means no rate limit, only shared back-off."""
        self._interval = self.MARGIN / max_requests_per_second if max_requests_per_second else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._held_until = 0.0

    def wait_turn(self) -> None:
        """Block until this caller may send its request."""
        while True:
            with self._lock:
                now = self._clock()
                start = max(now, self._next_slot, self._held_until)
                if start <= now:
                    self._next_slot = now + self._interval
                    return
            # Check again after the wait: a 429 may have called hold_all meanwhile.
            self._sleep(start - now)

    def hold_all(self, seconds: float) -> None:
        """Make every caller wait at least ``seconds`` from now."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + seconds)


def safe_snippet(body: bytes) -> str:
    """A short, printable, single-line excerpt of a body that never holds an API key.

    The excerpt is redacted before it is cut: a key that straddled the cut would
    otherwise leave its first characters behind. Only as much of the body is
    decoded as can reach the cut, plus the longest key, so a huge body costs no
    more than a small one; the end of that window is cut like any other cut.
    """
    reach = (_SNIPPET_LENGTH + longest_secret()) * 4  # a character is at most 4 bytes
    text = body[:reach].decode("utf-8", errors="replace")
    text = _shorten(redact(text) if len(body) <= reach else redact_cut(text))
    return repr(text) if text else "(empty body)"


def _shorten(text: str) -> str:
    """One line of at most ``_SNIPPET_LENGTH`` characters; call only on redacted text."""
    text = _one_line(text)
    return text[:_SNIPPET_LENGTH] + "..." if len(text) > _SNIPPET_LENGTH else text


def parse_error_body(body: bytes) -> ErrorBody:
    """Read ``{"code": ..., "message": ...}`` from an error body, if it is JSON."""
    try:
        return _error_fields(msgspec.json.decode(body))
    except msgspec.DecodeError:
        return ErrorBody(None, None)


def _error_fields(document: object) -> ErrorBody:
    if not isinstance(document, dict):
        return ErrorBody(None, None)
    code, message = document.get("code"), document.get("message")
    return ErrorBody(
        _shorten(redact(code)) if isinstance(code, str) else None,
        _shorten(redact(message)) if isinstance(message, str) else None,
    )


def _one_line(text: str) -> str:
    """The server's text, safe to put in a one-line message: no control characters."""
    return _CONTROL.sub(" ", text).strip()


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _FittingAnswer(msgspec.Struct):
    """Kaleyra's success answer whose testers all fit the schema as they are."""

    code: str
    data: list[FittingTester]


_decode_fitting = msgspec.json.Decoder(_FittingAnswer).decode


def _fitting_testers(body: bytes) -> FittingTesters | None:
    """The testers of a success answer, if every one fits the schema as sent; else None.

    The common answer, checked in msgspec's C code; anything else (an error, a
    field the schema lacks, a value to coerce) is None and goes the long way.
    """
    try:
        fitting = _decode_fitting(body)
    except msgspec.DecodeError:  # a validation error is one too
        return None
    if fitting.code != SUCCESS_CODE:
        return None
    return FittingTesters(msgspec.to_builtins(fitting.data))


def decode_testers(body: bytes, agent: str) -> list[t.Any] | Retry:
    """The ``data`` list of a 200 response, a :class:`Retry`, or an error saying why.

    Success needs Kaleyra's success code (or no code at all next to a ``data``
    list). Anything else is an error rather than "zero testers": treating an
    error body as an empty list would make a target mark the agent's testers
    deleted. A body that was cut off on the way (see :func:`is_cut_off`) is
    worth another attempt; a body that is whole but not the API's is not.
    """
    fitting = _fitting_testers(body)
    if fitting is not None:
        return fitting
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError as problem:
        if is_cut_off(body, problem):
            return Retry(_cut_off_reason(body))
        msg = (
            f"agent {agent}: HTTP 200 but the body is not JSON: "
            f"{safe_snippet(body)}; is base_url pointing at the API?"
        )
        raise MalformedResponse(msg) from None
    if not isinstance(document, dict):
        msg = (
            f"agent {agent}: HTTP 200 but the body is a JSON "
            f"{type(document).__name__}, not an object"
        )
        raise MalformedResponse(msg)
    error = _error_fields(document)
    code = document.get("code")
    data = document.get("data")
    if code == CHANNEL_NOT_ENABLED_CODE:
        msg = (
            f"agent {agent}: Kaleyra refused the request "
            f"(HTTP 200 {error.describe()}): {_CONFIG_HINT}"
        )
        raise ConfigurationRejected(msg)
    if code is not None and code != SUCCESS_CODE:
        msg = (
            f"agent {agent}: HTTP 200 with Kaleyra code {error.describe() or repr(code)}, "
            f"not the success code {SUCCESS_CODE}; no data was taken for this agent"
        )
        raise AgentRequestFailed(msg)
    if data is None:
        if code == SUCCESS_CODE:
            return NoTesterList()  # the success code with no list: read as no testers
        msg = f"agent {agent}: HTTP 200 without a Kaleyra code or a data list"
        raise MalformedResponse(msg)
    if not isinstance(data, list):
        msg = (
            f"agent {agent}: 'data' is a JSON {type(data).__name__}, "
            "not the documented list of testers"
        )
        raise MalformedResponse(msg)
    return data


_NUMBER_ERROR = re.compile(r"invalid number \(byte (\d+)\)$")
"""msgspec's error for a number it could not finish, and where."""


def is_cut_off(body: bytes, error: msgspec.DecodeError) -> bool:
    """Whether a 200 body that failed to decode is the API's JSON, ended early.

    A proxy or load balancer that drops a connection can pass on a response
    whose body stops mid-document while its framing still looks complete; the
    next attempt usually gets it whole. Such a body starts like a JSON object or
    array and fails where the input ends: msgspec says "Input data was
    truncated", or, for a number cut after ``-``, ``.`` or ``e``, reports an
    invalid number at the end of the input. A body that fails anywhere else, or
    starts with anything else (an HTML login or maintenance page, plain text,
    bytes that are not UTF-8), is whole and not the API's: retrying won't
    change it.

    An empty or blank body counts as cut off: Kaleyra's 200 always carries a
    JSON object with a code, so nothing at all means the body was lost on the
    way (a proxy dropping it), not an answer; reading it as "no testers" could
    mark every tester of the agent deleted.
    """
    start = body.lstrip()
    if not start:
        return True
    if not start.startswith((b"{", b"[")):
        return False
    text = str(error)
    if "truncated" in text:
        return True
    number = _NUMBER_ERROR.search(text)
    return number is not None and int(number.group(1)) == len(body)


def _cut_off_reason(body: bytes) -> str:
    if not body.strip():
        return "HTTP 200 with an empty body (cut off on the way)"
    return f"HTTP 200 but the body was cut off after {len(body)} bytes (incomplete JSON)"


class TestersClient:
    """Fetches one agent's raw tester list, retrying what is worth retrying."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        settings: Settings,
        *,
        logger: logging.Logger,
        pacer: RequestPacer | None = None,
        user_agent: str = "tap-kaleyra-rcs",
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        """Prepare the client; no request is made until :meth:`fetch`."""
        self._settings = settings
        register_secret(settings.api_key)
        self._logger = logger
        self._pacer = pacer or RequestPacer(settings.max_requests_per_second)
        self._sleep = sleep
        self._local = threading.local()
        self._retries_lock = threading.Lock()
        self._retries = 0
        self._environment_proxies = requests.utils.get_environ_proxies(settings.endpoint_url)
        # As requests does with trust_env: an empty variable means "the default
        # bundle", never "don't verify".
        self._ca_bundle: str | bool = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self._headers = {
            "api-key": settings.api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }

    @property
    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            # Proxy and CA-bundle variables are read once here rather than on
            # every request (requests scans the whole environment each time).
            session.trust_env = False
            session.proxies = self._environment_proxies
            session.verify = self._ca_bundle
            self._local.session = session
        return session

    @property
    def retries(self) -> int:
        """Retries made so far by every thread, for the run summary."""
        with self._retries_lock:
            return self._retries

    def fetch(self, agent: str) -> list[t.Any]:
        """Return the agent's ``data`` list (raw testers), or raise a KaleyraError."""
        settings = self._settings
        attempt = 0
        while True:
            self._pacer.wait_turn()
            outcome = self._attempt(agent)
            if not isinstance(outcome, Retry):
                return outcome
            if attempt >= settings.max_retries:
                msg = (
                    f"agent {agent}: gave up after {attempt + 1} attempts; last "
                    f"failure: {outcome.reason}. {_advice_when_exhausted(outcome, settings)}"
                )
                raise RetriesExhausted(msg)
            delay = self._backoff(attempt, outcome.retry_after)
            self._logger.warning(
                "agent %s: %s; retry %d of %d in %.1f s",
                agent,
                outcome.reason,
                attempt + 1,
                settings.max_retries,
                delay,
            )
            with self._retries_lock:
                self._retries += 1
            self._sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential back-off with jitter, or the server's own ``Retry-After``."""
        cap = self._settings.max_retry_wait_seconds
        if retry_after is not None:
            return min(retry_after, cap)
        exponential = self._settings.retry_backoff_seconds * 2.0**attempt
        return min(cap, exponential) * random.uniform(0.5, 1.0)  # noqa: S311

    def _attempt(self, agent: str) -> list[t.Any] | Retry:
        """One request: the raw testers, or a :class:`Retry`; fatal errors raise."""
        settings = self._settings
        try:
            response = self._session.get(
                settings.endpoint_url,
                params={"agent_number": agent},
                timeout=settings.request_timeout,
                allow_redirects=False,  # a redirect must not carry the api-key elsewhere
                stream=True,  # the headers first: the body waits for room in memory
            )
            hold(_announced_length(response.headers))
            body = whole_body(response)
            hold(len(body))
        except requests.Timeout:
            return Retry(f"no answer within request_timeout={settings.request_timeout:g} s")
        except requests.ConnectionError as exc:
            if _is_name_resolution_failure(exc):
                msg = (
                    f"agent {agent}: cannot resolve the API host of "
                    f"{settings.base_url}; check pod/base_url and the network's DNS"
                )
                raise ConfigurationRejected(msg) from None
            return Retry(f"connection failed ({_connection_failure(exc)})")
        except requests.RequestException as exc:
            return Retry(f"transport error ({type(exc).__name__})")
        return self._decide(agent, response.status_code, response.headers, body)

    def _decide(
        self,
        agent: str,
        status: int,
        headers: t.Mapping[str, str],
        body: bytes,
    ) -> list[t.Any] | Retry:
        """The per-status policy: data, a retry, or a fatal error (raised)."""
        if status == 200:  # noqa: PLR2004
            return decode_testers(body, agent)
        error = parse_error_body(body)
        detail = error.describe() or safe_snippet(body)
        if status in _RETRIABLE_STATUSES:
            retry_after = retry_after_seconds(headers.get("Retry-After"))
            cap = self._settings.max_retry_wait_seconds
            if retry_after is not None and retry_after > cap:
                msg = (
                    f"agent {agent}: HTTP {status} asks to wait {retry_after:.0f} s "
                    f"before retrying, more than max_retry_wait_seconds={cap:g}; "
                    "run again later or raise max_retry_wait_seconds"
                )
                raise RetriesExhausted(msg)
            if status == 429:  # noqa: PLR2004
                self._pacer.hold_all(
                    retry_after if retry_after is not None else self._settings.retry_backoff_seconds
                )
            return Retry(f"HTTP {status} {detail}", retry_after)
        if 300 <= status < 400:  # noqa: PLR2004
            location = _host_of(headers.get("Location", ""))
            msg = (
                f"agent {agent}: HTTP {status} redirect to {location or 'another URL'}; "
                "redirects are not followed so the API key stays with the configured "
                "host: set base_url to the final address"
            )
            raise ConfigurationRejected(msg)
        if status in _CONFIG_STATUSES or error.code == CHANNEL_NOT_ENABLED_CODE:
            msg = (
                f"agent {agent}: Kaleyra refused the request "
                f"(HTTP {status} {detail}): {_CONFIG_HINT}"
            )
            if status in {404, 405}:
                msg += "; and that base_url/endpoint_path name the Get Tester By Agent endpoint"
            raise ConfigurationRejected(msg)
        if status >= 500:  # noqa: PLR2004 - 501, 505...: "never", so no retry
            msg = (
                f"agent {agent}: HTTP {status} {detail}; the server will never handle "
                "this request, so it is not retried: check base_url and endpoint_path, "
                "and any proxy in between"
            )
            raise ConfigurationRejected(msg)
        if status == 400 and _says_agent_not_found(error):  # noqa: PLR2004
            raise UnknownAgent(agent, f"HTTP {status} {detail}")
        raise AgentRequestFailed(f"agent {agent}: HTTP {status} {detail}; {AGENT_ADVICE}")


def whole_body(response: requests.Response) -> bytes:
    """``response``'s body in one read, decoded as its ``Content-Encoding`` says.

    The same bytes as ``response.content``, which reads 10 KiB at a time through
    urllib3's generator: for a usual answer of a few hundred KiB that loop cost
    more CPU than the read itself. urllib3's failures become the requests
    exceptions ``content`` raises for them, so every caller's handling holds.
    The connection goes back to the session's pool once the body is read.
    """
    try:
        return t.cast("bytes", response.raw.read(decode_content=True))
    except ProtocolError as exc:  # cut off: IncompleteRead, connection reset
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.ConnectionError(exc) from exc
    except TLSError as exc:
        raise requests.exceptions.SSLError(exc) from exc


def _announced_length(headers: t.Mapping[str, str]) -> int:
    """The body's length from ``Content-Length``, or 0 when the server does not say."""
    length = headers.get("Content-Length", "")
    return int(length) if length.isdecimal() and len(length) < 19 else 0  # noqa: PLR2004


def _says_agent_not_found(error: ErrorBody) -> bool:
    """Kaleyra's answer for an agent number it does not know (RCS904 also means "missing field")."""
    message = (error.message or "").lower()
    return error.code in {None, "RCS904"} and "agent not found" in message


def _host_of(url: str) -> str:
    """``host[:port]`` of an absolute URL, without any credentials; else ``""``."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return ""
    return f"{host}:{port}" if host and port else host


def _is_name_resolution_failure(exc: BaseException) -> bool:
    text = str(exc)
    return "NameResolutionError" in text or "Name or service not known" in text


def _advice_when_exhausted(last: Retry, settings: Settings) -> str:
    """What to do once retries ran out; a refused connection is more often base_url than Kaleyra."""
    if last.reason == "connection failed (connection refused)":
        return (
            f"Nothing accepted a connection at base_url {settings.base_url}: check base_url "
            "(its host and port), then run again"
        )
    return "Kaleyra may be degraded: run again later or raise max_retries"


def _connection_failure(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for marker in (
        "Connection refused",
        "Connection reset",
        "Connection aborted",
        "RemoteDisconnected",
        "IncompleteRead",
    ):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
