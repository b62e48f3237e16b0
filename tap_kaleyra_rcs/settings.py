"""The tap's settings, checked and normalised once, before any request is made.

The SDK's JSON-schema validation catches wrong types; the checks here catch the
values that are well-typed but unsafe or unusable (a SID that would change the
URL path, an ``http://`` URL that would send the API key in clear text, a blank
agent number), so that every problem is reported by setting name up front.
"""

from __future__ import annotations

import ipaddress
import re
import typing as t
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import quote, urlsplit

from tap_kaleyra_rcs.drift import SCHEMA_CHANGE_CHOICES

POD_BASE_URLS: dict[str, str] = {
    "in": "https://rcs-api.in.kaleyra.io",
    "na": "https://rcs-api.na.kaleyra.io",
}
"""Documented base URL per Kaleyra pod: ``in`` is "rest of the world"."""

ENDPOINT_PATHS: tuple[str, ...] = (
    "/v1/{sid}/rcs/agenttester/testersbyagent",
    "/v1/{sid}/rcs/agent/testersbyagent",
    "/wsgw/v1/agent/testersbyagent",
)
"""The endpoint paths Kaleyra's documentation has shown; the first is the default."""

_SID = re.compile(r"[A-Za-z0-9]+")
# Header values must be printable ASCII without spaces; anything else would make
# `requests` raise an error that quotes the header value, i.e. the key itself.
_API_KEY = re.compile(r"[\x21-\x7e]+")
_LOOPBACK_NAMES = {"localhost"}
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A plain decimal number in ASCII, as an environment variable would hold it."""


class SettingsError(ValueError):
    """One or more settings are unusable; ``problems`` holds one line per setting."""

    def __init__(self, problems: list[str]) -> None:
        """Keep every problem so the user can fix them all in one go."""
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    """Validated settings. ``api_key`` is excluded from ``repr`` so it never leaks."""

    sid: str
    api_key: str = field(repr=False)
    agent_numbers: tuple[str, ...]
    base_url: str
    endpoint_path: str
    request_timeout: float
    max_retries: int
    retry_backoff_seconds: float
    max_retry_wait_seconds: float
    max_concurrent_agents: int
    max_requests_per_second: float | None
    unknown_agents: str = "fail"
    """``fail``: an agent Kaleyra does not know fails the run; ``skip``: it is left out."""
    trust_empty_answers: bool = False
    """Whether an agent whose testers all vanish in one answer counts as synced."""
    repeated_agent_numbers: tuple[str, ...] = ()
    """Agent numbers ``agent_numbers`` listed more than once (merged; the run warns)."""
    schema_changes: str = "keep"
    """What a field the schema lacks, or a value that does not fit, does (drift.py)."""
    phoneno_hash_key: str | None = field(default=None, repr=False)
    """The key ``phoneno`` is hashed under (HMAC-SHA256); None: numbers go out as they are."""

    @property
    def worst_case_seconds(self) -> float:
        """The longest the tap can take before every agent has answered or failed.

        Per agent: every attempt waiting ``request_timeout``, and every retry
        waiting ``max_retry_wait_seconds``; the agents go in waves of
        ``max_concurrent_agents``. A scheduled run's bound is this plus the
        loader's and dbt's share (docs/scheduling.md, Every run ends).
        """
        per_agent = (self.max_retries + 1) * self.request_timeout
        per_agent += self.max_retries * self.max_retry_wait_seconds
        waves = -(-len(self.agent_numbers) // self.max_concurrent_agents)
        return waves * per_agent

    @property
    def endpoint_url(self) -> str:
        """The full URL requested for every agent (the agent goes in the query)."""
        return self.base_url + self.endpoint_path.format(sid=quote(self.sid, safe=""))


def is_loopback_host(host: str) -> bool:
    """True for hosts that never leave this machine, where plain HTTP is safe."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_token(
    value: object,
    name: str,
    pattern: re.Pattern[str],
    messages: tuple[str, str],
    problems: list[str],
) -> str:
    """A required single-token string; ``messages`` are (missing, malformed) hints.

    The value itself is never echoed: a wrong API key may still be a real secret.
    """
    missing, malformed = messages
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{name}: required; {missing}")
        return ""
    token = value.strip()
    if not pattern.fullmatch(token):
        problems.append(f"{name}: {malformed}")
    return token


UNKNOWN_AGENT_CHOICES = ("fail", "skip")


