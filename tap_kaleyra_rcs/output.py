"""Singer output: RECORD lines batched into large writes, everything else flushed at once.

The SDK writes and flushes stdout once per message; with ``PYTHONUNBUFFERED``
(common in containers) that is one system call per record. Here RECORD lines
collect in memory and go out in chunks of about 64 KiB; SCHEMA, STATE and
ACTIVATE_VERSION messages flush everything before them, so message order and
"state only after its records" are kept. Only whole lines are ever written: a
signal that arrives during a write is re-raised once the write has finished,
and one that arrives while an agent's testers and observations go out waits
until both have (:meth:`SingerOutput.whole`).
"""

from __future__ import annotations

import contextlib
import sys
import time
import typing as t

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import RecordMessage

from tap_kaleyra_rcs.errors import OutputClosed

if t.TYPE_CHECKING:
    from singer_sdk import Stream
    from singer_sdk.singerlib.encoding.simple import Message

    from tap_kaleyra_rcs.records import AgentTesters

CHUNK_BYTES = 1 << 16
LINES_PER_WRITE = 2000
"""RECORD lines encoded and queued together on the direct path."""

_encoder = msgspec.json.Encoder()
_encode_json = _encoder.encode
_encode_lines = _encoder.encode_lines


def record_lines(records: list[dict[str, t.Any]]) -> list[bytes]:
    """``records`` as JSON lines, in chunks of :data:`LINES_PER_WRITE` records."""
    return list(_chunks(records))


LINES_KEPT = 10_000
"""Up to this many records an agent, their encoded lines are kept for the observations."""


def lines_of(batch: AgentTesters) -> t.Iterable[bytes]:
    """``batch``'s records as JSON lines, for the testers and again for their observations.

    The observations are spliced from the testers' lines
    (:meth:`SingerOutput.write_observations`), so a usual agent's records are
    encoded once and kept meanwhile. A very large agent's are encoded again,
    one chunk at a time: keeping them would add a quarter to its memory.
    """
    if batch.lines is not None:
        return batch.lines
    if len(batch.records) > LINES_KEPT:
        return _chunks(batch.records)
    batch.lines = record_lines(batch.records)
    return batch.lines


def _chunks(records: list[dict[str, t.Any]]) -> t.Iterator[bytes]:
    for start in range(0, len(records), LINES_PER_WRITE):
        yield _encode_lines(records[start : start + LINES_PER_WRITE])


_POSITIONS: list[bytes] = []


def _positions(count: int) -> list[bytes]:
    """``b"0"``, ``b"1"``... at least ``count`` of them, written out once for every agent."""
    if len(_POSITIONS) < count:
        _POSITIONS.extend(b"%d" % n for n in range(len(_POSITIONS), count))
    return _POSITIONS


def _record_head(stream: str) -> bytes:
    """A RECORD message up to its record: ``{"type":"RECORD","stream":...,"record":``."""
    return _encode_json({"type": "RECORD", "stream": stream})[:-1] + b',"record":'


def _record_tail(time_extracted: str, version: int | None) -> bytes:
    """A RECORD message after its record, with the line end."""
    tail: dict[str, t.Any] = {}
    if version is not None:
        tail["version"] = version
    tail["time_extracted"] = time_extracted
    return b"," + _encode_json(tail)[1:] + b"\n"


def records_go_out_unchanged(stream: Stream) -> bool:
    """Whether ``stream`` sends its records exactly as built: no map, flattening or limit.

    Then its RECORD lines can be encoded in one go (:meth:`SingerOutput.write_records`)
    instead of one SDK message at a time, with the same result.
    """
    maps = stream.stream_maps
    return (
        stream.selected
        and stream.ABORT_AT_RECORD_COUNT is None
        and len(maps) == 1
        and type(maps[0]) is SameRecordTransform
        and not maps[0].flattening_enabled
        and maps[0].stream_alias == stream.name
        and all(stream.mask.get(("properties", name), True) for name in stream.schema["properties"])
    )


