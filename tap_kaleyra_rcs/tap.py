"""tap-kaleyra-rcs: the settings users give, and the testers, observation and run-log streams."""

from __future__ import annotations

import typing as t

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.mapper import PluginMapper

from tap_kaleyra_rcs.errors import SettingsInvalid
from tap_kaleyra_rcs.observations import TestersObservationsStream, with_inherited_stream_map
from tap_kaleyra_rcs.output import SingerOutput
from tap_kaleyra_rcs.runs import TestersSyncRunAgentsStream, TestersSyncRunsStream
from tap_kaleyra_rcs.settings import (
    ENDPOINT_PATHS,
    POD_BASE_URLS,
    Settings,
    SettingsError,
    numbers_from_text,
    parse_settings,
)
from tap_kaleyra_rcs.streams import TestersStream

if t.TYPE_CHECKING:
    from types import FrameType

    from singer_sdk.streams import Stream

_AGENT_NUMBER = th.CustomType({"type": ["string", "integer"]})


class TapKaleyraRcs(Tap):
    """Singer tap for the RCS testers registered under Kaleyra RCS agents."""

    name = "tap-kaleyra-rcs"
    package_name = "tap-kaleyra-rcs"
    message_writer_class = SingerOutput

    config_jsonschema = th.PropertiesList(
        th.Property(
            "sid",
            th.StringType,
            required=True,
            title="Account SID",
            description="Kaleyra account SID (letters and digits), placed in the URL path.",
        ),
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            title="API key",
            description="Kaleyra API key, sent as the api-key header. Never logged.",
        ),
        th.Property(
            "agent_numbers",
            th.ArrayType(_AGENT_NUMBER),
            required=True,
            title="Agent numbers",
            description=(
                'Agent service codes to extract testers for, e.g. ["48900"]. Strings '
                "or numbers; duplicates are dropped, order is kept."
            ),
        ),
        th.Property(
            "pod",
            th.StringType,
            default="in",
            allowed_values=list(POD_BASE_URLS),
            title="Pod (region)",
            description=(
                "Kaleyra pod: 'in' (rest of the world, "
                f"{POD_BASE_URLS['in']}) or 'na' (North America, {POD_BASE_URLS['na']})."
            ),
        ),
        th.Property(
            "base_url",
            th.StringType,
            title="Base URL override",
            description=(
                "Replaces the pod's base URL, e.g. https://rcs-api.na.kaleyra.ai or a "
                "proxy. Must be https://, except for 127.0.0.1, ::1 and localhost."
            ),
        ),
        th.Property(
            "endpoint_path",
            th.StringType,
            default=ENDPOINT_PATHS[0],
            allowed_values=list(ENDPOINT_PATHS),
            title="Endpoint path",
            description=(
                "Which documented path of Get Tester By Agent to call; {sid} is "
                "replaced by the account SID."
            ),
        ),
        th.Property(
            "request_timeout",
            th.NumberType,
            default=30,
            title="Request timeout (s)",
            description=(
                "Seconds to wait for the API to connect or send data before retrying (0.1-600 s)."
            ),
        ),
        th.Property(
            "max_retries",
            th.IntegerType,
            default=5,
            title="Max retries",
            description=(
                "Retries per agent for 408, 429, 500, 502, 503, 504, timeouts and "
                "dropped connections (0-20)."
            ),
        ),
        th.Property(
            "retry_backoff_seconds",
            th.NumberType,
            default=1,
            title="Retry back-off (s)",
            description=(
                "First back-off wait (0-60 s); it doubles per retry, with jitter, up to "
                "max_retry_wait_seconds."
            ),
        ),
        th.Property(
            "max_retry_wait_seconds",
            th.NumberType,
            default=60,
            title="Max retry wait (s)",
            description=(
                "Longest single wait between retries (0-3600 s). A Retry-After asking for longer "
                "fails the run at once instead of stalling it."
            ),
        ),
        th.Property(
            "max_concurrent_agents",
            th.IntegerType,
            default=8,
            title="Concurrent agents",
            description=(
                "How many agents are fetched at once (1-64; 1 = one after another). "
                "Output order is always the configured order."
            ),
        ),
        th.Property(
            "emit_activate_version_messages",
            th.BooleanType,
            default=False,
            title="Emit ACTIVATE_VERSION",
            description=(
                "Send one ACTIVATE_VERSION message after every agent has synced, so "
                "targets that honour it mark testers missing from this run as deleted. "
                "Never sent by a run that fails or is interrupted."
            ),
        ),
        th.Property(
            "unknown_agents",
            th.StringType,
            default="fail",
            allowed_values=["fail", "skip"],
            title="Unknown agents",
            description=(
                "What an agent that Kaleyra answers 'Agent Not Found' does to the run: "
                "'fail' (the default) fails it; 'skip' leaves the agent out with one "
                "warning and names it in the run record, and the models treat it as not "
                "synced, not as emptied."
            ),
        ),
        th.Property(
            "schema_changes",
            th.StringType,
            default="keep",
            allowed_values=["keep", "drop", "fail"],
            title="Schema changes",
            description=(
                "What a field the API adds, or a value whose type no longer fits its "
                "field, does: 'keep' (the default) loads it in the drifted_fields column as "
                "JSON (the typed column null) and the run goes on; 'drop' leaves it out and "
                "the run goes on; 'fail' stops the run. Each change is named in a warning "
                "and counted in the run record."
            ),
        ),
        th.Property(
            "trust_empty_answers",
            th.BooleanType,
            default=False,
            title="Trust empty answers",
            description=(
                "An agent that had testers in the previous run and now answers none "
                "(an empty list or data: null) is by default named in a warning and in "
                "the run record, counted as not synced (its testers are not removed) and "
                "no ACTIVATE_VERSION is sent; the next run's answer is trusted. True "
                "trusts the first empty answer."
            ),
        ),
        th.Property(
            "max_requests_per_second",
            th.NumberType,
            title="Max requests per second",
            description=(
                "Requests per second, shared by all concurrent requests (0.01-10000); "
                "unset means no limit."
            ),
        ),
        th.Property(
            "phoneno_hash_key",
            th.StringType,
            secret=True,
            title="Phone number hash key",
            description=(
                "Secret of at least 16 characters. When set, phoneno in testers and "
                "testers_observations is sent as its HMAC-SHA256 under this key (64 hex "
                "digits), before any stream map; a null phoneno stays null. Keep it secret "
                "and never change it: another key gives every number another hash. "
                "Never logged."
            ),
        ),
        th.Property(
            "require_phoneno_hash_key",
            th.BooleanType,
            title="Require phone number hash key",
            description=(
                "True: refuse to run without phoneno_hash_key, rather than load clear "
                "numbers (Meltano leaves out a setting whose variable is unset). The "
                "tap-kaleyra-rcs--hashed-phones variant sets it."
            ),
        ),
    ).to_dict()

    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The validated settings; only a sync needs them, and it validates first."""
        if self._settings is None:
            self._settings = parse_settings(self.config)
        return self._settings

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Run the tap's own checks first: they name the setting and the fix.

        A failure keeps the SDK's lines (one per setting, then "Config validation
        failed") and ends, like every anticipated failure, with one
        ``tap-kaleyra-rcs: error:`` line, which schedulers read.
        """
        self._config = numbers_from_text(self._config, self.config_jsonschema["properties"])
        try:
            self._settings = parse_settings(self.config)
        except SettingsError as exc:
            problems = exc.problems
        else:
            try:
                problems = super()._validate_config(raise_errors=raise_errors)
            except ConfigValidationError as exc:
                problems = list(exc.errors)
        if problems and raise_errors:
            for problem in problems:
                self.logger.error(problem)
            self.logger.error("Config validation failed")
            raise SettingsInvalid(problems)
        return problems

    def setup_mapper(self) -> None:
        """The SDK's stream maps, with ``testers_observations`` following ``testers``'s.

        See :func:`with_inherited_stream_map`: a map that hashes or drops personal
        data in ``testers`` must not leave it in clear in the observations.
        """
        given = self.config.get("stream_maps") or {}
        stream_maps = with_inherited_stream_map(given)
        self.mapper = PluginMapper(
            plugin_config={**self.config, "stream_maps": stream_maps}, logger=self.logger
        )
        self.mapper.register_raw_streams_from_catalog(self.catalog)
        if stream_maps is not given:
            self.logger.info(
                "testers_observations uses the stream map given for testers; give "
                "stream_maps a 'testers_observations' entry to map it otherwise"
            )

    def discover_streams(self) -> list[Stream]:
        """The testers, their observations, then the records of a run that synced them all."""
        return [
            TestersStream(self),
            TestersObservationsStream(self),
            TestersSyncRunAgentsStream(self),
            TestersSyncRunsStream(self),
        ]

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        """Stop at once with a non-zero status, writing no STATE or ACTIVATE_VERSION.

        The SDK's default writes state and exits 0, which would tell a scheduler
        that an interrupted full-table run succeeded.
        """
        interrupted = Interrupted(signum)
        if isinstance(self.message_writer, SingerOutput):
            self.message_writer.raise_between_writes(interrupted)
            return
        raise interrupted


class Interrupted(BaseException):
    """The process received SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        """Remember which signal, for the exit status (128 + signal number)."""
        super().__init__(signum)
        self.signum = signum