def _check_agent_numbers(
    value: object, problems: list[str], repeated: list[str]
) -> tuple[str, ...]:
    """The agent numbers in order, each once; ``repeated`` gets those listed twice."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        problems.append(
            'agent_numbers: required; give at least one agent service code, e.g. ["48900"]'
        )
        return ()
    seen: dict[str, None] = {}
    for index, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            problems.append(
                f"agent_numbers[{index}]: must be a string or a whole number, "
                f"not {type(item).__name__}"
            )
            continue
        number = str(item).strip()
        if not number:
            problems.append(f"agent_numbers[{index}]: is blank; remove it")
        elif not number.isprintable() or any(c.isspace() for c in number):
            problems.append(f"agent_numbers[{index}]: contains spaces or control characters")
        elif number in seen:
            if number not in repeated:
                repeated.append(number)
        else:
            seen[number] = None
    return tuple(seen)


def _check_base_url(config: t.Mapping[str, t.Any], problems: list[str]) -> str:
    pod = config.get("pod") or "in"
    if pod not in POD_BASE_URLS:
        problems.append(
            f"pod: must be one of {', '.join(POD_BASE_URLS)} "
            "(in = rest of the world, na = North America)"
        )
        pod = "in"
    base_url = config.get("base_url")
    if base_url in {None, ""}:
        return POD_BASE_URLS[pod]
    if not isinstance(base_url, str):
        problems.append("base_url: must be a URL such as https://rcs-api.na.kaleyra.ai")
        return ""
    try:
        parts = urlsplit(base_url.strip())
        host = parts.hostname or ""
        _ = parts.port  # raises on a malformed port
    except ValueError:
        problems.append("base_url: is not a valid URL")
        return ""
    if not host or parts.scheme not in {"http", "https"}:
        problems.append("base_url: must be an absolute https:// URL with a host name")
    elif parts.port is None and parts.netloc.endswith(":"):
        problems.append(
            f"base_url: {base_url.strip()!r} has a ':' with no port after it (an unset "
            "port variable?); give the port, or drop the ':'"
        )
    elif parts.scheme == "http" and not is_loopback_host(host):
        problems.append(
            "base_url: must use https:// (plain http:// is allowed only for "
            "127.0.0.1, ::1 and localhost, so the API key is never sent in clear text)"
        )
    elif parts.username or parts.password or parts.query or parts.fragment:
        problems.append(
            "base_url: must not contain credentials, a query or a fragment; "
            "give only scheme, host, optional port and optional path prefix"
        )
    return base_url.strip().rstrip("/")


def _check_number(
    config: t.Mapping[str, t.Any],
    name: str,
    default: float,
    bounds: tuple[float, float],
    problems: list[str],
) -> float:
    value = config.get(name)
    if value is None:
        return default
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        problems.append(f"{name}: must be a number between {low:g} and {high:g}")
        return default
    number = float(value)  # JSON config is read with Decimal for non-integers
    if not low <= number <= high:
        problems.append(f"{name}: must be between {low:g} and {high:g}, got {number:g}")
        return default
    return number


def _check_whole_number(
    config: t.Mapping[str, t.Any],
    name: str,
    default: int,
    bounds: tuple[int, int],
    problems: list[str],
) -> int:
    value = _check_number(config, name, default, bounds, problems)
    if value != int(value):
        problems.append(f"{name}: must be a whole number")
    return int(value)


def numbers_from_text(
    config: t.Mapping[str, t.Any], properties: t.Mapping[str, t.Mapping[str, t.Any]]
) -> dict[str, t.Any]:
    """``config`` with number settings given as text turned into numbers.

    Environment variables are text. Meltano passes a ``kind: decimal`` setting
    read from one on as a ``Decimal`` it then cannot write to the tap's config
    file, so meltano.yml declares those settings ``kind: string`` and the tap
    reads the number here. Anything that is not plain decimal text is left
    alone for validation to reject by setting name.
    """
    converted = dict(config)
    for name, value in config.items():
        types = properties.get(name, {}).get("type", ())
        if not isinstance(value, str) or not _NUMBER_TEXT.fullmatch(value.strip()):
            continue
        if "integer" in types and value.strip().lstrip("+-").isdigit():
            converted[name] = int(value)
        elif "number" in types:
            converted[name] = float(value)
    return converted


def _check_batch_without_activation(config: t.Mapping[str, t.Any], problems: list[str]) -> None:
    """Batch files carry no record version: activating one would delete every tester."""
    if config.get("batch_config") and config.get("emit_activate_version_messages"):
        problems.append(
            "batch_config: cannot be used with emit_activate_version_messages: batch "
            "files carry no record version, so a target would mark every tester "
            "deleted; set emit_activate_version_messages to false for batch runs"
        )


PHONENO_HASH_KEY_MIN_LENGTH = 16


def _check_phoneno_hash_key(config: t.Mapping[str, t.Any], problems: list[str]) -> str | None:
    """The key, or None when none is set and none is required; never echoed, as any key.

    A run meant to hash must not load clear numbers because its key is missing.
    Meltano leaves a setting out when the variable it refers to is unset, so a
    missing key is refused when ``require_phoneno_hash_key`` is true (as the
    hashed-phones variant sets it), and an empty one is refused always.
    """
    value = config.get("phoneno_hash_key")
    name, least = "phoneno_hash_key", PHONENO_HASH_KEY_MIN_LENGTH
    if value is None:
        if config.get("require_phoneno_hash_key") is True:
            problems.append(
                f"{name}: not set, and require_phoneno_hash_key is true, so phone numbers "
                "can't be hashed; set TAP_KALEYRA_RCS_PHONENO_HASH_KEY (an unset variable "
                f"leaves the setting out) to a secret of at least {least} characters"
            )
        return None
    if not isinstance(value, str):
        problems.append(f"{name}: must be text, a secret of at least {least} characters")
        return None
    if not value.strip():
        problems.append(
            f"{name}: is empty, so phone numbers can't be hashed; set it (e.g. "
            f"TAP_KALEYRA_RCS_PHONENO_HASH_KEY) to a secret of at least {least} characters, "
            "or leave it out to load phoneno as it is"
        )
        return None
    if len(value) < least:
        problems.append(
            f"{name}: has {len(value)} characters, fewer than {least}: a short key can be "
            "guessed, and with it every phone number found from its hash; use a random "
            f"secret of at least {least} characters"
        )
        return None
    return value


def parse_settings(config: t.Mapping[str, t.Any]) -> Settings:
    """Check every setting and return them normalised.

    Raises:
        SettingsError: naming each unusable setting and what to do about it.

    """
    problems: list[str] = []
    sid = _check_token(
        config.get("sid"),
        "sid",
        _SID,
        (
            "set it to the account SID shown in kaleyra.io",
            (
                "must contain only letters and digits (it is placed in the URL path); "
                "copy the account SID from kaleyra.io"
            ),
        ),
        problems,
    )
    api_key = _check_token(
        config.get("api_key"),
        "api_key",
        _API_KEY,
        (
            "create an API key in kaleyra.io",
            "contains spaces or non-printable characters; paste the key again",
        ),
        problems,
    )
    repeated: list[str] = []
    agent_numbers = _check_agent_numbers(config.get("agent_numbers"), problems, repeated)
    schema_changes = config.get("schema_changes") or "keep"
    if schema_changes not in SCHEMA_CHANGE_CHOICES:
        problems.append(
            "schema_changes: must be keep (load what does not fit the schema in "
            "drifted_fields), drop (leave it out) or fail (stop the run)"
        )
    unknown_agents = config.get("unknown_agents") or "fail"
    if unknown_agents not in UNKNOWN_AGENT_CHOICES:
        problems.append(
            "unknown_agents: must be fail (an agent Kaleyra does not know fails the run) "
            "or skip (it is left out of the run with a warning)"
        )
    base_url = _check_base_url(config, problems)
    endpoint_path = config.get("endpoint_path") or ENDPOINT_PATHS[0]
    if endpoint_path not in ENDPOINT_PATHS:
        problems.append(f"endpoint_path: must be one of {', '.join(ENDPOINT_PATHS)}")
    _check_batch_without_activation(config, problems)
    phoneno_hash_key = _check_phoneno_hash_key(config, problems)
    rate = config.get("max_requests_per_second")
    settings = Settings(
        sid=sid,
        api_key=api_key,
        agent_numbers=agent_numbers,
        base_url=base_url,
        endpoint_path=endpoint_path,
        request_timeout=_check_number(config, "request_timeout", 30.0, (0.1, 600.0), problems),
        max_retries=_check_whole_number(config, "max_retries", 5, (0, 20), problems),
        retry_backoff_seconds=_check_number(
            config, "retry_backoff_seconds", 1.0, (0.0, 60.0), problems
        ),
        max_retry_wait_seconds=_check_number(
            config, "max_retry_wait_seconds", 60.0, (0.0, 3600.0), problems
        ),
        max_concurrent_agents=_check_whole_number(
            config, "max_concurrent_agents", 8, (1, 64), problems
        ),
        max_requests_per_second=None
        if rate is None
        else _check_number(config, "max_requests_per_second", 0.0, (0.01, 10000.0), problems),
        unknown_agents=unknown_agents,
        schema_changes=schema_changes,
        trust_empty_answers=bool(config.get("trust_empty_answers", False)),
        repeated_agent_numbers=tuple(repeated),
        phoneno_hash_key=phoneno_hash_key,
    )
    if problems:
        raise SettingsError(problems)
    return settings