class SingerOutput(MsgSpecWriter):
    """The tap's message writer (msgspec encoding, chunked writes)."""

    def __init__(self) -> None:
        """Start with nothing pending."""
        super().__init__()
        self._pending: list[bytes | memoryview] = []
        self._pending_bytes = 0
        self._writing = False
        self._held = 0
        self._deferred: BaseException | None = None

    @contextlib.contextmanager
    def whole(self) -> t.Iterator[None]:
        """Hold a signal until the messages written inside have all gone out.

        An interrupted run then loads an agent's testers together with its
        observations, or neither: never the testers without the history.
        """
        self._held += 1
        try:
            yield
        except BaseException:
            self._write_pending()  # what was written before a failure still goes out
            raise
        finally:
            self._held -= 1
        self.flush()  # raises a signal deferred meanwhile, once everything is out

    def write_message(self, message: Message) -> None:
        """Write any message the SDK emits, after the records before it.

        A RECORD written inside :meth:`whole` (an agent's testers and
        observations on the SDK's own per-record path) waits in the queue like
        those of :meth:`write_records`, and goes out when the agent's do: a
        system call per record was a tenth of that path's time. Anything else
        goes out at once, with every record before it.
        """
        # format_message reuses one buffer: copy it before it is overwritten.
        self.write_lines(bytes(self.format_message(message)))
        if not (self._held and isinstance(message, RecordMessage)):
            self.flush()

    def write_records(
        self,
        stream: str,
        lines: t.Iterable[bytes],
        time_extracted: str,
        version: int | None = None,
    ) -> None:
        """Queue one RECORD message per record, the SDK's fields in the SDK's order.

        ``lines`` are the records already encoded as JSON lines
        (:func:`record_lines`); each line is wrapped in the message around it.
        JSON escapes newlines inside strings, so the only newline bytes are the
        line ends.
        """
        head = _record_head(stream)
        end_and_next = _record_tail(time_extracted, version) + head
        for chunk in lines:
            # Queued as views, not copies: the one copy is the write's own join.
            self.write_lines(head)
            self.write_lines(memoryview(chunk.replace(b"\n", end_and_next))[: -len(head)])

    def write_observations(
        self,
        stream: str,
        lines: t.Iterable[bytes],
        run_fields: dict[str, t.Any],
        received_at: str,
    ) -> None:
        """Queue each encoded tester line again as an observation: run fields, position, tester.

        The same message as encoding ``{**run_fields, "position": n, "received_at":
        received_at, **tester}`` anew (``received_at`` is also the message's
        ``time_extracted``), spliced from the tester's own JSON instead: the fields
        before the tester's are encoded once per agent, its position once per line.
        Every tester record has an ``id``, so no tester's JSON is ``{}``.
        """
        tail = _record_tail(received_at, None)
        lead = tail + _record_head(stream) + _encode_json(run_fields)[:-1] + b',"position":'
        after = b"," + _encode_json({"received_at": received_at})[1:-1] + b","
        position = 0
        for chunk in lines:
            # "{a}\n{b}\n" -> "a}", "b}": each tester's fields and closing brace.
            bodies = chunk[1:-1].split(b"\n{")
            count = len(bodies)
            # Four pieces a line, joined once: no bytes built per line in Python.
            parts = [lead, b"", after, b""] * count
            parts[0] = lead[len(tail) :]  # the chunk's first line follows no other
            parts[1::4] = _positions(position + count)[position : position + count]
            parts[3::4] = bodies
            parts.append(tail)
            position += count
            self.write_lines(b"".join(parts))

    def write_lines(self, lines: bytes | memoryview) -> None:
        """Queue one or more complete messages, each ending in a newline."""
        self._pending.append(lines)
        self._pending_bytes += len(lines)
        if self._pending_bytes >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write everything queued, then raise a signal deferred meanwhile, if any."""
        self._write_pending()
        if self._deferred is not None and not self._held:
            deferred, self._deferred = self._deferred, None
            raise deferred

    def _write_pending(self) -> None:
        """Write everything queued, in one system call where the OS allows."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._writing = True
            try:
                _write_all(sys.stdout.buffer, data)
                sys.stdout.flush()
            except BrokenPipeError:
                msg = (
                    "the reader of the tap's output (the target) closed it; "
                    "its own error, above, says why"
                )
                raise OutputClosed(msg) from None
            finally:
                self._writing = False

    def raise_between_writes(self, exc: BaseException) -> None:
        """Raise ``exc`` now, or right after a write in progress completes.

        Called from signal handlers: raising inside a write could leave a
        half-written line on stdout for the target to choke on.
        """
        if self._writing or self._held:
            self._deferred = exc
            return
        raise exc


def _write_all(out: t.BinaryIO, data: bytes) -> None:
    """Write every byte, also to a raw (unbuffered) stdout that writes only part.

    With ``PYTHONUNBUFFERED`` set, ``sys.stdout.buffer`` is a raw file whose
    ``write`` may stop early on a pipe, e.g. when a signal arrives mid-write.
    """
    view = memoryview(data)
    while view:
        written = out.write(view)
        if written is None:  # a non-blocking stdout that is full: wait for the reader
            time.sleep(0.01)
            continue
        view = view[written:]
